//! `where` row filters applied to binlog changes, with the source's own semantics.
//!
//! Tidemark does not reimplement SQL expressions: the filter is evaluated by the source
//! server, over the row images of a transaction, in one query per table:
//!
//! ```sql
//! SELECT n, (<where>) IS TRUE FROM (
//!     SELECT 1 AS n, <v1> AS `col1`, <v2> AS `col2` … UNION ALL SELECT 2, …
//! ) AS `table`
//! ```
//!
//! Each value is written as a literal of its column's type (text converted to the
//! column's character set, temporal values cast), so comparisons behave as they do
//! on the table. An update is then applied by whether its before and after images
//! match: both → update; only after → insert; only before → delete; neither → nothing.

use crate::transform::mapping::TablePlan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use tidemark_core::sql::{push_literal, quote_ident};
use tidemark_core::{ColumnDef, ColumnKind, Row, Value};

/// Rows per evaluation query.
const ROWS_PER_QUERY: usize = 200;

/// Evaluates filters on a source connection.
pub struct Filter {
    conn: mysql::Conn,
}

impl Filter {
    pub fn new(conn: mysql::Conn) -> Filter {
        Filter { conn }
    }

    /// Whether each row (full source row, in column order) passes the table's filter.
    pub fn matches(&mut self, plan: &TablePlan, rows: &[&Row]) -> Result<Vec<bool>> {
        let Some(filter) = &plan.where_clause else {
            return Ok(vec![true; rows.len()]);
        };
        let def = plan.def();
        let mut out = vec![false; rows.len()];
        for (chunk_no, chunk) in rows.chunks(ROWS_PER_QUERY).enumerate() {
            let base = chunk_no * ROWS_PER_QUERY;
            let mut union = String::new();
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    union.push_str(" UNION ALL ");
                }
                union.push_str(&format!("SELECT {} AS `__tidemark_n`", base + i));
                for (col, v) in def.columns.iter().zip(row.iter()) {
                    union.push_str(", ");
                    union.push_str(&typed_literal(v, col));
                    union.push_str(" AS ");
                    union.push_str(&quote_ident(&col.name));
                }
            }
            let sql = format!(
                "SELECT `__tidemark_n`, ({filter}) IS TRUE FROM ({union}) AS {}",
                quote_ident(&def.name.table)
            );
            let results: Vec<(u64, bool)> = self
                .conn
                .query(&sql)
                .with_context(|| format!("evaluating the `where` filter of {}", def.name))?;
            let by_n: HashMap<u64, bool> = results.into_iter().collect();
            for i in 0..chunk.len() {
                out[base + i] = by_n.get(&((base + i) as u64)).copied().unwrap_or(false);
            }
        }
        Ok(out)
    }
}

/// A value as a literal of its column's type.
fn typed_literal(v: &Value, col: &ColumnDef) -> String {
    let mut lit = String::new();
    push_literal(&mut lit, v);
    match (v, col.kind) {
        (Value::Null, _) => lit,
        (Value::Bytes(b), ColumnKind::Text) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let charset = col.charset.as_deref().unwrap_or("utf8mb4");
            if hex.is_empty() {
                format!("CONVERT('' USING {charset})")
            } else {
                format!("CONVERT(X'{hex}' USING {charset})")
            }
        }
        (_, ColumnKind::Date) => format!("CAST({lit} AS DATE)"),
        (_, ColumnKind::DateTime | ColumnKind::Timestamp) => format!("CAST({lit} AS DATETIME(6))"),
        (_, ColumnKind::Time) => format!("CAST({lit} AS TIME(6))"),
        _ => lit,
    }
}
