//! The Lindorm destination's side of `tidemark verify` ([`RowStore`]): LindormTable
//! computes no checksums, so its rows are read back by the source's key ranges
//! (`SELECT … WHERE key > … AND key <= … LIMIT n`, tuple comparisons for a composite
//! key, as Lindorm SQL's WHERE takes them), in pages under the engine's read limits
//! (2 000 rows, 16 MB), each continuing after the last key read (rows come in key
//! order; no ORDER BY, which the engine limits on large results), and turned into the
//! values the type mapping makes of the source's
//! ([`types::stored`], [`types::read_stored`]). Repairs go through the writer: UPSERT
//! of the source's rows, DELETE by key.

use super::types::{self, LindormTable};
use super::write::Upserts;
use super::Lindorm;
use crate::sink::{RowSide, RowStore};
use crate::source::snapshot::Chunk;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use tidemark_core::sql::push_ident;
use tidemark_core::{Row, Value};

/// Rows handed to verify at once.
const BATCH: usize = 500;

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
        let (mut cols, mut values) = (String::new(), String::new());
        for (n, (&i, v)) in positions.iter().zip(key).enumerate() {
            if n > 0 {
                cols.push_str(", ");
                values.push_str(", ");
            }
            push_ident(&mut cols, &names[i]);
            types::push_stored(&mut values, &types[i], v)?;
        }
        Ok(if positions.len() == 1 {
            format!("{cols} {op} {values}")
        } else {
            format!("({cols}) {op} ({values})")
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
        let mut sql = String::from("SELECT ");
        for (i, name) in t.target_columns().iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_ident(&mut sql, name);
        }
        sql.push_str(" FROM ");
        sql.push_str(&t.target.quoted());
        if !cond.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(cond);
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let result = self
            .conn
            .query_iter(&sql)
            .with_context(|| format!("reading {} on Lindorm: {sql}", t.target))?;
        let mut batch = Vec::with_capacity(BATCH);
        for row in result {
            let row = row.with_context(|| format!("reading {} on Lindorm", t.target))?;
            let values = row
                .unwrap()
                .into_iter()
                .zip(&types)
                .map(|(v, ty)| types::read_stored(ty, v))
                .collect::<Result<Row>>()
                .with_context(|| format!("reading {} on Lindorm", t.target))?;
            batch.push(values);
            if batch.len() >= BATCH {
                out(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))?;
            }
        }
        if !batch.is_empty() {
            out(batch)?;
        }
        Ok(())
    }
}

/// `key op bound` over source key values: one column alone, a tuple for several.
fn compare(t: &TablePlan, op: &str, bound: &[Value]) -> Result<String> {
    let def = t.def();
    let key: Vec<usize> = def.key.clone().unwrap_or_default();
    let (mut names, mut values) = (String::new(), String::new());
    for (n, (&i, v)) in key.iter().zip(bound).enumerate() {
        if n > 0 {
            names.push_str(", ");
            values.push_str(", ");
        }
        let c = &def.columns[i];
        push_ident(&mut names, t.columns.get(&c.name).unwrap_or(&c.name));
        types::push_value(&mut values, c, v)?;
    }
    Ok(if key.len() == 1 {
        format!("{names} {op} {values}")
    } else {
        format!("({names}) {op} ({values})")
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
        let positions = Self::key_positions(t)?;
        let types = self.types_of(t)?;
        let names = t.target_columns();
        let mut cond = String::new();
        for (n, (&i, v)) in positions.iter().zip(key).enumerate() {
            if n > 0 {
                cond.push_str(" AND ");
            }
            push_ident(&mut cond, &names[i]);
            cond.push_str(" = ");
            types::push_stored(&mut cond, &types[i], v)?;
        }
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
        mut sql_out: Option<&mut dyn std::io::Write>,
    ) -> Result<u64> {
        let positions = Self::key_positions(t)?;
        let types = self.types_of(t)?.clone();
        let names = t.target_columns();
        let mut statements = Vec::new();
        let config = &self.kind.config;
        let mut upserts = Upserts::new(t, config.batch_rows, config.batch_bytes)?;
        for row in rows {
            if let Some((sql, _)) = upserts.push(row)? {
                statements.push(sql);
            }
        }
        statements.extend(upserts.take().map(|(sql, _)| sql));
        for key in keys {
            let mut sql = String::from("DELETE FROM ");
            sql.push_str(&t.target.quoted());
            sql.push_str(" WHERE ");
            for (n, (&i, v)) in positions.iter().zip(key).enumerate() {
                if n > 0 {
                    sql.push_str(" AND ");
                }
                push_ident(&mut sql, &names[i]);
                sql.push_str(" = ");
                types::push_stored(&mut sql, &types[i], v)?;
            }
            statements.push(sql);
        }
        match sql_out.as_mut() {
            Some(w) => {
                writeln!(w, "-- {} → {}", t.def().name, t.target)?;
                for s in &statements {
                    writeln!(w, "{s};")?;
                }
            }
            None => {
                for s in &statements {
                    let head: String = s.chars().take(160).collect();
                    self.conn
                        .query_drop(s)
                        .with_context(|| format!("repairing {} on Lindorm: {head}", t.target))?;
                }
            }
        }
        Ok((rows.len() + keys.len()) as u64)
    }
}
