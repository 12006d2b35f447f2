//! The task file: one TOML file that says what to migrate, from where, to where, and how.
//!
//! Every key is documented with its default in `docs/task-file.md`. Unknown keys and
//! invalid values are errors that name the key, the position in the file and the allowed
//! values. Secrets come from the environment through `${NAME}` in URLs and never appear
//! in logs or errors: [`Endpoint`]'s `Display` and `Debug` leave the password out.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// The shared primitives live below both the task file and the destinations.
pub use crate::endpoint::{
    endpoint_from_url, Endpoint, Failover, Timeouts, TlsFiles, TlsMode,
    DEFAULT_NETWORK_TIMEOUT_SECONDS,
};
use crate::endpoint::{failover_endpoints, parse_url, tls_files};
// Where `sink/rocketmq/format/` reads it from.
pub use crate::sink::rocketmq::MessageFormat;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: Option<String>,
    source: EndpointFile,
    /// Read by the kind its `type` names (`crate::sink::KINDS`).
    destination: toml::Table,
    migration: Migration,
    #[serde(default)]
    full: FullOptions,
    #[serde(default)]
    incremental: IncrementalOptions,
    #[serde(default)]
    verification: VerificationOptions,
    #[serde(default)]
    state: StateOptions,
    #[serde(default)]
    advanced: Advanced,
    #[serde(default)]
    objects: Vec<ObjectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFile {
    /// What the source is: `mysql` (MySQL, MariaDB and compatibles) or `adb-mysql`.
    #[serde(rename = "type", default)]
    kind: SourceKind,
    url: String,
    #[serde(default)]
    tls: TlsMode,
    /// The replica server id for reading the binlog.
    server_id: Option<u32>,
    /// Other addresses (`host:port`) where the source's primary may be after a
    /// switchover; same user, password and TLS.
    #[serde(default)]
    failover: Vec<String>,
    /// A PEM file of the CA certificate(s) to trust (`${ENV}` allowed, relative to
    /// the task file).
    tls_ca: Option<String>,
    /// A client certificate (PEM) and its private key, for accounts that `REQUIRE X509`.
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

/// `[source] type`: how the source's schema, rows and changes are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// MySQL, MariaDB and servers compatible with them: one binary log for the server.
    #[default]
    Mysql,
    /// AnalyticDB for MySQL 3.0: ADB's `SHOW CREATE TABLE`, one binary log per table
    /// (`source/adb/`).
    AdbMysql,
}

/// `migration.types` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Schema,
    Full,
    Incremental,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictMode {
    /// A selected table that already exists on the destination fails the precheck.
    #[default]
    Fail,
    /// Proceed; destination rows whose key already exists are kept.
    Ignore,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameCase {
    /// Same as `source`.
    #[default]
    Default,
    Source,
    /// Lower-case when the destination has `lower_case_table_names` != 0.
    Destination,
    Lower,
    Upper,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub types: Vec<Phase>,
    #[serde(default)]
    pub on_conflicting_tables: ConflictMode,
    #[serde(default)]
    pub name_case: NameCase,
    /// Incremental only: start reading the binlog at `FILE:POS`.
    pub start_position: Option<String>,
    /// Incremental only: start after this GTID set (MySQL) or list (MariaDB).
    pub start_gtid: Option<String>,
}

/// `[verification]`: whether a task verifies by itself.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationOptions {
    pub mode: VerificationMode,
}

/// `[verification] mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerificationMode {
    #[default]
    Off,
    /// Verify once the full copy (and post-load) is done, before binlog changes are
    /// applied; the result is in `tidemark status`.
    AfterFull,
    /// Verify over and over while binlog changes are applied (MariaDB sources).
    Continuous,
}

/// `[incremental]`: applying binlog changes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncrementalOptions {
    /// Destination connections applying changes in parallel (rows are spread by key).
    /// Unset: as many as the destination has CPUs, see [`IncrementalOptions::threads_for`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Row changes gathered into one batch at most; a smaller one is applied as soon as
    /// nothing more is there to read and the destination is free.
    pub batch_rows: usize,
    /// Rows per second applied, 0 = unlimited.
    pub rows_per_second: u64,
    /// MB (10^6 bytes) per second applied, 0 = unlimited.
    pub mb_per_second: f64,
}

/// Apply connections when `[incremental] threads` is unset and the destination's CPU
/// count is unknown.
pub const DEFAULT_APPLY_THREADS: usize = 4;
/// At most this many apply connections by default: one coordinator thread decodes and
/// gathers every change for them.
pub const MAX_AUTO_APPLY_THREADS: usize = 8;

impl IncrementalOptions {
    /// The apply connections: `threads` if set, else the destination's CPU count (at
    /// least 2, at most [`MAX_AUTO_APPLY_THREADS`]), else [`DEFAULT_APPLY_THREADS`]. More
    /// connections than the destination has CPUs only contend: a catch-up of 200 000 row
    /// changes into a 2-CPU destination took 3.6 s with 4 and 2.7 s with 2, and both
    /// sides spent about a third less CPU (docs/benchmarks.md).
    pub fn threads_for(&self, destination_cpus: Option<usize>) -> usize {
        self.threads.unwrap_or_else(|| {
            destination_cpus.map_or(DEFAULT_APPLY_THREADS, |n| {
                n.clamp(2, MAX_AUTO_APPLY_THREADS)
            })
        })
    }
}

impl Default for IncrementalOptions {
    fn default() -> Self {
        IncrementalOptions {
            threads: None,
            batch_rows: 2_000,
            rows_per_second: 0,
            mb_per_second: 0.0,
        }
    }
}

/// `[full]`: the full data migration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FullOptions {
    /// Parallel copy pipelines (each: one source and one destination connection).
    pub threads: usize,
    /// Target rows per chunk; a chunk is the unit of parallelism and of resume.
    pub chunk_rows: u64,
    /// Rows per INSERT statement (also capped by bytes, see `batch_bytes`).
    pub batch_rows: usize,
    /// Bytes per INSERT statement (capped by the destination's max_allowed_packet).
    pub batch_bytes: usize,
    /// Queries per second against the source, 0 = unlimited.
    pub source_qps: u64,
    /// Rows per second, 0 = unlimited.
    pub rows_per_second: u64,
    /// MB (10^6 bytes) per second, 0 = unlimited.
    pub mb_per_second: f64,
    /// Create non-unique secondary indexes after the table is loaded: `true` for every
    /// table, `false` for none, unset for tables of at least [`DEFER_INDEXES_MIN_ROWS`]
    /// (estimated) rows, see [`FullOptions::defers_indexes_of`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defer_secondary_indexes: Option<bool>,
    /// How rows are written: LOAD DATA LOCAL INFILE or multi-row INSERT.
    pub load_method: LoadMethod,
    /// A source without a snapshot binlog position (MySQL): a table without a key is
    /// copied under a brief `FLUSH TABLES t WITH READ LOCK`, so the copy's binlog
    /// position is exact. `false` forbids that lock (the precheck then fails for keyless
    /// tables in a full + incremental task on such a source).
    pub keyless_table_lock: bool,
}

/// A table of at least this many (estimated) rows gets its non-unique secondary indexes
/// after its load when `[full] defer_secondary_indexes` is not set. Building an index
/// from the loaded rows costs the destination about half the CPU of maintaining it row by
/// row on a large table (docs/benchmarks.md), but each table deferred costs one more
/// ALTER TABLE: for thousands of small tables that statement is the larger cost.
pub const DEFER_INDEXES_MIN_ROWS: u64 = 10_000;

impl FullOptions {
    /// Whether a table of about `rows` rows gets its non-unique secondary indexes after
    /// its load (see [`DEFER_INDEXES_MIN_ROWS`]).
    pub fn defers_indexes_of(&self, rows: u64) -> bool {
        self.defer_secondary_indexes
            .unwrap_or(rows >= DEFER_INDEXES_MIN_ROWS)
    }
}

/// `[full] load_method`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMethod {
    /// The measured fastest: `insert` (see `sink/mysql/full.rs`).
    #[default]
    Auto,
    /// Multi-row INSERT statements, prepared (values in the binary protocol).
    Insert,
    /// LOAD DATA LOCAL INFILE (the destination must allow `local_infile`).
    LoadData,
}

impl Default for FullOptions {
    fn default() -> Self {
        FullOptions {
            threads: 4,
            chunk_rows: 50_000,
            batch_rows: 1_000,
            batch_bytes: 4 << 20,
            source_qps: 0,
            rows_per_second: 0,
            mb_per_second: 0.0,
            defer_secondary_indexes: None,
            load_method: LoadMethod::Auto,
            keyless_table_lock: true,
        }
    }
}

/// `[advanced] heartbeat_database` unless set.
pub const DEFAULT_HEARTBEAT_DATABASE: &str = "tidemark_heartbeat";

/// `[advanced]`: how long transient failures are retried before the task fails.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Advanced {
    /// Minutes to keep reconnecting after a lost connection to either end (10–1440).
    pub retry_connection_minutes: u64,
    /// Minutes to keep retrying a failed statement that may succeed later, such as a
    /// deadlock or a lock wait timeout (1–1440, less than `retry_connection_minutes`).
    pub retry_other_minutes: u64,
    /// How online schema changes (gh-ost, pt-online-schema-change) are followed.
    pub online_ddl: OnlineDdl,
    /// Names of the shadow table such a tool fills and swaps in; `{table}` is the table.
    pub online_ddl_shadow_tables: Vec<String>,
    /// Names of the tool's other tables (changelog, the old table after the swap).
    pub online_ddl_other_tables: Vec<String>,
    /// Write a heartbeat row on the source every second, so latency is measured even
    /// when the source is quiet (needs CREATE, INSERT and DELETE on the
    /// `heartbeat_database`). Off by default: latency then comes from the commit times of
    /// the source's own transactions, and nothing is written to the source.
    pub heartbeat: bool,
    /// The source database of the heartbeat table (`heartbeat`), e.g. `dts` as the
    /// reference names it; created when missing, never migrated.
    pub heartbeat_database: String,
    /// Seconds a connection may wait for the network (connect, each read, each write)
    /// before it counts as lost and is reopened (1–3600).
    pub network_timeout_seconds: u64,
    /// The same bound for statements that may run long on a healthy server: index
    /// builds after the load and DDL replicated from the binlog (1–10080).
    pub long_statement_timeout_minutes: u64,
}

/// `[advanced] online_ddl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnlineDdl {
    /// The shadow tables are not copied; the tool's ALTERs are applied to the table
    /// itself when the tool swaps the shadow in.
    #[default]
    GhOst,
    /// The shadow tables are copied like any table, and the swap is replayed.
    Copy,
    /// No special handling.
    None,
}

impl Default for Advanced {
    fn default() -> Self {
        Advanced {
            retry_connection_minutes: 720,
            retry_other_minutes: 10,
            online_ddl: OnlineDdl::GhOst,
            online_ddl_shadow_tables: vec!["_{table}_gho".into(), "_{table}_new".into()],
            online_ddl_other_tables: vec![
                "_{table}_ghc".into(),
                "_{table}_del".into(),
                "_{table}_old".into(),
            ],
            heartbeat: false,
            heartbeat_database: DEFAULT_HEARTBEAT_DATABASE.into(),
            network_timeout_seconds: DEFAULT_NETWORK_TIMEOUT_SECONDS,
            long_statement_timeout_minutes: crate::endpoint::DEFAULT_LONG_STATEMENT_TIMEOUT_MINUTES,
        }
    }
}

impl Advanced {
    pub fn connection_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retry_connection_minutes * 60)
    }

    pub fn other_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retry_other_minutes * 60)
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            network: std::time::Duration::from_secs(self.network_timeout_seconds),
            read: std::time::Duration::from_secs(self.network_timeout_seconds),
            long_statement: std::time::Duration::from_secs(
                self.long_statement_timeout_minutes * 60,
            ),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateOptions {
    /// Directory of the state store; default `.tidemark/<task name>` beside the task file.
    pub dir: Option<PathBuf>,
}

/// One `[[objects]]` entry: a whole database, or one table of it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    pub database: String,
    pub table: Option<String>,
    pub rename: Option<String>,
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub column_rename: BTreeMap<String, String>,
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    /// Incremental: which changes to apply (all when left out).
    pub operations: Option<Vec<Operation>>,
}

/// `operations` entries: the kinds of binlog changes applied to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Insert,
    Update,
    Delete,
    /// Every DDL statement on the object (for a database: its tables, views, routines).
    Ddl,
}

/// A validated task.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub file: PathBuf,
    pub source: Endpoint,
    /// `[source] type`.
    pub source_kind: SourceKind,
    /// `[destination]`, read by its kind.
    pub destination: crate::sink::Destination,
    pub migration: Migration,
    pub full: FullOptions,
    pub incremental: IncrementalOptions,
    pub verification: VerificationOptions,
    pub advanced: Advanced,
    /// The replica server id used to read the source's binlog.
    pub server_id: u32,
    /// `[source] failover`: other addresses of the source's primary.
    pub source_failover: Vec<Endpoint>,
    pub state_dir: PathBuf,
    pub objects: Vec<ObjectSpec>,
}

impl Task {
    pub fn has(&self, phase: Phase) -> bool {
        self.migration.types.contains(&phase)
    }

    /// Reads and validates a task file.
    pub fn load(path: &Path) -> Result<Task> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read task file {}", path.display()))?;
        Task::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Reads a task file for commands that never connect (`status`, `stop`, `reset`,
    /// `list`): an unset `${NAME}` is not an error there, since no secret is needed.
    pub fn load_offline(path: &Path) -> Result<Task> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read task file {}", path.display()))?;
        Task::parse(&text, path, &|name| {
            Some(std::env::var(name).unwrap_or_else(|_| "unset".into()))
        })
    }

    /// Parses task-file text; `env` resolves `${NAME}` references.
    pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Task> {
        let file: TaskFile = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("invalid task file {}: {e}", path.display()))?;
        let name = match file.name {
            Some(n) => n,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "task".into()),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!("invalid task file {}: `name` must be letters, digits, '-', '_' or '.' (got {name:?})", path.display());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let timeouts = file.advanced.timeouts();
        let mut source = parse_url("source.url", &file.source.url, file.source.tls, env)?;
        source.tls_files = tls_files(
            "source",
            file.source.tls,
            file.source.tls_ca.as_deref(),
            file.source.tls_cert.as_deref(),
            file.source.tls_key.as_deref(),
            base,
            env,
        )?;
        source.timeouts = timeouts;
        let source_failover =
            failover_endpoints("source.failover", &file.source.failover, &source)?;
        let resolver = crate::endpoint::Resolver {
            file: path,
            base,
            env,
            timeouts,
        };
        if file.source.kind == SourceKind::AdbMysql {
            validate_adb_source(
                &file.source,
                &file.migration,
                &file.advanced,
                &file.verification,
            )?;
        }
        let destination = crate::sink::parse(file.destination, &resolver)?;
        validate_migration(&file.migration)?;
        validate_full(&file.full)?;
        validate_advanced(&file.advanced)?;
        validate_incremental(&file.incremental)?;
        validate_objects(&file.objects)?;
        if file.advanced.heartbeat {
            let hb = &file.advanced.heartbeat_database;
            if let Some(o) = file.objects.iter().find(|o| o.database == *hb) {
                bail!("`advanced.heartbeat_database` {hb:?} is also selected in [[objects]] (database {:?}): the heartbeat's rows would be migrated; choose another `heartbeat_database`", o.database);
            }
        }
        let state_dir = match file.state.dir {
            Some(d) if d.is_absolute() => d,
            Some(d) => base.join(d),
            None => base.join(".tidemark").join(&name),
        };
        // A default unique per task (its name and state directory), away from the small
        // ids servers use.
        let server_id = match file.source.server_id {
            Some(0) => bail!("`source.server_id` must not be 0 (a replica needs a non-zero id)"),
            Some(id) => id,
            None => {
                let dir = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
                let seed = format!("{name}\0{}", dir.display());
                let mut h = tidemark_core::hash::Fnv1a::default();
                h.write(seed.as_bytes());
                let h = h.finish();
                1_000_000_000 + (h % 1_000_000_000) as u32
            }
        };
        Ok(Task {
            name,
            file: path.to_path_buf(),
            source,
            source_kind: file.source.kind,
            destination,
            migration: file.migration,
            full: file.full,
            incremental: file.incremental,
            verification: file.verification,
            advanced: file.advanced,
            server_id,
            source_failover,
            state_dir,
            objects: file.objects,
        })
    }
}

/// What an AnalyticDB source cannot do: it has one binary log per table, no GTIDs, and
/// takes no writes from the task.
fn validate_adb_source(
    source: &EndpointFile,
    m: &Migration,
    advanced: &Advanced,
    verification: &VerificationOptions,
) -> Result<()> {
    if m.start_position.is_some() || m.start_gtid.is_some() {
        bail!("`migration.start_position` and `start_gtid` name one binlog of one server, but an `adb-mysql` source (`source.type`) has one binlog per table: leave them out (the task starts at each table's current position, `SHOW MASTER STATUS FOR t`)");
    }
    if !source.failover.is_empty() {
        bail!("`source.failover` is for a MySQL primary's other addresses; an `adb-mysql` source is one cluster endpoint: leave it out");
    }
    if advanced.heartbeat {
        bail!("`advanced.heartbeat` writes a heartbeat table on the source, which an `adb-mysql` source would have to log per table: set `heartbeat = false` (idle tables are told apart from a dead connection by the binlog connections' own heartbeats)");
    }
    if verification.mode == VerificationMode::Continuous {
        bail!("`verification.mode = \"continuous\"` needs a snapshot at an exact binlog position, which an `adb-mysql` source cannot give: use `tidemark verify` once the task has caught up");
    }
    Ok(())
}

fn validate_migration(m: &Migration) -> Result<()> {
    if m.types.is_empty() {
        bail!(
            "`migration.types` is empty: list one or more of \"schema\", \"full\", \"incremental\""
        );
    }
    let set: BTreeSet<_> = m.types.iter().collect();
    if set.len() != m.types.len() {
        bail!("`migration.types` lists a type twice");
    }
    let incremental_only = m.types == [Phase::Incremental];
    for (key, given) in [
        ("start_position", m.start_position.is_some()),
        ("start_gtid", m.start_gtid.is_some()),
    ] {
        if given && !incremental_only {
            bail!("`migration.{key}` applies to incremental-only tasks (types = [\"incremental\"]); with a full copy the start is captured automatically");
        }
    }
    if m.start_position.is_some() && m.start_gtid.is_some() {
        bail!("give either `migration.start_position` or `migration.start_gtid`, not both");
    }
    if let Some(p) = &m.start_position {
        crate::source::binlog::client::StartAt::parse_file_position(p)
            .map_err(|e| anyhow::anyhow!("`migration.start_position`: {e}"))?;
    }
    Ok(())
}

fn validate_incremental(i: &IncrementalOptions) -> Result<()> {
    if let Some(threads) = i.threads.filter(|t| !(1..=64).contains(t)) {
        bail!("`incremental.threads` must be between 1 and 64 (got {threads})");
    }
    if !(1..=1_000_000).contains(&i.batch_rows) {
        bail!(
            "`incremental.batch_rows` must be between 1 and 1000000 (got {})",
            i.batch_rows
        );
    }
    if i.mb_per_second < 0.0 || !i.mb_per_second.is_finite() {
        bail!("`incremental.mb_per_second` must be 0 (unlimited) or a positive number");
    }
    Ok(())
}

fn validate_advanced(a: &Advanced) -> Result<()> {
    for p in a
        .online_ddl_shadow_tables
        .iter()
        .chain(&a.online_ddl_other_tables)
    {
        if p.matches("{table}").count() != 1 {
            bail!("`advanced.online_ddl_*_tables`: {p:?} must contain `{{table}}` once, e.g. \"_{{table}}_gho\"");
        }
    }
    let hb = &a.heartbeat_database;
    if hb.is_empty()
        || hb.chars().count() > 64
        || hb.ends_with(' ')
        || hb.contains(['/', '\\', '.', '\0'])
    {
        bail!("`advanced.heartbeat_database` {hb:?} is not a usable database name: 1–64 characters, no `/`, `\\`, `.`, NUL or trailing space (e.g. \"dts\")");
    }
    if !(10..=1440).contains(&a.retry_connection_minutes) {
        bail!(
            "`advanced.retry_connection_minutes` must be between 10 and 1440 (got {})",
            a.retry_connection_minutes
        );
    }
    if !(1..=1440).contains(&a.retry_other_minutes) {
        bail!(
            "`advanced.retry_other_minutes` must be between 1 and 1440 (got {})",
            a.retry_other_minutes
        );
    }
    if !(1..=3600).contains(&a.network_timeout_seconds) {
        bail!(
            "`advanced.network_timeout_seconds` must be between 1 and 3600 (got {})",
            a.network_timeout_seconds
        );
    }
    if !(1..=10080).contains(&a.long_statement_timeout_minutes) {
        bail!(
            "`advanced.long_statement_timeout_minutes` must be between 1 and 10080 (got {})",
            a.long_statement_timeout_minutes
        );
    }
    if a.retry_other_minutes >= a.retry_connection_minutes {
        bail!(
            "`advanced.retry_other_minutes` ({}) must be smaller than `advanced.retry_connection_minutes` ({}); lower it or raise the connection window",
            a.retry_other_minutes, a.retry_connection_minutes
        );
    }
    Ok(())
}

fn validate_full(f: &FullOptions) -> Result<()> {
    if !(1..=64).contains(&f.threads) {
        bail!(
            "`full.threads` must be between 1 and 64 (got {})",
            f.threads
        );
    }
    if f.chunk_rows < 1_000 {
        bail!(
            "`full.chunk_rows` must be at least 1000 (got {})",
            f.chunk_rows
        );
    }
    if !(1..=100_000).contains(&f.batch_rows) {
        bail!(
            "`full.batch_rows` must be between 1 and 100000 (got {})",
            f.batch_rows
        );
    }
    if !((64 << 10)..=(256 << 20)).contains(&f.batch_bytes) {
        bail!(
            "`full.batch_bytes` must be between 65536 and 268435456 (got {})",
            f.batch_bytes
        );
    }
    if f.mb_per_second < 0.0 || !f.mb_per_second.is_finite() {
        bail!("`full.mb_per_second` must be 0 (unlimited) or a positive number");
    }
    Ok(())
}

fn validate_objects(objects: &[ObjectSpec]) -> Result<()> {
    if objects.is_empty() {
        bail!("the task selects nothing: add at least one [[objects]] entry with `database = \"...\"`");
    }
    let mut seen = BTreeSet::new();
    for (i, o) in objects.iter().enumerate() {
        let at = format!("objects[{i}] (database {:?})", o.database);
        if o.database.is_empty() {
            bail!("{at}: `database` is empty");
        }
        if o.table.is_none() {
            for (k, set) in [
                ("columns", o.columns.is_some()),
                ("column_rename", !o.column_rename.is_empty()),
                ("where", o.where_clause.is_some()),
            ] {
                if set {
                    bail!("{at}: `{k}` needs `table = \"...\"`: it applies to one table, not a whole database");
                }
            }
        }
        if let Some(r) = &o.rename {
            if r.is_empty() {
                bail!("{at}: `rename` is empty");
            }
        }
        if let Some(cols) = &o.columns {
            if cols.is_empty() {
                bail!("{at}: `columns` is empty; leave it out to copy every column");
            }
        }
        for (from, to) in &o.column_rename {
            if from.is_empty() || to.is_empty() {
                bail!("{at}: `column_rename` has an empty name");
            }
        }
        if let Some(w) = &o.where_clause {
            check_where(w).with_context(|| format!("{at}: invalid `where`"))?;
        }
        if o.operations.as_ref().is_some_and(|ops| ops.is_empty()) {
            bail!("{at}: `operations` is empty; list some of \"insert\", \"update\", \"delete\", \"ddl\", or leave it out for all");
        }
        let key = (o.database.clone(), o.table.clone());
        if !seen.insert(key) {
            bail!("{at}: selected twice; merge the two [[objects]] entries");
        }
        if o.table.is_some() && seen.contains(&(o.database.clone(), None)) {
            bail!("{at}: the whole database is already selected; remove the database-level entry to select single tables");
        }
    }
    for o in objects.iter().filter(|o| o.table.is_none()) {
        if objects
            .iter()
            .any(|t| t.table.is_some() && t.database == o.database)
        {
            bail!(
                "database {:?} is selected both whole and table by table; keep one form",
                o.database
            );
        }
    }
    Ok(())
}

/// A `where` is one SQL expression: quotes and parentheses balanced, no `;` outside quotes,
/// no comments. The source evaluates it; the precheck reports what it rejects.
pub fn check_where(w: &str) -> Result<()> {
    if w.trim().is_empty() {
        bail!("it is empty");
    }
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        bail!("unbalanced ')'");
                    }
                }
                ';' => bail!("';' is not allowed: write a single expression"),
                '#' => bail!("comments are not allowed"),
                '-' if chars.peek() == Some(&'-') => bail!("comments are not allowed"),
                '/' if chars.peek() == Some(&'*') => bail!("comments are not allowed"),
                _ => {}
            },
        }
    }
    if quote.is_some() {
        bail!("unterminated quote");
    }
    if depth != 0 {
        bail!("unbalanced '('");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Task> {
        Task::parse(text, Path::new("/tmp/t.toml"), &|n| {
            (n == "PW").then(|| "s3cr:et".to_string())
        })
    }

    /// A task with its MySQL destination's endpoint in view (the endpoint moved into
    /// the destination kind).
    struct Viewed {
        name: String,
        source: Endpoint,
        destination: Endpoint,
        advanced: Advanced,
    }

    fn view(t: Task) -> Viewed {
        Viewed {
            destination: t.destination.verification_server().unwrap().clone(),
            name: t.name,
            source: t.source,
            advanced: t.advanced,
        }
    }

    #[test]
    fn apply_threads_follow_the_destination_cpus_unless_set() {
        let unset = parse(MIN).unwrap().incremental;
        assert_eq!(unset.threads, None);
        assert_eq!(unset.threads_for(Some(2)), 2);
        assert_eq!(unset.threads_for(Some(1)), 2, "at least 2");
        assert_eq!(unset.threads_for(Some(64)), MAX_AUTO_APPLY_THREADS);
        assert_eq!(unset.threads_for(None), DEFAULT_APPLY_THREADS);
        let set = parse(&format!("{MIN}[incremental]\nthreads = 3\n"))
            .unwrap()
            .incremental;
        assert_eq!(set.threads_for(Some(2)), 3, "an explicit count wins");
        let e = parse(&format!("{MIN}[incremental]\nthreads = 0\n")).unwrap_err();
        assert!(
            format!("{e:#}").contains("`incremental.threads` must be between 1 and 64 (got 0)"),
            "{e:#}"
        );
    }

    const MIN: &str = r#"
[source]
url = "mysql://u:${PW}@h:3307"
[destination]
url = "mysql://u@d"
[migration]
types = ["schema", "full"]
[[objects]]
database = "shop"
"#;

    #[test]
    fn minimal_file_with_env_password() {
        let t = view(parse(MIN).unwrap());
        assert_eq!(t.source.password.as_deref(), Some("s3cr:et"));
        assert_eq!(t.source.port, 3307);
        assert_eq!(t.destination.port, 3306);
        assert_eq!(t.name, "t");
        assert!(!format!("{:?} {}", t.source, t.source).contains("s3cr"));
    }

    #[test]
    fn env_secrets_with_url_special_characters_stay_whole() {
        let nasty = "a@b#c/d:e?f%g+h i&j=k[l]m$n{o}p\\q'r\"s;t~u!v*w(x),y";
        let text = MIN.replace("u:${PW}@h", "${USR}:${PW}@${HOST}");
        let t = Task::parse(&text, Path::new("/tmp/t.toml"), &|n| match n {
            "PW" => Some(nasty.into()),
            "USR" => Some("us@r:1".into()),
            "HOST" => Some("db.example".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(t.source.password.as_deref(), Some(nasty));
        assert_eq!(t.source.user, "us@r:1");
        assert_eq!(
            (t.source.host.as_str(), t.source.port),
            ("db.example", 3307)
        );
        // Written into the URL by hand, percent-encoding still works; `+` is a plus.
        let t = parse(&MIN.replace("${PW}", "p%40ss+1")).unwrap();
        assert_eq!(t.source.password.as_deref(), Some("p@ss+1"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse(&MIN.replace("[migration]", "[migration]\nspeed = 3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `speed`") && err.contains("line"),
            "{err}"
        );
        assert!(err.contains("on_conflicting_tables"), "{err}");
    }

    #[test]
    fn invalid_enum_lists_allowed_values() {
        let err = parse(&MIN.replace("[migration]", "[migration]\nname_case = \"camel\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lower") && err.contains("upper"), "{err}");
    }

    #[test]
    fn missing_env_is_named() {
        let err = parse(&MIN.replace("${PW}", "${NOPE}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOPE"), "{err}");
    }

    #[test]
    fn where_must_be_one_expression() {
        assert!(check_where("id > 3 AND name <> ';'").is_ok());
        assert!(check_where("1); DROP TABLE x; (1").is_err());
        assert!(check_where("id > 1 -- x").is_err());
    }

    #[test]
    fn retry_windows_are_checked() {
        let with = |adv: &str| {
            parse(&MIN.replace("[migration]", &format!("[advanced]\n{adv}\n[migration]")))
        };
        let t = with("retry_other_minutes = 5").unwrap();
        assert_eq!(t.advanced.retry_connection_minutes, 720);
        let err = with("retry_connection_minutes = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("between 10 and 1440"), "{err}");
        let err = with("retry_connection_minutes = 20\nretry_other_minutes = 30")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be smaller than"), "{err}");
    }

    #[test]
    fn tls_files_are_relative_to_the_task_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let text = MIN.replace(
            "url = \"mysql://u@d\"",
            "url = \"mysql://u@d\"\ntls = \"verify-ca\"\ntls_ca = \"${CA_DIR}/ca.pem\"\nfailover = [\"d2:3307\"]",
        );
        let base = dir.path().display().to_string();
        let t = view(
            Task::parse(&text, &dir.path().join("t.toml"), &|n| match n {
                "PW" => Some("pw".into()),
                "CA_DIR" => Some(".".into()),
                _ => None,
            })
            .unwrap(),
        );
        assert_eq!(
            t.destination.tls_files.ca,
            Some(dir.path().join("./ca.pem"))
        );
        assert!(t.source.tls_files.ca.is_none(), "{base}");
        assert_eq!(
            t.advanced.network_timeout_seconds,
            DEFAULT_NETWORK_TIMEOUT_SECONDS
        );
        // The destination's failover addresses, the one that answered last first.
        let all = t.destination.failover.candidates(&t.destination);
        let hosts: Vec<String> = all.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(hosts, ["u@d:3306", "u@d2:3307"]);
        assert_eq!(all[1].1.tls_files.ca, t.destination.tls_files.ca);
        t.destination.failover.settle(1);
        let again: Vec<usize> = t
            .destination
            .clone()
            .failover
            .candidates(&t.destination)
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(again, [1, 0]);
    }

    #[test]
    fn heartbeat_database_is_checked() {
        let with = |keys: &str| {
            parse(&MIN.replace("[migration]", &format!("[advanced]\n{keys}\n[migration]")))
        };
        let t = with("heartbeat = true\nheartbeat_database = \"dts\"").unwrap();
        assert_eq!(t.advanced.heartbeat_database, "dts");
        assert_eq!(
            parse(MIN).unwrap().advanced.heartbeat_database,
            "tidemark_heartbeat"
        );
        for bad in ["", "a.b", "x ", "a/b"] {
            let err = with(&format!("heartbeat_database = {bad:?}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`advanced.heartbeat_database`") && err.contains("dts"),
                "{bad:?}: {err}"
            );
        }
        let err = with("heartbeat = true\nheartbeat_database = \"shop\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("also selected"), "{err}");
    }

    #[test]
    fn network_timeout_is_checked() {
        let err = parse(&MIN.replace(
            "[migration]",
            "[advanced]\nnetwork_timeout_seconds = 0\n[migration]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("network_timeout_seconds") && err.contains("between 1 and 3600"),
            "{err}"
        );
    }

    #[test]
    fn table_keys_need_table() {
        let err = parse(&format!("{MIN}where = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `table"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn shipped_examples_are_valid() {
        let env = |_: &str| Some("pw".to_string());
        for (name, text) in [
            ("shop.toml", include_str!("../../../examples/shop.toml")),
            ("tables.toml", include_str!("../../../examples/tables.toml")),
            ("live.toml", include_str!("../../../examples/live.toml")),
            (
                "rocketmq.toml",
                include_str!("../../../examples/rocketmq.toml"),
            ),
        ] {
            Task::parse(text, Path::new(name), &env).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
