//! The ADB destination's full copy: a chunk's rows, converted under the type mapping
//! ([`super::types`]), as batched `REPLACE INTO` statements (ADB's recommended write
//! path: at least 1 000 rows and at most 16 MB per statement). The statements are
//! written by the MySQL destination's chunk writer (`sink/mysql/full.rs`), which runs
//! them in one transaction per chunk and fails a chunk whose values the server changed.

use super::types::{convert, Convert};
use crate::config::Task;
use crate::connect::{connect, ServerInfo, Side};
use crate::endpoint::Endpoint;
use crate::sink::mysql::full::{Copy as MysqlCopy, Unit};
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::sink::{Batch, ChunkJob, ChunkRows, ChunkWriter, FullCopy};
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{bail, Result};
use tidemark_core::{Row, Value};

/// ADB's limit on one statement.
pub const MAX_STATEMENT: usize = 16 << 20;
/// Rows per statement at least (ADB's advice for batched writes).
pub const MIN_ROWS: usize = 1_000;

/// What one value may take in a statement: hex doubles bytes, plus a separator.
fn literal_size(v: &Value) -> usize {
    v.wire_size() * 2 + 8
}

/// A planned table as ADB holds it.
pub(super) struct Table {
    /// With the merged tables' `__dts_data_source` column.
    pub(super) plan: TablePlan,
    /// Per copied column (of the source).
    pub(super) conversions: Vec<Convert>,
    /// The value appended to each row of a merged table.
    pub(super) data_source: Option<Value>,
}

pub(super) struct Copy<'a> {
    inner: MysqlCopy<'a>,
    /// Per table of the plan.
    tables: Vec<Table>,
    rows: usize,
    bytes: usize,
}

impl<'a> Copy<'a> {
    pub(super) fn new(
        endpoint: &'a Endpoint,
        task: &'a Task,
        plan: &'a Plan,
        tables: Vec<Table>,
    ) -> Result<Copy<'a>> {
        let mut dst = connect(endpoint, Side::Destination)?;
        let packet = ServerInfo::read(&mut dst)?.max_allowed_packet as usize;
        Ok(Copy {
            inner: MysqlCopy::new(endpoint, task, plan)?,
            tables,
            rows: task.full.batch_rows.max(MIN_ROWS),
            // Room for the statement's head and the last row's separators.
            bytes: task
                .full
                .batch_bytes
                .min(MAX_STATEMENT - (64 << 10))
                .min((packet / 2).max(64 << 10)),
        })
    }
}

impl FullCopy for Copy<'_> {
    fn encode(
        &self,
        job: &ChunkJob,
        rows: &mut ChunkRows<'_>,
        out: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        let table = &self.tables[job.table];
        let (t, conv) = (&table.plan, &table.conversions);
        let throttle = rows.throttle();
        // REPLACE always: ADB's INSERT keeps a row already there, and a chunk copied
        // again must overwrite what an earlier attempt wrote.
        let mut b = InsertBuilder::new(t, InsertMode::Replace, self.rows, self.bytes);
        let (mut size, mut wire) = (0usize, 0u64);
        let mut emit = |b: &mut InsertBuilder, wire: &mut u64| -> Result<()> {
            throttle.rows(b.rows() as u64, *wire);
            *wire = 0;
            let built = b.take();
            out(Batch::new(Unit::Statement {
                sql: built.body,
                rows: built.rows,
                error_values: built.error_values,
            }))
        };
        rows.read(|row, row_wire| {
            let mut row: Row = row
                .into_iter()
                .zip(conv)
                .map(|(v, c)| convert(c, v))
                .collect();
            row.extend(table.data_source.clone());
            let row_size: usize = row.iter().map(literal_size).sum::<usize>() + 4;
            if row_size > self.bytes {
                bail!(
                    "a row of {} is about {} MB as a statement, more than ADB's 16 MB per statement; it cannot be written to ADB",
                    t.def().name,
                    row_size >> 20
                );
            }
            // Take the statement before a row would carry it past the limit.
            if !b.is_empty() && size + row_size > self.bytes {
                emit(&mut b, &mut wire)?;
                size = 0;
            }
            size += row_size;
            wire += row_wire;
            if b.push(&row) {
                emit(&mut b, &mut wire)?;
                size = 0;
            }
            Ok(())
        })?;
        if !b.is_empty() {
            emit(&mut b, &mut wire)?;
        }
        Ok(())
    }

    fn writer(&self) -> Result<Box<dyn ChunkWriter + '_>> {
        self.inner.writer()
    }
}
