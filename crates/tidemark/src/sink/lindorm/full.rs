//! The Lindorm destination's full-copy chunk writer: a chunk's rows as UPSERT requests
//! built on the pipeline's reader thread, sent by its writer. There is no transaction
//! to commit: a chunk is done once every request was acknowledged, and a chunk copied
//! again upserts the same rows again (same result).

use super::write::Upserts;
use super::Lindorm;
use crate::connect::{describe, transient, Side};
use crate::sink::{Batch, ChunkJob, ChunkRows, ChunkWriter, WriteError};
use crate::transform::mapping::Plan;
use anyhow::{anyhow, Result};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One UPSERT request and its rows.
struct Request {
    sql: String,
}

pub(super) struct Copy<'a> {
    pub(super) kind: &'a Lindorm,
    pub(super) plan: &'a Plan,
    /// Rows skipped for their size (`filter_large_messages`).
    pub(super) skipped: &'a AtomicU64,
}

impl crate::sink::FullCopy for Copy<'_> {
    fn encode(
        &self,
        job: &ChunkJob,
        rows: &mut ChunkRows<'_>,
        out: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        let t = &self.plan.tables[job.table];
        let throttle = rows.throttle();
        let config = &self.kind.config;
        let mut upserts = Upserts::new(t, config.batch_rows, config.batch_bytes)?
            .filtering(config.filter_large_messages);
        let mut bytes = 0u64;
        let mut send = |(sql, n): (String, usize), bytes: &mut u64| -> Result<()> {
            throttle.rows(n as u64, std::mem::take(bytes));
            out(Batch::new(Request { sql }))
        };
        // The reader's rows are the copied columns already.
        rows.read(|row, size| {
            if let Some(full) = upserts.push(&row)? {
                send(full, &mut bytes)?;
            }
            bytes += size;
            Ok(())
        })?;
        if let Some(last) = upserts.take() {
            send(last, &mut bytes)?;
        }
        self.skipped.fetch_add(upserts.skipped, Ordering::Relaxed);
        Ok(())
    }

    fn writer(&self) -> Result<Box<dyn ChunkWriter + '_>> {
        Ok(Box::new(Writer {
            kind: self.kind,
            dst: self.kind.connect()?,
        }))
    }
}

struct Writer<'a> {
    kind: &'a Lindorm,
    dst: mysql::Conn,
}

impl ChunkWriter for Writer<'_> {
    fn begin(&mut self, _: &ChunkJob) -> Result<(), WriteError> {
        Ok(())
    }

    fn write(&mut self, batch: Batch) -> Result<(), WriteError> {
        let r: Request = batch.take()?;
        self.dst.query_drop(&r.sql).map_err(|e| {
            let head: String = r.sql.chars().take(160).collect();
            WriteError {
                transient: transient(&e),
                shown: describe(&e, &self.kind.endpoint, Side::Destination),
                error: anyhow!("Lindorm rejected an UPSERT request: {e}")
                    .context(format!("while running: {head}…")),
            }
        })
    }

    /// Every request was acknowledged as it was sent (the engine has no transactions).
    fn commit(&mut self) -> Result<(), WriteError> {
        Ok(())
    }

    /// Rows written stay; the chunk copied again upserts them again.
    fn rollback(&mut self) {}

    fn reconnect(&mut self, deadline: Instant) -> Result<()> {
        self.dst = self.kind.reconnect(deadline)?;
        Ok(())
    }
}
