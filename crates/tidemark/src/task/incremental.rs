//! The incremental phase: binlog changes applied to the destination until the task is
//! stopped.
//!
//! ```text
//! stream thread ──Txn──▶ coordinator ──shares──▶ apply workers (one connection each)
//!   (source::binlog::stream)   │ tracker, coalescing       (sink::mysql::apply)
//!                              └─ DDL: barrier, applied alone, tracker refreshed
//! ```
//!
//! The coordinator gathers whole transactions into a batch, reduces it to its net
//! effect per key, lets the workers write their shares in parallel and, once every
//! share is committed, records the batch's end position as the checkpoint. A restart
//! reads again from the checkpoint.
//!
//! Until the stream has passed the *safe point* it applies idempotently: inserts and
//! updates as REPLACE of the after-image, deletes by key. The safe point is where the
//! full copy finished (the copy read rows at moments between the start position and
//! then), or the end of the batch that was being written when the task was last
//! interrupted. After it, rows a batch inserts are written with INSERT, so a key that
//! already exists on the destination stops the task instead of being overwritten.
//!
//! The schema tracker is the table definitions the rows are decoded with. It starts as
//! the definitions read when the task started (or those saved with the last
//! checkpoint), and follows the binlog's DDL: after a DDL statement is applied to the
//! destination, the tables it touched are read back from the destination and saved with
//! the checkpoint, so a restart decodes with the definitions at its position, never with
//! the source's current ones.

use crate::config::{OnlineDdl, Task};
use crate::connect::{connect, reconnect, transient, Side, Transient};
use crate::sink::mysql::apply::{self, Coalescer, Work};
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::source::binlog::stream::{self, Ddl, Item, Txn};
use crate::source::binlog::value::conform;
use crate::source::binlog::RowsKind;
use crate::source::catalog;
use crate::source::snapshot::{self, Chunk};
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::ddl::{Kind, NameRef, Statement};
use crate::transform::filter::Filter;
use crate::transform::mapping::{self, Operations, Plan, TablePlan};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::{Change, Position, Row, TableDef, TableName, Value};

/// State-store keys.
pub const START: &str = "incremental.start";
pub const SAFE_UNTIL: &str = "incremental.safe_until";
pub const CHECKPOINT: &str = "incremental.checkpoint";
const INFLIGHT: &str = "incremental.inflight";
const TABLES: &str = "incremental.tables";
const PENDING_ONLINE_DDL: &str = "incremental.pending_online_ddl";
const SKIP_UNTIL: &str = "incremental.skip_until";
/// Which server the stream read from last (a switchover is noticed against it).
const SOURCE_IDENTITY: &str = "incremental.source_identity";
pub const APPLIED: &str = "incremental.applied";

const READER_STOPPED: &str = "the binlog reader stopped";

/// How the phase ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Stop once every change the source had logged is applied (for tests and cut-over
    /// scripts); otherwise run until `stop` is set.
    pub stop_when_caught_up: bool,
}

/// What `status` shows about the stream.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub position: Position,
    /// Source commit time of the last applied transaction (seconds since the epoch).
    pub source_time: u32,
    /// Seconds between the source commit and its application, at the last batch.
    pub latency_seconds: f64,
    pub rows_applied: u64,
    pub transactions: u64,
    /// DDL statements the destination rejected (logged and skipped).
    #[serde(default)]
    pub ddl_rejected: u64,
    #[serde(default)]
    pub last_ddl_error: Option<String>,
}

pub fn save_position(store: &Store, key: &str, p: &Position) -> Result<()> {
    store.set(key, &serde_json::to_string(p)?)
}

pub fn load_position(store: &Store, key: &str) -> Result<Option<Position>> {
    match store.get(key)? {
        Some(s) if !s.is_empty() => Ok(Some(
            serde_json::from_str(&s).with_context(|| format!("state store: bad {key}"))?,
        )),
        _ => Ok(None),
    }
}

fn after(a: &Position, b: &Position) -> bool {
    (a.file.as_str(), a.offset) >= (b.file.as_str(), b.offset)
}

/// Runs the incremental phase from the last checkpoint (or `start`).
pub fn run(
    task: &Task,
    plan: &Plan,
    store: &Store,
    stop: &AtomicBool,
    opts: Options,
) -> Result<()> {
    let start = match load_position(store, CHECKPOINT)? {
        Some(p) => p,
        None => load_position(store, START)?.ok_or_else(|| {
            anyhow!("internal: no start position recorded for the incremental phase")
        })?,
    };
    // A batch that was being written when the task stopped may be partly applied.
    let mut safe_until = load_position(store, SAFE_UNTIL)?;
    if let Some(inflight) = load_position(store, INFLIGHT)? {
        if safe_until.as_ref().is_none_or(|s| after(&inflight, s)) {
            safe_until = Some(inflight);
        }
    }
    let mut tracker = Tracker::new(task, plan, store)?;
    // Saved from the first run on, so a restart decodes with the definitions at its
    // checkpoint rather than with whatever the source has by then.
    if store.get(TABLES)?.is_none() {
        tracker.changed = true;
        tracker.save(store)?;
    }
    tracing::info!(
        "incremental: reading the binlog from {start}{}",
        safe_until
            .as_ref()
            .map(|s| format!(", idempotent until {s}"))
            .unwrap_or_default()
    );

    let (tx, rx) = bounded::<Item>(256);
    let reader_stop = Arc::new(AtomicBool::new(false));
    let databases: HashSet<String> = plan
        .databases
        .iter()
        .map(|d| d.source.name.clone())
        .collect();
    // Not a scoped thread: a reader blocked on a quiet source notices `reader_stop` only
    // at its next event (a heartbeat, up to 5 s later), and the task need not wait.
    let reader = {
        let (start, stop) = (start.clone(), reader_stop.clone());
        let mut endpoints = vec![task.source.clone()];
        endpoints.extend(task.source_failover.iter().cloned());
        let identity = store.get(SOURCE_IDENTITY)?.filter(|s| !s.is_empty());
        let (server_id, retry_window) = (task.server_id, task.advanced.connection_window());
        std::thread::spawn(move || {
            let source = stream::Source {
                endpoints: &endpoints,
                identity,
                databases: &databases,
                server_id,
                retry_window,
            };
            stream::read(&source, start, &stop, tx)
        })
    };
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    if task.advanced.heartbeat {
        start_heartbeat(task, heartbeat_stop.clone())?;
    }
    let result = Applier::new(task, store, start.clone(), safe_until).and_then(|mut applier| {
        let r = coordinate(task, plan, &mut tracker, &mut applier, &rx, stop, opts);
        applier.shutdown();
        r
    });
    reader_stop.store(true, Ordering::Relaxed);
    heartbeat_stop.store(true, Ordering::Relaxed);
    drop(rx);
    let read = finished_within(reader, Duration::from_millis(300));
    // When the reader failed first, its error explains why the coordinator stopped.
    match (result, read) {
        (Err(c), Some(Err(r))) if c.to_string() == READER_STOPPED => Err(r),
        (Err(c), _) => Err(c),
        (Ok(()), _) => Ok(()),
    }
}

/// The heartbeat table on the source (`[advanced] heartbeat`).
pub const HEARTBEAT_TABLE: &str = "`tidemark_heartbeat`.`heartbeat`";

/// Writes the task's heartbeat row on the source every second, until `stop`. Its
/// transactions reach the stream like any other, so the latency of a quiet source is
/// measured rather than guessed.
fn start_heartbeat(task: &Task, stop: Arc<AtomicBool>) -> Result<()> {
    let mut c = connect(&task.source, Side::Source)?;
    c.query_drop("CREATE DATABASE IF NOT EXISTS `tidemark_heartbeat`")
        .and_then(|_| {
            c.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (task VARCHAR(64) PRIMARY KEY, ts DATETIME(6) NOT NULL)"
            ))
        })
        .context("creating the heartbeat table on the source (`advanced.heartbeat`): grant CREATE and INSERT on `tidemark_heartbeat`.* or turn the heartbeat off")?;
    let (name, ep) = (task.name.clone(), task.source.clone());
    std::thread::spawn(move || {
        let sql = format!("REPLACE INTO {HEARTBEAT_TABLE} VALUES (?, UTC_TIMESTAMP(6))");
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = c.exec_drop(&sql, (&name,)) {
                tracing::warn!("incremental: heartbeat failed ({e}); reconnecting");
                std::thread::sleep(Duration::from_secs(1));
                match connect(&ep, Side::Source) {
                    Ok(n) => c = n,
                    Err(_) => continue,
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    Ok(())
}

/// The thread's result if it ends within `limit`; otherwise it is left to end on its own.
fn finished_within(h: std::thread::JoinHandle<Result<()>>, limit: Duration) -> Option<Result<()>> {
    let started = Instant::now();
    while !h.is_finished() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !h.is_finished() {
        return None;
    }
    Some(
        h.join()
            .unwrap_or_else(|_| Err(anyhow!("the binlog reader panicked"))),
    )
}

fn coordinate(
    task: &Task,
    plan: &Plan,
    tracker: &mut Tracker,
    applier: &mut Applier,
    rx: &Receiver<Item>,
    stop: &AtomicBool,
    opts: Options,
) -> Result<()> {
    let batch_rows = task.incremental.batch_rows;
    let mut src = connect(&task.source, Side::Source)?;
    let mut last_caught_up_check = Instant::now();
    let mut report = Report::new(&applier.stats);
    let mut filter: Option<Filter> = None;
    loop {
        report.maybe_log(&applier.stats);
        if stop.load(Ordering::Relaxed) {
            applier.flush(tracker)?;
            tracing::info!("incremental: stopped at {}", applier.checkpoint);
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Item::Txn(txn)) => {
                if let Some(ddl) = &txn.ddl {
                    applier.flush(tracker)?;
                    tracker.apply_ddl(task, plan, applier, ddl)?;
                    applier.advance(&txn, 0);
                    applier.flush(tracker)?;
                    continue;
                }
                let rows = tracker.changes(&txn, &mut applier.batch, &mut filter, &task.source)?;
                applier.advance(&txn, rows);
                if applier.batch.rows >= batch_rows || rx.is_empty() {
                    applier.flush(tracker)?;
                }
            }
            Ok(Item::Connected { endpoint, identity }) => {
                tracing::info!("incremental: reading the binlog of {endpoint} ({identity})");
                applier.store.set(SOURCE_IDENTITY, &identity)?;
            }
            Ok(Item::Idle { position }) => {
                applier.flush(tracker)?;
                applier.idle()?;
                if opts.stop_when_caught_up && caught_up(&mut src, &position)? {
                    tracing::info!("incremental: caught up at {position}");
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                applier.flush(tracker)?;
                if opts.stop_when_caught_up
                    && last_caught_up_check.elapsed() > Duration::from_millis(500)
                {
                    last_caught_up_check = Instant::now();
                    if caught_up(&mut src, &applier.checkpoint)? {
                        tracing::info!("incremental: caught up at {}", applier.checkpoint);
                        return Ok(());
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                applier.flush(tracker)?;
                bail!(READER_STOPPED);
            }
        }
    }
}

/// The changes of a table with a `where` filter, as seen through it: an update whose
/// row enters the filter is an insert, one whose row leaves it a delete.
fn filtered(plan: &TablePlan, changes: Vec<Change>, filter: &mut Filter) -> Result<Vec<Change>> {
    let mut images: Vec<&Row> = Vec::new();
    for c in &changes {
        match c {
            Change::Insert { row, .. } => images.push(row),
            Change::Delete { before, .. } => images.push(before),
            Change::Update { before, after, .. } => {
                images.push(before);
                images.push(after);
            }
            Change::Ddl { .. } | Change::Commit { .. } => {}
        }
    }
    let pass = filter.matches(plan, &images)?;
    let mut pass = pass.into_iter();
    let mut next = || pass.next().unwrap_or(false);
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::Insert { .. } | Change::Delete { .. } => {
                if next() {
                    out.push(c);
                }
            }
            Change::Update {
                table,
                before,
                after,
            } => match (next(), next()) {
                (true, true) => out.push(Change::Update {
                    table,
                    before,
                    after,
                }),
                (false, true) => out.push(Change::Insert {
                    table,
                    row: after,
                    snapshot: false,
                }),
                (true, false) => out.push(Change::Delete { table, before }),
                (false, false) => {}
            },
            Change::Ddl { .. } | Change::Commit { .. } => {}
        }
    }
    Ok(out)
}

/// A log line every 10 s: where the stream is, rates, latency.
struct Report {
    at: Instant,
    transactions: u64,
    rows: u64,
}

impl Report {
    fn new(stats: &Applied) -> Report {
        Report {
            at: Instant::now(),
            transactions: stats.transactions,
            rows: stats.rows_applied,
        }
    }

    fn maybe_log(&mut self, stats: &Applied) {
        let secs = self.at.elapsed().as_secs_f64();
        if secs < 10.0 {
            return;
        }
        tracing::info!(
            "incremental: at {}, {:.0} transactions/s, {:.0} row changes/s, latency {:.1} s",
            stats.position,
            (stats.transactions - self.transactions) as f64 / secs,
            (stats.rows_applied - self.rows) as f64 / secs,
            stats.latency_seconds
        );
        *self = Report::new(stats);
    }
}

fn caught_up(src: &mut mysql::Conn, at: &Position) -> Result<bool> {
    let now = crate::source::binlog::client::current_position(src)?;
    Ok(after(at, &now))
}

/// The table definitions rows are decoded with, by source name.
struct Tracker {
    tables: HashMap<(String, String), Arc<TablePlan>>,
    /// Source databases selected whole: target database name, operations applied.
    whole: HashMap<String, (String, Operations)>,
    dest_lower: bool,
    name_case: crate::config::NameCase,
    changed: bool,
    online: OnlineDdl,
    shadow_patterns: Vec<String>,
    other_patterns: Vec<String>,
    /// `online_ddl = "gh-ost"`: per followed table, the ALTER statements an online
    /// schema change tool ran on its shadow, rewritten for the table's destination,
    /// waiting for the swap. Saved with the checkpoint.
    pending: BTreeMap<String, Vec<String>>,
    /// Tables copied from the source mid-stream (renamed into the selection): their
    /// rows up to this position are in the copy. Saved with the checkpoint.
    skip_until: BTreeMap<String, Position>,
}

/// What a table name is to an online schema change tool working on a followed table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ToolTable {
    /// The copy the tool fills and swaps in.
    Shadow,
    /// Its changelog, or the old table after the swap.
    Other,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedTable {
    source: TableName,
    target: TableName,
    def: TableDef,
}

impl Tracker {
    fn new(task: &Task, plan: &Plan, store: &Store) -> Result<Tracker> {
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
                    indexes: Default::default(),
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

    fn save(&mut self, store: &Store) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let saved: Vec<SavedTable> = self
            .tables
            .values()
            .map(|t| SavedTable {
                source: t.def().name.clone(),
                target: t.target.clone(),
                def: t.def().clone(),
            })
            .collect();
        store.set(TABLES, &serde_json::to_string(&saved)?)?;
        store.set(PENDING_ONLINE_DDL, &serde_json::to_string(&self.pending)?)?;
        store.set(SKIP_UNTIL, &serde_json::to_string(&self.skip_until)?)?;
        self.changed = false;
        Ok(())
    }

    /// When `name` (in `db`) is a table of an online schema change tool working on a
    /// followed table: that table's key and the name's role.
    fn tool_table(&self, db: &str, name: &str) -> Option<((String, String), ToolTable)> {
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
    fn online_ddl(
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
    fn refresh(&mut self, applier: &mut Applier, key: &(String, String)) -> Result<()> {
        let Some(old) = self.tables.get(key).cloned() else {
            return Ok(());
        };
        let Some(mut info) = applier.read_table(&old.target.database, &old.target.table)? else {
            self.tables.remove(key);
            return Ok(());
        };
        info.def.name = old.def().name.clone();
        let mut p = (*old).clone();
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
        self.tables.insert(key.clone(), Arc::new(p));
        self.changed = true;
        Ok(())
    }

    /// Adds the row changes of selected tables to the batch; returns how many.
    fn changes(
        &mut self,
        txn: &Txn,
        batch: &mut Coalescer,
        filter: &mut Option<Filter>,
        source: &crate::config::Endpoint,
    ) -> Result<usize> {
        let mut n = 0;
        if !self.skip_until.is_empty() {
            let before = self.skip_until.len();
            self.skip_until
                .retain(|_, at| !after(&txn.end, at) || txn.end == *at);
            self.changed |= self.skip_until.len() != before;
        }
        for block in &txn.rows {
            let key = (block.table.database.clone(), block.table.table.clone());
            let Some(plan) = self.tables.get(&key) else {
                continue;
            };
            if self.skip_until.contains_key(&plan.def().name.to_string()) {
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
                bail!(
                    "a binlog row of {} has {} columns but the tracked definition has {} (at {}): the table changed in a way the binlog did not show; rerun the task with full migration",
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
            for change in changes {
                batch.push(plan, change);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Where a name in a DDL statement goes on the destination, and whether the task
    /// follows it.
    fn target(&self, n: &NameRef, default_db: &str) -> (String, String, bool) {
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
    fn ddl_wanted(&self, st: &Statement, default_db: &str) -> bool {
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

    fn apply_ddl(
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
                    st.rewrite(&|_| unreachable_name(), &|_| target.clone()),
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
            let info = applier.read_table(&tdb, &ttable)?;
            let Some(mut info) = info else {
                self.tables.remove(&key);
                continue;
            };
            info.def.name = TableName::new(&db, &n.name);
            let target = TableName::new(tdb, ttable);
            // The table is now the task's, like those its schema phase created.
            applier.store.mark_created("table", &target.to_string())?;
            let plan = match before.get(&key) {
                Some(old) if !old.whole_database => {
                    let mut p = (**old).clone();
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
    fn copy_in(
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
    fn copy_once(
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
        let snapshot_at = snapshot_position(src)?;
        let info = catalog::read_database(src, &source.database)?.and_then(|d| {
            d.tables
                .into_iter()
                .find(|t| t.def.name.table == source.table)
        });
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
        let drop = format!("DROP TABLE IF EXISTS {}", target.quoted());
        applier.ddl(task, Some(&target.database), &drop)?;
        if !applier.ddl(task, Some(&target.database), &sql)? {
            bail!("could not create {target} for the table renamed into the selection");
        }
        let plan = mapping::whole_table(info, target.clone(), Operations::default());
        let whole = Chunk {
            index: 0,
            lower: None,
            upper: None,
        };
        let mut rows = 0u64;
        let mut insert = InsertBuilder::new(&plan, InsertMode::Replace, 1_000, 4 << 20);
        let dst = &mut applier.ddl_conn;
        snapshot::read_chunk(src, &plan, &whole, |row| {
            rows += 1;
            if insert.push(&row) {
                dst.query_drop(insert.take().0)?;
            }
            Ok(())
        })?;
        if !insert.is_empty() {
            dst.query_drop(insert.take().0)?;
        }
        src.query_drop("COMMIT")?;
        Ok(Some((rows, snapshot_at)))
    }
}

fn mysql_code(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<mysql::Error>() {
            Some(mysql::Error::MySqlError(m)) => Some(m.code),
            _ => None,
        })
}

/// MariaDB: the binlog position of the connection's consistent snapshot.
fn snapshot_position(c: &mut mysql::Conn) -> Result<Option<Position>> {
    let rows: Vec<(String, String)> = c
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .unwrap_or_default();
    let get = |name: &str| {
        rows.iter()
            .find(|r| r.0.eq_ignore_ascii_case(name))
            .map(|r| r.1.clone())
    };
    Ok(
        match (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
            (Some(file), Some(pos)) if !file.is_empty() => {
                pos.parse().ok().map(|offset| Position {
                    file,
                    offset,
                    gtid: None,
                })
            }
            _ => None,
        },
    )
}

fn unreachable_name() -> (String, String) {
    (String::new(), String::new())
}

/// The apply workers and the batch being gathered.
struct Applier<'a> {
    store: &'a Store,
    batch: Coalescer,
    workers: Vec<Worker>,
    ddl_conn: mysql::Conn,
    throttle: Throttle,
    /// Position after the last applied transaction.
    checkpoint: Position,
    /// End of the batch being gathered.
    batch_end: Option<Position>,
    safe_until: Option<Position>,
    stats: Applied,
}

struct Worker {
    jobs: Option<Sender<Arc<Work>>>,
    done: Receiver<Result<u64>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl<'a> Applier<'a> {
    fn new(
        task: &'a Task,
        store: &'a Store,
        checkpoint: Position,
        safe_until: Option<Position>,
    ) -> Result<Applier<'a>> {
        let mut workers = Vec::new();
        for _ in 0..task.incremental.threads {
            let (jobs_tx, jobs_rx) = bounded::<Arc<Work>>(1);
            let (done_tx, done_rx) = bounded::<Result<u64>>(1);
            let mut dst = apply_connection(task)?;
            let task = task.clone();
            let handle = std::thread::spawn(move || {
                for work in jobs_rx.iter() {
                    let r = apply_with_retry(&task, &mut dst, &work);
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            });
            workers.push(Worker {
                jobs: Some(jobs_tx),
                done: done_rx,
                handle: Some(handle),
            });
        }
        let stats = match store.get(APPLIED)? {
            Some(s) if !s.is_empty() => serde_json::from_str(&s).unwrap_or(Applied {
                position: checkpoint.clone(),
                source_time: 0,
                latency_seconds: 0.0,
                rows_applied: 0,
                transactions: 0,
                ddl_rejected: 0,
                last_ddl_error: None,
            }),
            _ => Applied {
                position: checkpoint.clone(),
                source_time: 0,
                latency_seconds: 0.0,
                rows_applied: 0,
                transactions: 0,
                ddl_rejected: 0,
                last_ddl_error: None,
            },
        };
        Ok(Applier {
            store,
            batch: Coalescer::new(task.incremental.threads, false),
            workers,
            ddl_conn: apply_connection(task)?,
            throttle: Throttle::new(
                task.incremental.rows_per_second,
                task.incremental.mb_per_second,
                0,
            ),
            checkpoint,
            batch_end: None,
            safe_until,
            stats,
        })
    }

    /// Records that `txn` (with `rows` row changes in the batch) belongs to the batch.
    fn advance(&mut self, txn: &Txn, rows: usize) {
        self.batch_end = Some(txn.end.clone());
        self.stats.source_time = txn.timestamp;
        self.stats.transactions += 1;
        self.stats.rows_applied += rows as u64;
    }

    /// Applies the gathered batch and records its end as the checkpoint.
    fn flush(&mut self, tracker: &mut Tracker) -> Result<()> {
        let Some(end) = self.batch_end.take() else {
            return Ok(());
        };
        if !self.batch.is_empty() {
            let exact = self
                .safe_until
                .as_ref()
                .is_none_or(|s| after(&self.checkpoint, s));
            self.batch.set_exact(exact);
            let (rows, bytes) = (self.batch.rows as u64, self.batch.bytes);
            save_position(self.store, INFLIGHT, &end)?;
            let shares = self.batch.take();
            let mut sent = Vec::new();
            for (w, share) in shares.into_iter().enumerate() {
                if share.is_empty() {
                    continue;
                }
                let jobs = self.workers[w]
                    .jobs
                    .as_ref()
                    .ok_or_else(|| anyhow!("internal: apply worker gone"))?;
                jobs.send(Arc::new(share))
                    .map_err(|_| anyhow!("an apply worker stopped"))?;
                sent.push(w);
            }
            let mut first_error = None;
            for w in sent {
                let r = self.workers[w]
                    .done
                    .recv()
                    .map_err(|_| anyhow!("an apply worker stopped"))
                    .and_then(|r| r);
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            self.throttle.rows(rows, bytes);
        }
        tracker.save(self.store)?;
        save_position(self.store, CHECKPOINT, &end)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.stats.position = end.clone();
        if self.stats.source_time > 0 {
            self.stats.latency_seconds = (now - self.stats.source_time as f64).max(0.0);
        }
        self.store
            .set(APPLIED, &serde_json::to_string(&self.stats)?)?;
        self.checkpoint = end;
        Ok(())
    }

    /// The source is idle and everything it logged is applied: no latency.
    fn idle(&mut self) -> Result<()> {
        self.stats.latency_seconds = 0.0;
        self.store
            .set(APPLIED, &serde_json::to_string(&self.stats)?)
    }

    /// Applies a DDL statement; returns false when the destination rejected it (logged
    /// and counted in the status: the task goes on).
    fn ddl(&mut self, task: &Task, use_db: Option<&str>, sql: &str) -> Result<bool> {
        let safe = self
            .safe_until
            .as_ref()
            .is_some_and(|s| !after(&self.checkpoint, s));
        if let Some(db) = use_db {
            // The database may not exist yet (it could be created later in the stream).
            let _ = self
                .ddl_conn
                .query_drop(format!("USE {}", tidemark_core::sql::quote_ident(db)));
        }
        let started = Instant::now();
        loop {
            match self.ddl_conn.query_drop(sql) {
                Ok(()) => return Ok(true),
                // Replayed DDL that already took effect (the copy or an earlier attempt
                // saw it): table exists, duplicate column or key, unknown column or key,
                // unknown table.
                Err(mysql::Error::MySqlError(m))
                    if safe
                        && [1050, 1060, 1061, 1091, 1051, 1146, 1054, 1826, 1007, 1008]
                            .contains(&m.code) =>
                {
                    tracing::warn!(
                        "incremental: DDL already applied, skipped ({}): {sql}",
                        m.message
                    );
                    return Ok(false);
                }
                Err(e) => match transient(&e) {
                    Some(kind) if started.elapsed() < window(task, kind) => {
                        tracing::warn!("incremental: DDL failed ({e}), retrying");
                        std::thread::sleep(Duration::from_secs(1));
                        if kind == Transient::Connection {
                            self.ddl_conn =
                                apply_connection_until(task, started + window(task, kind))?;
                            if let Some(db) = use_db {
                                let _ = self.ddl_conn.query_drop(format!(
                                    "USE {}",
                                    tidemark_core::sql::quote_ident(db)
                                ));
                            }
                        }
                    }
                    Some(_) => {
                        return Err(anyhow!("the destination kept failing a DDL statement: {e}")
                            .context(format!("while applying: {sql}")))
                    }
                    None => {
                        tracing::error!(
                            "incremental: the destination rejected a DDL statement, skipped: {e}; statement: {sql}"
                        );
                        self.stats.ddl_rejected += 1;
                        self.stats.last_ddl_error = Some(format!("{e}: {sql}"));
                        return Ok(false);
                    }
                },
            }
        }
    }

    fn read_table(&mut self, db: &str, table: &str) -> Result<Option<catalog::TableInfo>> {
        let info = catalog::read_database(&mut self.ddl_conn, db)?;
        Ok(info.and_then(|d| d.tables.into_iter().find(|t| t.def.name.table == table)))
    }

    fn shutdown(&mut self) {
        for w in &mut self.workers {
            w.jobs.take();
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// A view, routine or trigger statement of a database selected whole, rewritten for the
/// destination the way the schema phase writes these objects (renamed databases,
/// DEFINER removed, SQL SECURITY INVOKER, triggers guarded); `None` for statements
/// Tidemark does not replicate (events, users, grants, ...).
fn object_ddl(
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
        .take(8)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    let first = words.first()?.as_str();
    if !matches!(first, "CREATE" | "ALTER" | "DROP") {
        return None;
    }
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

fn window(task: &Task, kind: Transient) -> Duration {
    match kind {
        Transient::Connection => task.advanced.connection_window(),
        Transient::Other => task.advanced.other_window(),
    }
}

/// A destination connection for applying changes: foreign key checks off (the source
/// already checked them, and the order of rows across tables in a batch is not the
/// source's), unique checks on.
fn apply_connection(task: &Task) -> Result<mysql::Conn> {
    let mut c = connect(&task.destination, Side::Destination)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Apply sessions: unique checks on; the variable that guarded triggers look for; and
/// READ COMMITTED, so deleting a key that is not there takes no gap lock that would make
/// the parallel connections deadlock (unless the destination logs statements, which
/// READ COMMITTED does not allow).
fn apply_session(c: &mut mysql::Conn) -> Result<()> {
    c.query_drop("SET unique_checks = 1, @tidemark_apply = 1")?;
    let format: Option<String> = c.query_first("SELECT @@binlog_format")?;
    if format.as_deref() != Some("STATEMENT") {
        c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
    }
    Ok(())
}

fn apply_connection_until(task: &Task, deadline: Instant) -> Result<mysql::Conn> {
    let mut c = reconnect(&task.destination, Side::Destination, deadline)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Applies one share, retrying it whole after a deadlock or a lost connection.
fn apply_with_retry(task: &Task, dst: &mut mysql::Conn, work: &Work) -> Result<u64> {
    let started = Instant::now();
    loop {
        match apply::apply(dst, work, task.full.batch_bytes) {
            Ok(n) => return Ok(n),
            Err((e, sql)) => {
                let head: String = sql.chars().take(200).collect();
                match transient(&e) {
                    Some(kind) if started.elapsed() < window(task, kind) => {
                        tracing::warn!("incremental: a batch failed ({e}), retrying");
                        if kind == Transient::Connection {
                            *dst = apply_connection_until(task, started + window(task, kind))?;
                        } else {
                            let _ = dst.query_drop("ROLLBACK");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                    _ => {
                        let _ = dst.query_drop("ROLLBACK");
                        let hint = match &e {
                            mysql::Error::MySqlError(m) if m.code == 1062 => {
                                ": the destination already has a row the source inserted, so it differs from the source; run `tidemark verify`, or restart the task with full migration"
                            }
                            _ => "",
                        };
                        return Err(anyhow!("the destination rejected a change: {e}{hint}")
                            .context(format!("while applying: {head}…")));
                    }
                }
            }
        }
    }
}
