//! ADB tables for the planned source tables: the layout (primary, distribution and
//! partition keys, from `[[destination.tables]]` or the defaults), the column types
//! ([`super::types`]) and the `CREATE TABLE` in ADB's dialect; and the schema step that
//! runs it. Only databases and tables are created: foreign keys, triggers, routines and
//! views are not migrated (the precheck says so), secondary indexes neither (ADB indexes
//! every column by default, `INDEX_ALL='Y'`).

use super::config::{Partition, PartitionRule, TableSettings, TableType};
use super::types::{self, Convert, Mapped};
use crate::connect::{connect_raw, Side};
use crate::endpoint::Endpoint;
use crate::transform::mapping::TablePlan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use tidemark_core::sql::{quote_ident, quote_str};
use tidemark_core::{ColumnDef, ColumnKind, Value};

/// How one source table lands in ADB.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per copied column (plan order): its mapping.
    pub columns: Vec<(String, Mapped)>,
    /// Destination column names.
    pub primary_key: Vec<String>,
    /// `None`: BROADCAST.
    pub distribution: Option<Vec<String>>,
    pub settings: Option<TableSettings>,
    /// Source column positions of the destination primary key (rows are identified by
    /// it on the destination, so changes are coalesced by it).
    pub key_positions: Vec<usize>,
}

/// The column of a merged table that names each row's source table (`db.table`), as
/// the reference names it.
pub const DATA_SOURCE: &str = "__dts_data_source";

/// `t` as ADB holds it: for a merged table (`merge = true`), with [`DATA_SOURCE`]
/// appended to its columns (copied, after the source's) and to its key; and the value
/// every row of `t` has in it. Rows of `t` (source columns) get the value appended.
pub fn for_adb(t: &TablePlan, settings: &[TableSettings]) -> (TablePlan, Option<Value>) {
    let merged = settings_for(settings, t).is_some_and(|s| s.merge);
    if !merged || t.columns.contains_key(DATA_SOURCE) {
        return (t.clone(), None);
    }
    let mut p = t.clone();
    let def = &mut p.source.def;
    def.columns.push(ColumnDef {
        name: DATA_SOURCE.to_string(),
        column_type: "varchar(255)".into(),
        kind: ColumnKind::Text,
        nullable: false,
        generated: false,
        invisible: false,
        charset: Some("utf8mb4".into()),
    });
    let at = def.columns.len() - 1;
    if let Some(k) = def.key.as_mut() {
        k.push(at);
    }
    p.copied.push(at);
    p.columns
        .insert(DATA_SOURCE.to_string(), DATA_SOURCE.to_string());
    let name = format!("{}.{}", t.def().name.database, t.def().name.table);
    (p, Some(Value::Bytes(name.into_bytes())))
}

/// Merged tables: what makes them unmergeable (a source column already named
/// [`DATA_SOURCE`], columns that differ between the tables merged into one), as
/// operator messages.
pub fn merge_problems(tables: &[TablePlan], settings: &[TableSettings]) -> Vec<String> {
    let mut problems = Vec::new();
    // Per merged destination table: its first source table and that one's columns.
    type Columns = Vec<(String, String)>;
    let mut first: Vec<(String, &TablePlan, Columns)> = Vec::new();
    for t in tables {
        if !settings_for(settings, t).is_some_and(|s| s.merge) {
            continue;
        }
        if t.def()
            .columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(DATA_SOURCE))
        {
            problems.push(format!(
                "{}: the source table has a column `{DATA_SOURCE}`, the column a merged table adds; rename it on the source or leave it out of the selection",
                t.def().name
            ));
            continue;
        }
        let cols: Vec<(String, String)> = t
            .copied_columns()
            .map(|c| {
                let ty = types::map(c, false)
                    .map(|m| m.adb_type)
                    .unwrap_or_else(|e| e);
                (t.columns[&c.name].to_ascii_lowercase(), ty)
            })
            .collect();
        let target = t.target.to_string().to_ascii_lowercase();
        let key: Vec<String> = t
            .def()
            .key
            .iter()
            .flatten()
            .map(|&i| t.def().columns[i].name.to_ascii_lowercase())
            .collect();
        let mut cols_key = cols.clone();
        cols_key.push(("(key)".into(), key.join(",")));
        match first.iter().find(|(n, _, _)| *n == target) {
            None => first.push((target, t, cols_key)),
            Some((_, f, want)) if *want != cols_key => {
                let show = |c: &[(String, String)]| {
                    c.iter()
                        .map(|(n, ty)| format!("{n} {ty}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                problems.push(format!(
                    "{} and {} are merged into {} but their columns differ ({} / {}); merged tables must have the same columns, types and key",
                    f.def().name,
                    t.def().name,
                    t.target,
                    show(want),
                    show(&cols_key)
                ));
            }
            Some(_) => {}
        }
    }
    problems
}

/// The settings that name `t`'s destination table.
pub fn settings_for<'a>(all: &'a [TableSettings], t: &TablePlan) -> Option<&'a TableSettings> {
    all.iter().find(|s| {
        s.database.eq_ignore_ascii_case(&t.target.database)
            && s.table.eq_ignore_ascii_case(&t.target.table)
    })
}

/// The source's AUTO_INCREMENT columns of `t` (ADB takes AUTO_INCREMENT only on BIGINT,
/// so they become BIGINT).
pub fn auto_increment(src: &mut mysql::Conn, t: &TablePlan) -> Result<Vec<String>> {
    let n = &t.def().name;
    src.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA LIKE '%auto_increment%'",
        (&n.database, &n.table),
    )
    .with_context(|| format!("reading the AUTO_INCREMENT column of {n}"))
}

/// Works out `t`'s layout; every problem found, as operator messages.
pub fn layout(
    t: &TablePlan,
    settings: Option<&TableSettings>,
    auto_increment: &[String],
) -> Result<Layout, Vec<String>> {
    let name = &t.target;
    let mut problems = Vec::new();
    let mut columns = Vec::new();
    // An ADB source's tables keep their layout unless the task file sets one.
    let from_source = settings.is_none().then(|| source_settings(t)).flatten();
    let settings = settings.or(from_source.as_ref());
    for c in t.copied_columns() {
        let ai = auto_increment
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&c.name));
        let shown = t.source.adb.as_ref().and_then(|a| a.column(&c.name));
        let mapped = match shown {
            Some(shown) => types::map_adb(shown),
            None => types::map(c, ai),
        };
        match mapped {
            Ok(m) => columns.push((t.columns[&c.name].clone(), m)),
            Err(why) => problems.push(format!("{name}: column `{}` {why}", c.name)),
        }
    }
    let targets = t.target_columns();
    let find = |c: &str| targets.iter().position(|t| t.eq_ignore_ascii_case(c));
    let source_key: Vec<String> = t
        .def()
        .key
        .iter()
        .flatten()
        .filter_map(|&i| t.columns.get(&t.def().columns[i].name).cloned())
        .collect();
    let primary_key = match settings.and_then(|s| s.primary_key.clone()) {
        Some(pk) => {
            for c in &source_key {
                if !pk.iter().any(|p| p.eq_ignore_ascii_case(c)) {
                    problems.push(format!(
                        "{name}: `primary_key` must contain the source's key column `{c}` (rows are identified by it); add it to `destination.tables` primary_key"
                    ));
                }
            }
            pk
        }
        None if t.def().key.is_none() || !t.key_is_copied() => {
            problems.push(format!(
                "{name}: the table has no primary key (ADB would add `__adb_auto_id__`, and rows could not be matched to their source rows); add a primary key on the source or set `primary_key` in `[[destination.tables]]`"
            ));
            Vec::new()
        }
        None => source_key,
    };
    let mut key_positions = Vec::new();
    for c in &primary_key {
        match find(c) {
            Some(i) => key_positions.push(t.copied[i]),
            None => problems.push(format!(
                "{name}: primary key column `{c}` is not a copied column of the table"
            )),
        }
    }
    let in_pk = |c: &str| primary_key.iter().any(|p| p.eq_ignore_ascii_case(c));
    let distribution = match settings.map(|s| s.table_type) {
        Some(TableType::Dimension) => None,
        _ => Some(
            settings
                .and_then(|s| s.distribution_key.clone())
                .unwrap_or_else(|| primary_key.clone()),
        ),
    };
    for c in distribution.iter().flatten() {
        if find(c).is_none() {
            problems.push(format!(
                "{name}: distribution key column `{c}` is not a copied column of the table"
            ));
        } else if !in_pk(c) {
            problems.push(format!(
                "{name}: the primary key ({}) must contain the distribution key column `{c}` (ADB requires it); add it to `primary_key` or change `distribution_key`",
                primary_key.join(", ")
            ));
        }
    }
    if let Some(p) = settings.and_then(|s| s.partition.as_ref()) {
        match find(&p.column) {
            None => problems.push(format!(
                "{name}: partition key column `{}` is not a copied column of the table",
                p.column
            )),
            Some(i) => {
                if !in_pk(&p.column) {
                    problems.push(format!(
                        "{name}: the primary key ({}) must contain the partition key `{}` (ADB requires it); add it to `primary_key`",
                        primary_key.join(", "),
                        p.column
                    ));
                }
                let kind = t.copied_columns().nth(i).map(|c| c.kind);
                let temporal = matches!(
                    kind,
                    Some(ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp)
                );
                match &p.rule {
                    PartitionRule::DateFormat(f) if !temporal => problems.push(format!(
                        "{name}: `partition_rule` {f:?} needs a DATE, DATETIME or TIMESTAMP column; `{}` is not one (use \"value\")",
                        p.column
                    )),
                    PartitionRule::FromUnixtime(_) if !kind.is_some_and(ColumnKind::is_integer) => {
                        problems.push(format!(
                            "{name}: FROM_UNIXTIME partitioning needs an integer column; `{}` is not one",
                            p.column
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Layout {
        columns,
        primary_key,
        distribution,
        settings: settings.cloned(),
        key_positions,
    })
}

/// The layout an ADB source gives `t` (its table type, distribution and partition),
/// as settings; `None` for other sources.
fn source_settings(t: &TablePlan) -> Option<TableSettings> {
    use crate::source::adb::ddl::{Distribution, PartitionExpr};
    let adb = t.source.adb.as_ref()?;
    // Source column names → destination names (renames in [[objects]]).
    let renamed = |c: &str| t.columns.get(c).cloned().unwrap_or_else(|| c.to_string());
    let (table_type, distribution_key) = match &adb.distribution {
        Some(Distribution::Broadcast) => (TableType::Dimension, None),
        Some(Distribution::Hash(cols)) => (
            TableType::Fact,
            Some(cols.iter().map(|c| renamed(c)).collect()),
        ),
        None => (TableType::Fact, None),
    };
    let partition = adb.partition.as_ref().map(|(expr, lifecycle)| Partition {
        column: renamed(expr.column()),
        rule: match expr {
            PartitionExpr::Value(_) => PartitionRule::Value,
            PartitionExpr::DateFormat(_, f) => PartitionRule::DateFormat(f.clone()),
            PartitionExpr::FromUnixtime(_, f) => PartitionRule::FromUnixtime(f.clone()),
        },
        lifecycle: lifecycle.unwrap_or(0),
    });
    Some(TableSettings {
        database: t.target.database.clone(),
        table: t.target.table.clone(),
        table_type,
        primary_key: None,
        distribution_key,
        partition,
        merge: false,
    })
}

/// ADB's `CREATE TABLE` for a layout.
pub fn create_table(t: &TablePlan, l: &Layout) -> String {
    let q = |cols: &[String]| {
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (\n", t.target.quoted());
    for ((name, m), c) in l.columns.iter().zip(t.copied_columns()) {
        let in_pk = l.primary_key.iter().any(|p| p.eq_ignore_ascii_case(name));
        sql.push_str(&format!("  {} {}", quote_ident(name), m.adb_type));
        if in_pk || (!c.nullable && !m.force_nullable) {
            sql.push_str(" NOT NULL");
        } else {
            sql.push_str(" NULL");
        }
        sql.push_str(",\n");
    }
    sql.push_str(&format!("  PRIMARY KEY ({})\n)", q(&l.primary_key)));
    match &l.distribution {
        Some(d) => sql.push_str(&format!(" DISTRIBUTED BY HASH({})", q(d))),
        None => sql.push_str(" DISTRIBUTED BY BROADCAST"),
    }
    if let Some(p) = l.settings.as_ref().and_then(|s| s.partition.as_ref()) {
        let col = quote_ident(&p.column);
        let value = match &p.rule {
            PartitionRule::Value => col,
            PartitionRule::DateFormat(f) => format!("DATE_FORMAT({col}, {})", quote_str(f)),
            PartitionRule::FromUnixtime(f) => format!("FROM_UNIXTIME({col}, {})", quote_str(f)),
        };
        sql.push_str(&format!(" PARTITION BY VALUE({value})"));
        if p.lifecycle > 0 {
            sql.push_str(&format!(" LIFECYCLE {}", p.lifecycle));
        }
    }
    sql
}

/// Per source column position: the conversion its values go through.
pub fn conversions(t: &TablePlan, l: &Layout) -> Vec<Convert> {
    let mut out = vec![Convert::Keep; t.def().columns.len()];
    for (&i, (_, m)) in t.copied.iter().zip(&l.columns) {
        out[i] = m.convert.clone();
    }
    out
}

/// Every planned table as ADB holds it ([`for_adb`]) with its layout and the value of
/// its [`DATA_SOURCE`] column; the first problems found fail.
pub fn layouts(
    source: &Endpoint,
    settings: &[TableSettings],
    tables: &[TablePlan],
) -> Result<Vec<(TablePlan, Layout, Option<Value>)>> {
    let problems = merge_problems(tables, settings);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let mut src = connect_raw(source, Side::Source)?;
    let mut out = Vec::new();
    for t in tables {
        let ai = auto_increment(&mut src, t)?;
        let (p, value) = for_adb(t, settings);
        match layout(&p, settings_for(settings, t), &ai) {
            Ok(l) => out.push((p, l, value)),
            Err(p) => anyhow::bail!("{}", p.join("; ")),
        }
    }
    Ok(out)
}
