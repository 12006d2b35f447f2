//! Destinations: everything that puts data somewhere, behind one seam.
//!
//! Every destination kind is one folder here with the same parts (as Vector's sinks):
//!
//! | part | MySQL (`mysql/`) | RocketMQ (`rocketmq/`) | Lindorm (`lindorm/`) |
//! |---|---|---|---|
//! | task-file keys ([`Registered::parse`]) | `config.rs` | `config.rs` | `config.rs` |
//! | precheck items ([`Kind::precheck`]) | `precheck.rs` | `precheck.rs` | `precheck.rs` |
//! | schema step ([`Kind::schema`]) | `schema_step.rs` (DDL via `schema.rs`) | none | `mod.rs` (`create_tables`, via `types.rs`) |
//! | full-copy chunk writer ([`FullCopy`], [`ChunkWriter`]) | `full.rs` (via `writer.rs`) | `full.rs` | `full.rs` (via `write.rs`) |
//! | change applier ([`ChangeApplier`]) | `applier.rs` (via `apply.rs`) | `applier.rs` | `applier.rs` (via `write.rs`) |
//! | capabilities ([`Capabilities`]) | `mod.rs` | `mod.rs` | `mod.rs` |
//! | verification ([`Kind::verification`]) | server-side checksums (`verify/`) | none | rows read back ([`RowStore`]: `verify.rs`) |
//!
//! ADB (`adb/`) has the same parts, its rows written through `mysql/`'s writer and
//! applier, verification by rows (`adb/verify.rs`). `readback.rs` is what the
//! [`RowStore`]s of SQL engines (Lindorm, ADB) share.
//!
//! [`KINDS`] names them; `config.rs` hands the `[destination]` table to the kind its
//! `type` names and keeps the [`Destination`] it returns. `task/` drives every kind
//! through these traits only: phases, checkpoints, retry windows, safe mode and
//! progress are the task's, the destination's protocol is the kind's. Calls cross the
//! seam per chunk, per batch or per rows event, never per row: row loops run inside the
//! kind, monomorphic.

pub mod adb;
pub mod lindorm;
pub mod mysql;
pub mod readback;
pub mod rocketmq;

use crate::config::Task;
use crate::connect::{ServerInfo, Transient};
use crate::endpoint::{Endpoint, Resolver};
use crate::precheck::Report;
use crate::source::binlog::stream::Txn;
use crate::source::catalog::TableInfo;
use crate::source::snapshot::Chunk;
use crate::state::Store;
use crate::task::throttle::Throttle;
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;
use tidemark_core::{Change, Row, TableName};

/// A destination kind: the `type` that selects it and how its keys are read.
pub struct Registered {
    /// `[destination] type`.
    pub name: &'static str,
    /// Reads and validates the rest of the `[destination]` table.
    pub parse: fn(toml::Table, &Resolver) -> Result<Destination>,
}

/// Every destination kind. Adding one: a folder beside `mysql/` and one line here.
pub const KINDS: &[Registered] = &[
    Registered {
        name: "mysql",
        parse: mysql::config::parse,
    },
    Registered {
        name: "lindorm",
        parse: lindorm::config::parse,
    },
    Registered {
        name: "rocketmq",
        parse: rocketmq::config::parse,
    },
    Registered {
        name: "adb-mysql",
        parse: adb::config::parse,
    },
];

/// `[destination] type` when left out.
const DEFAULT_KIND: &str = "mysql";

/// Reads a `[destination]` table: its `type` chooses the kind, which reads the rest.
pub fn parse(table: toml::Table, r: &Resolver) -> Result<Destination> {
    let names = || {
        KINDS
            .iter()
            .map(|k| format!("{:?}", k.name))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let name = match table.get("type") {
        None => DEFAULT_KIND,
        Some(toml::Value::String(s)) => s.as_str(),
        Some(v) => anyhow::bail!(
            "invalid task file {}: `destination.type` must be {} (got {v})",
            r.file.display(),
            names()
        ),
    };
    let Some(kind) = KINDS.iter().find(|k| k.name == name) else {
        anyhow::bail!(
            "invalid task file {}: `destination.type` must be {} (got {:?})",
            r.file.display(),
            names(),
            name
        );
    };
    (kind.parse)(table, r)
}

/// The task's destination: one validated `[destination]` of some kind.
#[derive(Clone)]
pub struct Destination(Arc<dyn Kind>);

impl Destination {
    pub fn new(kind: impl Kind + 'static) -> Destination {
        Destination(Arc::new(kind))
    }
}

impl std::ops::Deref for Destination {
    type Target = dyn Kind + 'static;
    fn deref(&self) -> &(dyn Kind + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Destination({}: {})", self.0.name(), self.0.describe())
    }
}

/// What a destination kind supports; `task/` and the precheck ask these instead of the
/// kind's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// It holds tables: the schema tracker reads a table back from it after DDL, and a
    /// table renamed into the selection is created there. Otherwise definitions are
    /// read from the source.
    pub tables: bool,
    /// A keyless table of a full + incremental task is copied from a consistent source
    /// snapshot whose position the stream starts that table from (rows cannot be
    /// replaced by key). At-least-once destinations copy it as any table.
    pub exact_keyless_handoff: bool,
    /// Which binlog DDL reaches it.
    pub ddl: DdlKinds,
    /// How `status` names the incremental progress ("applied", "sent (and
    /// acknowledged)").
    pub applied_verb: &'static str,
    /// Full copy: batches a pipeline's reader may have handed on but its writer not yet
    /// taken. Statements of a server are cheap to queue; a queue's outboxes are large
    /// (up to 4 MiB each), so it hands them over one at a time (0).
    pub queued_batches: usize,
}

/// Which DDL statements of the binlog a destination takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DdlKinds {
    /// Every statement the tracker follows is executed (and may be rejected: counted).
    Executed,
    /// Every statement is forwarded as a message, in order with the rows.
    Forwarded,
}

/// The parts of a destination kind.
pub trait Kind: Send + Sync {
    /// `[destination] type`.
    fn name(&self) -> &'static str;
    /// For logs and reports, without secrets (`user@host:port`, name servers).
    fn describe(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// The MySQL-protocol server whose tables `tidemark verify` compares with the
    /// source by server-side checksums; an error saying why when the kind has none.
    fn verification_server(&self) -> Result<&Endpoint>;
    /// How `tidemark verify` compares this destination with the source: by the
    /// checksums of [`Kind::verification_server`] unless the kind reads its rows back
    /// itself ([`RowStore`]).
    fn verification(&self) -> Result<Verification<'_>> {
        self.verification_server().map(Verification::Checksums)
    }
    /// The precheck's destination side; connecting is its first item.
    fn precheck<'a>(&'a self, task: &'a Task) -> Box<dyn Precheck + 'a>;
    /// The schema phase and post-load step, if the kind has tables to create.
    fn schema(&self) -> Option<&dyn SchemaStep>;
    /// Opens the destination for one run (producers, counters continued from `store`).
    fn open<'a>(&'a self, task: &'a Task, store: &'a Store) -> Result<Box<dyn Session + 'a>>;
    /// Several source tables renamed onto `target` are merged there on purpose (ADB's
    /// `merge = true`: a column names each row's source), not a collision.
    fn merges_into(&self, _target: &TableName) -> bool {
        false
    }
    /// `tidemark reset --table`: forgets the copy of one table (a MySQL destination
    /// empties it). Returns what happened, for the operator.
    fn forget_table(&self, target: &str) -> Result<&'static str>;
}

/// How `tidemark verify` reads a destination.
pub enum Verification<'a> {
    /// The server computes chunk checksums itself over tables that hold the source's
    /// values unchanged (MySQL): verify connects to it and compares checksums.
    Checksums(&'a Endpoint),
    /// The engine computes no checksum, or holds values under its own type mapping:
    /// verify reads both sides by key range and compares row hashes itself.
    Rows(&'a dyn RowStore),
}

/// A destination whose rows `tidemark verify` reads back: by the source's key ranges,
/// as the [`Value`](tidemark_core::Value)s its type mapping makes of the source's, so
/// that a source row converted by [`RowSide::stored`] equals the row read back.
pub trait RowStore: Sync {
    /// One verify worker's connection.
    fn open(&self) -> Result<Box<dyn RowSide + '_>>;
    /// `--emit-sql`: the file's first lines (how to apply it, as comments) and its
    /// last ones.
    fn sql_file(&self) -> (String, String);
}

/// One connection of [`RowStore`]. Calls are per table, per chunk or per batch of
/// rows; the row loops are the kind's.
pub trait RowSide: Send {
    /// Before a table's rows: how its definition there differs from what the source's
    /// maps to (one line each); an error when its rows cannot be compared (no such
    /// table, a copied column missing).
    fn table(&mut self, t: &TablePlan) -> Result<Vec<String>>;
    /// Source rows (copied columns, as the snapshot reader produces them) turned, in
    /// place, into the values the destination holds for them after the type mapping.
    fn stored(&self, t: &TablePlan, rows: &mut [Row]) -> Result<()>;
    /// The destination's rows in a chunk of the source's key ranges (copied columns,
    /// stored values), in batches, in any order. `row_bytes`: the largest source row of
    /// the chunk, for engines that limit the bytes of one read.
    fn read(
        &mut self,
        t: &TablePlan,
        chunk: &Chunk,
        row_bytes: u64,
        out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
    ) -> Result<()>;
    /// One row by its key (stored values, in key order).
    fn fetch(&mut self, t: &TablePlan, key: &[tidemark_core::Value]) -> Result<Option<Row>>;
    /// Deletes the rows of `keys` (stored values), then writes `rows` (source rows,
    /// copied columns), through the kind's writer (deletes first: a key deleted may
    /// also be one written, when the destination's key is wider than the source's);
    /// with `sql_out`, writes the statements there instead. Returns how many rows were
    /// written or deleted.
    fn repair(
        &mut self,
        t: &TablePlan,
        rows: &[Row],
        keys: &[Row],
        sql_out: Option<&mut dyn std::io::Write>,
    ) -> Result<u64>;
}

/// The destination side of the precheck.
pub trait Precheck {
    /// Connects (an item either way); false: the destination cannot be checked further.
    fn connect(&mut self, r: &mut Report) -> bool;
    /// Before the plan is built: version items, and what the plan needs to know.
    fn before_plan(&mut self, source: &ServerInfo, r: &mut Report) -> Result<PlanFacts>;
    /// Items about the planned objects on this destination.
    fn check(&mut self, store: Option<&Store>, plan: &Plan, r: &mut Report) -> Result<()>;
    /// The server's facts, for a MySQL-protocol destination.
    fn server(&self) -> Option<ServerInfo>;
}

/// What the plan takes from the destination.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanFacts {
    /// Table names are stored in lower case (`lower_case_table_names` != 0).
    pub lower_case_names: bool,
}

/// The schema phase (databases, tables, routines, views) and the post-load step
/// (deferred indexes, triggers); each returns notes for the operator.
pub trait SchemaStep: Sync {
    fn migrate(&self, task: &Task, plan: &Plan, store: &Store) -> Result<Vec<String>>;
    fn post_load(&self, task: &Task, plan: &Plan, store: &Store) -> Result<Vec<String>>;
}

/// A destination opened for one run.
pub trait Session: Sync {
    /// The full copy's writing side (connections are opened per pipeline).
    fn full_copy<'a>(&'a self, plan: &'a Plan) -> Result<Box<dyn FullCopy + 'a>>;
    /// The incremental phase's writing side.
    fn applier<'a>(&'a self) -> Result<Box<dyn ChangeApplier + 'a>>;
    /// The full copy ended (done, stopped or failed): save what must survive the run.
    fn full_copy_ended(&self, store: &Store) -> Result<()>;
}

/// One chunk to copy, as the full-copy driver hands it out.
#[derive(Clone, Debug)]
pub struct ChunkJob {
    /// Index of the table in the plan.
    pub table: usize,
    pub chunk: Chunk,
    /// The chunk was started before (by an earlier run or attempt): rows of it may be
    /// on the destination already.
    pub again: bool,
    /// When this chunk first failed with an error worth retrying.
    pub first_failure: Option<Instant>,
}

/// A chunk's rows as the source reads them, for [`FullCopy::encode`]. Rows are handed
/// to a generic closure, so the kind's row loop is compiled for it (no call through a
/// pointer per row).
pub struct ChunkRows<'a> {
    pub(crate) src: &'a mut ::mysql::Conn,
    pub(crate) table: &'a TablePlan,
    pub(crate) chunk: &'a Chunk,
    pub(crate) throttle: &'a Throttle,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

impl<'a> ChunkRows<'a> {
    /// Reads every row of the chunk: `f(row, its size on the wire)`.
    pub fn read(&mut self, f: impl FnMut(Row, u64) -> Result<()>) -> Result<()> {
        let table = self.table;
        self.read_as(table, f)
    }

    /// As [`Self::read`], with the columns `table` copies: the same table planned with
    /// other columns (a queue's messages carry generated columns too).
    pub fn read_as(
        &mut self,
        table: &TablePlan,
        mut f: impl FnMut(Row, u64) -> Result<()>,
    ) -> Result<()> {
        let (rows, bytes) = (&mut self.rows, &mut self.bytes);
        crate::source::snapshot::read_chunk(self.src, table, self.chunk, |row| {
            let size: u64 = row.iter().map(|v| v.wire_size() as u64).sum();
            *rows += 1;
            *bytes += size;
            f(row, size)
        })
    }

    /// The copy's throttle (`[full] rows_per_second`, `mb_per_second`): the kind paces
    /// as it hands rows on (per batch, or per row for a queue).
    pub fn throttle(&self) -> &'a Throttle {
        self.throttle
    }
}

/// A unit the reader hands the writer: a statement, a LOAD DATA buffer, an outbox of
/// messages. Opaque to the driver; the kind that made it takes it apart.
pub struct Batch(pub Box<dyn std::any::Any + Send>);

impl Batch {
    pub fn new<T: Send + 'static>(b: T) -> Batch {
        Batch(Box::new(b))
    }

    /// The batch as the kind made it.
    pub fn take<T: 'static>(self) -> Result<T> {
        self.0
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| anyhow::anyhow!("internal: a batch of another destination kind"))
    }
}

/// The full copy's writing side: encoding on each pipeline's reader thread, writing on
/// its writer thread (one destination connection each).
pub trait FullCopy: Sync {
    /// Turns one chunk's rows into batches, in order, handed to `out`.
    fn encode(
        &self,
        job: &ChunkJob,
        rows: &mut ChunkRows<'_>,
        out: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()>;
    /// Opens one pipeline's writer.
    fn writer(&self) -> Result<Box<dyn ChunkWriter + '_>>;
    /// How many pipelines to run, given `[full] threads`: fewer where more would only
    /// contend on the destination.
    fn pipelines(&self, threads: usize) -> usize {
        threads
    }
}

/// Writes chunks: each one whole (a transaction, or every message acknowledged) or not
/// at all as far as the checkpoint is concerned.
pub trait ChunkWriter: Send {
    fn begin(&mut self, job: &ChunkJob) -> Result<(), WriteError>;
    fn write(&mut self, batch: Batch) -> Result<(), WriteError>;
    /// The chunk is durably on the destination once this returns.
    fn commit(&mut self) -> Result<(), WriteError>;
    /// Drops what the chunk wrote so far (the reader lost it, or a retry follows).
    fn rollback(&mut self);
    /// After a lost connection: a new one, tried until `deadline`.
    fn reconnect(&mut self, deadline: Instant) -> Result<()>;
}

/// A failed write, and whether trying again may succeed.
#[derive(Debug)]
pub struct WriteError {
    pub error: anyhow::Error,
    /// `None`: fail the task now.
    pub transient: Option<Transient>,
    /// The error as an operator reads it (which server, what it said).
    pub shown: String,
}

impl WriteError {
    /// A failure no retry can mend.
    pub fn fatal(error: anyhow::Error) -> WriteError {
        WriteError {
            shown: format!("{error:#}"),
            error,
            transient: None,
        }
    }
}

impl From<anyhow::Error> for WriteError {
    fn from(e: anyhow::Error) -> WriteError {
        WriteError::fatal(e)
    }
}

/// The incremental phase's writing side: batches of whole source transactions in, an
/// acknowledgement out.
pub trait ChangeApplier {
    /// A transaction starts; its row changes and DDL follow.
    fn begin_txn(&mut self, txn: &Txn);
    /// The rows event whose changes the next `push` adds: kinds whose records name the
    /// event (its position, server, statement) keep it.
    fn rows_event(&mut self, _event: &crate::source::binlog::stream::EventInfo) {}
    /// Adds the row changes of one rows event (binlog images, every column).
    fn push(&mut self, plan: &Arc<TablePlan>, changes: Vec<Change>) -> Result<()>;
    /// The source is idle and everything up to `position` was read and applied: kinds
    /// whose consumers expect a sign of life (heartbeat records) send one.
    fn idle(&mut self, _position: &tidemark_core::Position) -> Result<()> {
        Ok(())
    }
    /// Row changes gathered and not yet written.
    fn pending_rows(&self) -> usize;
    /// Writes what was gathered, with the rows and bytes written (for the throttle), or
    /// `None` when there was nothing to write. It may return while this batch is still
    /// being written, but only once every batch flushed before it is acknowledged
    /// (committed on every connection, acknowledged by the broker).
    fn flush(&mut self, f: &Flush<'_>) -> Result<Option<(u64, u64)>>;
    /// Returns once everything flushed is acknowledged. No default: a kind whose `flush`
    /// waits for its own batch says so, and one that wraps another kind's applier must
    /// pass this on (the task checkpoints what `settle` has returned for).
    fn settle(&mut self) -> Result<()>;
    /// Whether something flushed is still being written (`settle` would wait). The task
    /// hands a partial batch over only when the kind is not busy, and keeps gathering
    /// while it is. No default, for the reason `settle` has none.
    fn busy(&self) -> bool;
    /// Applies (or forwards) a DDL statement alone, after everything before it.
    fn ddl(&mut self, d: &Ddl<'_>) -> Result<DdlOutcome>;
    /// A followed table's definition now, where the kind keeps it (the destination's
    /// table, or the source's for a kind without tables).
    fn read_table(&mut self, source: &TableName, target: &TableName) -> Result<Option<TableInfo>>;
    /// Writes the rows of a table copied in mid-stream (renamed into the selection),
    /// idempotently; returns how many.
    fn copy_rows(
        &mut self,
        src: &mut ::mysql::Conn,
        plan: &TablePlan,
        chunk: &Chunk,
    ) -> Result<u64>;
    /// Ends the workers.
    fn shutdown(&mut self);
}

/// What a flush needs from the task.
pub struct Flush<'a> {
    /// Past the safe point: a row that already exists is an error, not replaced.
    pub exact: bool,
    pub store: &'a Store,
    /// Records the batch's end as in flight (a crash makes replay idempotent up to it);
    /// called before anything non-idempotent is written.
    pub in_flight: &'a dyn Fn() -> Result<()>,
}

/// A DDL statement to apply.
pub struct Ddl<'a> {
    pub use_db: Option<&'a str>,
    pub sql: &'a str,
    /// Before the safe point: an "already exists"/"unknown" error means the statement
    /// took effect before (skipped).
    pub replay: bool,
}

/// How a DDL statement ended.
#[derive(Debug, PartialEq, Eq)]
pub enum DdlOutcome {
    Applied,
    /// Replayed and already in effect.
    AlreadyApplied,
    /// The destination refused it (logged; the task goes on): the error and statement.
    Rejected(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn destination(text: &str) -> Result<Destination> {
        let table: toml::Table = toml::from_str(text)?;
        let env = |_: &str| Some("pw".to_string());
        let r = Resolver {
            file: Path::new("/tmp/t.toml"),
            base: Path::new("/tmp"),
            env: &env,
            timeouts: Default::default(),
        };
        parse(table, &r)
    }

    #[test]
    fn the_type_chooses_the_kind_and_mysql_is_the_default() {
        let d = destination("url = \"mysql://u:${PW}@db:3307\"").unwrap();
        assert_eq!(d.name(), "mysql");
        assert_eq!(d.describe(), "u@db:3307");
        assert!(d.capabilities().tables && d.schema().is_some());
        let d =
            destination("type = \"rocketmq\"\nname_servers = [\"127.0.0.1:9876\"]\ntopic = \"t\"")
                .unwrap();
        assert_eq!(d.name(), "rocketmq");
        assert!(!d.capabilities().tables && d.schema().is_none());
        let e = d.verification_server().unwrap_err().to_string();
        assert!(e.contains("RocketMQ"), "{e}");
    }

    #[test]
    fn an_unknown_type_lists_every_kind() {
        let e = destination("type = \"kafka\"").unwrap_err().to_string();
        for k in KINDS {
            assert!(e.contains(&format!("{:?}", k.name)), "{e}");
        }
        assert!(
            e.contains("\"kafka\"") && e.contains("destination.type"),
            "{e}"
        );
        let e = destination("type = 3").unwrap_err().to_string();
        assert!(e.contains("destination.type"), "{e}");
        // A key of another kind is named.
        let e = destination("url = \"mysql://u@d\"\ntopic = \"t\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `topic`") && e.contains("[destination]"),
            "{e}"
        );
    }

    #[test]
    fn kinds_have_distinct_names() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        assert!(names.contains(&DEFAULT_KIND));
    }
}
