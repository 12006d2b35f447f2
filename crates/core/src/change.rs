//! The change stream: what readers hand to writers.
//!
//! A snapshot reader produces [`Change::Insert`] rows marked as snapshot data; the binlog
//! reader produces every variant. Writers of every kind (MySQL, message queues) consume
//! the same type; positions travel with the changes so that a writer can report what it
//! has durably applied.

use crate::schema::TableName;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One row: values in the order of the table's columns as the reader selected them.
pub type Row = Vec<Value>;

/// A point in the source's history, as precise as the source allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Binary log file name, e.g. `mysql-bin.000042`.
    pub file: String,
    /// Byte offset of the next event in `file`.
    pub offset: u64,
    /// GTID set (MySQL `uuid:1-5`) or list (MariaDB `0-1-100`), when the source has one.
    pub gtid: Option<String>,
    /// A source that logs each table on its own (AnalyticDB's per-table binlogs): the
    /// position reached in every table's log (`db.table` → file and offset), merged
    /// into one task. `file` and `offset` are then those of the table whose change
    /// this position follows, for messages that name a binlog position.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, Position>,
}

impl Position {
    /// Whether `self` is at or after `other`: by file and offset, or, for per-table
    /// positions, in every table `other` names (a partial order: each table's log is
    /// ordered, tables are not ordered against each other).
    pub fn reached(&self, other: &Position) -> bool {
        if self.tables.is_empty() && other.tables.is_empty() {
            return (self.file.as_str(), self.offset) >= (other.file.as_str(), other.offset);
        }
        other.tables.iter().all(|(table, theirs)| {
            self.tables
                .get(table)
                .is_some_and(|ours| ours.reached(theirs))
        })
    }

    /// Whether `self` is strictly after `other`: at or after it, and past it somewhere.
    pub fn beyond(&self, other: &Position) -> bool {
        if self.tables.is_empty() && other.tables.is_empty() {
            return (self.file.as_str(), self.offset) > (other.file.as_str(), other.offset);
        }
        self.reached(other)
            && other.tables.iter().any(|(table, theirs)| {
                self.tables
                    .get(table)
                    .is_some_and(|ours| ours.beyond(theirs))
            })
    }

    /// Where `table`'s own log is: its entry of a per-table position, else `self`.
    pub fn of_table(&self, table: &str) -> Option<&Position> {
        if self.tables.is_empty() {
            Some(self)
        } else {
            self.tables.get(table)
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.tables.is_empty() {
            // Every table would make a line of thousands; the first few tell the story.
            write!(f, "{} per-table binlog position(s):", self.tables.len())?;
            for (i, (t, p)) in self.tables.iter().enumerate() {
                if i == 3 {
                    return write!(f, " …");
                }
                write!(f, " {t} {}:{}", p.file, p.offset)?;
            }
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::Position;

    fn at(file: &str, offset: u64) -> Position {
        Position {
            file: file.into(),
            offset,
            ..Default::default()
        }
    }

    fn tables(list: &[(&str, Position)]) -> Position {
        Position {
            tables: list
                .iter()
                .map(|(t, p)| (t.to_string(), p.clone()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn one_log_orders_by_file_then_offset() {
        assert!(at("b.000002", 4).reached(&at("b.000001", 900)));
        assert!(at("b.000001", 900).reached(&at("b.000001", 900)));
        assert!(!at("b.000001", 900).beyond(&at("b.000001", 900)));
        assert!(at("b.000001", 901).beyond(&at("b.000001", 900)));
    }

    #[test]
    fn per_table_positions_are_ordered_table_by_table() {
        let start = tables(&[("d.a", at("a.1", 100)), ("d.b", at("b.1", 100))]);
        let a_moved = tables(&[("d.a", at("a.1", 200)), ("d.b", at("b.1", 100))]);
        let b_behind = tables(&[("d.a", at("a.1", 300)), ("d.b", at("b.1", 50))]);
        assert!(a_moved.reached(&start) && a_moved.beyond(&start));
        assert!(!start.beyond(&start) && start.reached(&start));
        // One table behind: not reached, whatever the other tables did.
        assert!(!b_behind.reached(&start));
        // A table the later position lacks has not been reached.
        assert!(!tables(&[("d.a", at("a.1", 900))]).reached(&start));
        assert_eq!(a_moved.of_table("d.a"), Some(&at("a.1", 200)));
        assert!(a_moved
            .to_string()
            .starts_with("2 per-table binlog position(s)"));
        let json = serde_json::to_string(&a_moved).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), a_moved);
        // A one-log position's JSON is unchanged (state stores written before).
        assert!(!serde_json::to_string(&at("x", 4))
            .unwrap()
            .contains("tables"));
    }
}
