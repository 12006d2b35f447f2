//! The RocketMQ destination: row changes and DDL as messages on RocketMQ topics.
//!
//! ```text
//! rows / changes ──▶ Sink::row / Sink::ddl ──▶ Outbox (per topic queue, in order)
//!                     format/ (body)             │
//!                     routing (topic, queue)     ▼
//!                                        client::send_all ──▶ brokers (acknowledged)
//! ```
//!
//! * [`remoting`]: the wire protocol (frames, request signing, pipelined requests).
//! * [`client`]: routes from the name servers, ordered batch sending, pulls, topics.
//! * [`format`]: Canal JSON, Debezium JSON and Avro bodies.
//!
//! Ordering: every message of one ordering key (table, row key or `partition_columns`
//! values) goes to one queue, and a queue has one batch in flight at a time, so the
//! broker stores them in source order, also across retries. Delivery is at least once:
//! the task's checkpoint moves only after the broker acknowledged every message before
//! it (see `docs/rocketmq.md` for the duplicate window and deduplication).

mod applier;
pub mod client;
pub mod config;
pub mod format;
mod full;
mod precheck;
pub mod remoting;

use crate::task::throttle::Throttle;
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, bail, Result};
use client::{Client, Message, Outbox, QueueRef};
use config::fill;
pub use config::{Config, ConfigFile, DdlPlacement, MessageFormat, MessageOrdering, Timezone};
use format::{DdlEvent, Encoder, Op, RowEvent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tidemark_core::Value;

/// The broker's default limit on a message body (`maxMessageSize`, 4 MiB).
pub const MAX_BODY: usize = 4 << 20;

/// The RocketMQ destination kind (`type = "rocketmq"`).
pub struct Rocketmq {
    pub config: std::sync::Arc<Config>,
}

impl crate::sink::Kind for Rocketmq {
    fn name(&self) -> &'static str {
        "rocketmq"
    }

    fn describe(&self) -> String {
        format!(
            "RocketMQ name server(s) {}",
            self.config.name_servers.join(",")
        )
    }

    fn capabilities(&self) -> crate::sink::Capabilities {
        crate::sink::Capabilities {
            tables: false,
            exact_keyless_handoff: false,
            ddl: crate::sink::DdlKinds::Forwarded,
            applied_verb: "sent (and acknowledged)",
            queued_batches: 0,
        }
    }

    fn verification_server(&self) -> Result<&crate::endpoint::Endpoint> {
        bail!("`tidemark verify` compares the source with a MySQL destination; this task's destination is RocketMQ (compare what your consumer builds instead, e.g. with a second task into MySQL)")
    }

    fn precheck<'a>(
        &'a self,
        task: &'a crate::config::Task,
    ) -> Box<dyn crate::sink::Precheck + 'a> {
        Box::new(precheck::Check { kind: self, task })
    }

    fn schema(&self) -> Option<&dyn crate::sink::SchemaStep> {
        None
    }

    fn open<'a>(
        &'a self,
        task: &'a crate::config::Task,
        store: &'a crate::state::Store,
    ) -> Result<Box<dyn crate::sink::Session + 'a>> {
        // One producer for the whole run.
        let mut sink = Sink::new(
            self.config.clone(),
            &task.name,
            task.advanced.connection_window(),
        );
        sink.client.set_timeout(task.advanced.timeouts().network);
        sink.load_counters(store)?;
        sink.resolve_timezone(&task.source)?;
        sink.resolve_flavor(&task.source)?;
        Ok(Box::new(Session { sink, task }))
    }

    fn forget_table(&self, _target: &str) -> Result<&'static str> {
        Ok("its rows will be sent again")
    }
}

/// A RocketMQ destination opened for a run: its producer.
struct Session<'a> {
    sink: Sink,
    task: &'a crate::config::Task,
}

impl crate::sink::Session for Session<'_> {
    fn full_copy<'a>(
        &'a self,
        plan: &'a crate::transform::mapping::Plan,
    ) -> Result<Box<dyn crate::sink::FullCopy + 'a>> {
        Ok(Box::new(full::Copy {
            sink: &self.sink,
            plan,
        }))
    }

    fn applier<'a>(&'a self) -> Result<Box<dyn crate::sink::ChangeApplier + 'a>> {
        use crate::connect::{connect, Side};
        Ok(Box::new(applier::Applier {
            sink: &self.sink,
            outbox: Outbox::default(),
            rows: 0,
            bytes: 0,
            txn_end: None,
            txn_gtid: None,
            txn_ms: 0,
            index: 0,
            ddl_source: (String::new(), None),
            source: connect(&self.task.source, Side::Source)?,
            txn_thread: None,
            txn_begin: 0,
            ddl_event: None,
            event: None,
            row: 0,
            open: Default::default(),
            failed: None,
        }))
    }

    fn full_copy_ended(&self, store: &crate::state::Store) -> Result<()> {
        self.sink.save_counters(store)
    }
}

/// State-store key of the counters (`tidemark status`).
pub const COUNTERS: &str = "rocketmq.counters";

/// Counters for `status` and the benchmark; they add up over restarts.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    /// Rows over 4 MiB skipped under `filter_large_messages`.
    pub skipped_large: AtomicU64,
}

/// Encodes, routes and sends messages for one task.
pub struct Sink {
    pub client: Client,
    pub config: std::sync::Arc<Config>,
    encoder: Encoder,
    throttle: Throttle,
    retry_window: Duration,
    pub counters: Counters,
}

impl Sink {
    pub fn new(config: std::sync::Arc<Config>, task_name: &str, retry_window: Duration) -> Sink {
        let client = Client::new(config.name_servers.clone(), config.credentials.clone());
        let encoder = Encoder {
            format: config.format,
            canal: format::CanalOptions {
                full_before_image: config.full_before_image,
                enum_set: config.enum_set,
                utc_offset: match config.timezone {
                    Timezone::Offset(s) => s,
                    Timezone::Source => 0,
                },
            },
            debezium: config.debezium,
            task: task_name.to_string(),
        };
        Sink {
            client,
            encoder,
            throttle: Throttle::new(config.max_tps, 0.0, 0),
            retry_window,
            counters: Counters::default(),
            config,
        }
    }

    /// With `timezone = "source"`: reads the source server's offset from UTC now, so
    /// TIMESTAMP values render as the source shows them (a fixed offset for the run: a
    /// daylight-saving change takes effect at the next start).
    pub fn resolve_timezone(&mut self, source: &crate::endpoint::Endpoint) -> Result<()> {
        use mysql::prelude::Queryable;
        if self.config.timezone != Timezone::Source
            || self.config.format != MessageFormat::CanalJson
        {
            return Ok(());
        }
        let mut c = crate::connect::connect(source, crate::connect::Side::Source)?;
        // Our sessions run in UTC; the server's own zone is the global one.
        let offset: Option<(String, Option<i64>)> = c
            .query_first(
                "SELECT @@global.time_zone, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', @@global.time_zone))",
            )
            .map_err(|e| crate::connect::explain(e, source, crate::connect::Side::Source))?;
        match offset {
            Some((_, Some(s))) => {
                self.encoder.canal.utc_offset = i32::try_from(s).unwrap_or(0);
                Ok(())
            }
            Some((zone, None)) => bail!("the source's time zone {zone:?} has no offset the server can compute (its time zone tables are not loaded): set `destination.timezone` to an offset such as \"+08:00\""),
            None => bail!("the source returned no time zone: set `destination.timezone` to an offset such as \"+08:00\""),
        }
    }

    /// With Debezium JSON: whether the source is MariaDB (`source.connector`).
    pub fn resolve_flavor(&mut self, source: &crate::endpoint::Endpoint) -> Result<()> {
        use mysql::prelude::Queryable;
        if self.config.format != MessageFormat::DebeziumJson {
            return Ok(());
        }
        let mut c = crate::connect::connect(source, crate::connect::Side::Source)?;
        let version: Option<String> = c
            .query_first("SELECT VERSION()")
            .map_err(|e| crate::connect::explain(e, source, crate::connect::Side::Source))?;
        self.encoder.debezium.mariadb = version.is_some_and(|v| v.contains("MariaDB"));
        Ok(())
    }

    /// The Canal TIMESTAMP offset in use (seconds east of UTC).
    pub fn utc_offset(&self) -> i32 {
        self.encoder.canal.utc_offset
    }

    /// Checks what the task needs before anything is sent: the name servers answer,
    /// every topic exists with writable queues, the brokers accept the credentials, and
    /// partition columns exist. Returns the problems found.
    pub fn check(&self, tables: &[TablePlan]) -> Vec<String> {
        let mut problems = Vec::new();
        for topic in self.config.topics() {
            if let Err(e) = self.client.route(&topic, true) {
                if self.config.ddl_topic.as_ref() == Some(&topic) {
                    problems.push(format!("{e:#} (it is the DDL topic: DDL goes there by default, `destination.ddl_topic`, default \"<topic>_ddl\"; or send DDL to the tables' topics with `destination.ddl_placement = \"first-queue\"` or \"every-queue\", see docs/rocketmq.md)"));
                } else {
                    problems.push(format!("{e:#}"));
                }
                continue;
            }
            if let Err(e) = self.client.hello(&topic, &self.config.producer_group) {
                problems.push(format!("{e:#}"));
            }
        }
        let partitioned = self
            .config
            .partition_columns
            .iter()
            .flat_map(|(db, tables)| tables.iter().map(move |(t, cols)| (db, t, cols)));
        for (db, table, cols) in partitioned {
            let Some(t) = tables
                .iter()
                .find(|t| t.def().name.database == *db && t.def().name.table == *table)
            else {
                problems.push(format!("`destination.topics`: partition columns are given for {db}.{table}, which the task does not migrate: fix the entry or select the table"));
                continue;
            };
            for c in cols {
                if !t.copied_columns().any(|d| d.name.eq_ignore_ascii_case(c)) {
                    problems.push(format!(
                        "`destination.topics`: partition column {c:?} does not exist in {db}.{table} (or is not migrated): its columns are {}",
                        t.copied_columns().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        problems
    }

    /// Positions (in the copied row) of the values that choose a table's queue; `None`
    /// for the whole table.
    fn ordering_columns(&self, t: &TablePlan) -> Option<Vec<usize>> {
        let sent = format::sent(t);
        let key_positions = || -> Option<Vec<usize>> {
            let key = t.def().key.as_ref()?;
            key.iter()
                .map(|k| sent.iter().position(|c| c == k))
                .collect()
        };
        match self.config.ordering {
            MessageOrdering::Table => None,
            MessageOrdering::PrimaryKey => key_positions(),
            MessageOrdering::Columns => {
                let n = &t.def().name;
                match self
                    .config
                    .partition_columns
                    .get(&n.database)
                    .and_then(|t| t.get(&n.table))
                {
                    Some(cols) => cols
                        .iter()
                        .map(|c| {
                            sent.iter()
                                .position(|&i| t.def().columns[i].name.eq_ignore_ascii_case(c))
                        })
                        .collect(),
                    None => key_positions(),
                }
            }
        }
    }

    fn queue_for(
        &self,
        topic: &str,
        t: &TablePlan,
        row: &[Value],
        cols: &Option<Vec<usize>>,
    ) -> Result<QueueRef> {
        let route = self.client.route(topic, false)?;
        let n = &t.def().name;
        let values = cols.iter().flatten().filter_map(|&i| row.get(i));
        let h = format::stable_hash(&n.database, &n.table, values);
        Ok(route.queues[(h % route.queues.len() as u64) as usize].clone())
    }

    /// Adds one row change to the outbox. A change of the ordering values (e.g. of the
    /// key) is sent as a delete of the old row and an insert of the new one, each on its
    /// own queue; the insert takes the next index (`tidemark_row`), so every message of
    /// a transaction has its own. Returns how many indexes the change used.
    pub fn row(&self, out: &mut Outbox, ev: &RowEvent<'_>) -> Result<u32> {
        let t = ev.table;
        let cols = self.ordering_columns(t);
        if let (Op::Update, Some(b), Some(a), Some(c)) = (ev.op, ev.before, ev.after, &cols) {
            if c.iter().any(|&i| b.get(i) != a.get(i)) {
                let del = RowEvent {
                    op: Op::Delete,
                    after: None,
                    ..*ev
                };
                let mut ins = RowEvent {
                    op: Op::Insert,
                    before: None,
                    ..*ev
                };
                ins.origin.index += 1;
                self.send_row(out, &del, &cols)?;
                self.send_row(out, &ins, &cols)?;
                return Ok(2);
            }
        }
        self.send_row(out, ev, &cols)?;
        Ok(1)
    }

    fn send_row(
        &self,
        out: &mut Outbox,
        ev: &RowEvent<'_>,
        cols: &Option<Vec<usize>>,
    ) -> Result<()> {
        let t = ev.table;
        let image = match ev.op {
            Op::Delete => ev.before,
            _ => ev.after,
        }
        .ok_or_else(|| {
            anyhow!(
                "internal: a row change of {} without its image",
                t.def().name
            )
        })?;
        let body = self.encoder.row(ev);
        let key_text = self.key_text(t, image);
        if body.len() > MAX_BODY {
            if self.config.filter_large_messages {
                self.counters.skipped_large.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "rocketmq: skipped a {} byte message of {} (key {key_text}): over the 4 MiB limit (`filter_large_messages`)",
                    body.len(),
                    t.def().name
                );
                return Ok(());
            }
            bail!(
                "a row of {} (key {key_text}) makes a {} byte message, over RocketMQ's 4 MiB limit: set `destination.filter_large_messages = true` to skip such rows (they are counted and logged), or leave the large column out with `columns`",
                t.def().name,
                body.len()
            );
        }
        let n = &t.def().name;
        let topic = self.config.topic_of(&n.database, &n.table);
        let q = self.queue_for(topic, t, image, cols)?;
        let kind = match ev.op {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        };
        let (db, table) = (&t.target.database, &t.target.table);
        let mut properties = vec![("tidemark_row", ev.origin.index.to_string())];
        match ev.origin.position {
            Some(p) => properties.push(("tidemark_position", format!("{}:{}", p.file, p.offset))),
            None => properties.push(("tidemark_snapshot", "true".into())),
        }
        let keys = fill(&self.config.keys, db, table, &key_text, kind);
        let tombstone = self.config.tombstones && ev.op == Op::Delete && !ev.snapshot;
        if tombstone {
            // Debezium's `tombstones.on.delete`: the delete, then a record with its key
            // and no value, on the same queue.
            let mut marked = properties.clone();
            marked.push(("tidemark_tombstone", "true".into()));
            let delete = Message {
                body,
                keys: keys.clone(),
                tags: fill(&self.config.tags, db, table, "", kind),
                properties,
            };
            out.push(topic, &q, delete);
            out.push(
                topic,
                &q,
                Message {
                    body: Vec::new(),
                    keys,
                    tags: fill(&self.config.tags, db, table, "", "TOMBSTONE"),
                    properties: marked,
                },
            );
            return Ok(());
        }
        out.push(
            topic,
            &q,
            Message {
                body,
                keys,
                tags: fill(&self.config.tags, db, table, "", kind),
                properties,
            },
        );
        Ok(())
    }

    /// The topics rows go to (the default and every mapped one).
    pub fn data_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = std::iter::once(self.config.topic.clone())
            .chain(self.config.database_topics.values().cloned())
            .chain(
                self.config
                    .table_topics
                    .values()
                    .flat_map(|t| t.values().cloned()),
            )
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// Debezium's BEGIN (`end = None`) or END record of a transaction, on the first queue
    /// of the transaction topic (`provide_transaction_metadata`), keyed by its id.
    pub fn transaction_record(
        &self,
        out: &mut Outbox,
        origin: &format::Origin<'_>,
        end: Option<&[(String, u64)]>,
    ) -> Result<()> {
        let Some(topic) = &self.config.transaction_topic else {
            return Ok(());
        };
        let r = self.client.route(topic, false)?;
        let status = if end.is_some() { "END" } else { "BEGIN" };
        out.push(
            topic,
            &r.queues[0],
            Message {
                body: format::debezium::transaction_record(origin, end, &self.encoder.debezium),
                keys: format::debezium::transaction_id(origin).replace(' ', "_"),
                tags: fill(&self.config.tags, "", "", "", status),
                properties: vec![("tidemark_transaction", status.to_string())],
            },
        );
        Ok(())
    }

    /// A DTS Avro BEGIN, COMMIT or HEARTBEAT record (`dts_control_records`).
    pub fn control_message(
        &self,
        kind: format::dts_avro::Control,
        origin: &format::Origin<'_>,
    ) -> Message {
        let name = match kind {
            format::dts_avro::Control::Begin => "BEGIN",
            format::dts_avro::Control::Commit => "COMMIT",
            format::dts_avro::Control::Heartbeat => "HEARTBEAT",
        };
        let mut properties = vec![("tidemark_control", name.to_string())];
        if let Some(p) = origin.position {
            properties.push(("tidemark_position", format!("{}:{}", p.file, p.offset)));
        }
        Message {
            body: format::dts_avro::control(kind, origin),
            keys: String::new(),
            tags: fill(&self.config.tags, "", "", "", name),
            properties,
        }
    }

    /// Whether the format's consumers want transaction records (Debezium's BEGIN/END,
    /// DTS's BEGIN/COMMIT).
    pub fn transaction_records(&self) -> bool {
        match self.config.format {
            MessageFormat::DebeziumJson => self.config.transaction_topic.is_some(),
            MessageFormat::DtsAvro => self.config.dts_control,
            _ => false,
        }
    }

    /// The row's key values as message keys (`KEYS`): `v1,v2` (spaces become `_`,
    /// since RocketMQ separates keys by spaces).
    fn key_text(&self, t: &TablePlan, row: &[Value]) -> String {
        let Some(key) = &t.def().key else {
            return String::new();
        };
        let mut parts = Vec::with_capacity(key.len());
        let sent = format::sent(t);
        for k in key {
            if let Some(p) = sent.iter().position(|c| c == k) {
                let def = &t.def().columns[*k];
                parts.push(
                    row.get(p)
                        .and_then(|v| format::text(v, def))
                        .unwrap_or_default(),
                );
            }
        }
        parts.join(",").replace(' ', "_")
    }

    /// Adds a DDL statement, placed by `ddl_placement`: on the DDL topic's first queue;
    /// on the table's topic's first queue; or on the table's topic with `ordering =
    /// "table"` on the table's queue, with key or column ordering on every queue, so on
    /// each queue it sits between the table's rows before and after it.
    pub fn ddl(
        &self,
        out: &mut Outbox,
        ev: &DdlEvent<'_>,
        source_db: &str,
        source_table: Option<&str>,
    ) -> Result<()> {
        let body = self.encoder.ddl(ev);
        let (topic, queues) = match &self.config.ddl_topic {
            Some(t) => {
                let r = self.client.route(t, false)?;
                (t.clone(), vec![r.queues[0].clone()])
            }
            None => {
                let topic = self
                    .config
                    .topic_of(source_db, source_table.unwrap_or(""))
                    .to_string();
                let r = self.client.route(&topic, false)?;
                let queues = match self.config.ordering {
                    _ if self.config.ddl_placement == DdlPlacement::FirstQueue => {
                        vec![r.queues[0].clone()]
                    }
                    MessageOrdering::Table => {
                        let table = source_table.unwrap_or("");
                        let h = format::stable_hash(source_db, table, std::iter::empty());
                        vec![r.queues[(h % r.queues.len() as u64) as usize].clone()]
                    }
                    _ => r.queues.clone(),
                };
                (topic, queues)
            }
        };
        let mut properties = vec![
            ("tidemark_row", ev.origin.index.to_string()),
            ("tidemark_ddl", "true".to_string()),
        ];
        if let Some(p) = ev.origin.position {
            properties.push(("tidemark_position", format!("{}:{}", p.file, p.offset)));
        }
        let table = ev.table.unwrap_or("");
        for q in queues {
            out.push(
                &topic,
                &q,
                Message {
                    body: body.clone(),
                    keys: fill(&self.config.keys, ev.database, table, "", "DDL"),
                    tags: fill(&self.config.tags, ev.database, table, "", "DDL"),
                    properties: properties.clone(),
                },
            );
        }
        Ok(())
    }

    /// Continues the counters saved by an earlier run.
    pub fn load_counters(&self, store: &crate::state::Store) -> Result<()> {
        if let Some(saved) = store.get(COUNTERS)? {
            if let Ok(c) = serde_json::from_str::<Counters>(&saved) {
                let c2 = &self.counters;
                c2.messages
                    .store(c.messages.into_inner(), Ordering::Relaxed);
                c2.bytes.store(c.bytes.into_inner(), Ordering::Relaxed);
                c2.skipped_large
                    .store(c.skipped_large.into_inner(), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    pub fn save_counters(&self, store: &crate::state::Store) -> Result<()> {
        store.set(COUNTERS, &serde_json::to_string(&self.counters)?)
    }

    /// Sends everything in the outbox and waits until the brokers acknowledged it.
    pub fn send(&self, out: &mut Outbox) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let (messages, bytes) = (out.messages as u64, out.bytes as u64);
        // `max_tps`: paced per batch, so the broker sees at most one batch early.
        let pace = |m: u64, b: u64| self.throttle.rows(m, b);
        client::send_all(
            &self.client,
            &self.config.producer_group,
            out,
            self.retry_window,
            &pace,
        )?;
        self.counters
            .messages
            .fetch_add(messages, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_core::{ColumnDef, ColumnKind, TableDef, TableName};

    fn parse(text: &str) -> Result<Config> {
        let f: ConfigFile = toml::from_str(text)?;
        Config::from_file(f, &|_, raw| Ok(raw.to_string()))
    }

    #[test]
    fn table_topics_win_over_database_topics() {
        let c = parse(
            r#"type = "rocketmq"
name_servers = ["127.0.0.1:9876"]
topic = "all"
[[topics]]
database = "shop"
topic = "shop"
[[topics]]
database = "shop"
table = "orders"
topic = "orders"
"#,
        )
        .unwrap();
        assert_eq!(c.topic_of("shop", "orders"), "orders");
        assert_eq!(c.topic_of("shop", "items"), "shop");
        assert_eq!(c.topic_of("crm", "x"), "all");
        // The DDL topic defaults to `<topic>_ddl`.
        assert_eq!(c.topics(), vec!["all", "all_ddl", "orders", "shop"]);
        assert_eq!(c.producer_group, "dts-producer-group");
    }

    #[test]
    fn bad_settings_name_the_key() {
        let base = "type = \"rocketmq\"\nname_servers = [\"127.0.0.1:9876\"]\ntopic = \"t\"\n";
        for (extra, want) in [
            ("[[topics]]\ndatabase = \"d\"\ntable = \"t\"\npartition_columns = [\"a\"]\n", "ordering = \\\"columns\\\""),
            ("ordering = \"columns\"\n[[topics]]\ndatabase = \"d\"\ntable = \"t\"\npartition_columns = []\n", "is empty"),
            ("[[topics]]\ndatabase = \"d\"\n", "neither `topic` nor `partition_columns`"),
            ("ddl_topic = \"a b\"\n", "destination.ddl_topic"),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(e.contains(want.trim_matches('\\')) || e.contains(&want.replace('\\', "")), "{extra}: {e}");
        }
        let e =
            parse("type = \"rocketmq\"\nname_servers = [\"nohost\"]\ntopic = \"t\"\n").unwrap_err();
        assert!(e.to_string().contains("not host:port"), "{e}");
    }

    #[test]
    fn ddl_goes_to_a_ddl_topic_unless_placed_in_the_data_topic() {
        let base = "type = \"rocketmq\"\nname_servers = [\"127.0.0.1:9876\"]\ntopic = \"t\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.ddl_placement, DdlPlacement::DdlTopic);
        assert_eq!(c.ddl_topic.as_deref(), Some("t_ddl"));
        let c = parse(&format!("{base}ddl_topic = \"schema\"\n")).unwrap();
        assert_eq!(c.ddl_topic.as_deref(), Some("schema"));
        for (placement, want) in [
            ("first-queue", DdlPlacement::FirstQueue),
            ("every-queue", DdlPlacement::EveryQueue),
        ] {
            let c = parse(&format!("{base}ddl_placement = \"{placement}\"\n")).unwrap();
            assert_eq!((c.ddl_placement, c.ddl_topic), (want, None));
        }
        let e = parse(&format!(
            "{base}ddl_placement = \"first-queue\"\nddl_topic = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("remove one of the two"), "{e}");
    }

    #[test]
    fn canal_settings_are_validated() {
        let base = "type = \"rocketmq\"\nname_servers = [\"127.0.0.1:9876\"]\ntopic = \"t\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.timezone, Timezone::Source);
        assert_eq!(c.enum_set, format::EnumSet::Number);
        assert_eq!((c.keys.as_str(), c.tags.as_str()), ("{key}", "{table}"));
        for (tz, want) in [
            ("UTC", 0),
            ("+08:00", 8 * 3600),
            ("-05:30", -(5 * 3600 + 30 * 60)),
            ("+0", 0),
        ] {
            let c = parse(&format!("{base}timezone = \"{tz}\"\n")).unwrap();
            assert_eq!(c.timezone, Timezone::Offset(want), "{tz}");
        }
        for (extra, want) in [
            ("timezone = \"Mars/Olympus\"\n", "is not a time zone"),
            ("timezone = \"+25:00\"\n", "is not a time zone"),
            ("enum_set = \"index\"\n", "\"number\""),
            ("tags = \"a b\"\n", "no spaces"),
            ("tags = \"a||b\"\n", "no spaces"),
            (
                "format = \"debezium-json\"\nenum_set = \"text\"\n",
                "canal-json\" only",
            ),
            (
                "decimal_handling_mode = \"string\"\n",
                "debezium-json\" only",
            ),
            (
                "format = \"debezium-json\"\ndecimal_handling_mode = \"exact\"\n",
                "\"precise\" (Debezium's default)",
            ),
            (
                "format = \"debezium-json\"\ntime_precision_mode = \"adaptive\"\n",
                "\"connect\"",
            ),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        for f in ["avro", "tidemark-avro"] {
            let c = parse(&format!("{base}format = \"{f}\"\n")).unwrap();
            assert_eq!(c.format, MessageFormat::Avro, "{f}");
        }
        let c = parse(&format!("{base}enum_set = \"text\"\ntags = \"canal\"\nkeys = \"{{database}}.{{table}}:{{key}}\"\n")).unwrap();
        assert_eq!(c.enum_set, format::EnumSet::Text);
        assert_eq!(fill(&c.keys, "d", "t", "1,2", "INSERT"), "d.t:1,2");
        assert_eq!(fill(&c.tags, "d", "t", "", "INSERT"), "canal");
    }

    #[test]
    fn consumer_record_options_are_validated() {
        let base = "type = \"rocketmq\"\nname_servers = [\"127.0.0.1:9876\"]\ntopic = \"t\"\n";
        let c = parse(base).unwrap();
        assert_eq!(c.transaction_topic, None);
        assert!(!c.tombstones && !c.dts_control && !c.debezium.include_query);
        let c = parse(&format!(
            "{base}format = \"debezium-json\"\nprovide_transaction_metadata = true\ninclude_query = true\ntombstones_on_delete = true\n"
        ))
        .unwrap();
        assert_eq!(c.transaction_topic.as_deref(), Some("t_transaction"));
        assert!(c.debezium.transaction_metadata && c.debezium.include_query && c.tombstones);
        // The transaction topic must exist: the precheck asks for every topic.
        assert!(c.topics().contains(&"t_transaction".to_string()));
        let c = parse(&format!(
            "{base}format = \"dts-avro\"\ndts_control_records = true\n"
        ))
        .unwrap();
        assert!(c.dts_control);
        for (extra, want) in [
            ("tombstones_on_delete = true\n", "debezium-json\" only"),
            ("format = \"debezium-json\"\ndts_control_records = true\n", "dts-avro\" only"),
            (
                "format = \"debezium-json\"\ntransaction_topic = \"x\"\n",
                "provide_transaction_metadata` is not true",
            ),
            (
                "format = \"debezium-json\"\nprovide_transaction_metadata = true\ntransaction_topic = \"a b\"\n",
                "destination.transaction_topic",
            ),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    fn plan() -> TablePlan {
        let col = |name: &str, ty: &str, kind| ColumnDef {
            name: name.into(),
            column_type: ty.into(),
            kind,
            nullable: true,
            generated: false,
            invisible: false,
            charset: Some("utf8mb4".into()),
        };
        let def = TableDef {
            name: TableName::new("shop", "orders"),
            columns: vec![
                col("id", "int(11)", ColumnKind::Int { unsigned: false }),
                col("status", "varchar(20)", ColumnKind::Text),
                col("at", "datetime(3)", ColumnKind::DateTime),
            ],
            key: Some(vec![0]),
            key_name: Some("PRIMARY".into()),
        };
        crate::transform::mapping::test_plan(def)
    }

    fn update_json(full: bool) -> serde_json::Value {
        let t = plan();
        let at = Value::DateTime(tidemark_core::DateTime::from_unix(0, 5000));
        let before = vec![Value::Int(7), Value::Bytes(b"new".to_vec()), at.clone()];
        let after = vec![Value::Int(7), Value::Bytes(b"paid".to_vec()), at];
        let p = tidemark_core::Position {
            file: "binlog.000003".into(),
            offset: 1234,
            ..Default::default()
        };
        let ev = RowEvent {
            table: &t,
            op: Op::Update,
            before: Some(&before),
            after: Some(&after),
            snapshot: false,
            origin: format::Origin {
                position: Some(&p),
                gtid: None,
                index: 0,
                source_ms: 1,
                built_ms: 2,
                event: None,
                row: 0,
                thread: None,
                begin: 0,
                order: None,
            },
        };
        let o = format::CanalOptions {
            full_before_image: full,
            ..Default::default()
        };
        serde_json::from_slice(&format::canal::row(&ev, &o)).unwrap()
    }

    #[test]
    fn canal_old_holds_changed_columns_or_all_of_them() {
        let v = update_json(false);
        assert_eq!(v["type"], "UPDATE");
        assert_eq!(v["data"][0]["status"], "paid");
        assert_eq!(v["data"][0]["at"], "1970-01-01 00:00:00.005");
        assert_eq!(v["old"], serde_json::json!([{"status": "new"}]));
        assert_eq!(v["pkNames"], serde_json::json!(["id"]));
        assert_eq!(v["mysqlType"]["at"], "datetime(3)");
        assert_eq!(v["sqlType"]["status"], 12);
        assert_eq!(v["id"], (3u64 << 32) + 1234);
        let v = update_json(true);
        assert_eq!(
            v["old"],
            serde_json::json!([{"id": "7", "status": "new", "at": "1970-01-01 00:00:00.005"}])
        );
    }
}
