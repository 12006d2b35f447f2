//! `format = "tidemark-avro"` (also `"avro"`): one Avro binary record per message (no
//! container header: the schema below is published in `docs/rocketmq.md`, so consumers
//! decode with it directly). Its first field, `version`, is [`VERSION`]: a later schema
//! adds fields after the existing ones and a new version number, so a reader can tell
//! which one wrote a record before decoding the rest.
//!
//! Values are a union per column: `null`; `long` for integers, YEAR and BIT; `double`
//! for FLOAT and DOUBLE; `string` for DECIMAL, text, ENUM/SET members, JSON, temporal
//! types and BIGINT UNSIGNED above 2^63-1; `bytes` for binary and geometry.

use super::{columns, key_names, text, DdlEvent, Op, Origin, RowEvent};
use tidemark_core::{ColumnDef, ColumnKind, Value};

/// The schema version written in every record's `version` field.
pub const VERSION: i64 = 1;

/// The writer schema of every record.
pub const SCHEMA: &str = r#"{
  "type": "record",
  "name": "Change",
  "namespace": "io.tidemark",
  "fields": [
    {"name": "version", "type": "int"},
    {"name": "op", "type": {"type": "enum", "name": "Op", "symbols": ["SNAPSHOT", "INSERT", "UPDATE", "DELETE", "DDL"]}},
    {"name": "database", "type": "string"},
    {"name": "table", "type": "string"},
    {"name": "file", "type": "string"},
    {"name": "pos", "type": "long"},
    {"name": "row", "type": "int"},
    {"name": "gtid", "type": ["null", "string"]},
    {"name": "source_ts_ms", "type": "long"},
    {"name": "ts_ms", "type": "long"},
    {"name": "columns", "type": {"type": "array", "items": {"type": "record", "name": "Column", "fields": [
      {"name": "name", "type": "string"},
      {"name": "type", "type": "string"},
      {"name": "key", "type": "boolean"}
    ]}}},
    {"name": "before", "type": ["null", {"type": "array", "items": ["null", "long", "double", "string", "bytes"]}]},
    {"name": "after", "type": ["null", {"type": "array", "items": ["null", "long", "double", "string", "bytes"]}]},
    {"name": "ddl", "type": ["null", "string"]}
  ]
}"#;

pub(super) struct W(pub(super) Vec<u8>);

impl W {
    pub(super) fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.0.extend_from_slice(b);
    }

    pub(super) fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            None => self.long(0),
            Some(s) => {
                self.long(1);
                self.string(s);
            }
        }
    }
}

/// A value as its union branch: 0 null, 1 long, 2 double, 3 string, 4 bytes.
fn value(w: &mut W, v: &Value, def: &ColumnDef) {
    match (v, def.kind) {
        (Value::Null, _) => w.long(0),
        (Value::Int(i), _) => {
            w.long(1);
            w.long(*i);
        }
        (Value::UInt(u), ColumnKind::Int { .. }) | (Value::Bit(u), _) if *u <= i64::MAX as u64 => {
            w.long(1);
            w.long(*u as i64);
        }
        (Value::Float(f), _) => {
            w.long(2);
            w.0.extend_from_slice(&f64::from(*f).to_le_bytes());
        }
        (Value::Double(d), _) => {
            w.long(2);
            w.0.extend_from_slice(&d.to_le_bytes());
        }
        (Value::Bytes(b), ColumnKind::Binary | ColumnKind::Geometry) => {
            w.long(4);
            w.bytes(b);
        }
        _ => {
            w.long(3);
            w.string(&text(v, def).unwrap_or_default());
        }
    }
}

fn head(w: &mut W, op: i64, database: &str, table: &str, origin: &Origin<'_>) {
    w.long(VERSION);
    w.long(op);
    w.string(database);
    w.string(table);
    match origin.position {
        Some(p) => {
            w.string(&p.file);
            w.long(p.offset as i64);
            w.long(i64::from(origin.index));
            w.opt_string(p.gtid.as_deref());
        }
        None => {
            w.string("");
            w.long(0);
            w.long(0);
            w.opt_string(None);
        }
    }
    w.long(origin.source_ms as i64);
    w.long(origin.built_ms as i64);
}

pub fn row(ev: &RowEvent<'_>) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(256));
    let op = match (ev.op, ev.snapshot) {
        (_, true) => 0,
        (Op::Insert, _) => 1,
        (Op::Update, _) => 2,
        (Op::Delete, _) => 3,
    };
    let t = ev.table;
    head(&mut w, op, &t.target.database, &t.target.table, &ev.origin);
    let cols = columns(t);
    let keys = key_names(t);
    w.long(cols.len() as i64);
    for (name, def) in &cols {
        w.string(name);
        w.string(&def.column_type);
        w.0.push(u8::from(keys.contains(name)));
    }
    if !cols.is_empty() {
        w.long(0);
    }
    for image in [ev.before, ev.after] {
        match image {
            None => w.long(0),
            Some(r) => {
                w.long(1);
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
    w.opt_string(None);
    w.0
}

pub fn ddl(ev: &DdlEvent<'_>) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(128 + ev.statement.len()));
    head(&mut w, 4, ev.database, ev.table.unwrap_or(""), &ev.origin);
    w.long(0); // columns: empty array
    w.long(0); // before: null
    w.long(0); // after: null
    w.opt_string(Some(ev.statement));
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_schema_is_the_one_written() {
        let doc = include_str!("../../../../../../docs/rocketmq.md");
        assert!(
            doc.contains(SCHEMA),
            "docs/rocketmq.md must publish format::avro::SCHEMA"
        );
        let v: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        assert_eq!(v["fields"].as_array().map(Vec::len), Some(14));
        assert_eq!(v["fields"][0]["name"], "version");
    }

    #[test]
    fn zigzag_longs() {
        let mut w = W(Vec::new());
        for v in [0i64, -1, 1, -64, 64] {
            w.long(v);
        }
        assert_eq!(w.0, vec![0, 1, 2, 0x7f, 0x80, 0x01]);
    }
}
