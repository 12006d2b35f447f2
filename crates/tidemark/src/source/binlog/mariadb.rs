//! MariaDB's own binlog events, which MySQL's event parser does not know.
//!
//! Layouts (all little-endian, after the 19-byte event header):
//! - ANNOTATE_ROWS (160): the statement text.
//! - BINLOG_CHECKPOINT (161): u32 name length, file name.
//! - GTID (162): u64 sequence number, u32 domain id, u8 flags; with FL_GROUP_COMMIT_ID
//!   a u64 commit id follows. The server id is the header's.
//! - GTID_LIST (163): u32 count (low 28 bits), then count × (u32 domain, u32 server,
//!   u64 sequence).
//! - QUERY_COMPRESSED (165) and the compressed row events (166–168 v1, 169–171 v2): the query text, or
//!   the rows part after the column bitmaps, compressed as one header byte `0x8N` (N = how
//!   many big-endian bytes of uncompressed length follow) and a zlib stream.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;

pub const ANNOTATE_ROWS: u8 = 160;
pub const BINLOG_CHECKPOINT: u8 = 161;
pub const GTID: u8 = 162;
pub const GTID_LIST: u8 = 163;
pub const START_ENCRYPTION: u8 = 164;
pub const QUERY_COMPRESSED: u8 = 165;
/// WRITE_ROWS_COMPRESSED_EVENT_V1 (166) … DELETE_ROWS_COMPRESSED_EVENT (171).
pub const FIRST_ROWS_COMPRESSED: u8 = 166;
pub const LAST_ROWS_COMPRESSED: u8 = 171;

/// A MariaDB GTID event: `domain-server-sequence`, and whether the transaction is a
/// single statement without BEGIN (DDL).
pub struct Gtid {
    pub gtid: String,
    pub standalone: bool,
}

pub fn gtid(body: &[u8], server_id: u32) -> Result<Gtid> {
    let seq = u64_at(body, 0)?;
    let domain = u32_at(body, 8)?;
    let flags = *body
        .get(12)
        .ok_or_else(|| anyhow!("GTID event too short"))?;
    Ok(Gtid {
        gtid: format!("{domain}-{server_id}-{seq}"),
        // FL_STANDALONE = 1
        standalone: flags & 1 != 0,
    })
}

pub fn gtid_list(body: &[u8]) -> Result<String> {
    let count = (u32_at(body, 0)? & 0x0fff_ffff) as usize;
    // 16 bytes per entry must be there before the count sizes anything.
    if count > body.len().saturating_sub(4) / 16 {
        bail!(
            "GTID_LIST claims {count} entries but has {} bytes",
            body.len()
        );
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = 4 + i * 16;
        out.push(format!(
            "{}-{}-{}",
            u32_at(body, at)?,
            u32_at(body, at + 4)?,
            u64_at(body, at + 8)?
        ));
    }
    Ok(out.join(","))
}

pub fn binlog_checkpoint(body: &[u8]) -> Result<String> {
    let len = u32_at(body, 0)? as usize;
    let name = body
        .get(4..4 + len)
        .ok_or_else(|| anyhow!("BINLOG_CHECKPOINT event too short"))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// Inflates a compressed field; returns the data and how many input bytes it used.
pub fn uncompress(data: &[u8]) -> Result<Vec<u8>> {
    let head = *data
        .first()
        .ok_or_else(|| anyhow!("empty compressed field"))?;
    if head & 0xe0 != 0x80 {
        bail!("compressed field has an unknown header byte {head:#04x}");
    }
    let lenlen = (head & 0x07) as usize;
    if !(1..=4).contains(&lenlen) {
        bail!("compressed field has a length of {lenlen} bytes");
    }
    let len_bytes = data
        .get(1..1 + lenlen)
        .ok_or_else(|| anyhow!("compressed field too short"))?;
    let len = len_bytes.iter().fold(0usize, |a, b| a << 8 | *b as usize);
    // The length comes from the event: do not trust it for an allocation up front.
    let mut out = Vec::with_capacity(len.min(1 << 20));
    flate2::read::ZlibDecoder::new(&data[1 + lenlen..])
        .take(len as u64)
        .read_to_end(&mut out)
        .context("inflating a compressed event")?;
    if out.len() != len {
        bail!(
            "compressed event inflated to {} bytes, {len} expected",
            out.len()
        );
    }
    Ok(out)
}

/// Rebuilds a QUERY_COMPRESSED event (header + body, no checksum) as a plain QUERY event.
pub fn inflate_query(frame: &[u8], post_header_len: usize) -> Result<Vec<u8>> {
    // Post-header: thread id 4, exec time 4, db length 1, error code 2, status length 2.
    let body = frame
        .get(19..)
        .ok_or_else(|| anyhow!("query event too short"))?;
    let db_len = *body
        .get(8)
        .ok_or_else(|| anyhow!("query event too short"))? as usize;
    let status_len = u16::from_le_bytes([
        *body
            .get(11)
            .ok_or_else(|| anyhow!("query event too short"))?,
        *body
            .get(12)
            .ok_or_else(|| anyhow!("query event too short"))?,
    ]) as usize;
    let query_at = post_header_len + status_len + db_len + 1;
    let query = body
        .get(query_at..)
        .ok_or_else(|| anyhow!("query event too short"))?;
    let mut out = frame[..19 + query_at].to_vec();
    out.extend_from_slice(&uncompress(query)?);
    out[4] = 2; // QUERY_EVENT
    set_size(&mut out);
    Ok(out)
}

/// Rebuilds a compressed rows event as the plain rows event of the same kind.
pub fn inflate_rows(frame: &[u8], post_header_len: usize) -> Result<Vec<u8>> {
    let ty = frame[4];
    let (plain, v2) = match ty {
        // WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1 → WRITE/UPDATE/DELETE_ROWS_V1
        166..=168 => (ty - 166 + 23, false),
        // WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT → WRITE/UPDATE/DELETE_ROWS (v2)
        169..=171 => (ty - 169 + 30, true),
        _ => bail!("event type {ty} is not a compressed rows event"),
    };
    let short = || anyhow!("compressed rows event too short");
    let body = frame.get(19..).ok_or_else(short)?;
    let mut at = post_header_len;
    if v2 {
        // v2 ends its post-header with the length of an extra-data block, itself included.
        let len_at = post_header_len.checked_sub(2).ok_or_else(short)?;
        let extra = u16::from_le_bytes([
            *body.get(len_at).ok_or_else(short)?,
            *body.get(len_at + 1).ok_or_else(short)?,
        ]) as usize;
        at += extra.saturating_sub(2);
    }
    let (columns, used) = lenenc(body.get(at..).ok_or_else(short)?)?;
    at += used;
    let bitmap = (columns as usize).div_ceil(8);
    // UPDATE carries two column bitmaps (before and after image).
    let updates = matches!(plain, 24 | 31);
    at += bitmap * if updates { 2 } else { 1 };
    let rows = body.get(at..).ok_or_else(short)?;
    let mut out = frame[..19 + at].to_vec();
    out.extend_from_slice(&uncompress(rows)?);
    out[4] = plain;
    set_size(&mut out);
    Ok(out)
}

fn set_size(frame: &mut [u8]) {
    let size = frame.len() as u32;
    frame[9..13].copy_from_slice(&size.to_le_bytes());
}

fn lenenc(b: &[u8]) -> Result<(u64, usize)> {
    let short = || anyhow!("length-encoded integer cut short");
    let first = *b.first().ok_or_else(short)?;
    Ok(match first {
        0..=250 => (first as u64, 1),
        252 => (
            u16::from_le_bytes([*b.get(1).ok_or_else(short)?, *b.get(2).ok_or_else(short)?]) as u64,
            3,
        ),
        253 => {
            let s = b.get(1..4).ok_or_else(short)?;
            (s[0] as u64 | (s[1] as u64) << 8 | (s[2] as u64) << 16, 4)
        }
        254 => (u64_at(b, 1)?, 9),
        _ => bail!("invalid length-encoded integer"),
    })
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let s = b
        .get(at..at + 4)
        .ok_or_else(|| anyhow!("event too short"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    let s = b
        .get(at..at + 8)
        .ok_or_else(|| anyhow!("event too short"))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn compressed_field_round_trip() {
        let text = b"INSERT INTO t VALUES (1), (2), (3)".repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        let mut field = vec![0x82, (text.len() >> 8) as u8, text.len() as u8];
        field.extend(z.finish().unwrap());
        assert_eq!(uncompress(&field).unwrap(), text);
        assert!(uncompress(&[0x12, 0]).is_err());
    }
}
