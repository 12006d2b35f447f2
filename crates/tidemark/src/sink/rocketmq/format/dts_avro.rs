//! `format = "dts-avro"`: the reference's subscription record,
//! `com.alibaba.dts.formats.avro.Record`, one Avro binary record per message, so
//! consumers built on its subscription SDK decode our messages unchanged.
//!
//! [`SCHEMA`] is recreated from the SDK's generated classes (aliyun/
//! aliyun-dts-subscribe-sdk-java `src/main/java/com/aliyun/dts/subscribe/clients/
//! formats/avro/Record.java`, `SCHEMA$`), field for field and branch for branch in the
//! same order (Avro's binary form depends on both), without the Java-only
//! `avro.java.string` properties and the `doc` strings. Values take the branches the
//! SDK's `DefaultValueDeserializer` reads: integers as `Integer` (decimal text), DECIMAL
//! as `Decimal`, FLOAT/DOUBLE as `Float`, TIMESTAMP as `Timestamp` (seconds and
//! microseconds: the SDK's `UnixTimestamp.setMicro(millis)`), DATE/DATETIME/TIME/YEAR as
//! `DateTime` (its `millis` is microseconds: `setNaons(millis * 1000)`), text as
//! `Character` (raw bytes and the MySQL charset name, which the SDK maps with
//! `JDKCharsetMapper`), binary as `BinaryObject`, JSON/ENUM/SET as `TextObject` (types
//! from the SDK's `ObjectType`), geometry as `BinaryGeometry` (WKB). The key is in
//! `tags["pk_uk_info"]` as `AvroRecordParser.getPrimaryAndUniqueKeyNames` reads it.

use super::avro::W;
use super::{columns, key_names, text, DdlEvent, Op, Origin, RowEvent};
use tidemark_core::{ColumnDef, ColumnKind, Value};

/// The reference's `Record` schema (see the module doc for where it comes from).
pub const SCHEMA: &str = r#"{"type": "record", "name": "Record", "namespace": "com.alibaba.dts.formats.avro", "fields": [
  {"name": "version", "type": "int"},
  {"name": "id", "type": "long"},
  {"name": "sourceTimestamp", "type": "long"},
  {"name": "sourcePosition", "type": "string"},
  {"name": "safeSourcePosition", "type": "string", "default": ""},
  {"name": "sourceTxid", "type": "string", "default": ""},
  {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
    {"name": "sourceType", "type": {"type": "enum", "name": "SourceType", "symbols": ["MySQL", "Oracle", "SQLServer", "PostgreSQL", "MongoDB", "Redis", "DB2", "PPAS", "DRDS", "HBASE", "HDFS", "FILE", "OTHER"]}},
    {"name": "version", "type": "string"}]}},
  {"name": "operation", "type": {"type": "enum", "name": "Operation", "symbols": ["INSERT", "UPDATE", "DELETE", "DDL", "BEGIN", "COMMIT", "ROLLBACK", "ABORT", "HEARTBEAT", "CHECKPOINT", "COMMAND", "FILL", "FINISH", "CONTROL", "RDB", "NOOP", "INIT"]}},
  {"name": "objectName", "type": ["null", "string"], "default": null},
  {"name": "processTimestamps", "type": ["null", {"type": "array", "items": "long"}], "default": null},
  {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
  {"name": "fields", "type": ["null", "string", {"type": "array", "items": {"type": "record", "name": "Field", "fields": [
    {"name": "name", "type": "string"},
    {"name": "dataTypeNumber", "type": "int"}]}}], "default": null},
  {"name": "beforeImages", "type": ["null", "string", {"type": "array", "items": ["null",
    {"type": "record", "name": "Integer", "fields": [{"name": "precision", "type": "int"}, {"name": "value", "type": "string"}]},
    {"type": "record", "name": "Character", "fields": [{"name": "charset", "type": "string"}, {"name": "value", "type": "bytes"}]},
    {"type": "record", "name": "Decimal", "fields": [{"name": "value", "type": "string"}, {"name": "precision", "type": "int"}, {"name": "scale", "type": "int"}]},
    {"type": "record", "name": "Float", "fields": [{"name": "value", "type": "double"}, {"name": "precision", "type": "int"}, {"name": "scale", "type": "int"}]},
    {"type": "record", "name": "Timestamp", "fields": [{"name": "timestamp", "type": "long"}, {"name": "millis", "type": "int"}]},
    {"type": "record", "name": "DateTime", "fields": [
      {"name": "year", "type": ["null", "int"], "default": null},
      {"name": "month", "type": ["null", "int"], "default": null},
      {"name": "day", "type": ["null", "int"], "default": null},
      {"name": "hour", "type": ["null", "int"], "default": null},
      {"name": "minute", "type": ["null", "int"], "default": null},
      {"name": "second", "type": ["null", "int"], "default": null},
      {"name": "millis", "type": ["null", "int"], "default": null}]},
    {"type": "record", "name": "TimestampWithTimeZone", "fields": [{"name": "value", "type": "DateTime"}, {"name": "timezone", "type": "string"}]},
    {"type": "record", "name": "BinaryGeometry", "fields": [{"name": "type", "type": "string"}, {"name": "value", "type": "bytes"}]},
    {"type": "record", "name": "TextGeometry", "fields": [{"name": "type", "type": "string"}, {"name": "value", "type": "string"}]},
    {"type": "record", "name": "BinaryObject", "fields": [{"name": "type", "type": "string"}, {"name": "value", "type": "bytes"}]},
    {"type": "record", "name": "TextObject", "fields": [{"name": "type", "type": "string"}, {"name": "value", "type": "string"}]},
    {"type": "enum", "name": "EmptyObject", "symbols": ["NULL", "NONE"]}]}], "default": null},
  {"name": "afterImages", "type": ["null", "string", {"type": "array", "items": ["null", "Integer", "Character", "Decimal", "Float", "Timestamp", "DateTime", "TimestampWithTimeZone", "BinaryGeometry", "TextGeometry", "BinaryObject", "TextObject", "EmptyObject"]}], "default": null}
]}"#;

/// Branches of an image value's union, in the schema's order.
mod branch {
    pub const NULL: i64 = 0;
    pub const INTEGER: i64 = 1;
    pub const CHARACTER: i64 = 2;
    pub const DECIMAL: i64 = 3;
    pub const FLOAT: i64 = 4;
    pub const TIMESTAMP: i64 = 5;
    pub const DATETIME: i64 = 6;
    pub const BINARY_GEOMETRY: i64 = 8;
    pub const BINARY_OBJECT: i64 = 10;
    pub const TEXT_OBJECT: i64 = 11;
}

fn base(c: &ColumnDef) -> String {
    let t = c.column_type.to_ascii_lowercase();
    t.split(['(', ' ']).next().unwrap_or("").to_string()
}

/// `(M, D)` of a column type such as `decimal(20,6)`.
fn precision_scale(c: &ColumnDef) -> Option<(i64, i64)> {
    let inner = c.column_type.split_once('(')?.1.split(')').next()?;
    let (m, d) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((m.trim().parse().ok()?, d.trim().parse().ok()?))
}

/// MySQL's field type number of a column (`enum_field_types`), the `dataTypeNumber`.
pub fn type_number(c: &ColumnDef) -> i64 {
    match base(c).as_str() {
        "tinyint" => 1,
        "smallint" => 2,
        "int" | "integer" => 3,
        "float" => 4,
        "double" | "real" => 5,
        "timestamp" => 7,
        "bigint" => 8,
        "mediumint" => 9,
        "date" => 10,
        "time" => 11,
        "datetime" => 12,
        "year" => 13,
        "bit" => 16,
        "json" => 245,
        "decimal" | "numeric" => 246,
        "enum" => 247,
        "set" => 248,
        "tinytext" | "tinyblob" => 249,
        "mediumtext" | "mediumblob" => 250,
        "longtext" | "longblob" => 251,
        "text" | "blob" => 252,
        "varchar" | "varbinary" => 253,
        "char" | "binary" => 254,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => 255,
        _ => 253,
    }
}

fn opt_int(w: &mut W, v: Option<i64>) {
    match v {
        None => w.long(0),
        Some(v) => {
            w.long(1);
            w.long(v);
        }
    }
}

/// A `DateTime` with the segments given (the SDK sets a segment per non-null field).
fn datetime(
    w: &mut W,
    year: Option<i64>,
    month_day: Option<(i64, i64)>,
    time: Option<(i64, i64, i64)>,
    micros: Option<i64>,
) {
    w.long(branch::DATETIME);
    opt_int(w, year);
    opt_int(w, month_day.map(|d| d.0));
    opt_int(w, month_day.map(|d| d.1));
    opt_int(w, time.map(|t| t.0));
    opt_int(w, time.map(|t| t.1));
    opt_int(w, time.map(|t| t.2));
    opt_int(w, micros);
}

fn value(w: &mut W, v: &Value, c: &ColumnDef) {
    let fsp = super::fsp(&c.column_type);
    match (v, c.kind) {
        (Value::Null, _) => w.long(branch::NULL),
        (Value::Int(i), ColumnKind::Year) => datetime(w, Some(*i), None, None, None),
        (Value::Int(_) | Value::UInt(_), ColumnKind::Int { unsigned }) => {
            w.long(branch::INTEGER);
            let digits = match base(c).as_str() {
                "tinyint" => 3,
                "smallint" => 5,
                "mediumint" => 8,
                "bigint" if unsigned => 20,
                "bigint" => 19,
                _ => 10,
            };
            w.long(digits);
            w.string(&text(v, c).unwrap_or_default());
        }
        (Value::Bit(_), _) => {
            w.long(branch::INTEGER);
            w.long(precision_scale(c).map_or(1, |p| p.0));
            w.string(&text(v, c).unwrap_or_default());
        }
        (Value::Decimal(d), _) => {
            w.long(branch::DECIMAL);
            w.string(d);
            let (m, s) = precision_scale(c).unwrap_or((10, 0));
            w.long(m);
            w.long(s);
        }
        (Value::Float(_) | Value::Double(_), _) => {
            let f = match v {
                Value::Float(f) => f64::from(*f),
                Value::Double(d) => *d,
                _ => 0.0,
            };
            w.long(branch::FLOAT);
            w.0.extend_from_slice(&f.to_le_bytes());
            // Binary digits of the type, and no fixed scale (-1), unless declared (M,D).
            let (m, s) = precision_scale(c)
                .unwrap_or((if c.kind == ColumnKind::Float { 24 } else { 53 }, -1));
            w.long(m);
            w.long(s);
        }
        (Value::DateTime(d), ColumnKind::Timestamp) => {
            w.long(branch::TIMESTAMP);
            // The zero TIMESTAMP is 0, as the server stores it.
            w.long(if d.year == 0 { 0 } else { unix_seconds(d) });
            w.long(i64::from(d.micros));
        }
        (Value::DateTime(d), _) => datetime(
            w,
            Some(i64::from(d.year)),
            Some((i64::from(d.month), i64::from(d.day))),
            Some((i64::from(d.hour), i64::from(d.minute), i64::from(d.second))),
            (fsp > 0).then_some(i64::from(d.micros)),
        ),
        (Value::Date(d), _) => datetime(
            w,
            Some(i64::from(d.year)),
            Some((i64::from(d.month), i64::from(d.day))),
            None,
            None,
        ),
        (Value::Time(t), _) => {
            let sign = if t.negative { -1 } else { 1 };
            datetime(
                w,
                None,
                None,
                Some((
                    sign * i64::from(t.hours),
                    i64::from(t.minutes),
                    i64::from(t.seconds),
                )),
                (fsp > 0).then_some(i64::from(t.micros)),
            )
        }
        (Value::Bytes(b), ColumnKind::Text) => {
            w.long(branch::CHARACTER);
            w.string(c.charset.as_deref().unwrap_or("utf8mb4"));
            w.bytes(b);
        }
        (Value::Bytes(b), ColumnKind::Geometry) => {
            w.long(branch::BINARY_GEOMETRY);
            w.string(&base(c).to_ascii_uppercase());
            // The SDK's `WKBGeometry`: WKB, without the server's 4-byte SRID prefix.
            w.bytes(b.get(4..).unwrap_or_default());
        }
        (Value::Bytes(b), ColumnKind::Binary) => {
            w.long(branch::BINARY_OBJECT);
            let blob = base(c).ends_with("blob");
            w.string(if blob { "BLOB" } else { "BINARY" });
            w.bytes(b);
        }
        (_, kind) => {
            // `ObjectType.valueOf(type.toUpperCase())` must know the type.
            let ty = match kind {
                ColumnKind::Json => "JSON",
                ColumnKind::Enum => "ENUM",
                ColumnKind::Set => "SET",
                _ if base(c) == "uuid" => "UUID",
                _ => "TEXT",
            };
            w.long(branch::TEXT_OBJECT);
            w.string(ty);
            w.string(&text(v, c).unwrap_or_default());
        }
    }
}

/// Seconds since the Unix epoch of a UTC date and time.
pub fn unix_seconds(d: &tidemark_core::DateTime) -> i64 {
    (days_from_civil(d) - 719_468) * 86_400
        + i64::from(d.hour) * 3600
        + i64::from(d.minute) * 60
        + i64::from(d.second)
}

/// Days since 0000-03-01 (Howard Hinnant's days-from-civil, before its epoch shift).
fn days_from_civil(d: &tidemark_core::DateTime) -> i64 {
    let (y, m) = (i64::from(d.year), i64::from(d.month));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d.day) - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
}

/// A unique, growing record id: file number, offset and the change's index.
fn id(origin: &Origin<'_>) -> i64 {
    let Some(p) = origin.position else {
        return 0;
    };
    let seq: i64 = p
        .file
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    ((seq & 0xffff) << 47)
        | ((p.offset as i64 & 0x7fff_ffff) << 16)
        | i64::from(origin.index & 0xffff)
}

fn head(w: &mut W, op: i64, object: &str, origin: &Origin<'_>) {
    head_with(w, op, Some(object), origin, id(origin));
}

fn head_with(w: &mut W, op: i64, object: Option<&str>, origin: &Origin<'_>, id: i64) {
    w.long(0); // version
    w.long(id);
    w.long((origin.source_ms / 1000) as i64);
    let position = origin
        .position
        .map(|p| format!("{}:{}", p.file, p.offset))
        .unwrap_or_default();
    w.string(&position);
    w.string(&position);
    // The transaction's id: its GTID.
    w.string(origin.gtid.unwrap_or(""));
    w.long(0); // source.sourceType: MySQL
    w.string("");
    w.long(op);
    match object {
        Some(o) => {
            w.long(1);
            w.string(o);
        }
        None => w.long(0),
    }
    // processTimestamps: when the message was built.
    w.long(1);
    w.long(1);
    w.long(origin.built_ms as i64);
    w.long(0);
}

pub fn row(ev: &RowEvent<'_>) -> Vec<u8> {
    let t = ev.table;
    let mut w = W(Vec::with_capacity(256));
    let op = match ev.op {
        Op::Insert => 0,
        Op::Update => 1,
        Op::Delete => 2,
    };
    head(
        &mut w,
        op,
        &format!("{}.{}", t.target.database, t.target.table),
        &ev.origin,
    );
    let keys = key_names(t);
    if keys.is_empty() {
        w.long(0);
    } else {
        w.long(1);
        w.string("pk_uk_info");
        w.string(&serde_json::json!({ "PRIMARY": keys }).to_string());
        w.long(0);
    }
    let cols = columns(t);
    w.long(2);
    w.long(cols.len() as i64);
    for (name, def) in &cols {
        w.string(name);
        w.long(type_number(def));
    }
    if !cols.is_empty() {
        w.long(0);
    }
    for image in [ev.before, ev.after] {
        match image {
            None => w.long(0),
            Some(r) => {
                w.long(2);
                w.long(r.len() as i64);
                for (v, (_, def)) in r.iter().zip(&cols) {
                    value(&mut w, v, def);
                }
                if !r.is_empty() {
                    w.long(0);
                }
            }
        }
    }
    w.0
}

pub fn ddl(ev: &DdlEvent<'_>) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(128 + ev.statement.len()));
    let object = match ev.table {
        Some(t) => format!("{}.{t}", ev.database),
        None => ev.database.to_string(),
    };
    head(&mut w, 3, &object, &ev.origin);
    w.long(0); // tags: empty map
    w.long(0); // fields: null (the SDK names the DDL's one field "ddl")
    w.long(0); // beforeImages: null
    w.long(1); // afterImages: the statement
    w.string(ev.statement);
    w.0
}

/// The records around a transaction and between them (`dts_control_records`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Before a transaction's first change.
    Begin,
    /// After its last.
    Commit,
    /// The source is idle and was read up to the origin's position.
    Heartbeat,
}

/// A BEGIN, COMMIT or HEARTBEAT record, as the SDK's `AvroRecordParser.getOperationType`
/// reads them (`Operation` BEGIN 4, COMMIT 5, HEARTBEAT 8): no `objectName` (its
/// `getNames(null)` gives no names), no `fields` and no images, the transaction's
/// `sourceTxid`, `sourceTimestamp` and `sourcePosition`. Ids keep growing: a BEGIN takes
/// the position where the transaction starts, a COMMIT (and a HEARTBEAT after it) the
/// last index of its end.
pub fn control(kind: Control, origin: &Origin<'_>) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(96));
    let (op, id) = match kind {
        Control::Begin => {
            let start = origin.position.map(|p| tidemark_core::Position {
                offset: origin.begin,
                ..p.clone()
            });
            let at = Origin {
                position: start.as_ref(),
                index: 0,
                ..*origin
            };
            (4, id(&at))
        }
        Control::Commit => (
            5,
            id(&Origin {
                index: 0xffff,
                ..*origin
            }),
        ),
        Control::Heartbeat => (
            8,
            id(&Origin {
                index: 0xffff,
                ..*origin
            }),
        ),
    };
    head_with(&mut w, op, None, origin, id);
    w.long(0); // tags: empty map
    w.long(0); // fields: null
    w.long(0); // beforeImages: null
    w.long(0); // afterImages: null
    w.0
}
