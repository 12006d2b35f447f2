//! Opening MySQL connections to either end, with the session settings that keep every
//! value unchanged on the way, and connection errors written for operators.

use crate::config::{Endpoint, TlsMode};
use anyhow::{anyhow, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, SslOpts};
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
const SESSION: &str = "SET NAMES binary, time_zone = '+00:00', \
    sql_mode = 'NO_AUTO_VALUE_ON_ZERO,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION'";

/// While loading: no foreign key or unique checks, per session only; and every warning
/// kept (not only the first 64), so that none that changes a value goes unread.
const LOADING: &str = "SET foreign_key_checks = 0, unique_checks = 0, max_error_count = 65535";

fn builder_with(ep: &Endpoint, read_timeout: Duration) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some(ep.host.clone()))
        .tcp_port(ep.port)
        .user(Some(ep.user.clone()))
        .pass(ep.password.clone())
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .read_timeout(Some(read_timeout))
        .prefer_socket(false)
}

fn ssl_opts(mode: TlsMode) -> Option<SslOpts> {
    match mode {
        TlsMode::Disabled => None,
        TlsMode::Preferred | TlsMode::Required => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        TlsMode::VerifyCa => Some(SslOpts::default().with_danger_skip_domain_validation(true)),
        TlsMode::VerifyIdentity => Some(SslOpts::default()),
    }
}

/// Connects without session settings (prechecks read the server as it is).
pub fn connect_raw(ep: &Endpoint, side: Side) -> Result<Conn> {
    open(ep, side, Duration::from_secs(3600))
}

fn open(ep: &Endpoint, side: Side, read_timeout: Duration) -> Result<Conn> {
    let opts = builder_with(ep, read_timeout).ssl_opts(ssl_opts(ep.tls));
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

/// Turns a driver error into a message that says what is wrong and what to do. The
/// endpoint is shown as user@host:port, never with its password.
pub fn explain(e: mysql::Error, ep: &Endpoint, side: Side) -> anyhow::Error {
    let key = side.key();
    match &e {
        mysql::Error::MySqlError(m) if m.code == 1045 => anyhow!(
            "{key} {ep}: access denied ({}). Check the user and password in `{key}.url`.",
            m.message
        ),
        mysql::Error::MySqlError(m) if m.code == 1044 || m.code == 1142 || m.code == 1227 => {
            anyhow!("{key} {ep}: missing privilege: {} (grant it to {} and retry)", m.message, ep.user)
        }
        mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(reason)) => anyhow!(
            "{key} {ep}: cannot connect ({}). Check that the server is running and that host and port in `{key}.url` are right.",
            reason.as_ref().map(|(_, msg, _)| msg.as_str()).unwrap_or("no answer")
        ),
        mysql::Error::IoError(io) => anyhow!(
            "{key} {ep}: cannot connect ({io}). Check that the server is running and that host and port in `{key}.url` are right."
        ),
        mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => anyhow!(
            "{key} {ep}: the server does not offer TLS but `{key}.tls` requires it; enable TLS on the server or set tls = \"preferred\""
        ),
        mysql::Error::DriverError(mysql::DriverError::ConnectTimeout) => anyhow!(
            "{key} {ep}: connection timed out after 10 s. Check the host, port and firewalls."
        ),
        mysql::Error::TlsError(t) => anyhow!("{key} {ep}: TLS failed ({t}). Check `{key}.tls` and the server certificate."),
        _ => anyhow!("{key} {ep}: {e}"),
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
            _ => None,
        },
        _ => None,
    }
}

/// Connects again after a lost connection, retrying with a growing pause until
/// `deadline`; the last connection error is returned when the window closes.
pub fn reconnect(ep: &Endpoint, side: Side, deadline: std::time::Instant) -> Result<Conn> {
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
