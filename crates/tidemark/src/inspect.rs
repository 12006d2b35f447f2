//! `tidemark binlog inspect`: prints binlog events and their decoded rows, as text (in
//! the spirit of `mysqlbinlog -v`) or as JSON lines.

use crate::source::binlog::client::{self, StartAt};
use crate::source::binlog::{file, Body, Event, RowImage, RowsKind, TableMap};
use anyhow::Context;
use anyhow::Result;
use mysql::consts::ColumnType;
use std::io::Write;
use std::path::Path;
use tidemark_core::sql::{qualified, quote_ident};
use tidemark_core::Value;

/// Prints every event of a binlog file.
pub fn file(path: &Path, json: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    file::read(path, |offset, event| print(&mut out, offset, event, json))?;
    out.flush()?;
    Ok(())
}

/// What `binlog inspect --from` reads.
pub struct Remote<'a> {
    pub url: &'a str,
    /// `FILE:POS`; the first binlog file when neither this nor `gtid` is given.
    pub start: Option<&'a str>,
    /// A MySQL GTID set or a MariaDB GTID list to start after.
    pub gtid: Option<&'a str>,
    /// Keep reading new events instead of stopping at the current end of the binlog.
    pub follow: bool,
    pub server_id: u32,
    pub json: bool,
}

/// Prints events read from a live source, as a replica.
pub fn remote(r: &Remote<'_>) -> Result<()> {
    let ep = crate::config::endpoint_from_url("--from", r.url, crate::config::TlsMode::Preferred)?;
    let mut c = crate::connect::connect_raw(&ep, crate::connect::Side::Source)?;
    let end = client::current_position(&mut c)?;
    let start = match (r.start, r.gtid) {
        (Some(_), Some(_)) => anyhow::bail!("give either --start FILE:POS or --gtid, not both"),
        (Some(s), None) => StartAt::parse_file_position(s)?,
        (None, Some(g)) if g.contains(':') => StartAt::MysqlGtid(g.to_string()),
        (None, Some(g)) => StartAt::MariadbGtid(g.to_string()),
        (None, None) => {
            use mysql::prelude::Queryable;
            let first: Option<String> = c
                .query_first("SHOW BINARY LOGS")
                .context("listing the source's binlogs (SHOW BINARY LOGS)")?;
            StartAt::File {
                file: first.ok_or_else(|| anyhow::anyhow!("the source has no binlog files"))?,
                position: 4,
            }
        }
    };
    drop(c);
    let mut reader = client::Reader::open(&ep, &start, r.server_id)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut at = match &start {
        StartAt::File { position, .. } => *position,
        _ => 4,
    };
    while let Some((event, pos)) = reader.next_event()? {
        if !matches!(event.body, Body::Heartbeat) {
            print(&mut out, at, &event, r.json)?;
            out.flush()?;
        }
        at = pos.offset;
        let reached_end = (pos.file.as_str(), pos.offset) >= (end.file.as_str(), end.offset);
        if !r.follow
            && reached_end
            && !matches!(
                event.body,
                Body::Rotate { .. } | Body::FormatDescription { .. }
            )
        {
            break;
        }
    }
    Ok(())
}

/// Prints one event at `offset`.
pub fn print(out: &mut impl Write, offset: u64, event: &Event, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", json_event(offset, event)?)?;
        return Ok(());
    }
    text_event(out, offset, event, "")
}

/// One event as a JSON object: the header fields, then the body's, the same at top level
/// and inside TRANSACTION_PAYLOAD (whose `events` are objects of this layout).
fn json_event(offset: u64, event: &Event) -> Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "offset": offset,
        "type": event.header.type_code,
        "timestamp": event.header.timestamp,
        "server_id": event.header.server_id,
        "next_position": event.header.next_position,
    });
    let body = match &event.body {
        Body::Rows { kind, table, rows } => serde_json::json!({
            "event": "rows",
            "kind": kind,
            "database": table.database,
            "table": table.table,
            "rows": rows.iter().map(|r| json_row_image(r, table)).collect::<Vec<_>>(),
        }),
        Body::TransactionPayload { events } => serde_json::json!({
            "event": "transaction_payload",
            "events": events
                .iter()
                .map(|e| json_event(offset, e))
                .collect::<Result<Vec<_>>>()?,
        }),
        other => serde_json::to_value(other)?,
    };
    if let (Some(v), serde_json::Value::Object(b)) = (v.as_object_mut(), body) {
        v.extend(b);
    }
    Ok(v)
}

fn text_event(out: &mut impl Write, offset: u64, event: &Event, indent: &str) -> Result<()> {
    let h = &event.header;
    write!(
        out,
        "{indent}# at {offset}  server {}  next {}  ",
        h.server_id, h.next_position
    )?;
    match &event.body {
        Body::FormatDescription {
            server_version,
            checksum,
        } => writeln!(
            out,
            "FORMAT_DESCRIPTION server version {server_version}, checksum {}",
            if *checksum { "CRC32" } else { "none" }
        )?,
        Body::Rotate { file, position } => writeln!(out, "ROTATE to {file}:{position}")?,
        Body::Query {
            database,
            statement,
            ..
        } => writeln!(out, "QUERY (database `{database}`) {statement}")?,
        Body::TableMap(t) => writeln!(
            out,
            "TABLE_MAP {} = table id {}",
            qualified(&t.database, &t.table),
            t.table_id
        )?,
        Body::Rows { kind, table, rows } => {
            let (verb, name) = (
                match kind {
                    RowsKind::Insert => "INSERT INTO",
                    RowsKind::Update => "UPDATE",
                    RowsKind::Delete => "DELETE FROM",
                },
                qualified(&table.database, &table.table),
            );
            let count = rows.len();
            writeln!(
                out,
                "{verb} {name} ({count} row{})",
                if count == 1 { "" } else { "s" }
            )?;
            for r in rows {
                writeln!(out, "{indent}### {verb} {name}")?;
                text_row(out, r, table, indent)?;
            }
        }
        Body::Xid { xid } => writeln!(out, "XID {xid} (COMMIT)")?,
        Body::Gtid { gtid, standalone } => writeln!(
            out,
            "GTID {gtid}{}",
            if *standalone { " (standalone)" } else { "" }
        )?,
        Body::AnonymousGtid => writeln!(out, "ANONYMOUS_GTID")?,
        Body::PreviousGtids { set } => writeln!(out, "PREVIOUS_GTIDS {set}")?,
        Body::GtidList { list } => writeln!(out, "GTID_LIST {list}")?,
        Body::BinlogCheckpoint { file } => writeln!(out, "BINLOG_CHECKPOINT {file}")?,
        Body::RowsQuery { statement } => writeln!(out, "ROWS_QUERY {statement}")?,
        Body::TransactionPayload { events } => {
            writeln!(out, "TRANSACTION_PAYLOAD ({} events)", events.len())?;
            for e in events {
                text_event(out, offset, e, "  ")?;
            }
        }
        Body::Heartbeat => writeln!(out, "HEARTBEAT")?,
        Body::Stop => writeln!(out, "STOP")?,
        Body::Other { name } => writeln!(out, "{name} (skipped)")?,
    }
    Ok(())
}

/// A row as `mysqlbinlog -v` prints it (`###   @N=value`), each value labelled with its
/// column's position in the table map, then its name when the source logged names;
/// a column the image leaves out is listed as such.
fn text_row(out: &mut impl Write, r: &RowImage, table: &TableMap, indent: &str) -> Result<()> {
    for (label, image) in [("WHERE", &r.before), ("SET", &r.after)] {
        let Some(values) = image else { continue };
        writeln!(out, "{indent}### {label}")?;
        for (i, v) in values.iter().enumerate() {
            let mut line = format!("{indent}###   @{}", i + 1).into_bytes();
            let change = (label == "SET")
                .then(|| r.json_changes.iter().find(|c| c.column == i))
                .flatten();
            match (v, change) {
                (Some(v), _) => {
                    line.push(b'=');
                    text_value(&mut line, v, &Column::of(table, i));
                }
                (None, Some(c)) => {
                    line.push(b'=');
                    line.extend_from_slice(c.expression.as_bytes());
                }
                (None, None) => line.extend_from_slice(b" (not in the image)"),
            }
            if let Some(name) = table.names.get(i) {
                line.extend_from_slice(format!(" /* {} */", quote_ident(name)).as_bytes());
            }
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(())
}

/// What rendering a value needs to know about its column, from the table map.
struct Column<'a> {
    ty: Option<ColumnType>,
    members: &'a [String],
    width: u16,
    binary: bool,
}

impl<'a> Column<'a> {
    fn of(table: &'a TableMap, i: usize) -> Column<'a> {
        Column {
            ty: table.types.get(i).copied(),
            members: table.members.get(i).map_or(&[], |m| m.as_slice()),
            width: table.widths.get(i).copied().unwrap_or(0),
            binary: table.binary.get(i).copied().unwrap_or(false),
        }
    }

    /// ENUM member text, when the table map carries the members.
    fn enum_member(&self, v: &Value) -> Option<&'a str> {
        match (self.ty, v) {
            (Some(ColumnType::MYSQL_TYPE_ENUM), Value::UInt(n)) if *n > 0 => {
                self.members.get(*n as usize - 1).map(String::as_str)
            }
            _ => None,
        }
    }

    /// SET member texts, comma-separated, when the table map carries the members.
    fn set_members(&self, v: &Value) -> Option<String> {
        match (self.ty, v) {
            (Some(ColumnType::MYSQL_TYPE_SET), Value::UInt(bits)) if !self.members.is_empty() => {
                Some(
                    (0..self.members.len().min(64))
                        .filter(|&b| (bits >> b) & 1 == 1)
                        .map(|b| self.members[b].as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }
            _ => None,
        }
    }

    /// Fractional digits to show: the column's, else 6 when the value has a fraction.
    fn fraction_digits(&self, micros: u32) -> usize {
        match self.width {
            0 if self.ty.is_none() && micros != 0 => 6,
            d => d as usize,
        }
    }
}

/// A value in `mysqlbinlog -v`'s text: numbers bare, strings quoted with control bytes,
/// `'` and `\` written as `\xNN`, temporal values quoted with the column's fractional
/// digits, BIT as `b'...'`; ENUM and SET as their member text when the table map has it.
fn text_value(out: &mut Vec<u8>, v: &Value, col: &Column<'_>) {
    if let Some(member) = col.enum_member(v) {
        return quoted_bytes(out, member.as_bytes());
    }
    if let Some(members) = col.set_members(v) {
        return quoted_bytes(out, members.as_bytes());
    }
    match v {
        Value::Null => out.extend_from_slice(b"NULL"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::Bit(bits) => {
            let width = match col.width {
                0 => (64 - bits.leading_zeros()).max(1) as usize,
                w => w.min(64) as usize,
            };
            out.extend_from_slice(format!("b'{bits:0width$b}'").as_bytes());
        }
        Value::Float(f) => out.extend_from_slice(f.to_string().as_bytes()),
        Value::Double(d) => out.extend_from_slice(d.to_string().as_bytes()),
        Value::Decimal(d) => out.extend_from_slice(d.as_bytes()),
        Value::Bytes(b) | Value::Json(b) => quoted_bytes(out, b),
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            out.push(b'\'');
            out.extend_from_slice(temporal_text(v, col).as_bytes());
            out.push(b'\'');
        }
    }
}

/// `mysqlbinlog`'s quoting (`my_b_write_quoted`): bytes below 0x20, `'` and `\` as
/// `\xNN`, every other byte as it is.
fn quoted_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'\'');
    for &b in bytes {
        if b < 0x20 || b == b'\'' || b == b'\\' {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

/// DATE, DATETIME, TIMESTAMP and TIME values as text, with the column's fractional digits
/// (the same in text and JSON output).
fn temporal_text(v: &Value, col: &Column<'_>) -> String {
    let fraction = |micros: u32| match col.fraction_digits(micros) {
        0 => String::new(),
        d => format!(".{:06}", micros)[..d + 1].to_string(),
    };
    match v {
        Value::Date(d) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        Value::DateTime(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}",
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second,
            fraction(d.micros)
        ),
        Value::Time(t) => format!(
            "{}{:02}:{:02}:{:02}{}",
            if t.negative { "-" } else { "" },
            t.hours,
            t.minutes,
            t.seconds,
            fraction(t.micros)
        ),
        _ => String::new(),
    }
}

fn json_row_image(r: &RowImage, table: &TableMap) -> serde_json::Value {
    let image = |values: &[Option<Value>]| -> serde_json::Value {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                None => serde_json::json!({ "missing": true }),
                Some(v) => json_value(v, &Column::of(table, i)),
            })
            .collect()
    };
    let mut row = serde_json::json!({
        "before": r.before.as_deref().map(image),
        "after": r.after.as_deref().map(image),
    });
    if !r.json_changes.is_empty() {
        row["json_changes"] = serde_json::json!(r
            .json_changes
            .iter()
            .map(|c| serde_json::json!({ "column": c.column + 1, "expression": c.expression }))
            .collect::<Vec<_>>());
    }
    row
}

/// A value as JSON: numbers as numbers, text as strings, temporal values as in the text
/// output, ENUM and SET as member text when known. Bytes are a string when the column is
/// not binary and they are UTF-8, else `{"hex": "..."}` (always so for a column the
/// source says is binary).
fn json_value(v: &Value, col: &Column<'_>) -> serde_json::Value {
    use serde_json::json;
    if let Some(member) = col.enum_member(v) {
        return json!(member);
    }
    if let Some(members) = col.set_members(v) {
        return json!(members);
    }
    let hex = |b: &[u8]| json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() });
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) | Value::Bit(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Double(d) => json!(d),
        Value::Decimal(s) => json!(s),
        Value::Bytes(b) if col.binary => hex(b),
        Value::Bytes(b) | Value::Json(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => hex(b),
        },
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => json!(temporal_text(v, col)),
    }
}
