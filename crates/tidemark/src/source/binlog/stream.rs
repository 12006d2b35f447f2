//! The binlog as a stream of whole source transactions.
//!
//! A reader thread groups decoded events into [`Txn`]s: the row events between BEGIN (or
//! a GTID) and XID/COMMIT, or one DDL statement. Only whole transactions leave it, so a
//! consumer can checkpoint at any transaction's end position, and a reconnect after a
//! lost connection starts again at the end of the last transaction handed over.

use super::client::{Reader, StartAt};
use super::event::{Body, RowImage, RowsKind, TableMap};
use super::gtid::GtidState;
use crate::connect::{connect_raw, transient, Side, Transient};
use crate::endpoint::Endpoint;
use anyhow::{anyhow, bail, Result};
use crossbeam_channel::Sender;
use mysql::prelude::Queryable;
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
    pub event: EventInfo,
}

/// What the binlog says about one event beyond its data: what message formats that
/// name the event carry (Debezium's `source.pos`, `server_id`, `query`).
#[derive(Clone, Debug, Default)]
pub struct EventInfo {
    /// Where the event starts in its file (the transaction's file).
    pub offset: u64,
    /// The server that wrote it (the event header's).
    pub server_id: u32,
    /// The event header's time (seconds since the epoch).
    pub timestamp: u32,
    /// The statement that produced the rows, when the source logs it (MariaDB
    /// ANNOTATE_ROWS, MySQL ROWS_QUERY with `binlog_rows_query_log_events`).
    pub query: Option<Arc<str>>,
}

impl EventInfo {
    fn of(header: &super::event::Header, next: &Position, query: Option<Arc<str>>) -> EventInfo {
        EventInfo {
            offset: next.offset.saturating_sub(u64::from(header.size)),
            server_id: header.server_id,
            timestamp: header.timestamp,
            query,
        }
    }
}

/// A DDL statement and the database it ran in.
#[derive(Clone, Debug)]
pub struct Ddl {
    pub database: String,
    pub statement: String,
    /// The statement's QUERY event.
    pub event: EventInfo,
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
    /// When the reader had the whole transaction.
    pub received: Instant,
    /// Where the transaction's first event (BEGIN, or its GTID) starts in `end.file`.
    pub begin: u64,
    /// The session that ran it, from MySQL's BEGIN (MariaDB logs no BEGIN) or the
    /// DDL statement's QUERY event.
    pub thread: Option<u32>,
}

/// What the reader thread hands over.
#[derive(Debug)]
pub enum Item {
    Txn(Txn),
    /// The source is idle (a heartbeat) and everything up to `position` was read.
    Idle {
        position: Position,
    },
    /// Connected to a source server; `identity` tells servers apart (`@@server_uuid`,
    /// or `@@server_id` on MariaDB).
    Connected {
        endpoint: String,
        identity: String,
    },
}

/// Where and how to read.
pub struct Source<'a> {
    /// The source, then the addresses a new primary may appear at.
    pub endpoints: &'a [Endpoint],
    /// The identity of the server the task read from last (from the state store).
    pub identity: Option<String>,
    pub databases: &'a HashSet<String>,
    pub server_id: u32,
    pub retry_window: Duration,
}

/// Reads from `start` until `stop` is set or an error ends the stream; reconnects inside
/// the connection retry window, trying every address in turn. Rows of databases not
/// selected are not decoded.
///
/// When the server answering is not the one read before (a switchover), the stream
/// continues from the GTID state of its last whole transaction; without GTIDs that is
/// impossible to do safely, and the stream fails saying so.
pub fn read(src: &Source<'_>, start: Position, stop: &AtomicBool, out: Sender<Item>) -> Result<()> {
    let mut gtids = start
        .gtid
        .as_deref()
        .and_then(|g| GtidState::parse(g).ok())
        .filter(|g| !g.is_empty());
    let mut resume = start;
    let mut identity = src.identity.clone();
    let mut failing_since: Option<Instant> = None;
    let mut next_endpoint = 0;
    let mut retrying = None;
    loop {
        let ep = &src.endpoints[next_endpoint % src.endpoints.len()];
        let result = open(ep, &resume, &mut identity, src, &out).and_then(|mut reader| {
            retrying = None;
            reader.decoder().only_databases(src.databases.clone());
            read_from(
                reader,
                &mut resume,
                &mut gtids,
                stop,
                &out,
                &mut failing_since,
            )
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
        if !lost || since.elapsed() > src.retry_window || stop.load(Ordering::Relaxed) {
            return Err(err);
        }
        tracing::warn!("binlog: connection to {ep} lost ({err:#}); reconnecting at {resume}");
        retrying.get_or_insert_with(|| {
            crate::retrying::begin(format!(
                "reconnecting the binlog connection to the source {ep}"
            ))
        });
        next_endpoint += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Connects to `ep`, checks which server it is, and starts the dump at `resume`: by
/// file and position on the server read before, by GTID on another one.
fn open(
    ep: &Endpoint,
    resume: &Position,
    identity: &mut Option<String>,
    src: &Source<'_>,
    out: &Sender<Item>,
) -> Result<Reader> {
    let mut c = connect_raw(ep, Side::Source)?;
    let seen = server_identity(&mut c)?;
    drop(c);
    let switched = identity.as_ref().is_some_and(|known| *known != seen);
    let gtid_start = |g: &String| {
        if g.contains(':') {
            StartAt::MysqlGtid(g.clone())
        } else {
            StartAt::MariadbGtid(g.clone())
        }
    };
    let at = match (&resume.gtid, resume.file.is_empty() || switched) {
        (Some(g), true) => gtid_start(g),
        (None, true) if switched => bail!(
            "the source at {ep} is another server than the one read so far ({seen}, was {}) and the task has no GTID position to continue from: enable GTIDs on the source (MySQL: gtid_mode = ON), or rerun the task with full migration",
            identity.as_deref().unwrap_or("?")
        ),
        _ => StartAt::File {
            file: resume.file.clone(),
            position: resume.offset,
        },
    };
    if switched {
        tracing::warn!("binlog: {ep} is a new primary ({seen}); continuing from GTID {at:?}");
    }
    let reader = Reader::open(ep, &at, src.server_id)?;
    *identity = Some(seen.clone());
    let _ = out.send(Item::Connected {
        endpoint: ep.to_string(),
        identity: seen,
    });
    Ok(reader)
}

/// `@@server_uuid` (MySQL), or `@@server_id` (MariaDB, which has no server UUID).
fn server_identity(c: &mut mysql::Conn) -> Result<String> {
    let uuid: Option<String> = c.query_first("SELECT @@server_uuid").unwrap_or(None);
    if let Some(u) = uuid.filter(|u| !u.is_empty()) {
        return Ok(format!("server_uuid {u}"));
    }
    let id: Option<u64> = c.query_first("SELECT @@server_id")?;
    Ok(format!("server_id {}", id.unwrap_or(0)))
}

fn read_from(
    mut reader: Reader,
    resume: &mut Position,
    gtids: &mut Option<GtidState>,
    stop: &AtomicBool,
    out: &Sender<Item>,
    failing_since: &mut Option<Instant>,
) -> Result<()> {
    let mut txn: Option<Txn> = None;
    let mut gtid: Option<String> = None;
    // Where the transaction's GTID event starts, and the statement of the next rows.
    let mut gtid_at: Option<u64> = None;
    let mut query: Option<Arc<str>> = None;
    let mut skipped: HashSet<String> = HashSet::new();
    let closed = || anyhow!("the change applier stopped");
    // Hands a finished transaction over, its end carrying the GTID state after it.
    let mut finish = |mut t: Txn, end: Position, resume: &mut Position| -> Result<()> {
        t.end = end;
        t.received = Instant::now();
        if let Some(state) = gtids.as_mut() {
            if let Some(g) = &t.gtid {
                state.add(g);
            }
            t.end.gtid = Some(state.to_string());
        }
        *resume = t.end.clone();
        out.send(Item::Txn(t)).map_err(|_| closed())
    };
    while !stop.load(Ordering::Relaxed) {
        let Some((event, pos)) = reader.next_event()? else {
            // The server closed the dump (it is shutting down, or it was killed): a lost
            // connection, retried like any other.
            return Err(anyhow::Error::new(mysql::Error::IoError(
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the source ended the binlog dump",
                ),
            )));
        };
        *failing_since = None;
        match event.body {
            Body::Gtid { gtid: g, .. } => {
                gtid = Some(g);
                gtid_at = Some(EventInfo::of(&event.header, &pos, None).offset);
                query = None;
            }
            Body::RowsQuery { statement } => query = Some(Arc::from(statement)),
            Body::Query {
                database,
                statement,
                thread,
            } => {
                let head = first_word(&statement);
                let info = EventInfo::of(&event.header, &pos, None);
                match head.as_str() {
                    "BEGIN" => {
                        query = None;
                        txn = Some(Txn {
                            rows: Vec::new(),
                            ddl: None,
                            end: pos,
                            gtid: gtid.clone(),
                            timestamp: event.header.timestamp,
                            received: Instant::now(),
                            begin: gtid_at.take().unwrap_or(info.offset),
                            thread: Some(thread),
                        })
                    }
                    "COMMIT" => {
                        if let Some(mut t) = txn.take() {
                            t.timestamp = event.header.timestamp;
                            finish(t, pos, resume)?;
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
                        let t = Txn {
                            rows: Vec::new(),
                            ddl: Some(Ddl {
                                database,
                                statement,
                                event: info.clone(),
                            }),
                            end: pos.clone(),
                            gtid: gtid.take(),
                            timestamp: event.header.timestamp,
                            received: Instant::now(),
                            begin: gtid_at.take().unwrap_or(info.offset),
                            thread: Some(thread),
                        };
                        finish(t, pos, resume)?;
                    }
                }
            }
            Body::Rows { kind, table, rows } => {
                let info = EventInfo::of(&event.header, &pos, query.clone());
                let t = txn.get_or_insert_with(|| Txn {
                    rows: Vec::new(),
                    ddl: None,
                    end: pos.clone(),
                    gtid: gtid.clone(),
                    timestamp: event.header.timestamp,
                    received: Instant::now(),
                    begin: gtid_at.take().unwrap_or(info.offset),
                    thread: None,
                });
                t.rows.push(RowsBlock {
                    kind,
                    table,
                    rows,
                    event: info,
                });
            }
            Body::Xid { .. } => {
                query = None;
                if let Some(mut t) = txn.take() {
                    t.timestamp = event.header.timestamp;
                    finish(t, pos, resume)?;
                } else if pos.file == resume.file && pos.offset > resume.offset {
                    // A transaction with nothing for this task (rows of tables not
                    // read): a reconnect may start after it, and the next heartbeat
                    // reports the stream this far.
                    gtid = None;
                    gtid_at = None;
                    resume.offset = pos.offset;
                }
            }
            Body::Heartbeat if txn.is_none() => {
                out.send(Item::Idle {
                    position: resume.clone(),
                })
                .map_err(|_| closed())?;
            }
            // Between transactions a rotation moves the resume point to the new file.
            Body::Rotate { .. } if txn.is_none() && pos.offset >= 4 => {
                resume.file = pos.file;
                resume.offset = pos.offset;
            }
            // Events with nothing to apply in ROW format; said once per kind.
            // Events between transactions that carry nothing to apply (a binlog
            // checkpoint, a GTID list, events of kinds Tidemark skips): the stream has
            // read past them, which matters to `--stop-when-caught-up` when one ends
            // the binlog.
            Body::BinlogCheckpoint { .. }
            | Body::GtidList { .. }
            | Body::PreviousGtids { .. }
            | Body::Stop
            | Body::Other { .. }
                if txn.is_none() && pos.offset > resume.offset && pos.file == resume.file =>
            {
                if let Body::Other { name } = &event.body {
                    if skipped.insert(name.clone()) {
                        tracing::info!("binlog: skipping {name} events (nothing to apply)");
                    }
                }
                resume.offset = pos.offset;
                out.send(Item::Idle {
                    position: resume.clone(),
                })
                .map_err(|_| closed())?;
            }
            Body::Other { name } if skipped.insert(name.clone()) => {
                tracing::info!("binlog: skipping {name} events (nothing to apply)");
            }
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
