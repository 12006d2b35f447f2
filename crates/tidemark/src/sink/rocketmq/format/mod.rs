//! Message bodies: one row change or DDL statement rendered in the task's `format`.
//!
//! * [`canal`]: Canal's FlatMessage JSON, field for field and value for value.
//! * [`debezium`]: a Debezium-style JSON envelope (`before`, `after`, `source`, `op`).
//! * [`avro`]: one Avro binary record per message, with Tidemark's own versioned schema
//!   ([`avro::SCHEMA`], published in `docs/rocketmq.md`).
//! * [`dts_avro`]: the reference's subscription record, `com.alibaba.dts.formats.avro.
//!   Record` ([`dts_avro::SCHEMA`]).
//!
//! Every format renders a value without loss; `docs/rocketmq.md` lists each type's form.
//! Rows here hold the columns of [`sent`] (every selected column, generated ones too), in
//! table order, under their destination names.

pub mod avro;
pub mod canal;
pub mod debezium;
pub mod dts_avro;
#[cfg(test)]
mod golden;

use crate::config::MessageFormat;
use crate::source::binlog::stream::EventInfo;
use crate::transform::mapping::TablePlan;
use std::borrow::Cow;
use tidemark_core::{ColumnDef, ColumnKind, Position, Value};

/// What a row message says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// Where a change comes from: what consumers deduplicate and order by.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// End of the source transaction (`None` for rows of the full copy).
    pub position: Option<&'a Position>,
    /// The transaction's own GTID, when the source has GTIDs.
    pub gtid: Option<&'a str>,
    /// The change's place in its transaction (0-based).
    pub index: u32,
    /// Source commit time, or the read time of a copied row (ms since the epoch).
    pub source_ms: u64,
    /// When the message was built (ms since the epoch).
    pub built_ms: u64,
    /// The binlog event the change is in (DDL: its QUERY event), when known.
    pub event: Option<&'a EventInfo>,
    /// The row's index in its rows event (Debezium's `source.row`).
    pub row: u32,
    /// The transaction's session (MySQL's BEGIN) and where its first event starts.
    pub thread: Option<u32>,
    pub begin: u64,
    /// The change's order in its transaction, overall and in its table (1-based, as
    /// Debezium's `transaction.total_order`/`data_collection_order`); `None` outside
    /// transactions.
    pub order: Option<(u64, u64)>,
}

impl<'a> Origin<'a> {
    /// A change of the binlog transaction ending at `position`, built now.
    pub fn binlog(position: Option<&'a Position>, index: u32, source_ms: u64) -> Origin<'a> {
        Origin {
            position,
            gtid: None,
            index,
            source_ms,
            built_ms: crate::sink::rocketmq::client::now_ms(),
            event: None,
            row: 0,
            thread: None,
            begin: 0,
            order: None,
        }
    }

    /// The same origin, in `event` at row `row`.
    pub fn in_event(self, event: Option<&'a EventInfo>, row: u32) -> Origin<'a> {
        Origin { event, row, ..self }
    }

    /// The same origin, naming the transaction's GTID.
    pub fn with_gtid(self, gtid: Option<&'a str>) -> Origin<'a> {
        Origin { gtid, ..self }
    }

    /// A row of a copy read at `read_ms`, built now.
    pub fn snapshot(read_ms: u64) -> Origin<'a> {
        Origin::binlog(None, 0, read_ms)
    }
}

/// One row change, with images projected to the copied columns.
pub struct RowEvent<'a> {
    pub table: &'a TablePlan,
    pub op: Op,
    pub before: Option<&'a [Value]>,
    pub after: Option<&'a [Value]>,
    /// A row of the full copy (an insert).
    pub snapshot: bool,
    pub origin: Origin<'a>,
}

impl<'a> RowEvent<'a> {
    /// A row of a copy (full migration, or a table copied in mid-stream).
    pub fn snapshot(table: &'a TablePlan, row: &'a [Value], read_ms: u64) -> RowEvent<'a> {
        RowEvent {
            table,
            op: Op::Insert,
            before: None,
            after: Some(row),
            snapshot: true,
            origin: Origin::snapshot(read_ms),
        }
    }
}

/// One DDL statement (already rewritten to destination names).
pub struct DdlEvent<'a> {
    pub database: &'a str,
    /// The first table it names, if any.
    pub table: Option<&'a str>,
    pub statement: &'a str,
    /// The table's definition after the statement, when it names one that exists
    /// (Debezium's `tableChanges`).
    pub definition: Option<&'a tidemark_core::TableDef>,
    pub origin: Origin<'a>,
}

/// How Canal JSON renders ENUM and SET values (`destination.enum_set`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnumSet {
    /// Canal's form: the ENUM member's index (sqlType 4), the SET's bitmask (sqlType -7).
    #[default]
    Number,
    /// The member text (`b`, `p,q`), sqlType 12.
    Text,
}

/// Canal JSON settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct CanalOptions {
    /// `old` holds every column, not only the changed ones.
    pub full_before_image: bool,
    pub enum_set: EnumSet,
    /// TIMESTAMP values are rendered at this offset from UTC (seconds), as Canal renders
    /// them in its JVM's time zone.
    pub utc_offset: i32,
}

/// Renders events in one format.
#[derive(Clone, Debug)]
pub struct Encoder {
    pub format: MessageFormat,
    pub canal: CanalOptions,
    pub debezium: debezium::Options,
    /// `source.name` in Debezium envelopes: the task's name.
    pub task: String,
}

impl Encoder {
    pub fn row(&self, ev: &RowEvent<'_>) -> Vec<u8> {
        match self.format {
            MessageFormat::CanalJson => canal::row(ev, &self.canal),
            MessageFormat::DebeziumJson => debezium::row(ev, &self.task, &self.debezium),
            MessageFormat::Avro => avro::row(ev),
            MessageFormat::DtsAvro => dts_avro::row(ev),
        }
    }

    pub fn ddl(&self, ev: &DdlEvent<'_>) -> Vec<u8> {
        match self.format {
            MessageFormat::CanalJson => canal::ddl(ev),
            MessageFormat::DebeziumJson => debezium::ddl(ev, &self.task, &self.debezium),
            MessageFormat::Avro => avro::ddl(ev),
            MessageFormat::DtsAvro => dts_avro::ddl(ev),
        }
    }
}

/// Positions (in the table's definition) of the columns a message carries: every
/// selected column in table order, generated ones too, since Canal and Debezium send
/// the binlog's value of a generated column (alibaba/canal `LogEventConvert.parseOneRow`
/// takes every column the row image holds; MySQL and MariaDB log generated columns'
/// values with `binlog_row_image = FULL`).
pub fn sent(t: &TablePlan) -> Vec<usize> {
    t.def()
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| t.columns.contains_key(&c.name))
        .map(|(i, _)| i)
        .collect()
}

/// The same table planned to read the columns messages carry ([`sent`]).
pub fn sent_plan(t: &TablePlan) -> Cow<'_, TablePlan> {
    let s = sent(t);
    if s == t.copied {
        return Cow::Borrowed(t);
    }
    let mut p = t.clone();
    p.copied = s;
    Cow::Owned(p)
}

/// The destination names of the columns a message carries, with their definitions.
pub fn columns(t: &TablePlan) -> Vec<(&str, &ColumnDef)> {
    sent(t)
        .into_iter()
        .map(|i| &t.def().columns[i])
        .map(|c| (t.columns[&c.name].as_str(), c))
        .collect()
}

/// Destination names of the key columns (empty for a keyless table).
pub fn key_names(t: &TablePlan) -> Vec<&str> {
    let def = t.def();
    def.key
        .iter()
        .flatten()
        .filter_map(|&i| t.columns.get(&def.columns[i].name).map(String::as_str))
        .collect()
}

/// Fractional-second digits of a temporal column type, e.g. 3 for `datetime(3)`.
pub fn fsp(column_type: &str) -> usize {
    column_type
        .split_once('(')
        .and_then(|(_, r)| r.split(')').next())
        .and_then(|d| d.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(6)
}

fn fraction(micros: u32, digits: usize) -> String {
    if digits == 0 {
        return String::new();
    }
    let v = micros / 10u32.pow(6 - digits as u32);
    format!(".{v:0digits$}")
}

/// Members of an ENUM or SET column type: `enum('a','b''c')` → `["a", "b'c"]`.
pub fn members(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[start + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut m = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    m.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        m.push(n);
                    }
                }
                c => m.push(c),
            }
        }
        out.push(m);
    }
    out
}

/// Text of a column's value in its character set, as UTF-8.
pub fn decode_text<'b>(bytes: &'b [u8], charset: Option<&str>) -> Cow<'b, str> {
    let cs = charset.unwrap_or("utf8mb4").to_ascii_lowercase();
    let encoding = match cs.as_str() {
        "utf8" | "utf8mb3" | "utf8mb4" | "ascii" | "binary" => None,
        "latin1" => Some(encoding_rs::WINDOWS_1252),
        "ucs2" | "utf16" => Some(encoding_rs::UTF_16BE),
        "utf16le" => Some(encoding_rs::UTF_16LE),
        "utf32" => {
            let text: String = bytes
                .chunks(4)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b[4 - c.len()..].copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(b)).unwrap_or('\u{fffd}')
                })
                .collect();
            return Cow::Owned(text);
        }
        other => encoding_rs::Encoding::for_label(mysql_label(other).as_bytes()),
    };
    match encoding {
        None => String::from_utf8_lossy(bytes),
        Some(e) => {
            let (text, _) = e.decode_without_bom_handling(bytes);
            text
        }
    }
}

/// MySQL character set names that differ from the WHATWG labels.
fn mysql_label(cs: &str) -> &str {
    match cs {
        "gbk" | "gb2312" => "gbk",
        "gb18030" => "gb18030",
        "sjis" | "cp932" => "shift_jis",
        "ujis" | "eucjpms" => "euc-jp",
        "euckr" => "euc-kr",
        "big5" => "big5",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "latin2" => "iso-8859-2",
        "latin5" => "iso-8859-9",
        "latin7" => "iso-8859-13",
        "tis620" => "windows-874",
        other => other,
    }
}

/// Bytes as ISO-8859-1 text, one character per byte (Canal's form for binary columns).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The text form of a value (`None` for NULL): what Canal JSON carries, and what the
/// other formats use for types JSON and Avro have no native form for.
pub fn text(v: &Value, col: &ColumnDef) -> Option<String> {
    Some(match (v, col.kind) {
        (Value::Null, _) => return None,
        (Value::Int(i), ColumnKind::Year) => format!("{i:04}"),
        (Value::Int(i), _) => i.to_string(),
        (Value::UInt(u), ColumnKind::Enum) => {
            let m = members(&col.column_type);
            match *u {
                0 => String::new(),
                n => m.get(n as usize - 1).cloned().unwrap_or_default(),
            }
        }
        (Value::UInt(u), ColumnKind::Set) => {
            let m = members(&col.column_type);
            m.iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && u & (1u64 << i) != 0)
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }
        (Value::UInt(u), _) | (Value::Bit(u), _) => u.to_string(),
        (Value::Float(f), _) => f.to_string(),
        (Value::Double(d), _) => d.to_string(),
        (Value::Decimal(s), _) => s.clone(),
        (Value::Bytes(b), ColumnKind::Text) => decode_text(b, col.charset.as_deref()).into_owned(),
        (Value::Bytes(b), ColumnKind::Other) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => latin1(b),
        },
        (Value::Bytes(b), _) => latin1(b),
        (Value::Json(b), _) => String::from_utf8_lossy(b).into_owned(),
        (Value::Date(d), _) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        (Value::DateTime(d), _) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}",
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second,
            fraction(d.micros, fsp(&col.column_type))
        ),
        (Value::Time(t), _) => format!(
            "{}{:02}:{:02}:{:02}{}",
            if t.negative { "-" } else { "" },
            t.hours,
            t.minutes,
            t.seconds,
            fraction(t.micros, fsp(&col.column_type))
        ),
    })
}

/// A DATETIME moved by `secs` seconds (a UTC TIMESTAMP shown at an offset); the zero
/// date stays zero.
pub fn shift(d: &tidemark_core::DateTime, secs: i64) -> tidemark_core::DateTime {
    if d.year == 0 || d.month == 0 || d.day == 0 {
        return *d;
    }
    // Howard Hinnant's days-from-civil, the inverse of `DateTime::from_unix`.
    let (y, m) = (i64::from(d.year), i64::from(d.month));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix =
        days * 86_400 + i64::from(d.hour) * 3600 + i64::from(d.minute) * 60 + i64::from(d.second);
    tidemark_core::DateTime::from_unix(unix + secs, d.micros)
}

/// A double as Java's `Double.toString` prints it (what Canal sends): the shortest
/// digits that read back to the same value, in plain notation from 10^-3 up to 10^7
/// with at least one fractional digit (`1.0`, `0.001`), in computerized scientific
/// notation otherwise (`1.0E7`, `1.5E-4`).
pub fn java_double(v: f64) -> String {
    let a = v.abs();
    java_number(
        v == 0.0,
        v.is_sign_negative(),
        &format!("{a:e}"),
        &format!("{a:.1e}"),
    )
}

/// A float as Java's `Float.toString` prints it: as [`java_double`], with the shortest
/// digits of the 32-bit value.
pub fn java_float(v: f32) -> String {
    let a = v.abs();
    java_number(
        v == 0.0,
        v.is_sign_negative(),
        &format!("{a:e}"),
        &format!("{a:.1e}"),
    )
}

/// `sci`: the shortest round-trip digits; `two`: the value rounded to two digits, which
/// Java prints when the shortest has one digit in scientific notation (it always
/// prints a fractional digit there and picks the closest such digit: `4.9E-324`, where
/// the shortest is `5e-324`).
fn java_number(zero: bool, negative: bool, sci: &str, two: &str) -> String {
    let sign = if negative { "-" } else { "" };
    if zero {
        return format!("{sign}0.0");
    }
    // `sci` is Rust's shortest round-trip form: `d[.ddd]e[-]x`.
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-3..7).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            let int: String = if digits.len() >= point {
                digits[..point].to_string()
            } else {
                format!("{digits:0<point$}")
            };
            let frac = digits.get(point..).filter(|f| !f.is_empty()).unwrap_or("0");
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let digits = if digits.len() == 1 {
            let (m, e) = two.split_once('e').unwrap_or((two, "0"));
            if e.parse::<i32>().ok() == Some(exp) {
                m.chars().filter(char::is_ascii_digit).collect()
            } else {
                digits
            }
        } else {
            digits
        };
        let frac = digits.get(1..).filter(|f| !f.is_empty()).unwrap_or("0");
        format!("{sign}{}.{frac}E{exp}", &digits[..1])
    }
}

/// A stable hash of a table (`database.table`) and values, for choosing a queue: the
/// same key lands on the same queue in every run and on every machine.
pub fn stable_hash<'v>(
    database: &str,
    table: &str,
    values: impl Iterator<Item = &'v Value>,
) -> u64 {
    let mut h = tidemark_core::hash::Fnv1a::default();
    h.write(database.as_bytes());
    h.write(b".");
    h.write(table.as_bytes());
    let date = |h: &mut tidemark_core::hash::Fnv1a, d: &tidemark_core::DateTime| {
        h.write(&d.year.to_le_bytes());
        h.write(&[d.month, d.day, d.hour, d.minute, d.second]);
        h.write(&d.micros.to_le_bytes());
    };
    for v in values {
        h.write(&[0xff]);
        match v {
            Value::Null => h.write(b"\0null"),
            Value::Int(i) => h.write(&i.to_le_bytes()),
            Value::UInt(u) | Value::Bit(u) => h.write(&u.to_le_bytes()),
            Value::Float(f) => h.write(&f.to_le_bytes()),
            Value::Double(d) => h.write(&d.to_le_bytes()),
            Value::Decimal(s) => h.write(s.as_bytes()),
            Value::Bytes(b) | Value::Json(b) => h.write(b),
            Value::Date(d) | Value::DateTime(d) => date(&mut h, d),
            Value::Time(t) => {
                h.write(&[u8::from(t.negative), t.minutes, t.seconds]);
                h.write(&t.hours.to_le_bytes());
                h.write(&t.micros.to_le_bytes());
            }
        }
    }
    h.finish()
}

/// JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_members_unquote() {
        assert_eq!(members("enum('a','b''c','')"), vec!["a", "b'c", ""]);
        assert_eq!(members("set('x','y')"), vec!["x", "y"]);
    }

    #[test]
    fn fractions_follow_the_column() {
        assert_eq!(fsp("datetime(3)"), 3);
        assert_eq!(fsp("timestamp"), 0);
        assert_eq!(fraction(123_456, 3), ".123");
        assert_eq!(fraction(5, 6), ".000005");
    }

    #[test]
    fn timestamps_shift_by_the_offset() {
        let d = tidemark_core::DateTime::from_unix(1_700_000_000, 12);
        let back = shift(&shift(&d, 8 * 3600), -8 * 3600);
        assert_eq!(back, d);
        assert_eq!(shift(&d, 3600).hour, (d.hour + 1) % 24);
        assert_eq!(
            shift(&tidemark_core::DateTime::ZERO, 3600),
            tidemark_core::DateTime::ZERO
        );
    }

    /// Expectations from the JDK's `Double.toString`/`Float.toString` specification
    /// (java.lang.Double javadoc: plain for 10^-3 <= |d| < 10^7, else "computerized
    /// scientific notation"), the rendering Canal's `LogEventConvert` uses through
    /// `String.valueOf(value)` for REAL and DOUBLE columns.
    #[test]
    fn numbers_print_as_java_does() {
        for (v, want) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.0e7, "1.0E7"),
            (9_999_999.0, "9999999.0"),
            (1.0e10, "1.0E10"),
            (-1.5e-5, "-1.5E-5"),
            (123.456, "123.456"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1.7976931348623157e308, "1.7976931348623157E308"),
            (4.9e-324, "4.9E-324"),
        ] {
            assert_eq!(java_double(v), want, "{v:e}");
        }
        for (v, want) in [
            (1.25f32, "1.25"),
            (0.1f32, "0.1"),
            (3.4028235e38f32, "3.4028235E38"),
            (1.0e-3f32, "0.001"),
            (16_777_216.0f32, "1.6777216E7"),
        ] {
            assert_eq!(java_float(v), want, "{v:e}");
        }
    }

    #[test]
    fn charsets_decode() {
        assert_eq!(decode_text(&[0xe9], Some("latin1")), "é");
        assert_eq!(decode_text(&[0xc4, 0xe3], Some("gbk")), "你");
        assert_eq!(decode_text(&[0, 0x41], Some("ucs2")), "A");
        assert_eq!(decode_text(&[0, 1, 0xf6, 0x00], Some("utf32")), "😀");
    }
}
