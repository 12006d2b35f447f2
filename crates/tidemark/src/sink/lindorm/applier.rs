//! The Lindorm destination's change applier: a batch is coalesced per key (the MySQL
//! applier's [`Coalescer`]: the last after-image of each key or its deletion, a key
//! change as a delete of the old key and an upsert of the new) and split by key hash
//! over one connection per `incremental.threads`, so changes to one key stay in source
//! order on one connection. A flush returns once every request of every share was
//! acknowledged; a share that loses its connection is sent again whole (idempotent).
//!
//! DDL: CREATE TABLE (mapped from the source's definition), DROP TABLE, and ALTER TABLE
//! … ADD COLUMN (name and mapped type only: attributes are dropped, as the engine
//! requires); any other statement is logged, skipped and counted as rejected, and so is
//! an ALTER TABLE whose ADD COLUMN clauses come with others (the columns are added, the
//! rest is not).

use super::types::{self, LindormTable};
use super::write::{delete, Upserts};
use super::Lindorm;
use crate::config::Task;
use crate::connect::{connect, describe, transient, Side, Transient};
use crate::sink::mysql::apply::{Coalescer, Work};
use crate::sink::{Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::transform::ddl::{Kind as DdlKind, Statement};
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::{Change, TableName};

pub(super) struct Applier<'a> {
    kind: &'a Lindorm,
    task: &'a Task,
    counters: &'a super::Counters,
    batch: Coalescer,
    conns: Vec<mysql::Conn>,
    /// Definitions after DDL come from the source (the engine's are not MySQL's).
    source: mysql::Conn,
    /// The session database of the transaction's DDL, and the source table it names
    /// first (database, table).
    ddl_database: String,
    ddl_source: Option<(String, String)>,
}

impl<'a> Applier<'a> {
    pub(super) fn new(
        kind: &'a Lindorm,
        task: &'a Task,
        counters: &'a super::Counters,
    ) -> Result<Applier<'a>> {
        let threads = task.incremental.threads_for(None);
        let conns = (0..threads)
            .map(|_| kind.connect())
            .collect::<Result<Vec<_>>>()?;
        Ok(Applier {
            kind,
            task,
            counters,
            batch: Coalescer::new(threads, false),
            conns,
            source: connect(&task.source, Side::Source)?,
            ddl_database: String::new(),
            ddl_source: None,
        })
    }

    /// Runs a DDL statement, retrying lost connections; `Ok(Err(why))` when the engine
    /// refused it.
    fn run(&mut self, sql: &str) -> Result<Result<(), String>> {
        let started = Instant::now();
        loop {
            match self.conns[0].query_drop(sql) {
                Ok(()) => return Ok(Ok(())),
                Err(mysql::Error::MySqlError(m))
                    if transient(&mysql::Error::MySqlError(m.clone())).is_none() =>
                {
                    return Ok(Err(format!("Lindorm refused it: {}", m.message)));
                }
                Err(e) => match transient(&e) {
                    Some(kind) if started.elapsed() < window(self.task, kind) => {
                        tracing::warn!(
                            "incremental: Lindorm DDL failed ({}), retrying",
                            describe(&e, &self.kind.endpoint, Side::Destination)
                        );
                        self.conns[0] = self.kind.reconnect(started + window(self.task, kind))?;
                    }
                    _ => return Err(anyhow!(e).context(format!("while applying: {sql}"))),
                },
            }
        }
    }

    fn source_table(&mut self, db: &str, name: &str) -> Result<Option<catalog::TableInfo>> {
        let info = catalog::read_database(&mut self.source, db)?;
        Ok(info.and_then(|d| d.tables.into_iter().find(|t| t.def.name.table == name)))
    }

    /// The target and source names of the first table a statement names.
    fn names(&self, st: &Statement, d: &Ddl<'_>) -> Option<(TableName, (String, String))> {
        let n = st.tables.first()?;
        let db = n
            .database
            .clone()
            .or_else(|| d.use_db.map(str::to_string))
            .unwrap_or_else(|| self.ddl_database.clone());
        let source = self
            .ddl_source
            .clone()
            .unwrap_or_else(|| (db.clone(), n.name.clone()));
        Some((TableName::new(db, n.name.clone()), source))
    }
}

/// The task's retry window for an error of this kind.
fn window(task: &Task, kind: Transient) -> Duration {
    match kind {
        Transient::Connection => task.advanced.connection_window(),
        Transient::Other => task.advanced.other_window(),
    }
}

/// Of an ALTER TABLE's clauses: whether any adds a column, and whether all do.
fn add_column_clauses(sql: &str) -> (bool, bool) {
    let mut clauses: Vec<Vec<String>> = vec![Vec::new()];
    let (mut word, mut depth, mut quote) = (String::new(), 0i32, None::<char>);
    let end_word = |word: &mut String, clauses: &mut Vec<Vec<String>>| {
        if !word.is_empty() {
            if let Some(c) = clauses.last_mut() {
                c.push(std::mem::take(word).to_ascii_uppercase());
            }
        }
    };
    for ch in sql.chars() {
        if let Some(q) = quote {
            word.push(ch);
            if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '`' | '\'' | '"' => {
                quote = Some(ch);
                word.push(ch);
            }
            '(' => {
                depth += 1;
                word.push(ch);
            }
            ')' => {
                depth -= 1;
                word.push(ch);
            }
            ',' if depth == 0 => {
                end_word(&mut word, &mut clauses);
                clauses.push(Vec::new());
            }
            c if c.is_whitespace() && depth == 0 => end_word(&mut word, &mut clauses),
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut clauses);
    // The first clause starts with ALTER [ONLINE|IGNORE] TABLE [IF EXISTS] name.
    if let Some(first) = clauses.first_mut() {
        let Some(t) = first.iter().position(|w| w == "TABLE") else {
            return (false, false);
        };
        let mut skip = t + 1;
        if first.get(skip).map(String::as_str) == Some("IF") {
            skip += 2;
        }
        first.drain(..(skip + 1).min(first.len()));
    }
    const NOT_COLUMNS: [&str; 12] = [
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
        "PERIOD",
        "SYSTEM",
    ];
    let adds = |c: &Vec<String>| {
        c.first().map(String::as_str) == Some("ADD")
            && c.get(1).is_some_and(|w| !NOT_COLUMNS.contains(&w.as_str()))
    };
    (clauses.iter().any(adds), clauses.iter().all(adds))
}

impl crate::sink::ChangeApplier for Applier<'_> {
    fn begin_txn(&mut self, txn: &Txn) {
        if let Some(ddl) = &txn.ddl {
            self.ddl_database = ddl.database.clone();
            // The statement `ddl()` gets names the destination's tables: the source's
            // are read from the binlog's text.
            self.ddl_source = Statement::parse(&ddl.statement).tables.first().map(|n| {
                (
                    n.database.clone().unwrap_or_else(|| ddl.database.clone()),
                    n.name.clone(),
                )
            });
        }
    }

    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        if plan.def().key.is_none() {
            bail!(
                "{} has no primary key: LindormTable rows are identified by their key; add one on the source or leave the table out",
                plan.def().name
            );
        }
        for change in changes {
            self.batch.push(plan, change);
        }
        Ok(())
    }

    fn pending_rows(&self) -> usize {
        self.batch.rows
    }

    /// Nothing in flight: `flush` returns once its batch is written.
    fn settle(&mut self) -> Result<()> {
        Ok(())
    }

    fn busy(&self) -> bool {
        false
    }

    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>> {
        if self.batch.is_empty() {
            return Ok(None);
        }
        let (rows, bytes) = (self.batch.rows as u64, self.batch.bytes);
        (f.in_flight)()?;
        let shares = self.batch.take();
        let (kind, task) = (self.kind, self.task);
        let results: Vec<Result<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .conns
                .iter_mut()
                .zip(shares.iter())
                .filter(|(_, w)| !w.is_empty())
                .map(|(conn, work)| s.spawn(move || apply_with_retry(kind, task, conn, work)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a Lindorm apply thread panicked")))
                })
                .collect()
        });
        let mut skipped = 0;
        for r in results {
            skipped += r?;
        }
        if skipped > 0 {
            self.counters
                .skipped_large
                .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
            self.counters.save(f.store)?;
        }
        Ok(Some((rows, bytes)))
    }

    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        let st = Statement::parse(d.sql);
        let skipped = |why: &str| {
            tracing::error!(
                "incremental: DDL not migrated to Lindorm ({why}), skipped: {}",
                d.sql
            );
            Ok(DdlOutcome::Rejected(format!("{why}: {}", d.sql)))
        };
        match st.kind {
            DdlKind::CreateTable => {
                let Some((target, (db, name))) = self.names(&st, d) else {
                    return skipped("no table named");
                };
                let Some(info) = self.source_table(&db, &name)? else {
                    return skipped(
                        "the table is no longer on the source to read its definition from",
                    );
                };
                let cols: Vec<_> = info
                    .def
                    .columns
                    .iter()
                    .filter(|c| !c.generated)
                    .map(|c| (c.name.clone(), c))
                    .collect();
                let Some(key) = info.def.key.as_ref() else {
                    return skipped("the table has no primary key, which LindormTable needs");
                };
                let key: Vec<String> = key
                    .iter()
                    .map(|&i| info.def.columns[i].name.clone())
                    .collect();
                let sql = match types::create_table(&target, &cols, &key) {
                    Ok(sql) => sql,
                    Err(e) => return skipped(&e),
                };
                match self.run(&sql)? {
                    Ok(()) => Ok(DdlOutcome::Applied),
                    Err(why) => skipped(&why),
                }
            }
            DdlKind::DropTable => {
                for n in &st.tables {
                    let db = n
                        .database
                        .clone()
                        .or_else(|| d.use_db.map(str::to_string))
                        .unwrap_or_else(|| self.ddl_database.clone());
                    let sql = format!(
                        "DROP TABLE IF EXISTS {}",
                        TableName::new(db, n.name.clone()).quoted()
                    );
                    if let Err(why) = self.run(&sql)? {
                        return skipped(&why);
                    }
                }
                Ok(DdlOutcome::Applied)
            }
            DdlKind::AlterTable if st.tables.len() == 1 && add_column_clauses(d.sql).0 => {
                let Some((target, (db, name))) = self.names(&st, d) else {
                    return skipped("no table named");
                };
                let Some(info) = self.source_table(&db, &name)? else {
                    return skipped(
                        "the table is no longer on the source to read its definition from",
                    );
                };
                let shown: Option<(String, String)> = self.conns[0]
                    .query_first(format!("SHOW CREATE TABLE {}", target.quoted()))
                    .with_context(|| format!("reading {target} on Lindorm"))?;
                let have = LindormTable::parse(&shown.map(|s| s.1).unwrap_or_default())?;
                let mut added = 0;
                for c in info.def.columns.iter().filter(|c| !c.generated) {
                    if have.column(&c.name).is_some() {
                        continue;
                    }
                    let ty = match types::lindorm_type(c) {
                        Ok(t) => t,
                        Err(e) => return skipped(&format!("column {}: {e}", c.name)),
                    };
                    let sql = format!(
                        "ALTER TABLE {} ADD COLUMN {} {ty}",
                        target.quoted(),
                        tidemark_core::sql::quote_ident(&c.name)
                    );
                    if let Err(why) = self.run(&sql)? {
                        return skipped(&why);
                    }
                    added += 1;
                }
                if !add_column_clauses(d.sql).1 {
                    // The columns are there for the rows that follow; the rest is not.
                    return skipped("only its ADD COLUMN clauses were applied");
                }
                Ok(if added == 0 && d.replay {
                    DdlOutcome::AlreadyApplied
                } else {
                    DdlOutcome::Applied
                })
            }
            _ => skipped(
                "LindormTable takes only CREATE TABLE, DROP TABLE and ALTER TABLE … ADD COLUMN",
            ),
        }
    }

    /// From the source: the engine's definitions are not MySQL's.
    fn read_table(
        &mut self,
        source: &TableName,
        _target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        self.source_table(&source.database, &source.table)
    }

    /// Upserted, so rows already there are overwritten.
    fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        // A table renamed into the selection: created from its definition (as an
        // incremental CREATE TABLE is), since the tracker creates tables only on kinds
        // whose tables it can read back.
        let (cols, key) = super::target_columns(plan);
        let create = super::types::create_table(&plan.target, &cols, &key)
            .map_err(|e| anyhow!("{} cannot be created on Lindorm: {e}", plan.target))?;
        if let Err(why) = self.run(&create)? {
            bail!(
                "creating {} on Lindorm for the table renamed into the selection: {why}",
                plan.target
            );
        }
        let mut rows = 0u64;
        let config = &self.kind.config;
        let mut upserts = Upserts::new(plan, config.batch_rows, config.batch_bytes)?
            .filtering(config.filter_large_messages);
        let conn = &mut self.conns[0];
        crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
            rows += 1;
            if let Some((sql, _)) = upserts.push(&row)? {
                conn.query_drop(sql)?;
            }
            Ok(())
        })?;
        if let Some((sql, _)) = upserts.take() {
            conn.query_drop(sql)?;
        }
        self.counters
            .skipped_large
            .fetch_add(upserts.skipped, std::sync::atomic::Ordering::Relaxed);
        Ok(rows)
    }

    fn shutdown(&mut self) {}
}

/// Writes one share: deletes by key, then upserts (its keys are distinct, so the order
/// between them does not matter); sent again whole after a lost connection. Returns
/// the rows skipped for their size (`filter_large_messages`).
fn apply_with_retry(
    kind: &Lindorm,
    task: &Task,
    conn: &mut mysql::Conn,
    work: &Work,
) -> Result<u64> {
    let started = Instant::now();
    loop {
        match apply(kind, conn, work) {
            Ok(skipped) => return Ok(skipped),
            Err(Failed::Sql(e, sql)) => match transient(&e) {
                Some(k) if started.elapsed() < window(task, k) => {
                    tracing::warn!(
                        "incremental: writing to Lindorm failed ({}), sending the share again",
                        describe(&e, &kind.endpoint, Side::Destination)
                    );
                    std::thread::sleep(Duration::from_millis(200));
                    if k == Transient::Connection {
                        *conn = kind.reconnect(started + window(task, k))?;
                    }
                }
                _ => {
                    let head: String = sql.chars().take(200).collect();
                    return Err(anyhow!("Lindorm rejected a change: {e}")
                        .context(format!("while applying: {head}…")));
                }
            },
            Err(Failed::Other(e)) => return Err(e),
        }
    }
}

enum Failed {
    Sql(mysql::Error, String),
    Other(anyhow::Error),
}

fn apply(kind: &Lindorm, conn: &mut mysql::Conn, work: &Work) -> Result<u64, Failed> {
    let mut skipped = 0;
    let mut send = |sql: String| conn.query_drop(&sql).map_err(|e| Failed::Sql(e, sql));
    for (plan, tw) in work {
        if !tw.ordered.is_empty() {
            return Err(Failed::Other(anyhow!(
                "{} has no primary key, which LindormTable needs",
                plan.def().name
            )));
        }
        for key in &tw.deletes {
            send(delete(plan, key).map_err(Failed::Other)?)?;
        }
        let mut upserts = Upserts::new(plan, kind.config.batch_rows, kind.config.batch_bytes)
            .map_err(Failed::Other)?
            .filtering(kind.config.filter_large_messages);
        for row in tw.upserts.iter().chain(&tw.inserts) {
            if let Some((sql, _)) = upserts.push(row).map_err(Failed::Other)? {
                send(sql)?;
            }
        }
        if let Some((sql, _)) = upserts.take() {
            send(sql)?;
        }
        skipped += upserts.skipped;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::add_column_clauses;

    #[test]
    fn add_column_clauses_are_told_from_the_rest() {
        let f = add_column_clauses;
        assert_eq!(
            f("ALTER TABLE `d`.`t` ADD COLUMN x INT DEFAULT 7"),
            (true, true)
        );
        assert_eq!(
            f("ALTER TABLE t ADD x INT, ADD COLUMN (y INT, z INT)"),
            (true, true)
        );
        assert_eq!(
            f("ALTER TABLE t ADD COLUMN x INT, ADD INDEX i (x)"),
            (true, false)
        );
        assert_eq!(f("ALTER TABLE t ADD INDEX i (x)"), (false, false));
        assert_eq!(f("ALTER TABLE `a b`.`t,u` DROP COLUMN x"), (false, false));
        assert_eq!(f("ALTER TABLE t MODIFY x BIGINT, ADD y INT"), (true, false));
    }
}
