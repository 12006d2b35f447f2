//! The full data migration into a message queue: every row of every chunk becomes an
//! INSERT message marked as snapshot data.
//!
//! `threads` workers each read chunks from the source and send their messages; a chunk
//! is marked done in the state store only after the broker acknowledged every one of
//! its messages. A chunk interrupted before that is sent again whole on restart: its
//! messages may then arrive twice (at least once; consumers deduplicate by table and
//! key, see `docs/rocketmq.md`).

use crate::config::Task;
use crate::connect::{connect, reconnect, transient, Side, Transient};
use crate::progress::Progress;
use crate::sink::rocketmq::client::{now_ms, Outbox};
use crate::sink::rocketmq::format::RowEvent;
use crate::sink::rocketmq::Sink;
use crate::source::snapshot;
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::Plan;
use anyhow::{anyhow, Result};
use crossbeam_channel::bounded;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// An outbox is sent when it holds this many bytes (and at every chunk's end).
const SEND_BYTES: usize = 4 << 20;

pub fn copy(
    task: &Task,
    plan: &Plan,
    store: &Store,
    progress: &Progress,
    sink: &Sink,
) -> Result<()> {
    let mut src = connect(&task.source, Side::Source)?;
    let jobs = super::full::pending_chunks(task, plan, store, &mut src)?;
    drop(src);
    tracing::info!(
        "full: {} chunk(s) to send from {} table(s)",
        jobs.len(),
        plan.tables.len()
    );
    let remaining: Vec<AtomicUsize> = (0..plan.tables.len())
        .map(|i| AtomicUsize::new(jobs.iter().filter(|j| j.0 == i).count()))
        .collect();
    let (tx, rx) = bounded(jobs.len().max(1));
    for j in jobs {
        tx.send(j)
            .map_err(|_| anyhow!("internal: job queue closed"))?;
    }
    drop(tx);
    let throttle = Throttle::new(
        task.full.rows_per_second,
        task.full.mb_per_second,
        task.full.source_qps,
    );
    let failed = AtomicBool::new(false);
    let worker = || -> Result<()> {
        let mut src = connect(&task.source, Side::Source)?;
        let mut out = Outbox::default();
        // A requested stop takes no further chunk (the chunk in flight is finished).
        while let Some((i, c)) = (!crate::task::stop_requested())
            .then(|| rx.recv().ok())
            .flatten()
        {
            if failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            let t = &plan.tables[i];
            let key = t.def().name.to_string();
            let target = t.target.to_string();
            progress.table_started(&target, t.source.rows);
            let mut first_failure: Option<Instant> = None;
            let (rows, bytes) = loop {
                store.start_chunk(&key, c.chunk.index)?;
                throttle.query();
                let (mut rows, mut bytes) = (0u64, 0u64);
                let read_ms = now_ms();
                let r = snapshot::read_chunk(&mut src, t, &c.chunk, |row| {
                    let size: u64 = row.iter().map(|v| v.wire_size() as u64).sum();
                    rows += 1;
                    bytes += size;
                    throttle.rows(1, size);
                    sink.row(&mut out, &RowEvent::snapshot(t, &row, read_ms))?;
                    if out.bytes >= SEND_BYTES {
                        sink.send(&mut out)?;
                    }
                    Ok(())
                });
                match r {
                    Ok(()) => break (rows, bytes),
                    Err(e) => {
                        // Only a source read that failed is retried here; the
                        // producer retries the broker by itself.
                        let kind = e.downcast_ref::<mysql::Error>().and_then(transient);
                        let since = *first_failure.get_or_insert_with(Instant::now);
                        match kind {
                            Some(Transient::Connection)
                                if since.elapsed() < task.advanced.connection_window() =>
                            {
                                tracing::warn!(
                                    "{}: reading chunk {} failed, sending it again: {e:#}",
                                    t.def().name,
                                    c.chunk.index
                                );
                                out = Outbox::default();
                                src = reconnect(
                                    &task.source,
                                    Side::Source,
                                    since + task.advanced.connection_window(),
                                )?;
                            }
                            _ => return Err(e),
                        }
                    }
                }
            };
            sink.send(&mut out)?;
            store.finish_chunk(&key, c.chunk.index, rows, bytes)?;
            progress.add(&target, rows, bytes);
            if remaining[i].fetch_sub(1, Ordering::Relaxed) == 1 {
                progress.table_done(&target);
            }
        }
        Ok(())
    };
    let copied = super::full::in_parallel(task.full.threads, || {
        let r = worker();
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        r
    });
    sink.save_counters(store)?;
    copied?;
    super::full::mark_copied(plan, store)?;
    if !rx.is_empty() {
        crate::task::check_stop()?;
    }
    Ok(())
}
