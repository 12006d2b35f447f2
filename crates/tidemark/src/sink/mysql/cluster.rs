//! What kind of MySQL-compatible destination a connection reaches, and what follows
//! from it: Galera, Group Replication, Aurora, PolarDB, TiDB or a single server
//! ([`Topology::detect`]); whether this node takes writes now; the rules a cluster
//! imposes on tables and DDL ([`Rules`]); its transaction size limits ([`Limits`]);
//! and what a failed write means ([`classify`]).
//!
//! A cluster refuses writes in ways a single server does not: a node outside the
//! primary component, a demoted writer, a certification conflict at COMMIT, a write-set
//! over the cluster's size limit. Each asks for a different reaction, so the writers
//! ask [`classify`] rather than matching codes themselves:
//!
//! * [`Failure::NotWritable`]: this node cannot take writes now (read-only, not in the
//!   primary component, offline, connection lost). Reconnect, to the same endpoint (a
//!   proxy or a DNS name that moves to the new writer) or the next writable one, and
//!   resume from the checkpoint with idempotent replay.
//! * [`Failure::RetryTransaction`]: a deadlock, lock wait timeout or certification
//!   conflict. Roll back and run the same transaction again on the same connection.
//! * [`Failure::TooLarge`]: the transaction exceeds the cluster's write-set limit. Split
//!   it (halve the rows) and go on; one row that is still too large is a real failure.
//! * [`Failure::Other`]: not a cluster condition; handled as before.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use std::collections::HashMap;

/// What the destination is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    /// A server on its own (or an asynchronous replica: see [`ReadOnly`]).
    Single,
    /// A Galera node (MariaDB Galera Cluster, Percona XtraDB Cluster).
    Galera {
        /// `wsrep_cluster_size`.
        cluster_size: u32,
        /// `wsrep_cluster_status`: `Primary`, `non-Primary` or `Disconnected`.
        cluster_status: String,
        /// `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`, …
        local_state: String,
        /// `wsrep_ready`.
        ready: bool,
        /// `wsrep_OSU_method`: how DDL is replicated (`TOI` blocks the cluster).
        osu_method: String,
        /// `wsrep_sync_wait`: which statements wait for the cluster before reading.
        sync_wait: u32,
    },
    /// A MySQL Group Replication member.
    GroupReplication {
        single_primary: bool,
        /// `ONLINE`, `RECOVERING`, `ERROR`, `UNREACHABLE`, … (empty when unknown).
        member_state: String,
        /// `PRIMARY` or `SECONDARY` (empty when unknown: MySQL before 8.0.2).
        member_role: String,
        online_members: u32,
    },
    /// Amazon Aurora MySQL (`aurora_version`).
    Aurora { version: String },
    /// Alibaba PolarDB for MySQL (`polardb_version`).
    PolarDb { version: String },
    /// TiDB (`@@version` names it).
    TiDb { version: String },
}

/// The read-only switches of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadOnly {
    /// `read_only`: refuses users without SUPER / READ_ONLY ADMIN (MariaDB's root
    /// writes anyway).
    pub read_only: bool,
    /// `super_read_only` (MySQL): refuses every user; Group Replication secondaries.
    pub super_read_only: bool,
    /// `innodb_read_only`: InnoDB itself refuses writes; Aurora and PolarDB readers.
    pub innodb_read_only: bool,
    /// `transaction_read_only` / `tx_read_only` as the global default.
    pub transaction_read_only: bool,
}

impl ReadOnly {
    pub fn any(&self) -> bool {
        self.read_only
            || self.super_read_only
            || self.innodb_read_only
            || self.transaction_read_only
    }

    fn names(&self) -> Vec<&'static str> {
        [
            (self.read_only, "read_only"),
            (self.super_read_only, "super_read_only"),
            (self.innodb_read_only, "innodb_read_only"),
            (self.transaction_read_only, "transaction_read_only"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// The largest transaction the destination accepts; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Galera `wsrep_max_ws_size`, bytes of one write-set.
    pub wsrep_max_ws_size: Option<u64>,
    /// Galera `wsrep_max_ws_rows` (0 on the server: no limit).
    pub wsrep_max_ws_rows: Option<u64>,
    /// `group_replication_transaction_size_limit` (0 on the server: no limit).
    pub group_replication_transaction_size_limit: Option<u64>,
    /// TiDB `performance.txn-total-size-limit`.
    pub tidb_txn_total_size_limit: Option<u64>,
    /// TiDB's limit on one row (key and value) in a transaction.
    pub tidb_txn_entry_size_limit: Option<u64>,
    /// Limits that could not be read and were taken as the documented defaults.
    pub assumed: Vec<String>,
}

/// The share of a byte limit a transaction is planned to use: row sizes are averages,
/// and a write-set also carries keys and headers.
const HEADROOM: u64 = 2;

impl Limits {
    /// The smallest byte limit on one transaction.
    pub fn max_bytes(&self) -> Option<u64> {
        [
            self.wsrep_max_ws_size,
            self.group_replication_transaction_size_limit,
            self.tidb_txn_total_size_limit,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The limit on rows in one transaction.
    pub fn max_rows(&self) -> Option<u64> {
        self.wsrep_max_ws_rows
    }

    /// How many rows of about `avg_row_bytes` one transaction may carry, at most
    /// `wanted`, at least 1: what full-copy chunks and apply batches are sized to.
    pub fn rows_per_transaction(&self, avg_row_bytes: u64, wanted: u64) -> u64 {
        let mut rows = wanted;
        if let Some(max) = self.max_rows() {
            rows = rows.min(max);
        }
        if let Some(max) = self.max_bytes() {
            rows = rows.min(max / HEADROOM / avg_row_bytes.max(1));
        }
        rows.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.max_bytes().is_none() && self.max_rows().is_none()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |name: &str, v: Option<u64>, bytes: bool| {
            if let Some(v) = v {
                parts.push(format!(
                    "{name} = {}",
                    if bytes { size(v) } else { v.to_string() }
                ));
            }
        };
        add("wsrep_max_ws_size", self.wsrep_max_ws_size, true);
        add("wsrep_max_ws_rows", self.wsrep_max_ws_rows, false);
        add(
            "group_replication_transaction_size_limit",
            self.group_replication_transaction_size_limit,
            true,
        );
        add("txn-total-size-limit", self.tidb_txn_total_size_limit, true);
        add("txn-entry-size-limit", self.tidb_txn_entry_size_limit, true);
        parts.join(", ")
    }
}

fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes & (MIB - 1) == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// What the destination demands of tables and DDL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rules {
    /// Every table needs a primary key (Galera certifies rows by key and cannot DELETE
    /// from keyless tables safely; Group Replication refuses them).
    pub primary_key_required: bool,
    /// Only InnoDB tables are replicated (MyISAM/Aria rows would stay on one node).
    pub innodb_only: bool,
    /// DDL runs as Total Order Isolation: the whole cluster waits while it runs.
    pub ddl_blocks_cluster: bool,
}

impl Rules {
    /// What is wrong with one table for this destination, each as an operator message
    /// naming the table and the fix (empty: nothing).
    pub fn check_table(
        &self,
        database: &str,
        table: &str,
        engine: &str,
        has_primary_key: bool,
    ) -> Vec<String> {
        let name = tidemark_core::sql::qualified(database, table);
        let mut problems = Vec::new();
        if self.primary_key_required && !has_primary_key {
            problems.push(format!(
                "{name} has no primary key, which this cluster requires (rows are replicated by key): \
                 add one on the source (ALTER TABLE {name} ADD PRIMARY KEY (...)) or leave the table out of [[objects]]"
            ));
        }
        if self.innodb_only && !engine.eq_ignore_ascii_case("InnoDB") {
            problems.push(format!(
                "{name} uses the {engine} engine, which this cluster does not replicate (its rows would stay on one node): \
                 convert it on the source (ALTER TABLE {name} ENGINE = InnoDB) or leave it out of [[objects]]"
            ));
        }
        problems
    }
}

/// What a connection reaches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Topology {
    pub kind: Kind,
    /// `@@version`.
    pub version: String,
    pub read_only: ReadOnly,
    pub limits: Limits,
}

/// Variables and status values by lower-case name.
pub type Values = HashMap<String, String>;

fn on(v: Option<&String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1" || v.eq_ignore_ascii_case("TRUE"))
}

fn number(v: Option<&String>) -> Option<u64> {
    v.and_then(|v| v.trim().parse().ok())
}

/// A limit where 0 means "none".
fn limit(v: Option<&String>) -> Option<u64> {
    number(v).filter(|n| *n > 0)
}

const VARIABLES: &[&str] = &[
    "version",
    "read_only",
    "super_read_only",
    "innodb_read_only",
    "transaction_read_only",
    "tx_read_only",
    "wsrep_on",
    "wsrep_osu_method",
    "wsrep_sync_wait",
    "wsrep_max_ws_size",
    "wsrep_max_ws_rows",
    "group_replication_single_primary_mode",
    "group_replication_transaction_size_limit",
    "group_replication_group_name",
    "aurora_version",
    "polardb_version",
    "tidb_txn_entry_size_limit",
];

const STATUS: &[&str] = &[
    "wsrep_cluster_size",
    "wsrep_cluster_status",
    "wsrep_local_state_comment",
    "wsrep_ready",
];

/// TiDB's documented defaults, used when its configuration cannot be read.
const TIDB_TXN_TOTAL_SIZE_LIMIT: u64 = 100 << 20;
const TIDB_TXN_ENTRY_SIZE_LIMIT: u64 = 6 << 20;

/// `SHOW GLOBAL {VARIABLES|STATUS}` restricted to `names`; absent names are absent.
fn show(c: &mut Conn, what: &str, names: &[&str]) -> Result<Values> {
    let list = names
        .iter()
        .map(|n| tidemark_core::sql::quote_str(n))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<(String, Option<String>)> = c
        .query(format!(
            "SHOW GLOBAL {what} WHERE Variable_name IN ({list})"
        ))
        .with_context(|| format!("reading the destination's global {}", what.to_lowercase()))?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.unwrap_or_default()))
        .collect())
}

/// A Group Replication member's view of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub state: String,
    pub role: String,
    pub online_members: u32,
}

fn group_member(c: &mut Conn) -> Option<Member> {
    const TABLE: &str = "performance_schema.replication_group_members";
    // MEMBER_ROLE exists since MySQL 8.0.2; older members report the state only.
    let own: Option<(String, String)> = c
        .query_first(format!(
            "SELECT MEMBER_STATE, MEMBER_ROLE FROM {TABLE} WHERE MEMBER_ID = @@server_uuid"
        ))
        .ok()
        .flatten()
        .or_else(|| {
            c.query_first::<String, _>(format!(
                "SELECT MEMBER_STATE FROM {TABLE} WHERE MEMBER_ID = @@server_uuid"
            ))
            .ok()
            .flatten()
            .map(|s| (s, String::new()))
        });
    let (state, role) = own?;
    let online: Option<u32> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {TABLE} WHERE MEMBER_STATE = 'ONLINE'"
        ))
        .ok()
        .flatten();
    Some(Member {
        state,
        role,
        online_members: online.unwrap_or(0),
    })
}

/// TiDB's transaction size limit: a configuration item, not a variable, readable only
/// with the CONFIG privilege.
fn tidb_total_limit(c: &mut Conn) -> Option<u64> {
    let rows: Vec<mysql::Row> = c
        .query("SHOW CONFIG WHERE type = 'tidb' AND name = 'performance.txn-total-size-limit'")
        .ok()?;
    rows.into_iter()
        .filter_map(|r| r.get::<String, _>("Value"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .min()
}

impl Topology {
    /// Reads what the connection reaches. Needs no privilege beyond connecting, except
    /// for TiDB's transaction limit (CONFIG), taken as its default when unreadable.
    pub fn detect(c: &mut Conn) -> Result<Topology> {
        let vars = show(c, "VARIABLES", VARIABLES)?;
        let status = if on(vars.get("wsrep_on")) {
            show(c, "STATUS", STATUS)?
        } else {
            Values::new()
        };
        let member = if vars.contains_key("group_replication_single_primary_mode") {
            group_member(c)
        } else {
            None
        };
        let tidb = vars
            .get("version")
            .is_some_and(|v| v.to_ascii_lowercase().contains("tidb"));
        let tidb_total = if tidb { tidb_total_limit(c) } else { None };
        Ok(Self::from_values(&vars, &status, member, tidb_total))
    }

    /// [`Topology::detect`] from values already read (`vars` and `status` by lower-case
    /// name; `member`: the Group Replication member row; `tidb_total`: TiDB's
    /// `txn-total-size-limit` when it could be read).
    pub fn from_values(
        vars: &Values,
        status: &Values,
        member: Option<Member>,
        tidb_total: Option<u64>,
    ) -> Topology {
        let version = vars.get("version").cloned().unwrap_or_default();
        let read_only = ReadOnly {
            read_only: on(vars.get("read_only")),
            super_read_only: on(vars.get("super_read_only")),
            innodb_read_only: on(vars.get("innodb_read_only")),
            transaction_read_only: on(vars
                .get("transaction_read_only")
                .or_else(|| vars.get("tx_read_only"))),
        };
        let mut limits = Limits::default();
        let kind = if on(vars.get("wsrep_on")) {
            limits.wsrep_max_ws_size = limit(vars.get("wsrep_max_ws_size"));
            limits.wsrep_max_ws_rows = limit(vars.get("wsrep_max_ws_rows"));
            Kind::Galera {
                cluster_size: number(status.get("wsrep_cluster_size")).unwrap_or(0) as u32,
                cluster_status: status
                    .get("wsrep_cluster_status")
                    .cloned()
                    .unwrap_or_default(),
                local_state: status
                    .get("wsrep_local_state_comment")
                    .cloned()
                    .unwrap_or_default(),
                ready: on(status.get("wsrep_ready")),
                osu_method: vars
                    .get("wsrep_osu_method")
                    .cloned()
                    .unwrap_or_else(|| "TOI".into()),
                sync_wait: number(vars.get("wsrep_sync_wait")).unwrap_or(0) as u32,
            }
        } else if let Some(m) = member.filter(|m| !m.state.eq_ignore_ascii_case("OFFLINE")) {
            limits.group_replication_transaction_size_limit =
                limit(vars.get("group_replication_transaction_size_limit"));
            Kind::GroupReplication {
                single_primary: on(vars.get("group_replication_single_primary_mode")),
                member_state: m.state,
                member_role: m.role,
                online_members: m.online_members,
            }
        } else if version.to_ascii_lowercase().contains("tidb") {
            limits.tidb_txn_total_size_limit = Some(tidb_total.unwrap_or_else(|| {
                limits.assumed.push(format!(
                    "txn-total-size-limit (its configuration could not be read: taken as the default {})",
                    size(TIDB_TXN_TOTAL_SIZE_LIMIT)
                ));
                TIDB_TXN_TOTAL_SIZE_LIMIT
            }));
            limits.tidb_txn_entry_size_limit = Some(
                limit(vars.get("tidb_txn_entry_size_limit")).unwrap_or(TIDB_TXN_ENTRY_SIZE_LIMIT),
            );
            Kind::TiDb {
                version: version.clone(),
            }
        } else if let Some(v) = vars.get("aurora_version") {
            Kind::Aurora { version: v.clone() }
        } else if let Some(v) = vars.get("polardb_version") {
            Kind::PolarDb { version: v.clone() }
        } else {
            Kind::Single
        };
        Topology {
            kind,
            version,
            read_only,
            limits,
        }
    }

    /// What the destination demands of tables and DDL.
    pub fn rules(&self) -> Rules {
        match &self.kind {
            Kind::Galera { osu_method, .. } => Rules {
                primary_key_required: true,
                innodb_only: true,
                ddl_blocks_cluster: osu_method.eq_ignore_ascii_case("TOI"),
            },
            Kind::GroupReplication { .. } => Rules {
                primary_key_required: true,
                innodb_only: true,
                ddl_blocks_cluster: false,
            },
            // Their storage is InnoDB on a shared volume: other engines are not
            // durable there (Aurora) or not offered (PolarDB).
            Kind::Aurora { .. } | Kind::PolarDb { .. } => Rules {
                innodb_only: true,
                ..Rules::default()
            },
            Kind::TiDb { .. } | Kind::Single => Rules::default(),
        }
    }

    /// Why this node cannot take writes now (`None`: it can, as far as it says).
    pub fn not_writable(&self) -> Option<String> {
        match &self.kind {
            Kind::Galera {
                cluster_status,
                ready,
                local_state,
                ..
            } if !cluster_status.eq_ignore_ascii_case("Primary") || !ready => {
                return Some(format!(
                    "this Galera node is not in the primary component (wsrep_cluster_status = {cluster_status}, \
                     wsrep_ready = {}, state {local_state}): it refuses queries with error 1047",
                    if *ready { "ON" } else { "OFF" }
                ))
            }
            Kind::GroupReplication {
                member_state,
                member_role,
                single_primary,
                ..
            } => {
                if !member_state.eq_ignore_ascii_case("ONLINE") {
                    return Some(format!(
                        "this Group Replication member is {member_state}, not ONLINE"
                    ));
                }
                if *single_primary && member_role.eq_ignore_ascii_case("SECONDARY") {
                    return Some(
                        "this Group Replication member is a SECONDARY of a single-primary group: \
                         only the PRIMARY takes writes"
                            .into(),
                    );
                }
            }
            _ => {}
        }
        if self.read_only.any() {
            let which = self.read_only.names().join(", ");
            let who = if self.read_only.super_read_only
                || self.read_only.innodb_read_only
                || self.read_only.transaction_read_only
            {
                "every user"
            } else {
                "users without SUPER or READ_ONLY ADMIN"
            };
            return Some(format!(
                "this node is read-only ({which} = ON): writes by {who} are refused"
            ));
        }
        None
    }

    /// What was found and what follows, as lines for the operator (precheck output).
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match &self.kind {
            Kind::Single => format!("destination: a single server ({})", self.version),
            Kind::Galera {
                cluster_size,
                cluster_status,
                local_state,
                ..
            } => format!(
                "destination: a Galera cluster of {cluster_size} node(s), {cluster_status} component; \
                 this node is {local_state} ({})",
                self.version
            ),
            Kind::GroupReplication {
                single_primary,
                member_state,
                member_role,
                online_members,
            } => format!(
                "destination: a MySQL Group Replication group ({}), {online_members} member(s) ONLINE; \
                 this member is {member_state}{} ({})",
                if *single_primary { "single-primary" } else { "multi-primary" },
                if member_role.is_empty() { String::new() } else { format!(", {member_role}") },
                self.version
            ),
            Kind::Aurora { version } => format!(
                "destination: Amazon Aurora MySQL {version} ({}); after a failover the old writer answers 1290 \
                 until clients reconnect through the cluster endpoint",
                self.version
            ),
            Kind::PolarDb { version } => format!(
                "destination: PolarDB for MySQL {version} ({}); use the primary endpoint, or a cluster endpoint \
                 with session consistency, so reads see the task's writes",
                self.version
            ),
            Kind::TiDb { version } => format!("destination: TiDB ({version})"),
        });
        if let Some(why) = self.not_writable() {
            lines.push(format!(
                "not writable: {why}; point [destination] at a writable node (or list others in `failover`)"
            ));
        }
        let rules = self.rules();
        if rules.primary_key_required {
            lines.push(
                "rule: every table needs a primary key (rows are replicated and certified by key)"
                    .into(),
            );
        }
        if rules.innodb_only {
            lines.push(
                "rule: only InnoDB tables are replicated; tables in other engines are refused"
                    .into(),
            );
        }
        if rules.ddl_blocks_cluster {
            lines.push(
                "rule: DDL runs as Total Order Isolation (wsrep_OSU_method = TOI): each schema change \
                 blocks writes on every node until it finishes"
                    .into(),
            );
        }
        if let Kind::Galera { sync_wait, .. } = &self.kind {
            if sync_wait & 1 == 0 {
                lines.push(format!(
                    "reads: wsrep_sync_wait = {sync_wait}: another node may not show the latest writes yet, so \
                     verification reads from the node that took the writes or sets wsrep_sync_wait"
                ));
            }
        }
        if !self.limits.is_empty() {
            lines.push(format!(
                "transaction limits: {}: full-copy chunks and apply batches are kept under them",
                self.limits.describe()
            ));
        }
        for a in &self.limits.assumed {
            lines.push(format!("assumed: {a}"));
        }
        lines
    }
}

/// What a failed write means on a cluster destination; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Failure {
    /// This node cannot take writes now: reconnect to the same or the next writable
    /// endpoint and resume from the checkpoint.
    NotWritable,
    /// Run the transaction again (conflict, deadlock, lock wait).
    RetryTransaction,
    /// Over the cluster's transaction size limit: split it.
    TooLarge,
    /// Anything else.
    Other,
}

/// Classifies a driver error.
pub fn classify(e: &mysql::Error) -> Failure {
    use mysql::DriverError as D;
    match e {
        mysql::Error::MySqlError(m) => classify_code(m.code, &m.message),
        // The connection is gone: the server died, or a proxy or the network cut it.
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => Failure::NotWritable,
        mysql::Error::DriverError(
            D::CouldNotConnect(_) | D::ConnectTimeout | D::PacketOutOfSync | D::UnexpectedPacket,
        ) => Failure::NotWritable,
        _ => Failure::Other,
    }
}

/// Classifies a server error by its code and message.
pub fn classify_code(code: u16, message: &str) -> Failure {
    let m = message.to_ascii_lowercase();
    match code {
        // ER_OPTION_PREVENTS_STATEMENT: only when the option is a read-only one (it
        // also reports --secure-file-priv and others, which no reconnect fixes).
        1290 if m.contains("read-only") || m.contains("read_only") => Failure::NotWritable,
        // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE (InnoDB
        // read-only: Aurora/PolarDB readers), ER_SERVER_OFFLINE_MODE.
        1792 | 1836 | 3032 => Failure::NotWritable,
        // Galera: "WSREP has not yet prepared node for application use" (outside the
        // primary component, or still joining).
        1047 => Failure::NotWritable,
        // Server shutdown, too many connections, network errors, connection killed,
        // disconnected for inactivity, and the client's "gone away" / "lost
        // connection".
        1040 | 1053 | 1158..=1161 | 1927 | 4031 | 2006 | 2013 => Failure::NotWritable,

        // Deadlock (Galera reports a certification conflict so: "Deadlock found when
        // trying to get lock; try restarting transaction"), lock wait timeout, query
        // interrupted, Group Replication's certification failure at COMMIT.
        1213 | 1205 | 1317 | 3101 => Failure::RetryTransaction,
        // TiDB: "can not retry select for update", write conflicts, "transaction is
        // retryable", schema changed during the transaction, PD/TiKV timeouts, TiKV
        // busy, lock resolve timeout, region unavailable.
        8002 | 8005 | 8022 | 8028 | 9001..=9005 | 9007 => Failure::RetryTransaction,

        // Galera over wsrep_max_ws_size: MariaDB 10.4+ says "Maximum writeset size
        // exceeded" (1105); older servers "Got error 5 during COMMIT" (1180), which is
        // also what wsrep_max_ws_rows gives ("wsrep_max_ws_rows exceeded").
        1105 if m.contains("writeset size") => Failure::TooLarge,
        1180 if m.contains("max_ws") || m.contains("got error 5 ") => Failure::TooLarge,
        // ER_TRANS_CACHE_FULL: over max_binlog_cache_size, on any server.
        1197 => Failure::TooLarge,
        // Group Replication over group_replication_transaction_size_limit: the plugin
        // fails the before_commit hook (ER_RUN_HOOK_ERROR). A member leaving the group
        // fails it too; a single row still refused after splitting means that.
        3100 if m.contains("before_commit") => Failure::TooLarge,
        // TiDB ErrTxnTooLarge (txn-total-size-limit). Its ErrEntryTooLarge (8025, one
        // row over txn-entry-size-limit) is not: splitting cannot make a row smaller.
        8004 => Failure::TooLarge,

        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn classifies_cluster_errors() {
        use Failure::*;
        let cases: &[(u16, &str, Failure)] = &[
            (1290, "The MariaDB server is running with the --read-only option so it cannot execute this statement", NotWritable),
            (1290, "The MySQL server is running with the --super-read-only option so it cannot execute this statement", NotWritable),
            (1290, "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement", Other),
            (1792, "Cannot execute statement in a READ ONLY transaction.", NotWritable),
            (1836, "Running in read-only mode", NotWritable),
            (1047, "WSREP has not yet prepared node for application use", NotWritable),
            (2013, "Lost connection to server during query", NotWritable),
            (2006, "Server has gone away", NotWritable),
            (1927, "Connection was killed", NotWritable),
            (1213, "Deadlock found when trying to get lock; try restarting transaction", RetryTransaction),
            (1205, "Lock wait timeout exceeded; try restarting transaction", RetryTransaction),
            (3101, "Plugin instructed the server to rollback the current transaction.", RetryTransaction),
            (9007, "Write conflict, txnStartTS=1, conflictStartTS=2", RetryTransaction),
            (1105, "Maximum writeset size exceeded", TooLarge),
            (1105, "Unknown error", Other),
            (1180, "Got error 5 \"Input/output error\" during COMMIT", TooLarge),
            (1180, "wsrep_max_ws_rows exceeded", TooLarge),
            (1180, "Got error 28 \"No space left on device\" during COMMIT", Other),
            (1197, "Multi-statement transaction required more than 'max_binlog_cache_size' bytes of storage", TooLarge),
            (3100, "Error on observer while running replication hook 'before_commit'.", TooLarge),
            (8004, "Transaction is too large, size: 104857600", TooLarge),
            (8025, "entry too large, the max entry size is 6291456", Other),
            (1062, "Duplicate entry '1' for key 'PRIMARY'", Other),
            (1146, "Table 'db.t' doesn't exist", Other),
        ];
        for (code, message, want) in cases {
            assert_eq!(classify_code(*code, message), *want, "{code} {message}");
            let e = mysql::Error::MySqlError(mysql::MySqlError {
                state: "HY000".into(),
                message: message.to_string(),
                code: *code,
            });
            assert_eq!(classify(&e), *want, "{code} {message}");
        }
        let lost = mysql::Error::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&lost), NotWritable);
    }

    #[test]
    fn reads_a_galera_node() {
        let vars = values(&[
            ("version", "10.11.19-MariaDB-0+deb12u1"),
            ("wsrep_on", "ON"),
            ("wsrep_osu_method", "TOI"),
            ("wsrep_sync_wait", "0"),
            ("wsrep_max_ws_size", "1048576"),
            ("wsrep_max_ws_rows", "0"),
            ("read_only", "OFF"),
            ("innodb_read_only", "OFF"),
        ]);
        let status = values(&[
            ("wsrep_cluster_size", "3"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_local_state_comment", "Synced"),
            ("wsrep_ready", "ON"),
        ]);
        let t = Topology::from_values(&vars, &status, None, None);
        assert!(
            matches!(
                t.kind,
                Kind::Galera {
                    cluster_size: 3,
                    ready: true,
                    ..
                }
            ),
            "{t:?}"
        );
        assert_eq!(t.not_writable(), None);
        assert_eq!(
            t.rules(),
            Rules {
                primary_key_required: true,
                innodb_only: true,
                ddl_blocks_cluster: true
            }
        );
        assert_eq!(t.limits.max_bytes(), Some(1 << 20));
        assert_eq!(t.limits.max_rows(), None);
        let report = t.report().join("\n");
        for want in [
            "Galera cluster of 3",
            "primary key",
            "InnoDB",
            "TOI",
            "wsrep_max_ws_size = 1 MiB",
            "wsrep_sync_wait = 0",
        ] {
            assert!(report.contains(want), "{want} missing:\n{report}");
        }

        // Outside the primary component.
        let status = values(&[
            ("wsrep_cluster_size", "1"),
            ("wsrep_cluster_status", "non-Primary"),
            ("wsrep_local_state_comment", "Initialized"),
            ("wsrep_ready", "OFF"),
        ]);
        let t = Topology::from_values(&vars, &status, None, None);
        let why = t.not_writable().expect("not writable");
        assert!(why.contains("non-Primary") && why.contains("1047"), "{why}");
        // RSU schema changes do not block the cluster.
        let rsu = values(&[("wsrep_on", "ON"), ("wsrep_osu_method", "RSU")]);
        assert!(
            !Topology::from_values(&rsu, &status, None, None)
                .rules()
                .ddl_blocks_cluster
        );
    }

    #[test]
    fn reads_group_replication_and_others() {
        let vars = values(&[
            ("version", "8.0.36"),
            ("group_replication_single_primary_mode", "ON"),
            ("group_replication_transaction_size_limit", "150000000"),
            ("super_read_only", "ON"),
            ("read_only", "ON"),
        ]);
        let secondary = Member {
            state: "ONLINE".into(),
            role: "SECONDARY".into(),
            online_members: 3,
        };
        let t = Topology::from_values(&vars, &Values::new(), Some(secondary), None);
        assert!(matches!(
            &t.kind,
            Kind::GroupReplication {
                single_primary: true,
                ..
            }
        ));
        assert!(t.not_writable().unwrap().contains("SECONDARY"));
        assert_eq!(t.limits.max_bytes(), Some(150_000_000));
        assert!(t.rules().primary_key_required);
        // The plugin loaded but not in a group: a single server.
        let offline = Member {
            state: "OFFLINE".into(),
            ..Member::default()
        };
        let t = Topology::from_values(&vars, &Values::new(), Some(offline), None);
        assert_eq!(t.kind, Kind::Single);
        assert!(t.not_writable().unwrap().contains("every user"));

        let tidb = values(&[("version", "8.0.11-TiDB-v7.5.1")]);
        let t = Topology::from_values(&tidb, &Values::new(), None, None);
        assert!(matches!(t.kind, Kind::TiDb { .. }));
        assert_eq!(t.limits.max_bytes(), Some(100 << 20));
        assert_eq!(t.limits.assumed.len(), 1);
        let t = Topology::from_values(&tidb, &Values::new(), None, Some(1 << 30));
        assert_eq!(t.limits.max_bytes(), Some(1 << 30));
        assert!(t.limits.assumed.is_empty());

        let aurora = values(&[
            ("version", "8.0.28"),
            ("aurora_version", "3.04.0"),
            ("innodb_read_only", "ON"),
        ]);
        let t = Topology::from_values(&aurora, &Values::new(), None, None);
        assert_eq!(
            t.kind,
            Kind::Aurora {
                version: "3.04.0".into()
            }
        );
        assert!(t.not_writable().unwrap().contains("innodb_read_only"));
        let polar = values(&[("version", "8.0.13"), ("polardb_version", "8.0.1.1.40")]);
        let t = Topology::from_values(&polar, &Values::new(), None, None);
        assert!(matches!(t.kind, Kind::PolarDb { .. }));
        assert!(t.rules().innodb_only && !t.rules().primary_key_required);

        let plain = values(&[
            ("version", "10.11.19-MariaDB"),
            ("wsrep_on", "OFF"),
            ("read_only", "ON"),
        ]);
        let t = Topology::from_values(&plain, &Values::new(), None, None);
        assert_eq!(t.kind, Kind::Single);
        let why = t.not_writable().unwrap();
        assert!(
            why.contains("read_only") && why.contains("READ_ONLY ADMIN"),
            "{why}"
        );
    }

    #[test]
    fn sizes_transactions_under_the_limits() {
        let none = Limits::default();
        assert_eq!(none.rows_per_transaction(1000, 5000), 5000);
        let ws = Limits {
            wsrep_max_ws_size: Some(1 << 20),
            ..Limits::default()
        };
        // Half of 1 MiB in rows of 1000 bytes.
        assert_eq!(ws.rows_per_transaction(1000, 5000), 524);
        assert_eq!(ws.rows_per_transaction(0, 100), 100);
        // A row larger than the limit: one row per transaction, never zero.
        assert_eq!(ws.rows_per_transaction(4 << 20, 100), 1);
        let rows = Limits {
            wsrep_max_ws_rows: Some(100),
            ..ws
        };
        assert_eq!(rows.rows_per_transaction(10, 5000), 100);
    }

    #[test]
    fn table_rules_name_the_table_and_the_fix() {
        let galera = Rules {
            primary_key_required: true,
            innodb_only: true,
            ddl_blocks_cluster: true,
        };
        assert!(galera.check_table("d", "t", "InnoDB", true).is_empty());
        let p = galera.check_table("d", "log", "MyISAM", false);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("`d`.`log` has no primary key") && p[0].contains("ADD PRIMARY KEY"),
            "{}",
            p[0]
        );
        assert!(
            p[1].contains("MyISAM") && p[1].contains("ENGINE = InnoDB"),
            "{}",
            p[1]
        );
        assert!(Rules::default()
            .check_table("d", "log", "MyISAM", false)
            .is_empty());
    }
}
