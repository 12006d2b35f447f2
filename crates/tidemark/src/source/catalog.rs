//! Reads what exists on a MySQL/MariaDB server from `information_schema`.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use std::collections::BTreeMap;
use tidemark_core::{ColumnDef, ColumnKind, TableDef, TableName};

/// One index: whether it is unique, and its columns with their prefix lengths.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Index {
    pub unique: bool,
    pub parts: Vec<(String, Option<u64>)>,
}

/// One base table with its size estimates.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub def: TableDef,
    pub rows: u64,
    pub bytes: u64,
    /// Every index by name.
    pub indexes: BTreeMap<String, Index>,
    /// An AnalyticDB source's own definition of the table (its types, distribution and
    /// partition), for a destination that keeps them.
    pub adb: Option<crate::source::adb::ddl::AdbTable>,
}

/// One database and everything in it.
#[derive(Clone, Debug, Default)]
pub struct DatabaseInfo {
    pub name: String,
    pub charset: String,
    pub collation: String,
    pub tables: Vec<TableInfo>,
    pub views: Vec<String>,
    /// (trigger, table)
    pub triggers: Vec<(String, String)>,
    /// (routine, "PROCEDURE" | "FUNCTION")
    pub routines: Vec<(String, String)>,
    /// (table, TABLE_TYPE) of tables this version does not migrate (system-versioned
    /// tables, sequences).
    pub unsupported: Vec<(String, String)>,
}

impl DatabaseInfo {
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.def.name.table == name)
    }
}

/// Reads one table, or `None` when it (or its database) does not exist.
///
/// `information_schema` is read in several statements, none of them in a snapshot, so a
/// table renamed at that moment (what online schema change tools do) can be seen
/// without its columns; every table has at least one, so such a read is taken again.
pub fn read_table(c: &mut Conn, name: &TableName) -> Result<Option<TableInfo>> {
    for _ in 0..50 {
        let table = read(c, &name.database, Some(&name.table))?.and_then(|d| {
            d.tables
                .into_iter()
                .find(|t| t.def.name.table == name.table)
        });
        match table {
            Some(t) if t.def.columns.is_empty() => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            other => return Ok(other),
        }
    }
    anyhow::bail!("{name}: its definition kept changing while it was read (a schema change in progress on the source?); run the task again")
}

/// Reads one database, or `None` when it does not exist.
pub fn read_database(c: &mut Conn, db: &str) -> Result<Option<DatabaseInfo>> {
    read(c, db, None)
}

/// Reads database `db`, all of it or only `table` (a table's read must not cost a read
/// of every table beside it: a DDL on one of 10 000 tables reads one).
fn read(c: &mut Conn, db: &str, table: Option<&str>) -> Result<Option<DatabaseInfo>> {
    let row: Option<(String, String)> = c
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .with_context(|| format!("reading database {db:?}"))?;
    let Some((charset, collation)) = row else {
        return Ok(None);
    };
    let mut info = DatabaseInfo {
        name: db.to_string(),
        charset,
        collation,
        ..Default::default()
    };

    // A separate statement for one table (not `? IS NULL OR …`): information_schema
    // opens only the named table's definition when TABLE_NAME is compared with a value.
    let (only, params): (&str, Vec<mysql::Value>) = match table {
        Some(t) => (" AND TABLE_NAME = ?", vec![db.into(), t.into()]),
        None => ("", vec![db.into()]),
    };
    type TableRow = (String, String, Option<u64>, Option<u64>, Option<u64>);
    type ColumnRow = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    type StatRow = (String, String, u32, Option<String>, Option<u64>);
    let tables: Vec<TableRow> = c.exec(
        format!(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? {only} ORDER BY TABLE_NAME"
        ),
        &params,
    )?;
    let columns: Vec<ColumnRow> = c.exec(
        format!(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA, CHARACTER_SET_NAME \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? {only} \
         ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ),
        &params,
    )?;
    let stats: Vec<StatRow> = c.exec(
        format!(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? {only} ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ),
        &params,
    )?;
    let mut cols_by_table: BTreeMap<String, Vec<ColumnDef>> = BTreeMap::new();
    for (table, name, data_type, column_type, nullable, extra, charset) in columns {
        let extra_l = extra.to_ascii_lowercase();
        let kind = ColumnKind::from_data_type(&data_type, &column_type);
        cols_by_table.entry(table).or_default().push(ColumnDef {
            name,
            column_type,
            kind,
            nullable: nullable == "YES",
            generated: [
                "virtual generated",
                "stored generated",
                "persistent generated",
            ]
            .iter()
            .any(|g| extra_l.contains(g)),
            invisible: extra_l.contains("invisible"),
            charset,
        });
    }
    let mut idx_by_table: BTreeMap<String, BTreeMap<String, Index>> = BTreeMap::new();
    for (table, index, non_unique, column, sub_part) in stats {
        let entry = idx_by_table
            .entry(table)
            .or_default()
            .entry(index)
            .or_insert_with(|| Index {
                unique: non_unique == 0,
                parts: Vec::new(),
            });
        // Functional index parts (MySQL 8) have no column: they cannot serve as a row key.
        entry.parts.push((column.unwrap_or_default(), sub_part));
    }
    for (name, kind, rows, data, index) in tables {
        match kind.as_str() {
            "VIEW" => info.views.push(name),
            "BASE TABLE" => {
                let columns = cols_by_table.remove(&name).unwrap_or_default();
                let indexes = idx_by_table.remove(&name).unwrap_or_default();
                let (key, key_name) = choose_key(&columns, &indexes);
                info.tables.push(TableInfo {
                    def: TableDef {
                        name: TableName::new(db, &name),
                        columns,
                        key,
                        key_name,
                    },
                    rows: rows.unwrap_or(0),
                    bytes: data.unwrap_or(0) + index.unwrap_or(0),
                    indexes,
                    adb: None,
                });
            }
            // SYSTEM VERSIONED and SEQUENCE tables: not migrated yet; the precheck says so.
            _ => info.unsupported.push((name, kind)),
        }
    }
    if table.is_some() {
        return Ok(Some(info));
    }
    info.triggers = c.exec(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME",
        (db,),
    )?;
    info.routines = c.exec(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
        (db,),
    )?;
    Ok(Some(info))
}

/// The PRIMARY KEY, or else the first UNIQUE key over NOT NULL whole columns.
fn choose_key(
    columns: &[ColumnDef],
    indexes: &BTreeMap<String, Index>,
) -> (Option<Vec<usize>>, Option<String>) {
    let positions = |parts: &[(String, Option<u64>)]| -> Option<Vec<usize>> {
        parts
            .iter()
            .map(|(col, prefix)| {
                if prefix.is_some() {
                    return None;
                }
                columns.iter().position(|c| &c.name == col && !c.nullable)
            })
            .collect()
    };
    if let Some(primary) = indexes.get("PRIMARY") {
        if let Some(p) = positions(&primary.parts) {
            return (Some(p), Some("PRIMARY".into()));
        }
    }
    for (name, index) in indexes {
        if index.unique {
            if let Some(p) = positions(&index.parts) {
                return (Some(p), Some(name.clone()));
            }
        }
    }
    (None, None)
}
