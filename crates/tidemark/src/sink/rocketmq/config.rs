//! The RocketMQ destination's task-file keys: `[destination]` with `type = "rocketmq"`,
//! validated with messages that name the key and the fix.

use super::remoting::Credentials;
use crate::endpoint::Resolver;
use crate::sink::Destination;
use anyhow::{bail, Result};
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
    /// Avro binary records with a fixed, published schema.
    Avro,
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
    /// DDL statements go here; to the table's topic when unset.
    ddl_topic: Option<String>,
    #[serde(default)]
    format: MessageFormat,
    /// Canal JSON: `old` holds every column of the row before an update, not only the
    /// changed ones.
    #[serde(default)]
    full_before_image: bool,
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
    pub format: MessageFormat,
    pub full_before_image: bool,
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
        }
        if f.full_before_image && f.format != MessageFormat::CanalJson {
            bail!("`destination.full_before_image` applies to format = \"canal-json\" only (the other formats always carry the whole row before an update)");
        }
        let mut c = Config {
            name_servers: f.name_servers,
            credentials,
            producer_group: f.producer_group,
            topic: f.topic,
            ddl_topic: f.ddl_topic,
            format: f.format,
            full_before_image: f.full_before_image,
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
            .chain(self.database_topics.values().cloned())
            .chain(self.table_topics.values().flat_map(|t| t.values().cloned()))
            .collect();
        t.sort();
        t.dedup();
        t
    }
}
