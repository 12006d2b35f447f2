//! Where rows are written to MySQL: multi-row INSERT statements built from typed values.
//!
//! The values most rows are made of (strings, integers) are written here without the
//! per-character loop and `fmt` machinery of [`push_literal`], byte for byte the same text
//! (tested against it): on the reader thread, encoding is most of what tidemark spends
//! per row.

use crate::source::snapshot::text_typed;
use crate::transform::mapping::TablePlan;
use tidemark_core::sql::{push_ident, push_literal, push_text_literal, Temporal};
use tidemark_core::{Row, Value};

/// The warnings of the last statement on `dst` that mean the destination changed or
/// dropped a value it was given (`SHOW WARNINGS`, as "Level code: message"). The session
/// is not strict (see `connect.rs`), so a value that does not fit its column is a warning.
/// Not counted: warnings about a column not in `written` (a generated or defaulted column
/// the destination computes itself, as the source did, e.g. an expression that overflows
/// for legacy data), duplicate keys when `duplicates_expected` (INSERT IGNORE), and
/// "Data truncated" for an ENUM column at a row where the statement wrote the column's
/// error value (see [`ErrorValues`]).
pub fn changed_values(
    dst: &mut mysql::Conn,
    written: &[String],
    duplicates_expected: bool,
    error_values: &[(u64, usize)],
) -> Result<Vec<String>, mysql::Error> {
    use mysql::prelude::Queryable;
    let count = dst.warnings() as usize;
    let warnings: Vec<(String, u32, String)> = dst.query("SHOW WARNINGS")?;
    let mut serious: Vec<String> = warnings
        .into_iter()
        .filter(|(_, code, message)| {
            let duplicate = duplicates_expected && *code == 1062;
            let column = warned_column(message);
            let computed = column
                .as_ref()
                .is_some_and(|c| !written.iter().any(|w| w.eq_ignore_ascii_case(c)));
            let error_value = *code == 1265
                && column.zip(warned_row(message)).is_some_and(|(c, row)| {
                    error_values.iter().any(|&(r, i)| {
                        r == row && written.get(i).is_some_and(|w| w.eq_ignore_ascii_case(&c))
                    })
                });
            !duplicate && !computed && !error_value
        })
        .map(|(level, code, message)| format!("{level} {code}: {message}"))
        .collect();
    if count > 65535 {
        // More than the session keeps (`max_error_count`): those not shown may matter.
        serious.push(format!("{count} warnings, more than the server keeps"));
    }
    Ok(serious)
}

/// The row a warning names (`... at row 3`), counted from 1 within the statement.
fn warned_row(message: &str) -> Option<u64> {
    let (_, n) = message.rsplit_once(" at row ")?;
    n.trim().parse().ok()
}

/// Where a statement writes an ENUM column's error value, as (row counted from 1, index
/// of the written column). A source written under a permissive `sql_mode` holds an
/// invalid ENUM value as '' with index 0; the destination stores the same when given index
/// 0, with warning 1265 "Data truncated", which is then no change.
pub type ErrorValues = Vec<(u64, usize)>;

/// The written columns that are ENUMs: those whose values may be error values.
fn enum_columns(t: &TablePlan) -> Vec<usize> {
    t.copied_columns()
        .enumerate()
        .filter(|(_, c)| c.kind == tidemark_core::ColumnKind::Enum)
        .map(|(i, _)| i)
        .collect()
}

/// Records the error values of `row`, the statement's row `number` (from 1).
fn note_error_values(enums: &[usize], number: usize, row: &Row, out: &mut ErrorValues) {
    for &i in enums {
        if matches!(row.get(i), Some(Value::UInt(0) | Value::Int(0))) {
            out.push((number as u64, i));
        }
    }
}

/// The error values of a one-row statement.
pub fn error_values_of(t: &TablePlan, row: &Row) -> ErrorValues {
    let mut out = ErrorValues::new();
    note_error_values(&enum_columns(t), 1, row, &mut out);
    out
}

/// A statement (or LOAD DATA input) taken from a builder: its body, how many rows it
/// holds, and where it writes ENUM error values.
pub struct Built<T> {
    pub body: T,
    pub rows: usize,
    pub error_values: ErrorValues,
}

/// The column a warning names: `... for column 'c' at row 1`, `... for column
/// `db`.`t`.`c` at row 1`, `Column 'c' cannot be null`.
fn warned_column(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.rfind("column ")? + "column ".len();
    let rest = &message[at..];
    if let Some(quoted) = rest.strip_prefix('\'') {
        return quoted.split_once('\'').map(|(name, _)| name.to_string());
    }
    // Backquoted parts, the last one the column.
    let mut rest = rest;
    let mut last = None;
    while let Some((name, after)) = tidemark_core::sql::take_ident(rest) {
        last = Some(name);
        match after.strip_prefix('.') {
            Some(more) => rest = more,
            None => break,
        }
    }
    last
}

/// How rows meet rows that already exist on the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertMode {
    /// A fresh chunk: plain INSERT, the fastest.
    Insert,
    /// A chunk copied again after an interruption: replace what a previous attempt wrote.
    Replace,
    /// `on_conflicting_tables = "ignore"`: keep destination rows whose key already exists.
    Ignore,
}

/// Accumulates rows into one INSERT statement of bounded size.
pub struct InsertBuilder {
    prefix: String,
    sql: String,
    rows: usize,
    max_rows: usize,
    max_bytes: usize,
    /// Per column: values are sent as character strings (see [`text_typed`]).
    text: Vec<bool>,
    enums: Vec<usize>,
    error_values: ErrorValues,
}

/// `INSERT INTO t (columns) VALUES ` (or REPLACE, INSERT IGNORE) for a table's copied
/// columns.
fn insert_prefix(t: &TablePlan, mode: InsertMode) -> String {
    values_head(
        match mode {
            InsertMode::Insert => "INSERT INTO ",
            InsertMode::Replace => "REPLACE INTO ",
            InsertMode::Ignore => "INSERT IGNORE INTO ",
        },
        t,
    )
}

/// `verb` (e.g. `"UPSERT INTO "`), then `t (columns) VALUES ` with the destination table
/// and its copied columns quoted.
pub fn values_head(verb: &str, t: &TablePlan) -> String {
    let mut prefix = String::from(verb);
    prefix.push_str(&t.target.quoted());
    prefix.push_str(" (");
    for (i, c) in t.target_columns().iter().enumerate() {
        if i > 0 {
            prefix.push_str(", ");
        }
        push_ident(&mut prefix, c);
    }
    prefix.push_str(") VALUES ");
    prefix
}

impl InsertBuilder {
    pub fn new(t: &TablePlan, mode: InsertMode, max_rows: usize, max_bytes: usize) -> Self {
        let text = t.copied_columns().map(text_typed).collect();
        InsertBuilder {
            sql: String::new(),
            prefix: insert_prefix(t, mode),
            rows: 0,
            max_rows,
            max_bytes,
            text,
            enums: enum_columns(t),
            error_values: ErrorValues::new(),
        }
    }

    /// Adds a row; returns true when the statement is full and should be taken.
    pub fn push(&mut self, row: &Row) -> bool {
        if self.rows == 0 {
            self.sql.reserve(self.max_bytes.min(1 << 20));
            self.sql.push_str(&self.prefix);
        } else {
            self.sql.push(',');
        }
        self.sql.push('(');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                self.sql.push(',');
            }
            push_value(&mut self.sql, v, self.text.get(i) == Some(&true));
        }
        self.sql.push(')');
        self.rows += 1;
        note_error_values(&self.enums, self.rows, row, &mut self.error_values);
        self.rows >= self.max_rows || self.sql.len() >= self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Rows added since the last [`Self::take`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes the statement built so far, leaving the builder empty.
    pub fn take(&mut self) -> Built<String> {
        Built {
            body: std::mem::take(&mut self.sql),
            rows: std::mem::take(&mut self.rows),
            error_values: std::mem::take(&mut self.error_values),
        }
    }
}

/// Accumulates rows as tab-separated data for `LOAD DATA LOCAL INFILE`, which the
/// destination parses several times faster than INSERT statements. Bytes travel raw (no
/// hex doubling); BIT, ENUM, SET and text-typed columns (UUID, INET) go through user
/// variables so the server converts them exactly as it would a literal.
pub struct LoadBuilder {
    statement: std::sync::Arc<str>,
    data: Vec<u8>,
    rows: usize,
    max_rows: usize,
    max_bytes: usize,
    enums: Vec<usize>,
    error_values: ErrorValues,
}

impl LoadBuilder {
    pub fn new(t: &TablePlan, mode: InsertMode, max_rows: usize, max_bytes: usize) -> Self {
        let mut columns = Vec::new();
        let mut sets = Vec::new();
        for (i, (c, name)) in t.copied_columns().zip(t.target_columns()).enumerate() {
            use tidemark_core::ColumnKind as K;
            let conversion = match c.kind {
                // YEAR: the string "0" would mean 2000, the number 0 means 0000.
                K::Bit | K::Enum | K::Set | K::Year => Some("CAST(@v{i} AS UNSIGNED)"),
                _ if text_typed(c) => Some("CONVERT(@v{i} USING utf8mb4)"),
                _ => None,
            };
            match conversion {
                Some(expr) => {
                    columns.push(format!("@v{i}"));
                    let mut set = String::new();
                    push_ident(&mut set, &name);
                    set.push_str(" = ");
                    set.push_str(&expr.replace("{i}", &i.to_string()));
                    sets.push(set);
                }
                None => {
                    let mut col = String::new();
                    push_ident(&mut col, &name);
                    columns.push(col);
                }
            }
        }
        let keyword = match mode {
            InsertMode::Insert => "",
            InsertMode::Replace => "REPLACE ",
            InsertMode::Ignore => "IGNORE ",
        };
        let mut statement = format!(
            "LOAD DATA LOCAL INFILE 'tidemark' {keyword}INTO TABLE {} CHARACTER SET binary ({})",
            t.target.quoted(),
            columns.join(", ")
        );
        if !sets.is_empty() {
            statement.push_str(" SET ");
            statement.push_str(&sets.join(", "));
        }
        LoadBuilder {
            statement: statement.into(),
            data: Vec::new(),
            rows: 0,
            max_rows,
            max_bytes,
            enums: enum_columns(t),
            error_values: ErrorValues::new(),
        }
    }

    /// The LOAD DATA statement that reads what [`LoadBuilder::take`] returns.
    pub fn statement(&self) -> std::sync::Arc<str> {
        self.statement.clone()
    }

    /// Adds a row; returns true when the batch is full and should be taken.
    pub fn push(&mut self, row: &Row) -> bool {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                self.data.push(b'\t');
            }
            push_field(&mut self.data, v);
        }
        self.data.push(b'\n');
        self.rows += 1;
        note_error_values(&self.enums, self.rows, row, &mut self.error_values);
        self.rows >= self.max_rows || self.data.len() >= self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Rows added since the last [`Self::take`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn take(&mut self) -> Built<Vec<u8>> {
        Built {
            body: std::mem::take(&mut self.data),
            rows: std::mem::take(&mut self.rows),
            error_values: std::mem::take(&mut self.error_values),
        }
    }
}

/// The most placeholders one prepared statement may have (the protocol counts them in
/// 16 bits).
const MAX_PLACEHOLDERS: usize = 65_535;

/// Accumulates rows for one multi-row INSERT sent as a prepared statement: the values
/// travel in the binary protocol, so neither side formats or parses literals. The
/// destination spends about 15 % less CPU per row than on the same INSERT as text
/// (docs/benchmarks.md), and unlike LOAD DATA, MariaDB's and MySQL 5.7's default
/// `innodb_autoinc_lock_mode = 1` does not serialize concurrent statements into one
/// table on its AUTO-INC lock.
pub struct PreparedBuilder {
    /// `INSERT INTO t (cols) VALUES `, and each row's `(?, ...)`.
    prefix: String,
    row_marks: String,
    /// The statement for a full batch, made once.
    full: Option<std::sync::Arc<str>>,
    params: Vec<mysql::Value>,
    rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
    enums: Vec<usize>,
    error_values: ErrorValues,
}

impl PreparedBuilder {
    pub fn new(t: &TablePlan, mode: InsertMode, max_rows: usize, max_bytes: usize) -> Self {
        let prefix = insert_prefix(t, mode);
        let marks: Vec<&str> = t
            .copied_columns()
            .map(|c| {
                // Strings travel as binary strings (the session is `SET NAMES binary`);
                // these columns would take one as their internal form (see `text_typed`;
                // MySQL 8 refuses a binary string for JSON).
                if text_typed(c) || c.kind == tidemark_core::ColumnKind::Json {
                    "CONVERT(? USING utf8mb4)"
                } else {
                    "?"
                }
            })
            .collect();
        let columns = marks.len().max(1);
        PreparedBuilder {
            prefix,
            row_marks: format!("({})", marks.join(", ")),
            full: None,
            params: Vec::new(),
            rows: 0,
            bytes: 0,
            max_rows: max_rows.clamp(1, MAX_PLACEHOLDERS / columns),
            max_bytes,
            enums: enum_columns(t),
            error_values: ErrorValues::new(),
        }
    }

    /// Whether `row` should start the next statement: this one is not empty, and the row
    /// would take it over its byte budget (kept under the destination's
    /// `max_allowed_packet`).
    pub fn would_overflow(&self, row: &Row) -> bool {
        self.rows > 0
            && self.bytes + row.iter().map(Value::wire_size).sum::<usize>() > self.max_bytes
    }

    /// Adds a row; returns true when the statement is full and should be taken.
    pub fn push(&mut self, row: Row) -> bool {
        self.rows += 1;
        note_error_values(&self.enums, self.rows, &row, &mut self.error_values);
        if self.params.is_empty() {
            self.params.reserve(self.max_rows * row.len());
        }
        for v in row {
            self.bytes += v.wire_size();
            self.params.push(to_param(v));
        }
        self.rows >= self.max_rows || self.bytes >= self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Rows added since the last [`Self::take`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes the statement and its values, leaving the builder empty.
    pub fn take(&mut self) -> Built<(std::sync::Arc<str>, Vec<mysql::Value>)> {
        let rows = std::mem::take(&mut self.rows);
        let sql = match &self.full {
            Some(sql) if rows == self.max_rows => sql.clone(),
            _ => {
                let sql: std::sync::Arc<str> = self.statement(rows).into();
                if rows == self.max_rows {
                    self.full = Some(sql.clone());
                }
                sql
            }
        };
        self.bytes = 0;
        Built {
            body: (sql, std::mem::take(&mut self.params)),
            rows,
            error_values: std::mem::take(&mut self.error_values),
        }
    }

    fn statement(&self, rows: usize) -> String {
        let mut sql = String::with_capacity(self.prefix.len() + rows * (self.row_marks.len() + 1));
        sql.push_str(&self.prefix);
        for i in 0..rows {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&self.row_marks);
        }
        sql
    }
}

/// A value as a statement parameter, moved rather than copied.
fn to_param(v: Value) -> mysql::Value {
    use mysql::Value as M;
    match v {
        Value::Bytes(b) | Value::Json(b) => M::Bytes(b),
        Value::Decimal(s) => M::Bytes(s.into_bytes()),
        // MySQL cannot store NaN or infinity: as text, the server rejects the statement
        // with a clear error, as it does for the literal (`push_literal`).
        Value::Float(f) if !f.is_finite() => M::Bytes(b"invalid-float".to_vec()),
        Value::Double(d) if !d.is_finite() => M::Bytes(b"invalid-float".to_vec()),
        other => crate::source::snapshot::to_mysql(&other),
    }
}

/// One value of an INSERT statement: as [`push_literal`] (or [`push_text_literal`] for a
/// `text` typed column) writes it.
fn push_value(out: &mut String, v: &Value, text: bool) {
    match v {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                if text {
                    out.push_str("_utf8mb4");
                }
                push_quoted(out, s);
            }
            Err(_) if text => push_text_literal(out, b),
            Err(_) => push_literal(out, v),
        },
        Value::Int(i) => {
            if *i < 0 {
                out.push('-');
            }
            let mut buf = [0u8; 20];
            out.extend(
                digits(i.unsigned_abs(), &mut buf)
                    .iter()
                    .map(|&d| char::from(d)),
            );
        }
        Value::UInt(u) | Value::Bit(u) => {
            let mut buf = [0u8; 20];
            out.extend(digits(*u, &mut buf).iter().map(|&d| char::from(d)));
        }
        _ => push_literal(out, v),
    }
}

/// Bytes a string literal escapes: `'`, `\`, NUL, newline, carriage return, Ctrl-Z.
const LITERAL_ESCAPES: [bool; 256] = escapes(b"'\\\0\n\r\x1a");
/// Bytes a LOAD DATA field escapes: `\`, tab, newline, carriage return, NUL.
const FIELD_ESCAPES: [bool; 256] = escapes(b"\\\t\n\r\0");

const fn escapes(special: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < special.len() {
        table[special[i] as usize] = true;
        i += 1;
    }
    table
}

/// `text` as a quoted string literal, runs between escapes copied whole. The escaped
/// bytes are ASCII, so every run starts and ends on a character boundary.
fn push_quoted(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('\'');
    let mut start = 0;
    for (i, &c) in text.as_bytes().iter().enumerate() {
        if LITERAL_ESCAPES[usize::from(c)] {
            out.push_str(&text[start..i]);
            out.push_str(match c {
                b'\'' => "\\'",
                b'\\' => "\\\\",
                0 => "\\0",
                b'\n' => "\\n",
                b'\r' => "\\r",
                _ => "\\Z",
            });
            start = i + 1;
        }
    }
    out.push_str(&text[start..]);
    out.push('\'');
}

/// The decimal digits of `u`, written at the end of `buf`.
fn digits(mut u: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            return &buf[at..];
        }
    }
}

/// One field in LOAD DATA's default format: `\N` for NULL, backslash escapes for tab,
/// newline, carriage return, NUL and backslash.
pub fn push_field(out: &mut Vec<u8>, v: &Value) {
    use std::io::Write;
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) | Value::Json(b) => {
            out.reserve(b.len());
            let mut start = 0;
            for (i, &c) in b.iter().enumerate() {
                if FIELD_ESCAPES[usize::from(c)] {
                    out.extend_from_slice(&b[start..i]);
                    out.extend_from_slice(match c {
                        b'\\' => b"\\\\",
                        b'\t' => b"\\t",
                        b'\n' => b"\\n",
                        b'\r' => b"\\r",
                        _ => b"\\0",
                    });
                    start = i + 1;
                }
            }
            out.extend_from_slice(&b[start..]);
        }
        Value::Decimal(s) => out.extend_from_slice(s.as_bytes()),
        Value::Int(i) => {
            if *i < 0 {
                out.push(b'-');
            }
            let mut buf = [0u8; 20];
            out.extend_from_slice(digits(i.unsigned_abs(), &mut buf));
        }
        Value::UInt(u) | Value::Bit(u) => {
            let mut buf = [0u8; 20];
            out.extend_from_slice(digits(*u, &mut buf));
        }
        // As the literals, without their quotes (no String per value: DATETIME columns
        // are common).
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            let _ = write!(out, "{}", Temporal(v));
        }
        _ => {
            // Numbers and temporal values: the SQL literal without its quotes.
            let mut s = String::new();
            push_literal(&mut s, v);
            out.extend_from_slice(s.trim_matches('\'').as_bytes());
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    /// Values with every byte the encoders treat specially, at the ends and in runs.
    fn samples() -> Vec<Value> {
        let mut v = vec![
            Value::Null,
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::UInt(0),
            Value::UInt(u64::MAX),
            Value::Bit(5),
            Value::Double(-1.5e-7),
            Value::Float(3.25),
            Value::Decimal("-12.340".into()),
            Value::Json(b"{\"a\": \"\\n\t\"}".to_vec()),
            Value::Bytes(Vec::new()),
            Value::Bytes("plain ascii".into()),
            Value::Bytes("é ü – 漢字 \u{1F600}".into()),
            Value::Bytes(b"'\\\0\n\r\x1a\t".to_vec()),
            Value::Bytes(b"a'b\\c\0d\ne\rf\x1ag\th'".to_vec()),
            Value::Bytes(vec![0xff, b'\'', 0xfe, 0]),
            Value::Date(tidemark_core::DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0,
            }),
            Value::DateTime(tidemark_core::DateTime {
                year: 1,
                month: 1,
                day: 1,
                hour: 23,
                minute: 5,
                second: 9,
                micros: 7,
            }),
            Value::Time(tidemark_core::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
            }),
        ];
        for b in 0..=255u8 {
            v.push(Value::Bytes(vec![b'x', b, b'y']));
        }
        v
    }

    #[test]
    fn insert_values_are_the_literals_of_core() {
        for v in samples() {
            for text in [false, true] {
                let mut fast = String::new();
                push_value(&mut fast, &v, text);
                let mut reference = String::new();
                match &v {
                    Value::Bytes(b) if text => push_text_literal(&mut reference, b),
                    _ => push_literal(&mut reference, &v),
                }
                assert_eq!(fast, reference, "{v:?} (text-typed: {text})");
            }
        }
    }

    /// The field encoding as it was before runs were copied whole.
    fn field_reference(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Bytes(b) | Value::Json(b) => {
                for &c in b {
                    match c {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        0 => out.extend_from_slice(b"\\0"),
                        c => out.push(c),
                    }
                }
            }
            Value::Decimal(s) => out.extend_from_slice(s.as_bytes()),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::UInt(u) | Value::Bit(u) => out.extend_from_slice(u.to_string().as_bytes()),
            _ => {
                let mut s = String::new();
                push_literal(&mut s, v);
                out.extend_from_slice(s.trim_matches('\'').as_bytes());
            }
        }
        out
    }

    #[test]
    fn fields_are_unchanged_by_the_fast_paths() {
        for v in samples() {
            let mut fast = Vec::new();
            push_field(&mut fast, &v);
            assert_eq!(fast, field_reference(&v), "{v:?}");
        }
    }

    #[test]
    fn fields_escape_separators_and_keep_bytes() {
        let mut out = Vec::new();
        push_field(
            &mut out,
            &Value::Bytes(vec![b'a', b'\t', b'\n', 0, b'\\', 0xff]),
        );
        assert_eq!(out, b"a\\t\\n\\0\\\\\xff");
        out.clear();
        push_field(&mut out, &Value::Null);
        assert_eq!(out, b"\\N");
        out.clear();
        push_field(
            &mut out,
            &Value::Time(tidemark_core::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
            }),
        );
        assert_eq!(out, b"-838:59:59.000000");
    }
}

#[cfg(test)]
mod warning_tests {
    use super::warned_column;

    #[test]
    fn the_column_a_warning_names() {
        for (message, column) in [
            ("Out of range value for column 'gen' at row 1", Some("gen")),
            ("Data too long for column 's' at row 3", Some("s")),
            (
                "Incorrect integer value: 'x' for column `db`.`t`.`n``q` at row 1",
                Some("n`q"),
            ),
            ("Column 'c' cannot be null", Some("c")),
            ("Division by 0", None),
        ] {
            assert_eq!(warned_column(message).as_deref(), column, "{message}");
        }
    }
}

#[cfg(test)]
mod prepared_tests {
    use super::*;
    use tidemark_core::{ColumnDef, ColumnKind, TableDef, TableName};

    fn plan(columns: &[(&str, &str, ColumnKind)]) -> TablePlan {
        let def = TableDef {
            name: TableName::new("d", "t"),
            columns: columns
                .iter()
                .map(|(name, ty, kind)| ColumnDef {
                    name: name.to_string(),
                    column_type: ty.to_string(),
                    kind: *kind,
                    nullable: true,
                    generated: false,
                    invisible: false,
                    charset: None,
                })
                .collect(),
            key: Some(vec![0]),
            key_name: Some("PRIMARY".into()),
        };
        crate::transform::mapping::test_plan(def)
    }

    #[test]
    fn rows_become_one_statement_with_placeholders_and_moved_values() {
        let t = plan(&[
            ("id", "int", ColumnKind::Int { unsigned: false }),
            ("j", "json", ColumnKind::Json),
            ("u", "uuid", ColumnKind::Other),
            ("f", "double", ColumnKind::Double),
        ]);
        let mut b = PreparedBuilder::new(&t, InsertMode::Replace, 2, 1 << 20);
        let row = |i: i64, f: f64| {
            vec![
                Value::Int(i),
                Value::Json(b"{}".to_vec()),
                Value::Bytes(b"u".to_vec()),
                Value::Double(f),
            ]
        };
        assert!(!b.push(row(1, 0.5)));
        assert!(b.push(row(2, f64::NAN)), "full at max_rows");
        let built = b.take();
        assert_eq!(built.rows, 2);
        let marks = "(?, CONVERT(? USING utf8mb4), CONVERT(? USING utf8mb4), ?)";
        assert_eq!(
            &*built.body.0,
            format!("REPLACE INTO `d`.`t` (`id`, `j`, `u`, `f`) VALUES {marks},{marks}")
        );
        assert_eq!(built.body.1.len(), 8);
        assert_eq!(built.body.1[3], mysql::Value::Double(0.5));
        // NaN cannot be stored: sent as text, so the server refuses it rather than
        // storing something else.
        assert_eq!(
            built.body.1[7],
            mysql::Value::Bytes(b"invalid-float".to_vec())
        );
        // A shorter last batch gets its own statement; the full one is kept.
        b.push(row(3, 1.0));
        let last = b.take();
        assert_eq!(last.rows, 1);
        assert!(last.body.0.ends_with(&format!("VALUES {marks}")));
        assert!(b.is_empty());
    }

    #[test]
    fn statements_stay_under_the_placeholder_and_byte_limits() {
        let cols: Vec<(String, ColumnKind)> = (0..1000)
            .map(|i| (format!("c{i}"), ColumnKind::Int { unsigned: false }))
            .collect();
        let named: Vec<(&str, &str, ColumnKind)> =
            cols.iter().map(|(n, k)| (n.as_str(), "int", *k)).collect();
        let wide = plan(&named);
        let mut b = PreparedBuilder::new(&wide, InsertMode::Insert, 1000, usize::MAX);
        let row: Row = (0..1000).map(Value::Int).collect();
        let mut pushed = 0;
        while !b.push(row.clone()) {
            pushed += 1;
        }
        assert_eq!(
            pushed + 1,
            MAX_PLACEHOLDERS / 1000,
            "65 535 placeholders at most"
        );

        let t = plan(&[
            ("id", "int", ColumnKind::Int { unsigned: false }),
            ("b", "blob", ColumnKind::Binary),
        ]);
        let mut b = PreparedBuilder::new(&t, InsertMode::Insert, 1000, 100);
        let big = vec![Value::Int(1), Value::Bytes(vec![0; 60])];
        assert!(!b.would_overflow(&big), "an empty statement takes any row");
        assert!(!b.push(big.clone()));
        assert!(b.would_overflow(&big), "a second row would pass 100 bytes");
    }
}
