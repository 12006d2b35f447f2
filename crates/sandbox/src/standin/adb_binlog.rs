//! The ADB stand-in's per-table binary log stream: a COM_BINLOG_DUMP for a per-table
//! file name becomes a replication connection to the storage server whose events are
//! filtered to that one table and whose file names are rewritten to the per-table
//! names. The naming (`adb-binlog.<table id>.<storage file>`) and serving through
//! COM_BINLOG_DUMP are the stand-in's own assumptions (see the module doc of
//! [`super::adb`]): ADB's subscription protocol is not publicly documented.

use super::wire::{BinlogFeed, SqlError};
use super::{my_err, storage_conn};
use mysql::binlog::events::{Event, QueryEvent, TableMapEvent};
use mysql::binlog::BinlogVersion;
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// The prefix of every per-table file name.
pub const PREFIX: &str = "adb-binlog.";

/// The per-table name of storage file `file` for table `id`.
pub fn table_file(id: u64, file: &str) -> String {
    format!("{PREFIX}{id}.{file}")
}

/// Splits a per-table file name into table id and storage file name.
pub fn parse_table_file(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (id, file) = rest.split_once('.')?;
    let id = id.parse().ok()?;
    (!file.is_empty()).then_some((id, file))
}

/// Server ids of the stand-in's replication connections: MariaDB ends an older dump
/// when a new one registers with the same id, so each stream takes its own.
static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(1_000_000);

const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const XID: u8 = 16;
const FORMAT_DESCRIPTION: u8 = 15;
const TABLE_MAP: u8 = 19;
const HEARTBEAT: u8 = 27;
const MARIA_BINLOG_CHECKPOINT: u8 = 161;
const MARIA_GTID: u8 = 162;
const MARIA_GTID_LIST: u8 = 163;
/// WRITE/UPDATE/DELETE rows events, v1 and v2.
const ROWS: [u8; 6] = [23, 24, 25, 30, 31, 32];

/// One table's stream from the storage server.
pub struct Feed {
    stream: mysql::BinlogStream,
    storage_port: u16,
    conn_id: u32,
    id: u64,
    db: String,
    name: String,
    /// How the stand-in names the table in the DDL it sends to storage.
    ddl_name: String,
    /// Table-map ids seen so far: whether each names the subscribed table.
    maps: HashMap<u64, bool>,
}

impl Feed {
    /// Starts a replication connection at storage `file`/`pos` for table `id` (`db`.`name`).
    pub fn open(
        storage_port: u16,
        id: u64,
        db: &str,
        name: &str,
        file: &str,
        pos: u32,
        flags: u16,
    ) -> Result<Feed, SqlError> {
        let mut c = storage_conn(storage_port, None)?;
        c.query_drop(
            "SET @master_binlog_checksum = @@global.binlog_checksum, \
             @mariadb_slave_capability = 4, @master_heartbeat_period = 5000000000",
        )
        .map_err(my_err)?;
        let conn_id = c.connection_id();
        let req = mysql::BinlogRequest::new(NEXT_SERVER_ID.fetch_add(1, Ordering::SeqCst))
            .with_filename(file.as_bytes().to_vec())
            .with_pos(pos)
            .with_flags(mysql::BinlogDumpFlags::from_bits_truncate(flags));
        let stream = c.get_binlog_stream(req).map_err(my_err)?;
        Ok(Feed {
            stream,
            storage_port,
            conn_id,
            id,
            db: db.to_string(),
            name: name.to_string(),
            ddl_name: format!("{}.{}", super::sql::q(db), super::sql::q(name)),
            maps: HashMap::new(),
        })
    }

    /// The bytes to send for `ev`, or `None` when it does not belong to the table.
    fn filter(&mut self, ev: &Event) -> Result<Option<Vec<u8>>, SqlError> {
        let h = ev.header();
        let ty = h.event_type_raw();
        let keep = match ty {
            FORMAT_DESCRIPTION | XID | MARIA_GTID | MARIA_GTID_LIST | MARIA_BINLOG_CHECKPOINT => {
                true
            }
            ROTATE => {
                let data = ev.data();
                let (pos, file) = data.split_at_checked(8).ok_or_else(|| bad("ROTATE"))?;
                let file = storage_name(file).ok_or_else(|| bad("ROTATE"))?;
                let mut body = pos.to_vec();
                body.extend_from_slice(table_file(self.id, &file).as_bytes());
                return Ok(Some(rebuild(ev, &body)));
            }
            HEARTBEAT => {
                let file = String::from_utf8_lossy(ev.data());
                let body = table_file(self.id, &file).into_bytes();
                return Ok(Some(rebuild(ev, &body)));
            }
            QUERY => {
                let q: QueryEvent = ev.read_event().map_err(|e| bad_io("QUERY", e))?;
                let text = q.query();
                let t = text.trim();
                ["BEGIN", "COMMIT", "ROLLBACK"]
                    .iter()
                    .any(|k| t.eq_ignore_ascii_case(k))
                    || text.contains(&self.ddl_name)
            }
            TABLE_MAP => {
                let m: TableMapEvent = ev.read_event().map_err(|e| bad_io("TABLE_MAP", e))?;
                let ours = m.database_name() == self.db && m.table_name() == self.name;
                self.maps.insert(m.table_id(), ours);
                ours
            }
            t if ROWS.contains(&t) => {
                let id = ev.data().get(..6).ok_or_else(|| bad("rows"))?;
                let id = id
                    .iter()
                    .enumerate()
                    .fold(0u64, |v, (i, b)| v | (*b as u64) << (8 * i));
                self.maps.get(&id).copied().unwrap_or(false)
            }
            _ => false,
        };
        if !keep {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(h.event_size() as usize);
        ev.write(BinlogVersion::Version4, &mut out)
            .map_err(|e| bad_io("an event", e))?;
        Ok(Some(out))
    }
}

/// The storage file name a ROTATE event carries. The artificial first ROTATE comes
/// before the FORMAT_DESCRIPTION event, so the reader cannot know whether it carries a
/// checksum; MariaDB adds one there whenever `@master_binlog_checksum` is set to
/// something other than NONE (the `mysql` crate sets it to 'ALL'). Storage file names
/// are `binlog.NNNNNN`, so trailing bytes that are not part of such a name are it.
fn storage_name(b: &[u8]) -> Option<String> {
    let plain = |b: &[u8]| {
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    };
    let name = if plain(b) {
        b
    } else {
        let cut = b.get(..b.len().checked_sub(4)?)?;
        if !plain(cut) {
            return None;
        }
        cut
    };
    String::from_utf8(name.to_vec()).ok()
}

fn bad(what: &str) -> SqlError {
    SqlError::new(
        1236,
        "HY000",
        format!("the stand-in got a truncated {what} event from its storage server"),
    )
}

fn bad_io(what: &str, e: std::io::Error) -> SqlError {
    SqlError::new(
        1236,
        "HY000",
        format!("the stand-in could not read a {what} event from its storage server: {e}"),
    )
}

/// `ev`'s header with a new body: event_size recomputed, log_pos kept (positions stay
/// the storage server's, so they are monotonic within a file); no checksum, as the
/// storage server writes none (`--binlog-checksum=NONE`).
fn rebuild(ev: &Event, body: &[u8]) -> Vec<u8> {
    let h = ev.header();
    let mut out = Vec::with_capacity(19 + body.len());
    out.extend_from_slice(&h.timestamp().to_le_bytes());
    out.push(h.event_type_raw());
    out.extend_from_slice(&h.server_id().to_le_bytes());
    out.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&h.log_pos().to_le_bytes());
    out.extend_from_slice(&h.flags_raw().to_le_bytes());
    out.extend_from_slice(body);
    out
}

impl BinlogFeed for Feed {
    fn next_event(&mut self) -> Option<Result<Vec<u8>, SqlError>> {
        loop {
            let ev = match self.stream.next()? {
                Ok(ev) => ev,
                Err(e) => return Some(Err(my_err(e))),
            };
            match self.filter(&ev) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn canceller(&self) -> Box<dyn FnOnce() + Send> {
        let (port, id) = (self.storage_port, self.conn_id);
        Box::new(move || {
            // Ends the storage connection, which the stream may be blocked reading.
            if let Ok(mut c) = storage_conn(port, None) {
                let _ = c.query_drop(format!("KILL CONNECTION {id}"));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_table_names_round_trip() {
        assert_eq!(table_file(7, "binlog.000003"), "adb-binlog.7.binlog.000003");
        assert_eq!(
            parse_table_file("adb-binlog.7.binlog.000003"),
            Some((7, "binlog.000003"))
        );
        assert_eq!(parse_table_file("binlog.000003"), None);
        assert_eq!(parse_table_file("adb-binlog.x.binlog.000003"), None);
        assert_eq!(parse_table_file("adb-binlog.7."), None);
    }
}
