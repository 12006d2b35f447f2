//! Tidemark's shared data model, used by every reader and writer.
//!
//! * [`value`]: one typed value for every MySQL column type. A value read by the snapshot
//!   reader and the same value decoded from the binlog compare equal.
//! * [`schema`]: table and column definitions as the readers see them.
//! * [`change`]: what flows from a reader to a writer (the change stream).
//! * [`sql`]: quoting of identifiers and rendering of values as SQL literals.
//! * [`hash`]: a hash that is stable across runs and machines.
//!
//! This crate does no I/O; it is the vocabulary the other crates share.

pub mod change;
pub mod hash;
pub mod schema;
pub mod sql;
pub mod value;

pub use change::{Change, Position, Row};
pub use schema::{ColumnDef, ColumnKind, TableDef, TableName};
pub use value::{DateTime, Time, Value};
