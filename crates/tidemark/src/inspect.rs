//! `tidemark binlog inspect`: prints binlog events and their decoded rows, as text (in
//! the spirit of `mysqlbinlog -v`) or as JSON lines.

use crate::source::binlog::client::{self, StartAt};
use crate::source::binlog::{file, Body, Event, RowImage};
use anyhow::Context;
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use tidemark_core::sql::{push_literal, qualified};
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
                "rows": rows.iter().map(|r| serde_json::json!({
                    "before": r.before.as_deref().map(json_row),
                    "after": r.after.as_deref().map(json_row),
                })).collect::<Vec<_>>(),
            }),
            other => serde_json::to_value(other)?,
        };
        if let (Some(v), serde_json::Value::Object(b)) = (v.as_object_mut(), body) {
            v.extend(b);
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let h = &event.header;
    write!(
        out,
        "# at {offset}  server {}  next {}  ",
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
        } => writeln!(out, "QUERY (database `{database}`) {statement}")?,
        Body::TableMap(t) => writeln!(
            out,
            "TABLE_MAP {} = table id {}",
            qualified(&t.database, &t.table),
            t.table_id
        )?,
        Body::Rows { kind, table, rows } => {
            writeln!(
                out,
                "{} {} ({} row{})",
                match kind {
                    crate::source::binlog::RowsKind::Insert => "INSERT INTO",
                    crate::source::binlog::RowsKind::Update => "UPDATE",
                    crate::source::binlog::RowsKind::Delete => "DELETE FROM",
                },
                qualified(&table.database, &table.table),
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            )?;
            for r in rows {
                text_row(out, r, &table.names)?;
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
                write!(out, "  ")?;
                print(out, offset, e, false)?;
            }
        }
        Body::Heartbeat => writeln!(out, "HEARTBEAT")?,
        Body::Stop => writeln!(out, "STOP")?,
        Body::Other { name } => writeln!(out, "{name} (skipped)")?,
    }
    Ok(())
}

fn text_row(out: &mut impl Write, r: &RowImage, names: &[String]) -> Result<()> {
    for (label, image) in [("WHERE", &r.before), ("SET", &r.after)] {
        let Some(values) = image else { continue };
        writeln!(out, "###   {label}")?;
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            let name = names
                .get(i)
                .map(|n| format!("`{n}`"))
                .unwrap_or_else(|| format!("@{}", i + 1));
            let mut lit = String::new();
            push_literal(&mut lit, v);
            writeln!(out, "###     {name}={lit}")?;
        }
    }
    Ok(())
}

fn json_row(values: &[Option<Value>]) -> serde_json::Value {
    values
        .iter()
        .map(|v| match v {
            None => serde_json::json!({ "missing": true }),
            Some(v) => json_value(v),
        })
        .collect()
}

/// A value as JSON: numbers as numbers, text as strings, bytes that are not UTF-8 as
/// `{"hex": "..."}`, temporal values in MySQL's text form.
pub fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) | Value::Bit(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Double(d) => json!(d),
        Value::Decimal(s) => json!(s),
        Value::Bytes(b) | Value::Json(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
        },
        Value::Date(d) => json!(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
        Value::DateTime(d) => json!(d.to_string()),
        Value::Time(t) => json!(t.to_string()),
    }
}
