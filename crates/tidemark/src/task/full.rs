//! The full data migration: tables split into chunks, chunks copied by parallel
//! pipelines.
//!
//! Each pipeline is a reader thread (one source connection) and a writer thread (one
//! destination connection) joined by a small bounded channel of ready-made INSERT
//! statements, so reading, encoding and writing overlap while memory stays bounded
//! (`threads` × 3 statements of at most `batch_bytes`). A chunk is written in one
//! destination transaction and marked done in the state store only after COMMIT; a chunk
//! interrupted before that is copied again with REPLACE, so it can never be doubled.

use crate::config::LoadMethod;
use crate::config::{ConflictMode, Task};
use crate::connect::{connect, describe, reconnect, transient, ServerInfo, Side, Transient};
use crate::progress::Progress;
use crate::sink::mysql::writer::{self, InsertBuilder, InsertMode, LoadBuilder};
use crate::source::snapshot::{self, Chunk};
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, unbounded, Receiver};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tidemark_core::Row;

#[derive(Clone)]
struct Job {
    table: usize,
    chunk: Chunk,
    mode: InsertMode,
    /// A keyless table copied again: empty it first.
    clear_first: bool,
    /// When this chunk first failed with an error worth retrying.
    first_failure: Option<Instant>,
}

impl Job {
    /// The same chunk, to copy again after a transient failure: REPLACE so the rows a
    /// partly applied attempt left cannot collide (the attempt was rolled back, but a
    /// lost COMMIT acknowledgement may hide a committed one).
    fn again(mut self, task: &Task, keyless: bool) -> Job {
        if task.migration.on_conflicting_tables == ConflictMode::Fail {
            self.mode = InsertMode::Replace;
        }
        self.clear_first = keyless;
        self
    }
}

enum Msg {
    Begin {
        job: Job,
    },
    Statement {
        sql: String,
        error_values: writer::ErrorValues,
    },
    /// A LOAD DATA statement and the rows it reads.
    Load {
        sql: Arc<str>,
        data: Vec<u8>,
        error_values: writer::ErrorValues,
    },
    /// One row too large for a text statement: a prepared INSERT and its values.
    Prepared {
        sql: String,
        row: tidemark_core::Row,
    },
    End {
        rows: u64,
        bytes: u64,
    },
    /// The reader lost the chunk part-way: roll it back and copy it again.
    Abort,
}

/// What the writer tells its reader about each chunk the reader sent.
enum Outcome {
    Committed,
    /// Rolled back after a transient failure: read it again.
    Retry(Job),
}

struct Shared<'a> {
    task: &'a Task,
    plan: &'a Plan,
    store: &'a Store,
    progress: &'a Progress,
    throttle: Throttle,
    failed: AtomicBool,
    batch_bytes: usize,
    /// Rows go through LOAD DATA LOCAL INFILE rather than INSERT.
    load_data: bool,
    /// Chunks still to copy, per table.
    remaining: Vec<AtomicUsize>,
}

/// Copies every selected table's rows.
pub fn copy(task: &Task, plan: &Plan, store: &Store, progress: &Progress) -> Result<()> {
    let mut src = connect(&task.source, Side::Source)?;
    let mut dst = connect(&task.destination, Side::Destination)?;
    let info = ServerInfo::read(&mut dst)?;
    // Leave room for the statement around the values.
    let batch_bytes = task
        .full
        .batch_bytes
        .min((info.max_allowed_packet as usize / 2).max(64 << 10));
    let load_data = match task.full.load_method {
        LoadMethod::Insert => false,
        LoadMethod::LoadData => true,
        LoadMethod::Auto => {
            dst.query_first::<u8, _>("SELECT @@local_infile")
                .ok()
                .flatten()
                == Some(1)
        }
    };
    tracing::info!(
        "full: writing with {}",
        if load_data {
            "LOAD DATA LOCAL INFILE"
        } else {
            "multi-row INSERT"
        }
    );
    drop(dst);

    let mut jobs = Vec::new();
    for (i, c) in pending_chunks(task, plan, store, &mut src)? {
        let t = &plan.tables[i];
        let retry = c.attempts > 0;
        let mode = match (task.migration.on_conflicting_tables, retry) {
            (ConflictMode::Ignore, _) => InsertMode::Ignore,
            (ConflictMode::Fail, true) => InsertMode::Replace,
            (ConflictMode::Fail, false) => InsertMode::Insert,
        };
        let clear_first = retry && t.def().key.is_none();
        jobs.push(Job {
            table: i,
            chunk: c.chunk,
            mode,
            clear_first,
            first_failure: None,
        });
    }
    drop(src);
    tracing::info!(
        "full: {} chunk(s) to copy in {} table(s)",
        jobs.len(),
        plan.tables.len()
    );

    let shared = Shared {
        load_data,
        task,
        plan,
        store,
        progress,
        throttle: Throttle::new(
            task.full.rows_per_second,
            task.full.mb_per_second,
            task.full.source_qps,
        ),
        failed: AtomicBool::new(false),
        batch_bytes,
        remaining: (0..plan.tables.len())
            .map(|i| AtomicUsize::new(jobs.iter().filter(|j| j.table == i).count()))
            .collect(),
    };
    let (tx, rx) = bounded::<Job>(jobs.len().max(1));
    for j in jobs {
        tx.send(j)
            .map_err(|_| anyhow!("internal: job queue closed"))?;
    }
    drop(tx);
    in_parallel(task.full.threads, || pipeline(&shared, rx.clone()))?;
    mark_copied(plan, store)?;
    // Chunks no pipeline took: a stop was requested.
    if !rx.is_empty() {
        crate::task::check_stop()?;
    }
    Ok(())
}

/// Runs `work` on `threads` threads; returns the first error of any.
pub(crate) fn in_parallel(threads: usize, work: impl Fn() -> Result<()> + Sync) -> Result<()> {
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(&work)).collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(anyhow!("a copy thread panicked")),
            })
            .collect()
    });
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The chunks still to copy, largest tables first, as (table index, chunk): planned on
/// the first run and saved, so a restart skips the chunks already done.
pub(crate) fn pending_chunks(
    task: &Task,
    plan: &Plan,
    store: &Store,
    src: &mut mysql::Conn,
) -> Result<Vec<(usize, crate::state::ChunkState)>> {
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..plan.tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plan.tables[i].source.rows));
    for &i in &order {
        let t = &plan.tables[i];
        let key = t.def().name.to_string();
        if store.table_state(&key)?.as_deref() == Some("copied") {
            continue;
        }
        if store.table_state(&key)?.as_deref() != Some("planned") {
            let chunks = snapshot::plan_chunks(src, t, task.full.chunk_rows)?;
            store.save_chunks(&key, &t.target.to_string(), t.source.rows, &chunks)?;
        }
        for c in store.chunks(&key)? {
            if !c.done {
                out.push((i, c));
            }
        }
    }
    Ok(out)
}

/// Marks the tables whose chunks are all done as copied.
pub(crate) fn mark_copied(plan: &Plan, store: &Store) -> Result<()> {
    for t in &plan.tables {
        let key = t.def().name.to_string();
        if store.chunks(&key)?.iter().all(|c| c.done) {
            store.set_table_state(&key, &t.target.to_string(), "copied", t.source.rows)?;
        }
    }
    Ok(())
}

/// One reader + one writer. Returns the first error of either.
///
/// The writer reports each chunk's outcome back to the reader, which copies a chunk
/// again when the writer had to roll it back after a deadlock or a lost connection; the
/// reader stops only when the job queue is empty and every chunk it sent is committed.
fn pipeline(sh: &Shared<'_>, jobs: Receiver<Job>) -> Result<()> {
    let mut src = connect(&sh.task.source, Side::Source)?;
    let dst = connect(&sh.task.destination, Side::Destination)?;
    let (tx, rx) = bounded::<Msg>(2);
    let (outcome_tx, outcome_rx) = unbounded::<Outcome>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let r = write_loop(sh, dst, rx, outcome_tx);
            if r.is_err() {
                sh.failed.store(true, Ordering::Relaxed);
            }
            r
        });
        let read = (|| -> Result<()> {
            let mut in_flight = 0usize;
            let mut queue_empty = false;
            loop {
                if sh.failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let outcome = if queue_empty && in_flight > 0 {
                    // Wait for the writer: a chunk it rolls back is ours to read again.
                    match outcome_rx.recv() {
                        Ok(o) => Some(o),
                        Err(_) => return Ok(()),
                    }
                } else {
                    outcome_rx.try_recv().ok()
                };
                let job = match outcome {
                    Some(Outcome::Committed) => {
                        in_flight -= 1;
                        continue;
                    }
                    Some(Outcome::Retry(job)) => {
                        in_flight -= 1;
                        // Let the competing transaction or the server settle first.
                        std::thread::sleep(Duration::from_millis(500));
                        job
                    }
                    None if queue_empty => return Ok(()),
                    // Stop at a chunk boundary: finish what is in flight, take no more.
                    None if crate::task::stop_requested() => {
                        queue_empty = true;
                        continue;
                    }
                    None => match jobs.recv() {
                        Ok(job) => job,
                        Err(_) => {
                            queue_empty = true;
                            continue;
                        }
                    },
                };
                in_flight += 1;
                if let Err(e) = read_job(sh, &mut src, &job, &tx) {
                    let Some(driver) = e.downcast_ref::<mysql::Error>() else {
                        return Err(e);
                    };
                    let Some(kind) = transient(driver) else {
                        return Err(e);
                    };
                    tracing::warn!(
                        "{}: reading chunk {} failed, copying it again: {}",
                        sh.plan.tables[job.table].def().name,
                        job.chunk.index,
                        describe(driver, &sh.task.source, Side::Source)
                    );
                    tx.send(Msg::Abort)
                        .map_err(|_| anyhow!("the writer stopped"))?;
                    if kind == Transient::Connection {
                        let deadline = Instant::now() + sh.task.advanced.connection_window();
                        src = reconnect(&sh.task.source, Side::Source, deadline)?;
                    }
                }
            }
        })();
        drop(tx);
        if read.is_err() {
            sh.failed.store(true, Ordering::Relaxed);
        }
        let written = writer
            .join()
            .map_err(|_| anyhow!("a writer thread panicked"))?;
        // The writer's error explains a closed channel better than the reader's.
        written.and(read)
    })
}

fn read_job(
    sh: &Shared<'_>,
    src: &mut mysql::Conn,
    job: &Job,
    tx: &crossbeam_channel::Sender<Msg>,
) -> Result<()> {
    let t: &TablePlan = &sh.plan.tables[job.table];
    let key = t.def().name.to_string();
    sh.store.start_chunk(&key, job.chunk.index)?;
    sh.progress
        .table_started(&t.target.to_string(), t.source.rows);
    let closed = || anyhow!("the writer stopped");
    tx.send(Msg::Begin { job: job.clone() })
        .map_err(|_| closed())?;
    let mut batch = Batcher::new(sh, t, job.mode);
    let (mut rows, mut bytes, mut batch_bytes) = (0u64, 0u64, 0u64);
    sh.throttle.query();
    let snapshot = keyless_snapshot(sh.task, sh.store, t, src)?;
    let read = snapshot::read_chunk(src, t, &job.chunk, |row| {
        let size: u64 = row.iter().map(|v| v.wire_size() as u64).sum();
        rows += 1;
        bytes += size;
        if let Some(sql) = batch.prepared_for(&row) {
            if !batch.is_empty() {
                sh.throttle.rows(batch.rows() as u64, batch_bytes);
                batch_bytes = 0;
                tx.send(batch.take()).map_err(|_| closed())?;
            }
            sh.throttle.rows(1, size);
            return tx.send(Msg::Prepared { sql, row }).map_err(|_| closed());
        }
        batch_bytes += size;
        if batch.push(&row) {
            sh.throttle.rows(batch.rows() as u64, batch_bytes);
            batch_bytes = 0;
            tx.send(batch.take()).map_err(|_| closed())?;
        }
        Ok(())
    });
    if snapshot {
        // The next chunk on this connection must not read from the same snapshot.
        let _ = src.query_drop("COMMIT");
    }
    read?;
    if !batch.is_empty() {
        sh.throttle.rows(batch.rows() as u64, batch_bytes);
        tx.send(batch.take()).map_err(|_| closed())?;
    }
    tx.send(Msg::End { rows, bytes }).map_err(|_| closed())?;
    Ok(())
}

/// A table without a key in a task with incremental migration is read from a
/// consistent snapshot whose binlog position is recorded before any row is sent: the
/// stream applies that table's changes only from there, so a change made during the
/// copy is neither applied twice (its rows cannot be replaced by key) nor lost. A
/// chunk copied again (after a crash or a rollback) records its new snapshot, which
/// replaces the old one, and the table is emptied in the same destination transaction.
/// Returns whether a snapshot was opened on `src`.
fn keyless_snapshot(
    task: &Task,
    store: &Store,
    t: &TablePlan,
    src: &mut mysql::Conn,
) -> Result<bool> {
    if t.def().key.is_some() || !task.has(crate::config::Phase::Incremental) {
        return Ok(false);
    }
    let name = &t.def().name;
    let at = snapshot::consistent_snapshot(src, &task.source, name, task.full.keyless_table_lock)?
        .ok_or_else(|| {
            anyhow!("{name} has no key and the source reports no snapshot binlog position: its copy cannot meet the binlog exactly (allow `full.keyless_table_lock`, or add a primary key)")
        })?;
    tracing::info!(
        "full: {name} (no key) is copied as of binlog {at}; its changes are applied from there"
    );
    crate::task::incremental::copied_as_of(store, &name.to_string(), &at)?;
    Ok(true)
}

/// The writer's side of one chunk.
struct Writing {
    job: Job,
    /// The chunk was rolled back after a transient failure: drop its remaining
    /// statements until its end, then hand it back to the reader.
    rolled_back: bool,
}

fn write_loop(
    sh: &Shared<'_>,
    mut dst: mysql::Conn,
    rx: Receiver<Msg>,
    outcomes: crossbeam_channel::Sender<Outcome>,
) -> Result<()> {
    // The server asks for the "file" of each LOAD DATA: hand it the batch in `slot`.
    let slot: Arc<Mutex<Vec<u8>>> = Arc::default();
    let install_infile = |dst: &mut mysql::Conn| {
        if sh.load_data {
            let data = slot.clone();
            dst.set_local_infile_handler(Some(mysql::LocalInfileHandler::new(move |_, stream| {
                use std::io::Write;
                let batch = std::mem::take(&mut *data.lock().unwrap_or_else(|e| e.into_inner()));
                stream.write_all(&batch)?;
                stream.flush()
            })));
        }
    };
    install_infile(&mut dst);
    let mut current: Option<Writing> = None;
    let report = |o: Outcome| {
        // The reader may have stopped on its own error; that error is reported.
        let _ = outcomes.send(o);
    };
    for msg in rx.iter() {
        let Some(w) = current.as_mut() else {
            match msg {
                Msg::Begin { job } => {
                    current = Some(Writing {
                        job,
                        rolled_back: false,
                    })
                }
                _ => return Err(anyhow!("internal: chunk data without a chunk")),
            }
            let Some(w) = current.as_mut() else {
                continue;
            };
            if let Err(e) = begin(sh, &mut dst, &w.job) {
                fail_chunk(sh, &mut dst, w, e, "START TRANSACTION")?;
                install_infile(&mut dst);
            }
            continue;
        };
        if w.rolled_back {
            if matches!(msg, Msg::End { .. } | Msg::Abort) {
                if let Some(w) = current.take() {
                    report(Outcome::Retry(w.job));
                }
            }
            continue;
        }
        let (result, sql, error_values): (Result<(), mysql::Error>, String, _) = match msg {
            Msg::Begin { .. } => return Err(anyhow!("internal: a chunk began inside another")),
            Msg::Abort => {
                let _ = dst.query_drop("ROLLBACK");
                if let Some(w) = current.take() {
                    report(Outcome::Retry(w.job));
                }
                continue;
            }
            Msg::Statement { sql, error_values } => (dst.query_drop(&sql), sql, error_values),
            Msg::Load {
                sql,
                data,
                error_values,
            } => {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = data;
                (dst.query_drop(&*sql), sql.to_string(), error_values)
            }
            Msg::Prepared { sql, row } => {
                let params: Vec<mysql::Value> = row.iter().map(snapshot::to_mysql).collect();
                let error_values = writer::error_values_of(&sh.plan.tables[w.job.table], &row);
                (dst.exec_drop(&sql, params), sql, error_values)
            }
            Msg::End { rows, bytes } => match dst.query_drop("COMMIT") {
                Ok(()) => {
                    let Some(w) = current.take() else { continue };
                    let t = &sh.plan.tables[w.job.table];
                    let key = t.def().name.to_string();
                    sh.store
                        .finish_chunk(&key, w.job.chunk.index, rows, bytes)?;
                    sh.progress.add(&t.target.to_string(), rows, bytes);
                    if sh.remaining[w.job.table].fetch_sub(1, Ordering::Relaxed) == 1 {
                        sh.progress.table_done(&t.target.to_string());
                    }
                    report(Outcome::Committed);
                    continue;
                }
                Err(e) => {
                    fail_chunk(sh, &mut dst, w, e, "COMMIT")?;
                    install_infile(&mut dst);
                    if let Some(w) = current.take() {
                        report(Outcome::Retry(w.job));
                    }
                    continue;
                }
            },
        };
        match result {
            Ok(()) if dst.warnings() > 0 => {
                let written = sh.plan.tables[w.job.table].target_columns();
                check_warnings(&mut dst, &sql, &written, &error_values)?
            }
            Ok(()) => {}
            Err(e) => {
                fail_chunk(sh, &mut dst, w, e, &sql)?;
                install_infile(&mut dst);
            }
        }
    }
    Ok(())
}

fn begin(sh: &Shared<'_>, dst: &mut mysql::Conn, job: &Job) -> Result<(), mysql::Error> {
    dst.query_drop("START TRANSACTION")?;
    if job.clear_first {
        let t = &sh.plan.tables[job.table];
        tracing::warn!(
            "{}: no key, copying the whole table again after an interruption",
            t.def().name
        );
        dst.query_drop(format!("DELETE FROM {}", t.target.quoted()))?;
    }
    Ok(())
}

/// A statement of the chunk failed. An error that may pass (deadlock, lock wait, lost
/// connection) rolls the chunk back, reconnecting if needed, and marks it for another
/// attempt while its retry window is open; any other error fails the task.
fn fail_chunk(
    sh: &Shared<'_>,
    dst: &mut mysql::Conn,
    w: &mut Writing,
    e: mysql::Error,
    sql: &str,
) -> Result<()> {
    let t = &sh.plan.tables[w.job.table];
    let Some(kind) = transient(&e) else {
        return Err(write_error(e, sql));
    };
    let first = *w.job.first_failure.get_or_insert_with(Instant::now);
    let advanced = &sh.task.advanced;
    let window = match kind {
        Transient::Connection => advanced.connection_window(),
        Transient::Other => advanced.other_window(),
    };
    if first.elapsed() > window {
        return Err(write_error(e, sql).context(format!(
            "{}: chunk {} kept failing for {} minutes (`advanced.retry_{}_minutes`)",
            t.def().name,
            w.job.chunk.index,
            window.as_secs() / 60,
            if kind == Transient::Connection {
                "connection"
            } else {
                "other"
            }
        )));
    }
    tracing::warn!(
        "{}: chunk {} rolled back, copying it again: {}",
        t.def().name,
        w.job.chunk.index,
        describe(&e, &sh.task.destination, Side::Destination)
    );
    if kind == Transient::Connection {
        *dst = reconnect(&sh.task.destination, Side::Destination, first + window)?;
    } else {
        let _ = dst.query_drop("ROLLBACK");
    }
    w.job = w.job.clone().again(sh.task, t.def().key.is_none());
    w.rolled_back = true;
    Ok(())
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

/// Rows are batched as INSERT statements or as LOAD DATA input.
enum Batcher {
    Insert(InsertBuilder),
    Load(LoadBuilder),
}

impl Batcher {
    fn new(sh: &Shared<'_>, t: &TablePlan, mode: InsertMode) -> Batcher {
        let (rows, bytes) = (sh.task.full.batch_rows, sh.batch_bytes);
        if sh.load_data {
            Batcher::Load(LoadBuilder::new(t, mode, rows, bytes))
        } else {
            Batcher::Insert(InsertBuilder::new(t, mode, rows, bytes))
        }
    }

    /// For a row too large for a text statement: the prepared INSERT to send it with.
    fn prepared_for(&self, row: &Row) -> Option<String> {
        match self {
            Batcher::Insert(b) if b.too_large(row) => Some(b.prepared()),
            _ => None,
        }
    }

    fn push(&mut self, row: &Row) -> bool {
        match self {
            Batcher::Insert(b) => b.push(row),
            Batcher::Load(b) => b.push(row),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Batcher::Insert(b) => b.is_empty(),
            Batcher::Load(b) => b.is_empty(),
        }
    }

    fn rows(&self) -> usize {
        match self {
            Batcher::Insert(b) => b.rows(),
            Batcher::Load(b) => b.rows(),
        }
    }

    fn take(&mut self) -> Msg {
        match self {
            Batcher::Insert(b) => {
                let batch = b.take();
                Msg::Statement {
                    sql: batch.body,
                    error_values: batch.error_values,
                }
            }
            Batcher::Load(b) => {
                let batch = b.take();
                Msg::Load {
                    sql: b.statement(),
                    data: batch.body,
                    error_values: batch.error_values,
                }
            }
        }
    }
}

/// A rejected INSERT: name the table and the server's reason, not the whole statement.
fn write_error(e: mysql::Error, sql: &str) -> anyhow::Error {
    let head: String = sql.chars().take(160).collect();
    anyhow!("the destination rejected a batch: {e}").context(format!("while running: {head}…"))
}

/// Total rows the plan expects (from the source's estimates).
pub fn estimate(plan: &Plan) -> u64 {
    plan.tables.iter().map(|t| t.source.rows).sum()
}
