//! The apply side of the incremental phase: the batch being gathered, the worker
//! connections that write its shares, retries, checkpoints and DDL statements.

use super::*;
use crate::config::Task;
use crate::connect::{connect, reconnect, transient, Side, Transient};
use crate::sink::mysql::apply::{self, Coalescer, Work};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::state::Store;
use crate::task::throttle::Throttle;
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use mysql::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::Position;

/// The apply workers and the batch being gathered.
pub(super) struct Applier<'a> {
    pub(super) store: &'a Store,
    pub(super) batch: Coalescer,
    pub(super) workers: Vec<Worker>,
    pub(super) ddl_conn: mysql::Conn,
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
            last_received: None,
        })
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

    pub(super) fn read_table(
        &mut self,
        db: &str,
        table: &str,
    ) -> Result<Option<catalog::TableInfo>> {
        let info = catalog::read_database(&mut self.ddl_conn, db)?;
        Ok(info.and_then(|d| d.tables.into_iter().find(|t| t.def.name.table == table)))
    }

    pub(super) fn shutdown(&mut self) {
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
    c.query_drop("SET unique_checks = 1, @tidemark_apply = 1")?;
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
