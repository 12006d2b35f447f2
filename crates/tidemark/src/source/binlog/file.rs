//! Reading a binlog file from disk (for `tidemark binlog inspect` and offline tests).

use super::event::{header, Decoder, Event};
use anyhow::{bail, Context, Result};
use std::path::Path;

const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// Decodes every event of a binlog file, calling `each` with the event's offset. A
/// damaged file ends in an error that names the offset.
pub fn read(path: &Path, each: impl FnMut(u64, &Event) -> Result<()>) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    read_bytes(&path.display().to_string(), &data, each)
}

/// As [`read`], for a file's contents already in memory; `name` is used in errors.
pub fn read_bytes(
    name: &str,
    data: &[u8],
    mut each: impl FnMut(u64, &Event) -> Result<()>,
) -> Result<()> {
    if data.len() < 4 || data[..4] != MAGIC {
        bail!("{name} is not a binlog file (it does not start with \\xfebin)");
    }
    let mut decoder = Decoder::new();
    let mut at = 4usize;
    while at < data.len() {
        let h =
            header(&data[at..]).with_context(|| format!("{name}: damaged event at offset {at}"))?;
        let end = at + h.size as usize;
        if end > data.len() {
            bail!(
                "{name}: the event at offset {at} claims {} bytes but the file ends after {}: the file is truncated",
                h.size,
                data.len() - at
            );
        }
        let event = decoder
            .decode(&data[at..end])
            .with_context(|| format!("{name}: cannot decode the event at offset {at}"))?;
        each(at as u64, &event)?;
        at = end;
    }
    Ok(())
}
