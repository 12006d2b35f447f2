//! The full data migration: tables split into chunks, chunks copied by parallel
//! pipelines, for every destination kind.
//!
//! Each pipeline is a reader thread (one source connection) and a writer thread (the
//! destination kind's [`ChunkWriter`], one connection) joined by a small bounded channel
//! of ready-made batches (statements, LOAD DATA buffers, message outboxes: the kind's
//! [`FullCopy::encode`] makes them), so reading, encoding and writing overlap while
//! memory stays bounded (`threads` × (2 + the kind's `queued_batches`) batches). A chunk
//! is written whole (one destination transaction, or every message acknowledged) and
//! marked done in the state store only after the writer's commit; a chunk interrupted
//! before that is copied again with `ChunkJob::again` set (MySQL: REPLACE, so it can
//! never be doubled).

use crate::config::Task;
use crate::connect::{connect, describe, reconnect, transient, Side, Transient};
use crate::progress::Progress;
use crate::sink::{Batch, ChunkJob, ChunkRows, ChunkWriter, FullCopy, WriteError};
use crate::source::snapshot;
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{anyhow, Result};
use crossbeam_channel::{bounded, unbounded, Receiver};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The same chunk, to copy again after a transient failure (the attempt was rolled
/// back, but a lost COMMIT acknowledgement may hide a committed one).
fn again(mut job: ChunkJob) -> ChunkJob {
    job.again = true;
    job
}

enum Msg {
    Begin {
        job: ChunkJob,
    },
    Batch(Batch),
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
    Retry(ChunkJob),
}

struct Shared<'a> {
    task: &'a Task,
    plan: &'a Plan,
    store: &'a Store,
    progress: &'a Progress,
    sink: &'a dyn FullCopy,
    throttle: Throttle,
    failed: AtomicBool,
    /// The destination keeps a keyless table's hand-off exact (see [`keyless_snapshot`]).
    exact_keyless: bool,
    /// Chunks still to copy, per table.
    remaining: Vec<AtomicUsize>,
}

/// Copies every selected table's rows into `sink`.
pub fn copy(
    task: &Task,
    plan: &Plan,
    store: &Store,
    progress: &Progress,
    sink: &dyn FullCopy,
) -> Result<()> {
    let mut src = connect(&task.source, Side::Source)?;
    let mut jobs = Vec::new();
    for (i, c) in pending_chunks(task, plan, store, &mut src)? {
        jobs.push(ChunkJob {
            table: i,
            chunk: c.chunk,
            again: c.attempts > 0,
            first_failure: None,
        });
    }
    drop(src);
    tracing::info!(
        "full: {} chunk(s) to copy in {} table(s)",
        jobs.len(),
        plan.tables.len()
    );

    // One pass over the jobs: a scan of them per table would grow with tables × chunks.
    let remaining: Vec<AtomicUsize> = (0..plan.tables.len())
        .map(|_| AtomicUsize::new(0))
        .collect();
    for j in &jobs {
        remaining[j.table].fetch_add(1, Ordering::Relaxed);
    }
    let shared = Shared {
        task,
        plan,
        store,
        progress,
        sink,
        throttle: Throttle::new(
            task.full.rows_per_second,
            task.full.mb_per_second,
            task.full.source_qps,
        ),
        failed: AtomicBool::new(false),
        exact_keyless: task.destination.capabilities().exact_keyless_handoff,
        remaining,
    };
    let (tx, rx) = bounded::<ChunkJob>(jobs.len().max(1));
    for j in jobs {
        tx.send(j)
            .map_err(|_| anyhow!("internal: job queue closed"))?;
    }
    drop(tx);
    in_parallel(sink.pipelines(task.full.threads), || {
        pipeline(&shared, rx.clone())
    })?;
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

/// The chunks still to copy, as (table index, chunk): planned on the first run and
/// saved, so a restart skips the chunks already done.
///
/// Dealt round-robin over the tables, largest first (the first chunk of every table,
/// then the second of each, ...), so parallel pipelines write different tables rather
/// than all the same one: on the destination they then contend for neither a table's
/// AUTO-INC lock (held for a whole LOAD DATA statement) nor the same index pages.
pub(crate) fn pending_chunks(
    task: &Task,
    plan: &Plan,
    store: &Store,
    src: &mut mysql::Conn,
) -> Result<Vec<(usize, crate::state::ChunkState)>> {
    let mut order: Vec<usize> = (0..plan.tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plan.tables[i].source.rows));
    let mut per_table = Vec::new();
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
        let pending: Vec<_> = store
            .chunks(&key)?
            .into_iter()
            .filter(|c| !c.done)
            .collect();
        if !pending.is_empty() {
            per_table.push((i, pending.into_iter()));
        }
    }
    Ok(round_robin(per_table))
}

/// One item of each list in turn, until all are empty.
fn round_robin<T>(mut lists: Vec<(usize, std::vec::IntoIter<T>)>) -> Vec<(usize, T)> {
    let mut out = Vec::with_capacity(lists.iter().map(|(_, l)| l.len()).sum());
    while !lists.is_empty() {
        lists.retain_mut(|(i, l)| match l.next() {
            Some(item) => {
                out.push((*i, item));
                true
            }
            None => false,
        });
    }
    out
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
fn pipeline(sh: &Shared<'_>, jobs: Receiver<ChunkJob>) -> Result<()> {
    let mut src = connect(&sh.task.source, Side::Source)?;
    let dst = sh.sink.writer()?;
    let (tx, rx) = bounded::<Msg>(sh.task.destination.capabilities().queued_batches);
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
    job: &ChunkJob,
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
    sh.throttle.query();
    let snapshot = keyless_snapshot(sh.task, sh.exact_keyless, sh.store, t, src)?;
    let mut rows = ChunkRows {
        src,
        table: t,
        chunk: &job.chunk,
        throttle: &sh.throttle,
        rows: 0,
        bytes: 0,
    };
    let read = sh.sink.encode(job, &mut rows, &mut |batch| {
        tx.send(Msg::Batch(batch)).map_err(|_| closed())
    });
    let (n, bytes) = (rows.rows, rows.bytes);
    if snapshot {
        // The next chunk on this connection must not read from the same snapshot.
        let _ = src.query_drop("COMMIT");
    }
    read?;
    tx.send(Msg::End { rows: n, bytes }).map_err(|_| closed())?;
    Ok(())
}

/// A table without a key in a task with incremental migration is read from a
/// consistent snapshot whose binlog position is recorded before any row is sent: the
/// stream applies that table's changes only from there, so a change made during the
/// copy is neither applied twice (its rows cannot be replaced by key) nor lost. A
/// chunk copied again (after a crash or a rollback) records its new snapshot, which
/// replaces the old one, and the table is emptied in the same destination transaction.
/// Returns whether a snapshot was opened on `src`. A destination that delivers at least
/// once (`exact` false) copies such a table as any other.
fn keyless_snapshot(
    task: &Task,
    exact: bool,
    store: &Store,
    t: &TablePlan,
    src: &mut mysql::Conn,
) -> Result<bool> {
    if t.def().key.is_some() || !task.has(crate::config::Phase::Incremental) || !exact {
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
    job: ChunkJob,
    /// The chunk was rolled back after a transient failure: drop its remaining
    /// batches until its end, then hand it back to the reader.
    rolled_back: bool,
}

fn write_loop(
    sh: &Shared<'_>,
    mut dst: Box<dyn ChunkWriter + '_>,
    rx: Receiver<Msg>,
    outcomes: crossbeam_channel::Sender<Outcome>,
) -> Result<()> {
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
            if let Err(e) = dst.begin(&w.job) {
                fail_chunk(sh, &mut *dst, w, e)?;
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
        match msg {
            Msg::Begin { .. } => return Err(anyhow!("internal: a chunk began inside another")),
            Msg::Abort => {
                dst.rollback();
                if let Some(w) = current.take() {
                    report(Outcome::Retry(w.job));
                }
            }
            Msg::Batch(batch) => {
                if let Err(e) = dst.write(batch) {
                    fail_chunk(sh, &mut *dst, w, e)?;
                }
            }
            Msg::End { rows, bytes } => match dst.commit() {
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
                }
                Err(e) => {
                    fail_chunk(sh, &mut *dst, w, e)?;
                    if let Some(w) = current.take() {
                        report(Outcome::Retry(w.job));
                    }
                }
            },
        }
    }
    Ok(())
}

/// A write of the chunk failed. An error that may pass (deadlock, lock wait, lost
/// connection) rolls the chunk back, reconnecting if needed, and marks it for another
/// attempt while its retry window is open; any other error fails the task.
fn fail_chunk(
    sh: &Shared<'_>,
    dst: &mut dyn ChunkWriter,
    w: &mut Writing,
    e: WriteError,
) -> Result<()> {
    let t = &sh.plan.tables[w.job.table];
    let Some(kind) = e.transient else {
        return Err(e.error);
    };
    let first = *w.job.first_failure.get_or_insert_with(Instant::now);
    let advanced = &sh.task.advanced;
    let window = match kind {
        Transient::Connection => advanced.connection_window(),
        Transient::Other => advanced.other_window(),
    };
    if first.elapsed() > window {
        return Err(e.error.context(format!(
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
        e.shown
    );
    if kind == Transient::Connection {
        dst.reconnect(first + window)?;
    } else {
        dst.rollback();
    }
    w.job = again(w.job.clone());
    w.rolled_back = true;
    Ok(())
}

/// Total rows the plan expects (from the source's estimates).
pub fn estimate(plan: &Plan) -> u64 {
    plan.tables.iter().map(|t| t.source.rows).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_dealt_across_tables() {
        let lists = vec![
            (2, vec!['a', 'b', 'c'].into_iter()),
            (0, vec!['x'].into_iter()),
            (1, vec!['p', 'q'].into_iter()),
        ];
        let dealt: Vec<(usize, char)> = super::round_robin(lists);
        assert_eq!(
            dealt,
            [(2, 'a'), (0, 'x'), (1, 'p'), (2, 'b'), (1, 'q'), (2, 'c')]
        );
    }
}
