//! The MySQL destination's task-file keys: `[destination]` with `type = "mysql"` (the
//! default), every key documented in `docs/task-file.md`.

use super::Mysql;
use crate::endpoint::{failover_endpoints, EndpointKeys, Failover, Resolver, TlsMode};
use crate::sink::Destination;
use anyhow::Result;
use serde::Deserialize;

/// `[destination]` of a MySQL (or MariaDB) server, as written in the task file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    /// `mysql://USER:PASSWORD@HOST:PORT` (`${ENV}` allowed).
    url: String,
    #[serde(default)]
    tls: TlsMode,
    /// A PEM file of the CA certificate(s) to trust (relative to the task file).
    tls_ca: Option<String>,
    /// A client certificate (PEM) and its private key, for accounts that `REQUIRE X509`.
    tls_cert: Option<String>,
    tls_key: Option<String>,
    /// Other addresses (`host:port`) of the destination, tried in turn when it cannot be
    /// reached; same user, password and TLS.
    #[serde(default)]
    failover: Vec<String>,
}

/// Reads `[destination]` for [`crate::sink::KINDS`].
pub fn parse(table: toml::Table, r: &Resolver) -> Result<Destination> {
    let d: ConfigFile = r.keys("destination", table)?;
    let keys = EndpointKeys {
        url: d.url,
        tls: d.tls,
        tls_ca: d.tls_ca,
        tls_cert: d.tls_cert,
        tls_key: d.tls_key,
    };
    let mut endpoint = r.endpoint("destination", &keys)?;
    endpoint.failover = Failover::new(failover_endpoints(
        "destination.failover",
        &d.failover,
        &endpoint,
    )?);
    Ok(Destination::new(Mysql { endpoint }))
}
