//! The AnalyticDB for MySQL 3.0 destination's task-file keys: `[destination]` with
//! `type = "adb-mysql"` and its `[[destination.tables]]` (the reference's "Configure
//! Database and Table Fields"), every key documented in `docs/task-file.md`.
//!
//! A table's settings are checked here against each other (the primary key must hold the
//! distribution and partition keys, as ADB requires); against the source's columns they
//! are checked by the precheck, which knows the tables.

use super::Adb;
use crate::endpoint::{EndpointKeys, Resolver, TlsMode};
use crate::sink::Destination;
use anyhow::{bail, Result};
use serde::Deserialize;

/// `[destination]` of an AnalyticDB for MySQL 3.0 cluster, as written in the task file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(rename = "type")]
    _kind: String,
    /// `mysql://USER:PASSWORD@HOST:PORT` (`${ENV}` allowed).
    url: String,
    #[serde(default)]
    tls: TlsMode,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    /// Per-table settings; a table not named here is a fact table distributed by its
    /// primary key, without partitions.
    #[serde(default)]
    tables: Vec<TableFile>,
}

/// One `[[destination.tables]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    /// Destination database and table the settings are for.
    database: String,
    table: String,
    /// `"fact"` (DISTRIBUTED BY HASH, the default) or `"dimension"` (DISTRIBUTED BY
    /// BROADCAST: a copy on every node).
    #[serde(default, rename = "type")]
    table_type: TableType,
    /// The destination's primary key; default the source's.
    primary_key: Option<Vec<String>>,
    /// Fact tables: the hash distribution columns; default the primary key.
    distribution_key: Option<Vec<String>>,
    /// The partition column; with `partition_rule` and `lifecycle`.
    partition_key: Option<String>,
    /// `"value"` (the column's value), `"%Y%m%d"`, `"%Y%m"` or `"%Y"` (DATE_FORMAT of a
    /// date/time column).
    partition_rule: Option<String>,
    /// How many partitions ADB keeps (the largest partition values).
    lifecycle: Option<u32>,
    /// Every source table renamed onto this table is merged into it, each row with a
    /// `__dts_data_source` column naming its source (`db.table`), which extends the key.
    #[serde(default)]
    merge: bool,
}

/// Fact (hash-distributed) or dimension (broadcast) table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TableType {
    #[default]
    Fact,
    Dimension,
}

/// How a partitioned table's partition value is computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionRule {
    /// `PARTITION BY VALUE(col)`.
    Value,
    /// `PARTITION BY VALUE(DATE_FORMAT(col, fmt))`.
    DateFormat(String),
    /// `PARTITION BY VALUE(FROM_UNIXTIME(col, fmt))` (an integer column of epoch
    /// seconds; taken from an ADB source's own definition).
    FromUnixtime(String),
}

/// A partition clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub column: String,
    pub rule: PartitionRule,
    /// 0: no `LIFECYCLE` (an ADB source's partitioned table without one).
    pub lifecycle: u32,
}

/// Validated settings of one destination table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSettings {
    pub database: String,
    pub table: String,
    pub table_type: TableType,
    pub primary_key: Option<Vec<String>>,
    /// `None`: the primary key (fact tables); always `None` for dimension tables.
    pub distribution_key: Option<Vec<String>>,
    pub partition: Option<Partition>,
    /// Source tables are merged into this one ([`super::schema::DATA_SOURCE`]).
    pub merge: bool,
}

/// Reads `[destination]` for [`crate::sink::KINDS`].
pub fn parse(table: toml::Table, r: &Resolver) -> Result<Destination> {
    let d: ConfigFile = r.keys("destination", table)?;
    let keys = EndpointKeys {
        url: d.url,
        tls: d.tls,
        tls_ca: d.tls_ca,
        tls_cert: d.tls_cert,
        tls_key: d.tls_key,
    };
    let endpoint = r.endpoint("destination", &keys)?;
    let file = r.file.display().to_string();
    let mut tables: Vec<TableSettings> = Vec::new();
    for (i, t) in d.tables.into_iter().enumerate() {
        let s = settings(t).map_err(|e| {
            anyhow::anyhow!("invalid task file {file}: `destination.tables[{i}]`: {e}")
        })?;
        if tables
            .iter()
            .any(|o| o.database == s.database && o.table == s.table)
        {
            bail!(
                "invalid task file {file}: `destination.tables` names {}.{} twice; keep one entry per table",
                s.database,
                s.table
            );
        }
        tables.push(s);
    }
    Ok(Destination::new(Adb { endpoint, tables }))
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Checks one table's settings against each other.
fn settings(t: TableFile) -> Result<TableSettings> {
    let name = format!("{}.{}", t.database, t.table);
    if t.database.is_empty() || t.table.is_empty() {
        bail!("`database` and `table` must name the destination table");
    }
    let nonempty = |key: &str, v: &Option<Vec<String>>| -> Result<()> {
        match v {
            Some(cols) if cols.is_empty() || cols.iter().any(|c| c.is_empty()) => {
                bail!("{name}: `{key}` must list column names (or be left out)")
            }
            _ => Ok(()),
        }
    };
    nonempty("primary_key", &t.primary_key)?;
    let mut t = t;
    let data_source = super::schema::DATA_SOURCE;
    for (key, cols) in [
        ("primary_key", &t.primary_key),
        ("distribution_key", &t.distribution_key),
    ] {
        if !t.merge && cols.iter().flatten().any(|c| same(c, data_source)) {
            bail!("{name}: `{key}` names `{data_source}`, a column only a merged table has; set `merge = true` or remove it");
        }
    }
    if t.merge {
        // Rows of different source tables may share the source's key.
        if let Some(pk) = t.primary_key.as_mut() {
            if !pk.iter().any(|c| same(c, data_source)) {
                pk.push(data_source.to_string());
            }
        }
    }
    nonempty("distribution_key", &t.distribution_key)?;
    if t.table_type == TableType::Dimension && t.distribution_key.is_some() {
        bail!("{name}: a dimension table is broadcast to every node and has no `distribution_key`; remove it or set `type = \"fact\"`");
    }
    let partition = match (&t.partition_key, &t.partition_rule, t.lifecycle) {
        (None, None, None) => None,
        (Some(column), rule, Some(lifecycle)) => {
            if t.table_type == TableType::Dimension {
                bail!("{name}: a dimension table cannot be partitioned; remove `partition_key` or set `type = \"fact\"`");
            }
            if lifecycle == 0 {
                bail!("{name}: `lifecycle` must be at least 1 (the partitions ADB keeps)");
            }
            let rule = match rule.as_deref() {
                None | Some("value") => PartitionRule::Value,
                Some(f @ ("%Y%m%d" | "%Y%m" | "%Y")) => PartitionRule::DateFormat(f.to_string()),
                Some(other) => bail!(
                    "{name}: `partition_rule` {other:?} is not one ADB takes; use \"value\", \"%Y%m%d\", \"%Y%m\" or \"%Y\""
                ),
            };
            Some(Partition {
                column: column.clone(),
                rule,
                lifecycle,
            })
        }
        (Some(_), _, None) => {
            bail!("{name}: a partitioned table needs `lifecycle` (how many partitions ADB keeps)")
        }
        (None, _, _) => {
            bail!("{name}: `partition_rule` and `lifecycle` need `partition_key`")
        }
    };
    if let Some(pk) = &t.primary_key {
        for c in t.distribution_key.iter().flatten() {
            if !pk.iter().any(|p| same(p, c)) {
                bail!(
                    "{name}: the primary key ({}) must contain the distribution key column `{c}` (ADB requires it); add `{c}` to `primary_key` or choose another `distribution_key`",
                    pk.join(", ")
                );
            }
        }
        if let Some(p) = &partition {
            if !pk.iter().any(|k| same(k, &p.column)) {
                bail!(
                    "{name}: the primary key ({}) must contain the partition key `{}` (ADB requires it); add it to `primary_key`",
                    pk.join(", "),
                    p.column
                );
            }
        }
    }
    Ok(TableSettings {
        database: t.database,
        table: t.table,
        table_type: t.table_type,
        primary_key: t.primary_key,
        distribution_key: t.distribution_key,
        partition,
        merge: t.merge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_text(text: &str) -> Result<Destination> {
        let table: toml::Table = toml::from_str(text)?;
        let env = |_: &str| None;
        let r = Resolver {
            file: Path::new("/tmp/t.toml"),
            base: Path::new("/tmp"),
            env: &env,
            timeouts: Default::default(),
        };
        parse(table, &r)
    }

    const HEAD: &str = "type = \"adb-mysql\"\nurl = \"mysql://u@adb:3306\"\n";

    #[test]
    fn tables_are_read_with_their_defaults() {
        let d = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\ntype = \"dimension\"\n[[tables]]\ndatabase = \"d\"\ntable = \"u\"\nprimary_key = [\"id\", \"day\"]\ndistribution_key = [\"id\"]\npartition_key = \"day\"\npartition_rule = \"%Y%m%d\"\nlifecycle = 30\n"
        ))
        .unwrap();
        assert_eq!(d.name(), "adb-mysql");
        assert_eq!(d.describe(), "u@adb:3306");
    }

    #[test]
    fn a_primary_key_without_the_distribution_or_partition_key_is_refused() {
        let e = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\nprimary_key = [\"id\"]\ndistribution_key = [\"user\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("must contain the distribution key column `user`")
                && e.contains("destination.tables[0]"),
            "{e}"
        );
        let e = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\nprimary_key = [\"id\"]\npartition_key = \"day\"\nlifecycle = 3\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("must contain the partition key `day`"), "{e}");
    }

    #[test]
    fn a_merged_tables_key_holds_the_data_source_column() {
        let d = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\nmerge = true\nprimary_key = [\"id\"]\n"
        ))
        .unwrap();
        assert!(d.merges_into(&tidemark_core::TableName::new("d", "t")));
        assert!(!d.merges_into(&tidemark_core::TableName::new("d", "u")));
        let t = settings(TableFile {
            database: "d".into(),
            table: "t".into(),
            table_type: TableType::Fact,
            primary_key: Some(vec!["id".into()]),
            distribution_key: None,
            partition_key: None,
            partition_rule: None,
            lifecycle: None,
            merge: true,
        })
        .unwrap();
        assert_eq!(
            t.primary_key,
            Some(vec!["id".to_string(), "__dts_data_source".into()])
        );
        let e = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\ndistribution_key = [\"__dts_data_source\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("set `merge = true`"), "{e}");
    }

    #[test]
    fn unsupported_combinations_are_named() {
        for (keys, want) in [
            (
                "type = \"dimension\"\ndistribution_key = [\"id\"]",
                "no `distribution_key`",
            ),
            (
                "type = \"dimension\"\npartition_key = \"d\"\nlifecycle = 2",
                "cannot be partitioned",
            ),
            ("partition_key = \"d\"", "needs `lifecycle`"),
            ("lifecycle = 2", "need `partition_key`"),
            ("partition_key = \"d\"\nlifecycle = 0", "at least 1"),
            (
                "partition_key = \"d\"\nlifecycle = 2\npartition_rule = \"%d\"",
                "\"%Y%m%d\"",
            ),
            ("type = \"star\"", "unknown variant"),
            ("primary_key = []", "must list column names"),
        ] {
            let e = parse_text(&format!(
                "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\n{keys}\n"
            ))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
            assert!(e.contains(want), "{keys}: {e}");
        }
        let e = parse_text(&format!(
            "{HEAD}[[tables]]\ndatabase = \"d\"\ntable = \"t\"\n[[tables]]\ndatabase = \"d\"\ntable = \"t\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
