//! The binary log reader: where a binlog event is decoded.
//!
//! - [`event`]: one event's bytes (or the replication driver's parse of them) → a typed
//!   [`event::Event`]. MySQL's events are parsed with `mysql_common`'s binlog structures;
//!   MariaDB's own events (GTID, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, compressed
//!   query and row events) in [`mariadb`]. Checksums are verified here.
//! - [`value`]: a column value as the binlog stores it → the same [`tidemark_core::Value`]
//!   the snapshot reader produces for that row.
//! - [`file`]: reading a binlog file from disk, with clear errors for damaged files.
//! - [`client`]: reading the binlog from a live source as a replica.
//! - [`stream`]: events grouped into whole source transactions, with reconnects and
//!   switchover to a new primary by GTID ([`gtid`]).

pub mod client;
pub mod event;
pub mod file;
pub mod gtid;
pub mod mariadb;
pub mod stream;
pub mod value;

pub use event::{Body, Decoder, Event, JsonChange, RowImage, RowsKind, TableMap};
