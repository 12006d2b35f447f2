//! Reading a binlog file (for `tidemark binlog inspect` and offline tests): one event at
//! a time, so memory stays small whatever the file's size.

use super::event::{header, Decoder, Event};
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
