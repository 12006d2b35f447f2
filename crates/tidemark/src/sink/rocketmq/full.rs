//! The RocketMQ destination's full-copy chunk writer: every row of a chunk becomes an
//! INSERT message marked as snapshot data, gathered into outboxes on the reader thread
//! and sent, in order, by the writer thread. A chunk is done once the broker
//! acknowledged every one of its messages; a chunk interrupted before that is sent again
//! whole, so its messages may arrive twice (at least once; consumers deduplicate by
//! table and key, see `docs/rocketmq.md`).

use super::client::{now_ms, Outbox};
use super::format::RowEvent;
use super::Sink;
use crate::sink::{Batch, ChunkJob, ChunkRows, ChunkWriter, WriteError};
use crate::transform::mapping::Plan;
use anyhow::Result;
use std::time::Instant;

/// An outbox is handed to the writer when it holds this many bytes (and at every
/// chunk's end).
const SEND_BYTES: usize = 4 << 20;

pub(super) struct Copy<'a> {
    pub(super) sink: &'a Sink,
    pub(super) plan: &'a Plan,
}

impl crate::sink::FullCopy for Copy<'_> {
    fn encode(
        &self,
        job: &ChunkJob,
        rows: &mut ChunkRows<'_>,
        out: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        // Read with the columns messages carry (generated ones too).
        let t = super::format::sent_plan(&self.plan.tables[job.table]);
        let t = t.as_ref();
        let throttle = rows.throttle();
        let mut outbox = Outbox::default();
        let read_ms = now_ms();
        rows.read_as(t, |row, size| {
            throttle.rows(1, size);
            self.sink
                .row(&mut outbox, &RowEvent::snapshot(t, &row, read_ms))?;
            if outbox.bytes >= SEND_BYTES {
                out(Batch::new(std::mem::take(&mut outbox)))?;
            }
            Ok(())
        })?;
        if !outbox.is_empty() {
            out(Batch::new(outbox))?;
        }
        Ok(())
    }

    fn writer(&self) -> Result<Box<dyn ChunkWriter + '_>> {
        Ok(Box::new(Writer { sink: self.sink }))
    }
}

/// Sends a chunk's outboxes; the producer retries the brokers by itself, so a send that
/// still fails fails the task.
struct Writer<'a> {
    sink: &'a Sink,
}

impl ChunkWriter for Writer<'_> {
    fn begin(&mut self, _: &ChunkJob) -> Result<(), WriteError> {
        Ok(())
    }

    fn write(&mut self, batch: Batch) -> Result<(), WriteError> {
        let mut outbox: Outbox = batch.take()?;
        self.sink.send(&mut outbox)?;
        Ok(())
    }

    /// Every message of the chunk was acknowledged as it was sent.
    fn commit(&mut self) -> Result<(), WriteError> {
        Ok(())
    }

    /// Messages sent cannot be taken back: the chunk is sent again whole.
    fn rollback(&mut self) {}

    fn reconnect(&mut self, _: Instant) -> Result<()> {
        Ok(())
    }
}
