//! One binlog event's bytes → a typed [`Event`].
//!
//! The [`Decoder`] keeps what later events need: the format description (checksum
//! algorithm, post-header lengths) and the table maps that row events refer to. It
//! verifies each event's CRC32 when the source writes checksums. An event type it does
//! not know becomes [`Body::Other`]; a damaged event is an error that says what is wrong,
//! never a panic.

use super::mariadb;
use super::value::{from_binlog, json_after_diffs};
use anyhow::{anyhow, bail, Context, Result};
use mysql::binlog::events::{
    Event as RawEvent, EventData, FormatDescriptionEvent, OptionalMetaExtractor,
    OptionalMetadataField, RowsEventData, TableMapEvent,
};
use mysql::binlog::value::BinlogValue;
use mysql::binlog::BinlogVersion;
use mysql::consts::{ColumnFlags, ColumnType};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use tidemark_core::sql::quote_str;
use tidemark_core::Value;

const HEADER_LEN: usize = 19;
pub(crate) const FORMAT_DESCRIPTION: u8 = 15;
const TRANSACTION_PAYLOAD: u8 = 40;
/// Column values (present or absent) one rows event may decode to. Servers split rows
/// events at `binlog_row_event_max_size` (8 KiB by default), so even a 4096-column table
/// with MINIMAL images stays far below.
const MAX_VALUES_PER_EVENT: usize = 16 << 20;

/// The common 19-byte event header.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Header {
    pub timestamp: u32,
    pub type_code: u8,
    pub server_id: u32,
    pub size: u32,
    /// Position of the next event in the file (0 inside a compressed transaction).
    pub next_position: u32,
    pub flags: u16,
}

/// A decoded event.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub header: Header,
    pub body: Body,
}

/// Which rows event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

/// A table map: the table a rows event's `table_id` stands for, and its column types.
#[derive(Clone, Debug, Serialize)]
pub struct TableMap {
    pub table_id: u64,
    pub database: String,
    pub table: String,
    /// Binlog column type codes.
    #[serde(skip)]
    pub types: Vec<ColumnType>,
    /// Column names, when the source logs them (`binlog_row_metadata = FULL`).
    pub names: Vec<String>,
    /// Per column: the ENUM or SET members in order, when the source logs them (MySQL's
    /// `binlog_row_metadata = FULL`); empty for other columns.
    #[serde(skip)]
    pub members: Vec<Vec<String>>,
    /// Per column: the fractional-second digits of TIME, DATETIME and TIMESTAMP
    /// columns and the bits of BIT columns (from the type metadata); 0 for others.
    #[serde(skip)]
    pub widths: Vec<u16>,
    /// Per column: the source says it holds binary bytes (charset `binary`, from MySQL's
    /// full row metadata); `false` when not told.
    #[serde(skip)]
    pub binary: Vec<bool>,
}

/// One row of a rows event. Each image has one slot per column of the table map; a
/// column missing from an image (`binlog_row_image = MINIMAL` or `NOBLOB`) is `None`.
#[derive(Clone, Debug, Serialize)]
pub struct RowImage {
    pub before: Option<Vec<Option<Value>>>,
    pub after: Option<Vec<Option<Value>>>,
    /// Partial JSON updates that could not be applied because the before image leaves
    /// the column out: that column's after value is `None`, and the change is kept here
    /// in the form `mysqlbinlog -v` prints it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub json_changes: Vec<JsonChange>,
}

/// A partial JSON update of one column (`PARTIAL_UPDATE_ROWS` event).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonChange {
    /// The column's index in the table map.
    pub column: usize,
    /// The change as an expression on the old value `@N` (N = column + 1), e.g.
    /// `JSON_REPLACE(@3, '$.a', CAST('1' AS JSON))`.
    pub expression: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Body {
    FormatDescription {
        server_version: String,
        checksum: bool,
    },
    Rotate {
        file: String,
        position: u64,
    },
    /// A statement: DDL, BEGIN, COMMIT (non-transactional engines), and on MariaDB the
    /// statements of a transaction's start.
    Query {
        database: String,
        statement: String,
        /// The session that ran it (`slave_proxy_id`): Debezium's `source.thread`.
        #[serde(skip)]
        thread: u32,
    },
    TableMap(Arc<TableMap>),
    Rows {
        kind: RowsKind,
        table: Arc<TableMap>,
        rows: Vec<RowImage>,
    },
    /// COMMIT of a transaction.
    Xid {
        xid: u64,
    },
    /// The GTID of the transaction that follows: MySQL `uuid:n`, MariaDB `domain-server-seq`.
    Gtid {
        gtid: String,
        /// MariaDB: a transaction without BEGIN/COMMIT (DDL).
        standalone: bool,
    },
    AnonymousGtid,
    /// MySQL: the GTID set executed before this file.
    PreviousGtids {
        set: String,
    },
    /// MariaDB: the GTID state at the start of this file.
    GtidList {
        list: String,
    },
    BinlogCheckpoint {
        file: String,
    },
    /// The statement that produced the following rows (MySQL ROWS_QUERY, MariaDB
    /// ANNOTATE_ROWS).
    RowsQuery {
        statement: String,
    },
    /// MySQL's compressed transaction, decoded.
    TransactionPayload {
        events: Vec<Event>,
    },
    Heartbeat,
    Stop,
    /// An event this decoder has no use for (kept as its type name).
    Other {
        name: String,
    },
}

/// Decodes events in stream order.
pub struct Decoder {
    fde: FormatDescriptionEvent<'static>,
    /// Events end with a CRC32 (from the format description event, or told in advance
    /// for a live stream, whose first fake ROTATE comes before it).
    checksum: bool,
    /// The parser's format description knows about the checksum.
    fde_checksum: bool,
    tables: HashMap<u64, (TableMapEvent<'static>, Arc<TableMap>)>,
    /// Pre-GA MySQL 5.1 development builds numbered the row events differently.
    pre_ga_numbering: bool,
    /// Only rows of these databases are decoded (all when `None`).
    databases: Option<std::collections::HashSet<String>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
            checksum: false,
            fde_checksum: false,
            tables: HashMap::new(),
            pre_ga_numbering: false,
            databases: None,
        }
    }

    /// A decoder for a live stream whose events carry a CRC32 (`@master_binlog_checksum`).
    pub fn with_checksum(checksum: bool) -> Decoder {
        Decoder {
            checksum,
            ..Decoder::new()
        }
    }

    /// Decodes only the rows of these databases; rows events of others come out empty.
    pub fn only_databases(&mut self, databases: std::collections::HashSet<String>) {
        self.databases = Some(databases);
    }

    /// Whether events of this stream carry a checksum (known after its format
    /// description event).
    pub fn checksum(&self) -> bool {
        self.checksum
    }

    /// The table map for `table_id`, if one was seen.
    pub fn table(&self, table_id: u64) -> Option<&Arc<TableMap>> {
        self.tables.get(&table_id).map(|(_, t)| t)
    }

    /// Decodes one whole event (header, body and checksum, as the server wrote it).
    pub fn decode(&mut self, frame: &[u8]) -> Result<Event> {
        self.decode_framed(frame, Crc::Verify)
    }

    /// [`Self::decode`] for an event whose checksum the caller has already verified (the
    /// replication client checks the one the server sent, then frames the event anew).
    pub fn decode_checked(&mut self, frame: &[u8]) -> Result<Event> {
        self.decode_framed(frame, Crc::Checked)
    }

    /// Decodes an event as the replication driver has read it (its checksum already
    /// verified by the caller): the event types of ordinary transactions are decoded from
    /// the driver's parse as it is, without framing and parsing them a second time.
    /// `None` for every other type, which the caller frames anew for [`Self::decode_checked`].
    pub fn decode_received(&mut self, raw: &RawEvent) -> Option<Result<Event>> {
        // QUERY, ROTATE, XID, TABLE_MAP, ROWS_QUERY, the v1 and v2 rows events, GTID,
        // ANONYMOUS_GTID, PREVIOUS_GTIDS, PARTIAL_UPDATE_ROWS. The format description, the
        // MariaDB types (compressed ones among them) and payloads take the framed path.
        const AS_RECEIVED: [u8; 15] = [2, 4, 16, 19, 23, 24, 25, 29, 30, 31, 32, 33, 34, 35, 39];
        let h = raw.header();
        let type_code = h.event_type_raw();
        if self.pre_ga_numbering || !AS_RECEIVED.contains(&type_code) {
            return None;
        }
        // The driver splits a checksum off only once it has seen a format description
        // that announces one: the dump's artificial ROTATE comes first, with a checksum
        // the driver leaves on its data. This decoder knows better (from
        // `@@binlog_checksum`) and takes such an event framed.
        let footer = raw.footer();
        let split_off = footer.get_checksum_enabled()
            && matches!(
                footer.get_checksum_alg(),
                Ok(Some(
                    mysql::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32
                ))
            );
        if split_off != self.checksum {
            return None;
        }
        let header = Header {
            timestamp: h.timestamp(),
            type_code,
            server_id: h.server_id(),
            size: h.event_size(),
            next_position: h.log_pos(),
            flags: h.flags_raw(),
        };
        let body = unpanicked(type_code, || self.body(raw, type_code))
            .with_context(|| format!("in a {} event", type_name(type_code)));
        Some(body.map(|body| Event { header, body }))
    }

    fn decode_framed(&mut self, frame: &[u8], crc: Crc) -> Result<Event> {
        self.decode_inner(frame, crc)
            .with_context(|| match frame.get(4) {
                Some(&code) => format!("in a {} event", type_name(code)),
                None => "in an event".to_string(),
            })
    }

    fn decode_inner(&mut self, frame: &[u8], crc: Crc) -> Result<Event> {
        let mut header = header(frame)?;
        let renumbered;
        let frame = match pre_ga_type(self.pre_ga_numbering, header.type_code) {
            Some(ty) => {
                header.type_code = ty;
                let mut f = frame.to_vec();
                f[4] = ty;
                renumbered = f;
                &renumbered[..]
            }
            None => frame,
        };
        if header.size as usize != frame.len() {
            bail!(
                "event of type {} claims {} bytes but {} are there",
                header.type_code,
                header.size,
                frame.len()
            );
        }
        if self.pre_ga_numbering && (19..=22).contains(&header.type_code) {
            // Development builds' table maps carry no column metadata, and their row
            // events a layout no released server wrote: shown, not decoded.
            return Ok(Event {
                header,
                body: Body::Other {
                    name: format!("PRE_GA_5_1_ROWS_EVENT_{}", header.type_code),
                },
            });
        }
        let is_fde = header.type_code == FORMAT_DESCRIPTION;
        if is_fde {
            return self.format_description(frame, header);
        }
        let with_crc = crc != Crc::Absent && self.checksum;
        if with_crc && crc == Crc::Verify {
            verify_crc(frame, header)?;
        }
        let plain_len = frame.len() - if with_crc { 4 } else { 0 };
        let plain = &frame[..plain_len];
        let post_header_len = |ty: u8, default: usize| {
            self.fde
                .event_type_header_lengths()
                .get(ty as usize - 1)
                .map(|&n| n as usize)
                .filter(|&n| n > 0)
                .unwrap_or(default)
        };
        let body_bytes = &plain[HEADER_LEN..];
        let inflated;
        let plain = match header.type_code {
            mariadb::ANNOTATE_ROWS => {
                return Ok(Event {
                    header,
                    body: Body::RowsQuery {
                        statement: String::from_utf8_lossy(body_bytes).into_owned(),
                    },
                })
            }
            mariadb::BINLOG_CHECKPOINT => {
                let file = mariadb::binlog_checkpoint(body_bytes)?;
                return Ok(Event {
                    header,
                    body: Body::BinlogCheckpoint { file },
                });
            }
            mariadb::GTID => {
                let g = mariadb::gtid(body_bytes, header.server_id)?;
                return Ok(Event {
                    header,
                    body: Body::Gtid {
                        gtid: g.gtid,
                        standalone: g.standalone,
                    },
                });
            }
            mariadb::GTID_LIST => {
                let list = mariadb::gtid_list(body_bytes)?;
                return Ok(Event {
                    header,
                    body: Body::GtidList { list },
                });
            }
            mariadb::START_ENCRYPTION => bail!(
                "the binlog is encrypted (START_ENCRYPTION event); read it through the server, not from the file"
            ),
            mariadb::QUERY_COMPRESSED => {
                inflated = mariadb::inflate_query(plain, post_header_len(2, 13))?;
                &inflated[..]
            }
            mariadb::FIRST_ROWS_COMPRESSED..=mariadb::LAST_ROWS_COMPRESSED => {
                let v1 = header.type_code <= 168;
                inflated = mariadb::inflate_rows(
                    plain,
                    post_header_len(header.type_code, if v1 { 8 } else { 10 }),
                )?;
                &inflated[..]
            }
            // MySQL 8.0's HEARTBEAT_LOG_EVENT_V2, unknown to the parser.
            41 => {
                return Ok(Event {
                    header,
                    body: Body::Heartbeat,
                })
            }
            _ => plain,
        };
        // The parser strips a checksum exactly when its format description has one, and
        // reads as many bytes as the header's size says.
        let mut owned;
        let input: &[u8] = if self.fde_checksum && with_crc && plain.len() + 4 == frame.len() {
            frame
        } else if !self.fde_checksum && plain.len() == frame.len() {
            plain
        } else {
            owned = plain.to_vec();
            if self.fde_checksum {
                owned.extend_from_slice(&[0; 4]);
            }
            let size = owned.len() as u32;
            owned[9..13].copy_from_slice(&size.to_le_bytes());
            &owned
        };
        let body = unpanicked(header.type_code, || {
            let raw = RawEvent::read(&self.fde, input).context("reading the event")?;
            self.body(&raw, header.type_code)
        })?;
        Ok(Event { header, body })
    }

    fn format_description(&mut self, frame: &[u8], header: Header) -> Result<Event> {
        let raw = RawEvent::read(&self.fde, frame).context("reading FORMAT_DESCRIPTION")?;
        let fde = raw
            .read_event::<FormatDescriptionEvent<'_>>()
            .context("reading FORMAT_DESCRIPTION")?
            .with_footer(raw.footer());
        let alg = raw
            .footer()
            .get_checksum_alg()
            .map_err(|e| anyhow!("unknown binlog checksum algorithm: {e:?}"))?;
        self.checksum = matches!(
            alg,
            Some(mysql::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)
        );
        self.fde_checksum = self.checksum;
        if self.checksum {
            verify_crc(frame, header)?;
        }
        let server_version = fde.server_version().trim_end_matches('\0').to_string();
        self.pre_ga_numbering = (server_version.starts_with("5.1.")
            || server_version.starts_with("5.2."))
            && server_version.contains("-a_drop");
        let mut fde = fde.into_owned();
        if self.pre_ga_numbering {
            // Post-header lengths are listed by the build's own numbering.
            let old = fde.event_type_header_lengths().to_vec();
            let mut new = old.clone();
            for ty in 16u8..=22 {
                if let (Some(to), Some(&len)) = (pre_ga_type(true, ty), old.get(ty as usize - 1)) {
                    if let Some(slot) = new.get_mut(to as usize - 1) {
                        *slot = len;
                    }
                }
            }
            fde = fde.with_event_type_header_lengths(new);
        }
        self.fde = fde;
        Ok(Event {
            header,
            body: Body::FormatDescription {
                server_version,
                checksum: self.checksum,
            },
        })
    }

    fn body(&mut self, raw: &RawEvent, type_code: u8) -> Result<Body> {
        let Some(data) = raw.read_data().context("reading the event body")? else {
            return Ok(Body::Other {
                name: format!("UNKNOWN_{type_code}"),
            });
        };
        Ok(match data {
            EventData::QueryEvent(q) => Body::Query {
                database: q.schema().into_owned(),
                statement: q.query().into_owned(),
                thread: q.thread_id(),
            },
            EventData::RotateEvent(r) => Body::Rotate {
                file: r.name().into_owned(),
                position: r.position(),
            },
            EventData::TableMapEvent(t) => {
                // A server logs a table's map before each of its rows events: one equal to
                // the map last seen for its id is that map, already converted.
                if let Some((known, map)) = self.tables.get(&t.table_id()) {
                    if *known == t {
                        return Ok(Body::TableMap(map.clone()));
                    }
                }
                let map = Arc::new(table_map(&t)?);
                self.tables
                    .insert(t.table_id(), (t.into_owned(), map.clone()));
                Body::TableMap(map)
            }
            EventData::RowsEvent(r) => self.rows(&r)?,
            EventData::XidEvent(x) => Body::Xid { xid: x.xid },
            EventData::GtidEvent(g) => {
                let sid = uuid(&g.sid());
                let gtid = match g.tag() {
                    Some(tag) => format!("{sid}:{tag}:{}", g.gno()),
                    None => format!("{sid}:{}", g.gno()),
                };
                Body::Gtid {
                    gtid,
                    standalone: false,
                }
            }
            EventData::AnonymousGtidEvent(_) => Body::AnonymousGtid,
            EventData::PreviousGtidsEvent(p) => Body::PreviousGtids {
                set: p
                    .sids()
                    .iter()
                    .map(|s| {
                        let ranges: Vec<String> = s
                            .intervals()
                            .iter()
                            // Intervals are half-open [start, end).
                            .map(|i| match i.end().saturating_sub(1) {
                                e if e == i.start() => format!("{e}"),
                                e => format!("{}-{e}", i.start()),
                            })
                            .collect();
                        match s.tag() {
                            Some(tag) => format!("{}:{tag}:{}", uuid(&s.uuid()), ranges.join(":")),
                            None => format!("{}:{}", uuid(&s.uuid()), ranges.join(":")),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            },
            EventData::RowsQueryEvent(q) => Body::RowsQuery {
                statement: q.query().into_owned(),
            },
            EventData::TransactionPayloadEvent(p) => {
                // No more than the size the event declares is inflated (a small payload
                // can inflate to gigabytes).
                let declared = p.uncompressed_size();
                let mut payload = Vec::with_capacity(declared.min(1 << 20) as usize);
                p.decompressed()
                    .and_then(|r| r.take(declared.saturating_add(1)).read_to_end(&mut payload))
                    .context("decompressing TRANSACTION_PAYLOAD")?;
                if payload.len() as u64 > declared {
                    bail!("TRANSACTION_PAYLOAD inflates to more than the {declared} bytes it declares");
                }
                let mut events = Vec::new();
                let mut at = 0;
                while at < payload.len() {
                    let h = header(&payload[at..]).context("inside TRANSACTION_PAYLOAD")?;
                    if h.type_code == TRANSACTION_PAYLOAD {
                        // Servers never nest them; nesting without end would exhaust the stack.
                        bail!("a TRANSACTION_PAYLOAD inside another");
                    }
                    let end = at + h.size as usize;
                    let frame = payload.get(at..end).ok_or_else(|| {
                        anyhow!("TRANSACTION_PAYLOAD: an event runs past the end")
                    })?;
                    events.push(self.decode_inner(frame, Crc::Absent)?);
                    at = end;
                }
                Body::TransactionPayload { events }
            }
            EventData::HeartbeatEvent => Body::Heartbeat,
            EventData::StopEvent => Body::Stop,
            _ => Body::Other {
                name: raw
                    .header()
                    .event_type()
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|_| format!("UNKNOWN_{type_code}")),
            },
        })
    }

    fn rows(&self, r: &RowsEventData<'_>) -> Result<Body> {
        let kind = match r {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                RowsKind::Insert
            }
            RowsEventData::UpdateRowsEventV1(_)
            | RowsEventData::UpdateRowsEvent(_)
            | RowsEventData::PartialUpdateRowsEvent(_) => RowsKind::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                RowsKind::Delete
            }
        };
        let (tme, table) = self.tables.get(&r.table_id()).ok_or_else(|| {
            anyhow!(
                "a rows event refers to table id {} without a TABLE_MAP before it (the stream started inside a transaction)",
                r.table_id()
            )
        })?;
        let mut rows = Vec::new();
        if let Some(keep) = &self.databases {
            if !keep.contains(&table.database) {
                // Not selected: the event is passed on without its rows.
                return Ok(Body::Rows {
                    kind,
                    table: table.clone(),
                    rows,
                });
            }
        }
        // A row image has a slot for every column, present or not, so a few bytes of
        // rows can stand for many values; the event's total is bounded.
        let mut slots = 0usize;
        for row in r.rows(tme) {
            let (before, after) = row
                .with_context(|| format!("decoding a row of {}.{}", table.database, table.table))?;
            slots += before.as_ref().map_or(0, |b| b.len()) + after.as_ref().map_or(0, |a| a.len());
            if slots > MAX_VALUES_PER_EVENT {
                bail!(
                    "a rows event of {}.{} holds more than {MAX_VALUES_PER_EVENT} column values ({} rows so far): more than any server writes in one event",
                    table.database,
                    table.table,
                    rows.len()
                );
            }
            let mut json_changes = Vec::new();
            let mut convert = |img: Option<mysql::binlog::row::BinlogRow>,
                               before: Option<&Vec<Option<Value>>>|
             -> Result<Option<Vec<Option<Value>>>> {
                let Some(img) = img else { return Ok(None) };
                let mut out = Vec::with_capacity(img.len());
                for (i, column) in img.columns_ref().iter().enumerate() {
                    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
                    let ty = table
                        .types
                        .get(i)
                        .copied()
                        .unwrap_or(ColumnType::MYSQL_TYPE_STRING);
                    let old = before.and_then(|b| b.get(i)).and_then(|v| v.as_ref());
                    let value = match img.as_ref(i) {
                        None => None,
                        // MySQL's partial JSON update: the change, applied to the before
                        // image; kept as an expression when the before image has no value.
                        Some(BinlogValue::JsonDiff(diffs)) if old.is_none() => {
                            json_changes.push(JsonChange {
                                column: i,
                                expression: json_change_expression(i, diffs).map_err(|e| {
                                    anyhow!(
                                        "{}.{} column {}: {e}",
                                        table.database,
                                        table.table,
                                        i + 1
                                    )
                                })?,
                            });
                            None
                        }
                        Some(BinlogValue::JsonDiff(diffs)) => Some(json_after_diffs(old, diffs)),
                        Some(v) => Some(from_binlog(v, ty, unsigned)),
                    };
                    out.push(match value {
                        None => None,
                        Some(v) => Some(v.map_err(|e| {
                            anyhow!("{}.{} column {}: {e}", table.database, table.table, i + 1)
                        })?),
                    });
                }
                Ok(Some(out))
            };
            let before = convert(before, None)?;
            let after = convert(after, before.as_ref())?;
            rows.push(RowImage {
                before,
                after,
                json_changes,
            });
        }
        Ok(Body::Rows {
            kind,
            table: table.clone(),
            rows,
        })
    }
}

/// A partial JSON update as `mysqlbinlog -v` shows it: nested `JSON_REPLACE`,
/// `JSON_INSERT` and `JSON_REMOVE` calls on the column's old value `@N`.
fn json_change_expression(
    column: usize,
    diffs: &[mysql::binlog::jsondiff::JsonDiff<'_>],
) -> std::result::Result<String, String> {
    use mysql::binlog::jsondiff::JsonDiffOperation as O;
    let mut expression = format!("@{}", column + 1);
    for d in diffs {
        let function = match d.operation() {
            O::REPLACE => "JSON_REPLACE",
            O::INSERT => "JSON_INSERT",
            O::REMOVE => "JSON_REMOVE",
        };
        let path = quote_str(&d.path_str());
        expression = match d.value() {
            Some(v) => {
                let value = quote_str(&super::value::json_text(v)?);
                format!("{function}({expression}, {path}, CAST({value} AS JSON))")
            }
            None => format!("{function}({expression}, {path})"),
        };
    }
    Ok(expression)
}

fn table_map(t: &TableMapEvent<'_>) -> Result<TableMap> {
    let count = t.columns_count() as usize;
    let mut types = Vec::with_capacity(count);
    for i in 0..count {
        let ty = t
            .get_column_type(i)
            .map_err(|e| {
                anyhow!(
                    "table map of {}.{}: {e:?}",
                    t.database_name(),
                    t.table_name()
                )
            })?
            .unwrap_or(ColumnType::MYSQL_TYPE_STRING);
        types.push(ty);
    }
    let extractor = OptionalMetaExtractor::new(t.iter_optional_meta()).ok();
    let names = extractor
        .as_ref()
        .map(|m| {
            m.iter_column_name()
                .filter_map(|n| n.ok().map(|n| n.name().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    // Charsets are listed for the character columns, in order (as the parser reads them).
    let mut charsets = extractor.as_ref().map(|m| m.iter_charset());
    let binary = types
        .iter()
        .map(|ty| {
            ty.is_character_type()
                && matches!(charsets.as_mut().and_then(|c| c.next()), Some(Ok(63)))
        })
        .collect();
    let (mut enums, mut sets) = (Vec::new(), Vec::new());
    for field in t.iter_optional_meta() {
        let Ok(field) = field else { break };
        match field {
            OptionalMetadataField::EnumStrValue(columns) => {
                for c in columns.iter_values().map_while(|c| c.ok()) {
                    enums.push(c.values().iter().map(|v| v.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(columns) => {
                for c in columns.iter_values().map_while(|c| c.ok()) {
                    sets.push(c.values().iter().map(|v| v.value().into_owned()).collect());
                }
            }
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
    let members = types
        .iter()
        .map(|ty| match ty {
            ColumnType::MYSQL_TYPE_ENUM => enums.next().unwrap_or_default(),
            ColumnType::MYSQL_TYPE_SET => sets.next().unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect();
    let widths = types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let meta = t.get_column_metadata(i).unwrap_or_default();
            match ty {
                ColumnType::MYSQL_TYPE_TIME2
                | ColumnType::MYSQL_TYPE_DATETIME2
                | ColumnType::MYSQL_TYPE_TIMESTAMP2 => meta.first().map_or(0, |&d| d.min(6) as u16),
                // BIT(n): n / 8 whole bytes and n % 8 bits, stored as [bits, bytes].
                ColumnType::MYSQL_TYPE_BIT => match meta {
                    [bits, bytes, ..] => *bytes as u16 * 8 + *bits as u16,
                    _ => 0,
                },
                _ => 0,
            }
        })
        .collect();
    Ok(TableMap {
        table_id: t.table_id(),
        database: t.database_name().into_owned(),
        table: t.table_name().into_owned(),
        types,
        names,
        members,
        widths,
        binary,
    })
}

/// The event type a pre-GA 5.1 build (`5.1.x-a_drop5p`, `5.2.2-a_drop6p`) meant by its
/// type codes 16–22, as MySQL's own reader maps them.
fn pre_ga_type(pre_ga: bool, ty: u8) -> Option<u8> {
    if !pre_ga {
        return None;
    }
    Some(match ty {
        16 => 19, // TABLE_MAP
        17 => 20, // PRE_GA_WRITE_ROWS
        18 => 21, // PRE_GA_UPDATE_ROWS
        19 => 22, // PRE_GA_DELETE_ROWS
        20 => 16, // XID
        21 => 17, // BEGIN_LOAD_QUERY
        22 => 18, // EXECUTE_LOAD_QUERY
        _ => return None,
    })
}

/// An event type's name as MySQL and MariaDB call it (`WRITE_ROWS_EVENT`, `GTID_LIST`), or
/// its number when neither knows it.
pub fn type_name(code: u8) -> String {
    let mariadb = match code {
        mariadb::ANNOTATE_ROWS => Some("ANNOTATE_ROWS_EVENT"),
        mariadb::BINLOG_CHECKPOINT => Some("BINLOG_CHECKPOINT_EVENT"),
        mariadb::GTID => Some("GTID_EVENT (MariaDB)"),
        mariadb::GTID_LIST => Some("GTID_LIST_EVENT"),
        mariadb::START_ENCRYPTION => Some("START_ENCRYPTION_EVENT"),
        mariadb::QUERY_COMPRESSED => Some("QUERY_COMPRESSED_EVENT"),
        mariadb::FIRST_ROWS_COMPRESSED..=mariadb::LAST_ROWS_COMPRESSED => {
            Some("compressed ROWS_EVENT (MariaDB)")
        }
        _ => None,
    };
    match (mariadb, mysql::binlog::EventType::try_from(code)) {
        (Some(name), _) => name.to_string(),
        (None, Ok(ty)) => format!("{ty:?}"),
        (None, Err(_)) => format!("type {code}"),
    }
}

/// Parses the 19-byte header at the start of `frame`.
/// Runs the parser on an event: it indexes into column metadata without bounds checks,
/// and a damaged event must end in an error, not bring the task down.
fn unpanicked<T>(type_code: u8, parse: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or_else(|_| {
        Err(anyhow!(
            "event of type {type_code} is malformed (its column metadata does not match its data)"
        ))
    })
}

pub fn header(frame: &[u8]) -> Result<Header> {
    let h = frame.get(..HEADER_LEN).ok_or_else(|| {
        anyhow!(
            "an event header needs {HEADER_LEN} bytes, only {} are left",
            frame.len()
        )
    })?;
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let header = Header {
        timestamp: u32_at(0),
        type_code: h[4],
        server_id: u32_at(5),
        size: u32_at(9),
        next_position: u32_at(13),
        flags: u16::from_le_bytes([h[17], h[18]]),
    };
    if (header.size as usize) < HEADER_LEN {
        bail!(
            "event of type {} claims a size of {} bytes, less than its header",
            header.type_code,
            header.size
        );
    }
    Ok(header)
}

/// What the last four bytes of an event frame are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Crc {
    /// A checksum to verify (when the format description says events carry one).
    Verify,
    /// A checksum the caller has verified.
    Checked,
    /// No checksum: events inside a TRANSACTION_PAYLOAD.
    Absent,
}

fn verify_crc(frame: &[u8], header: Header) -> Result<()> {
    if frame.len() < HEADER_LEN + 4 {
        bail!(
            "event of type {} too short for its checksum",
            header.type_code
        );
    }
    let (data, sum) = frame.split_at(frame.len() - 4);
    let expected = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    let got = event_crc32(data);
    if got != expected {
        bail!(
            "checksum mismatch in an event of type {} ({got:#010x}, the event says {expected:#010x}): the binlog is damaged",
            header.type_code
        );
    }
    Ok(())
}

/// The CRC32 of an event's bytes before its checksum (`data` holds at least a header).
pub(crate) fn event_crc32(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    // LOG_EVENT_BINLOG_IN_USE_F is cleared when a file is closed, so it is not summed.
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&data[..HEADER_LEN]);
    head[17] &= !1;
    hasher.update(&head);
    hasher.update(&data[HEADER_LEN..]);
    hasher.finalize()
}

fn uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
