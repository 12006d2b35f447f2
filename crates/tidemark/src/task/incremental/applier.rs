//! The apply side of the incremental phase, for every destination kind: the batch being
//! gathered, safe mode, the throttle, checkpoints (after the kind acknowledged the whole
//! batch: every share committed, every message acknowledged) and DDL outcomes. Where the
//! batch goes is the kind's [`ChangeApplier`].
//!
//! A batch may be *submitted* (handed to the kind, which may still be writing it when
//! the call returns) while the next one is gathered: decoding and coalescing then run
//! while the destination writes. At most one batch is in flight: submitting the next
//! one first waits for it, and only then is its end recorded as the checkpoint.

use super::*;
use crate::config::Task;
use crate::sink::{ChangeApplier, Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::TablePlan;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;
use tidemark_core::Position;
use tidemark_core::{Change, TableName};

/// The batch being gathered and where it is written.
pub(super) struct Applier<'a> {
    pub(super) store: &'a Store,
    pub(super) target: Box<dyn ChangeApplier + 'a>,
    /// The destination holds tables (see `sink::Capabilities::tables`).
    pub(super) has_tables: bool,
    pub(super) throttle: Throttle,
    /// Position after the last applied transaction.
    pub(super) checkpoint: Position,
    /// End of the batch being gathered.
    pub(super) batch_end: Option<Position>,
    pub(super) safe_until: Option<Position>,
    /// What is committed (and saved as `incremental.applied`).
    pub(super) stats: Applied,
    /// The batch being gathered: transactions, row changes, and when the reader had its
    /// last transaction and its commit time.
    gathering: Gathered,
    /// The batch handed to the kind and not yet known to be committed.
    submitted: Option<Submitted>,
}

#[derive(Default)]
struct Gathered {
    transactions: u64,
    rows: u64,
    source_time: u32,
    last_received: Option<Instant>,
}

struct Submitted {
    end: Position,
    batch: Gathered,
}

impl<'a> Applier<'a> {
    pub(super) fn new(
        task: &'a Task,
        store: &'a Store,
        checkpoint: Position,
        safe_until: Option<Position>,
        sink: &'a dyn crate::sink::Session,
    ) -> Result<Applier<'a>> {
        let target = sink.applier()?;
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
            has_tables: task.destination.capabilities().tables,
            throttle: Throttle::new(
                task.incremental.rows_per_second,
                task.incremental.mb_per_second,
                0,
            ),
            checkpoint,
            batch_end: None,
            safe_until,
            stats,
            gathering: Gathered::default(),
            submitted: None,
        })
    }

    /// A transaction starts: what its messages carry as their origin.
    pub(super) fn begin_txn(&mut self, txn: &Txn) {
        self.target.begin_txn(txn);
    }

    /// The rows event the next `push` comes from.
    pub(super) fn rows_event(&mut self, event: &crate::source::binlog::stream::EventInfo) {
        self.target.rows_event(event)
    }

    /// Adds the row changes of one rows event of a followed table to the batch.
    pub(super) fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        self.target.push(plan, changes)
    }

    /// Row changes gathered and not yet written.
    pub(super) fn pending_rows(&self) -> usize {
        self.target.pending_rows()
    }

    /// Records that `txn` (with `rows` row changes in the batch) belongs to the batch.
    pub(super) fn advance(&mut self, txn: &Txn, rows: usize) {
        self.batch_end = Some(txn.end.clone());
        let g = &mut self.gathering;
        g.source_time = txn.timestamp;
        g.last_received = Some(txn.received);
        g.transactions += 1;
        g.rows += rows as u64;
    }

    /// Applies the gathered batch and waits until it is committed: the checkpoint is then
    /// the batch's end.
    pub(super) fn flush(&mut self, tracker: &mut Tracker) -> Result<()> {
        self.submit(tracker)?;
        if let Some(batch) = self.submitted.take() {
            self.target.settle()?;
            self.committed(tracker, batch)?;
        }
        Ok(())
    }

    /// Hands the gathered batch to the kind, which may still be writing it on return;
    /// the batch submitted before it is then committed and checkpointed.
    pub(super) fn submit(&mut self, tracker: &mut Tracker) -> Result<()> {
        let Some(end) = self.batch_end.take() else {
            return Ok(());
        };
        // Replayed rows are written idempotently until the batches handed over so far
        // reach the safe point.
        let handed_over = self.submitted.as_ref().map_or(&self.checkpoint, |s| &s.end);
        let exact = self
            .safe_until
            .as_ref()
            .is_none_or(|s| after(handed_over, s));
        let store = self.store;
        let in_flight = || save_position(store, INFLIGHT, &end);
        let written = self.target.flush(&Flush {
            exact,
            store,
            in_flight: &in_flight,
        })?;
        if let Some((rows, bytes)) = written {
            self.throttle.rows(rows, bytes);
        }
        let batch = std::mem::take(&mut self.gathering);
        if let Some(before) = self.submitted.replace(Submitted { end, batch }) {
            self.committed(tracker, before)?;
        }
        // Already written (a kind whose flush waits, or a small batch): its outcome is
        // taken and it is checkpointed now rather than with the next batch.
        if !self.target.busy() {
            if let Some(batch) = self.submitted.take() {
                self.target.settle()?;
                self.committed(tracker, batch)?;
            }
        }
        Ok(())
    }

    /// Whether a batch handed over is still being written.
    pub(super) fn busy(&self) -> bool {
        self.target.busy()
    }

    /// Whether transactions were gathered since the last batch was handed over.
    pub(super) fn gathered(&self) -> bool {
        self.batch_end.is_some()
    }

    /// Records a committed batch: checkpoint (with the tracker's definitions) and status.
    fn committed(&mut self, tracker: &mut Tracker, done: Submitted) -> Result<()> {
        let Submitted { end, batch } = done;
        tracker.save_with(self.store, vec![(CHECKPOINT, serde_json::to_string(&end)?)])?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let stats = &mut self.stats;
        stats.position = end.clone();
        stats.transactions += batch.transactions;
        stats.rows_applied += batch.rows;
        stats.source_time = batch.source_time;
        // The binlog's commit times have whole seconds: the time since the reader had the
        // transaction is exact, the commit time a lower bound within a second.
        let received = batch
            .last_received
            .map_or(0.0, |r| r.elapsed().as_secs_f64());
        if stats.source_time > 0 {
            let since_commit = now - stats.source_time as f64 - 1.0;
            stats.latency_seconds = received.max(since_commit).max(0.0);
        }
        self.store.set(APPLIED, &serde_json::to_string(stats)?)?;
        self.checkpoint = end;
        Ok(())
    }

    /// The source is idle and everything it logged is applied: no latency.
    pub(super) fn idle(&mut self, position: &tidemark_core::Position) -> Result<()> {
        self.target.idle(position)?;
        self.stats.latency_seconds = 0.0;
        self.store
            .set(APPLIED, &serde_json::to_string(&self.stats)?)
    }

    /// Applies a DDL statement; returns false when the destination rejected it (logged
    /// and counted in the status: the task goes on) or it had already taken effect.
    pub(super) fn ddl(&mut self, _task: &Task, use_db: Option<&str>, sql: &str) -> Result<bool> {
        let replay = self
            .safe_until
            .as_ref()
            .is_some_and(|s| !after(&self.checkpoint, s));
        match self.target.ddl(&Ddl {
            use_db,
            sql,
            replay,
        })? {
            DdlOutcome::Applied => Ok(true),
            DdlOutcome::AlreadyApplied => Ok(false),
            DdlOutcome::Rejected(why) => {
                self.stats.ddl_rejected += 1;
                self.stats.last_ddl_error = Some(why);
                Ok(false)
            }
        }
    }

    /// A followed table's definition now: read back from a destination with tables
    /// (what the rows are written into), from the source otherwise.
    pub(super) fn read_table(
        &mut self,
        source: &TableName,
        target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        self.target.read_table(source, target)
    }

    /// Writes the rows of a table copied in mid-stream (renamed into the selection).
    pub(super) fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        self.target.copy_rows(src, plan, chunk)
    }

    /// Whether the destination holds tables (to create, and to read back after DDL).
    pub(super) fn has_tables(&self) -> bool {
        self.has_tables
    }

    pub(super) fn shutdown(&mut self) {
        self.target.shutdown();
    }
}
