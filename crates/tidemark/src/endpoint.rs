//! Connection endpoints and the task file's shared primitives: parsed `mysql://` URLs,
//! TLS modes and files, failover addresses, network timeouts, and `${ENV}` interpolation.
//!
//! Below both the task file (`config`) and the destinations (`sink::*`): each
//! destination kind parses its own `[destination]` keys with these, so neither imports
//! the other. Secrets come from the environment through `${NAME}` and never appear in
//! logs or errors: [`Endpoint`]'s `Display` and `Debug` leave the password out.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// `[advanced] network_timeout_seconds` by default: well above the longest statement of
/// a copy or an apply batch on a healthy server, and above InnoDB's default lock wait
/// (50 s), so a statement waiting for a lock ends with the server's own error (retried)
/// rather than being cut (see docs/task-file.md for the measurements).
pub const DEFAULT_NETWORK_TIMEOUT_SECONDS: u64 = 120;

/// `[advanced] long_statement_timeout_minutes` by default.
pub const DEFAULT_LONG_STATEMENT_TIMEOUT_MINUTES: u64 = 1440;

/// `tls`: whether and how connections are encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disabled,
    /// TLS when the server offers it, plain otherwise.
    #[default]
    Preferred,
    /// TLS, without checking the certificate.
    Required,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host.
    VerifyIdentity,
}

/// A parsed connection URL. `Display` and `Debug` never show the password.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub tls: TlsMode,
    pub tls_files: TlsFiles,
    pub timeouts: Timeouts,
    /// The destination's `failover` addresses (always empty for the source, whose
    /// failover is the binlog stream's business: see `config::Task::source_failover`).
    pub failover: Failover,
}

/// `[destination] failover`: other addresses of the destination, tried in turn when a
/// connection cannot be opened. Shared by every clone of the endpoint: once an address
/// answered, every later connection tries it first.
#[derive(Clone, Default)]
pub struct Failover {
    alternates: std::sync::Arc<Vec<Endpoint>>,
    /// 0: the endpoint's own address; i: `alternates[i - 1]`.
    active: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Failover {
    pub fn new(alternates: Vec<Endpoint>) -> Failover {
        Failover {
            alternates: std::sync::Arc::new(alternates),
            active: Default::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.alternates.is_empty()
    }

    /// Every address of `primary` (whose failover this is), the one that answered last
    /// first, each with its index for [`Failover::settle`].
    pub fn candidates(&self, primary: &Endpoint) -> Vec<(usize, Endpoint)> {
        let all: Vec<Endpoint> = std::iter::once(Endpoint {
            failover: Failover::default(),
            ..primary.clone()
        })
        .chain(self.alternates.iter().cloned())
        .collect();
        let first = self.active().min(all.len() - 1);
        all.into_iter()
            .enumerate()
            .cycle()
            .skip(first)
            .take(self.alternates.len() + 1)
            .collect()
    }

    /// The index of the address that answered last.
    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the address at `index` answered.
    pub fn settle(&self, index: usize) {
        self.active
            .store(index, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An endpoint's `tls_ca`, `tls_cert` and `tls_key`, resolved against the task file's
/// directory. Only paths: the files are read when a connection is opened, so their
/// contents never pass through the task's state or its messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How long a connection may wait on the network (`[advanced] network_timeout_seconds`
/// and `long_statement_timeout_minutes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect and write (and TCP's user timeout): a peer silent this long is a lost
    /// connection.
    pub network: std::time::Duration,
    /// How long a read waits for the server's answer: `network`, or `long_statement`
    /// on a connection from [`Endpoint::for_long_statements`].
    pub read: std::time::Duration,
    /// For statements that may legitimately run long (index builds, replicated DDL).
    pub long_statement: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let network = std::time::Duration::from_secs(DEFAULT_NETWORK_TIMEOUT_SECONDS);
        Timeouts {
            network,
            read: network,
            long_statement: std::time::Duration::from_secs(
                DEFAULT_LONG_STATEMENT_TIMEOUT_MINUTES * 60,
            ),
        }
    }
}

impl Endpoint {
    /// The same endpoint for statements that may run long on a healthy server (index
    /// builds, replicated DDL): reads wait `long_statement_timeout_minutes`; connecting,
    /// writing and keepalive still find a dead path within the network timeout.
    pub fn for_long_statements(&self) -> Endpoint {
        let mut ep = self.clone();
        ep.timeouts.read = ep.timeouts.long_statement;
        ep
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self}, tls={:?})", self.tls)
    }
}

/// `failover` addresses (`host:port`, port 3306 when left out) as endpoints with the
/// same user, password, TLS and timeouts as `primary`.
pub fn failover_endpoints(
    key: &str,
    addresses: &[String],
    primary: &Endpoint,
) -> Result<Vec<Endpoint>> {
    addresses
        .iter()
        .map(|addr| {
            let (host, port) = match addr.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>().map_err(|_| {
                        anyhow::anyhow!("`{key}`: {addr:?} has an invalid port; expected HOST:PORT")
                    })?,
                ),
                None => (addr.as_str(), 3306),
            };
            if host.is_empty() {
                bail!("`{key}`: {addr:?} has no host; expected HOST:PORT");
            }
            Ok(Endpoint {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
                failover: Failover::default(),
                ..primary.clone()
            })
        })
        .collect()
}

pub fn interpolate(key: &str, raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    interpolate_with(key, raw, env, &|_, value| value.to_string())
}

/// `${NAME}` → the variable's value, passed through `place(offset of the reference in
/// `raw`, value)` (which may encode it for where it lands).
fn interpolate_with(
    key: &str,
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
    place: &dyn Fn(usize, &str) -> String,
) -> Result<String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let offset = raw.len() - rest.len() + start;
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("`{key}`: unterminated `${{` (write `${{NAME}}` to read the environment variable NAME)");
        };
        let var = &after[..end];
        match env(var) {
            Some(v) => out.push_str(&place(offset, &v)),
            None => bail!("`{key}` refers to the environment variable {var}, which is not set: export it before running tidemark"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A connection URL with `${NAME}` references resolved. A reference in the user or
/// password part is percent-encoded first, so a password such as `p@ss:w/rd#1?%` reaches
/// the server as written instead of moving the URL's host, port or path.
fn interpolate_url(key: &str, raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    // The user and password sit between `://` and the last `@` before the host (a
    // `${NAME}` holds no `/`, so the authority ends at the first `/` after `://`).
    let authority = raw.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = raw[authority..]
        .find('/')
        .map_or(raw.len(), |i| authority + i);
    let userinfo_end = raw[authority..host_part].rfind('@').map(|i| authority + i);
    interpolate_with(key, raw, env, &|offset, value| match userinfo_end {
        Some(end) if offset >= authority && offset < end => percent_encode(value),
        _ => value.to_string(),
    })
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` → the byte (a `%` not followed by two hex digits stays as it is; `+` is a plus,
/// not a space: this is a URL's user information, not a form).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a connection URL given on the command line (`${ENV}` is interpolated).
pub fn endpoint_from_url(key: &str, raw: &str, tls: TlsMode) -> Result<Endpoint> {
    parse_url(key, raw, tls, &|name| std::env::var(name).ok())
}

pub fn parse_url(
    key: &str,
    raw: &str,
    tls: TlsMode,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint> {
    let text = interpolate_url(key, raw, env)?;
    // The URL may hold a password: errors describe it without echoing it.
    let url = url::Url::parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "`{key}` is not a valid URL ({e}); expected mysql://USER:PASSWORD@HOST:PORT"
        )
    })?;
    if url.scheme() != "mysql" && url.scheme() != "mariadb" {
        bail!("`{key}` must start with mysql:// (got {}://)", url.scheme());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("`{key}` has no host; expected mysql://USER:PASSWORD@HOST:PORT")
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let decode = percent_decode;
    let user = if url.username().is_empty() {
        "root".to_string()
    } else {
        decode(url.username())
    };
    let password = url.password().map(decode);
    if url.query().is_some() {
        bail!("`{key}`: URL parameters are not supported; use the task file's keys (e.g. `tls`)");
    }
    Ok(Endpoint {
        host,
        port: url.port().unwrap_or(3306),
        user,
        password,
        tls,
        tls_files: TlsFiles::default(),
        timeouts: Timeouts::default(),
        failover: Failover::default(),
    })
}

/// Resolves `KEY.tls_ca`, `tls_cert` and `tls_key`: `${ENV}` interpolated, relative to
/// the task file's directory, each file present; and only with a `tls` mode that uses
/// them.
pub fn tls_files(
    key: &str,
    tls: TlsMode,
    ca: Option<&str>,
    cert: Option<&str>,
    private_key: Option<&str>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsFiles> {
    let resolve = |name: &str, raw: Option<&str>| -> Result<Option<PathBuf>> {
        let Some(raw) = raw else { return Ok(None) };
        let full = format!("{key}.{name}");
        let path = PathBuf::from(interpolate(&full, raw, env)?);
        let path = if path.is_absolute() {
            path
        } else {
            base.join(path)
        };
        std::fs::File::open(&path).map_err(|e| {
            anyhow::anyhow!(
                "`{full}`: cannot read {} ({e}); give the path of a PEM file (relative paths start at the task file's directory)",
                path.display()
            )
        })?;
        Ok(Some(path))
    };
    let files = TlsFiles {
        ca: resolve("tls_ca", ca)?,
        cert: resolve("tls_cert", cert)?,
        key: resolve("tls_key", private_key)?,
    };
    if let Some(path) = &files.key {
        // Only the PEM markers are looked at; the key itself is never kept or shown.
        let text = std::fs::read(path)
            .with_context(|| format!("`{key}.tls_key`: cannot read {}", path.display()))?;
        if String::from_utf8_lossy(&text).contains("ENCRYPTED") {
            bail!("`{key}.tls_key`: {} is an encrypted private key, which Tidemark cannot use: write it unencrypted (`openssl pkey -in KEY -out PLAIN`) to a file only the task's user can read", path.display());
        }
    }
    if files.cert.is_some() != files.key.is_some() {
        bail!("`{key}.tls_cert` and `{key}.tls_key` go together: give the client certificate and its private key, or neither");
    }
    if tls == TlsMode::Disabled && (files.ca.is_some() || files.cert.is_some()) {
        bail!("`{key}.tls` is \"disabled\" but TLS files are given: set `{key}.tls` to \"verify-identity\" (or \"verify-ca\"), or remove the files");
    }
    if files.ca.is_some() && matches!(tls, TlsMode::Preferred | TlsMode::Required) {
        bail!("`{key}.tls_ca` is given but `{key}.tls` = {:?} does not check the server's certificate: set `{key}.tls = \"verify-identity\"` (or \"verify-ca\")", tls_name(tls));
    }
    Ok(files)
}

fn tls_name(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::Disabled => "disabled",
        TlsMode::Preferred => "preferred",
        TlsMode::Required => "required",
        TlsMode::VerifyCa => "verify-ca",
        TlsMode::VerifyIdentity => "verify-identity",
    }
}

/// What a `[destination]` (or `[source]`) table is read with: `${NAME}` from the
/// environment, files relative to the task file, the task's network timeouts.
pub struct Resolver<'a> {
    /// The task file.
    pub file: &'a Path,
    /// The task file's directory.
    pub base: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub timeouts: Timeouts,
}

impl Resolver<'_> {
    /// `${NAME}` references in `raw` (the value of `key`) resolved.
    pub fn interpolate(&self, key: &str, raw: &str) -> Result<String> {
        interpolate(key, raw, self.env)
    }

    /// A MySQL-protocol endpoint from its keys under `prefix` (`source`, `destination`):
    /// the URL, TLS mode and files, and the `failover` addresses.
    pub fn endpoint(&self, prefix: &str, keys: &EndpointKeys) -> Result<Endpoint> {
        let mut ep = parse_url(&format!("{prefix}.url"), &keys.url, keys.tls, self.env)?;
        ep.tls_files = tls_files(
            prefix,
            keys.tls,
            keys.tls_ca.as_deref(),
            keys.tls_cert.as_deref(),
            keys.tls_key.as_deref(),
            self.base,
            self.env,
        )?;
        ep.timeouts = self.timeouts;
        Ok(ep)
    }

    /// A table's keys as the kind's config struct; an unknown or mistyped key is an
    /// error naming it and its place in the file.
    pub fn keys<T: serde::de::DeserializeOwned>(
        &self,
        section: &str,
        table: toml::Table,
    ) -> Result<T> {
        toml::Value::Table(table).try_into().map_err(|e| {
            anyhow::anyhow!(
                "invalid task file {}: [{section}]: {e}",
                self.file.display()
            )
        })
    }
}

/// The connection keys every MySQL-protocol endpoint has in the task file.
#[derive(Debug, Deserialize)]
pub struct EndpointKeys {
    pub url: String,
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file of the CA certificate(s) to trust (`${ENV}` allowed, relative to
    /// the task file).
    pub tls_ca: Option<String>,
    /// A client certificate (PEM) and its private key, for accounts that `REQUIRE X509`.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}
