//! The Lindorm destination's side of `tidemark verify` ([`RowStore`]): LindormTable
//! computes no checksums, so its rows are read back by the source's key ranges
//! (`SELECT … WHERE key > … AND key <= … LIMIT n`, tuple comparisons for a composite
//! key, as Lindorm SQL's WHERE takes them), in pages under the engine's read limits
//! (2 000 rows, 16 MB), each continuing after the last key read (rows come in key
//! order; no ORDER BY, which the engine limits on large results), and turned into the
//! values the type mapping makes of the source's
//! ([`types::stored`], [`types::read_stored`]). Repairs go through the writer: DELETE
//! by key, then UPSERT of the source's rows. The SQL around the values is `sink/readback.rs`'s,
//! shared with ADB.

use super::types::{self, LindormTable};
use super::write::Upserts;
use super::Lindorm;
use crate::sink::readback::{self, KeyForm};
use crate::sink::{RowSide, RowStore};
use crate::source::snapshot::Chunk;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Result};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use tidemark_core::{Row, Value};

/// One read's rows and bytes at most: LindormTable answers at most 2 000 rows or
/// 16 MB per read ("Quotas and limits"), so a chunk is read in pages under both.
const READ_ROWS: usize = 2_000;
const READ_BYTES: u64 = 8 << 20;

impl RowStore for Lindorm {
    fn open(&self) -> Result<Box<dyn RowSide + '_>> {
        Ok(Box::new(Reader {
            kind: self,
            conn: self.connect()?,
            types: HashMap::new(),
        }))
    }

    fn sql_file(&self) -> (String, String) {
        (
            "-- tidemark verify --emit-sql for LindormTable: apply with a MySQL client on the engine's port\n\
             -- (`mysql -h HOST -P 33060 < FILE`). The engine has no transactions: each statement\n\
             -- applies on its own, and every one is an UPSERT of the whole row or a DELETE by key,\n\
             -- so a file cut short can be applied again from the start.\n"
                .into(),
            String::new(),
        )
    }
}

struct Reader<'a> {
    kind: &'a Lindorm,
    conn: mysql::Conn,
    /// Per destination table, the Lindorm type of each copied column.
    types: HashMap<String, Vec<String>>,
}

impl Reader<'_> {
    fn types_of(&self, t: &TablePlan) -> Result<&Vec<String>> {
        self.types
            .get(&t.target.to_string())
            .ok_or_else(|| anyhow!("internal: {} read before its definition", t.target))
    }

    /// Positions of the key columns among the copied columns, in key order.
    fn key_positions(t: &TablePlan) -> Result<Vec<usize>> {
        let def = t.def();
        def.key
            .as_ref()
            .filter(|_| def.key_name.as_deref() == Some("PRIMARY"))
            .ok_or_else(|| {
                anyhow!(
                    "{} has no primary key: a table without one is not supported for a Lindorm destination (LindormTable identifies rows by their primary key; the precheck refuses it)",
                    def.name
                )
            })?
            .iter()
            .map(|k| {
                t.copied
                    .iter()
                    .position(|c| c == k)
                    .ok_or_else(|| anyhow!("{}: a key column is not copied", def.name))
            })
            .collect()
    }

    /// `key op key` over stored key values (a key read back).
    fn compare_stored(&self, t: &TablePlan, op: &str, key: &[Value]) -> Result<String> {
        let positions = Self::key_positions(t)?;
        let types = self.types_of(t)?;
        let names = t.target_columns();
        let names: Vec<String> = positions.iter().map(|&i| names[i].clone()).collect();
        readback::key_compare(&names, key, op, KeyForm::Tuple, &mut |out, n, v| {
            types::push_stored(out, &types[positions[n]], v)
        })
    }

    /// `SELECT <copied columns> FROM t` and the rows it answers, as stored values.
    fn select(
        &mut self,
        t: &TablePlan,
        cond: &str,
        limit: Option<usize>,
        out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
    ) -> Result<()> {
        let types = self.types_of(t)?.clone();
        let sql = readback::select_sql(t, cond, limit);
        readback::select_rows(
            &mut self.conn,
            "Lindorm",
            t,
            &sql,
            false,
            &mut |i, v| types::read_stored(&types[i], v),
            out,
        )
    }
}

/// `key op bound` over source key values: one column alone, a tuple for several.
fn compare(t: &TablePlan, op: &str, bound: &[Value]) -> Result<String> {
    let def = t.def();
    let key: Vec<usize> = def.key.clone().unwrap_or_default();
    let names: Vec<String> = key
        .iter()
        .map(|&i| {
            let c = &def.columns[i];
            t.columns.get(&c.name).unwrap_or(&c.name).clone()
        })
        .collect();
    readback::key_compare(&names, bound, op, KeyForm::Tuple, &mut |out, n, v| {
        types::push_value(out, &def.columns[key[n]], v).map(|_| ())
    })
}

impl RowSide for Reader<'_> {
    fn table(&mut self, t: &TablePlan) -> Result<Vec<String>> {
        Self::key_positions(t)?;
        let shown: Option<(String, String)> = self
            .conn
            .query_first(format!("SHOW CREATE TABLE {}", t.target.quoted()))
            .map_err(|e| anyhow!("the destination has no table {} ({e})", t.target))?;
        let Some((_, ddl)) = shown else {
            bail!("the destination has no table {}", t.target);
        };
        let have = LindormTable::parse(&ddl)?;
        let (cols, key) = super::target_columns(t);
        let mut out = Vec::new();
        if have.key != key {
            out.push(format!(
                "primary key is ({}) on the destination, ({}) on the source",
                have.key.join(", "),
                key.join(", ")
            ));
        }
        let mut types = Vec::new();
        let mut missing = Vec::new();
        for (name, c) in &cols {
            let want = types::lindorm_type(c).map_err(|e| anyhow!("column {name}: {e}"))?;
            match have.column(name) {
                None => missing.push(name.clone()),
                Some(h) => {
                    if !types::compatible(&want, &h.ty) {
                        out.push(format!(
                            "column {name} is {} on the destination, but the source's {} maps to {want}",
                            h.ty, c.column_type
                        ));
                    }
                    types.push(h.ty.clone());
                }
            }
        }
        if !missing.is_empty() {
            bail!(
                "the destination table lacks column(s) {}: the tables have different columns",
                missing.join(", ")
            );
        }
        for h in &have.columns {
            if !cols.iter().any(|(n, _)| n == &h.name) {
                out.push(format!("column {} exists only on the destination", h.name));
            }
        }
        self.types.insert(t.target.to_string(), types);
        Ok(out)
    }

    fn stored(&self, t: &TablePlan, rows: &mut [Row]) -> Result<()> {
        let key = Self::key_positions(t)?;
        let cols: Vec<_> = t.copied_columns().collect();
        for row in rows {
            for (i, (v, c)) in row.iter_mut().zip(&cols).enumerate() {
                let taken = std::mem::replace(v, Value::Null);
                *v = types::stored(c, taken, key.contains(&i))?;
            }
        }
        Ok(())
    }

    /// In pages under the engine's read limits, each starting after the last key of
    /// the one before (the engine answers a key range in key order).
    fn read(
        &mut self,
        t: &TablePlan,
        chunk: &Chunk,
        row_bytes: u64,
        out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
    ) -> Result<()> {
        let page = usize::try_from(READ_BYTES / row_bytes.max(1))
            .unwrap_or(READ_ROWS)
            .clamp(1, READ_ROWS);
        let positions = Self::key_positions(t)?;
        let upper = chunk
            .upper
            .as_ref()
            .map(|u| compare(t, "<=", u))
            .transpose()?;
        let mut after = chunk
            .lower
            .as_ref()
            .map(|l| compare(t, ">", l))
            .transpose()?;
        loop {
            let cond: Vec<&str> = [after.as_deref(), upper.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let (mut n, mut last) = (0usize, None::<Row>);
            self.select(t, &cond.join(" AND "), Some(page), &mut |rows| {
                n += rows.len();
                last = rows.last().cloned();
                out(rows)
            })?;
            let Some(last) = last.filter(|_| n >= page) else {
                return Ok(());
            };
            let key: Row = positions.iter().map(|&i| last[i].clone()).collect();
            after = Some(self.compare_stored(t, ">", &key)?);
        }
    }

    fn fetch(&mut self, t: &TablePlan, key: &[Value]) -> Result<Option<Row>> {
        let cond = self.compare_stored(t, "=", key)?;
        let mut found = None;
        self.select(t, &cond, Some(1), &mut |rows| {
            found = rows.into_iter().next();
            Ok(())
        })?;
        Ok(found)
    }

    fn repair(
        &mut self,
        t: &TablePlan,
        rows: &[Row],
        keys: &[Row],
        sql_out: Option<&mut dyn std::io::Write>,
    ) -> Result<u64> {
        let mut statements = Vec::new();
        for key in keys {
            let cond = self.compare_stored(t, "=", key)?;
            statements.push(readback::delete_sql(t, &cond));
        }
        let config = &self.kind.config;
        let mut upserts = Upserts::new(t, config.batch_rows, config.batch_bytes)?;
        for row in rows {
            if let Some((sql, _)) = upserts.push(row)? {
                statements.push(sql);
            }
        }
        statements.extend(upserts.take().map(|(sql, _)| sql));
        readback::apply(&mut self.conn, "Lindorm", t, &statements, sql_out)?;
        Ok((rows.len() + keys.len()) as u64)
    }
}
