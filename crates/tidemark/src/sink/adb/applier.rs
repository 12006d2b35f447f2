//! The ADB destination's change applier: binlog changes converted under the type
//! mapping and written by the MySQL destination's applier (`sink/mysql/applier.rs`):
//! coalesced per key, `DELETE … WHERE key IN (…)` in batches and `REPLACE INTO` for
//! inserts and updates (never INSERT: ADB's INSERT keeps a row already there), an update
//! of the key as a DELETE of the old key and a REPLACE of the new one.
//!
//! Rows are identified by the destination's primary key, which may extend the source's
//! (ADB wants the partition column in it): the plan handed on has that key, so changing
//! a partition column also deletes the row under its old key.
//!
//! DDL: `ALTER TABLE … ADD [COLUMN]` and `DROP [COLUMN]` are applied, with the column
//! type mapped; a plain `CREATE TABLE` is created from the source's definition in
//! ADB's form; everything else is logged and skipped (counted as rejected in `status`).

use super::config::TableSettings;
use super::schema::{self, Layout};
use super::types::{convert, map, Convert};
use crate::config::Task;
use crate::connect::{connect, connect_raw, Side};
use crate::endpoint::Endpoint;
use crate::sink::mysql::applier::Applier as MysqlApplier;
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::sink::{ChangeApplier, Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::transform::mapping::TablePlan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;
use tidemark_core::sql::quote_ident;
use tidemark_core::{Change, ColumnDef, ColumnKind, Row, TableName, Value};

/// A task plan (kept alive), the plan with the destination key, the conversions, the
/// value of a merged table's `__dts_data_source`.
type Keyed = (Arc<TablePlan>, Arc<TablePlan>, Vec<Convert>, Option<Value>);

pub(super) struct Applier<'a> {
    inner: MysqlApplier<'a>,
    settings: &'a [TableSettings],
    /// Definitions are read from the source (the destination's types are ADB's).
    source: mysql::Conn,
    source_kind: crate::config::SourceKind,
    /// For tables copied in mid-stream.
    dst: mysql::Conn,
    /// By the address of the task's plan (kept alive here, so the address is not reused):
    /// the plan with the destination key, and per source column its conversion.
    plans: HashMap<usize, Keyed>,
}

impl<'a> Applier<'a> {
    pub(super) fn new(
        task: &'a Task,
        endpoint: &'a Endpoint,
        settings: &'a [TableSettings],
    ) -> Result<Applier<'a>> {
        Ok(Applier {
            inner: MysqlApplier::new(task, endpoint)?,
            settings,
            source: connect(&task.source, Side::Source)?,
            source_kind: task.source_kind,
            dst: connect_raw(endpoint, Side::Destination)?,
            plans: HashMap::new(),
        })
    }

    /// `plan` as ADB holds it (merged tables' column added), its layout and the value
    /// of the merged tables' column.
    fn layout(&self, plan: &TablePlan) -> Result<(TablePlan, Layout, Option<Value>)> {
        let (p, value) = schema::for_adb(plan, self.settings);
        let l = schema::layout(&p, schema::settings_for(self.settings, plan), &[])
            .map_err(|e| anyhow::anyhow!("{}", e.join("; ")))?;
        Ok((p, l, value))
    }
}

impl Applier<'_> {
    /// A table created on the source mid-stream: created on ADB from the source's
    /// definition (the statement's MySQL DDL is not ADB's), with the table's settings.
    fn create_from_source(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        let Some(name) = created_table(d.sql, d.use_db) else {
            return Ok(DdlOutcome::Rejected(d.sql.to_string()));
        };
        let Some(info) = crate::source::read_table(self.source_kind, &mut self.source, &name)?
        else {
            return Ok(DdlOutcome::Rejected(format!(
                "{name} is not on the source any more: {}",
                d.sql
            )));
        };
        let plan = crate::transform::mapping::whole_table(info, name.clone(), Default::default());
        let ai = schema::auto_increment(&mut self.source, &plan)?;
        let (plan, _) = schema::for_adb(&plan, self.settings);
        let l = match schema::layout(&plan, schema::settings_for(self.settings, &plan), &ai) {
            Ok(l) => l,
            Err(p) => {
                let why = p.join("; ");
                tracing::error!("incremental: {name} cannot be created on ADB: {why}");
                return Ok(DdlOutcome::Rejected(format!("{why}: {}", d.sql)));
            }
        };
        let create = schema::create_table(&plan, &l);
        tracing::info!("incremental: DDL for ADB: {create}");
        self.inner.ddl(&Ddl {
            use_db: d.use_db,
            sql: &create,
            replay: d.replay,
        })
    }
}

/// The table of a plain `CREATE TABLE [IF NOT EXISTS] name (…)` (not `LIKE`, not `AS
/// SELECT`), qualified with `use_db`.
fn created_table(sql: &str, use_db: Option<&str>) -> Option<TableName> {
    let rest = strip_kw(sql, "CREATE")?;
    let rest = strip_kw(rest, "TABLE")?;
    let rest = strip_kw(rest, "IF")
        .and_then(|r| strip_kw(r, "NOT"))
        .and_then(|r| strip_kw(r, "EXISTS"))
        .unwrap_or(rest);
    let (first, rest) = word(rest)?;
    let (db, table, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let (t, r) = word(r)?;
            (first, t, r)
        }
        None => (use_db?.to_string(), first, rest),
    };
    let upper = rest.to_ascii_uppercase();
    if !rest.trim_start().starts_with('(') || upper.contains(" SELECT ") || upper.contains(" LIKE ")
    {
        return None;
    }
    Some(TableName::new(db, table))
}

/// `plan` with the destination's key, by which rows are matched there.
fn keyed(plan: &TablePlan, l: &Layout) -> TablePlan {
    let mut p = plan.clone();
    p.source.def.key = Some(l.key_positions.clone());
    p
}

fn convert_row(conv: &[Convert], row: Row) -> Row {
    row.into_iter()
        .enumerate()
        .map(|(i, v)| match conv.get(i) {
            Some(c) => convert(c, v),
            None => v,
        })
        .collect()
}

impl ChangeApplier for Applier<'_> {
    fn begin_txn(&mut self, txn: &Txn) {
        self.inner.begin_txn(txn);
    }

    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        let id = Arc::as_ptr(plan) as usize;
        if !self.plans.contains_key(&id) {
            let (p, l, value) = self.layout(plan)?;
            let conv = schema::conversions(&p, &l);
            self.plans
                .insert(id, (plan.clone(), Arc::new(keyed(&p, &l)), conv, value));
        }
        let (_, adb_plan, conv, value) = &self.plans[&id];
        let convert_row = |row: Row| {
            let mut row = convert_row(conv, row);
            row.extend(value.clone());
            row
        };
        let changes = changes
            .into_iter()
            .map(|c| match c {
                Change::Insert {
                    table,
                    row,
                    snapshot,
                } => Change::Insert {
                    table,
                    row: convert_row(row),
                    snapshot,
                },
                Change::Update {
                    table,
                    before,
                    after,
                } => Change::Update {
                    table,
                    before: convert_row(before),
                    after: convert_row(after),
                },
                Change::Delete { table, before } => Change::Delete {
                    table,
                    before: convert_row(before),
                },
                other => other,
            })
            .collect();
        let adb_plan = adb_plan.clone();
        self.inner.push(&adb_plan, changes)
    }

    fn pending_rows(&self) -> usize {
        self.inner.pending_rows()
    }

    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>> {
        // Never "exact": ADB's INSERT would keep a row already there without an error,
        // so rows are always REPLACEd.
        self.inner.flush(&Flush {
            exact: false,
            store: f.store,
            in_flight: f.in_flight,
        })
    }

    /// The MySQL applier's flush returns while its batch is being written.
    fn settle(&mut self) -> Result<()> {
        self.inner.settle()
    }

    fn busy(&self) -> bool {
        self.inner.busy()
    }

    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        // The plans change with the table: read again at the next change.
        self.plans.clear();
        match translate(d.sql) {
            Ok(sql) => {
                tracing::info!("incremental: DDL for ADB: {sql}");
                self.inner.ddl(&Ddl {
                    use_db: d.use_db,
                    sql: &sql,
                    replay: d.replay,
                })
            }
            Err(_) if created_table(d.sql, d.use_db).is_some() => self.create_from_source(d),
            Err(why) => {
                tracing::warn!(
                    "incremental: DDL skipped on the ADB destination ({why}): {}",
                    d.sql
                );
                Ok(DdlOutcome::Rejected(format!(
                    "skipped for ADB ({why}): {}",
                    d.sql
                )))
            }
        }
    }

    /// From the source: the binlog's rows are decoded with the source's types.
    fn read_table(
        &mut self,
        source: &TableName,
        _target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        crate::source::read_table(self.source_kind, &mut self.source, source)
    }

    /// A table renamed into the selection: created in ADB's dialect, then its rows
    /// REPLACEd.
    fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        let ai = schema::auto_increment(src, plan)?;
        let source_plan = plan;
        let (plan, value) = schema::for_adb(plan, self.settings);
        let plan = &plan;
        let l = schema::layout(plan, schema::settings_for(self.settings, plan), &ai)
            .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
        let create = schema::create_table(plan, &l);
        self.dst
            .query_drop(&create)
            .with_context(|| format!("creating {} on ADB:\n{create}", plan.target))?;
        let conv: Vec<Convert> = schema::conversions(plan, &l);
        let conv: Vec<Convert> = plan.copied.iter().map(|&i| conv[i].clone()).collect();
        let mut rows = 0u64;
        let dst = &mut self.dst;
        let mut b = InsertBuilder::new(plan, InsertMode::Replace, 1_000, 8 << 20);
        crate::source::snapshot::read_chunk(src, source_plan, chunk, |row| {
            rows += 1;
            let mut row: Row = row
                .into_iter()
                .zip(&conv)
                .map(|(v, c)| convert(c, v))
                .collect();
            row.extend(value.clone());
            if b.push(&row) {
                dst.query_drop(b.take().body)?;
            }
            Ok(())
        })?;
        if !b.is_empty() {
            dst.query_drop(b.take().body)?;
        }
        Ok(rows)
    }

    fn shutdown(&mut self) {
        self.inner.shutdown();
    }
}

/// Splits at top-level commas (outside quotes and parentheses).
fn clauses(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quote, mut start) = (Vec::new(), 0i32, None::<char>, 0);
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// The next word or identifier of `s` and the rest.
fn word(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if s.starts_with('`') {
        let (name, rest) = tidemark_core::sql::take_ident(s)?;
        return Some((name, rest));
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].to_string(), &s[end..]))
}

fn strip_kw<'s>(s: &'s str, kw: &str) -> Option<&'s str> {
    let t = s.trim_start();
    let head = t.get(..kw.len())?;
    let after = &t[kw.len()..];
    (head.eq_ignore_ascii_case(kw) && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        .then_some(after)
}

/// The table reference of `ALTER TABLE <name>`: quoted parts joined by dots.
fn table_ref(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let mut end = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if c == '`' {
            quoted = !quoted;
        } else if !quoted && c.is_whitespace() {
            break;
        }
        end = i + c.len_utf8();
    }
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

/// A MySQL `ALTER TABLE` that only adds and drops columns, in ADB's form; otherwise why
/// ADB does not take it.
pub fn translate(sql: &str) -> Result<String, String> {
    let not = || "ADB takes only ALTER TABLE … ADD/DROP COLUMN".to_string();
    let rest = strip_kw(sql, "ALTER").ok_or_else(not)?;
    let rest = strip_kw(rest, "TABLE").ok_or_else(not)?;
    let (table, rest) = table_ref(rest).ok_or_else(not)?;
    let mut out = Vec::new();
    for clause in clauses(rest) {
        if let Some(r) = strip_kw(clause, "ADD") {
            let r = strip_kw(r, "COLUMN").unwrap_or(r);
            let first = word(r)
                .map(|w| w.0.to_ascii_uppercase())
                .unwrap_or_default();
            if [
                "INDEX",
                "KEY",
                "UNIQUE",
                "PRIMARY",
                "CONSTRAINT",
                "FOREIGN",
                "FULLTEXT",
                "SPATIAL",
                "PARTITION",
                "CHECK",
                "IF",
            ]
            .contains(&first.as_str())
                && !r.trim_start().starts_with('`')
            {
                return Err(not());
            }
            if r.trim_start().starts_with('(') {
                return Err("ADD COLUMN (…) lists are not translated".into());
            }
            out.push(format!("ADD COLUMN {}", add_column(r)?));
        } else if let Some(r) = strip_kw(clause, "DROP") {
            let r = strip_kw(r, "COLUMN").unwrap_or(r);
            let (name, after) = word(r).ok_or_else(not)?;
            if [
                "PRIMARY",
                "INDEX",
                "KEY",
                "FOREIGN",
                "CONSTRAINT",
                "CHECK",
                "PARTITION",
            ]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&name))
                || !after.trim().is_empty()
            {
                return Err(not());
            }
            out.push(format!("DROP COLUMN {}", quote_ident(&name)));
        } else {
            return Err(not());
        }
    }
    Ok(format!("ALTER TABLE {table} {}", out.join(", ")))
}

/// `name type [NOT NULL|NULL] [DEFAULT const] …` in ADB's form: the type mapped, NOT
/// NULL kept only with a constant default (existing rows need a value), the rest
/// (charset, comments, AFTER/FIRST: ADB cannot reorder) left out.
fn add_column(def: &str) -> Result<String, String> {
    let (name, rest) = word(def).ok_or("ADD COLUMN without a column name")?;
    let rest = rest.trim_start();
    // The type: up to the first top-level space after its parentheses.
    let mut end = 0;
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, c) if c.is_whitespace() && depth == 0 => break,
            _ => {}
        }
        end = i + c.len_utf8();
    }
    let mut ty = rest[..end].to_string();
    let mut tail = &rest[end..];
    // `int unsigned`, `bigint unsigned zerofill`.
    for kw in ["UNSIGNED", "ZEROFILL", "SIGNED"] {
        if let Some(t) = strip_kw(tail, kw) {
            if kw == "UNSIGNED" {
                ty.push_str(" unsigned");
            }
            tail = t;
        }
    }
    let data_type = ty
        .split(['(', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let upper = tail.to_ascii_uppercase();
    let c = ColumnDef {
        name: name.clone(),
        column_type: ty.to_ascii_lowercase(),
        kind: ColumnKind::from_data_type(&data_type, &ty),
        nullable: !upper.contains("NOT NULL"),
        generated: upper.contains(" AS ") || upper.contains("GENERATED"),
        invisible: false,
        charset: None,
    };
    if c.generated {
        return Err("generated columns are not migrated to ADB".into());
    }
    let m = map(&c, upper.contains("AUTO_INCREMENT"))?;
    let default = upper.find("DEFAULT").and_then(|at| {
        let v = tail[at + "DEFAULT".len()..].trim_start();
        if let Some(body) = v.strip_prefix('\'') {
            let mut end = None;
            let b = body.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                    b'\'' => {
                        end = Some(i);
                        break;
                    }
                    _ => i += 1,
                }
            }
            end.map(|e| format!("'{}'", &body[..e]))
        } else {
            let n: String = v
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '+'))
                .collect();
            (!n.is_empty()).then_some(n)
        }
    });
    let keep_default = default.is_some() && m.convert == Convert::Keep;
    let mut out = format!("{} {}", quote_ident(&name), m.adb_type);
    match (&default, c.nullable, keep_default) {
        (Some(d), false, true) => out.push_str(&format!(" DEFAULT {d} NOT NULL")),
        (Some(d), true, true) => out.push_str(&format!(" DEFAULT {d} NULL")),
        // MySQL fills existing rows with the type's implicit default.
        (None, false, _) if m.convert == Convert::Keep && implicit(&c.kind).is_some() => out
            .push_str(&format!(
                " DEFAULT {} NOT NULL",
                implicit(&c.kind).unwrap_or_default()
            )),
        _ => out.push_str(" NULL"),
    }
    Ok(out)
}

/// The value MySQL gives existing rows for a NOT NULL column added without a default.
fn implicit(kind: &ColumnKind) -> Option<&'static str> {
    match kind {
        ColumnKind::Int { .. } | ColumnKind::Decimal | ColumnKind::Float | ColumnKind::Double => {
            Some("0")
        }
        ColumnKind::Text => Some("''"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn add_and_drop_column_are_translated() {
        assert_eq!(
            translate(
                "ALTER TABLE `d`.`t` ADD COLUMN `n` int(10) unsigned NOT NULL DEFAULT 7 AFTER `a`"
            )
            .unwrap(),
            "ALTER TABLE `d`.`t` ADD COLUMN `n` BIGINT DEFAULT 7 NOT NULL"
        );
        assert_eq!(
            translate("alter table t add note varchar(20) default 'it''s', drop column old")
                .unwrap(),
            "ALTER TABLE t ADD COLUMN `note` VARCHAR DEFAULT 'it''s' NULL, DROP COLUMN `old`"
        );
        assert_eq!(
            translate("ALTER TABLE t ADD c int NOT NULL").unwrap(),
            "ALTER TABLE t ADD COLUMN `c` INT DEFAULT 0 NOT NULL"
        );
        assert_eq!(
            translate("ALTER TABLE t ADD e enum('a','b')").unwrap(),
            "ALTER TABLE t ADD COLUMN `e` VARCHAR NULL"
        );
    }

    #[test]
    fn created_tables_are_named() {
        use super::created_table;
        use tidemark_core::TableName;
        assert_eq!(
            created_table("CREATE TABLE IF NOT EXISTS `d`.`t` (a int)", None),
            Some(TableName::new("d", "t"))
        );
        assert_eq!(
            created_table("create table t (a int)", Some("db")),
            Some(TableName::new("db", "t"))
        );
        assert_eq!(created_table("CREATE TABLE t LIKE u", Some("db")), None);
        assert_eq!(
            created_table("CREATE TABLE t AS SELECT 1", Some("db")),
            None
        );
    }

    #[test]
    fn other_ddl_is_refused_with_a_reason() {
        for sql in [
            "ALTER TABLE t ADD INDEX i (a)",
            "ALTER TABLE t MODIFY a bigint",
            "ALTER TABLE t DROP PRIMARY KEY",
            "CREATE TABLE x (a int)",
            "TRUNCATE TABLE t",
            "ALTER TABLE t ADD g polygon",
        ] {
            assert!(translate(sql).is_err(), "{sql}");
        }
    }
}
