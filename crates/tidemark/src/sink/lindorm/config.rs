//! The Lindorm destination's task-file keys: `[destination]` with `type = "lindorm"`,
//! every key documented in `docs/task-file.md` ("Lindorm wide table destination").

use super::Lindorm;
use crate::endpoint::{EndpointKeys, Resolver, TlsMode};
use crate::sink::Destination;
use anyhow::{bail, Result};
use serde::Deserialize;

/// LindormTable's documented limit on rows per write request.
pub const MAX_ROWS_PER_WRITE: usize = 2_000;
/// LindormTable's documented limit on bytes per write request.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;
/// LindormTable's documented limit on the non-key values of one row.
pub const MAX_ROW_VALUE_BYTES: usize = 2 << 20;
/// LindormTable's documented limit on a row key.
pub const MAX_KEY_BYTES: usize = 2 << 10;
/// LindormTable's documented limit on key columns.
pub const MAX_KEY_COLUMNS: usize = 5;

/// `[destination]` of a LindormTable wide table engine (its MySQL-compatible port).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(rename = "type")]
    _kind: String,
    /// `mysql://USER:PASSWORD@HOST:33060` (`${ENV}` allowed); the engine's MySQL port.
    url: String,
    /// As for a MySQL destination; LindormTable serves TLS 1.2.
    #[serde(default)]
    tls: TlsMode,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    /// Create missing destination tables from the source's definitions (with the
    /// documented type mapping) in the schema phase. Off by default: the tables must
    /// exist and match, as the engine's own migration service requires.
    #[serde(default)]
    create_tables: bool,
    /// Rows per UPSERT request (1–2000, the engine's limit).
    #[serde(default = "default_rows")]
    batch_rows: usize,
    /// Bytes of SQL per UPSERT request (64 KB – 64 MB, the engine's limit).
    #[serde(default = "default_bytes")]
    batch_bytes: usize,
    /// Skip (log and count) rows over the engine's limits (2 MB of non-key values, a
    /// 2 KB key) instead of failing the task; the RocketMQ destination's key.
    #[serde(default)]
    filter_large_messages: bool,
}

fn default_rows() -> usize {
    500
}

fn default_bytes() -> usize {
    8 << 20
}

/// The validated keys.
#[derive(Clone, Debug)]
pub struct Config {
    pub create_tables: bool,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub filter_large_messages: bool,
}

/// Reads `[destination]` for [`crate::sink::KINDS`].
pub fn parse(table: toml::Table, r: &Resolver) -> Result<Destination> {
    let d: ConfigFile = r.keys("destination", table)?;
    let file = r.file.display();
    if !(1..=MAX_ROWS_PER_WRITE).contains(&d.batch_rows) {
        bail!(
            "invalid task file {file}: `destination.batch_rows` must be between 1 and {MAX_ROWS_PER_WRITE} (LindormTable's limit of rows per write request; got {})",
            d.batch_rows
        );
    }
    if !((64 << 10)..=MAX_REQUEST_BYTES).contains(&d.batch_bytes) {
        bail!(
            "invalid task file {file}: `destination.batch_bytes` must be between 65536 and {MAX_REQUEST_BYTES} (LindormTable's limit of 64 MB per write request; got {})",
            d.batch_bytes
        );
    }
    let keys = EndpointKeys {
        url: d.url,
        tls: d.tls,
        tls_ca: d.tls_ca,
        tls_cert: d.tls_cert,
        tls_key: d.tls_key,
    };
    let endpoint = r.endpoint("destination", &keys)?;
    Ok(Destination::new(Lindorm {
        endpoint,
        config: Config {
            create_tables: d.create_tables,
            batch_rows: d.batch_rows,
            batch_bytes: d.batch_bytes,
            filter_large_messages: d.filter_large_messages,
        },
    }))
}

#[cfg(test)]
mod tests {
    use crate::endpoint::Resolver;
    use std::path::Path;

    fn parse(text: &str) -> anyhow::Result<crate::sink::Destination> {
        let table: toml::Table = toml::from_str(text)?;
        let env = |_: &str| Some("pw".to_string());
        let r = Resolver {
            file: Path::new("/tmp/t.toml"),
            base: Path::new("/tmp"),
            env: &env,
            timeouts: Default::default(),
        };
        crate::sink::parse(table, &r)
    }

    #[test]
    fn keys_are_validated_against_the_engine_limits() {
        let d = parse("type = \"lindorm\"\nurl = \"mysql://u:${PW}@ld:33060\"").unwrap();
        assert_eq!(d.name(), "lindorm");
        assert!(!d.describe().contains("pw"), "{}", d.describe());
        // No schema step unless tables are to be created.
        assert!(d.schema().is_none());
        let d = parse("type = \"lindorm\"\nurl = \"mysql://u@ld\"\ncreate_tables = true").unwrap();
        assert!(d.schema().is_some());
        let e = d.verification_server().unwrap_err().to_string();
        assert!(e.contains("Lindorm"), "{e}");
        let e = parse("type = \"lindorm\"\nurl = \"mysql://u@ld\"\nbatch_rows = 2001")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("destination.batch_rows") && e.contains("2000"),
            "{e}"
        );
        let e = parse("type = \"lindorm\"\nurl = \"mysql://u@ld\"\nbatch_bytes = 100000000")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("destination.batch_bytes") && e.contains("64 MB"),
            "{e}"
        );
        let e = parse("type = \"lindorm\"\nurl = \"mysql://u@ld\"\ntopic = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `topic`"), "{e}");
    }
}
