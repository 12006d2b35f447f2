//! Where a row is written to Lindorm: batched `UPSERT INTO` requests under the engine's
//! limits (rows and bytes per request, non-key bytes per row), and `DELETE` by the full
//! key, one row per statement (the engine's default). Both are idempotent, which is what
//! makes replay after a crash exact without transactions.

use super::config::{MAX_KEY_BYTES, MAX_ROW_VALUE_BYTES};
use super::types::push_value;
use crate::sink::mysql::writer::values_head;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Result};
use tidemark_core::schema::ColumnDef;
use tidemark_core::sql::push_ident;
use tidemark_core::Value;

/// Builds the UPSERT requests of one table.
pub struct Upserts<'a> {
    table: &'a TablePlan,
    columns: Vec<&'a ColumnDef>,
    /// Positions of the key columns among the copied columns.
    key: Vec<usize>,
    head: String,
    sql: String,
    rows: usize,
    max_rows: usize,
    max_bytes: usize,
    /// `filter_large_messages`: a row over the engine's limits is skipped (logged and
    /// counted in `skipped`) instead of failing.
    filter: bool,
    /// Rows skipped for their size.
    pub skipped: u64,
}

impl<'a> Upserts<'a> {
    pub fn new(table: &'a TablePlan, max_rows: usize, max_bytes: usize) -> Result<Upserts<'a>> {
        let def = table.def();
        let key = def
            .key
            .as_ref()
            .ok_or_else(|| anyhow!("{} has no primary key; LindormTable needs one", def.name))?
            .iter()
            .map(|k| {
                table.copied.iter().position(|c| c == k).ok_or_else(|| {
                    anyhow!(
                        "{}: key column {} is not copied",
                        def.name,
                        def.columns[*k].name
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = values_head("UPSERT INTO ", table);
        Ok(Upserts {
            table,
            columns: table.copied_columns().collect(),
            key,
            head,
            sql: String::new(),
            rows: 0,
            max_rows,
            max_bytes,
            filter: false,
            skipped: 0,
        })
    }

    /// Skips rows over the engine's limits instead of failing (`filter_large_messages`).
    pub fn filtering(mut self, on: bool) -> Self {
        self.filter = on;
        self
    }

    /// Adds one row (copied columns, in order); returns a full request to send first
    /// when the row would take this one over a limit.
    pub fn push(&mut self, row: &[Value]) -> Result<Option<(String, usize)>> {
        let mut values = String::from("(");
        let (mut key_bytes, mut other_bytes) = (0usize, 0usize);
        for (i, (c, v)) in self.columns.iter().zip(row).enumerate() {
            if i > 0 {
                values.push_str(", ");
            }
            let n = push_value(&mut values, c, v)?;
            if self.key.contains(&i) {
                key_bytes += n;
            } else {
                other_bytes += n;
            }
        }
        values.push(')');
        if other_bytes > MAX_ROW_VALUE_BYTES || key_bytes > MAX_KEY_BYTES {
            if self.filter {
                self.skipped += 1;
                tracing::warn!(
                    "lindorm: skipped a row of {} with key {}: {other_bytes} bytes of non-key values and a {key_bytes}-byte key, over LindormTable's limits of {MAX_ROW_VALUE_BYTES} bytes per row and {MAX_KEY_BYTES} bytes per key (`filter_large_messages`)",
                    self.table.def().name,
                    self.key_text(row)
                );
                return Ok(None);
            }
            bail!(
                "a row of {} with key {} has {other_bytes} bytes of non-key values and a {key_bytes}-byte key: over LindormTable's limits of {MAX_ROW_VALUE_BYTES} bytes per row and {MAX_KEY_BYTES} bytes per key; shorten the row on the source, leave the large column out with `columns`, or set `destination.filter_large_messages = true` to skip such rows (they are counted and logged)",
                self.table.def().name,
                self.key_text(row)
            );
        }
        let full = self.rows > 0
            && (self.rows >= self.max_rows || self.sql.len() + values.len() + 2 > self.max_bytes);
        let out = if full { self.take() } else { None };
        if self.sql.is_empty() {
            self.sql.push_str(&self.head);
        } else {
            self.sql.push_str(", ");
        }
        self.sql.push_str(&values);
        self.rows += 1;
        Ok(out)
    }

    /// The request gathered so far, with its row count.
    pub fn take(&mut self) -> Option<(String, usize)> {
        if self.rows == 0 {
            return None;
        }
        let rows = std::mem::take(&mut self.rows);
        Some((std::mem::take(&mut self.sql), rows))
    }

    /// The key of a row, for messages.
    fn key_text(&self, row: &[Value]) -> String {
        let mut s = String::new();
        for (n, &i) in self.key.iter().enumerate() {
            if n > 0 {
                s.push_str(", ");
            }
            let _ = push_value(&mut s, self.columns[i], &row[i]);
        }
        format!("({s})")
    }
}

/// `DELETE FROM t WHERE` every key column `=` its value; `key` in source key order.
pub fn delete(table: &TablePlan, key: &[Value]) -> Result<String> {
    let def = table.def();
    let positions = def
        .key
        .as_ref()
        .ok_or_else(|| anyhow!("{} has no primary key; LindormTable needs one", def.name))?;
    let mut sql = String::from("DELETE FROM ");
    sql.push_str(&table.target.quoted());
    sql.push_str(" WHERE ");
    for (n, (&i, v)) in positions.iter().zip(key).enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        let c = &def.columns[i];
        let name = table.columns.get(&c.name).unwrap_or(&c.name);
        push_ident(&mut sql, name);
        sql.push_str(" = ");
        push_value(&mut sql, c, v)?;
    }
    Ok(sql)
}
