//! The MySQL destination's full-copy chunk writer: a chunk's rows as LOAD DATA LOCAL
//! INFILE buffers or prepared multi-row INSERT (or REPLACE / INSERT IGNORE) statements,
//! built on the pipeline's reader thread, written in one destination transaction by its
//! writer ([`method`]). How many pipelines are worth running is decided once when the
//! copy starts ([`pipelines`]).
//!
//! A chunk copied again (`ChunkJob::again`) is written with REPLACE, so rows a lost
//! attempt may have committed cannot collide; a keyless table copied again is emptied
//! first in the same transaction.
//!
//! On a destination with a transaction size limit (a Galera write-set, Group
//! Replication's or TiDB's limit: [`cluster::Limits`], read once when the copy starts)
//! a chunk is written as several transactions, each under the limit; a chunk refused
//! for its size anyway halves the budget and is copied again (REPLACE), so a crash or
//! refusal between its transactions replays idempotently, and its checkpoint still
//! comes only after its last commit.

use crate::config::{ConflictMode, LoadMethod, Task};
use crate::connect::{connect, describe, reconnect, transient, ServerInfo, Side, Transient};
use crate::endpoint::Endpoint;
use crate::sink::mysql::cluster::{self, Failure, Topology};
use crate::sink::mysql::writer::{self, InsertMode, LoadBuilder, PreparedBuilder};
use crate::sink::{Batch, ChunkJob, ChunkRows, ChunkWriter, WriteError};
use crate::transform::mapping::Plan;
use anyhow::{anyhow, Result};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tidemark_core::Row;

/// What the reader hands the writer (other kinds writing MySQL-dialect statements make
/// these too: `sink/adb/`).
pub(crate) enum Unit {
    Statement {
        sql: String,
        rows: usize,
        error_values: writer::ErrorValues,
    },
    /// A LOAD DATA statement and the rows it reads.
    Load {
        sql: Arc<str>,
        data: Vec<u8>,
        rows: usize,
        error_values: writer::ErrorValues,
    },
    /// A multi-row prepared INSERT and its values, row after row.
    Rows {
        sql: Arc<str>,
        params: Vec<mysql::Value>,
        rows: usize,
        error_values: writer::ErrorValues,
    },
}

pub(crate) struct Copy<'a> {
    endpoint: &'a Endpoint,
    task: &'a Task,
    plan: &'a Plan,
    batch_bytes: usize,
    /// How rows are written.
    method: Method,
    /// The most pipelines worth running (see [`pipelines`]).
    max_pipelines: Option<usize>,
    /// Bytes of statements one destination transaction may carry (`u64::MAX`: no
    /// limit): under the destination's limit, halved each time a transaction is refused
    /// for its size anyway. Shared by every pipeline.
    txn_bytes: AtomicU64,
    /// Rows one destination transaction may carry (`wsrep_max_ws_rows`).
    txn_rows: u64,
}

/// The smallest transaction budget a refusal for size halves down to; a batch refused
/// at this size is a real failure.
const MIN_TXN_BYTES: u64 = 16 << 10;

impl<'a> Copy<'a> {
    pub(crate) fn new(endpoint: &'a Endpoint, task: &'a Task, plan: &'a Plan) -> Result<Copy<'a>> {
        let mut dst = connect(endpoint, Side::Destination)?;
        let info = ServerInfo::read(&mut dst)?;
        // Leave room for the statement around the values.
        let batch_bytes = task
            .full
            .batch_bytes
            .min((info.max_allowed_packet as usize / 2).max(64 << 10));
        let method = method(task);
        let max_pipelines = pipelines(&mut dst, plan);
        // Read once: the limits are the cluster's settings, not per chunk.
        let limits = match Topology::detect(&mut dst) {
            Ok(t) => t.limits,
            Err(e) => {
                tracing::debug!("full: destination topology unreadable, no size limits: {e:#}");
                cluster::Limits::default()
            }
        };
        // Halved again: write-sets carry keys and row images besides the statements.
        let txn_bytes = limits
            .max_bytes()
            .map_or(u64::MAX, |b| (b / 2).max(MIN_TXN_BYTES));
        let txn_rows = limits.max_rows().unwrap_or(u64::MAX);
        if !limits.is_empty() {
            tracing::info!(
                "full: destination transactions kept under {} bytes and {} rows (the destination's transaction limits)",
                txn_bytes,
                txn_rows
            );
        }
        Ok(Copy {
            endpoint,
            task,
            plan,
            batch_bytes,
            method,
            max_pipelines,
            txn_bytes: AtomicU64::new(txn_bytes),
            txn_rows,
        })
    }

    fn txn_bytes(&self) -> u64 {
        self.txn_bytes.load(Ordering::Relaxed)
    }

    fn mode(&self, job: &ChunkJob) -> InsertMode {
        match (self.task.migration.on_conflicting_tables, job.again) {
            (ConflictMode::Ignore, _) => InsertMode::Ignore,
            (ConflictMode::Fail, true) => InsertMode::Replace,
            (ConflictMode::Fail, false) => InsertMode::Insert,
        }
    }
}

impl crate::sink::FullCopy for Copy<'_> {
    fn encode(
        &self,
        job: &ChunkJob,
        rows: &mut ChunkRows<'_>,
        out: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        let throttle = rows.throttle();
        let mut batch = Batcher::new(self, job.table, self.mode(job));
        let mut batch_bytes = 0u64;
        rows.read(|row, size| {
            if batch.would_overflow(&row) {
                throttle.rows(batch.rows() as u64, batch_bytes);
                batch_bytes = 0;
                out(batch.take())?;
            }
            batch_bytes += size;
            if batch.push(row) {
                throttle.rows(batch.rows() as u64, batch_bytes);
                batch_bytes = 0;
                out(batch.take())?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            throttle.rows(batch.rows() as u64, batch_bytes);
            out(batch.take())?;
        }
        Ok(())
    }

    fn pipelines(&self, threads: usize) -> usize {
        match self.max_pipelines {
            Some(most) if most < threads => {
                tracing::info!(
                    "full: {most} pipelines rather than `full.threads` = {threads}: one table holds most of the rows, and more writers into it than the destination has CPUs only spin on its index pages"
                );
                most
            }
            _ => threads,
        }
    }

    fn writer(&self) -> Result<Box<dyn ChunkWriter + '_>> {
        let mut w = Writer {
            copy: self,
            dst: connect(self.endpoint, Side::Destination)?,
            slot: Arc::default(),
            table: None,
            txn_bytes: 0,
            txn_rows: 0,
            answered: false,
        };
        w.install_infile();
        Ok(Box::new(w))
    }
}

/// One pipeline's destination connection.
struct Writer<'a> {
    copy: &'a Copy<'a>,
    dst: mysql::Conn,
    /// The server asks for the "file" of each LOAD DATA: it is handed the batch here.
    slot: Arc<Mutex<Vec<u8>>>,
    /// The table of the chunk being written.
    table: Option<usize>,
    /// What the open transaction carries so far (for the size limits).
    txn_bytes: u64,
    txn_rows: u64,
    /// The last failure was the server's answer (the connection still works).
    answered: bool,
}

impl Writer<'_> {
    fn install_infile(&mut self) {
        if self.copy.method == Method::LoadData {
            let data = self.slot.clone();
            self.dst
                .set_local_infile_handler(Some(mysql::LocalInfileHandler::new(
                    move |_, stream| {
                        use std::io::Write;
                        let batch =
                            std::mem::take(&mut *data.lock().unwrap_or_else(|e| e.into_inner()));
                        stream.write_all(&batch)?;
                        stream.flush()
                    },
                )));
        }
    }

    fn failed(&mut self, e: mysql::Error, sql: &str) -> WriteError {
        let ep = self.copy.endpoint;
        self.answered = matches!(e, mysql::Error::MySqlError(_));
        let shown = format!(
            "{}: {}",
            crate::connect::node(ep),
            describe(&e, ep, Side::Destination)
        );
        if cluster::classify(&e) == Failure::TooLarge {
            // What this transaction carried (with the refused statement) did not fit:
            // half of it is the budget from now on, for every pipeline.
            let carried = self.txn_bytes.max(1).min(self.copy.txn_bytes());
            if carried > MIN_TXN_BYTES {
                let budget = (carried / 2).max(MIN_TXN_BYTES);
                self.copy.txn_bytes.fetch_min(budget, Ordering::Relaxed);
                return WriteError {
                    transient: Some(Transient::Other),
                    shown: format!(
                        "{shown}: refused for its size, copying it again in transactions of at most {budget} bytes"
                    ),
                    error: write_error(e, sql),
                };
            }
            return WriteError {
                transient: None,
                shown,
                error: write_error(e, sql).context(format!(
                    "the destination refuses even a transaction of {carried} bytes for its size: raise its limit (wsrep_max_ws_size, group_replication_transaction_size_limit, txn-total-size-limit) or lower `full.batch_bytes`"
                )),
            };
        }
        WriteError {
            transient: transient(&e),
            shown,
            error: write_error(e, sql),
        }
    }

    /// Commits the open transaction and starts the next one when `bytes` and `rows` more
    /// would take it over the destination's limits. Per batch, and only arithmetic
    /// unless a limit applies.
    fn make_room(&mut self, bytes: u64, rows: u64) -> Result<(), WriteError> {
        let over = self.txn_bytes + bytes > self.copy.txn_bytes()
            || self.txn_rows + rows > self.copy.txn_rows;
        if over && self.txn_rows > 0 {
            self.dst
                .query_drop("COMMIT")
                .and_then(|()| self.dst.query_drop("START TRANSACTION"))
                .map_err(|e| self.failed(e, "COMMIT"))?;
            self.txn_bytes = 0;
            self.txn_rows = 0;
        }
        self.txn_bytes += bytes;
        self.txn_rows += rows;
        Ok(())
    }
}

impl ChunkWriter for Writer<'_> {
    fn begin(&mut self, job: &ChunkJob) -> Result<(), WriteError> {
        self.table = Some(job.table);
        self.txn_bytes = 0;
        self.txn_rows = 0;
        let t = &self.copy.plan.tables[job.table];
        let clear_first = job.again && t.def().key.is_none();
        let begun = self.dst.query_drop("START TRANSACTION").and_then(|()| {
            if clear_first {
                tracing::warn!(
                    "{}: no key, copying the whole table again after an interruption",
                    t.def().name
                );
                self.dst
                    .query_drop(format!("DELETE FROM {}", t.target.quoted()))?;
            }
            Ok(())
        });
        begun.map_err(|e| self.failed(e, "START TRANSACTION"))
    }

    fn write(&mut self, batch: Batch) -> Result<(), WriteError> {
        let (result, sql, error_values) = match batch.take::<Unit>()? {
            Unit::Statement {
                sql,
                rows,
                error_values,
            } => {
                self.make_room(sql.len() as u64, rows as u64)?;
                (self.dst.query_drop(&sql), sql, error_values)
            }
            Unit::Load {
                sql,
                data,
                rows,
                error_values,
            } => {
                self.make_room(data.len() as u64, rows as u64)?;
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = data;
                (self.dst.query_drop(&*sql), sql.to_string(), error_values)
            }
            Unit::Rows {
                sql,
                params,
                rows,
                error_values,
            } => {
                let size: u64 = params.iter().map(|v| v.bin_len()).sum();
                self.make_room(size, rows as u64)?;
                (
                    self.dst.exec_drop(&*sql, params),
                    sql.to_string(),
                    error_values,
                )
            }
        };
        match result {
            Ok(()) if self.dst.warnings() > 0 => {
                let table = self
                    .table
                    .ok_or_else(|| anyhow!("internal: chunk data without a chunk"))?;
                let written = self.copy.plan.tables[table].target_columns();
                check_warnings(&mut self.dst, &sql, &written, &error_values)?;
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e, &sql)),
        }
    }

    fn commit(&mut self) -> Result<(), WriteError> {
        self.dst
            .query_drop("COMMIT")
            .map_err(|e| self.failed(e, "COMMIT"))
    }

    fn rollback(&mut self) {
        let _ = self.dst.query_drop("ROLLBACK");
    }

    fn reconnect(&mut self, deadline: Instant) -> Result<()> {
        if std::mem::take(&mut self.answered) {
            // The node answered (read-only, outside the primary component): end the
            // transaction, and give it or the endpoint a moment before asking again.
            let _ = self.dst.query_drop("ROLLBACK");
            std::thread::sleep(Duration::from_secs(1));
        }
        self.dst = reconnect(self.copy.endpoint, Side::Destination, deadline)?;
        self.install_infile();
        Ok(())
    }
}

/// A value that does not fit its destination column is a warning in the session's
/// sql_mode (as with LOAD DATA LOCAL and INSERT IGNORE): such a warning fails the chunk,
/// so nothing is silently changed or skipped (see [`writer::changed_values`]).
fn check_warnings(
    dst: &mut mysql::Conn,
    sql: &str,
    written: &[String],
    error_values: &[(u64, usize)],
) -> Result<()> {
    let ignore = sql.starts_with("INSERT IGNORE ") || sql.contains("' IGNORE INTO");
    let serious = writer::changed_values(dst, written, ignore, error_values)?;
    if serious.is_empty() {
        return Ok(());
    }
    let head: String = sql.chars().take(160).collect();
    Err(anyhow!(
        "the destination changed or skipped values while loading: {}; fix the destination table or the data",
        serious.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    )
    .context(format!("while running: {head}…")))
}

/// How the rows of one table are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// LOAD DATA LOCAL INFILE: the cheapest for the destination per row.
    LoadData,
    /// Multi-row INSERT as prepared statements (values in the binary protocol).
    Prepared,
}

/// The write method. `auto` is the prepared INSERT: measured against LOAD DATA on the
/// same build and machine it costs the destination less CPU on every shape
/// (docs/benchmarks.md), and unlike LOAD DATA its statements into one table do not take
/// turns on the table's AUTO-INC lock under `innodb_autoinc_lock_mode = 1` (MariaDB's
/// and MySQL 5.7's default). `load-data` stays available.
fn method(task: &Task) -> Method {
    let m = match task.full.load_method {
        LoadMethod::Auto | LoadMethod::Insert => Method::Prepared,
        LoadMethod::LoadData => Method::LoadData,
    };
    tracing::info!("full: writing with {}", describe_method(m));
    m
}

fn describe_method(m: Method) -> &'static str {
    match m {
        Method::LoadData => "LOAD DATA LOCAL INFILE",
        Method::Prepared => "prepared multi-row INSERT",
    }
}

/// The table that holds more than half of the rows (at least 10 000), if one does: for
/// most of the copy every pipeline writes it.
fn dominant(plan: &Plan) -> Option<usize> {
    let total: u64 = plan.tables.iter().map(|t| t.source.rows).sum();
    plan.tables
        .iter()
        .position(|t| t.source.rows > total / 2 && t.source.rows >= 10_000)
}

/// The most pipelines worth running: when one table holds most of the rows, as many as
/// the destination has CPUs (at least 2). Writers into one table beyond that spin on its
/// index pages: one table of 2 M rows on a 2-CPU destination cost it 17.5 CPU-seconds
/// with 4 writers and 12.1 with 2, in 12.3 s against 9.1 s (docs/benchmarks.md). The CPU
/// count is MariaDB's `thread_pool_size`, which defaults to it; unknown (MySQL): no limit.
fn pipelines(dst: &mut mysql::Conn, plan: &Plan) -> Option<usize> {
    dominant(plan)?;
    Some(super::destination_cpus(dst)?.max(2))
}

/// Rows are batched as LOAD DATA input or prepared INSERT statements.
enum Batcher {
    Load(LoadBuilder),
    Prepared(PreparedBuilder),
}

impl Batcher {
    fn new(c: &Copy<'_>, table: usize, mode: InsertMode) -> Batcher {
        let t = &c.plan.tables[table];
        // A batch fits in one destination transaction.
        let rows = c
            .task
            .full
            .batch_rows
            .min(usize::try_from(c.txn_rows).unwrap_or(usize::MAX));
        let bytes = c
            .batch_bytes
            .min(usize::try_from(c.txn_bytes()).unwrap_or(usize::MAX));
        match c.method {
            Method::LoadData => Batcher::Load(LoadBuilder::new(t, mode, rows, bytes)),
            Method::Prepared => Batcher::Prepared(PreparedBuilder::new(t, mode, rows, bytes)),
        }
    }

    /// Whether `row` should go into the next batch (this one would grow too large).
    fn would_overflow(&self, row: &Row) -> bool {
        match self {
            Batcher::Load(_) => false,
            Batcher::Prepared(b) => b.would_overflow(row),
        }
    }

    fn push(&mut self, row: Row) -> bool {
        match self {
            Batcher::Load(b) => b.push(&row),
            Batcher::Prepared(b) => b.push(row),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Batcher::Load(b) => b.is_empty(),
            Batcher::Prepared(b) => b.is_empty(),
        }
    }

    fn rows(&self) -> usize {
        match self {
            Batcher::Load(b) => b.rows(),
            Batcher::Prepared(b) => b.rows(),
        }
    }

    fn take(&mut self) -> Batch {
        Batch::new(match self {
            Batcher::Load(b) => {
                let built = b.take();
                Unit::Load {
                    sql: b.statement(),
                    data: built.body,
                    rows: built.rows,
                    error_values: built.error_values,
                }
            }
            Batcher::Prepared(b) => {
                let built = b.take();
                Unit::Rows {
                    sql: built.body.0,
                    params: built.body.1,
                    rows: built.rows,
                    error_values: built.error_values,
                }
            }
        })
    }
}

/// A rejected INSERT: name the table and the server's reason, not the whole statement.
fn write_error(e: mysql::Error, sql: &str) -> anyhow::Error {
    let head: String = sql.chars().take(160).collect();
    anyhow!("the destination rejected a batch: {e}").context(format!("while running: {head}…"))
}
