//! The ADB destination's side of `tidemark verify` ([`RowStore`]). ADB holds values
//! under its own type mapping ([`super::types`]: ENUM/SET/BIT as text, unsigned types
//! widened, zero dates as NULL, milliseconds), which server-side checksums over both
//! ends would report as differences, so its rows are read back and hashed in Tidemark
//! (`verify/rows.rs`).
//!
//! Rows are read per chunk of the source's key ranges with plain comparisons
//! (`a > x OR (a = x AND b > y)`: ADB's documentation promises no row constructors),
//! one `SELECT` per chunk over the binary protocol (floats exact), and turned into a
//! normal form that the source's values, converted by the mapping, take too: integers
//! of every width as one kind (a `TINYINT UNSIGNED` read back from a `SMALLINT`, a
//! `BIGINT UNSIGNED` from a `DECIMAL(20,0)`), FLOAT to the 6 significant digits a
//! MySQL-protocol server prints, JSON re-serialised; values answered as text are parsed
//! by the column's kind. When a key column's
//! conversion does not keep the source's order (ENUM, SET, BIT as text), the bounds
//! would not cut ADB's rows as the source's: the whole table is read with its first
//! chunk, and `verify/rows.rs` matches keys across chunks.
//!
//! Repairs go through the destination's write path: `DELETE` by the source's key first
//! (the ADB key may extend it, and a row left under an old partition value must go),
//! then `REPLACE INTO` of the converted source rows in statements under 16 MB. The SQL
//! around the values is `sink/readback.rs`'s, shared with Lindorm.

use super::schema::{self, Layout};
use super::types::{convert, Convert};
use super::Adb;
use crate::connect::{connect, Side};
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::sink::readback::{self, parse_datetime, parse_time, KeyForm};
use crate::sink::{RowSide, RowStore};
use crate::source::snapshot::{from_mysql, Chunk};
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Result};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use tidemark_core::sql::push_literal;
use tidemark_core::{ColumnKind, Row, Value};

/// Repair statements: ADB's advice (≥ 1 000 rows, ≤ 16 MB) with room for the head.
const REPAIR_ROWS: usize = 1_000;
const REPAIR_BYTES: usize = 8 << 20;

impl RowStore for Adb {
    fn open(&self) -> Result<Box<dyn RowSide + '_>> {
        Ok(Box::new(Reader {
            kind: self,
            conn: connect(&self.endpoint, Side::Destination)?,
            tables: HashMap::new(),
        }))
    }

    fn sql_file(&self) -> (String, String) {
        (
            "-- tidemark verify --emit-sql for AnalyticDB for MySQL: apply with a MySQL client\n\
             -- (`mysql -h HOST -P PORT < FILE`). ADB runs each statement on its own (no\n\
             -- transaction is relied on); every one is a DELETE by key or a REPLACE INTO of\n\
             -- whole rows, so a file cut short can be applied again from the start.\n"
                .into(),
            String::new(),
        )
    }
}

/// What verify keeps per destination table.
struct Table {
    /// Per copied column: the conversion its values go through, and the kind of the
    /// value ADB holds (text for ENUM, SET and BIT).
    convert: Vec<Convert>,
    kinds: Vec<ColumnKind>,
    /// Positions of the source's key columns among the copied ones, in key order.
    key: Vec<usize>,
    /// Destination names of the key columns.
    key_names: Vec<String>,
    /// The key's conversions keep the source's order: chunk bounds cut ADB's rows as
    /// they cut the source's.
    ordered: bool,
    /// A merged table: the plan with its `__dts_data_source` column, this source
    /// table's value in it, and the condition that selects this source's rows.
    merged: Option<(TablePlan, Value, String)>,
}

struct Reader<'a> {
    kind: &'a Adb,
    conn: mysql::Conn,
    tables: HashMap<String, Table>,
}

/// A value in the form both ends are compared in.
fn normal(v: Value) -> Value {
    match v {
        // MySQL-protocol engines print a FLOAT to 6 significant digits (FLT_DIG).
        Value::Float(f) if f.is_finite() => Value::Float(format!("{f:.5e}").parse().unwrap_or(f)),
        Value::UInt(u) => i64::try_from(u).map(Value::Int).unwrap_or(Value::UInt(u)),
        Value::Json(b) => {
            let text = serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|j| serde_json::to_vec(&j).ok());
            Value::Json(text.unwrap_or(b))
        }
        v => v,
    }
}

/// A value read back from ADB, in the normal form. `kind`: what the source's value is
/// after the mapping. Values may come typed (the binary protocol) or as text (an
/// engine, or the stand-in, that answers every column as a string).
fn read_back(kind: ColumnKind, v: mysql::Value) -> Result<Value> {
    let mysql::Value::Bytes(b) = v else {
        return Ok(normal(from_mysql(v, kind)));
    };
    let bad = |b: &[u8]| {
        anyhow!(
            "ADB answered {:?} for a column holding {kind:?} values",
            String::from_utf8_lossy(b)
        )
    };
    let text = || std::str::from_utf8(&b).map(str::trim).map_err(|_| bad(&b));
    let v = match kind {
        // A BIGINT UNSIGNED comes back from its DECIMAL(20,0).
        ColumnKind::Int { .. } | ColumnKind::Year => {
            let s = text()?;
            match s.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::UInt(s.parse::<u64>().map_err(|_| bad(&b))?),
            }
        }
        ColumnKind::Float => Value::Float(text()?.parse().map_err(|_| bad(&b))?),
        ColumnKind::Double => Value::Double(text()?.parse().map_err(|_| bad(&b))?),
        ColumnKind::Date => Value::Date(parse_datetime(text()?).ok_or_else(|| bad(&b))?),
        ColumnKind::DateTime | ColumnKind::Timestamp => {
            Value::DateTime(parse_datetime(text()?).ok_or_else(|| bad(&b))?)
        }
        ColumnKind::Time => Value::Time(parse_time(text()?).ok_or_else(|| bad(&b))?),
        kind => from_mysql(mysql::Value::Bytes(b), kind),
    };
    Ok(normal(v))
}

/// The `type` of each column of ADB's `SHOW CREATE TABLE` (upper-case), and its
/// primary key; nothing when the text is not a table definition.
fn shown_columns(ddl: &str) -> (Vec<(String, String)>, Vec<String>) {
    match crate::source::adb::ddl::parse(ddl) {
        Ok(t) => (
            t.columns
                .into_iter()
                .map(|c| (c.name, c.ty.to_ascii_uppercase()))
                .collect(),
            t.primary_key,
        ),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

/// ADB holds the mapping's type `want` in a column shown as `have`: the same type, or
/// a wider integer.
fn compatible(want: &str, have: &str) -> bool {
    let norm = |s: &str| s.to_ascii_uppercase().replace(' ', "");
    let (want, have) = (norm(want), norm(have));
    let base = |s: &str| s.split('(').next().unwrap_or("").to_string();
    let rank = |s: &str| match s {
        "TINYINT" => Some(0),
        "SMALLINT" => Some(1),
        "INT" | "INTEGER" => Some(2),
        "BIGINT" => Some(3),
        _ => None,
    };
    match (rank(&base(&want)), rank(&base(&have))) {
        (Some(w), Some(h)) => h >= w,
        _ if base(&want) == "VARCHAR" || base(&want) == "BINARY" => base(&want) == base(&have),
        _ => want == have,
    }
}

impl Reader<'_> {
    fn info(&self, t: &TablePlan) -> Result<&Table> {
        self.tables
            .get(&t.target.to_string())
            .ok_or_else(|| anyhow!("internal: {} read before its definition", t.target))
    }

    fn layout(&self, t: &TablePlan) -> Result<(TablePlan, Layout, Option<Value>)> {
        // AUTO_INCREMENT only widens an INT to BIGINT: no value changes, and
        // `compatible` takes the wider integer.
        let (p, value) = schema::for_adb(t, &self.kind.tables);
        let l = schema::layout(&p, schema::settings_for(&self.kind.tables, t), &[])
            .map_err(|e| anyhow!("{}", e.join("; ")))?;
        Ok((p, l, value))
    }

    /// `cond`, and for a merged table, only this source table's rows.
    fn only_this_source(&self, t: &TablePlan, cond: String) -> Result<String> {
        Ok(match &self.info(t)?.merged {
            Some((_, _, mine)) if cond.is_empty() => mine.clone(),
            Some((_, _, mine)) => format!("{mine} AND ({cond})"),
            None => cond,
        })
    }

    /// Source rows converted as the writer converts them (not yet in normal form).
    fn converted(&self, t: &TablePlan, rows: &[Row]) -> Result<Vec<Row>> {
        let info = self.info(t)?;
        Ok(rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&info.convert)
                    .map(|(v, c)| convert(c, v.clone()))
                    .collect()
            })
            .collect())
    }

    fn select(
        &mut self,
        t: &TablePlan,
        cond: &str,
        out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
    ) -> Result<()> {
        let kinds = self.info(t)?.kinds.clone();
        let sql = readback::select_sql(t, cond, None);
        readback::select_rows(
            &mut self.conn,
            "ADB",
            t,
            &sql,
            true,
            &mut |i, v| read_back(kinds[i], v),
            out,
        )
    }

    /// `key op bound` over source key values, converted as the writer converts them.
    fn source_bound(&self, t: &TablePlan, op: &str, bound: &[Value]) -> Result<String> {
        let info = self.info(t)?;
        readback::key_compare(
            &info.key_names,
            bound,
            op,
            KeyForm::Expanded,
            &mut |out, n, v| {
                push_literal(out, &convert(&info.convert[info.key[n]], v.clone()));
                Ok(())
            },
        )
    }

    /// `key = values` over stored key values.
    fn stored_key(&self, t: &TablePlan, key: &[Value]) -> Result<String> {
        let info = self.info(t)?;
        readback::key_equals(&info.key_names, key, &mut |out, _, v| {
            push_literal(out, v);
            Ok(())
        })
    }
}

impl RowSide for Reader<'_> {
    fn table(&mut self, t: &TablePlan) -> Result<Vec<String>> {
        let (merged_plan, l, data_source) = self.layout(t)?;
        let def = t.def();
        let Some(source_key) = def.key.as_ref() else {
            bail!(
                "{} has no key on the source: its rows cannot be matched to ADB's",
                def.name
            );
        };
        let mut key = Vec::new();
        for k in source_key {
            key.push(
                t.copied
                    .iter()
                    .position(|c| c == k)
                    .ok_or_else(|| anyhow!("{}: a key column is not copied", def.name))?,
            );
        }
        let names = t.target_columns();
        let shown: Option<(String, String)> = self
            .conn
            .query_first(format!("SHOW CREATE TABLE {}", t.target.quoted()))
            .map_err(|e| anyhow!("the destination has no table {} ({e})", t.target))?;
        let Some((_, ddl)) = shown else {
            bail!("the destination has no table {}", t.target);
        };
        let (have, have_key) = shown_columns(&ddl);
        let mut out = Vec::new();
        let same_key = have_key.len() == l.primary_key.len()
            && have_key
                .iter()
                .zip(&l.primary_key)
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        if !same_key {
            out.push(format!(
                "primary key is ({}) on the destination, ({}) in the task's layout",
                have_key.join(", "),
                l.primary_key.join(", ")
            ));
        }
        let mut missing = Vec::new();
        for (name, m) in &l.columns {
            match have.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                None => missing.push(name.clone()),
                Some((_, ty)) if !compatible(&m.adb_type, ty) => out.push(format!(
                    "column {name} is {ty} on the destination, but the source's maps to {}",
                    m.adb_type
                )),
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            bail!(
                "the destination table lacks column(s) {}: the tables have different columns",
                missing.join(", ")
            );
        }
        for (h, _) in &have {
            let added = data_source.is_some() && h.eq_ignore_ascii_case(schema::DATA_SOURCE);
            if !added && !names.iter().any(|n| n.eq_ignore_ascii_case(h)) {
                out.push(format!("column {h} exists only on the destination"));
            }
        }
        let convert: Vec<Convert> = l
            .columns
            .iter()
            .take(t.copied.len())
            .map(|(_, m)| m.convert.clone())
            .collect();
        let merged = data_source.map(|v| {
            let mut cond = tidemark_core::sql::quote_ident(schema::DATA_SOURCE);
            cond.push_str(" = ");
            push_literal(&mut cond, &v);
            (merged_plan, v, cond)
        });
        let kinds = t
            .copied_columns()
            .zip(&convert)
            .map(|(c, how)| match how {
                Convert::EnumText(_) | Convert::SetText(_) | Convert::BitText => ColumnKind::Text,
                _ => c.kind,
            })
            .collect();
        let ordered = key.iter().all(|&i| {
            matches!(
                convert[i],
                Convert::Keep | Convert::Temporal | Convert::Time
            )
        });
        let key_names = key.iter().map(|&i| names[i].clone()).collect();
        self.tables.insert(
            t.target.to_string(),
            Table {
                convert,
                kinds,
                key,
                key_names,
                ordered,
                merged,
            },
        );
        Ok(out)
    }

    fn stored(&self, t: &TablePlan, rows: &mut [Row]) -> Result<()> {
        let info = self.info(t)?;
        for row in rows {
            for (v, c) in row.iter_mut().zip(&info.convert) {
                let taken = std::mem::replace(v, Value::Null);
                *v = normal(convert(c, taken));
            }
        }
        Ok(())
    }

    /// One `SELECT` per chunk (ADB has no read limits to page under).
    fn read(
        &mut self,
        t: &TablePlan,
        chunk: &Chunk,
        _row_bytes: u64,
        out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
    ) -> Result<()> {
        let mut cond = Vec::new();
        if self.info(t)?.ordered {
            if let Some(l) = &chunk.lower {
                cond.push(self.source_bound(t, ">", l)?);
            }
            if let Some(u) = &chunk.upper {
                cond.push(self.source_bound(t, "<=", u)?);
            }
        } else if chunk.lower.is_some() {
            // Read whole with the first chunk.
            return Ok(());
        }
        let cond: Vec<String> = cond.into_iter().map(|c| format!("({c})")).collect();
        let cond = self.only_this_source(t, cond.join(" AND "))?;
        self.select(t, &cond, out)
    }

    fn fetch(&mut self, t: &TablePlan, key: &[Value]) -> Result<Option<Row>> {
        let cond = self.stored_key(t, key)?;
        let cond = self.only_this_source(t, cond)?;
        let mut found = None;
        self.select(t, &cond, &mut |rows| {
            found = found.take().or_else(|| rows.into_iter().next());
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
            let cond = self.stored_key(t, key)?;
            let cond = self.only_this_source(t, cond)?;
            statements.push(readback::delete_sql(t, &cond));
        }
        let info = self.info(t)?;
        let (written, value) = match &info.merged {
            Some((p, v, _)) => (p, Some(v.clone())),
            None => (t, None),
        };
        let mut b = InsertBuilder::new(written, InsertMode::Replace, REPAIR_ROWS, REPAIR_BYTES);
        for mut row in self.converted(t, rows)? {
            row.extend(value.clone());
            if b.push(&row) {
                statements.push(b.take().body);
            }
        }
        if !b.is_empty() {
            statements.push(b.take().body);
        }
        readback::apply(&mut self.conn, "ADB", t, &statements, sql_out)?;
        Ok((rows.len() + keys.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adb_definitions_are_read_and_integers_widen() {
        let ddl = "CREATE TABLE `t` (\n  `id` BIGINT NOT NULL,\n  `day` DATE NOT NULL,\n  `v` DECIMAL(20,0) NULL,\n  PRIMARY KEY (`id`,`day`)\n) DISTRIBUTED BY HASH(`id`) INDEX_ALL='Y'";
        let (cols, key) = shown_columns(ddl);
        assert_eq!(
            cols,
            vec![
                ("id".to_string(), "BIGINT".to_string()),
                ("day".into(), "DATE".into()),
                ("v".into(), "DECIMAL(20,0)".into())
            ]
        );
        assert_eq!(key, vec!["id".to_string(), "day".into()]);
        assert!(compatible("INT", "BIGINT") && !compatible("BIGINT", "INT"));
        assert!(compatible("VARCHAR", "VARCHAR(255)") && !compatible("VARCHAR", "BINARY"));
        assert!(compatible("DECIMAL(20,0)", "decimal(20, 0)"));
    }

    #[test]
    fn both_ends_meet_in_one_normal_form() {
        // A TINYINT UNSIGNED read back from its SMALLINT, a BIGINT UNSIGNED from its
        // DECIMAL(20,0).
        let unsigned = ColumnKind::Int { unsigned: true };
        assert_eq!(
            read_back(unsigned, mysql::Value::Int(200)).unwrap(),
            normal(Value::UInt(200))
        );
        assert_eq!(
            read_back(
                unsigned,
                mysql::Value::Bytes(b"18446744073709551615".to_vec())
            )
            .unwrap(),
            normal(Value::UInt(u64::MAX))
        );
        assert_eq!(
            normal(Value::Json(b"{\"a\": 1}".to_vec())),
            normal(Value::Json(b"{\"a\":1}".to_vec()))
        );
    }
}
