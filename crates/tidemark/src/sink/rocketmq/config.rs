//! The RocketMQ destination's task-file keys: `[destination]` with `type = "rocketmq"`,
//! validated with messages that name the key and the fix.

use super::format;
use super::remoting::Credentials;
use crate::endpoint::Resolver;
use crate::sink::Destination;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[destination] format` of a message queue destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageFormat {
    /// Canal's FlatMessage JSON.
    #[default]
    CanalJson,
    /// A Debezium-style JSON envelope.
    DebeziumJson,
    /// Avro binary records with Tidemark's own published schema (`"tidemark-avro"`;
    /// `"avro"`, its first name, is still accepted).
    #[serde(rename = "tidemark-avro", alias = "avro")]
    Avro,
    /// The reference's subscription record (`com.alibaba.dts.formats.avro.Record`).
    DtsAvro,
}

/// `[destination] ordering`: which changes share a queue (and so keep their order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageOrdering {
    /// All changes of a table on one queue.
    Table,
    /// Changes of one row key on one queue (keyless tables: by table).
    #[default]
    PrimaryKey,
    /// By the values of each table's `partition_columns` (the key where none are given).
    Columns,
}

/// `[destination]` with `type = "rocketmq"`, as written in the task file. Every key is
/// documented in `docs/task-file.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(rename = "type")]
    _kind: String,
    /// Name servers, `host:port` each.
    name_servers: Vec<String>,
    /// ACL credentials (`${ENV}` allowed); both or neither.
    access_key: Option<String>,
    secret_key: Option<String>,
    #[serde(default = "default_group")]
    producer_group: String,
    /// The topic every table's changes go to, unless `[[destination.topics]]` says
    /// otherwise.
    topic: String,
    /// The DDL topic (`ddl_placement = "ddl-topic"`); default `<topic>_ddl`.
    ddl_topic: Option<String>,
    /// Where DDL messages go: a DDL topic, queue 0 of the table's topic, or every queue.
    #[serde(default)]
    ddl_placement: DdlPlacement,
    #[serde(default)]
    format: MessageFormat,
    /// Canal JSON: `old` holds every column of the row before an update, not only the
    /// changed ones.
    #[serde(default)]
    full_before_image: bool,
    /// Canal JSON: ENUM/SET as Canal's numbers ("number") or as member text ("text").
    #[serde(default)]
    enum_set: Option<String>,
    /// Canal JSON: the time zone TIMESTAMP values are rendered in: "source" (the source
    /// server's, the default), "UTC" or an offset such as "+08:00".
    #[serde(default)]
    timezone: Option<String>,
    /// Debezium JSON: "precise" (default), "string" or "double".
    decimal_handling_mode: Option<String>,
    /// Debezium JSON: "adaptive_time_microseconds" (default) or "connect".
    time_precision_mode: Option<String>,
    /// Debezium JSON: `{"schema", "payload"}` messages (Kafka Connect's `schemas.enable`).
    schemas_enable: Option<bool>,
    /// Debezium JSON: `source.query` holds the statement of each row (`include.query`).
    include_query: Option<bool>,
    /// Debezium JSON: the `transaction` block, and BEGIN/END records on
    /// `transaction_topic` (`provide.transaction.metadata`).
    provide_transaction_metadata: Option<bool>,
    /// The topic of BEGIN/END records; default `<topic>_transaction`.
    transaction_topic: Option<String>,
    /// Debezium JSON: an empty message with the delete's KEYS after each delete
    /// (`tombstones.on.delete`).
    tombstones_on_delete: Option<bool>,
    /// DTS Avro: BEGIN and COMMIT records around each transaction, HEARTBEAT records
    /// while the source is idle.
    dts_control_records: Option<bool>,
    /// Message KEYS and TAGS, with `{database}`, `{table}`, `{key}` and `{type}` filled in.
    keys: Option<String>,
    tags: Option<String>,
    #[serde(default)]
    ordering: MessageOrdering,
    /// Messages per second at most (0: unlimited).
    #[serde(default)]
    max_tps: u64,
    /// Skip (and count) rows whose message body is over 4 MiB instead of failing.
    #[serde(default)]
    filter_large_messages: bool,
    /// Per-database and per-table topics and partition columns.
    #[serde(default)]
    topics: Vec<TopicMapFile>,
}

/// `destination.ddl_placement`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdlPlacement {
    /// Every DDL statement on queue 0 of the DDL topic: data topics carry rows only, so
    /// consumers that reject DDL in a data topic (Flink's canal-json and debezium-json)
    /// read them unchanged; Debezium's own placement.
    #[default]
    DdlTopic,
    /// On queue 0 of the table's topic, once: Canal's placement (`MQMessageUtils.
    /// messagePartition` puts every DDL in partition 0).
    FirstQueue,
    /// On every queue of the table's topic that holds its rows, between the rows before
    /// and after it on each: a barrier per queue (a consumer of several queues sees it
    /// once per queue).
    EveryQueue,
}

/// `destination.timezone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timezone {
    /// The source server's (`@@global.time_zone`), read when the task starts.
    Source,
    /// Seconds east of UTC.
    Offset(i32),
}

impl Timezone {
    fn parse(text: &str) -> Result<Timezone> {
        let bad = || {
            anyhow!("`destination.timezone` = {text:?} is not a time zone: use \"source\" (the source server's), \"UTC\", or an offset such as \"+08:00\"")
        };
        match text.to_ascii_lowercase().as_str() {
            "source" => return Ok(Timezone::Source),
            "utc" | "z" | "+00:00" | "-00:00" => return Ok(Timezone::Offset(0)),
            _ => {}
        }
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok(Timezone::Offset(sign * (h * 3600 + m * 60)))
    }
}

/// Fills a KEYS/TAGS template.
pub(super) fn fill(template: &str, database: &str, table: &str, key: &str, kind: &str) -> String {
    template
        .replace("{database}", database)
        .replace("{table}", table)
        .replace("{key}", key)
        .replace("{type}", kind)
}

fn default_group() -> String {
    "dts-producer-group".into()
}

/// One `[[destination.topics]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicMapFile {
    database: String,
    table: Option<String>,
    topic: Option<String>,
    partition_columns: Option<Vec<String>>,
}

/// A validated RocketMQ destination.
#[derive(Clone, Debug)]
pub struct Config {
    pub name_servers: Vec<String>,
    pub credentials: Option<Credentials>,
    pub producer_group: String,
    pub topic: String,
    pub ddl_topic: Option<String>,
    pub ddl_placement: DdlPlacement,
    pub format: MessageFormat,
    pub full_before_image: bool,
    pub enum_set: format::EnumSet,
    pub timezone: Timezone,
    pub debezium: format::debezium::Options,
    /// BEGIN/END records' topic (`provide_transaction_metadata`).
    pub transaction_topic: Option<String>,
    /// Debezium tombstones after deletes.
    pub tombstones: bool,
    /// DTS Avro BEGIN/COMMIT/HEARTBEAT records.
    pub dts_control: bool,
    pub keys: String,
    pub tags: String,
    pub ordering: MessageOrdering,
    pub max_tps: u64,
    pub filter_large_messages: bool,
    /// Source database → topic.
    pub database_topics: BTreeMap<String, String>,
    /// Source database → table → topic; wins over the database's.
    pub table_topics: BTreeMap<String, BTreeMap<String, String>>,
    /// Source database → table → the columns whose values choose the queue.
    pub partition_columns: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

fn valid_topic(key: &str, t: &str) -> Result<()> {
    if t.is_empty()
        || t.len() > 127
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "%-_|".contains(c))
    {
        bail!("`{key}` = {t:?} is not a valid RocketMQ topic name: use 1-127 letters, digits, '%', '-', '_' or '|'");
    }
    Ok(())
}

/// Reads `[destination]` for [`crate::sink::KINDS`].
pub fn parse(table: toml::Table, r: &Resolver) -> Result<Destination> {
    let f: ConfigFile = r.keys("destination", table)?;
    let config = Config::from_file(f, &|k, raw| r.interpolate(k, raw))?;
    Ok(Destination::new(super::Rocketmq {
        config: std::sync::Arc::new(config),
    }))
}

impl Config {
    pub fn from_file(
        f: ConfigFile,
        interpolate: &dyn Fn(&str, &str) -> Result<String>,
    ) -> Result<Config> {
        if f.name_servers.is_empty() {
            bail!("`destination.name_servers` is empty: list the name servers as \"host:port\", e.g. [\"127.0.0.1:9876\"]");
        }
        for ns in &f.name_servers {
            let ok = ns
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                bail!(
                    "`destination.name_servers`: {ns:?} is not host:port (e.g. \"127.0.0.1:9876\")"
                );
            }
        }
        let credentials = match (&f.access_key, &f.secret_key) {
            (None, None) => None,
            (Some(a), Some(s)) => Some(Credentials {
                access_key: interpolate("destination.access_key", a)?,
                secret_key: interpolate("destination.secret_key", s)?,
            }),
            _ => {
                bail!("give both `destination.access_key` and `destination.secret_key`, or neither")
            }
        };
        if f.producer_group.is_empty() {
            bail!("`destination.producer_group` is empty (default: \"dts-producer-group\")");
        }
        valid_topic("destination.topic", &f.topic)?;
        if let Some(t) = &f.ddl_topic {
            valid_topic("destination.ddl_topic", t)?;
            if f.ddl_placement != DdlPlacement::DdlTopic {
                bail!("`destination.ddl_topic` is set but `destination.ddl_placement` = {:?} sends DDL to the tables' topics: remove one of the two", f.ddl_placement);
            }
        }
        let ddl_topic = match f.ddl_placement {
            DdlPlacement::DdlTopic => {
                let t = f.ddl_topic.unwrap_or_else(|| format!("{}_ddl", f.topic));
                valid_topic("destination.ddl_topic", &t)?;
                Some(t)
            }
            _ => None,
        };
        let enum_set = match f.enum_set.as_deref() {
            None | Some("number") => format::EnumSet::Number,
            Some("text") => format::EnumSet::Text,
            Some(o) => bail!("`destination.enum_set` = {o:?}: use \"number\" (Canal's ENUM index and SET bitmask) or \"text\" (the members)"),
        };
        if f.format != MessageFormat::CanalJson && (f.enum_set.is_some() || f.timezone.is_some()) {
            bail!("`destination.enum_set` and `destination.timezone` apply to format = \"canal-json\" only");
        }
        let timezone = Timezone::parse(f.timezone.as_deref().unwrap_or("source"))?;
        if f.format != MessageFormat::DebeziumJson
            && (f.decimal_handling_mode.is_some()
                || f.time_precision_mode.is_some()
                || f.schemas_enable.is_some()
                || f.include_query.is_some()
                || f.provide_transaction_metadata.is_some()
                || f.transaction_topic.is_some()
                || f.tombstones_on_delete.is_some())
        {
            bail!("`destination.decimal_handling_mode`, `time_precision_mode`, `schemas_enable`, `include_query`, `provide_transaction_metadata`, `transaction_topic` and `tombstones_on_delete` apply to format = \"debezium-json\" only");
        }
        if f.format != MessageFormat::DtsAvro && f.dts_control_records.is_some() {
            bail!("`destination.dts_control_records` applies to format = \"dts-avro\" only");
        }
        let transaction_metadata = f.provide_transaction_metadata.unwrap_or(false);
        let transaction_topic = match (&f.transaction_topic, transaction_metadata) {
            (Some(_), false) => bail!("`destination.transaction_topic` is set but `destination.provide_transaction_metadata` is not true: set it, or remove `transaction_topic`"),
            (Some(t), true) => Some(t.clone()),
            (None, true) => Some(format!("{}_transaction", f.topic)),
            (None, false) => None,
        };
        if let Some(t) = &transaction_topic {
            valid_topic("destination.transaction_topic", t)?;
        }
        use format::debezium::{DecimalMode, Options as DebeziumOptions, TimeMode};
        let debezium = DebeziumOptions {
            decimal: match f.decimal_handling_mode.as_deref() {
                None | Some("precise") => DecimalMode::Precise,
                Some("string") => DecimalMode::String,
                Some("double") => DecimalMode::Double,
                Some(o) => bail!("`destination.decimal_handling_mode` = {o:?}: use \"precise\" (Debezium's default), \"string\" or \"double\""),
            },
            time: match f.time_precision_mode.as_deref() {
                None | Some("adaptive_time_microseconds") => TimeMode::Adaptive,
                Some("connect") => TimeMode::Connect,
                Some(o) => bail!("`destination.time_precision_mode` = {o:?}: use \"adaptive_time_microseconds\" (Debezium's default) or \"connect\""),
            },
            schemas: f.schemas_enable.unwrap_or(false),
            include_query: f.include_query.unwrap_or(false),
            transaction_metadata,
            mariadb: false,
        };
        let keys = f.keys.unwrap_or_else(|| "{key}".into());
        let tags = f.tags.unwrap_or_else(|| "{table}".into());
        for (k, v) in [("keys", &keys), ("tags", &tags)] {
            // RocketMQ separates keys by spaces, and a tag is one word a consumer matches.
            if v.contains(' ') || (k == "tags" && v.contains("||")) {
                bail!("`destination.{k}` = {v:?}: no spaces (and, for tags, no \"||\"): RocketMQ splits on them");
            }
        }
        if f.full_before_image && f.format != MessageFormat::CanalJson {
            bail!("`destination.full_before_image` applies to format = \"canal-json\" only (the other formats always carry the whole row before an update)");
        }
        let mut c = Config {
            name_servers: f.name_servers,
            credentials,
            producer_group: f.producer_group,
            topic: f.topic,
            ddl_topic,
            ddl_placement: f.ddl_placement,
            format: f.format,
            full_before_image: f.full_before_image,
            enum_set,
            timezone,
            debezium,
            transaction_topic,
            tombstones: f.tombstones_on_delete.unwrap_or(false),
            dts_control: f.dts_control_records.unwrap_or(false),
            keys,
            tags,
            ordering: f.ordering,
            max_tps: f.max_tps,
            filter_large_messages: f.filter_large_messages,
            database_topics: BTreeMap::new(),
            table_topics: BTreeMap::new(),
            partition_columns: BTreeMap::new(),
        };
        for (i, m) in f.topics.into_iter().enumerate() {
            let at = format!("destination.topics[{i}]");
            if let Some(t) = &m.topic {
                valid_topic(&format!("{at}.topic"), t)?;
            }
            match (&m.table, m.topic, m.partition_columns) {
                (None, _, Some(_)) => bail!(
                    "`{at}.partition_columns` needs `table`: partition columns belong to one table"
                ),
                (None, None, None) | (Some(_), None, None) => {
                    bail!("`{at}` sets neither `topic` nor `partition_columns`")
                }
                (None, Some(t), None) => {
                    if c.database_topics.insert(m.database.clone(), t).is_some() {
                        bail!("`{at}`: database {:?} is mapped twice", m.database);
                    }
                }
                (Some(table), topic, cols) => {
                    if let Some(t) = topic {
                        let tables = c.table_topics.entry(m.database.clone()).or_default();
                        if tables.insert(table.clone(), t).is_some() {
                            bail!("`{at}`: table {}.{table} is mapped twice", m.database);
                        }
                    }
                    if let Some(cols) = cols {
                        if cols.is_empty() {
                            bail!("`{at}.partition_columns` is empty");
                        }
                        if c.ordering != MessageOrdering::Columns {
                            bail!("`{at}.partition_columns` is used only with `destination.ordering = \"columns\"`");
                        }
                        c.partition_columns
                            .entry(m.database.clone())
                            .or_default()
                            .insert(table.clone(), cols);
                    }
                }
            }
        }
        Ok(c)
    }

    /// The topic of a table (by source name): table mapping, database mapping, default.
    pub fn topic_of(&self, database: &str, table: &str) -> &str {
        self.table_topics
            .get(database)
            .and_then(|t| t.get(table))
            .or_else(|| self.database_topics.get(database))
            .unwrap_or(&self.topic)
    }

    /// Every topic the task may send to, with what it is for.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = std::iter::once(self.topic.clone())
            .chain(self.ddl_topic.clone())
            .chain(self.transaction_topic.clone())
            .chain(self.database_topics.values().cloned())
            .chain(self.table_topics.values().flat_map(|t| t.values().cloned()))
            .collect();
        t.sort();
        t.dedup();
        t
    }
}
