//! Opening MySQL connections to either end, with the session settings that keep every
//! value unchanged on the way, and connection errors written for operators.

use crate::endpoint::{Endpoint, TlsMode};
use anyhow::{anyhow, Result};
use mysql::prelude::Queryable;
use mysql::{ClientIdentity, Conn, OptsBuilder, SslOpts};
use std::path::PathBuf;
use std::time::Duration;

/// Which end a connection is for; named in errors and decides the session settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn key(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

/// Session settings: raw bytes in and out (`binary`), UTC for TIMESTAMP, and the sql_mode
/// the dump tools restore with (`mariadb-dump`, `mydumper`: not strict, plus
/// `NO_AUTO_VALUE_ON_ZERO`), so that every value a source holds is accepted as it is,
/// whatever sql_mode wrote it: zero dates, invalid dates (`ALLOW_INVALID_DATES`), generated
/// columns whose expression overflows. Without strict mode a value that does not fit a
/// destination column becomes a warning instead of an error; the writers fail the chunk
/// or batch on it (`sink::mysql::writer::changed_values`).
pub(crate) const SESSION: &str = "SET NAMES binary, time_zone = '+00:00', \
    sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION'";

/// Sessions that write changes rather than load (the incremental applier, `verify
/// --repair` and its emitted SQL): unique checks on, foreign keys still not checked (the
/// order rows arrive in across tables is not the source's), and the variable the
/// destination triggers Tidemark created look for, so they do not fire for its rows.
pub(crate) const APPLY_SESSION: &str =
    "SET foreign_key_checks = 0, unique_checks = 1, @tidemark_apply = 1";

/// While loading: no foreign key checks, per session only; and every warning kept (not
/// only the first 64), so that none that changes a value goes unread. Unique checks stay
/// on: with both off, MariaDB 10.6+ writes the first transaction into an empty table as
/// a "bulk insert" (MDEV-24818) under a table lock that blocks every other pipeline
/// writing the table until it commits, and for LOAD DATA that costs the destination more
/// CPU, not less (docs/benchmarks.md: 64 tables of one chunk each). A duplicate in a
/// unique key is then always an error, never an index that silently holds both.
const LOADING: &str = "SET foreign_key_checks = 0, unique_checks = 1, max_error_count = 65535";

fn builder_with(ep: &Endpoint, read_timeout: Duration) -> OptsBuilder {
    let network = ep.timeouts.network;
    OptsBuilder::new()
        .ip_or_hostname(Some(ep.host.clone()))
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .pass(ep.password.clone())
        .tcp_connect_timeout(Some(connect_timeout(ep)))
        .read_timeout(Some(read_timeout))
        .write_timeout(Some(network))
        // A path that answers nothing (a frozen firewall or load balancer) is found by the
        // read and write timeouts; keepalive and the user timeout also find a dead host
        // or a half-open connection while a long statement keeps the connection quiet.
        .tcp_keepalive_time_ms(Some(KEEPALIVE_IDLE.as_millis() as u32))
        .tcp_keepalive_probe_interval_secs(Some(KEEPALIVE_INTERVAL.as_secs() as u32))
        .tcp_keepalive_probe_count(Some(KEEPALIVE_PROBES))
        .tcp_user_timeout_ms(Some(u32::try_from(network.as_millis()).unwrap_or(u32::MAX)))
        .prefer_socket(false)
}

/// Keepalive: first probe after this much silence, then every interval, dead after the
/// probes go unanswered (about a minute for a host that vanished).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// A TCP connect is answered in milliseconds by a live host: wait the network timeout,
/// but at most 30 s, so trying the next address of a failover list does not wait long.
fn connect_timeout(ep: &Endpoint) -> Duration {
    ep.timeouts.network.min(Duration::from_secs(30))
}

/// The driver's TLS settings for an endpoint's `tls` mode and files.
///
/// The driver trusts its built-in web roots plus one PEM bundle: `tls_ca` when given
/// (like the MySQL client's `--ssl-ca`), else the system trust store, so a CA installed
/// there once works for every task. Client certificates and keys are PEM files the
/// driver reads itself (PKCS#1, PKCS#8 or SEC1 keys).
fn ssl_opts(ep: &Endpoint) -> Option<SslOpts> {
    let opts = match ep.tls {
        TlsMode::Disabled => return None,
        TlsMode::Preferred | TlsMode::Required => SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        TlsMode::VerifyCa => SslOpts::default().with_danger_skip_domain_validation(true),
        TlsMode::VerifyIdentity => SslOpts::default(),
    };
    let files = &ep.tls_files;
    let roots = match (&files.ca, ep.tls) {
        (Some(ca), _) => Some(ca.clone()),
        (None, TlsMode::VerifyCa | TlsMode::VerifyIdentity) => system_trust_store(),
        (None, _) => None,
    };
    let identity = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some(ClientIdentity::new(cert.clone(), key.clone())),
        _ => None,
    };
    Some(
        opts.with_root_cert_path(roots)
            .with_client_identity(identity),
    )
}

/// The system's CA bundle: `SSL_CERT_FILE` (as OpenSSL reads it), else the first bundle
/// found where Linux distributions keep theirs.
fn system_trust_store() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from) {
        if file.is_file() {
            return Some(file);
        }
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Connects without session settings (prechecks read the server as it is).
pub fn connect_raw(ep: &Endpoint, side: Side) -> Result<Conn> {
    open(ep, side, ep.timeouts.read)
}

/// Opens a connection to `ep`, or, when it has `failover` addresses, to the first of
/// them that answers (the one that answered last is tried first).
fn open(ep: &Endpoint, side: Side, read_timeout: Duration) -> Result<Conn> {
    if ep.failover.is_empty() {
        return open_one(ep, side, read_timeout);
    }
    let mut first_error = None;
    for (index, candidate) in ep.failover.candidates(ep) {
        let opened = open_one(&candidate, side, read_timeout).and_then(|mut c| {
            // A cluster node that answers but takes no writes now (read-only, outside
            // the primary component) is no destination: the next address may be the
            // writer. Checked only here, when a connection is opened.
            if side == Side::Destination {
                not_writable(&mut c, &candidate)?;
            }
            Ok(c)
        });
        match opened {
            Ok(c) => {
                if index != ep.failover.active() {
                    tracing::warn!(
                        "{} {candidate} answers: connections go there from now on (`{}.failover`)",
                        side.key(),
                        side.key()
                    );
                    ep.failover.settle(index);
                }
                return Ok(c);
            }
            Err(e) => {
                tracing::warn!("{e:#}");
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| anyhow!("{} {ep}: no address to connect to", side.key())))
}

/// An error when the node `c` reaches takes no writes now (see
/// [`crate::sink::mysql::cluster::Topology::not_writable`]).
fn not_writable(c: &mut Conn, ep: &Endpoint) -> Result<()> {
    let topology = match crate::sink::mysql::cluster::Topology::detect(c) {
        Ok(t) => t,
        // A MySQL-protocol server without these variables is no cluster node.
        Err(e) if matches!(e.downcast_ref(), Some(mysql::Error::MySqlError(_))) => return Ok(()),
        Err(e) => return Err(e.context(format!("destination {ep}: reading what it is"))),
    };
    match topology.not_writable() {
        Some(why) => Err(anyhow!(
            "destination {ep} answers but is not writable ({why}): trying the next `destination.failover` address"
        )),
        None => Ok(()),
    }
}

/// The address of `ep` connections go to now (its own, or the `failover` address that
/// answered last), for log lines that name the node.
pub fn node(ep: &Endpoint) -> String {
    if ep.failover.is_empty() {
        return ep.to_string();
    }
    ep.failover
        .candidates(ep)
        .into_iter()
        .next()
        .map(|(_, c)| c.to_string())
        .unwrap_or_else(|| ep.to_string())
}

fn open_one(ep: &Endpoint, side: Side, read_timeout: Duration) -> Result<Conn> {
    let opts = builder_with(ep, read_timeout).ssl_opts(ssl_opts(ep));
    match Conn::new(opts) {
        Ok(c) => Ok(c),
        Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
            if ep.tls == TlsMode::Preferred =>
        {
            Conn::new(builder_with(ep, read_timeout)).map_err(|e| explain(e, ep, side))
        }
        Err(e) => Err(explain(e, ep, side)),
    }
}

/// A replica connection to the source: no session settings, and a read timeout after
/// which a silent stream (no events, no heartbeats) counts as a lost connection.
pub fn connect_replica(ep: &Endpoint, read_timeout: Duration) -> Result<Conn> {
    open(ep, Side::Source, read_timeout)
}

/// Connects and applies the session settings for copying data.
pub fn connect(ep: &Endpoint, side: Side) -> Result<Conn> {
    let mut c = connect_raw(ep, side)?;
    c.query_drop(SESSION).map_err(|e| explain(e, ep, side))?;
    if side == Side::Destination {
        c.query_drop(LOADING).map_err(|e| explain(e, ep, side))?;
    }
    Ok(c)
}

/// Connects for reads that must see every write the task made (verification): on a
/// Galera node, reads wait until the node applied what the cluster committed before
/// them (`wsrep_sync_wait = 1`), so a node behind the writer shows no false difference.
pub fn connect_for_reads(ep: &Endpoint, side: Side) -> Result<Conn> {
    let mut c = connect(ep, side)?;
    let wsrep: Option<String> = c
        .query_first("SHOW VARIABLES LIKE 'wsrep_on'")
        .map_err(|e| explain(e, ep, side))?
        .map(|(_, v): (String, String)| v);
    if wsrep.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
        c.query_drop("SET SESSION wsrep_sync_wait = 1")
            .map_err(|e| explain(e, ep, side))?;
    }
    Ok(c)
}

/// Turns a driver error into a message that says what is wrong and what to do. The
/// endpoint is shown as user@host:port, never with its password.
pub fn explain(e: mysql::Error, ep: &Endpoint, side: Side) -> anyhow::Error {
    let key = side.key();
    if let Some(tls) = tls_failure(&e) {
        return anyhow!("{key} {ep}: {}", explain_tls(tls, ep, key));
    }
    match &e {
        mysql::Error::MySqlError(m) if m.code == 1045 => {
            // The server says the same for a wrong password and for an account whose
            // `REQUIRE SSL / X509 / SUBJECT` the connection does not meet.
            let hint = if ep.tls_files.cert.is_none() {
                format!(" If the account requires a client certificate (REQUIRE X509, SUBJECT or ISSUER), set `{key}.tls_cert` and `{key}.tls_key`.")
            } else {
                String::new()
            };
            anyhow!(
                "{key} {ep}: access denied ({}). Check the user and password in `{key}.url`.{hint}",
                m.message
            )
        }
        mysql::Error::MySqlError(m) if m.code == 1044 || m.code == 1142 || m.code == 1227 => {
            anyhow!("{key} {ep}: missing privilege: {} (grant it to {} and retry)", m.message, ep.user)
        }
        mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(reason)) => anyhow!(
            "{key} {ep}: cannot connect ({}). Check that the server is running and that host and port in `{key}.url` are right.",
            reason.as_ref().map(|(_, msg, _)| msg.as_str()).unwrap_or("no answer")
        ),
        _ if timed_out_error(&e) => anyhow!(
            "{key} {ep}: no answer for {} s (`advanced.network_timeout_seconds`): the connection is considered lost. Check the network path to the server.",
            ep.timeouts.read.as_secs()
        ),
        mysql::Error::IoError(io) => anyhow!(
            "{key} {ep}: cannot connect ({io}). Check that the server is running and that host and port in `{key}.url` are right."
        ),
        mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => anyhow!(
            "{key} {ep}: the server does not offer TLS but `{key}.tls` requires it; enable TLS on the server or set tls = \"preferred\""
        ),
        mysql::Error::DriverError(mysql::DriverError::ConnectTimeout) => anyhow!(
            "{key} {ep}: connection timed out after {} s. Check the host, port and firewalls.",
            connect_timeout(ep).as_secs()
        ),
        mysql::Error::TlsError(t) => anyhow!("{key} {ep}: TLS failed ({t}). Check `{key}.tls` and the files `{key}.tls_ca`, `tls_cert` and `tls_key` name."),
        _ => anyhow!("{key} {ep}: {e}"),
    }
}

/// A failed statement's error for a log line: a timeout says which endpoint stopped
/// answering and for how long; anything else is the driver's text.
pub fn describe(e: &mysql::Error, ep: &Endpoint, side: Side) -> String {
    match e {
        _ if timed_out_error(e) => format!(
            "{} {ep}: no answer for {} s (`advanced.network_timeout_seconds`), connection lost",
            side.key(),
            ep.timeouts.read.as_secs()
        ),
        _ => e.to_string(),
    }
}

/// Whether an I/O error is a read or write that waited out its timeout.
pub fn timed_out(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The TLS library's own error inside a driver error (the handshake runs inside the
/// driver's first read or write, so it surfaces as an I/O error).
fn tls_failure(e: &mysql::Error) -> Option<&rustls::Error> {
    io_error(e)?.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The I/O error inside a driver error (the driver wraps it in two ways).
fn io_error(e: &mysql::Error) -> Option<&std::io::Error> {
    match e {
        mysql::Error::IoError(io) => Some(io),
        mysql::Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(io)) => {
            Some(io)
        }
        _ => None,
    }
}

/// Whether a driver error is a read or write that waited out its timeout.
fn timed_out_error(e: &mysql::Error) -> bool {
    io_error(e).is_some_and(timed_out)
}

/// A name the TLS library lists from a certificate (`DnsName("db.example")`,
/// `IpAddress(10.0.0.1)`), as an operator writes it.
fn certificate_name(listed: &str) -> &str {
    ["DnsName(\"", "IpAddress("]
        .iter()
        .find_map(|kind| listed.strip_prefix(kind))
        .map(|rest| rest.trim_end_matches(')').trim_end_matches('"'))
        .unwrap_or(listed)
}

/// What a failed TLS handshake means for the operator, and the fix.
fn explain_tls(e: &rustls::Error, ep: &Endpoint, key: &str) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    match e {
        E::InvalidCertificate(Cert::UnknownIssuer) => format!(
            "the server's certificate is signed by a CA Tidemark does not trust: set `{key}.tls_ca = \"/path/to/ca.pem\"` (the CA that signed it), or install that CA in the system trust store"
        ),
        E::InvalidCertificate(Cert::NotValidForNameContext { presented, .. }) => format!(
            "the server's certificate is for {}, not for {:?} (the host in `{key}.url`): connect by a name the certificate holds, or set `{key}.tls = \"verify-ca\"` to check only that a trusted CA signed it",
            presented.iter().map(|n| certificate_name(n)).collect::<Vec<_>>().join(", "),
            ep.host
        ),
        E::InvalidCertificate(Cert::NotValidForName) => format!(
            "the server's certificate does not name {:?} (the host in `{key}.url`): connect by a name the certificate holds, or set `{key}.tls = \"verify-ca\"` to check only that a trusted CA signed it",
            ep.host
        ),
        E::InvalidCertificate(Cert::ExpiredContext { not_after, .. }) => format!(
            "the server's certificate expired at {}: renew it on the server",
            crate::state::rfc3339(i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX))
        ),
        E::InvalidCertificate(Cert::Expired) => {
            "the server's certificate has expired: renew it on the server".to_string()
        }
        E::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet: check the clocks of this machine and of the server".to_string()
        }
        E::AlertReceived(Alert::CertificateRequired | Alert::HandshakeFailure)
            if ep.tls_files.cert.is_none() =>
        {
            format!("the server asks for a client certificate: set `{key}.tls_cert` and `{key}.tls_key`")
        }
        E::AlertReceived(
            Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown | Alert::DecryptError,
        ) if ep.tls_files.cert.is_some() => format!(
            "the server rejected the client certificate in `{key}.tls_cert` ({e}): use one signed by a CA the server trusts (its `ssl_ca`)"
        ),
        other => format!(
            "TLS failed ({other}). Check `{key}.tls` and the files `{key}.tls_ca`, `tls_cert` and `tls_key` name"
        ),
    }
}

/// Server identification used by prechecks and writers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServerInfo {
    pub version: String,
    pub mariadb: bool,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub lower_case_table_names: u32,
    pub max_allowed_packet: u64,
}

impl ServerInfo {
    pub fn read(c: &mut Conn) -> Result<ServerInfo> {
        let row: Option<(String, u32, u64)> = c.query_first(
            "SELECT CAST(@@version AS CHAR), @@lower_case_table_names, @@max_allowed_packet",
        )?;
        let (version, lctn, packet) =
            row.ok_or_else(|| anyhow!("the server returned no version"))?;
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        Ok(ServerInfo {
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
            major: nums.next().unwrap_or(0),
            minor: nums.next().unwrap_or(0),
            patch: nums.next().unwrap_or(0),
            version,
            lower_case_table_names: lctn,
            max_allowed_packet: packet,
        })
    }

    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }
}

/// Why a failed statement may succeed when tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transient {
    /// The connection is gone: reconnect, within `retry_connection_minutes`.
    Connection,
    /// A deadlock, a lock wait timeout or a killed query: retry, within
    /// `retry_other_minutes`.
    Other,
}

/// Classifies an error as worth retrying, or not (`None`: fail now).
pub fn transient(e: &mysql::Error) -> Option<Transient> {
    use mysql::DriverError as D;
    // A certificate the connection refused, or a server that refused ours, stays so.
    if let Some(rustls::Error::InvalidCertificate(_) | rustls::Error::AlertReceived(_)) =
        tls_failure(e)
    {
        return None;
    }
    match e {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => Some(Transient::Connection),
        mysql::Error::DriverError(
            D::CouldNotConnect(_) | D::ConnectTimeout | D::PacketOutOfSync | D::UnexpectedPacket,
        ) => Some(Transient::Connection),
        mysql::Error::MySqlError(m) => match m.code {
            // Server shutdown, too many connections, network errors, connection killed
            // (MariaDB's 1927), and the client-side "gone away" / "lost connection".
            1040 | 1053 | 1158..=1161 | 1927 | 2006 | 2013 => Some(Transient::Connection),
            // Deadlock, lock wait timeout, query interrupted.
            1213 | 1205 | 1317 => Some(Transient::Other),
            // Cluster refusals: a node that takes no writes now (read-only, outside the
            // primary component) is left like a lost connection, for the same or the
            // next writable address; certification conflicts are retried.
            code => match crate::sink::mysql::cluster::classify_code(code, &m.message) {
                crate::sink::mysql::cluster::Failure::NotWritable => Some(Transient::Connection),
                crate::sink::mysql::cluster::Failure::RetryTransaction => Some(Transient::Other),
                _ => None,
            },
        },
        _ => None,
    }
}

/// Connects again after a lost connection, retrying with a growing pause until
/// `deadline`; the last connection error is returned when the window closes.
pub fn reconnect(ep: &Endpoint, side: Side, deadline: std::time::Instant) -> Result<Conn> {
    let _retrying = crate::retrying::begin(format!("reconnecting to the {} {ep}", side.key()));
    let mut pause = Duration::from_millis(500);
    loop {
        match connect(ep, side) {
            Ok(c) => return Ok(c),
            Err(e) if std::time::Instant::now() + pause < deadline => {
                tracing::warn!("{} {ep}: reconnecting in {:?}: {e:#}", side.key(), pause);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                return Err(e.context(format!(
                    "the {} stayed unreachable for the whole retry window (`advanced.retry_connection_minutes`)",
                    side.key()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{CertificateError as Cert, Error as E};

    fn endpoint() -> Endpoint {
        crate::config::endpoint_from_url("x", "mysql://u@127.0.0.1:3306", TlsMode::VerifyIdentity)
            .unwrap()
    }

    /// A handshake failure as the driver returns it: the TLS error inside an I/O error.
    fn driver_error(e: E) -> mysql::Error {
        mysql::Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        ))
    }

    fn message(e: E) -> String {
        let ep = endpoint();
        let err = driver_error(e);
        assert_eq!(transient(&err), None, "a certificate error is not retried");
        format!("{:#}", explain(err, &ep, Side::Source))
    }

    #[test]
    fn certificate_errors_say_what_to_do() {
        let m = message(E::InvalidCertificate(Cert::UnknownIssuer));
        assert!(
            m.contains("signed by a CA Tidemark does not trust") && m.contains("source.tls_ca = "),
            "{m}"
        );
        let m = message(E::InvalidCertificate(Cert::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap().to_owned(),
            presented: vec!["DnsName(\"db.example.internal\")".into()],
        }));
        assert!(
            m.contains("db.example.internal")
                && m.contains("\"127.0.0.1\"")
                && m.contains("verify-ca"),
            "{m}"
        );
        let m = message(E::InvalidCertificate(Cert::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        }));
        assert!(
            m.contains("expired at 2023-11-14T22:13:20Z") && m.contains("renew"),
            "{m}"
        );
        for m in [format!("{m:?}"), m] {
            assert!(!m.contains("CodecError"), "{m}");
        }
    }

    #[test]
    fn a_lost_connection_is_still_transient() {
        // The driver reports a read timeout wrapped in its codec error.
        let timeout =
            mysql::Error::CodecError(mysql_common::proto::codec::error::PacketCodecError::Io(
                std::io::Error::from(std::io::ErrorKind::WouldBlock),
            ));
        assert_eq!(transient(&timeout), Some(Transient::Connection));
        let d = describe(&timeout, &endpoint(), Side::Destination);
        assert!(d.contains("no answer for 120 s"), "{d}");
        let m = format!("{:#}", explain(timeout, &endpoint(), Side::Destination));
        assert!(m.contains("network_timeout_seconds"), "{m}");
    }
}
