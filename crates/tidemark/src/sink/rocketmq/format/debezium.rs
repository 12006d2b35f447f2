//! A Debezium JSON envelope: `{"before", "after", "source", "op", "ts_ms"}` with `op` =
//! `r` (a row of the full copy), `c`, `u` or `d`, and `source` carrying the binlog
//! position (`file`, `pos`, `row`) consumers deduplicate by. DDL statements are
//! `{"source", "databaseName", "ddl", "ts_ms"}`, as in Debezium's schema change topic.
//!
//! Values are Debezium's default encodings (debezium/debezium `BinlogValueConverters`
//! and the `io.debezium.time` types): DATE as days, TIME as µs, DATETIME as ms (fsp up
//! to 3) or µs, TIMESTAMP as an ISO-8601 UTC string, DECIMAL as base64 of its unscaled
//! bytes (`decimal_handling_mode = "string" | "double"` change it), BIT(1) as a boolean
//! and BIT(n) as little-endian bytes, BIGINT UNSIGNED as a signed long, binary as
//! base64, geometry as `{"wkb", "srid"}`; `time_precision_mode = "connect"` gives
//! milliseconds throughout. `format/golden.rs` checks each type.

use super::{columns, push_json_str, text, DdlEvent, Op, Origin, RowEvent};
use base64::Engine;
use std::fmt::Write;
use tidemark_core::{ColumnDef, ColumnKind, Value};

/// `decimal.handling.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecimalMode {
    /// Base64 of the unscaled value's two's-complement bytes (`precise`, the default).
    #[default]
    Precise,
    String,
    Double,
}

/// `time.precision.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeMode {
    /// `adaptive_time_microseconds` (the default): TIME in µs, DATETIME in ms up to
    /// fsp 3 and in µs above.
    #[default]
    Adaptive,
    /// `connect`: Kafka Connect's logical types, milliseconds.
    Connect,
}

/// Debezium JSON settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub decimal: DecimalMode,
    pub time: TimeMode,
    /// Wrap each message as Kafka Connect's `JsonConverter` does with
    /// `schemas.enable = true`: `{"schema": ..., "payload": ...}`.
    pub schemas: bool,
    /// `include.query`: `source.query` holds the statement that produced the row, when
    /// the binlog carries it.
    pub include_query: bool,
    /// `provide.transaction.metadata`: the `transaction` block on every change (and
    /// BEGIN/END records on the transaction topic, sent by the sink).
    pub transaction_metadata: bool,
    /// The source is MariaDB: `source.connector = "mariadb"`, as Debezium's MariaDB
    /// connector (`MariaDbSourceInfoStructMaker`); set when the task starts.
    pub mariadb: bool,
}

impl Options {
    fn connector(&self) -> &'static str {
        if self.mariadb {
            "mariadb"
        } else {
            "mysql"
        }
    }
}

fn field(name: &str, ty: &str, optional: bool) -> serde_json::Value {
    serde_json::json!({"type": ty, "optional": optional, "field": name})
}

fn logical(name: &str, ty: &str, optional: bool, logical: &str) -> serde_json::Value {
    let mut f = field(name, ty, optional);
    f["name"] = logical.into();
    f["version"] = 1.into();
    f
}

/// The Connect schema of a column under the options, as Debezium's converters declare
/// it (`BinlogValueConverters.schemaBuilder`).
fn column_schema(name: &str, c: &ColumnDef, o: &Options) -> serde_json::Value {
    let t = c.column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let opt = c.nullable;
    let fsp = super::fsp(&c.column_type);
    match c.kind {
        ColumnKind::Int { unsigned } => {
            let ty = match (base, unsigned) {
                ("tinyint", _) | ("smallint", false) => "int16",
                ("smallint", true) | ("mediumint", _) | ("int" | "integer", false) => "int32",
                _ => "int64",
            };
            field(name, ty, opt)
        }
        ColumnKind::Year => logical(name, "int32", opt, "io.debezium.time.Year"),
        ColumnKind::Float => field(name, "float32", opt),
        ColumnKind::Double => field(name, "float64", opt),
        ColumnKind::Decimal => match o.decimal {
            DecimalMode::Precise => {
                let inner = c
                    .column_type
                    .split_once('(')
                    .map(|(_, r)| r.trim_end_matches(')'));
                let (m, d) = inner
                    .map(|i| i.split_once(',').unwrap_or((i, "0")))
                    .unwrap_or(("10", "0"));
                let mut f = logical(name, "bytes", opt, "org.apache.kafka.connect.data.Decimal");
                f["parameters"] =
                    serde_json::json!({"scale": d.trim(), "connect.decimal.precision": m.trim()});
                f
            }
            DecimalMode::String => field(name, "string", opt),
            DecimalMode::Double => field(name, "float64", opt),
        },
        ColumnKind::Binary => field(name, "bytes", opt),
        ColumnKind::Bit => {
            let bits = c
                .column_type
                .split_once('(')
                .and_then(|(_, r)| r.trim_end_matches(')').parse::<u32>().ok())
                .unwrap_or(1);
            if bits <= 1 {
                field(name, "boolean", opt)
            } else {
                let mut f = logical(name, "bytes", opt, "io.debezium.data.Bits");
                f["parameters"] = serde_json::json!({"length": bits.to_string()});
                f
            }
        }
        ColumnKind::Enum | ColumnKind::Set => {
            let kind = if c.kind == ColumnKind::Enum {
                "Enum"
            } else {
                "EnumSet"
            };
            let mut f = logical(name, "string", opt, &format!("io.debezium.data.{kind}"));
            f["parameters"] =
                serde_json::json!({"allowed": super::members(&c.column_type).join(",")});
            f
        }
        ColumnKind::Json => logical(name, "string", opt, "io.debezium.data.Json"),
        ColumnKind::Date => match o.time {
            TimeMode::Adaptive => logical(name, "int32", opt, "io.debezium.time.Date"),
            TimeMode::Connect => logical(name, "int32", opt, "org.apache.kafka.connect.data.Date"),
        },
        ColumnKind::Time => match o.time {
            TimeMode::Adaptive => logical(name, "int64", opt, "io.debezium.time.MicroTime"),
            TimeMode::Connect => logical(name, "int32", opt, "org.apache.kafka.connect.data.Time"),
        },
        ColumnKind::DateTime => match o.time {
            TimeMode::Adaptive if fsp > 3 => {
                logical(name, "int64", opt, "io.debezium.time.MicroTimestamp")
            }
            TimeMode::Adaptive => logical(name, "int64", opt, "io.debezium.time.Timestamp"),
            TimeMode::Connect => logical(
                name,
                "int64",
                opt,
                "org.apache.kafka.connect.data.Timestamp",
            ),
        },
        ColumnKind::Timestamp => logical(name, "string", opt, "io.debezium.time.ZonedTimestamp"),
        ColumnKind::Geometry => {
            let mut f = logical(name, "struct", opt, "io.debezium.data.geometry.Geometry");
            f["fields"] =
                serde_json::json!([field("wkb", "bytes", false), field("srid", "int32", true)]);
            f
        }
        ColumnKind::Text | ColumnKind::Other => field(name, "string", opt),
    }
}

/// The `schema` of a row message: Debezium's envelope of `<name>.<db>.<table>`.
fn envelope_schema(ev: &RowEvent<'_>, task: &str, o: &Options) -> serde_json::Value {
    let t = ev.table;
    let prefix = format!("{task}.{}.{}", t.target.database, t.target.table);
    let fields: Vec<serde_json::Value> = columns(t)
        .iter()
        .map(|(name, def)| column_schema(name, def, o))
        .collect();
    let image = |name: &str| {
        serde_json::json!({"type": "struct", "fields": fields, "optional": true,
                           "name": format!("{prefix}.Value"), "field": name})
    };
    serde_json::json!({"type": "struct", "optional": false,
        "name": format!("{prefix}.Envelope"), "version": 1, "fields": [
        image("before"), image("after"), source_schema(o),
        field("op", "string", false), field("ts_ms", "int64", true),
        field("ts_us", "int64", true), field("ts_ns", "int64", true),
        transaction_schema()]})
}

/// `source`'s schema: `SchemaFactory.sourceInfoSchemaBuilder` (version … ts_ns), then
/// `BinlogSourceInfoStructMaker`'s fields, named `io.debezium.connector.<connector>.Source`.
fn source_schema(o: &Options) -> serde_json::Value {
    serde_json::json!({"type": "struct", "optional": false,
        "name": format!("io.debezium.connector.{}.Source", o.connector()), "field": "source", "fields": [
        field("version", "string", false), field("connector", "string", false),
        field("name", "string", false), field("ts_ms", "int64", false),
        field("snapshot", "string", true), field("db", "string", false),
        field("sequence", "string", true), field("ts_us", "int64", true),
        field("ts_ns", "int64", true), field("table", "string", true),
        field("server_id", "int64", false), field("gtid", "string", true),
        field("file", "string", false), field("pos", "int64", false),
        field("row", "int32", false), field("thread", "int64", true),
        field("query", "string", true)]})
}

/// `SchemaFactory.transactionBlockSchema`: `event.block`.
fn transaction_schema() -> serde_json::Value {
    serde_json::json!({"type": "struct", "optional": true, "name": "event.block",
        "version": 1, "field": "transaction", "fields": [
        field("id", "string", false), field("total_order", "int64", false),
        field("data_collection_order", "int64", false)]})
}

/// The transaction's id as Debezium's `BinlogOffsetContext.setTransactionId` makes it:
/// its GTID, or `file=<file>,pos=<where its BEGIN starts>`.
pub fn transaction_id(origin: &Origin<'_>) -> String {
    match (origin.gtid, origin.position) {
        (Some(g), _) => g.to_string(),
        (None, Some(p)) => format!("file={},pos={}", p.file, origin.begin),
        (None, None) => String::new(),
    }
}

/// Java's `BigInteger.toByteArray()` of a decimal's unscaled digits: big-endian two's
/// complement, as few bytes as hold the sign.
pub fn unscaled_bytes(decimal: &str) -> Vec<u8> {
    let negative = decimal.starts_with('-');
    let mut mag: Vec<u8> = Vec::new();
    for d in decimal.bytes().filter(u8::is_ascii_digit) {
        let mut carry = u32::from(d - b'0');
        for b in mag.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
        while mag.first() == Some(&0) {
            mag.remove(0);
        }
    }
    if mag.is_empty() {
        return vec![0];
    }
    if !negative {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return mag;
    }
    for b in mag.iter_mut() {
        *b = !*b;
    }
    for b in mag.iter_mut().rev() {
        let (v, overflow) = b.overflowing_add(1);
        *b = v;
        if !overflow {
            break;
        }
    }
    if mag[0] & 0x80 == 0 {
        mag.insert(0, 0xff);
    }
    mag
}

/// The zero date, which Debezium sends as null (or the epoch for a NOT NULL column).
fn zero(out: &mut String, def: &ColumnDef, epoch: &str) {
    out.push_str(if def.nullable { "null" } else { epoch });
}

fn push_value(out: &mut String, v: &Value, def: &ColumnDef, o: &Options) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let fsp = super::fsp(&def.column_type);
    match (v, def.kind) {
        (Value::Null, _) => out.push_str("null"),
        (Value::Int(i), _) => {
            let _ = write!(out, "{i}");
        }
        // `bigint.unsigned.handling.mode = long`: the 64 bits as a signed long.
        (Value::UInt(u), ColumnKind::Int { .. }) => {
            let _ = write!(out, "{}", *u as i64);
        }
        (Value::Bit(u), _) => {
            let bits = def
                .column_type
                .split_once('(')
                .and_then(|(_, r)| r.trim_end_matches(')').parse::<u32>().ok())
                .unwrap_or(1);
            if bits <= 1 {
                // BIT(1): BOOLEAN.
                out.push_str(if *u != 0 { "true" } else { "false" });
            } else {
                // io.debezium.data.Bits: little-endian bytes, (n + 7) / 8 of them.
                let n = bits.div_ceil(8) as usize;
                let _ = write!(out, "\"{}\"", b64.encode(&u.to_le_bytes()[..n.min(8)]));
            }
        }
        (Value::Float(f), _) => {
            let _ = write!(out, "{f}");
        }
        (Value::Double(d), _) => {
            let _ = write!(out, "{d}");
        }
        (Value::Decimal(d), _) => match o.decimal {
            DecimalMode::Precise => {
                let _ = write!(out, "\"{}\"", b64.encode(unscaled_bytes(d)));
            }
            DecimalMode::String => push_json_str(out, d),
            DecimalMode::Double => {
                let _ = write!(out, "{}", d.parse::<f64>().unwrap_or(0.0));
            }
        },
        (Value::Bytes(b), ColumnKind::Binary) => {
            let _ = write!(out, "\"{}\"", b64.encode(b));
        }
        (Value::Bytes(b), ColumnKind::Geometry) if b.len() >= 4 => {
            let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let _ = write!(
                out,
                "{{\"wkb\":\"{}\",\"srid\":{srid}}}",
                b64.encode(&b[4..])
            );
        }
        // io.debezium.time.Date: days since the epoch.
        (Value::Date(d), _) => {
            if d.year == 0 || d.month == 0 || d.day == 0 {
                return zero(out, def, "0");
            }
            let _ = write!(out, "{}", super::dts_avro::unix_seconds(d) / 86_400);
        }
        // io.debezium.time.ZonedTimestamp: ISO-8601 in UTC.
        (Value::DateTime(d), ColumnKind::Timestamp) => {
            if d.year == 0 {
                return zero(out, def, "\"1970-01-01T00:00:00Z\"");
            }
            let s = text(v, def).unwrap_or_default();
            push_json_str(out, &(s.replacen(' ', "T", 1) + "Z"));
        }
        // io.debezium.time.Timestamp (ms) up to fsp 3, MicroTimestamp (µs) above;
        // connect: org.apache.kafka.connect.data.Timestamp (ms).
        (Value::DateTime(d), _) => {
            if d.year == 0 || d.month == 0 || d.day == 0 {
                return zero(out, def, "0");
            }
            let secs = super::dts_avro::unix_seconds(d);
            let micros = o.time == TimeMode::Adaptive && fsp > 3;
            let _ = if micros {
                write!(out, "{}", secs * 1_000_000 + i64::from(d.micros))
            } else {
                write!(out, "{}", secs * 1000 + i64::from(d.micros / 1000))
            };
        }
        // io.debezium.time.MicroTime (µs); connect: org.apache.kafka.connect.data.Time
        // (ms).
        (Value::Time(t), _) => {
            let us = (i64::from(t.hours) * 3600 + i64::from(t.minutes) * 60 + i64::from(t.seconds))
                * 1_000_000
                + i64::from(t.micros);
            let us = if t.negative { -us } else { us };
            let _ = match o.time {
                TimeMode::Adaptive => write!(out, "{us}"),
                TimeMode::Connect => write!(out, "{}", us / 1000),
            };
        }
        _ => match text(v, def) {
            Some(s) => push_json_str(out, &s),
            None => out.push_str("null"),
        },
    }
}

fn push_image(out: &mut String, ev: &RowEvent<'_>, row: Option<&[Value]>, o: &Options) {
    let Some(row) = row else {
        out.push_str("null");
        return;
    };
    out.push('{');
    for (i, ((name, def), v)) in columns(ev.table).iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, name);
        out.push(':');
        push_value(out, v, def, o);
    }
    out.push('}');
}

/// `source` as `BinlogSourceInfoStructMaker.struct` fills it, in its schema's order:
/// `ts_ms` is the event's time, `file`/`pos` the event's file and start, `row` the row
/// in it, `server_id` the event header's, `thread` MySQL's BEGIN's session (null on
/// MariaDB, which logs no BEGIN), `query` the statement (`include.query`).
fn push_source(
    out: &mut String,
    task: &str,
    origin: &Origin<'_>,
    db: &str,
    table: &str,
    snapshot: bool,
    o: &Options,
) {
    out.push_str("{\"version\":\"tidemark-");
    out.push_str(env!("CARGO_PKG_VERSION"));
    let _ = write!(out, "\",\"connector\":\"{}\",\"name\":", o.connector());
    push_json_str(out, task);
    let ms = origin
        .event
        .map_or(origin.source_ms, |e| u64::from(e.timestamp) * 1000);
    let _ = write!(out, ",\"ts_ms\":{ms},\"snapshot\":\"{snapshot}\",\"db\":");
    push_json_str(out, db);
    let _ = write!(
        out,
        ",\"sequence\":null,\"ts_us\":{},\"ts_ns\":{},\"table\":",
        ms * 1000,
        ms * 1_000_000
    );
    push_json_str(out, table);
    let server_id = origin.event.map_or(0, |e| e.server_id);
    let _ = write!(out, ",\"server_id\":{server_id},\"gtid\":");
    // Debezium's `gtid` is the transaction's own GTID.
    match origin.gtid.filter(|_| origin.position.is_some()) {
        Some(g) => push_json_str(out, g),
        None => out.push_str("null"),
    }
    match origin.position {
        Some(p) => {
            out.push_str(",\"file\":");
            push_json_str(out, &p.file);
            let pos = origin.event.map_or(p.offset, |e| e.offset);
            let _ = write!(out, ",\"pos\":{pos},\"row\":{}", origin.row);
        }
        None => out.push_str(",\"file\":\"\",\"pos\":0,\"row\":0"),
    }
    match origin.thread {
        Some(t) => {
            let _ = write!(out, ",\"thread\":{t}");
        }
        None => out.push_str(",\"thread\":null"),
    }
    out.push_str(",\"query\":");
    match origin.event.and_then(|e| e.query.as_deref()) {
        Some(q) if o.include_query => push_json_str(out, q),
        _ => out.push_str("null"),
    }
    out.push('}');
}

/// The `transaction` block (`AbstractTransactionStructMaker.addTransactionBlock`).
fn push_transaction(out: &mut String, origin: &Origin<'_>, o: &Options) {
    out.push_str(",\"transaction\":");
    match origin.order {
        Some((total, table)) if o.transaction_metadata && origin.position.is_some() => {
            out.push_str("{\"id\":");
            push_json_str(out, &transaction_id(origin));
            let _ = write!(
                out,
                ",\"total_order\":{total},\"data_collection_order\":{table}}}"
            );
        }
        _ => out.push_str("null"),
    }
}

pub fn row(ev: &RowEvent<'_>, task: &str, o: &Options) -> Vec<u8> {
    let t = ev.table;
    let mut out = String::with_capacity(256);
    out.push_str("{\"before\":");
    push_image(&mut out, ev, ev.before, o);
    out.push_str(",\"after\":");
    push_image(&mut out, ev, ev.after, o);
    out.push_str(",\"source\":");
    push_source(
        &mut out,
        task,
        &ev.origin,
        &t.target.database,
        &t.target.table,
        ev.snapshot,
        o,
    );
    let op = match (ev.op, ev.snapshot) {
        (_, true) => "r",
        (Op::Insert, _) => "c",
        (Op::Update, _) => "u",
        (Op::Delete, _) => "d",
    };
    let ms = ev.origin.built_ms;
    let _ = write!(
        out,
        ",\"op\":\"{op}\",\"ts_ms\":{ms},\"ts_us\":{},\"ts_ns\":{}",
        ms * 1000,
        ms * 1_000_000
    );
    push_transaction(&mut out, &ev.origin, o);
    out.push('}');
    if !o.schemas {
        return out.into_bytes();
    }
    format!(
        "{{\"schema\":{},\"payload\":{out}}}",
        envelope_schema(ev, task, o)
    )
    .into_bytes()
}

/// What a DDL statement does to its table, as Debezium's `TableChange.getType()`.
fn change_type(statement: &str) -> Option<&'static str> {
    use crate::transform::ddl::{Kind, Statement};
    match Statement::parse(statement).kind {
        Kind::CreateTable => Some("CREATE"),
        Kind::DropTable => Some("DROP"),
        Kind::AlterTable
        | Kind::RenameTable
        | Kind::TruncateTable
        | Kind::CreateIndex
        | Kind::DropIndex => Some("ALTER"),
        _ => None,
    }
}

/// `java.sql.Types` of a column as Debezium's DDL parser resolves its type
/// (`MySqlAntlrDdlParser.initDataTypeResolver`).
fn jdbc_type(c: &ColumnDef) -> i32 {
    let t = c.column_type.to_ascii_lowercase();
    match t.split(['(', ' ']).next().unwrap_or("") {
        "tinyint" => -6,
        "smallint" => 5,
        "mediumint" | "int" | "integer" | "year" => 4,
        "bigint" | "serial" => -5,
        "real" => 7,
        "double" => 8,
        "float" => 6,
        "decimal" | "fixed" => 3,
        "numeric" => 2,
        "bit" => -7,
        "bool" | "boolean" => 16,
        "time" => 92,
        "timestamp" => 2014,
        "datetime" => 93,
        "date" => 91,
        "char" | "enum" | "set" => 1,
        "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => 12,
        "binary" => -2,
        "varbinary" => -3,
        "tinyblob" | "blob" | "mediumblob" | "longblob" => 2004,
        _ => 1111,
    }
}

/// One column of `tableChanges[].table.columns` (`ConnectTableChangeSerializer.toStruct`,
/// fields in `SchemaFactory.schemaHistoryColumnSchema`'s order).
fn push_column(out: &mut String, c: &ColumnDef, position: usize) {
    let t = c.column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    let type_name = if unsigned {
        format!("{} UNSIGNED", base.to_ascii_uppercase())
    } else {
        base.to_ascii_uppercase()
    };
    let (length, scale) = match c.kind {
        ColumnKind::Enum | ColumnKind::Set => (None, None),
        _ => {
            let inner = c
                .column_type
                .split_once('(')
                .and_then(|(_, r)| r.split(')').next());
            let (m, d) = inner
                .map(|i| i.split_once(',').map_or((i, None), |(m, d)| (m, Some(d))))
                .unwrap_or(("", None));
            (
                m.trim().parse::<i64>().ok(),
                d.and_then(|d| d.trim().parse::<i64>().ok()),
            )
        }
    };
    let opt = |v: Option<i64>| v.map_or("null".to_string(), |v| v.to_string());
    out.push_str("{\"name\":");
    push_json_str(out, &c.name);
    let _ = write!(
        out,
        ",\"jdbcType\":{},\"nativeType\":null,\"typeName\":",
        jdbc_type(c)
    );
    push_json_str(out, &type_name);
    out.push_str(",\"typeExpression\":");
    push_json_str(out, &type_name);
    out.push_str(",\"charsetName\":");
    match (&c.charset, c.kind) {
        (Some(cs), ColumnKind::Text | ColumnKind::Enum | ColumnKind::Set) => push_json_str(out, cs),
        _ => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"length\":{},\"scale\":{},\"position\":{position},\"optional\":{},\"autoIncremented\":false,\"generated\":{},\"comment\":null,\"defaultValueExpression\":null,\"enumValues\":",
        opt(length),
        opt(scale),
        c.nullable,
        c.generated
    );
    if matches!(c.kind, ColumnKind::Enum | ColumnKind::Set) {
        out.push('[');
        for (i, m) in super::members(&c.column_type).iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, m);
        }
        out.push(']');
    } else {
        out.push_str("null");
    }
    out.push('}');
}

/// A DDL statement as Debezium's schema change record (the value of its schema change
/// topic, `SchemaFactory.schemaHistoryConnectorValueSchema`): `source`, `ts_ms`,
/// `databaseName`, `schemaName`, `ddl`, `tableChanges` (one entry for a statement on a
/// table: `type` CREATE/ALTER/DROP, `id` `"db"."table"`, and the table as it is after
/// the statement — `null` once dropped).
pub fn ddl(ev: &DdlEvent<'_>, task: &str, o: &Options) -> Vec<u8> {
    let mut out = String::with_capacity(512 + ev.statement.len());
    out.push_str("{\"source\":");
    push_source(
        &mut out,
        task,
        &ev.origin,
        ev.database,
        ev.table.unwrap_or(""),
        false,
        o,
    );
    let _ = write!(out, ",\"ts_ms\":{},\"databaseName\":", ev.origin.built_ms);
    push_json_str(&mut out, ev.database);
    out.push_str(",\"schemaName\":null,\"ddl\":");
    push_json_str(&mut out, ev.statement);
    out.push_str(",\"tableChanges\":[");
    if let (Some(kind), Some(table)) = (change_type(ev.statement), ev.table) {
        let _ = write!(out, "{{\"type\":\"{kind}\",\"id\":");
        // `TableId.toDoubleQuotedString`.
        push_json_str(&mut out, &format!("\"{}\".\"{table}\"", ev.database));
        out.push_str(",\"table\":");
        match ev.definition.filter(|_| kind != "DROP") {
            None => out.push_str("null"),
            Some(def) => {
                out.push_str("{\"defaultCharsetName\":");
                match def.columns.iter().find_map(|c| c.charset.as_deref()) {
                    Some(cs) => push_json_str(&mut out, cs),
                    None => out.push_str("null"),
                }
                out.push_str(",\"primaryKeyColumnNames\":[");
                let key = if def.key_name.as_deref() == Some("PRIMARY") {
                    def.key.as_deref().unwrap_or_default()
                } else {
                    &[]
                };
                for (i, &k) in key.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(c) = def.columns.get(k) {
                        push_json_str(&mut out, &c.name);
                    }
                }
                out.push_str("],\"columns\":[");
                for (i, c) in def.columns.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_column(&mut out, c, i + 1);
                }
                out.push_str("],\"comment\":null}");
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A transaction metadata record (`AbstractTransactionStructMaker.buildBeginTransactionValue`
/// / `buildEndTransactionValue`): `status` BEGIN or END, `id`, `event_count` and
/// `data_collections` (END only: the changes per `db.table`), `ts_ms` (the source's time).
pub fn transaction_record(
    origin: &Origin<'_>,
    end: Option<&[(String, u64)]>,
    o: &Options,
) -> Vec<u8> {
    let mut out = String::with_capacity(128);
    out.push_str(if end.is_some() {
        "{\"status\":\"END\",\"id\":"
    } else {
        "{\"status\":\"BEGIN\",\"id\":"
    });
    push_json_str(&mut out, &transaction_id(origin));
    match end {
        None => out.push_str(",\"event_count\":null,\"data_collections\":null"),
        Some(tables) => {
            let total: u64 = tables.iter().map(|t| t.1).sum();
            let _ = write!(out, ",\"event_count\":{total},\"data_collections\":[");
            for (i, (name, n)) in tables.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"data_collection\":");
                push_json_str(&mut out, name);
                let _ = write!(out, ",\"event_count\":{n}}}");
            }
            out.push(']');
        }
    }
    let _ = write!(out, ",\"ts_ms\":{}}}", origin.source_ms);
    if !o.schemas {
        return out.into_bytes();
    }
    let collection = serde_json::json!({"type": "struct", "optional": true,
        "name": "event.collection", "version": 1, "fields": [
        field("data_collection", "string", false), field("event_count", "int64", false)]});
    let schema = serde_json::json!({"type": "struct", "optional": false,
        "name": "io.debezium.connector.common.TransactionMetadataValue", "version": 1, "fields": [
        field("status", "string", false), field("id", "string", false),
        field("event_count", "int64", true),
        {"type": "array", "items": collection, "optional": true, "field": "data_collections"},
        field("ts_ms", "int64", false)]});
    format!("{{\"schema\":{schema},\"payload\":{out}}}").into_bytes()
}
