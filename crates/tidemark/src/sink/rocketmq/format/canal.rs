//! Canal's FlatMessage JSON, field for field, so Canal consumers work unchanged:
//! `id`, `database`, `table`, `pkNames`, `isDdl`, `type`, `es`, `ts`, `sql`, `sqlType`,
//! `mysqlType`, `data`, `old`, `gtid`. Every value is a string (or null) as Canal renders
//! it (alibaba/canal `RowsLogBuffer.fetchValue` and `LogEventConvert.parseOneRow`):
//! ENUM as its index and SET as its bitmask (or their members, `enum_set = "text"`),
//! FLOAT/DOUBLE as Java prints them, TIMESTAMP in the configured zone, and `sqlType` per
//! value with unsigned values widened. `format/golden.rs` checks each type.
//!
//! `id` is the source position as one number (binlog file number × 2^32 + the
//! transaction's end offset; 0 for copied rows), so it grows with the source's history.

use super::{
    columns, java_double, java_float, key_names, push_json_str, shift, text, CanalOptions,
    DdlEvent, EnumSet, Op, Origin, RowEvent,
};
use crate::transform::ddl::{Kind, Statement};
use std::fmt::Write;
use tidemark_core::{ColumnDef, ColumnKind, Value};

/// The Canal message id of a position: file number × 2^32 + offset.
pub fn id(origin: &Origin<'_>) -> u64 {
    origin.position.map_or(0, |p| {
        let seq: u64 = p
            .file
            .rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (seq << 32) | (p.offset & 0xffff_ffff)
    })
}

/// `java.sql.Types` of a column's value, as Canal reports it: the type its
/// `RowsLogBuffer.mysqlToJavaType`/`fetchValue` gives the binlog column, then
/// `LogEventConvert.parseOneRow`'s changes (unsigned values above the signed maximum
/// widened one step, BINARY/VARBINARY/BLOB/GEOMETRY as BLOB 2004, TEXT types as CLOB
/// 2005). Per value, as Canal's is: a NULL is never widened, and a NULL SET is a BLOB.
pub fn sql_type(c: &ColumnDef, v: &Value, enum_set: EnumSet) -> i32 {
    let t = c.column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match c.kind {
        ColumnKind::Int { unsigned } => {
            let big = |max: u64| unsigned && matches!(v, Value::UInt(u) if *u > max);
            match base {
                "tinyint" if big(i8::MAX as u64) => 5,
                "tinyint" => -6,
                "smallint" if big(i16::MAX as u64) => 4,
                "smallint" => 5,
                "bigint" if big(i64::MAX as u64) => 3,
                "bigint" => -5,
                "mediumint" => 4,
                _ if big(i32::MAX as u64) => -5,
                _ => 4,
            }
        }
        ColumnKind::Float => 7,
        ColumnKind::Double => 8,
        ColumnKind::Decimal => 3,
        ColumnKind::Text => match base {
            "char" => 1,
            // `LogEventConvert.isText`: exactly these four are CLOBs.
            "tinytext" | "text" | "mediumtext" | "longtext" => 2005,
            _ => 12,
        },
        ColumnKind::Binary | ColumnKind::Geometry => 2004,
        ColumnKind::Enum if enum_set == EnumSet::Number => 4,
        ColumnKind::Set if enum_set == EnumSet::Number => {
            if v.is_null() {
                2004
            } else {
                -7
            }
        }
        ColumnKind::Enum | ColumnKind::Set => 12,
        ColumnKind::Bit => -7,
        ColumnKind::Json => 12,
        ColumnKind::Date => 91,
        ColumnKind::Time => 92,
        ColumnKind::DateTime | ColumnKind::Timestamp => 93,
        ColumnKind::Year => 12,
        // java.sql.Types.OTHER, Canal's type for a binlog type it does not know.
        ColumnKind::Other => 1111,
    }
}

/// A value as Canal's text (`None` for NULL): ENUM as its index and SET as its bitmask
/// (or their members with [`EnumSet::Text`]), FLOAT/DOUBLE as Java prints them,
/// TIMESTAMP at the configured offset; everything else as [`text`].
pub fn value_text(v: &Value, c: &ColumnDef, o: &CanalOptions) -> Option<String> {
    match (v, c.kind) {
        (Value::UInt(u), ColumnKind::Enum | ColumnKind::Set) if o.enum_set == EnumSet::Number => {
            Some(u.to_string())
        }
        (Value::Float(f), _) => Some(java_float(*f)),
        (Value::Double(d), _) => Some(java_double(*d)),
        (Value::DateTime(d), ColumnKind::Timestamp) if o.utc_offset != 0 => {
            text(&Value::DateTime(shift(d, i64::from(o.utc_offset))), c)
        }
        _ => text(v, c),
    }
}

fn head(out: &mut String, origin: &Origin<'_>, database: &str, table: &str) {
    let _ = write!(out, "{{\"id\":{},\"database\":", id(origin));
    push_json_str(out, database);
    out.push_str(",\"table\":");
    push_json_str(out, table);
}

fn push_image(
    out: &mut String,
    cols: &[(&str, &ColumnDef)],
    row: &[Value],
    only: Option<&[bool]>,
    o: &CanalOptions,
) {
    out.push('{');
    let mut first = true;
    for (i, ((name, def), v)) in cols.iter().zip(row).enumerate() {
        if only.is_some_and(|o| !o[i]) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(out, name);
        out.push(':');
        match value_text(v, def, o) {
            Some(s) => push_json_str(out, &s),
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

fn push_gtid(out: &mut String, origin: &Origin<'_>) {
    out.push_str(",\"gtid\":");
    // Canal's `gtid` is the executed GTID set after the event (`LogHeader.getGtidSetStr`),
    // and the empty string without GTIDs (the protobuf default).
    push_json_str(
        out,
        origin
            .position
            .and_then(|p| p.gtid.as_deref())
            .unwrap_or(""),
    );
}

pub fn row(ev: &RowEvent<'_>, o: &CanalOptions) -> Vec<u8> {
    let t = ev.table;
    let cols = columns(t);
    let mut out = String::with_capacity(256);
    head(&mut out, &ev.origin, &t.target.database, &t.target.table);
    out.push_str(",\"pkNames\":");
    let keys = key_names(t);
    if keys.is_empty() {
        out.push_str("null");
    } else {
        out.push('[');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, k);
        }
        out.push(']');
    }
    let kind = match ev.op {
        Op::Insert => "INSERT",
        Op::Update => "UPDATE",
        Op::Delete => "DELETE",
    };
    let _ = write!(
        out,
        ",\"isDdl\":false,\"type\":\"{kind}\",\"es\":{},\"ts\":{},\"sql\":\"\",\"sqlType\":{{",
        ev.origin.source_ms, ev.origin.built_ms
    );
    let image = match ev.op {
        Op::Delete => ev.before,
        _ => ev.after,
    };
    for (i, (name, def)) in cols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        let v = image.and_then(|r| r.get(i)).unwrap_or(&Value::Null);
        let _ = write!(out, ":{}", sql_type(def, v, o.enum_set));
    }
    out.push_str("},\"mysqlType\":{");
    for (i, (name, def)) in cols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        out.push(':');
        push_json_str(&mut out, &def.column_type);
    }
    out.push_str("},\"data\":[");
    if let Some(r) = image {
        push_image(&mut out, &cols, r, None, o);
    }
    out.push_str("],\"old\":");
    match (ev.op, ev.before, ev.after) {
        (Op::Update, Some(b), Some(a)) => {
            out.push('[');
            if o.full_before_image {
                push_image(&mut out, &cols, b, None, o);
            } else {
                let changed: Vec<bool> = b.iter().zip(a).map(|(x, y)| x != y).collect();
                push_image(&mut out, &cols, b, Some(&changed), o);
            }
            out.push(']');
        }
        _ => out.push_str("null"),
    }
    push_gtid(&mut out, &ev.origin);
    out.push('}');
    out.into_bytes()
}

/// Canal's `type` for a DDL statement, as `DruidDdlParser.parse` decides it (the first
/// result's type, which `LogEventConvert.parseQueryEvent` keeps): an ALTER TABLE whose
/// first change adds an index, key or unique/primary constraint is CINDEX, one that drops
/// an index, key or constraint DINDEX, one that renames the table RENAME.
pub fn ddl_type(statement: &str) -> &'static str {
    match Statement::parse(statement).kind {
        Kind::CreateTable => "CREATE",
        Kind::AlterTable => alter_type(statement),
        Kind::DropTable => "ERASE",
        Kind::RenameTable => "RENAME",
        Kind::TruncateTable => "TRUNCATE",
        Kind::CreateIndex => "CINDEX",
        Kind::DropIndex => "DINDEX",
        _ => "QUERY",
    }
}

/// The first change of an ALTER TABLE, by its leading words.
fn alter_type(statement: &str) -> &'static str {
    let words: Vec<String> = statement
        .split_whitespace()
        .map(|w| w.trim_end_matches(',').to_ascii_uppercase())
        .collect();
    let Some(at) = words.iter().position(|w| w == "TABLE") else {
        return "ALTER";
    };
    // The table's name is one word unless written with spaces around a dot.
    let mut rest = &words[(at + 2).min(words.len())..];
    while rest.first().is_some_and(|w| w == "." || w.starts_with('.')) {
        rest = &rest[(if rest[0] == "." { 2 } else { 1 }).min(rest.len())..];
    }
    let w = |i: usize| rest.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1)) {
        ("ADD", "INDEX" | "KEY" | "UNIQUE" | "FULLTEXT" | "SPATIAL" | "PRIMARY") => "CINDEX",
        // `ADD CONSTRAINT [name] UNIQUE|PRIMARY ...`: a SQLUnique.
        ("ADD", "CONSTRAINT")
            if ["UNIQUE", "PRIMARY"].contains(&w(2)) || ["UNIQUE", "PRIMARY"].contains(&w(3)) =>
        {
            "CINDEX"
        }
        ("DROP", "INDEX" | "KEY" | "CONSTRAINT") => "DINDEX",
        ("RENAME", "COLUMN" | "INDEX" | "KEY") => "ALTER",
        ("RENAME", _) => "RENAME",
        _ => "ALTER",
    }
}

pub fn ddl(ev: &DdlEvent<'_>) -> Vec<u8> {
    let kind = ddl_type(ev.statement);
    // A RENAME's `table` is the new name (`DruidDdlParser` sets the table from the
    // rename's target, the source from the old name).
    let renamed = (kind == "RENAME")
        .then(|| {
            Statement::parse(ev.statement)
                .tables
                .get(1)
                .map(|n| n.name.clone())
        })
        .flatten();
    let mut out = String::with_capacity(128 + ev.statement.len());
    head(
        &mut out,
        &ev.origin,
        ev.database,
        renamed.as_deref().or(ev.table).unwrap_or(""),
    );
    let _ = write!(
        out,
        ",\"pkNames\":null,\"isDdl\":true,\"type\":\"{kind}\",\"es\":{},\"ts\":{},\"sql\":",
        ev.origin.source_ms, ev.origin.built_ms
    );
    push_json_str(&mut out, ev.statement);
    out.push_str(",\"sqlType\":null,\"mysqlType\":null,\"data\":null,\"old\":null");
    push_gtid(&mut out, &ev.origin);
    out.push('}');
    out.into_bytes()
}
