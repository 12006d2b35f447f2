//! Readers: everything that takes data out of a source.
//!
//! * [`catalog`]: what exists on the source (databases, tables, columns, keys, views,
//!   triggers, routines), read from `information_schema`.
//! * [`snapshot`]: the full copy's reader: splits tables into key-range chunks and streams
//!   each chunk's rows as typed values.
//! * [`binlog`]: the incremental reader: binlog events decoded into typed rows.

pub mod binlog;
pub mod catalog;
pub mod snapshot;
