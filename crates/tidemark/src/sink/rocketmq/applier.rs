//! The RocketMQ destination's change applier: every row change of a batch is a message,
//! in source order per ordering key; a flush returns once the brokers acknowledged every
//! message, so the task's checkpoint never passes an unacknowledged one. DDL statements
//! are messages too, sent alone between the rows before and after them.

use super::client::{now_ms, Outbox, QueueRef};
use super::format::{self, dts_avro::Control, DdlEvent, Op, Origin, RowEvent};
use super::{MessageFormat, Sink};
use crate::sink::{Ddl, DdlOutcome, Flush};
use crate::source::binlog::stream::EventInfo;
use crate::source::binlog::stream::Txn;
use crate::source::catalog;
use crate::transform::mapping::TablePlan;
use anyhow::Result;
use std::collections::BTreeMap;
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
    /// The transaction's session (MySQL), where it starts, and its DDL's QUERY event.
    pub(super) txn_thread: Option<u32>,
    pub(super) txn_begin: u64,
    pub(super) ddl_event: Option<EventInfo>,
    /// The rows event being added and the next row's index in it.
    pub(super) event: Option<EventInfo>,
    pub(super) row: u32,
    /// The open transaction's counts, for transaction records.
    pub(super) open: Open,
    /// Ending the last transaction failed (its records could not be routed).
    pub(super) failed: Option<anyhow::Error>,
}

/// What the open transaction has sent so far (`transaction_records`).
#[derive(Default)]
pub(super) struct Open {
    /// Changes per destination table (`db.table`), in the order first seen.
    pub(super) tables: Vec<(String, u64)>,
    pub(super) total: u64,
    /// Each queue's length in the outbox when the transaction began (DTS BEGIN records
    /// go in front of its first message on each queue).
    pub(super) start: BTreeMap<(String, QueueRef), usize>,
}

impl Applier<'_> {
    /// Ends the open transaction: its BEGIN/END (Debezium) or BEGIN/COMMIT (DTS)
    /// records, when it sent any change.
    fn end_txn(&mut self) -> Result<()> {
        let open = std::mem::take(&mut self.open);
        if open.total == 0 || !self.sink.transaction_records() {
            return Ok(());
        }
        let (end, gtid) = (self.txn_end.clone(), self.txn_gtid.clone());
        let origin = Origin {
            thread: self.txn_thread,
            begin: self.txn_begin,
            ..Origin::binlog(end.as_ref(), self.index, self.txn_ms).with_gtid(gtid.as_deref())
        };
        match self.sink.config.format {
            MessageFormat::DebeziumJson => {
                self.sink
                    .transaction_record(&mut self.outbox, &origin, None)?;
                self.sink
                    .transaction_record(&mut self.outbox, &origin, Some(&open.tables))?;
            }
            MessageFormat::DtsAvro => {
                let begin = self.sink.control_message(Control::Begin, &origin);
                let commit = self.sink.control_message(Control::Commit, &origin);
                let outbox = &mut self.outbox;
                for (key, queue) in outbox.queues.iter_mut() {
                    let from = open.start.get(key).copied().unwrap_or(0);
                    if queue.len() > from {
                        queue.insert(from, begin.clone());
                        queue.push_back(commit.clone());
                        outbox.messages += 2;
                        outbox.bytes += begin.body.len() + commit.body.len();
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl crate::sink::ChangeApplier for Applier<'_> {
    fn begin_txn(&mut self, txn: &Txn) {
        if let Err(e) = self.end_txn() {
            // Reported by the next push or flush, so the batch (and its checkpoint)
            // fails rather than go on without the records.
            self.failed = Some(e);
        }
        if self.sink.transaction_records() {
            self.open.start = self
                .outbox
                .queues
                .iter()
                .map(|(k, q)| (k.clone(), q.len()))
                .collect();
        }
        self.txn_thread = txn.thread;
        self.txn_begin = txn.begin;
        self.ddl_event = txn.ddl.as_ref().map(|d| d.event.clone());
        self.event = None;
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

    fn rows_event(&mut self, event: &EventInfo) {
        self.event = Some(event.clone());
        self.row = 0;
    }

    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // Binlog images hold every column; messages carry the selected ones, generated
        // columns too.
        let sent = format::sent(plan);
        let project =
            |r: &Row| -> Vec<Value> { sent.iter().filter_map(|&i| r.get(i)).cloned().collect() };
        let records = self.sink.transaction_records();
        let table = format!("{}.{}", plan.target.database, plan.target.table);
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
            let order = records.then(|| {
                let open = &mut self.open;
                open.total += 1;
                let n = match open.tables.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        open.tables.push((table.clone(), 1));
                        1
                    }
                };
                (open.total, n)
            });
            let ev = RowEvent {
                table: plan,
                op,
                before: before.as_deref(),
                after: after.as_deref(),
                snapshot: false,
                origin: Origin {
                    order,
                    thread: self.txn_thread,
                    begin: self.txn_begin,
                    ..Origin::binlog(self.txn_end.as_ref(), self.index, self.txn_ms)
                        .with_gtid(self.txn_gtid.as_deref())
                        .in_event(self.event.as_ref(), self.row)
                },
            };
            self.rows += 1;
            self.row += 1;
            self.index += self.sink.row(&mut self.outbox, &ev)?;
        }
        Ok(())
    }

    fn pending_rows(&self) -> usize {
        self.rows
    }

    /// Nothing in flight: `flush` returns once the broker has acknowledged every message of its batch.
    fn settle(&mut self) -> Result<()> {
        Ok(())
    }

    /// Nothing in flight, as for `settle`.
    fn busy(&self) -> bool {
        false
    }

    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>> {
        let (rows, bytes) = (self.rows as u64, self.bytes);
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // Batches end at transaction boundaries.
        self.end_txn()?;
        // Every message before the checkpoint is acknowledged by the broker.
        self.sink.send(&mut self.outbox)?;
        self.sink.save_counters(f.store)?;
        (self.rows, self.bytes) = (0, 0);
        Ok(Some((rows, bytes)))
    }

    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome> {
        // Sent alone, after every change before it was acknowledged.
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.end_txn()?;
        self.sink.send(&mut self.outbox)?;
        let first = crate::transform::ddl::Statement::parse(d.sql)
            .tables
            .first()
            .map(|n| n.name.clone());
        let database = d.use_db.unwrap_or(&self.ddl_source.0).to_string();
        // Debezium's `tableChanges`: the table as the source has it now.
        let definition = match (&self.sink.config.format, &self.ddl_source.1) {
            (MessageFormat::DebeziumJson, Some(t)) => {
                let name = TableName::new(&self.ddl_source.0, t);
                catalog::read_table(&mut self.source, &name)?.map(|i| i.def)
            }
            _ => None,
        };
        let ev = DdlEvent {
            database: &database,
            table: first.as_deref(),
            statement: d.sql,
            definition: definition.as_ref(),
            // No `thread`: Debezium sets it from a BEGIN only, and resets it at COMMIT.
            origin: Origin {
                begin: self.txn_begin,
                ..Origin::binlog(self.txn_end.as_ref(), self.index, self.txn_ms)
                    .with_gtid(self.txn_gtid.as_deref())
                    .in_event(self.ddl_event.as_ref(), 0)
            },
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
        let plan = format::sent_plan(plan);
        let plan = plan.as_ref();
        crate::source::snapshot::read_chunk(src, plan, chunk, |row| {
            rows += 1;
            sink.row(outbox, &RowEvent::snapshot(plan, &row, read_ms))
                .map(|_| ())
        })?;
        self.sink.send(&mut self.outbox)?;
        Ok(rows)
    }

    /// DTS Avro HEARTBEAT records (`dts_control_records`) on every queue of every data
    /// topic, so a consumer of any queue sees the source's progress.
    fn idle(&mut self, position: &Position) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.end_txn()?;
        if self.sink.config.format != MessageFormat::DtsAvro || !self.sink.config.dts_control {
            return Ok(());
        }
        let origin = Origin::binlog(Some(position), 0, now_ms());
        let m = self.sink.control_message(Control::Heartbeat, &origin);
        for topic in self.sink.data_topics() {
            let r = self.sink.client.route(&topic, false)?;
            for q in &r.queues {
                self.outbox.push(&topic, q, m.clone());
            }
        }
        self.sink.send(&mut self.outbox)
    }

    fn shutdown(&mut self) {}
}
