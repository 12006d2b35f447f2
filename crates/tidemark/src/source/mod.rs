//! Readers: everything that takes data out of a source.
//!
//! * [`catalog`]: what exists on the source (databases, tables, columns, keys, views,
//!   triggers, routines), read from `information_schema`.
//! * [`snapshot`]: the full copy's reader: splits tables into key-range chunks and streams
//!   each chunk's rows as typed values.
//! * [`binlog`]: the incremental reader: binlog events decoded into typed rows.
//! * [`adb`]: an AnalyticDB for MySQL source: ADB's definitions, one binlog per table.
//!
//! [`current_position`] and [`read_changes`] are where the source's kind decides how
//! positions and changes are read.

pub mod adb;
pub mod binlog;
pub mod catalog;
pub mod snapshot;

use crate::config::{SourceKind, Task};
use anyhow::Result;
use binlog::stream::{Item, Source};
use crossbeam_channel::Sender;
use std::sync::atomic::AtomicBool;
use tidemark_core::{Position, TableName};

/// The source's binlog position now: its one binlog's (MySQL), or each of `tables`'
/// own (AnalyticDB).
pub fn current_position(
    task: &Task,
    tables: &[TableName],
    c: &mut mysql::Conn,
) -> Result<Position> {
    match task.source_kind {
        SourceKind::Mysql => binlog::client::current_position(c),
        SourceKind::AdbMysql => adb::binlog::current_position(c, tables),
    }
}

/// Reads the source's changes to `tables` from `start` until `stop` is set or the
/// stream fails.
pub fn read_changes(
    kind: SourceKind,
    src: &Source<'_>,
    tables: &[TableName],
    start: Position,
    stop: &AtomicBool,
    out: Sender<Item>,
) -> Result<()> {
    match kind {
        SourceKind::Mysql => binlog::stream::read(src, start, stop, out),
        SourceKind::AdbMysql => adb::binlog::read(src, tables, start, stop, out),
    }
}

/// One table's definition, or `None` when it is gone: `information_schema`'s, with an
/// AnalyticDB source's own definition laid over it.
pub fn read_table(
    kind: SourceKind,
    c: &mut mysql::Conn,
    name: &TableName,
) -> Result<Option<catalog::TableInfo>> {
    let mut info = catalog::read_table(c, name)?;
    if let (SourceKind::AdbMysql, Some(t)) = (kind, info.as_mut()) {
        adb::refine_table(c, t)?;
    }
    Ok(info)
}
