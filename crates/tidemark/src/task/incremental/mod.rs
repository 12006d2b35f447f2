//! The incremental phase: binlog changes applied to the destination until the task is
//! stopped.
//!
//! ```text
//! stream thread ──Txn──▶ coordinator ──batches──▶ the destination's ChangeApplier
//!   (source::binlog::stream)   │ tracker, safe mode     (sink::mysql: apply workers,
//!                              │                         sink::rocketmq: messages)
//!                              └─ DDL: barrier, applied alone, tracker refreshed
//! ```
//!
//! The coordinator gathers whole transactions into a batch, reduces it to its net
//! effect per key, lets the workers write their shares in parallel and, once every
//! share is committed, records the batch's end position as the checkpoint. While the
//! workers write one batch, the coordinator gathers the next (one batch in flight at
//! most). A restart reads again from the checkpoint.
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

mod applier;
mod tracker;

use crate::config::Task;
use crate::connect::{connect, Side};
use crate::source::binlog::stream::{self, Item};
use crate::state::Store;
use crate::transform::filter::Filter;
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{anyhow, bail, Context, Result};
use applier::Applier;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use mysql::prelude::Queryable;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::sql::quote_ident;
use tidemark_core::{Change, Position, Row};
use tracker::Tracker;

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

/// Records that `table` (a source name) was copied from a snapshot holding every change
/// up to `at`: the stream skips its rows until it has passed `at`. A later copy of the
/// same table replaces the position.
pub fn copied_as_of(store: &Store, table: &str, at: &Position) -> Result<()> {
    // The copy's pipelines record in parallel: one read-modify-write at a time.
    static RECORDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = RECORDING.lock().unwrap_or_else(|e| e.into_inner());
    let mut skip: std::collections::BTreeMap<String, Position> = match store.get(SKIP_UNTIL)? {
        Some(s) if !s.is_empty() => {
            serde_json::from_str(&s).context("state store: bad copied-table positions")?
        }
        _ => Default::default(),
    };
    skip.insert(table.to_string(), at.clone());
    store.set(SKIP_UNTIL, &serde_json::to_string(&skip)?)
}

fn after(a: &Position, b: &Position) -> bool {
    a.reached(b)
}

/// Runs the incremental phase from the last checkpoint (or `start`).
pub fn run(
    task: &Task,
    plan: &Plan,
    store: &Store,
    stop: &AtomicBool,
    opts: Options,
    sink: &dyn crate::sink::Session,
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
        let (kind, tables) = (task.source_kind, plan.source_tables());
        std::thread::spawn(move || {
            let source = stream::Source {
                endpoints: &endpoints,
                identity,
                databases: &databases,
                server_id,
                retry_window,
            };
            crate::source::read_changes(kind, &source, &tables, start, &stop, tx)
        })
    };
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    if task.advanced.heartbeat {
        start_heartbeat(task, heartbeat_stop.clone())?;
    }
    let (control_tx, control_rx) = bounded::<Control>(4);
    let live = task.verification.mode == crate::config::VerificationMode::Continuous;
    let verifier_stop = Arc::new(AtomicBool::new(false));
    let verifier = live.then(|| {
        let (task, plan, stop) = (task.clone(), plan.clone(), verifier_stop.clone());
        let state_dir = task.state_dir.clone();
        std::thread::spawn(move || live_verification(&task, &plan, &state_dir, control_tx, &stop))
    });
    let result =
        Applier::new(task, store, start.clone(), safe_until, sink).and_then(|mut applier| {
            let how = Drive {
                stop,
                opts,
                control: live.then_some(&control_rx),
            };
            let r = coordinate(task, plan, &mut tracker, &mut applier, &rx, how);
            applier.shutdown();
            r
        });
    verifier_stop.store(true, Ordering::Relaxed);
    drop(control_rx);
    if let Some(v) = verifier {
        let _ = finished_within(v, Duration::from_secs(5));
    }
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

/// `[verification] mode = "continuous"`: passes over every table while changes are
/// applied. For each chunk the coordinator is paused, a consistent source snapshot is
/// taken with its exact binlog position (MariaDB), the coordinator applies up to that
/// position and holds while the chunk is compared: both ends are then at the same
/// point, so writes never make false differences. Each pass's result goes to the state
/// store (`tidemark status`).
fn live_verification(
    task: &Task,
    plan: &Plan,
    state_dir: &std::path::Path,
    control: Sender<Control>,
    stop: &AtomicBool,
) -> Result<()> {
    struct Live<'a> {
        control: &'a Sender<Control>,
    }
    impl crate::verify::ChunkSync for Live<'_> {
        fn before(&mut self, src: &mut mysql::Conn) -> Result<()> {
            let (ack_tx, ack_rx) = bounded::<Position>(1);
            let wait = |rx: &Receiver<Position>| {
                rx.recv_timeout(Duration::from_secs(120))
                    .map_err(|_| anyhow!("the change stream did not pause for live verification"))
            };
            self.control
                .send(Control::Pause(ack_tx))
                .map_err(|_| anyhow!("the task is stopping"))?;
            wait(&ack_rx)?;
            src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
            let Some(at) = crate::source::binlog::client::snapshot_position(src)? else {
                let _ = self.control.send(Control::Resume);
                bail!("live verification needs the source's snapshot binlog position (MariaDB): use mode = \"after-full\" or run `tidemark verify` with writes stopped");
            };
            let (ack_tx, ack_rx) = bounded::<Position>(1);
            self.control
                .send(Control::RunUntil(at, ack_tx))
                .map_err(|_| anyhow!("the task is stopping"))?;
            if let Err(e) = wait(&ack_rx) {
                let _ = self.control.send(Control::Resume);
                return Err(e);
            }
            Ok(())
        }

        fn after(&mut self, src: &mut mysql::Conn) -> Result<()> {
            let _ = src.query_drop("COMMIT");
            let _ = self.control.send(Control::Resume);
            Ok(())
        }
    }
    let store = Store::open(state_dir)?;
    let mut pass = 0u64;
    while !stop.load(Ordering::Relaxed) {
        pass += 1;
        let mut tables = Vec::new();
        for t in &plan.tables {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut sync = Live { control: &control };
            tables.push(crate::verify::verify_table_with(task, t, &mut sync)?);
        }
        let report = crate::verify::Report {
            tables,
            databases: Vec::new(),
        };
        let summary = format!("pass {pass}: {}", crate::verify::summary(&report));
        tracing::info!("verification: {summary}");
        store.set("verification", &serde_json::to_string(&report)?)?;
        store.set("verification_summary", &summary)?;
        for _ in 0..50 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The heartbeat table on the source (`[advanced] heartbeat`), in the
/// `heartbeat_database`.
pub fn heartbeat_table(database: &str) -> String {
    format!("{}.`heartbeat`", quote_ident(database))
}

/// Writes the task's heartbeat row on the source every second, until `stop`. Its
/// transactions reach the stream like any other, so the latency of a quiet source is
/// measured rather than guessed.
fn start_heartbeat(task: &Task, stop: Arc<AtomicBool>) -> Result<()> {
    let db = &task.advanced.heartbeat_database;
    let table = heartbeat_table(db);
    let mut c = connect(&task.source, Side::Source)?;
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(db)))
        .and_then(|_| {
            c.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {table} (task VARCHAR(64) PRIMARY KEY, ts DATETIME(6) NOT NULL)"
            ))
        })
        .with_context(|| format!("creating the heartbeat table {table} on the source (`advanced.heartbeat`): grant CREATE, INSERT and DELETE on {}.* or turn the heartbeat off", quote_ident(db)))?;
    let (name, ep) = (task.name.clone(), task.source.clone());
    std::thread::spawn(move || {
        let sql = format!("REPLACE INTO {table} VALUES (?, UTC_TIMESTAMP(6))");
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

/// Live verification's requests to the coordinator: hold the destination still at a
/// source snapshot's position while a chunk is compared.
pub(crate) enum Control {
    /// Stop applying (after writing the batch); answer with the checkpoint.
    Pause(Sender<Position>),
    /// Apply everything up to this position, then stop again and answer.
    RunUntil(Position, Sender<Position>),
    /// Go on.
    Resume,
}

/// How the coordinator is driven: when to stop, and live verification's requests.
struct Drive<'a> {
    stop: &'a AtomicBool,
    opts: Options,
    control: Option<&'a Receiver<Control>>,
}

/// What the coordinator does while held.
enum Held {
    Resume,
    RunUntil(Position, Sender<Position>),
}

/// Waits while held, for Resume or a new RunUntil (or the task stopping).
fn held(control: &Receiver<Control>, stop: &AtomicBool, at: &Position) -> Held {
    loop {
        match control.recv_timeout(Duration::from_millis(200)) {
            Ok(Control::Resume) => return Held::Resume,
            Ok(Control::RunUntil(p, ack)) => return Held::RunUntil(p, ack),
            Ok(Control::Pause(ack)) => {
                let _ = ack.send(at.clone());
            }
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => return Held::Resume,
        }
    }
}

fn coordinate(
    task: &Task,
    plan: &Plan,
    tracker: &mut Tracker,
    applier: &mut Applier,
    rx: &Receiver<Item>,
    how: Drive<'_>,
) -> Result<()> {
    let Drive {
        stop,
        opts,
        control,
    } = how;
    let batch_rows = task.incremental.batch_rows;
    let mut src = connect(&task.source, Side::Source)?;
    let mut last_caught_up_check = Instant::now();
    let mut report = Report::new(&applier.stats);
    let mut filter: Option<Filter> = None;
    // Live verification: apply up to this position, then hold.
    let mut hold: Option<(Position, Sender<Position>)> = None;
    // How far the stream has been read (past non-transaction events too).
    let mut read_to = applier.checkpoint.clone();
    loop {
        report.maybe_log(&applier.stats);
        if stop.load(Ordering::Relaxed) {
            applier.flush(tracker)?;
            tracing::info!("incremental: stopped at {}", applier.checkpoint);
            return Ok(());
        }
        if let Some(ctl) = control {
            while let Ok(msg) = ctl.try_recv() {
                match msg {
                    Control::Pause(ack) => {
                        applier.flush(tracker)?;
                        let _ = ack.send(applier.checkpoint.clone());
                        if let Held::RunUntil(p, ack) = held(ctl, stop, &applier.checkpoint) {
                            hold = Some((p, ack));
                        }
                    }
                    Control::RunUntil(p, ack) => hold = Some((p, ack)),
                    Control::Resume => {}
                }
            }
            if let Some((p, _)) = &hold {
                applier.flush(tracker)?;
                if after(&applier.checkpoint, p) || after(&read_to, p) {
                    if let Some((_, ack)) = hold.take() {
                        let _ = ack.send(applier.checkpoint.clone());
                    }
                    if let Held::RunUntil(p, ack) = held(ctl, stop, &applier.checkpoint) {
                        hold = Some((p, ack));
                    }
                    continue;
                }
            }
        }
        // While a batch is written or one is gathered, look again soon: the gathered one
        // goes as soon as the destination is free. With live verification, look at its
        // requests often: each chunk waits for them.
        let wait = if applier.busy() || applier.gathered() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(if control.is_some() { 20 } else { 200 })
        };
        match rx.recv_timeout(wait) {
            Ok(Item::Txn(txn)) => {
                // Held at a position this transaction goes past: stop before it.
                if let (Some(ctl), Some((p, _))) = (control, &hold) {
                    if txn.end.beyond(p) {
                        applier.flush(tracker)?;
                        if let Some((_, ack)) = hold.take() {
                            let _ = ack.send(applier.checkpoint.clone());
                        }
                        if let Held::RunUntil(p, ack) = held(ctl, stop, &applier.checkpoint) {
                            hold = Some((p, ack));
                        }
                    }
                }
                read_to = txn.end.clone();
                applier.begin_txn(&txn);
                if let Some(ddl) = &txn.ddl {
                    applier.flush(tracker)?;
                    tracker.apply_ddl(task, plan, applier, ddl)?;
                    applier.advance(&txn, 0);
                    applier.flush(tracker)?;
                    continue;
                }
                let rows = tracker.changes(&txn, applier, &mut filter, &task.source)?;
                applier.advance(&txn, rows);
                // A batch is handed over without waiting for it: the next one is
                // gathered while it is written. A full one goes at once; a partial one
                // when nothing more is there to read and the destination is free. So
                // batches are as large as what arrives while the one before is written
                // (no waiting when the source is quiet, full ones when catching up).
                if applier.pending_rows() >= batch_rows || (rx.is_empty() && !applier.busy()) {
                    applier.submit(tracker)?;
                }
            }
            Ok(Item::Connected { endpoint, identity }) => {
                tracing::info!("incremental: reading the binlog of {endpoint} ({identity})");
                applier.store.set(SOURCE_IDENTITY, &identity)?;
            }
            Ok(Item::Idle { position }) => {
                applier.flush(tracker)?;
                applier.idle(&position)?;
                read_to = position.clone();
                if opts.stop_when_caught_up && caught_up(task, plan, &mut src, &position)? {
                    tracing::info!("incremental: caught up at {position}");
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // The destination is still writing: gather on, or wait for it.
                if applier.busy() {
                    continue;
                }
                // Nothing more to read: what was gathered goes now, and once it is
                // written it is checkpointed (`flush` below, at the next timeout).
                if applier.gathered() {
                    applier.submit(tracker)?;
                    continue;
                }
                applier.flush(tracker)?;
                if opts.stop_when_caught_up
                    && last_caught_up_check.elapsed() > Duration::from_millis(500)
                {
                    last_caught_up_check = Instant::now();
                    if caught_up(task, plan, &mut src, &applier.checkpoint)? {
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

fn caught_up(task: &Task, plan: &Plan, src: &mut mysql::Conn, at: &Position) -> Result<bool> {
    let now = crate::source::current_position(task, &plan.source_tables(), src)?;
    Ok(after(at, &now))
}
