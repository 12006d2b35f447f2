//! Table and column definitions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A table's database and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub database: String,
    pub table: String,
}

impl TableName {
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            database: database.into(),
            table: table.into(),
        }
    }

    /// `` `db`.`table` `` for SQL.
    pub fn quoted(&self) -> String {
        crate::sql::qualified(&self.database, &self.table)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// How a column's values are represented, derived from its SQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    Int {
        unsigned: bool,
    },
    Float,
    Double,
    Decimal,
    /// CHAR, VARCHAR, TEXT types: bytes in the column's character set.
    Text,
    /// BINARY, VARBINARY, BLOB types.
    Binary,
    Enum,
    Set,
    Bit,
    Json,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Geometry,
    /// MySQL 9 VECTOR and anything newer: carried as bytes.
    Other,
}

impl ColumnKind {
    /// Maps `information_schema.COLUMNS.DATA_TYPE` (and the `unsigned` flag from
    /// `COLUMN_TYPE`) to a kind.
    pub fn from_data_type(data_type: &str, column_type: &str) -> ColumnKind {
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                ColumnKind::Int { unsigned }
            }
            "float" => ColumnKind::Float,
            "double" | "real" | "double precision" => ColumnKind::Double,
            "decimal" | "numeric" => ColumnKind::Decimal,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                ColumnKind::Text
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Binary
            }
            "enum" => ColumnKind::Enum,
            "set" => ColumnKind::Set,
            "bit" => ColumnKind::Bit,
            "json" => ColumnKind::Json,
            "date" => ColumnKind::Date,
            "datetime" => ColumnKind::DateTime,
            "timestamp" => ColumnKind::Timestamp,
            "time" => ColumnKind::Time,
            "year" => ColumnKind::Year,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnKind::Geometry,
            _ => ColumnKind::Other,
        }
    }

    /// Integer kinds that a key range can be split on arithmetically.
    pub fn is_integer(self) -> bool {
        matches!(self, ColumnKind::Int { .. })
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    /// Full SQL type, e.g. `decimal(65,30) unsigned`.
    pub column_type: String,
    pub kind: ColumnKind,
    pub nullable: bool,
    /// Virtual or stored generated columns are computed by the destination, never written.
    pub generated: bool,
    /// Hidden from `SELECT *` (MariaDB INVISIBLE, MySQL 8.0.23+ INVISIBLE).
    pub invisible: bool,
    /// Character set of text columns (`None` for other kinds).
    pub charset: Option<String>,
}

/// A table as a reader sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: TableName,
    pub columns: Vec<ColumnDef>,
    /// Positions in `columns` of the PRIMARY KEY, or else of the first UNIQUE key whose
    /// columns are all NOT NULL. `None`: rows cannot be identified by key.
    pub key: Option<Vec<usize>>,
    /// Name of the index `key` comes from (`PRIMARY` for the primary key).
    pub key_name: Option<String>,
}

impl TableDef {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}
