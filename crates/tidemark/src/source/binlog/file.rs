//! Reading a binlog file (for `tidemark binlog inspect` and offline tests): one event at
//! a time, so memory stays small whatever the file's size.

use super::event::{event_crc32, header, Decoder, Event, FORMAT_DESCRIPTION};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;

/// Decodes every event of a binlog file, calling `each` with the event's offset. A
/// damaged file ends in an error that names the offset.
pub fn read(path: &Path, each: impl FnMut(u64, &Event) -> Result<()>) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    read_from(&path.display().to_string(), reader, len, each)
}

/// As [`read`], for a file's contents already in memory; `name` is used in errors.
pub fn read_bytes(
    name: &str,
    data: &[u8],
    each: impl FnMut(u64, &Event) -> Result<()>,
) -> Result<()> {
    read_from(name, data, data.len() as u64, each)
}

/// Makes every event's CRC32 match its bytes again, in a file whose format description
/// says events carry one. The fuzz target and the damage tests use it so that damaged
/// event bodies reach the decoder instead of stopping at the checksum, as they would if
/// the damage happened before the server summed the event. Stops at the first event
/// whose size does not fit the data.
pub fn recompute_checksums(data: &mut [u8]) {
    let mut at = 4usize;
    let mut checksum = false;
    while let Some(h) = data.get(at..).and_then(|rest| header(rest).ok()) {
        let Some(end) = at.checked_add(h.size as usize).filter(|&e| e <= data.len()) else {
            break;
        };
        let frame = &mut data[at..end];
        if h.type_code == FORMAT_DESCRIPTION {
            checksum = format_description_has_crc32(frame);
        }
        if checksum && frame.len() >= HEADER_LEN + 4 {
            let body_end = frame.len() - 4;
            let crc = event_crc32(&frame[..body_end]);
            frame[body_end..].copy_from_slice(&crc.to_le_bytes());
        }
        at = end;
    }
}

/// Whether a FORMAT_DESCRIPTION event announces CRC32 checksums: servers from 5.6.1 on
/// end it with the algorithm byte (1 = CRC32) before its own checksum.
fn format_description_has_crc32(frame: &[u8]) -> bool {
    let version = frame
        .get(HEADER_LEN + 2..HEADER_LEN + 52)
        .unwrap_or_default();
    let numbers: Vec<u32> = String::from_utf8_lossy(version)
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let from_5_6_1 = numbers.as_slice() >= [5, 6, 1].as_slice();
    from_5_6_1 && frame.len() >= HEADER_LEN + 5 && frame[frame.len() - 5] == 1
}

fn read_from(
    name: &str,
    mut r: impl Read,
    len: u64,
    mut each: impl FnMut(u64, &Event) -> Result<()>,
) -> Result<()> {
    let mut magic = [0u8; 4];
    if len < 4 || r.read_exact(&mut magic).is_err() || magic != MAGIC {
        bail!("{name} is not a binlog file (it does not start with \\xfebin)");
    }
    let mut decoder = Decoder::new();
    let mut at = 4u64;
    let mut frame = Vec::with_capacity(64 << 10);
    while at < len {
        let left = len - at;
        if left < HEADER_LEN as u64 {
            bail!(
                "{name}: damaged event at offset {at}: an event header needs {HEADER_LEN} bytes, only {left} are left"
            );
        }
        frame.clear();
        frame.resize(HEADER_LEN, 0);
        r.read_exact(&mut frame)
            .with_context(|| format!("{name}: reading the event at offset {at}"))?;
        let h = header(&frame).with_context(|| format!("{name}: damaged event at offset {at}"))?;
        let size = h.size as u64;
        if size > left {
            bail!(
                "{name}: the event at offset {at} claims {size} bytes but the file ends after {left}: the file is truncated"
            );
        }
        frame.resize(size as usize, 0);
        r.read_exact(&mut frame[HEADER_LEN..])
            .with_context(|| format!("{name}: reading the event at offset {at}"))?;
        let event = decoder
            .decode(&frame)
            .with_context(|| format!("{name}: cannot decode the event at offset {at}"))?;
        each(at, &event)?;
        at += size;
    }
    Ok(())
}
