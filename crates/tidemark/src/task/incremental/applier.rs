//! The apply side of the incremental phase: the batch being gathered, where it goes
//! ([`Target`]: MySQL worker connections, or RocketMQ messages), retries, checkpoints
//! and DDL statements.

use super::*;
use crate::config::Task;
use crate::connect::{connect, describe, reconnect, transient, Side, Transient};
use crate::sink::mysql::apply::{self, Coalescer, Work};
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::sink::rocketmq::client::{now_ms, Outbox};
use crate::sink::rocketmq::format::{DdlEvent, Op, Origin, RowEvent};
use crate::sink::rocketmq::Sink;
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use mysql::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::Position;
use tidemark_core::{Change, Row, TableName, Value};

/// The batch being gathered and where it is written.
pub(super) struct Applier<'a> {
    pub(super) store: &'a Store,
    pub(super) target: Target<'a>,
    pub(super) throttle: Throttle,
    /// Position after the last applied transaction.
    pub(super) checkpoint: Position,
    /// End of the batch being gathered.
    pub(super) batch_end: Option<Position>,
    pub(super) safe_until: Option<Position>,
    pub(super) stats: Applied,
    /// When the reader had the last transaction of the batch.
    pub(super) last_received: Option<Instant>,
}

/// Where changes are written.
pub(super) enum Target<'a> {
    /// A MySQL destination: the batch is coalesced per key and written by the workers.
    Mysql {
        batch: Coalescer,
        workers: Vec<Worker>,
        /// DDL statements, table definitions, tables copied in.
        ddl_conn: mysql::Conn,
    },
    /// A message queue: every change is a message, in source order per ordering key.
    Queue(QueueTarget<'a>),
}

pub(super) struct QueueTarget<'a> {
    sink: &'a Sink,
    outbox: Outbox,
    rows: usize,
    bytes: u64,
    /// The transaction whose changes are being added: its end, commit time (ms), the
    /// next change's index in it, and (for DDL) the source table it names.
    txn_end: Option<Position>,
    /// The transaction's own GTID (message formats that name it: Debezium, DTS Avro).
    txn_gtid: Option<String>,
    txn_ms: u64,
    index: u32,
    ddl_source: (String, Option<String>),
    /// Reads table definitions after DDL (a queue has none to read back).
    source: mysql::Conn,
}

pub(super) struct Worker {
    jobs: Option<Sender<Arc<Work>>>,
    done: Receiver<Result<u64>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl<'a> Applier<'a> {
    pub(super) fn new(
        task: &'a Task,
        store: &'a Store,
        checkpoint: Position,
        safe_until: Option<Position>,
        sink: Option<&'a Sink>,
    ) -> Result<Applier<'a>> {
        let target = match sink {
            Some(sink) => Target::Queue(QueueTarget {
                sink,
                outbox: Outbox::default(),
                rows: 0,
                bytes: 0,
                txn_end: None,
                txn_gtid: None,
                txn_ms: 0,
                index: 0,
                ddl_source: (String::new(), None),
                source: connect(&task.source, Side::Source)?,
            }),
            None => Target::Mysql {
                batch: Coalescer::new(task.incremental.threads, false),
                workers: start_workers(task)?,
                ddl_conn: {
                    // An ALTER of a big table runs long on a healthy server.
                    let mut c =
                        connect(&task.destination.for_long_statements(), Side::Destination)?;
                    apply_session(&mut c)?;
                    c
                },
            },
        };
        let stats = store
            .get(APPLIED)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| Applied {
                position: checkpoint.clone(),
                source_time: 0,
                latency_seconds: 0.0,
                rows_applied: 0,
                transactions: 0,
                ddl_rejected: 0,
                last_ddl_error: None,
            });
        Ok(Applier {
            store,
            target,
            throttle: Throttle::new(
                task.incremental.rows_per_second,
                task.incremental.mb_per_second,
                0,
            ),
            checkpoint,
            batch_end: None,
            safe_until,
            stats,
            last_received: None,
        })
    }

    /// A transaction starts: what its messages carry as their origin.
    pub(super) fn begin_txn(&mut self, txn: &Txn) {
        if let Target::Queue(q) = &mut self.target {
            q.txn_end = Some(txn.end.clone());
            q.txn_gtid = txn.gtid.clone();
            q.txn_ms = u64::from(txn.timestamp) * 1000;
            q.index = 0;
            if let Some(ddl) = &txn.ddl {
                let st = crate::transform::ddl::Statement::parse(&ddl.statement);
                q.ddl_source = match st.tables.first() {
                    Some(n) => (
                        n.database.clone().unwrap_or_else(|| ddl.database.clone()),
                        Some(n.name.clone()),
                    ),
                    None => (
                        st.database.clone().unwrap_or_else(|| ddl.database.clone()),
                        None,
                    ),
                };
            }
        }
    }

    /// Adds one row change of a followed table to the batch.
    pub(super) fn push(&mut self, plan: &Arc<TablePlan>, change: Change) -> Result<()> {
        match &mut self.target {
            Target::Mysql { batch, .. } => {
                batch.push(plan, change);
                Ok(())
            }
            Target::Queue(q) => {
                // Binlog images hold every column; messages carry the copied ones.
                let project = |r: &Row| -> Vec<Value> {
                    plan.copied
                        .iter()
                        .filter_map(|&i| r.get(i).cloned())
                        .collect()
                };
                let (op, before, after) = match &change {
                    Change::Insert { row, .. } => (Op::Insert, None, Some(project(row))),
                    Change::Update { before, after, .. } => {
                        (Op::Update, Some(project(before)), Some(project(after)))
                    }
                    Change::Delete { before, .. } => (Op::Delete, Some(project(before)), None),
                    Change::Ddl { .. } | Change::Commit { .. } => return Ok(()),
                };
                q.bytes += before
                    .iter()
                    .chain(after.iter())
                    .flatten()
                    .map(|v| v.wire_size() as u64)
                    .sum::<u64>();
                let ev = RowEvent {
                    table: plan,
                    op,
                    before: before.as_deref(),
                    after: after.as_deref(),
                    snapshot: false,
                    origin: Origin::binlog(q.txn_end.as_ref(), q.index, q.txn_ms)
                        .with_gtid(q.txn_gtid.as_deref()),
                };
                q.rows += 1;
                q.index += q.sink.row(&mut q.outbox, &ev)?;
                Ok(())
            }
        }
    }

    /// Row changes gathered and not yet written.
    pub(super) fn pending_rows(&self) -> usize {
        match &self.target {
            Target::Mysql { batch, .. } => batch.rows,
            Target::Queue(q) => q.rows,
        }
    }

    /// Records that `txn` (with `rows` row changes in the batch) belongs to the batch.
    pub(super) fn advance(&mut self, txn: &Txn, rows: usize) {
        self.batch_end = Some(txn.end.clone());
        self.stats.source_time = txn.timestamp;
        self.last_received = Some(txn.received);
        self.stats.transactions += 1;
        self.stats.rows_applied += rows as u64;
    }

    /// Applies the gathered batch and records its end as the checkpoint.
    pub(super) fn flush(&mut self, tracker: &mut Tracker) -> Result<()> {
        let Some(end) = self.batch_end.take() else {
            return Ok(());
        };
        match &mut self.target {
            Target::Mysql { batch, workers, .. } if !batch.is_empty() => {
                let exact = self
                    .safe_until
                    .as_ref()
                    .is_none_or(|s| after(&self.checkpoint, s));
                batch.set_exact(exact);
                let (rows, bytes) = (batch.rows as u64, batch.bytes);
                save_position(self.store, INFLIGHT, &end)?;
                write_shares(workers, batch.take())?;
                self.throttle.rows(rows, bytes);
            }
            Target::Mysql { .. } => {}
            Target::Queue(q) => {
                let (rows, bytes) = (q.rows as u64, q.bytes);
                // Every message before the checkpoint is acknowledged by the broker.
                q.sink.send(&mut q.outbox)?;
                q.sink.save_counters(self.store)?;
                (q.rows, q.bytes) = (0, 0);
                self.throttle.rows(rows, bytes);
            }
        }
        tracker.save_with(self.store, vec![(CHECKPOINT, serde_json::to_string(&end)?)])?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.stats.position = end.clone();
        // The binlog's commit times have whole seconds: the time since the reader had the
        // transaction is exact, the commit time a lower bound within a second.
        let received = self
            .last_received
            .map_or(0.0, |r| r.elapsed().as_secs_f64());
        if self.stats.source_time > 0 {
            let since_commit = now - self.stats.source_time as f64 - 1.0;
            self.stats.latency_seconds = received.max(since_commit).max(0.0);
        }
        self.store
            .set(APPLIED, &serde_json::to_string(&self.stats)?)?;
        self.checkpoint = end;
        Ok(())
    }

    /// The source is idle and everything it logged is applied: no latency.
    pub(super) fn idle(&mut self) -> Result<()> {
        self.stats.latency_seconds = 0.0;
        self.store
            .set(APPLIED, &serde_json::to_string(&self.stats)?)
    }

    /// Applies a DDL statement; returns false when the destination rejected it (logged
    /// and counted in the status: the task goes on).
    pub(super) fn ddl(&mut self, task: &Task, use_db: Option<&str>, sql: &str) -> Result<bool> {
        let ddl_conn = match &mut self.target {
            Target::Mysql { ddl_conn, .. } => ddl_conn,
            Target::Queue(q) => {
                // Sent alone, after every change before it was acknowledged.
                q.sink.send(&mut q.outbox)?;
                let first = crate::transform::ddl::Statement::parse(sql)
                    .tables
                    .first()
                    .map(|n| n.name.clone());
                let database = use_db.unwrap_or(&q.ddl_source.0).to_string();
                let ev = DdlEvent {
                    database: &database,
                    table: first.as_deref(),
                    statement: sql,
                    origin: Origin::binlog(q.txn_end.as_ref(), q.index, q.txn_ms)
                        .with_gtid(q.txn_gtid.as_deref()),
                };
                q.index += 1;
                let (db, table) = (q.ddl_source.0.clone(), q.ddl_source.1.clone());
                q.sink.ddl(&mut q.outbox, &ev, &db, table.as_deref())?;
                q.sink.send(&mut q.outbox)?;
                return Ok(true);
            }
        };
        let safe = self
            .safe_until
            .as_ref()
            .is_some_and(|s| !after(&self.checkpoint, s));
        if let Some(db) = use_db {
            // The database may not exist yet (it could be created later in the stream).
            let _ = ddl_conn.query_drop(format!("USE {}", tidemark_core::sql::quote_ident(db)));
        }
        let started = Instant::now();
        loop {
            match ddl_conn.query_drop(sql) {
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
                        tracing::warn!(
                            "incremental: DDL failed ({}), retrying",
                            describe(&e, &task.destination, Side::Destination)
                        );
                        std::thread::sleep(Duration::from_secs(1));
                        if kind == Transient::Connection {
                            *ddl_conn = reconnect(
                                &task.destination.for_long_statements(),
                                Side::Destination,
                                started + window(task, kind),
                            )?;
                            apply_session(ddl_conn)?;
                            if let Some(db) = use_db {
                                let _ = ddl_conn.query_drop(format!(
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

    /// A followed table's definition now: read back from a MySQL destination (what the
    /// rows are written into), from the source for a queue.
    pub(super) fn read_table(
        &mut self,
        source: &TableName,
        target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        let (conn, name) = match &mut self.target {
            Target::Mysql { ddl_conn, .. } => (ddl_conn, target),
            Target::Queue(q) => (&mut q.source, source),
        };
        let info = catalog::read_database(conn, &name.database)?;
        Ok(info.and_then(|d| {
            d.tables
                .into_iter()
                .find(|t| t.def.name.table == name.table)
        }))
    }

    /// Writes the rows of a table copied in mid-stream (renamed into the selection):
    /// REPLACEd into a MySQL destination, snapshot messages for a queue.
    pub(super) fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        let mut rows = 0u64;
        match &mut self.target {
            Target::Mysql { ddl_conn, .. } => {
                let mut insert = InsertBuilder::new(plan, InsertMode::Replace, 1_000, 4 << 20);
                crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
                    rows += 1;
                    if insert.push(&row) {
                        ddl_conn.query_drop(insert.take().0)?;
                    }
                    Ok(())
                })?;
                if !insert.is_empty() {
                    ddl_conn.query_drop(insert.take().0)?;
                }
            }
            Target::Queue(q) => {
                let read_ms = now_ms();
                crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
                    rows += 1;
                    q.sink
                        .row(&mut q.outbox, &RowEvent::snapshot(plan, &row, read_ms))
                        .map(|_| ())
                })?;
                q.sink.send(&mut q.outbox)?;
            }
        }
        Ok(rows)
    }

    /// Whether the destination is a MySQL server (tables to create and write).
    pub(super) fn is_mysql(&self) -> bool {
        matches!(self.target, Target::Mysql { .. })
    }

    pub(super) fn shutdown(&mut self) {
        if let Target::Mysql { workers, .. } = &mut self.target {
            for w in workers.iter_mut() {
                w.jobs.take();
            }
            for w in workers.iter_mut() {
                if let Some(h) = w.handle.take() {
                    let _ = h.join();
                }
            }
        }
    }
}

fn start_workers(task: &Task) -> Result<Vec<Worker>> {
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
    Ok(workers)
}

/// Hands each worker its share and waits until every share is committed.
fn write_shares(workers: &mut [Worker], shares: Vec<Work>) -> Result<()> {
    let mut sent = Vec::new();
    for (w, share) in shares.into_iter().enumerate() {
        if share.is_empty() {
            continue;
        }
        let jobs = workers[w]
            .jobs
            .as_ref()
            .ok_or_else(|| anyhow!("internal: apply worker gone"))?;
        jobs.send(Arc::new(share))
            .map_err(|_| anyhow!("an apply worker stopped"))?;
        sent.push(w);
    }
    let mut first_error = None;
    for w in sent {
        let r = workers[w]
            .done
            .recv()
            .map_err(|_| anyhow!("an apply worker stopped"))
            .and_then(|r| r);
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(super) fn window(task: &Task, kind: Transient) -> Duration {
    match kind {
        Transient::Connection => task.advanced.connection_window(),
        Transient::Other => task.advanced.other_window(),
    }
}

/// A destination connection for applying changes: foreign key checks off (the source
/// already checked them, and the order of rows across tables in a batch is not the
/// source's), unique checks on.
pub(super) fn apply_connection(task: &Task) -> Result<mysql::Conn> {
    let mut c = connect(&task.destination, Side::Destination)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Apply sessions: unique checks on; the variable that guarded triggers look for; and
/// READ COMMITTED, so deleting a key that is not there takes no gap lock that would make
/// the parallel connections deadlock (unless the destination logs statements, which
/// READ COMMITTED does not allow).
pub(super) fn apply_session(c: &mut mysql::Conn) -> Result<()> {
    c.query_drop(crate::connect::APPLY_SESSION)?;
    let format: Option<String> = c.query_first("SELECT @@binlog_format")?;
    if format.as_deref() != Some("STATEMENT") {
        c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
    }
    Ok(())
}

pub(super) fn apply_connection_until(task: &Task, deadline: Instant) -> Result<mysql::Conn> {
    let mut c = reconnect(&task.destination, Side::Destination, deadline)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Applies one share, retrying it whole after a deadlock or a lost connection.
pub(super) fn apply_with_retry(task: &Task, dst: &mut mysql::Conn, work: &Work) -> Result<u64> {
    let started = Instant::now();
    let mut redo = false;
    loop {
        match apply::apply(dst, work, task.full.batch_bytes, redo) {
            Ok(n) => return Ok(n),
            Err((e, sql)) => {
                let head: String = sql.chars().take(200).collect();
                match transient(&e) {
                    Some(kind) if started.elapsed() < window(task, kind) => {
                        tracing::warn!(
                            "incremental: applying a batch failed ({}), retrying",
                            describe(&e, &task.destination, Side::Destination)
                        );
                        if kind == Transient::Connection {
                            // Whether the lost attempt committed is unknown.
                            redo = true;
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
