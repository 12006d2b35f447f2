//! The RocketMQ destination's change applier: every row change of a batch is a message,
//! in source order per ordering key; a flush returns once the brokers acknowledged every
//! message, so the task's checkpoint never passes an unacknowledged one. DDL statements
//! are messages too, sent alone between the rows before and after them.

use super::client::{now_ms, Outbox};
use super::format::{DdlEvent, Op, Origin, RowEvent};
use super::Sink;
use crate::sink::{Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::transform::mapping::TablePlan;
use anyhow::Result;
use std::sync::Arc;
use tidemark_core::{Change, Position, Row, TableName, Value};

pub(super) struct Applier<'a> {
    pub(super) sink: &'a Sink,
    pub(super) outbox: Outbox,
    pub(super) rows: usize,
    pub(super) bytes: u64,
    /// The transaction whose changes are being added: its end, commit time (ms), the
    /// next change's index in it, and (for DDL) the source table it names.
    pub(super) txn_end: Option<Position>,
    /// The transaction's own GTID (message formats that name it: Debezium, DTS Avro).
    pub(super) txn_gtid: Option<String>,
    pub(super) txn_ms: u64,
    pub(super) index: u32,
    pub(super) ddl_source: (String, Option<String>),
    /// Reads table definitions after DDL (a queue has none to read back).
    pub(super) source: mysql::Conn,
}

impl crate::sink::ChangeApplier for Applier<'_> {
    fn begin_txn(&mut self, txn: &Txn) {
        self.txn_end = Some(txn.end.clone());
        self.txn_gtid = txn.gtid.clone();
        self.txn_ms = u64::from(txn.timestamp) * 1000;
        self.index = 0;
        if let Some(ddl) = &txn.ddl {
            let st = crate::transform::ddl::Statement::parse(&ddl.statement);
            self.ddl_source = match st.tables.first() {
                Some(n) => (
                    n.database.clone().unwrap_or_else(|| ddl.database.clone()),
                    Some(n.name.clone()),
                ),
                None => (
                    st.database.clone().unwrap_or_else(|| ddl.database.clone()),
                    None,
                ),
            };
        }
    }

    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        // Binlog images hold every column; messages carry the copied ones.
        let project = |r: &Row| -> Vec<Value> {
            plan.copied
                .iter()
                .filter_map(|&i| r.get(i).cloned())
                .collect()
        };
        for change in changes {
            let (op, before, after) = match &change {
                Change::Insert { row, .. } => (Op::Insert, None, Some(project(row))),
                Change::Update { before, after, .. } => {
                    (Op::Update, Some(project(before)), Some(project(after)))
                }
                Change::Delete { before, .. } => (Op::Delete, Some(project(before)), None),
                Change::Ddl { .. } | Change::Commit { .. } => continue,
            };
            self.bytes += before
                .iter()
                .chain(after.iter())
                .flatten()
                .map(|v| v.wire_size() as u64)
                .sum::<u64>();
            let ev = RowEvent {
                table: plan,
                op,
                before: before.as_deref(),
                after: after.as_deref(),
                snapshot: false,
                origin: Origin::binlog(self.txn_end.as_ref(), self.index, self.txn_ms)
                    .with_gtid(self.txn_gtid.as_deref()),
            };
            self.rows += 1;
            self.index += self.sink.row(&mut self.outbox, &ev)?;
        }
        Ok(())
    }

    fn pending_rows(&self) -> usize {
        self.rows
    }

    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>> {
        let (rows, bytes) = (self.rows as u64, self.bytes);
        // Every message before the checkpoint is acknowledged by the broker.
        self.sink.send(&mut self.outbox)?;
        self.sink.save_counters(f.store)?;
        (self.rows, self.bytes) = (0, 0);
        Ok(Some((rows, bytes)))
    }

    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        // Sent alone, after every change before it was acknowledged.
        self.sink.send(&mut self.outbox)?;
        let first = crate::transform::ddl::Statement::parse(d.sql)
            .tables
            .first()
            .map(|n| n.name.clone());
        let database = d.use_db.unwrap_or(&self.ddl_source.0).to_string();
        let ev = DdlEvent {
            database: &database,
            table: first.as_deref(),
            statement: d.sql,
            origin: Origin::binlog(self.txn_end.as_ref(), self.index, self.txn_ms)
                .with_gtid(self.txn_gtid.as_deref()),
        };
        self.index += 1;
        let (db, table) = (self.ddl_source.0.clone(), self.ddl_source.1.clone());
        self.sink
            .ddl(&mut self.outbox, &ev, &db, table.as_deref())?;
        self.sink.send(&mut self.outbox)?;
        Ok(DdlOutcome::Applied)
    }

    /// From the source: a queue holds no tables.
    fn read_table(
        &mut self,
        source: &TableName,
        _target: &TableName,
    ) -> Result<Option<catalog::TableInfo>> {
        catalog::read_table(&mut self.source, source)
    }

    /// Snapshot messages.
    fn copy_rows(
        &mut self,
        src: &mut mysql::Conn,
        plan: &TablePlan,
        chunk: &crate::source::snapshot::Chunk,
    ) -> Result<u64> {
        let mut rows = 0u64;
        let read_ms = now_ms();
        let (sink, outbox) = (self.sink, &mut self.outbox);
        crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
            rows += 1;
            sink.row(outbox, &RowEvent::snapshot(plan, &row, read_ms))
                .map(|_| ())
        })?;
        self.sink.send(&mut self.outbox)?;
        Ok(rows)
    }

    fn shutdown(&mut self) {}
}
