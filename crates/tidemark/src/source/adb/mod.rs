//! An AnalyticDB for MySQL 3.0 cluster as the source (`[source] type = "adb-mysql"`).
//!
//! ADB speaks MySQL's protocol and SQL for reads, so the full copy reads it like any
//! MySQL source (key-range chunks, [`crate::source::snapshot`]). What differs:
//!
//! * [`ddl`]: table definitions come from ADB's `SHOW CREATE TABLE` (its types, keys,
//!   distribution and partition), which [`refine`] lays over `information_schema`.
//! * [`binlog`]: changes come from one binary log per table, merged into one stream.
//! * [`precheck`]: engine version, `BINLOG=true` on each table, retention, tables keyed
//!   on `__adb_auto_id__`, column types Tidemark does not carry.

pub mod binlog;
pub mod ddl;
pub mod precheck;

use crate::source::catalog::{DatabaseInfo, TableInfo};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use tidemark_core::{ColumnKind, TableName};

/// `SHOW CREATE TABLE` of `table`, parsed.
pub fn show_create(c: &mut mysql::Conn, table: &TableName) -> Result<ddl::AdbTable> {
    let row: Option<(String, String)> = c
        .query_first(format!("SHOW CREATE TABLE {}", table.quoted()))
        .with_context(|| format!("reading {table}'s definition (SHOW CREATE TABLE)"))?;
    let (_, text) = row.with_context(|| format!("{table}: SHOW CREATE TABLE returned nothing"))?;
    ddl::parse(&text).with_context(|| format!("reading ADB's SHOW CREATE TABLE of {table}"))
}

/// Lays ADB's own definition over every table of `db` (read from `information_schema`):
/// its columns take ADB's type names, its key becomes the primary key ADB shows, and the
/// whole definition is kept in [`TableInfo::adb`](crate::source::catalog::TableInfo)
/// for a destination that keeps distribution and partition.
pub fn refine(c: &mut mysql::Conn, db: &mut DatabaseInfo) -> Result<()> {
    for t in &mut db.tables {
        refine_table(c, t)?;
    }
    Ok(())
}

/// [`refine`] for one table.
pub fn refine_table(c: &mut mysql::Conn, t: &mut TableInfo) -> Result<()> {
    let adb = show_create(c, &t.def.name)?;
    for col in &mut t.def.columns {
        let Some(shown) = adb.column(&col.name) else {
            continue;
        };
        // The rows arrive as the server stores them: its own kind wins where known.
        if col.kind == ColumnKind::Other {
            let base = shown.base().to_ascii_lowercase();
            col.kind = match base.as_str() {
                "boolean" | "bool" => ColumnKind::Int { unsigned: false },
                _ => ColumnKind::from_data_type(&base, &shown.ty),
            };
        }
        col.column_type = shown.ty.clone();
    }
    let key: Option<Vec<usize>> = adb
        .primary_key
        .iter()
        .map(|k| {
            t.def
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(k))
        })
        .collect();
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        for &i in &key {
            t.def.columns[i].nullable = false;
        }
        t.def.key = Some(key);
        t.def.key_name = Some("PRIMARY".into());
    }
    t.adb = Some(adb);
    Ok(())
}
