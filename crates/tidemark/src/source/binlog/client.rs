//! Connecting to the source as a replica and receiving its binary log.
//!
//! The connection registers with a `server_id` of its own, declares that it understands
//! checksums (and, on MariaDB, GTID events and annotations), asks for heartbeats so a
//! silent source is told apart from a dead connection, and dumps from a file and
//! position or from a GTID set (MySQL) / GTID list (MariaDB).

use super::event::{Body, Decoder, Event};
use crate::connect::{explain, Side};
use crate::endpoint::Endpoint;
use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{BinlogRequest, BinlogStream, Conn};
use std::time::Duration;
use tidemark_core::Position;

/// Where to start reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    File {
        file: String,
        position: u64,
    },
    /// A MySQL GTID set (`uuid:1-100,...`): every transaction not in it.
    MysqlGtid(String),
    /// A MariaDB GTID list (`0-1-100,...`): every transaction after it, per domain.
    MariadbGtid(String),
}

impl StartAt {
    /// Parses `FILE:POS`.
    pub fn parse_file_position(text: &str) -> Result<StartAt> {
        let (file, pos) = text
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("expected FILE:POS, e.g. mysql-bin.000003:4 (got {text:?})"))?;
        let position: u64 = pos
            .parse()
            .map_err(|_| anyhow!("expected FILE:POS with a numeric position (got {text:?})"))?;
        if file.is_empty() || position < 4 {
            bail!("expected FILE:POS with a file name and a position of at least 4 (got {text:?})");
        }
        Ok(StartAt::File {
            file: file.to_string(),
            position,
        })
    }
}

/// Heartbeat period asked of the source; a connection silent for several periods is dead.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The source's current binlog position (and GTID state).
pub fn current_position(c: &mut Conn) -> Result<Position> {
    let row: Option<mysql::Row> = c
        .query_first("SHOW MASTER STATUS")
        .context("reading the source's binlog position (SHOW MASTER STATUS)")?;
    let row = row.ok_or_else(|| {
        anyhow!("the source has no binary log (log_bin is OFF): enable it and restart the source")
    })?;
    let file: String = row
        .get(0)
        .ok_or_else(|| anyhow!("SHOW MASTER STATUS returned no file"))?;
    let offset: u64 = row
        .get(1)
        .ok_or_else(|| anyhow!("SHOW MASTER STATUS returned no position"))?;
    let gtid = gtid_state(c)?;
    Ok(Position {
        file,
        offset,
        gtid,
        ..Default::default()
    })
}

/// MariaDB: the binlog position of the connection's consistent snapshot.
pub fn snapshot_position(c: &mut mysql::Conn) -> Result<Option<Position>> {
    let rows: Vec<(String, String)> = c
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .unwrap_or_default();
    let get = |name: &str| {
        rows.iter()
            .find(|r| r.0.eq_ignore_ascii_case(name))
            .map(|r| r.1.clone())
    };
    Ok(
        match (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
            (Some(file), Some(pos)) if !file.is_empty() => {
                pos.parse().ok().map(|offset| Position {
                    file,
                    offset,
                    ..Default::default()
                })
            }
            _ => None,
        },
    )
}

/// The executed GTID state: MariaDB's `gtid_binlog_pos`, MySQL's `gtid_executed`.
fn gtid_state(c: &mut Conn) -> Result<Option<String>> {
    let mariadb: Option<String> = c
        .query_first("SELECT @@version")
        .context("reading the source's version")?;
    let q = if mariadb
        .unwrap_or_default()
        .to_lowercase()
        .contains("mariadb")
    {
        "SELECT @@gtid_binlog_pos"
    } else {
        "SELECT @@gtid_executed"
    };
    let g: Option<Option<String>> = c.query_first(q).ok();
    Ok(g.flatten().filter(|s| !s.is_empty()))
}

/// A binlog stream being read: decoded events with the position after each.
pub struct Reader {
    stream: BinlogStream,
    decoder: Decoder,
    file: String,
    offset: u64,
    buf: Vec<u8>,
}

impl Reader {
    /// Connects as a replica and starts the dump.
    pub fn open(ep: &Endpoint, start: &StartAt, server_id: u32) -> Result<Reader> {
        let mut c = crate::connect::connect_replica(ep, silence_limit())?;
        let version: String = c
            .query_first("SELECT @@version")?
            .ok_or_else(|| anyhow!("the source returned no version"))?;
        let mariadb = version.to_lowercase().contains("mariadb");
        let checksum: Option<String> = c
            .query_first("SELECT @@global.binlog_checksum")
            .map_err(|e| explain(e, ep, Side::Source))?;
        let crc = checksum.is_some_and(|c| c.eq_ignore_ascii_case("CRC32"));
        let nanos = HEARTBEAT.as_nanos();
        c.query_drop(format!(
            "SET @master_binlog_checksum = @@global.binlog_checksum, @master_heartbeat_period = {nanos}"
        ))
        .map_err(|e| explain(e, ep, Side::Source))?;
        if mariadb {
            // 4 = MARIA_SLAVE_CAPABILITY_MINE: GTID events, annotations, compressed events.
            c.query_drop("SET @mariadb_slave_capability = 4")
                .map_err(|e| explain(e, ep, Side::Source))?;
        }
        let mut request = BinlogRequest::new(server_id);
        if mariadb {
            // BINLOG_SEND_ANNOTATE_ROWS_EVENT (2, the bit mysql_common names
            // BINLOG_THROUGH_POSITION): the statement of each rows event, which formats
            // naming it carry (Debezium's `source.query`); without it MariaDB leaves
            // ANNOTATE_ROWS events out of the dump.
            request =
                request.with_flags(mysql_common::packets::BinlogDumpFlags::BINLOG_THROUGH_POSITION);
        }
        let mut offset = 4;
        let file = match start {
            StartAt::File { file, position } => {
                offset = *position;
                request = request
                    .with_filename(file.as_bytes().to_vec())
                    .with_pos(*position);
                file.clone()
            }
            StartAt::MariadbGtid(list) => {
                if !mariadb {
                    bail!("a MariaDB GTID ({list}) was given but the source is MySQL {version}: give a MySQL GTID set or FILE:POS");
                }
                c.exec_drop(
                    "SET @slave_connect_state = ?, @slave_gtid_strict_mode = 0, @slave_gtid_ignore_duplicates = 0",
                    (list.as_str(),),
                )
                .map_err(|e| explain(e, ep, Side::Source))?;
                request = request.with_pos(4u64);
                String::new()
            }
            StartAt::MysqlGtid(set) => {
                if mariadb {
                    bail!("a MySQL GTID set ({set}) was given but the source is {version}: give a MariaDB GTID list (domain-server-sequence) or FILE:POS");
                }
                let sids = set
                    .split(',')
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<mysql_common::packets::Sid<'static>>()
                            .map_err(|e| anyhow!("invalid GTID set entry {s:?}: {e}"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                request = request.with_use_gtid(true).with_sids(sids).with_pos(4u64);
                String::new()
            }
        };
        let stream = c
            .get_binlog_stream(request)
            .map_err(|e| dump_error(e, start, ep))?;
        Ok(Reader {
            stream,
            decoder: Decoder::with_checksum(crc),
            file,
            offset,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// The next event and the position after it; `None` when the source ended the dump.
    pub fn next_event(&mut self) -> Result<Option<(Event, Position)>> {
        let Some(raw) = self.stream.next() else {
            return Ok(None);
        };
        let raw = raw.map_err(|e| match &e {
            mysql::Error::MySqlError(m)
                if m.code == 4052 || m.message.contains("same server_uuid/server_id") =>
            {
                anyhow!(
                    "another replica of the source registered with this task's server id ({}). If it is another run of this same task (on another machine, or with another state directory), stop that run: two appliers of one task would each apply every change. If it is a different replica or task, give this task a `[source] server_id` no other replica of the source uses",
                    m.message
                )
            }
            mysql::Error::MySqlError(m) if m.code == 1236 => anyhow!(
                "the source stopped the binlog dump: {} — if a binlog file was purged, the changes since the checkpoint are gone: rerun the task with full migration, and keep binlogs longer",
                m.message
            ),
            // Kept as the driver's error, so a lost connection is recognised and retried.
            _ => anyhow::Error::new(e).context("reading the source's binlog"),
        })?;
        // The driver has already split the checksum off: verify it here (the decoder
        // reads the driver's parse, or the event framed anew).
        if let Some(sum) = raw.checksum() {
            let alg = mysql::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32;
            if self.decoder.checksum() && u32::from_le_bytes(sum) != raw.calc_checksum(alg) {
                bail!(
                    "checksum mismatch in the event before {}:{}: the source sent a damaged event; the task stops rather than apply it",
                    self.file,
                    raw.header().log_pos()
                );
            }
        }
        let event = decode_as_read(&mut self.decoder, &raw, &mut self.buf).with_context(|| {
            format!(
                "decoding the event (type {}) before {}:{}",
                raw.header().event_type_raw(),
                self.file,
                raw.header().log_pos()
            )
        })?;
        match &event.body {
            Body::Rotate { file, position } => {
                self.file = file.clone();
                self.offset = *position;
            }
            // Artificial events (the dump's opening FORMAT_DESCRIPTION) have no position.
            _ if event.header.next_position == 0 => {}
            _ => self.offset = event.header.next_position as u64,
        }
        Ok(Some((
            event,
            Position {
                file: self.file.clone(),
                offset: self.offset,
                ..Default::default()
            },
        )))
    }

    /// The decoder, for its table maps and its database filter.
    pub fn decoder(&mut self) -> &mut Decoder {
        &mut self.decoder
    }
}

/// Decodes an event as the driver read it (checksum split off, already verified): from
/// the driver's parse where the decoder takes it as it is, else framed anew in `buf`.
pub fn decode_as_read(
    decoder: &mut Decoder,
    raw: &mysql::binlog::events::Event,
    buf: &mut Vec<u8>,
) -> Result<Event> {
    match decoder.decode_received(raw) {
        Some(decoded) => decoded,
        None => {
            buf.clear();
            raw.write(mysql::binlog::BinlogVersion::Version4, &mut *buf)
                .context("re-framing a binlog event")?;
            decoder.decode_checked(buf)
        }
    }
}

fn dump_error(e: mysql::Error, start: &StartAt, ep: &Endpoint) -> anyhow::Error {
    match &e {
        mysql::Error::MySqlError(m) if m.code == 1236 => anyhow!(
            "the source cannot send its binlog from {start:?}: {}. If that file was purged, rerun the task with full migration (types = [\"schema\", \"full\", \"incremental\"]) and raise the source's binlog retention",
            m.message
        ),
        _ => explain(e, ep, Side::Source),
    }
}

/// How long a replica connection may stay silent before it is considered dead.
pub fn silence_limit() -> Duration {
    HEARTBEAT * 6
}
