//! The schema tracker: the table definitions binlog rows are decoded with, following
//! the binlog's DDL (applied to the destination as it goes), online schema change
//! tools, and tables renamed into the selection.

use super::*;
use crate::config::{OnlineDdl, Task};
use crate::connect::{connect, Side};
use crate::source::binlog::stream::{Ddl, Txn};
use crate::source::binlog::value::conform;
use crate::source::binlog::RowsKind;
use crate::source::catalog;
use crate::source::snapshot::Chunk;
use crate::state::Store;
use crate::transform::ddl::{Kind, NameRef, Statement};
use crate::transform::filter::Filter;
use crate::transform::mapping::{self, Operations, Plan, TablePlan};
use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tidemark_core::{Change, Position, Row, TableDef, TableName, Value};

/// The table definitions rows are decoded with, by source name.
pub(super) struct Tracker {
    pub(super) tables: HashMap<(String, String), Arc<TablePlan>>,
    /// Source databases selected whole: target database name, operations applied.
    pub(super) whole: HashMap<String, (String, Operations)>,
    pub(super) dest_lower: bool,
    pub(super) name_case: crate::config::NameCase,
    pub(super) changed: bool,
    pub(super) online: OnlineDdl,
    pub(super) shadow_patterns: Vec<String>,
    pub(super) other_patterns: Vec<String>,
    /// `online_ddl = "gh-ost"`: per followed table, the ALTER statements an online
    /// schema change tool ran on its shadow, rewritten for the table's destination,
    /// waiting for the swap. Saved with the checkpoint.
    pub(super) pending: BTreeMap<String, Vec<String>>,
    /// Tables copied from the source mid-stream (renamed into the selection): their
    /// rows up to this position are in the copy. Saved with the checkpoint.
    pub(super) skip_until: BTreeMap<String, Position>,
}

/// What a table name is to an online schema change tool working on a followed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ToolTable {
    /// The copy the tool fills and swaps in.
    Shadow,
    /// Its changelog, or the old table after the swap.
    Other,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SavedTable {
    source: TableName,
    target: TableName,
    def: TableDef,
    /// Its indexes (state saved before they were kept has none: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indexes: Option<std::collections::BTreeMap<String, catalog::Index>>,
}

impl Tracker {
    pub(super) fn new(task: &Task, plan: &Plan, store: &Store) -> Result<Tracker> {
        let mut tables: HashMap<(String, String), Arc<TablePlan>> = plan
            .tables
            .iter()
            .map(|t| {
                let n = &t.def().name;
                ((n.database.clone(), n.table.clone()), Arc::new(t.clone()))
            })
            .collect();
        let whole: HashMap<String, (String, Operations)> = plan
            .databases
            .iter()
            .filter(|d| d.whole)
            .map(|d| (d.source.name.clone(), (d.target.clone(), d.operations)))
            .collect();
        if let Some(saved) = store.get(TABLES)?.filter(|s| !s.is_empty()) {
            let saved: Vec<SavedTable> =
                serde_json::from_str(&saved).context("state store: bad tracked schema")?;
            // The saved definitions are the tables as of the checkpoint: the binlog may
            // have created, changed or dropped tables since the task started.
            let planned = std::mem::take(&mut tables);
            for s in saved {
                let key = (s.source.database.clone(), s.source.table.clone());
                let info = catalog::TableInfo {
                    def: TableDef {
                        name: s.source.clone(),
                        ..s.def
                    },
                    rows: 0,
                    bytes: 0,
                    indexes: s.indexes.unwrap_or_default(),
                    adb: None,
                };
                let plan = match planned.get(&key) {
                    Some(old) if !old.whole_database => {
                        let mut p = (**old).clone();
                        p.source = info;
                        p
                    }
                    _ => {
                        let ops = whole.get(&key.0).map(|w| w.1).unwrap_or_default();
                        mapping::whole_table(info, s.target, ops)
                    }
                };
                tables.insert(key, Arc::new(plan));
            }
        }
        let pending = match store.get(PENDING_ONLINE_DDL)? {
            Some(s) if !s.is_empty() => {
                serde_json::from_str(&s).context("state store: bad pending online DDL")?
            }
            _ => BTreeMap::new(),
        };
        let skip_until = match store.get(SKIP_UNTIL)? {
            Some(s) if !s.is_empty() => {
                serde_json::from_str(&s).context("state store: bad copied-table positions")?
            }
            _ => BTreeMap::new(),
        };
        Ok(Tracker {
            skip_until,
            tables,
            whole,
            dest_lower: plan.dest_lower,
            name_case: task.migration.name_case,
            changed: false,
            online: task.advanced.online_ddl,
            shadow_patterns: task.advanced.online_ddl_shadow_tables.clone(),
            other_patterns: task.advanced.online_ddl_other_tables.clone(),
            pending,
        })
    }

    pub(super) fn save(&mut self, store: &Store) -> Result<()> {
        self.save_with(store, Vec::new())
    }

    /// Saves the tracked definitions (when they changed) together with `entries` in one
    /// store transaction. The applier passes its checkpoint: a crash between the two
    /// writes would otherwise pair a cleared `skip_until` with the old checkpoint, and a
    /// keyless table's changes before its snapshot would be applied a second time.
    pub(super) fn save_with(
        &mut self,
        store: &Store,
        mut entries: Vec<(&str, String)>,
    ) -> Result<()> {
        if self.changed {
            let saved: Vec<SavedTable> = self
                .tables
                .values()
                .map(|t| SavedTable {
                    source: t.def().name.clone(),
                    target: t.target.clone(),
                    def: t.def().clone(),
                    indexes: Some(t.source.indexes.clone()).filter(|i| !i.is_empty()),
                })
                .collect();
            entries.push((TABLES, serde_json::to_string(&saved)?));
            entries.push((PENDING_ONLINE_DDL, serde_json::to_string(&self.pending)?));
            entries.push((SKIP_UNTIL, serde_json::to_string(&self.skip_until)?));
        }
        if entries.is_empty() {
            return Ok(());
        }
        store.set_all(&entries)?;
        self.changed = false;
        Ok(())
    }

    /// When `name` (in `db`) is a table of an online schema change tool working on a
    /// followed table: that table's key and the name's role.
    pub(super) fn tool_table(&self, db: &str, name: &str) -> Option<((String, String), ToolTable)> {
        let roles = [
            (&self.shadow_patterns, ToolTable::Shadow),
            (&self.other_patterns, ToolTable::Other),
        ];
        for (patterns, role) in roles {
            for p in patterns {
                let Some((prefix, suffix)) = p.split_once("{table}") else {
                    continue;
                };
                let Some(base) = name
                    .strip_prefix(prefix)
                    .and_then(|x| x.strip_suffix(suffix))
                else {
                    continue;
                };
                let key = (db.to_string(), base.to_string());
                if self.tables.contains_key(&key) {
                    return Some((key, role));
                }
            }
        }
        None
    }

    /// `online_ddl = "gh-ost"`: the tool's shadow and other tables are not copied; the
    /// ALTERs it runs on the shadow are kept, and applied to the table itself when the
    /// tool swaps the shadow in with RENAME. Returns whether the statement was one of
    /// the tool's (and so is handled).
    pub(super) fn online_ddl(
        &mut self,
        task: &Task,
        st: &Statement,
        ddl: &Ddl,
        applier: &mut Applier,
    ) -> Result<bool> {
        if self.online != OnlineDdl::GhOst || st.tables.is_empty() {
            return Ok(false);
        }
        let db_of = |n: &NameRef| n.database.clone().unwrap_or_else(|| ddl.database.clone());
        if st.kind == Kind::RenameTable {
            // The swap: RENAME t TO _t_del, _t_gho TO t.
            let swap = st.tables.chunks(2).find_map(|pair| {
                let [from, to] = pair else { return None };
                let (table, role) = self.tool_table(&db_of(from), &from.name)?;
                (role == ToolTable::Shadow && (db_of(to), to.name.clone()) == table)
                    .then_some(table)
            });
            let Some(table) = swap else {
                return Ok(false);
            };
            let id = format!("{}.{}", table.0, table.1);
            let alters = self.pending.remove(&id).unwrap_or_default();
            let target = self.tables[&table].target.clone();
            for sql in &alters {
                applier.ddl(task, Some(&target.database), sql)?;
            }
            tracing::info!(
                "incremental: the online schema change of {id} finished: {} statement(s) applied to {target}",
                alters.len()
            );
            self.refresh(applier, &table)?;
            return Ok(true);
        }
        let Some((table, role)) = self.tool_table(&db_of(&st.tables[0]), &st.tables[0].name) else {
            return Ok(false);
        };
        let id = format!("{}.{}", table.0, table.1);
        match (st.kind, role) {
            (Kind::CreateTable, ToolTable::Shadow) => {
                tracing::info!(
                    "incremental: an online schema change of {id} started ({}): its ALTERs will be applied when it swaps tables",
                    st.tables[0].name
                );
                self.pending.insert(id, Vec::new());
                self.changed = true;
            }
            (Kind::AlterTable | Kind::CreateIndex | Kind::DropIndex, ToolTable::Shadow) => {
                let target = self.tables[&table].target.clone();
                let shadow = st.tables[0].clone();
                let sql = st.rewrite(
                    &|n| {
                        if n == &shadow {
                            (target.database.clone(), target.table.clone())
                        } else {
                            let (d, t, _) = self.target(n, &ddl.database);
                            (d, t)
                        }
                    },
                    &|d| d.to_string(),
                );
                self.pending.entry(id).or_default().push(sql);
                self.changed = true;
            }
            _ => {}
        }
        // Anything else on the tool's tables (its rows, its changelog, dropping the old
        // table) stays on the source.
        Ok(true)
    }

    /// Reads a followed table's definition back from the destination.
    pub(super) fn refresh(&mut self, applier: &mut Applier, key: &(String, String)) -> Result<()> {
        let Some(old) = self.tables.get(key).cloned() else {
            return Ok(());
        };
        let Some(mut info) = applier.read_table(&old.def().name, &old.target)? else {
            self.tables.remove(key);
            return Ok(());
        };
        info.def.name = old.def().name.clone();
        let target = old.target.clone();
        self.tables
            .insert(key.clone(), Arc::new(with_definition(&old, info, target)));
        self.changed = true;
        Ok(())
    }

    /// Adds the row changes of selected tables to the batch; returns how many.
    pub(super) fn changes(
        &mut self,
        txn: &Txn,
        applier: &mut Applier,
        filter: &mut Option<Filter>,
        source: &crate::endpoint::Endpoint,
    ) -> Result<usize> {
        let mut n = 0;
        if !self.skip_until.is_empty() {
            let before = self.skip_until.len();
            // Each table against its own log (one log per table on a per-table source).
            self.skip_until.retain(|table, at| {
                match (txn.end.of_table(table), at.of_table(table)) {
                    (Some(end), Some(at)) => !end.beyond(at),
                    _ => true,
                }
            });
            self.changed |= self.skip_until.len() != before;
        }
        for block in &txn.rows {
            let key = (block.table.database.clone(), block.table.table.clone());
            let Some(plan) = self.tables.get(&key) else {
                continue;
            };
            // Per rows event: no table name formatted when nothing is skipped.
            if !self.skip_until.is_empty()
                && self.skip_until.contains_key(&plan.def().name.to_string())
            {
                continue;
            }
            let ops = plan.operations;
            let wanted = match block.kind {
                RowsKind::Insert => ops.insert,
                RowsKind::Update => ops.update,
                RowsKind::Delete => ops.delete,
            };
            if !wanted {
                continue;
            }
            let def = plan.def();
            if block.table.types.len() != def.columns.len() {
                // A queue has no tables to read definitions back from: after a DDL they
                // are read from the source, which may already be past a later one.
                let why = if applier.has_tables() {
                    "the table changed in a way the binlog did not show"
                } else {
                    "its definition was read from the source after a DDL statement, and the source has changed the table again since (the task was behind the source)"
                };
                bail!(
                    "a binlog row of {} has {} columns but the tracked definition has {} (at {}): {why}; rerun the task with full migration",
                    def.name,
                    block.table.types.len(),
                    def.columns.len(),
                    txn.end
                );
            }
            let row = |image: &Option<Vec<Option<Value>>>| -> Result<Row> {
                let image = image
                    .as_ref()
                    .ok_or_else(|| anyhow!("a rows event of {} lacks a row image", def.name))?;
                image
                    .iter()
                    .zip(&block.table.types)
                    .zip(&def.columns)
                    .map(|((v, ty), col)| {
                        v.clone().map(|v| conform(v, *ty, col)).ok_or_else(|| {
                            anyhow!(
                                "a binlog row of {} lacks column {}: set binlog_row_image = FULL on the source",
                                def.name,
                                col.name
                            )
                        })
                    })
                    .collect()
            };
            let table = Arc::new(def.name.clone());
            let mut changes = Vec::with_capacity(block.rows.len());
            for r in &block.rows {
                changes.push(match block.kind {
                    RowsKind::Insert => Change::Insert {
                        table: table.clone(),
                        row: row(&r.after)?,
                        snapshot: false,
                    },
                    RowsKind::Delete => Change::Delete {
                        table: table.clone(),
                        before: row(&r.before)?,
                    },
                    RowsKind::Update => Change::Update {
                        table: table.clone(),
                        before: row(&r.before)?,
                        after: row(&r.after)?,
                    },
                });
            }
            if plan.where_clause.is_some() {
                if filter.is_none() {
                    *filter = Some(Filter::new(connect(source, Side::Source)?));
                }
                if let Some(f) = filter.as_mut() {
                    changes = filtered(plan, changes, f)?;
                }
            }
            n += changes.len();
            applier.rows_event(&block.event);
            applier.push(plan, changes)?;
        }
        Ok(n)
    }

    /// Where a name in a DDL statement goes on the destination, and whether the task
    /// follows it.
    pub(super) fn target(&self, n: &NameRef, default_db: &str) -> (String, String, bool) {
        let db = n.database.clone().unwrap_or_else(|| default_db.to_string());
        if let Some(t) = self.tables.get(&(db.clone(), n.name.clone())) {
            return (t.target.database.clone(), t.target.table.clone(), true);
        }
        if let Some((target_db, _)) = self.whole.get(&db) {
            let table = mapping::apply_case(self.name_case, self.dest_lower, &n.name);
            return (target_db.clone(), table, true);
        }
        // `online_ddl = "copy"`: an online schema change tool's tables follow the table
        // they shadow, named after its destination name.
        if self.online == OnlineDdl::Copy {
            if let Some((key, _)) = self.tool_table(&db, &n.name) {
                let t = &self.tables[&key];
                let base = &key.1;
                let pattern = self
                    .shadow_patterns
                    .iter()
                    .chain(&self.other_patterns)
                    .find(|p| p.replace("{table}", base) == n.name);
                if let Some(p) = pattern {
                    let name = p.replace("{table}", &t.target.table);
                    return (t.target.database.clone(), name, true);
                }
            }
        }
        // A table outside the selection, in a database the task takes tables from: on
        // the destination it lives in that database's destination, so renaming a table
        // out of the selection renames it there too (and it is no longer followed).
        if let Some(t) = self.tables.values().find(|t| t.def().name.database == db) {
            let table = mapping::apply_case(self.name_case, self.dest_lower, &n.name);
            return (t.target.database.clone(), table, false);
        }
        (db, n.name.clone(), false)
    }

    /// Whether `operations` lets DDL through for every followed object the statement
    /// names (or its database, for database and object statements).
    pub(super) fn ddl_wanted(&self, st: &Statement, default_db: &str) -> bool {
        let db_ops = |db: &str| self.whole.get(db).map(|w| w.1.ddl).unwrap_or(true);
        if st.tables.is_empty() {
            return db_ops(st.database.as_deref().unwrap_or(default_db));
        }
        st.tables.iter().all(|n| {
            let db = n.database.clone().unwrap_or_else(|| default_db.to_string());
            match self.tables.get(&(db.clone(), n.name.clone())) {
                Some(t) => t.operations.ddl,
                None => db_ops(&db),
            }
        })
    }

    pub(super) fn apply_ddl(
        &mut self,
        task: &Task,
        plan: &Plan,
        applier: &mut Applier,
        ddl: &Ddl,
    ) -> Result<()> {
        let st = Statement::parse(&ddl.statement);
        let head: String = ddl.statement.chars().take(120).collect();
        if self.online_ddl(task, &st, ddl, applier)? {
            return Ok(());
        }
        if !self.ddl_wanted(&st, &ddl.database) {
            tracing::info!(
                "incremental: DDL not applied (`operations` leaves out \"ddl\"): {head}"
            );
            return Ok(());
        }
        let (sql, use_db, refresh) = match st.kind {
            Kind::CreateDatabase | Kind::DropDatabase | Kind::AlterDatabase => {
                let Some(db) = st.database.clone() else {
                    return Ok(());
                };
                let Some(target) = self.whole.get(&db).map(|w| w.0.clone()) else {
                    tracing::debug!("incremental: skipping DDL on an unselected database: {head}");
                    return Ok(());
                };
                if st.kind == Kind::DropDatabase {
                    self.tables.retain(|(d, _), _| *d != db);
                    self.changed = true;
                }
                (
                    st.rewrite(&|_| (String::new(), String::new()), &|_| target.clone()),
                    None,
                    Vec::new(),
                )
            }
            Kind::Other => {
                let Some(target) = self.whole.get(&ddl.database).map(|w| w.0.clone()) else {
                    tracing::debug!(
                        "incremental: skipping a statement outside the selected databases: {head}"
                    );
                    return Ok(());
                };
                match object_ddl(&ddl.statement, &ddl.database, &target, plan, self) {
                    Some(sql) => (sql, Some(target), Vec::new()),
                    None => {
                        tracing::warn!("incremental: not replicated (apply it to the destination by hand if it matters): {head}");
                        return Ok(());
                    }
                }
            }
            _ => {
                let followed: Vec<bool> = st
                    .tables
                    .iter()
                    .map(|n| self.target(n, &ddl.database).2)
                    .collect();
                if !followed.iter().any(|f| *f) {
                    tracing::debug!("incremental: skipping DDL on unselected tables: {head}");
                    return Ok(());
                }
                for n in &st.tables {
                    let db = n.database.clone().unwrap_or_else(|| ddl.database.clone());
                    if let Some(t) = self.tables.get(&(db, n.name.clone())) {
                        if !t.whole_database
                            && (t.copied.len() != t.def().columns.len()
                                || t.columns.iter().any(|(a, b)| a != b))
                        {
                            bail!(
                                "a DDL statement changes {}, which is migrated with a column subset or column renames; Tidemark cannot rewrite it: apply the change to the destination by hand, then restart the task with full migration of that table ({head})",
                                t.def().name
                            );
                        }
                    }
                }
                let default_target =
                    self.whole
                        .get(&ddl.database)
                        .map(|w| w.0.clone())
                        .or_else(|| {
                            self.tables
                                .values()
                                .find(|t| t.def().name.database == ddl.database)
                                .map(|t| t.target.database.clone())
                        });
                let sql = st.rewrite(
                    &|n| {
                        let (d, t, _) = self.target(n, &ddl.database);
                        (d, t)
                    },
                    &|d| d.to_string(),
                );
                (sql, default_target, st.tables.clone())
            }
        };
        if applier.ddl(task, use_db.as_deref(), &sql)? {
            tracing::info!("incremental: applied DDL: {head}");
        }
        // Even after a rejection the touched tables are read back: the tracker follows
        // what the destination has, so rows keep flowing where they still fit.
        // Follow the tables the statement touched.
        let mut touched: Vec<(NameRef, bool)> = refresh.into_iter().map(|n| (n, true)).collect();
        match st.kind {
            Kind::DropTable => touched.iter_mut().for_each(|t| t.1 = false),
            Kind::RenameTable => {
                // from, to, from, to: the old names are gone.
                for (i, t) in touched.iter_mut().enumerate() {
                    t.1 = i % 2 == 1;
                }
            }
            Kind::CreateTable | Kind::AlterTable => {
                // Only the first name is the table being created or altered.
                touched.truncate(1);
            }
            _ => {}
        }
        // Names resolve as they did before the statement (a RENAME swaps them).
        let before = self.tables.clone();
        let targets: Vec<_> = touched
            .iter()
            .map(|(n, _)| self.target(n, &ddl.database))
            .collect();
        // A table renamed into the selection brings rows the task never saw (they were
        // written under a name it does not follow): it is copied from the source.
        let renamed_in: Vec<bool> = (0..touched.len())
            .map(|i| {
                st.kind == Kind::RenameTable && i % 2 == 1 && targets[i].2 && !targets[i - 1].2
            })
            .collect();
        for (i, ((n, exists), (tdb, ttable, followed))) in
            touched.into_iter().zip(targets).enumerate()
        {
            let db = n.database.clone().unwrap_or_else(|| ddl.database.clone());
            let key = (db.clone(), n.name.clone());
            self.changed = true;
            if !exists || !followed {
                self.tables.remove(&key);
                continue;
            }
            if renamed_in[i] {
                self.copy_in(
                    task,
                    applier,
                    &TableName::new(&db, &n.name),
                    &TableName::new(&tdb, &ttable),
                )?;
            }
            let info = applier.read_table(
                &TableName::new(&db, &n.name),
                &TableName::new(&tdb, &ttable),
            )?;
            let Some(mut info) = info else {
                self.tables.remove(&key);
                continue;
            };
            info.def.name = TableName::new(&db, &n.name);
            let target = TableName::new(tdb, ttable);
            // The table is now the task's, like those its schema phase created.
            applier.store.mark_created("table", &target.to_string())?;
            let plan = match before.get(&key) {
                Some(old) if !old.whole_database => with_definition(old, info, target),
                _ => {
                    let ops = self.whole.get(&db).map(|w| w.1).unwrap_or_default();
                    mapping::whole_table(info, target, ops)
                }
            };
            self.tables.insert(key, Arc::new(plan));
        }
        Ok(())
    }
}

impl Tracker {
    /// Copies a table from the source as it is now into `target` (dropped first), and
    /// makes the stream idempotent until it has passed the source's current position,
    /// as after the full copy.
    pub(super) fn copy_in(
        &mut self,
        task: &Task,
        applier: &mut Applier,
        source: &TableName,
        target: &TableName,
    ) -> Result<()> {
        let mut src = connect(&task.source, Side::Source)?;
        let mut attempt = 0;
        let (rows, snapshot_at) = loop {
            attempt += 1;
            match self.copy_once(task, applier, &mut src, source, target) {
                Ok(Some(done)) => break done,
                Ok(None) => return Ok(()),
                // The table was re-created after the snapshot began: take a new one.
                Err(e) if attempt < 5 && mysql_code(&e) == Some(1412) => {
                    let _ = src.query_drop("ROLLBACK");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        };
        match snapshot_at {
            Some(at) => {
                tracing::info!("incremental: copied {rows} row(s) of {source} as of {at}");
                self.skip_until.insert(source.to_string(), at);
            }
            None => {
                // No snapshot position (MySQL): replay idempotently past the copy.
                let now = crate::source::binlog::client::current_position(&mut src)?;
                tracing::info!(
                    "incremental: copied {rows} row(s) of {source}; idempotent until {now}"
                );
                if applier.safe_until.as_ref().is_none_or(|s| after(&now, s)) {
                    save_position(applier.store, SAFE_UNTIL, &now)?;
                    applier.safe_until = Some(now);
                }
            }
        }
        self.changed = true;
        Ok(())
    }

    /// One attempt of [`Self::copy_in`]: the rows copied and the snapshot's position;
    /// `None` when the table is gone from the source.
    pub(super) fn copy_once(
        &self,
        task: &Task,
        applier: &mut Applier,
        src: &mut mysql::Conn,
        source: &TableName,
        target: &TableName,
    ) -> Result<Option<(u64, Option<Position>)>> {
        // A consistent snapshot and (MariaDB) its exact binlog position: the rows read
        // hold every change up to that position, and the stream skips the table's rows
        // until it gets there; they could not be decoded anyway, being written under
        // older definitions than the one copied.
        src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
        let snapshot_at = crate::source::binlog::client::snapshot_position(src)?;
        let info = catalog::read_table(src, source)?;
        let Some(info) = info else {
            tracing::warn!("incremental: {source} was renamed into the selection but is gone from the source; nothing copied");
            src.query_drop("COMMIT")?;
            return Ok(None);
        };
        let create: Option<(String, String)> = src
            .query_first(format!("SHOW CREATE TABLE {}", source.quoted()))
            .with_context(|| format!("reading the definition of {source}"))?;
        let create = create.map(|c| c.1).unwrap_or_default();
        let st = Statement::parse(&create);
        let first = st.tables.first().cloned();
        let sql = st.rewrite(
            &|n| {
                if Some(n) == first.as_ref() {
                    (target.database.clone(), target.table.clone())
                } else {
                    let (d, t, _) = self.target(n, &source.database);
                    (d, t)
                }
            },
            &|d| d.to_string(),
        );
        tracing::info!(
            "incremental: {source} was renamed into the selection: copying it to {target}"
        );
        if applier.has_tables() {
            let drop = format!("DROP TABLE IF EXISTS {}", target.quoted());
            applier.ddl(task, Some(&target.database), &drop)?;
            if !applier.ddl(task, Some(&target.database), &sql)? {
                bail!("could not create {target} for the table renamed into the selection");
            }
        }
        let plan = mapping::whole_table(info, target.clone(), Operations::default());
        let whole = Chunk {
            index: 0,
            lower: None,
            upper: None,
        };
        let rows = applier.copy_rows(src, &plan, &whole)?;
        src.query_drop("COMMIT")?;
        Ok(Some((rows, snapshot_at)))
    }
}

pub(super) fn mysql_code(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<mysql::Error>() {
            Some(mysql::Error::MySqlError(m)) => Some(m.code),
            _ => None,
        })
}

/// A followed table's plan with a new definition (read back from the destination after a
/// DDL statement): every column, under the names it has there.
fn with_definition(old: &TablePlan, info: catalog::TableInfo, target: TableName) -> TablePlan {
    let mut p = old.clone();
    p.columns = info
        .def
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.name.clone()))
        .collect();
    p.copied = (0..info.def.columns.len())
        .filter(|&i| !info.def.columns[i].generated)
        .collect();
    p.source = info;
    p.target = target;
    p
}

/// A view, routine or trigger statement of a database selected whole, rewritten for the
/// destination the way the schema phase writes these objects (renamed databases,
/// DEFINER removed, SQL SECURITY INVOKER, triggers guarded); `None` for statements
/// Tidemark does not replicate (events, users, grants, ...).
pub(super) fn object_ddl(
    statement: &str,
    database: &str,
    target_db: &str,
    plan: &Plan,
    tracker: &Tracker,
) -> Option<String> {
    use crate::sink::mysql::schema as s;
    let words: Vec<String> = statement
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter(|w| !w.is_empty() && !w.contains('='))
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.first()?.as_str();
    if !matches!(first, "CREATE" | "ALTER" | "DROP") {
        return None;
    }
    // The object's kind is the first kind word: it follows the modifiers (OR REPLACE,
    // ALGORITHM=, DEFINER=user@host, SQL SECURITY, AGGREGATE, IF [NOT] EXISTS, however
    // many) and comes before any name or body.
    const KINDS: [&str; 10] = [
        "VIEW",
        "TRIGGER",
        "PROCEDURE",
        "FUNCTION",
        "EVENT",
        "USER",
        "ROLE",
        "SERVER",
        "SEQUENCE",
        "PACKAGE",
    ];
    let kind = words
        .iter()
        .take_while(|w| *w != "AS")
        .find(|w| KINDS.contains(&w.as_str()))?
        .as_str();
    let has = |w: &str| kind == w;
    if has("VIEW") {
        if first == "DROP" {
            return Some(s::routine_ddl(statement, plan));
        }
        let name = s::view_name(statement)?;
        let target = TableName::new(
            target_db,
            mapping::apply_case(tracker.name_case, tracker.dest_lower, &name),
        );
        return s::view_ddl(statement, &target, plan).ok();
    }
    if has("TRIGGER") {
        if first == "DROP" {
            return Some(s::routine_ddl(statement, plan));
        }
        let table = s::trigger_table(statement)?;
        let sql = s::trigger_ddl(statement, &TableName::new(database, table), plan);
        return s::guard_trigger(&sql).or(Some(sql));
    }
    if has("PROCEDURE") || has("FUNCTION") {
        return Some(s::routine_ddl(statement, plan));
    }
    None
}
