//! The binlog as a stream of whole source transactions.
//!
//! A reader thread groups decoded events into [`Txn`]s: the row events between BEGIN (or
//! a GTID) and XID/COMMIT, or one DDL statement. Only whole transactions leave it, so a
//! consumer can checkpoint at any transaction's end position, and a reconnect after a
//! lost connection starts again at the end of the last transaction handed over.

use super::client::{Reader, StartAt};
use super::event::{Body, RowImage, RowsKind, TableMap};
use crate::config::Endpoint;
use crate::connect::{transient, Transient};
use anyhow::{anyhow, bail, Result};
use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::Position;

/// Rows of one rows event.
#[derive(Clone, Debug)]
pub struct RowsBlock {
    pub kind: RowsKind,
    pub table: Arc<TableMap>,
    pub rows: Vec<RowImage>,
}

/// A DDL statement and the database it ran in.
#[derive(Clone, Debug)]
pub struct Ddl {
    pub database: String,
    pub statement: String,
}

/// One committed source transaction, or one DDL statement.
#[derive(Clone, Debug)]
pub struct Txn {
    pub rows: Vec<RowsBlock>,
    pub ddl: Option<Ddl>,
    /// The position right after the transaction: where to resume once it is applied.
    pub end: Position,
    pub gtid: Option<String>,
    /// The source's commit time (seconds since the epoch).
    pub timestamp: u32,
}

/// What the reader thread hands over.
#[derive(Debug)]
pub enum Item {
    Txn(Txn),
    /// The source is idle (a heartbeat) and everything up to `position` was read.
    Idle {
        position: Position,
    },
}

/// Reads from `start` until `stop` is set or an error ends the stream; reconnects inside
/// the connection retry window. Rows of databases not in `databases` are not decoded.
pub fn read(
    ep: &Endpoint,
    start: Position,
    databases: &HashSet<String>,
    server_id: u32,
    retry_window: Duration,
    stop: &AtomicBool,
    out: Sender<Item>,
) -> Result<()> {
    let mut resume = start;
    let mut failing_since: Option<Instant> = None;
    loop {
        // A task started at a GTID has no file until the source names one.
        let at = match (&resume.gtid, resume.file.is_empty()) {
            (Some(g), true) if g.contains(':') => StartAt::MysqlGtid(g.clone()),
            (Some(g), true) => StartAt::MariadbGtid(g.clone()),
            _ => StartAt::File {
                file: resume.file.clone(),
                position: resume.offset,
            },
        };
        let result = Reader::open(ep, &at, server_id).and_then(|mut reader| {
            reader.decoder().only_databases(databases.clone());
            read_from(reader, &mut resume, stop, &out, &mut failing_since)
        });
        let err = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let lost = err
            .chain()
            .find_map(|c| c.downcast_ref::<mysql::Error>())
            .and_then(transient)
            == Some(Transient::Connection)
            || format!("{err:#}").contains("cannot connect");
        let since = *failing_since.get_or_insert_with(Instant::now);
        if !lost || since.elapsed() > retry_window || stop.load(Ordering::Relaxed) {
            return Err(err);
        }
        tracing::warn!("binlog: connection lost ({err:#}); reconnecting at {resume}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn read_from(
    mut reader: Reader,
    resume: &mut Position,
    stop: &AtomicBool,
    out: &Sender<Item>,
    failing_since: &mut Option<Instant>,
) -> Result<()> {
    let mut txn: Option<Txn> = None;
    let mut gtid: Option<String> = None;
    let closed = || anyhow!("the change applier stopped");
    while !stop.load(Ordering::Relaxed) {
        let Some((event, pos)) = reader.next_event()? else {
            bail!("the source ended the binlog dump (is another replica using server id?)");
        };
        *failing_since = None;
        match event.body {
            Body::Gtid { gtid: g, .. } => gtid = Some(g),
            Body::Query {
                database,
                statement,
            } => {
                let head = first_word(&statement);
                match head.as_str() {
                    "BEGIN" => {
                        txn = Some(Txn {
                            rows: Vec::new(),
                            ddl: None,
                            end: pos,
                            gtid: gtid.clone(),
                            timestamp: event.header.timestamp,
                        })
                    }
                    "COMMIT" => {
                        if let Some(mut t) = txn.take() {
                            t.end = pos.clone();
                            t.timestamp = event.header.timestamp;
                            *resume = pos;
                            out.send(Item::Txn(t)).map_err(|_| closed())?;
                        }
                    }
                    "ROLLBACK" if txn.is_some() && !statement.to_uppercase().contains(" TO ") => {
                        txn = None
                    }
                    // Savepoints inside a transaction leave no rows of their own.
                    "SAVEPOINT" | "ROLLBACK" | "RELEASE" if txn.is_some() => {}
                    "XA" => {}
                    _ if txn.is_some() => bail!(
                        "the source logged a statement inside a transaction instead of rows ({}): set binlog_format = ROW for every session on the source",
                        statement.chars().take(80).collect::<String>()
                    ),
                    _ => {
                        *resume = pos.clone();
                        let t = Txn {
                            rows: Vec::new(),
                            ddl: Some(Ddl {
                                database,
                                statement,
                            }),
                            end: pos,
                            gtid: gtid.take(),
                            timestamp: event.header.timestamp,
                        };
                        out.send(Item::Txn(t)).map_err(|_| closed())?;
                    }
                }
            }
            Body::Rows { kind, table, rows } => {
                let t = txn.get_or_insert_with(|| Txn {
                    rows: Vec::new(),
                    ddl: None,
                    end: pos.clone(),
                    gtid: gtid.clone(),
                    timestamp: event.header.timestamp,
                });
                t.rows.push(RowsBlock { kind, table, rows });
            }
            Body::Xid { .. } => {
                if let Some(mut t) = txn.take() {
                    t.end = pos.clone();
                    t.timestamp = event.header.timestamp;
                    *resume = pos;
                    out.send(Item::Txn(t)).map_err(|_| closed())?;
                }
            }
            Body::Heartbeat if txn.is_none() => {
                out.send(Item::Idle {
                    position: resume.clone(),
                })
                .map_err(|_| closed())?;
            }
            // Between transactions a rotation moves the resume point to the new file.
            Body::Rotate { .. } if txn.is_none() && pos.offset >= 4 => *resume = pos,
            _ => {}
        }
    }
    Ok(())
}

fn first_word(statement: &str) -> String {
    let s = statement.trim_start();
    let s = s.strip_prefix("/*").map_or(s, |rest| {
        rest.find("*/")
            .map_or(rest, |end| rest[end + 2..].trim_start())
    });
    s.split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::first_word;

    #[test]
    fn statement_heads() {
        assert_eq!(first_word("  begin"), "BEGIN");
        assert_eq!(first_word("/* x */ ALTER TABLE t"), "ALTER");
        assert_eq!(first_word("XA START 'x'"), "XA");
    }
}
