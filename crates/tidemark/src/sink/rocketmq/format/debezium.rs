//! A Debezium-style JSON envelope: `{"before", "after", "source", "op", "ts_ms"}` with
//! `op` = `r` (a row of the full copy), `c`, `u` or `d`, and `source` carrying the
//! binlog position (`file`, `pos`, `row`) consumers deduplicate by. DDL statements are
//! `{"source", "databaseName", "ddl", "ts_ms"}`, as in Debezium's schema change topic.
//!
//! Values are JSON numbers where JSON holds them exactly (integers, FLOAT, DOUBLE, BIT,
//! YEAR), strings otherwise (DECIMAL, text, ENUM/SET members, JSON documents, temporal
//! types with their fractional seconds; TIMESTAMP as ISO-8601 UTC like Debezium's
//! `ZonedTimestamp`), base64 for binary, and `{"wkb", "srid"}` for geometry.

use super::{columns, push_json_str, text, DdlEvent, Op, Origin, RowEvent};
use base64::Engine;
use std::fmt::Write;
use tidemark_core::{ColumnDef, ColumnKind, Value};

fn push_value(out: &mut String, v: &Value, def: &ColumnDef) {
    let b64 = base64::engine::general_purpose::STANDARD;
    match (v, def.kind) {
        (Value::Null, _) => out.push_str("null"),
        (Value::Int(i), _) => {
            let _ = write!(out, "{i}");
        }
        (Value::UInt(u), ColumnKind::Int { .. }) | (Value::Bit(u), _) => {
            let _ = write!(out, "{u}");
        }
        (Value::Float(f), _) => {
            let _ = write!(out, "{f}");
        }
        (Value::Double(d), _) => {
            let _ = write!(out, "{d}");
        }
        (Value::Bytes(b), ColumnKind::Binary) => {
            out.push('"');
            out.push_str(&b64.encode(b));
            out.push('"');
        }
        (Value::Bytes(b), ColumnKind::Geometry) if b.len() >= 4 => {
            let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let _ = write!(
                out,
                "{{\"wkb\":\"{}\",\"srid\":{srid}}}",
                b64.encode(&b[4..])
            );
        }
        (Value::DateTime(d), ColumnKind::Timestamp) => {
            let mut s = text(v, def).unwrap_or_default();
            if d.year != 0 {
                s = s.replacen(' ', "T", 1) + "Z";
            }
            push_json_str(out, &s);
        }
        _ => match text(v, def) {
            Some(s) => push_json_str(out, &s),
            None => out.push_str("null"),
        },
    }
}

fn push_image(out: &mut String, ev: &RowEvent<'_>, row: Option<&[Value]>) {
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
        push_value(out, v, def);
    }
    out.push('}');
}

fn push_source(
    out: &mut String,
    task: &str,
    origin: &Origin<'_>,
    db: &str,
    table: &str,
    snapshot: bool,
) {
    out.push_str("{\"version\":\"tidemark-");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str("\",\"connector\":\"mysql\",\"name\":");
    push_json_str(out, task);
    let _ = write!(
        out,
        ",\"ts_ms\":{},\"snapshot\":\"{snapshot}\",\"db\":",
        origin.source_ms
    );
    push_json_str(out, db);
    out.push_str(",\"table\":");
    push_json_str(out, table);
    match origin.position {
        Some(p) => {
            out.push_str(",\"file\":");
            push_json_str(out, &p.file);
            let _ = write!(
                out,
                ",\"pos\":{},\"row\":{},\"gtid\":",
                p.offset, origin.index
            );
            match &p.gtid {
                Some(g) => push_json_str(out, g),
                None => out.push_str("null"),
            }
        }
        None => out.push_str(",\"file\":\"\",\"pos\":0,\"row\":0,\"gtid\":null"),
    }
    out.push('}');
}

pub fn row(ev: &RowEvent<'_>, task: &str) -> Vec<u8> {
    let t = ev.table;
    let mut out = String::with_capacity(256);
    out.push_str("{\"before\":");
    push_image(&mut out, ev, ev.before);
    out.push_str(",\"after\":");
    push_image(&mut out, ev, ev.after);
    out.push_str(",\"source\":");
    push_source(
        &mut out,
        task,
        &ev.origin,
        &t.target.database,
        &t.target.table,
        ev.snapshot,
    );
    let op = match (ev.op, ev.snapshot) {
        (_, true) => "r",
        (Op::Insert, _) => "c",
        (Op::Update, _) => "u",
        (Op::Delete, _) => "d",
    };
    let _ = write!(out, ",\"op\":\"{op}\",\"ts_ms\":{}}}", ev.origin.built_ms);
    out.into_bytes()
}

pub fn ddl(ev: &DdlEvent<'_>, task: &str) -> Vec<u8> {
    let mut out = String::with_capacity(256 + ev.statement.len());
    out.push_str("{\"source\":");
    push_source(
        &mut out,
        task,
        &ev.origin,
        ev.database,
        ev.table.unwrap_or(""),
        false,
    );
    out.push_str(",\"databaseName\":");
    push_json_str(&mut out, ev.database);
    out.push_str(",\"ddl\":");
    push_json_str(&mut out, ev.statement);
    let _ = write!(out, ",\"ts_ms\":{}}}", ev.origin.built_ms);
    out.into_bytes()
}
