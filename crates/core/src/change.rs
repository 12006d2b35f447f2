//! The change stream: what readers hand to writers.
//!
//! A snapshot reader produces [`Change::Insert`] rows marked as snapshot data; the binlog
//! reader produces every variant. Writers of every kind (MySQL, message queues) consume
//! the same type; positions travel with the changes so that a writer can report what it
//! has durably applied.

use crate::schema::TableName;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// One row: values in the order of the table's columns as the reader selected them.
pub type Row = Vec<Value>;

/// A point in the source's history, as precise as the source allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Binary log file name, e.g. `mysql-bin.000042`.
    pub file: String,
    /// Byte offset of the next event in `file`.
    pub offset: u64,
    /// GTID set (MySQL `uuid:1-5`) or list (MariaDB `0-1-100`), when the source has one.
    pub gtid: Option<String>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)?;
        if let Some(g) = &self.gtid {
            write!(f, " (gtid {g})")?;
        }
        Ok(())
    }
}

/// One change to the destination.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new row; `snapshot` is true for rows copied by the full migration.
    Insert {
        table: Arc<TableName>,
        row: Row,
        snapshot: bool,
    },
    Update {
        table: Arc<TableName>,
        before: Row,
        after: Row,
    },
    Delete {
        table: Arc<TableName>,
        before: Row,
    },
    /// A DDL statement, applied as a barrier: every change before it is applied first.
    Ddl {
        database: String,
        statement: String,
    },
    /// End of a source transaction; everything before it may be checkpointed at `position`.
    Commit {
        position: Position,
    },
}
