//! Canal's FlatMessage JSON, field for field, so Canal consumers work unchanged:
//! `id`, `database`, `table`, `pkNames`, `isDdl`, `type`, `es`, `ts`, `sql`, `sqlType`,
//! `mysqlType`, `data`, `old`. Every value is a string (or null), as Canal renders it.
//!
//! `id` is the source position as one number (binlog file number × 2^32 + the
//! transaction's end offset; 0 for copied rows), so it grows with the source's history.

use super::{columns, key_names, push_json_str, text, DdlEvent, Op, Origin, RowEvent};
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

/// `java.sql.Types` of a column, as Canal reports it.
pub fn sql_type(c: &ColumnDef) -> i32 {
    let t = c.column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match c.kind {
        ColumnKind::Int { .. } => match base {
            "tinyint" => -6,
            "smallint" => 5,
            "bigint" => -5,
            _ => 4,
        },
        ColumnKind::Float => 7,
        ColumnKind::Double => 8,
        ColumnKind::Decimal => 3,
        ColumnKind::Text => match base {
            "char" => 1,
            "varchar" => 12,
            _ => 2005,
        },
        ColumnKind::Binary => match base {
            "binary" => -2,
            "varbinary" => -3,
            _ => 2004,
        },
        ColumnKind::Enum | ColumnKind::Set => 1,
        ColumnKind::Bit => -7,
        ColumnKind::Json => 12,
        ColumnKind::Date => 91,
        ColumnKind::Time => 92,
        ColumnKind::DateTime | ColumnKind::Timestamp => 93,
        ColumnKind::Year => 12,
        ColumnKind::Geometry => -2,
        ColumnKind::Other => 12,
    }
}

fn head(out: &mut String, origin: &Origin<'_>, database: &str, table: &str) {
    let _ = write!(out, "{{\"id\":{},\"database\":", id(origin));
    push_json_str(out, database);
    out.push_str(",\"table\":");
    push_json_str(out, table);
}

fn push_image(out: &mut String, cols: &[(&str, &ColumnDef)], row: &[Value], only: Option<&[bool]>) {
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
        match text(v, def) {
            Some(s) => push_json_str(out, &s),
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

pub fn row(ev: &RowEvent<'_>, full_before_image: bool) -> Vec<u8> {
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
    for (i, (name, def)) in cols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        let _ = write!(out, ":{}", sql_type(def));
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
    let image = match ev.op {
        Op::Delete => ev.before,
        _ => ev.after,
    };
    if let Some(r) = image {
        push_image(&mut out, &cols, r, None);
    }
    out.push_str("],\"old\":");
    match (ev.op, ev.before, ev.after) {
        (Op::Update, Some(b), Some(a)) => {
            out.push('[');
            if full_before_image {
                push_image(&mut out, &cols, b, None);
            } else {
                let changed: Vec<bool> = b.iter().zip(a).map(|(x, y)| x != y).collect();
                push_image(&mut out, &cols, b, Some(&changed));
            }
            out.push(']');
        }
        _ => out.push_str("null"),
    }
    out.push('}');
    out.into_bytes()
}

/// Canal's `type` for a DDL statement.
pub fn ddl_type(statement: &str) -> &'static str {
    match Statement::parse(statement).kind {
        Kind::CreateTable => "CREATE",
        Kind::AlterTable => "ALTER",
        Kind::DropTable => "ERASE",
        Kind::RenameTable => "RENAME",
        Kind::TruncateTable => "TRUNCATE",
        Kind::CreateIndex => "CINDEX",
        Kind::DropIndex => "DINDEX",
        _ => "QUERY",
    }
}

pub fn ddl(ev: &DdlEvent<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(128 + ev.statement.len());
    head(&mut out, &ev.origin, ev.database, ev.table.unwrap_or(""));
    let _ = write!(
        out,
        ",\"pkNames\":null,\"isDdl\":true,\"type\":\"{}\",\"es\":{},\"ts\":{},\"sql\":",
        ddl_type(ev.statement),
        ev.origin.source_ms,
        ev.origin.built_ms
    );
    push_json_str(&mut out, ev.statement);
    out.push_str(",\"sqlType\":null,\"mysqlType\":null,\"data\":null,\"old\":null}");
    out.into_bytes()
}
