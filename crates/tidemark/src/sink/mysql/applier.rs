//! The MySQL destination's change applier: a batch is coalesced per key
//! ([`apply::Coalescer`]) and its shares written by one worker connection each, in
//! parallel. A flush returns once the shares are handed over; the next flush (or
//! `settle`) waits for them, so one batch is written while the next is gathered. A key
//! goes to the same worker in every batch split by key, so the next batch's shares are
//! queued behind the current ones before they are waited for: a worker done with its
//! share starts on the next instead of waiting for the slowest (unless a table of the
//! batches has another unique key, see [`apply::Coalescer::independent`]). A
//! share that fails with a deadlock or a lost connection is retried whole within the
//! task's retry windows. DDL statements, table definitions read back and tables copied in mid-stream go
//! through a separate connection whose reads may run long.
//!
//! Cluster destinations ([`cluster`]): a node that refuses writes (read-only, outside
//! the primary component) is left like a lost connection, for the same endpoint or
//! the next writable `failover` address, and the share written again idempotently; a
//! certification conflict retries the share. A share is written in transactions sized
//! under the destination's limits (read once when the applier starts); one refused for
//! its size anyway is halved and written again, down to one row. The batch's checkpoint
//! comes only after every part of every share committed, so a crash between parts
//! replays the batch idempotently (safe mode up to the batch in flight).

use super::apply::{self, Coalescer, Work};
use super::cluster::{self, Failure, Limits, Topology};
use super::writer::{InsertBuilder, InsertMode};
use crate::config::Task;
use crate::connect::{connect, describe, reconnect, transient, Side, Transient};
use crate::endpoint::Endpoint;
use crate::sink::{Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use mysql::prelude::Queryable;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::{Change, TableName};

pub(crate) struct Applier<'a> {
    task: &'a Task,
    endpoint: &'a Endpoint,
    batch: Coalescer,
    workers: Vec<Worker>,
    /// DDL statements, table definitions, tables copied in.
    ddl_conn: mysql::Conn,
    /// The destination's transaction size limits.
    limits: Limits,
    /// Per batch handed over and not yet waited for (at most two, oldest first): the
    /// workers that got a share of it.
    writing: VecDeque<Vec<usize>>,
    /// The next batch may be queued behind the one handed over last: that one was split
    /// by key (not written whole by one worker) over tables whose keys are independent.
    last_queueable: bool,
}

/// A share and the rows one destination transaction may carry.
type Job = (Arc<Work>, usize);

struct Worker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<u64>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(task: &'a Task, endpoint: &'a Endpoint) -> Result<Applier<'a>> {
        // An ALTER of a big table runs long on a healthy server.
        let mut ddl_conn = connect(&endpoint.for_long_statements(), Side::Destination)?;
        apply_session(&mut ddl_conn)?;
        let limits = match Topology::detect(&mut ddl_conn) {
            Ok(t) => t.limits,
            Err(e) => {
                tracing::debug!(
                    "incremental: destination topology unreadable, no size limits: {e:#}"
                );
                Limits::default()
            }
        };
        if !limits.is_empty() {
            tracing::info!(
                "incremental: batches are written in transactions under the destination's limits ({:?} bytes, {:?} rows)",
                limits.max_bytes(),
                limits.max_rows()
            );
        }
        let cpus = super::destination_cpus(&mut ddl_conn);
        let threads = task.incremental.threads_for(cpus);
        if task.incremental.threads.is_none() {
            tracing::info!(
                "incremental: {threads} apply connections{}",
                cpus.map(|n| format!(" (the destination has {n} CPUs)"))
                    .unwrap_or_default()
            );
        }
        Ok(Applier {
            task,
            endpoint,
            batch: Coalescer::new(threads, false),
            workers: start_workers(task, endpoint, threads)?,
            ddl_conn,
            limits,
            writing: VecDeque::new(),
            last_queueable: false,
        })
    }
}

impl Applier<'_> {
    /// Waits for the oldest batches until at most `batches` are in flight. All of them
    /// are waited for even when one failed (a worker's answers must not be left for the
    /// next batch to read); the first error is returned.
    fn wait_until_in_flight(&mut self, batches: usize) -> Result<()> {
        let mut first_error = None;
        while self.writing.len() > batches {
            let Some(batch) = self.writing.pop_front() else {
                break;
            };
            if let Err(e) = wait_for(&self.workers, batch) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl crate::sink::ChangeApplier for Applier<'_> {
    fn begin_txn(&mut self, _: &Txn) {}

    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        for change in changes {
            self.batch.push(plan, change);
        }
        Ok(())
    }

    fn pending_rows(&self) -> usize {
        self.batch.rows
    }

    /// Hands the shares to the workers and returns once the batch before is committed:
    /// the coordinator gathers the next batch meanwhile. When this batch and the one
    /// before were both split by key, every key has the worker it had, so this one is
    /// queued behind it; otherwise (a small batch goes to one worker whole, and a key may
    /// change worker; or another unique key ties keys together) the one before is waited
    /// for first.
    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>> {
        if self.batch.is_empty() {
            return self.settle().map(|()| None);
        }
        self.batch.set_exact(f.exact);
        let (rows, bytes) = (self.batch.rows as u64, self.batch.bytes);
        let per_txn = if self.limits.is_empty() {
            usize::MAX
        } else {
            let per = self
                .limits
                .rows_per_transaction(bytes / rows.max(1), u64::MAX);
            usize::try_from(per).unwrap_or(usize::MAX)
        };
        // Split while the batch before is still being written.
        let independent = self.batch.independent;
        let shares = self.batch.take();
        let queueable = independent && shares.len() == self.workers.len();
        if !(queueable && self.last_queueable) {
            self.settle()?;
        }
        (f.in_flight)()?;
        let sent = hand_over(&self.workers, shares, per_txn)?;
        self.writing.push_back(sent);
        self.last_queueable = queueable;
        self.wait_until_in_flight(1)?;
        Ok(Some((rows, bytes)))
    }

    fn settle(&mut self) -> Result<()> {
        self.wait_until_in_flight(0)
    }

    /// A worker has not answered for every share it was given. Answers come in the order
    /// the shares were given, so a worker is done when it has one per batch it is in.
    fn busy(&self) -> bool {
        self.workers.iter().enumerate().any(|(w, worker)| {
            let given = self.writing.iter().filter(|b| b.contains(&w)).count();
            worker.done.len() < given
        })
    }

    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        self.settle()?;
        let (task, sql, use_db) = (self.task, d.sql, d.use_db);
        let ddl_conn = &mut self.ddl_conn;
        if let Some(db) = use_db {
            // The database may not exist yet (it could be created later in the stream).
            let _ = ddl_conn.query_drop(format!("USE {}", tidemark_core::sql::quote_ident(db)));
        }
        let started = Instant::now();
        loop {
            match ddl_conn.query_drop(sql) {
                Ok(()) => return Ok(DdlOutcome::Applied),
                // Replayed DDL that already took effect (the copy or an earlier attempt
                // saw it): table exists, duplicate column or key, unknown column or key,
                // unknown table.
                Err(mysql::Error::MySqlError(m))
                    if d.replay
                        && [1050, 1060, 1061, 1091, 1051, 1146, 1054, 1826, 1007, 1008]
                            .contains(&m.code) =>
                {
                    tracing::warn!(
                        "incremental: DDL already applied, skipped ({}): {sql}",
                        m.message
                    );
                    return Ok(DdlOutcome::AlreadyApplied);
                }
                Err(e) => match transient(&e) {
                    Some(kind) if started.elapsed() < window(task, kind) => {
                        tracing::warn!(
                            "incremental: DDL failed ({}), retrying",
                            describe(&e, self.endpoint, Side::Destination)
                        );
                        std::thread::sleep(Duration::from_secs(1));
                        if kind == Transient::Connection {
                            *ddl_conn = reconnect(
                                &self.endpoint.for_long_statements(),
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
                        return Ok(DdlOutcome::Rejected(format!("{e}: {sql}")));
                    }
                },
            }
        }
    }

    /// Read back from the destination: what the rows are written into.
    fn read_table(
        &mut self,
        _source: &TableName,
        target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        catalog::read_table(&mut self.ddl_conn, target)
    }

    /// REPLACEd, so a row already there is overwritten.
    fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        let mut rows = 0u64;
        let ddl_conn = &mut self.ddl_conn;
        let mut insert = InsertBuilder::new(plan, InsertMode::Replace, 1_000, 4 << 20);
        crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
            rows += 1;
            if insert.push(&row) {
                ddl_conn.query_drop(insert.take().body)?;
            }
            Ok(())
        })?;
        if !insert.is_empty() {
            ddl_conn.query_drop(insert.take().body)?;
        }
        Ok(rows)
    }

    fn shutdown(&mut self) {
        for w in self.workers.iter_mut() {
            w.jobs.take();
        }
        for w in self.workers.iter_mut() {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn start_workers(task: &Task, endpoint: &Endpoint, threads: usize) -> Result<Vec<Worker>> {
    let mut workers = Vec::new();
    for _ in 0..threads {
        // Two batches at most: the one being written and the one queued behind it.
        let (jobs_tx, jobs_rx) = bounded::<Job>(2);
        let (done_tx, done_rx) = bounded::<Result<u64>>(2);
        let mut dst = apply_connection(endpoint)?;
        let (task, endpoint) = (task.clone(), endpoint.clone());
        let handle = std::thread::spawn(move || {
            for (work, per_txn) in jobs_rx.iter() {
                let r = apply_with_retry(&task, &endpoint, &mut dst, &work, per_txn);
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

/// Hands each worker its share; returns the workers that got one.
fn hand_over(workers: &[Worker], shares: Vec<Work>, per_txn: usize) -> Result<Vec<usize>> {
    let mut sent = Vec::new();
    for (w, share) in shares.into_iter().enumerate() {
        if share.is_empty() {
            continue;
        }
        let jobs = workers[w]
            .jobs
            .as_ref()
            .ok_or_else(|| anyhow!("internal: apply worker gone"))?;
        if jobs.send((Arc::new(share), per_txn)).is_err() {
            // Those already sent are still written: wait for them before failing.
            let _ = wait_for(workers, sent);
            return Err(anyhow!("an apply worker stopped"));
        }
        sent.push(w);
    }
    Ok(sent)
}

/// Waits until the shares of these workers are committed; the first error if one failed.
fn wait_for(workers: &[Worker], writing: Vec<usize>) -> Result<()> {
    let mut first_error = None;
    for w in writing {
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

/// The task's retry window for an error of this kind.
fn window(task: &Task, kind: Transient) -> Duration {
    match kind {
        Transient::Connection => task.advanced.connection_window(),
        Transient::Other => task.advanced.other_window(),
    }
}

/// A destination connection for applying changes: foreign key checks off (the source
/// already checked them, and the order of rows across tables in a batch is not the
/// source's), unique checks on.
fn apply_connection(endpoint: &Endpoint) -> Result<mysql::Conn> {
    let mut c = connect(endpoint, Side::Destination)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Apply sessions: unique checks on; the variable that guarded triggers look for; and
/// READ COMMITTED, so deleting a key that is not there takes no gap lock that would make
/// the parallel connections deadlock (unless the destination logs statements, which
/// READ COMMITTED does not allow).
fn apply_session(c: &mut mysql::Conn) -> Result<()> {
    c.query_drop(crate::connect::APPLY_SESSION)?;
    let format: Option<String> = c.query_first("SELECT @@binlog_format")?;
    if format.as_deref() != Some("STATEMENT") {
        c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")?;
    }
    Ok(())
}

fn apply_connection_until(endpoint: &Endpoint, deadline: Instant) -> Result<mysql::Conn> {
    let mut c = reconnect(endpoint, Side::Destination, deadline)?;
    apply_session(&mut c)?;
    Ok(c)
}

/// Applies one share in transactions of at most `per_txn` rows, retrying the part that
/// failed after a deadlock, a lost connection or a node that refused writes, and halving
/// a part refused for its size.
fn apply_with_retry(
    task: &Task,
    endpoint: &Endpoint,
    dst: &mut mysql::Conn,
    work: &Work,
    per_txn: usize,
) -> Result<u64> {
    let started = Instant::now();
    let total: usize = work.iter().map(|(_, w)| w.rows()).sum();
    let mut per = per_txn.max(1);
    let (mut done, mut written) = (0usize, 0u64);
    let mut redo = false;
    loop {
        let end = done.saturating_add(per).min(total);
        match apply::apply(dst, work, task.full.batch_bytes, redo, done..end) {
            Ok(n) => {
                written += n;
                // Parts committed stay committed: a retry starts after them.
                done = end;
                redo = false;
                if done >= total {
                    return Ok(written);
                }
            }
            Err((e, _)) if end - done > 1 && cluster::classify(&e) == Failure::TooLarge => {
                let _ = dst.query_drop("ROLLBACK");
                per = ((end - done) / 2).max(1);
                tracing::warn!(
                    "incremental: {}: a transaction of {} row changes was refused for its size ({}), writing it in transactions of {per}",
                    crate::connect::node(endpoint),
                    end - done,
                    describe(&e, endpoint, Side::Destination)
                );
            }
            Err((e, sql)) => {
                let head: String = sql.chars().take(200).collect();
                match transient(&e) {
                    Some(kind) if started.elapsed() < window(task, kind) => {
                        tracing::warn!(
                            "incremental: applying a batch failed ({}: {}), retrying",
                            crate::connect::node(endpoint),
                            describe(&e, endpoint, Side::Destination)
                        );
                        if kind == Transient::Connection {
                            if matches!(e, mysql::Error::MySqlError(_)) {
                                // The node answered but takes no writes now: end the
                                // transaction, and give it or the endpoint a moment.
                                let _ = dst.query_drop("ROLLBACK");
                                std::thread::sleep(Duration::from_secs(1));
                            }
                            // Whether the lost attempt committed is unknown.
                            redo = true;
                            *dst = apply_connection_until(endpoint, started + window(task, kind))?;
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
                            _ if cluster::classify(&e) == Failure::TooLarge => {
                                ": the destination refuses even one row change for its size; raise its transaction limit (wsrep_max_ws_size, group_replication_transaction_size_limit, txn-total-size-limit)"
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
