//! AnalyticDB's binary logs: one per table, merged into one change stream.
//!
//! ADB logs each table on its own (`ALTER TABLE t BINLOG=true`), with its own files and
//! positions (`SHOW MASTER STATUS FOR t`, `SHOW BINARY LOGS FOR t`). Each selected table
//! is read by its own replica connection ([`crate::source::binlog::stream::read`], from
//! that table's file and offset); one merger hands their transactions to the task in the
//! order they arrive, each carrying the per-table [`Position`] reached after it: every
//! table at the end of its last transaction handed over. A checkpoint at any transaction
//! is therefore exact for every table, and a restart resumes each table where it was.
//! ADB has no transactions across tables, so no order between tables is lost.
//!
//! How a subscriber asks ADB for one table's log is not publicly documented; Tidemark
//! asks for the table's file (from `SHOW MASTER STATUS FOR t`) with `COM_BINLOG_DUMP`,
//! files being per table. docs/standins.md says what the stand-in assumes likewise.

use crate::source::binlog::stream::{self, Item, Source};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Select, Sender};
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tidemark_core::{Position, TableName};

/// One table's reader thread: its `db.table`, its items, its end.
type TableReader = (String, Receiver<Item>, std::thread::JoinHandle<Result<()>>);

/// `table`'s binlog position now (`SHOW MASTER STATUS FOR db.t`).
pub fn table_position(c: &mut mysql::Conn, table: &TableName) -> Result<Position> {
    let row: Option<mysql::Row> = c
        .query_first(format!("SHOW MASTER STATUS FOR {}", table.quoted()))
        .map_err(|e| match &e {
            mysql::Error::MySqlError(m) if m.message.to_ascii_lowercase().contains("binlog") => {
                anyhow!(
                    "{table}: {} — turn its binary log on: ALTER TABLE {} BINLOG=true",
                    m.message,
                    table.quoted()
                )
            }
            _ => anyhow::Error::new(e).context(format!(
                "reading {table}'s binlog position (SHOW MASTER STATUS FOR)"
            )),
        })?;
    let row = row.ok_or_else(|| {
        anyhow!("{table} has no binary log position (SHOW MASTER STATUS FOR returned nothing): ALTER TABLE {} BINLOG=true", table.quoted())
    })?;
    let file: String = row
        .get_opt(0)
        .and_then(|r| r.ok())
        .ok_or_else(|| anyhow!("SHOW MASTER STATUS FOR {table} returned no file"))?;
    let offset: u64 = row
        .get_opt(1)
        .and_then(|r| r.ok())
        .ok_or_else(|| anyhow!("SHOW MASTER STATUS FOR {table} returned no position"))?;
    Ok(Position {
        file,
        offset,
        ..Default::default()
    })
}

/// Every table's position now, as one per-table position.
pub fn current_position(c: &mut mysql::Conn, tables: &[TableName]) -> Result<Position> {
    let mut all = BTreeMap::new();
    for t in tables {
        all.insert(t.to_string(), table_position(c, t)?);
    }
    Ok(Position {
        tables: all,
        ..Default::default()
    })
}

/// The binlog files `table` still has (`SHOW BINARY LOGS FOR`).
pub fn table_files(c: &mut mysql::Conn, table: &TableName) -> Result<Vec<String>> {
    c.query_map(
        format!("SHOW BINARY LOGS FOR {}", table.quoted()),
        |row: mysql::Row| row.get::<String, _>(0).unwrap_or_default(),
    )
    .with_context(|| format!("listing {table}'s binlog files (SHOW BINARY LOGS FOR)"))
}

/// Reads every table in `tables` from its entry of `start` until `stop` is set or one
/// table's stream fails (its error ends them all).
pub fn read(
    src: &Source<'_>,
    tables: &[TableName],
    start: Position,
    stop: &AtomicBool,
    out: Sender<Item>,
) -> Result<()> {
    let Some(endpoint) = src.endpoints.first() else {
        bail!("internal: no source endpoint");
    };
    let own_stop = Arc::new(AtomicBool::new(false));
    let mut readers: Vec<TableReader> = Vec::new();
    let mut reached = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        let name = t.to_string();
        let at = start.tables.get(&name).cloned().ok_or_else(|| {
            anyhow!("no binlog position was recorded for {name} when the task started (was it added to the task later?): rerun the task with full migration for it")
        })?;
        reached.insert(name.clone(), at.clone());
        let (tx, rx) = bounded::<Item>(64);
        let (ep, stop) = (endpoint.clone(), own_stop.clone());
        let databases: HashSet<String> = [t.database.clone()].into();
        // One replica id per connection: a server drops an older connection that
        // registers with the id of a newer one.
        let server_id = src.server_id.wrapping_add(i as u32).max(1);
        let retry_window = src.retry_window;
        let handle = std::thread::Builder::new()
            .name(format!("binlog {name}"))
            .spawn(move || {
                let endpoints = [ep];
                let source = Source {
                    endpoints: &endpoints,
                    identity: None,
                    databases: &databases,
                    server_id,
                    retry_window,
                };
                stream::read(&source, at, &stop, tx)
            })
            .context("starting a binlog reader thread")?;
        readers.push((name, rx, handle));
    }
    let result = merge(&mut readers, &mut reached, stop, &out);
    own_stop.store(true, Ordering::Relaxed);
    drop(out);
    // Not joined: a reader blocked on a quiet table notices the stop at its next
    // heartbeat. Its channel is dropped here, so it cannot block on a send meanwhile.
    drop(readers);
    result
}

/// Hands over each table's items, tagged with the per-table position after them.
fn merge(
    readers: &mut Vec<TableReader>,
    reached: &mut BTreeMap<String, Position>,
    stop: &AtomicBool,
    out: &Sender<Item>,
) -> Result<()> {
    let closed = || anyhow!("the change applier stopped");
    let mut connected = false;
    while !readers.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut sel = Select::new();
        for (_, rx, _) in readers.iter() {
            sel.recv(rx);
        }
        let Ok(op) = sel.select_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let i = op.index();
        match op.recv(&readers[i].1) {
            Ok(Item::Txn(mut txn)) => {
                let own = std::mem::take(&mut txn.end);
                reached.insert(readers[i].0.clone(), own.clone());
                txn.end = Position {
                    file: own.file,
                    offset: own.offset,
                    gtid: None,
                    tables: reached.clone(),
                };
                out.send(Item::Txn(txn)).map_err(|_| closed())?;
            }
            Ok(Item::Idle { position }) => {
                reached.insert(readers[i].0.clone(), position.clone());
                let merged = Position {
                    file: position.file,
                    offset: position.offset,
                    gtid: None,
                    tables: reached.clone(),
                };
                out.send(Item::Idle { position: merged })
                    .map_err(|_| closed())?;
            }
            Ok(connected_item @ Item::Connected { .. }) => {
                if !std::mem::replace(&mut connected, true) {
                    out.send(connected_item).map_err(|_| closed())?;
                }
            }
            Err(_) => {
                // That table's reader ended: with an error, which ends the stream.
                let (name, _, handle) = readers.remove(i);
                match handle.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e.context(format!("reading {name}'s binlog"))),
                    Err(_) => bail!("the binlog reader of {name} panicked"),
                }
            }
        }
    }
    Ok(())
}
