//! `tidemark verify`: proves the destination equals the source, table by table, without
//! moving the tables.
//!
//! Each table is split into the key-range chunks the full copy uses. Both servers compute
//! a chunk's row count and a 64-bit checksum themselves (the XOR of every row's MD5, as
//! pt-table-checksum does), over the task's mapping: renamed tables and columns, the
//! column subset, and the source side filtered by `where`. Only those two numbers travel.
//! A chunk whose numbers differ is drilled into: both sides send each row's key and hash,
//! and rows that differ are fetched whole to name the columns that differ.
//!
//! `--repair` then writes the source's rows over missing and differing ones and deletes
//! extra ones; `--emit-sql FILE` writes the same statements to a file for review.
//!
//! A destination without server-side checksums (`sink::Verification::Rows`, Lindorm) is
//! compared by `rows.rs` instead: rows of both ends hashed here, same report and repair.
//!
//! JSON columns are compared in a normal form (`JSON_NORMALIZE` on MariaDB 10.7+, the
//! JSON type's own on MySQL), so key order and spacing are not differences.

use crate::config::Task;
use crate::connect::{connect, connect_for_reads, ServerInfo, Side};
use crate::sink::mysql::writer::{InsertBuilder, InsertMode};
use crate::sink::Verification;
use crate::source::catalog;
use crate::source::snapshot::{self, Chunk};
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tidemark_core::sql::{push_literal, quote_ident};
use tidemark_core::{ColumnKind, Row, Value};

mod rows;

/// Chunk size for verification (rows per checksum query).
const CHUNK_ROWS: u64 = 10_000;

/// Hooks around each chunk's comparison. Live verification (while binlog changes are
/// applied) uses them to compare a source snapshot with the destination held at the
/// snapshot's binlog position.
pub trait ChunkSync {
    fn before(&mut self, src: &mut mysql::Conn) -> Result<()>;
    fn after(&mut self, src: &mut mysql::Conn) -> Result<()>;
    /// A chunk of `rows` rows of `table` was compared.
    fn compared(&mut self, _table: &str, _rows: u64) {}
}

/// What the workers share.
struct Shared<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    sql_out: Option<&'a Mutex<std::io::BufWriter<std::fs::File>>>,
    pace: Pace<'a>,
}

/// Progress and the rows/s limit, shared by the workers.
struct Pace<'a> {
    progress: &'a crate::progress::Progress,
    throttle: &'a crate::task::throttle::Throttle,
}

/// Nothing to synchronise (`tidemark verify` on quiet ends), only progress and pace.
struct NoSync<'a, 'b>(&'a Pace<'b>);

impl ChunkSync for NoSync<'_, '_> {
    fn before(&mut self, _: &mut mysql::Conn) -> Result<()> {
        // Ctrl-C / SIGTERM: stop between chunks (nothing is half-repaired).
        crate::task::check_stop()
    }
    fn after(&mut self, _: &mut mysql::Conn) -> Result<()> {
        Ok(())
    }
    fn compared(&mut self, table: &str, rows: u64) {
        self.0.progress.add(table, rows, 0);
        self.0.throttle.rows(rows, 0);
    }
}

/// Verifies one table with `sync` around each chunk (for live verification).
pub fn verify_table_with(
    task: &Task,
    t: &TablePlan,
    sync: &mut dyn ChunkSync,
) -> Result<TableReport> {
    let mut src = connect(&task.source, Side::Source)?;
    let started = Instant::now();
    let mut r = TableReport {
        source: t.def().name.to_string(),
        target: t.target.to_string(),
        ..Default::default()
    };
    let compared = match task.destination.verification()? {
        Verification::Checksums(e) => {
            let mut dst = connect_for_reads(e, Side::Destination)?;
            let infos = (ServerInfo::read(&mut src)?, ServerInfo::read(&mut dst)?);
            verify_table(&mut src, &mut dst, (&infos.0, &infos.1), t, &mut r, sync)
        }
        Verification::Rows(store) => {
            let mut side = store.open()?;
            rows::verify_table(&mut src, &mut *side, t, &mut r, sync)
        }
    };
    if let Err(e) = compared {
        r.problem = Some(format!("{e:#}"));
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// How `verify` runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Fix the destination.
    pub repair: bool,
    /// Write the fix as SQL to this file instead.
    pub emit_sql: Option<std::path::PathBuf>,
    /// Tables verified at once (0 = 4).
    pub threads: usize,
    /// Rows compared per second, over all tables; 0 = unlimited.
    pub rows_per_second: u64,
    /// Progress bars on a terminal (log lines otherwise).
    pub bars: bool,
}

/// One row that differs, by key.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// The key, as SQL literals.
    pub key: Vec<String>,
    /// The key's values, for the repair.
    #[serde(skip)]
    pub values: Row,
    /// Destination names of the columns that differ (for rows on both sides).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// What was found in one table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableReport {
    pub source: String,
    pub target: String,
    pub rows_compared: u64,
    pub chunks: usize,
    pub chunks_differing: usize,
    pub missing: Vec<Difference>,
    pub extra: Vec<Difference>,
    pub differing: Vec<Difference>,
    /// A problem that kept the table from being compared row by row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Schema differences after the mapping: columns, types, nullability, indexes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<String>,
    pub seconds: f64,
    /// Rows written or deleted by `--repair` (or statements written by `--emit-sql`).
    pub repaired: u64,
}

impl TableReport {
    pub fn equal(&self) -> bool {
        self.problem.is_none()
            && self.schema.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.differing.is_empty()
    }
}

/// Objects of a database selected whole that the destination lacks, or has otherwise.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DatabaseReport {
    pub source: String,
    pub target: String,
    /// e.g. `view order_totals`, `procedure orders_of`, `trigger orders_audit`.
    pub missing_objects: Vec<String>,
    /// Objects whose definition differs after the mapping (database renames).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differing_objects: Vec<String>,
    /// Object kinds the source user cannot see (privileges hide them from every list),
    /// so they could not be compared, with the grant that would show them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
}

impl DatabaseReport {
    pub fn equal(&self) -> bool {
        self.missing_objects.is_empty()
            && self.differing_objects.is_empty()
            && self.not_compared.is_empty()
    }
}

/// Everything `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub tables: Vec<TableReport>,
    pub databases: Vec<DatabaseReport>,
}

impl Report {
    pub fn equal(&self) -> bool {
        self.tables.iter().all(TableReport::equal)
            && self.databases.iter().all(DatabaseReport::equal)
    }
}

/// One line: equal, or how many rows and objects differ.
pub fn summary(r: &Report) -> String {
    let rows: u64 = r.tables.iter().map(|t| t.rows_compared).sum();
    if r.equal() {
        return format!("equal ({} tables, {rows} rows compared)", r.tables.len());
    }
    let count = |f: fn(&TableReport) -> usize| r.tables.iter().map(f).sum::<usize>();
    let objects: usize = r
        .databases
        .iter()
        .map(|d| d.missing_objects.len() + d.differing_objects.len() + d.not_compared.len())
        .sum();
    format!(
        "DIFFERENT: {} missing, {} extra, {} differing rows, {} schema differences, {} tables with problems, {objects} missing or differing objects ({rows} rows compared; `tidemark verify` shows them)",
        count(|t| t.missing.len()),
        count(|t| t.extra.len()),
        count(|t| t.differing.len()),
        count(|t| t.schema.len()),
        count(|t| usize::from(t.problem.is_some())),
    )
}

/// A verify worker's destination end.
enum End<'a> {
    /// A server that checksums its tables, and both servers' facts.
    Server(mysql::Conn, (ServerInfo, ServerInfo)),
    /// A kind that reads its rows back.
    Rows(Box<dyn crate::sink::RowSide + 'a>),
}

/// Verifies every table of the plan, and the objects of databases selected whole.
pub fn run(task: &Task, plan: &Plan, opts: &Options) -> Result<Report> {
    let (mut dst, rows_store) = match task.destination.verification()? {
        Verification::Checksums(e) => (Some(connect_for_reads(e, Side::Destination)?), None),
        Verification::Rows(store) => (None, Some(store)),
    };
    let mut dst_dbs: BTreeMap<String, Option<catalog::DatabaseInfo>> = BTreeMap::new();
    if let Some(dst) = dst.as_mut() {
        for t in &plan.tables {
            if !dst_dbs.contains_key(&t.target.database) {
                let info = catalog::read_database(dst, &t.target.database)?;
                dst_dbs.insert(t.target.database.clone(), info);
            }
        }
        for db in plan.databases.iter().filter(|d| d.whole) {
            if !dst_dbs.contains_key(&db.target) {
                let info = catalog::read_database(dst, &db.target)?;
                dst_dbs.insert(db.target.clone(), info);
            }
        }
    }
    let sql_out = match &opts.emit_sql {
        Some(p) => {
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write {}", p.display()))?,
            );
            match rows_store {
                Some(store) => write!(w, "{}", store.sql_file().0)?,
                None => write_sql_header(&mut w)?,
            }
            Some(Mutex::new(w))
        }
        None => None,
    };
    // Tables are verified in parallel, each worker with a connection to either end.
    let progress = crate::progress::Progress::start_as(
        "verify",
        plan.tables.iter().map(|t| t.source.rows).sum(),
        opts.bars,
    );
    let throttle = crate::task::throttle::Throttle::new(opts.rows_per_second, 0.0, 0);
    let shared = Shared {
        plan,
        opts,
        sql_out: sql_out.as_ref(),
        pace: Pace {
            progress: &progress,
            throttle: &throttle,
        },
    };
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TableReport>>> = Mutex::new(vec![None; plan.tables.len()]);
    let threads = if opts.threads == 0 { 4 } else { opts.threads }.min(plan.tables.len().max(1));
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut src = connect(&task.source, Side::Source)?;
                    // One end or the other: the destination's server, or its kind's rows.
                    let mut end = match rows_store {
                        Some(store) => End::Rows(store.open()?),
                        None => {
                            let e = task.destination.verification_server()?;
                            let mut dst = connect_for_reads(e, Side::Destination)?;
                            let infos = (ServerInfo::read(&mut src)?, ServerInfo::read(&mut dst)?);
                            End::Server(dst, infos)
                        }
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = plan.tables.get(i) else {
                            return Ok(());
                        };
                        progress.table_started(&t.target.to_string(), t.source.rows);
                        let r = match &mut end {
                            End::Server(dst, infos) => {
                                let dst_table = dst_dbs[&t.target.database]
                                    .as_ref()
                                    .and_then(|d| d.table(&t.target.table));
                                verify_one(&mut src, dst, infos, t, dst_table, &shared)?
                            }
                            End::Rows(side) => rows::verify_one(&mut src, &mut **side, t, &shared)?,
                        };
                        progress.table_done(&t.target.to_string());
                        let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::info!(
                            "verify [{n}/{}] {}: {} ({} rows, {:.1} s)",
                            plan.tables.len(),
                            r.target,
                            if r.equal() { "equal" } else { "DIFFERENT" },
                            r.rows_compared,
                            r.seconds
                        );
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| match w.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(anyhow::anyhow!("a verify worker panicked")),
            })
            .collect()
    });
    progress.finish();
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    if let Some(w) = sql_out {
        // Only a complete file ends with COMMIT: one cut short applies nothing.
        let mut w = w.into_inner().unwrap_or_else(|e| e.into_inner());
        match rows_store {
            Some(store) => write!(w, "{}", store.sql_file().1)?,
            None => writeln!(w, "COMMIT;")?,
        }
        w.flush()?;
    }
    let tables = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    // Views, routines and triggers are compared where a server holds them; a kind
    // read back by rows has none (its precheck says they are not migrated).
    let Some(dst) = dst.as_mut() else {
        return Ok(Report {
            tables,
            databases: Vec::new(),
        });
    };
    let mut src = connect(&task.source, Side::Source)?;
    let grants = crate::precheck::show_grants(&mut src)?;
    let mut databases = Vec::new();
    for db in plan.databases.iter().filter(|d| d.whole) {
        let missing = missing_objects(&db.source, dst_dbs[&db.target].as_ref());
        let differing = differing_objects(&mut src, dst, &db.source.name, &db.target)?;
        // No source view lists objects a user may not see: say so rather than call
        // an empty list equal.
        let not_compared = grants
            .hidden_objects(&db.source.name)
            .into_iter()
            .map(|(kind, grant)| format!("{kind} (the source user cannot see them: GRANT {grant})"))
            .collect();
        databases.push(DatabaseReport {
            source: db.source.name.clone(),
            target: db.target.clone(),
            missing_objects: missing,
            differing_objects: differing,
            not_compared,
        });
    }
    Ok(Report { tables, databases })
}

/// Verifies (and with `--repair` or `--emit-sql`, fixes) one table.
fn verify_one(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    (si, di): &(ServerInfo, ServerInfo),
    t: &TablePlan,
    dst_table: Option<&catalog::TableInfo>,
    sh: &Shared<'_>,
) -> Result<TableReport> {
    let (opts, sql_out, pace) = (sh.opts, sh.sql_out, &sh.pace);
    let started = Instant::now();
    let mut r = TableReport {
        source: t.def().name.to_string(),
        target: t.target.to_string(),
        ..Default::default()
    };
    if let Some(d) = dst_table {
        r.schema = schema_differences(t, d);
        match defaults_and_foreign_keys(src, dst, t, sh.plan) {
            Ok(more) => r.schema.extend(more),
            Err(e) => r
                .schema
                .push(format!("defaults and foreign keys not compared: {e:#}")),
        }
    }
    if let Err(e) = verify_table(src, dst, (si, di), t, &mut r, &mut NoSync(pace)) {
        if crate::task::is_stop(&e) {
            return Err(e);
        }
        r.problem = Some(format!("{e:#}"));
    }
    if (opts.repair || sql_out.is_some()) && r.problem.is_none() && !r.equal() {
        let unguarded = unguarded_triggers(dst, t)?;
        if unguarded.is_empty() {
            let mut guard = sql_out.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
            r.repaired = repair(src, dst, t, &r, guard.as_deref_mut())?;
        } else {
            r.problem = Some(format!(
                "not repaired: destination trigger(s) {} on {} would fire for the repaired rows (they were not created by Tidemark, which guards its triggers against its own writes); drop or disable them for the repair, or repair the rows by hand",
                unguarded.join(", "),
                r.target
            ));
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Column defaults, and foreign keys (name, columns, referenced table after the mapping).
fn defaults_and_foreign_keys(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    t: &TablePlan,
    plan: &Plan,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    type DefaultRow = (String, Option<Vec<u8>>);
    let defaults = |c: &mut mysql::Conn,
                    db: &str,
                    table: &str|
     -> Result<BTreeMap<String, Option<Vec<u8>>>> {
        let rows: Vec<DefaultRow> = c.exec(
            "SELECT COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )?;
        Ok(rows
            .into_iter()
            .map(|(n, d)| (n.to_lowercase(), d))
            .collect())
    };
    let (a, b) = (
        defaults(src, &t.def().name.database, &t.def().name.table)?,
        defaults(dst, &t.target.database, &t.target.table)?,
    );
    for (source, target) in &t.columns {
        let (x, y) = (a.get(&source.to_lowercase()), b.get(&target.to_lowercase()));
        if let (Some(x), Some(y)) = (x, y) {
            if x != y {
                let show = |v: &Option<Vec<u8>>| {
                    v.as_ref().map_or("none".to_string(), |d| {
                        String::from_utf8_lossy(d).into_owned()
                    })
                };
                out.push(format!(
                    "column {target} defaults to {} on the destination, {} on the source",
                    show(y),
                    show(x)
                ));
            }
        }
    }
    type FkRow = (String, String, String, String);
    // Constraint name → (columns, referenced database, referenced table).
    type Fks = BTreeMap<String, (Vec<String>, String, String)>;
    let fks = |c: &mut mysql::Conn, db: &str, table: &str| -> Result<Fks> {
        let rows: Vec<FkRow> = c.exec(
            "SELECT CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
            (db, table),
        )?;
        let mut m = Fks::new();
        for (name, col, rdb, rtable) in rows {
            let e = m
                .entry(name.to_lowercase())
                .or_insert((Vec::new(), rdb, rtable));
            e.0.push(col.to_lowercase());
        }
        Ok(m)
    };
    let (a, b) = (
        fks(src, &t.def().name.database, &t.def().name.table)?,
        fks(dst, &t.target.database, &t.target.table)?,
    );
    for (name, (cols, rdb, rtable)) in &a {
        // Foreign keys over columns left out were left out too.
        let Some(mapped): Option<Vec<String>> = cols
            .iter()
            .map(|c| {
                t.columns
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(c))
                    .map(|(_, d)| d.to_lowercase())
            })
            .collect()
        else {
            continue;
        };
        let referenced = tidemark_core::TableName::new(rdb, rtable);
        let target = plan
            .target_table(&referenced)
            .cloned()
            .unwrap_or(referenced);
        match b.get(name) {
            None => out.push(format!("foreign key {name} is missing")),
            Some((dcols, ddb, dtable)) => {
                if *dcols != mapped
                    || !ddb.eq_ignore_ascii_case(&target.database)
                    || !dtable.eq_ignore_ascii_case(&target.table)
                {
                    out.push(format!(
                        "foreign key {name} differs (columns or referenced table)"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Views, routines and triggers present on both ends whose definitions differ, once the
/// source database's name is replaced by the destination's (and a trigger's guard for
/// incremental migration is set aside).
fn differing_objects(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    source_db: &str,
    target_db: &str,
) -> Result<Vec<String>> {
    const QUERIES: [(&str, &str); 3] = [
        ("view", "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?"),
        ("routine", "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?"),
        ("trigger", "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"),
    ];
    let normal = |text: &str, db: &str| -> String {
        let t = text.replace(&quote_ident(db), "`\u{0}`");
        let t = t
            .trim()
            .strip_prefix("IF @tidemark_apply IS NULL THEN ")
            .and_then(|x| x.strip_suffix("; END IF"))
            .unwrap_or(&t)
            .trim()
            .to_string();
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut out = Vec::new();
    for (kind, q) in QUERIES {
        let a: Vec<(String, Option<String>)> = src.exec(q, (source_db,))?;
        let b: Vec<(String, Option<String>)> = dst.exec(q, (target_db,))?;
        for (name, def) in &a {
            let Some((_, other)) = b.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let (x, y) = (
                normal(def.as_deref().unwrap_or(""), source_db),
                normal(other.as_deref().unwrap_or(""), target_db),
            );
            if x != y {
                out.push(format!("{kind} {name}"));
            }
        }
    }
    Ok(out)
}

/// Views, triggers and routines of a source database that the destination lacks
/// (names compared without regard to case, which `name_case` may change).
fn missing_objects(
    src: &catalog::DatabaseInfo,
    dst: Option<&catalog::DatabaseInfo>,
) -> Vec<String> {
    let Some(dst) = dst else {
        return vec![format!("database {}", src.name)];
    };
    let has = |list: Vec<&String>, name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    let mut missing = Vec::new();
    for v in &src.views {
        if !has(dst.views.iter().collect(), v) {
            missing.push(format!("view {v}"));
        }
    }
    for (t, _) in &src.triggers {
        if !has(dst.triggers.iter().map(|x| &x.0).collect(), t) {
            missing.push(format!("trigger {t}"));
        }
    }
    for (r, kind) in &src.routines {
        if !has(dst.routines.iter().map(|x| &x.0).collect(), r) {
            missing.push(format!("{} {r}", kind.to_lowercase()));
        }
    }
    missing
}

/// How the destination table differs from the source table after the mapping: missing
/// or extra columns, column types, nullability, generated columns, indexes over the
/// migrated columns.
fn schema_differences(t: &TablePlan, dst: &catalog::TableInfo) -> Vec<String> {
    let mut out = Vec::new();
    let src = t.def();
    let find = |name: &str| {
        dst.def
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    };
    for c in &src.columns {
        let Some(target) = t.columns.get(&c.name) else {
            continue;
        };
        let Some(d) = find(target) else {
            out.push(format!("column {target} is missing"));
            continue;
        };
        if !c.column_type.eq_ignore_ascii_case(&d.column_type) {
            out.push(format!(
                "column {target} is {} on the destination, {} on the source",
                d.column_type, c.column_type
            ));
        }
        if c.nullable != d.nullable {
            out.push(format!(
                "column {target} is {}NULL on the destination",
                if d.nullable { "" } else { "NOT " }
            ));
        }
        if c.generated != d.generated {
            out.push(format!(
                "column {target} is {}generated on the destination",
                if d.generated { "" } else { "not " }
            ));
        }
    }
    for d in &dst.def.columns {
        if !t.columns.values().any(|n| n.eq_ignore_ascii_case(&d.name)) {
            out.push(format!("column {} exists only on the destination", d.name));
        }
    }
    for (name, idx) in &t.source.indexes {
        let mapped: Option<Vec<(String, Option<u64>)>> = idx
            .parts
            .iter()
            .map(|(c, len)| t.columns.get(c).map(|n| (n.to_lowercase(), *len)))
            .collect();
        // Indexes over columns left out were left out too.
        let Some(mapped) = mapped else { continue };
        let found = dst
            .indexes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        match found {
            None => out.push(format!("index {name} is missing")),
            Some((_, d)) => {
                let parts: Vec<(String, Option<u64>)> = d
                    .parts
                    .iter()
                    .map(|(c, l)| (c.to_lowercase(), *l))
                    .collect();
                if parts != mapped || d.unique != idx.unique {
                    out.push(format!(
                        "index {name} differs (columns, prefix lengths or uniqueness)"
                    ));
                }
            }
        }
    }
    out
}

/// Which copied columns hold JSON: MySQL's JSON type, or MariaDB's alias (a LONGTEXT
/// with a `json_valid` check).
fn json_columns(src: &mut mysql::Conn, t: &TablePlan) -> Result<Vec<bool>> {
    let checks: Vec<String> = src
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.def().name.database, &t.def().name.table),
        )
        .unwrap_or_default();
    Ok(t.copied_columns()
        .map(|c| {
            c.kind == ColumnKind::Json
                || checks
                    .iter()
                    .any(|k| k.contains(&format!("json_valid({})", quote_ident(&c.name))))
        })
        .collect())
}

/// The expression a side hashes for one column.
fn column_expr(name: &str, json: bool, info: &ServerInfo) -> String {
    let q = quote_ident(name);
    match json {
        true if info.mariadb && info.at_least(10, 7, 0) => format!("JSON_NORMALIZE({q})"),
        true if !info.mariadb => format!("CAST(CAST({q} AS JSON) AS BINARY)"),
        _ => format!("CAST({q} AS BINARY)"),
    }
}

/// The per-row hash over the copied columns, on one side.
fn row_hash(t: &TablePlan, target: bool, info: &ServerInfo, json: &[bool]) -> String {
    let cols: Vec<(String, bool)> = t
        .copied_columns()
        .zip(json)
        .map(|(c, j)| {
            let name = if target {
                t.columns[&c.name].clone()
            } else {
                c.name.clone()
            };
            (name, *j)
        })
        .collect();
    let values: Vec<String> = cols.iter().map(|(n, j)| column_expr(n, *j, info)).collect();
    let nulls: Vec<String> = cols
        .iter()
        .map(|(n, _)| format!("ISNULL({})", quote_ident(n)))
        .collect();
    format!(
        "CAST(CONV(SUBSTRING(MD5(CONCAT_WS('#', {}, CONCAT({}))), 1, 16), 16, 10) AS UNSIGNED)",
        values.join(", "),
        nulls.join(", ")
    )
}

fn key_names(t: &TablePlan, target: bool) -> Vec<String> {
    let def = t.def();
    def.key
        .iter()
        .flatten()
        .map(|&i| {
            let n = &def.columns[i].name;
            quote_ident(if target { &t.columns[n] } else { n })
        })
        .collect()
}

/// `FROM t WHERE <range> [AND <where>]` for one side.
fn chunk_from(t: &TablePlan, chunk: &Chunk, target: bool) -> (String, Vec<mysql::Value>) {
    let (mut conds, params) = snapshot::key_range(t, chunk, target);
    if !target {
        if let Some(w) = &t.where_clause {
            conds.push(format!("({w})"));
        }
    }
    let table = if target {
        t.target.quoted()
    } else {
        t.def().name.quoted()
    };
    let mut sql = format!(" FROM {table}");
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    (sql, params)
}

fn verify_table(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    (si, di): (&ServerInfo, &ServerInfo),
    t: &TablePlan,
    r: &mut TableReport,
    sync: &mut dyn ChunkSync,
) -> Result<()> {
    let exists: Option<String> = dst.exec_first(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (&t.target.database, &t.target.table),
    )?;
    if exists.is_none() {
        anyhow::bail!("the destination has no table {}", t.target);
    }
    let dst_columns: Vec<String> = dst.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (&t.target.database, &t.target.table),
    )?;
    let missing: Vec<String> = t
        .target_columns()
        .into_iter()
        .filter(|c| !dst_columns.iter().any(|d| d.eq_ignore_ascii_case(c)))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the destination table lacks column(s) {}: the tables have different columns",
            missing.join(", ")
        );
    }
    let chunks = if t.def().key.is_some() {
        snapshot::plan_chunks(src, t, CHUNK_ROWS)?
    } else {
        vec![Chunk {
            index: 0,
            lower: None,
            upper: None,
        }]
    };
    r.chunks = chunks.len();
    let json = json_columns(src, t)?;
    let (sh, dh) = (row_hash(t, false, si, &json), row_hash(t, true, di, &json));
    for chunk in &chunks {
        sync.before(src)?;
        let before = r.rows_compared;
        let compared = compare_chunk(src, dst, t, chunk, (&sh, &dh), &json, r);
        sync.after(src)?;
        compared?;
        sync.compared(&t.target.to_string(), r.rows_compared - before);
    }
    Ok(())
}

/// Checksums one chunk on both ends, and drills into it when they differ.
fn compare_chunk(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    t: &TablePlan,
    chunk: &Chunk,
    (sh, dh): (&str, &str),
    json: &[bool],
    r: &mut TableReport,
) -> Result<()> {
    let (a, b) = (
        sum(src, t, chunk, sh, false)?,
        sum(dst, t, chunk, dh, true)?,
    );
    r.rows_compared += a.0;
    if a == b {
        return Ok(());
    }
    r.chunks_differing += 1;
    if t.def().key.is_none() {
        anyhow::bail!(
            "the table has no key and differs ({} rows on the source, {} on the destination): rows cannot be matched; copy it again with `tidemark reset TASKFILE --table TABLE` and `tidemark run`",
            a.0,
            b.0
        );
    }
    // Narrow a large chunk down before moving keys: checksum its parts of SUB_ROWS
    // rows and drill only into the parts that differ.
    if a.0 <= SUB_ROWS {
        return drill(src, dst, t, chunk, (sh, dh), json, r);
    }
    for part in split(src, t, chunk)? {
        if sum(src, t, &part, sh, false)? != sum(dst, t, &part, dh, true)? {
            drill(src, dst, t, &part, (sh, dh), json, r)?;
        }
    }
    Ok(())
}

/// Rows per part when a differing chunk is narrowed down.
const SUB_ROWS: u64 = 1_000;

/// Row count and checksum of a chunk on one side.
fn sum(
    c: &mut mysql::Conn,
    t: &TablePlan,
    chunk: &Chunk,
    hash: &str,
    target: bool,
) -> Result<(u64, u64)> {
    let (from, params) = chunk_from(t, chunk, target);
    let q = format!("SELECT COUNT(*), COALESCE(BIT_XOR({hash}), 0){from}");
    let row: Option<(u64, u64)> = c
        .exec_first(&q, params)
        .with_context(|| format!("checksumming chunk {} of {}", chunk.index, t.def().name))?;
    Ok(row.unwrap_or((0, 0)))
}

/// A chunk cut into parts of about [`SUB_ROWS`] source rows, at keys read from the
/// source; the last part runs to the chunk's end, so nothing on either side is left out.
fn split(src: &mut mysql::Conn, t: &TablePlan, chunk: &Chunk) -> Result<Vec<Chunk>> {
    let names = key_names(t, false);
    let kinds: Vec<ColumnKind> = t
        .def()
        .key
        .iter()
        .flatten()
        .map(|&i| t.def().columns[i].kind)
        .collect();
    let mut parts = Vec::new();
    let mut lower = chunk.lower.clone();
    loop {
        let part = Chunk {
            index: chunk.index,
            lower: lower.clone(),
            upper: chunk.upper.clone(),
        };
        let (from, params) = chunk_from(t, &part, false);
        let q = format!(
            "SELECT {}{from} ORDER BY {} LIMIT 1 OFFSET {}",
            names.join(", "),
            names.join(", "),
            SUB_ROWS - 1
        );
        let row: Option<mysql::Row> = src.exec_first(&q, params)?;
        let Some(row) = row else {
            parts.push(part);
            return Ok(parts);
        };
        let bound: Row = row
            .unwrap()
            .into_iter()
            .zip(&kinds)
            .map(|(v, k)| snapshot::from_mysql(v, *k))
            .collect();
        parts.push(Chunk {
            index: chunk.index,
            lower: lower.clone(),
            upper: Some(bound.clone()),
        });
        lower = Some(bound);
    }
}

/// Rows of a chunk by key: (key, hash) on each side, then whole rows for those that
/// differ, to name the columns.
fn drill(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    t: &TablePlan,
    chunk: &Chunk,
    (sh, dh): (&str, &str),
    json: &[bool],
    r: &mut TableReport,
) -> Result<()> {
    // (key literals → (key, hash)), and the keys in key order.
    type Side = (BTreeMap<Vec<u8>, (Row, u64)>, Vec<Vec<u8>>);
    let keys = |c: &mut mysql::Conn, hash: &str, target: bool| -> Result<Side> {
        let (from, params) = chunk_from(t, chunk, target);
        let names = key_names(t, target);
        let q = format!(
            "SELECT {}, {hash}{from} ORDER BY {}",
            names.join(", "),
            names.join(", ")
        );
        let kinds: Vec<ColumnKind> = t
            .def()
            .key
            .iter()
            .flatten()
            .map(|&i| t.def().columns[i].kind)
            .collect();
        let rows: Vec<mysql::Row> = c.exec(&q, params)?;
        let (mut out, mut order) = (BTreeMap::new(), Vec::new());
        for row in rows {
            let mut v = row.unwrap();
            let hash: u64 = v
                .pop()
                .and_then(|h| mysql::from_value_opt::<u64>(h).ok())
                .unwrap_or(0);
            let key: Row = v
                .into_iter()
                .zip(&kinds)
                .map(|(x, k)| snapshot::from_mysql(x, *k))
                .collect();
            let id = literals(&key).join(",").into_bytes();
            order.push(id.clone());
            out.insert(id, (key, hash));
        }
        Ok((out, order))
    };
    let ((a, a_order), (b, b_order)) = (keys(src, sh, false)?, keys(dst, dh, true)?);
    for id in &a_order {
        let (key, hash) = &a[id];
        match b.get(id) {
            None => r.missing.push(Difference {
                key: literals(key),
                values: key.clone(),
                columns: Vec::new(),
            }),
            Some((_, h)) if h != hash => r.differing.push(Difference {
                key: literals(key),
                values: key.clone(),
                columns: differing_columns(src, dst, t, key, json)?,
            }),
            Some(_) => {}
        }
    }
    for id in &b_order {
        let (key, _) = &b[id];
        if !a.contains_key(id) {
            r.extra.push(Difference {
                key: literals(key),
                values: key.clone(),
                columns: Vec::new(),
            });
        }
    }
    Ok(())
}

fn literals(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            let mut s = String::new();
            push_literal(&mut s, v);
            s
        })
        .collect()
}

/// `WHERE k1 = ? AND k2 = ?` over one side's key names.
fn key_match(t: &TablePlan, target: bool, key: &Row) -> (String, Vec<mysql::Value>) {
    let conds: Vec<String> = key_names(t, target)
        .into_iter()
        .map(|n| format!("{n} <=> ?"))
        .collect();
    (
        conds.join(" AND "),
        key.iter().map(snapshot::to_mysql).collect(),
    )
}

/// One row (copied columns) by key.
fn fetch(c: &mut mysql::Conn, t: &TablePlan, target: bool, key: &Row) -> Result<Option<Row>> {
    let cols: Vec<String> = t
        .copied_columns()
        .map(|c| quote_ident(if target { &t.columns[&c.name] } else { &c.name }))
        .collect();
    let table = if target {
        t.target.quoted()
    } else {
        t.def().name.quoted()
    };
    let (cond, params) = key_match(t, target, key);
    let q = format!("SELECT {} FROM {table} WHERE {cond}", cols.join(", "));
    let kinds: Vec<ColumnKind> = t.copied_columns().map(|c| c.kind).collect();
    let row: Option<mysql::Row> = c.exec_first(&q, params)?;
    Ok(row.map(|r| {
        r.unwrap()
            .into_iter()
            .zip(&kinds)
            .map(|(v, k)| snapshot::from_mysql(v, *k))
            .collect()
    }))
}

fn differing_columns(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    t: &TablePlan,
    key: &Row,
    json: &[bool],
) -> Result<Vec<String>> {
    let (a, b) = (fetch(src, t, false, key)?, fetch(dst, t, true, key)?);
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(Vec::new());
    };
    let names = t.target_columns();
    Ok(a.iter()
        .zip(&b)
        .zip(names)
        .zip(json)
        .filter(|(((x, y), _), is_json)| x != y && !(**is_json && same_json(x, y)))
        .map(|(((_, _), n), _)| n)
        .collect())
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Json(x) | Value::Bytes(x), Value::Json(y) | Value::Bytes(y)) => {
            let p = |t: &[u8]| serde_json::from_slice::<serde_json::Value>(t).ok();
            p(x).is_some() && p(x) == p(y)
        }
        _ => false,
    }
}

/// The start of an `--emit-sql` file: the apply connections' session (raw bytes, UTC,
/// their sql_mode, Tidemark's triggers held back, no foreign key checks across the
/// tables' order) and one transaction, so `mariadb < file` applies all of it or, on the
/// first error (the client stops there and the transaction is rolled back), nothing.
fn write_sql_header(w: &mut impl Write) -> Result<()> {
    writeln!(
        w,
        "-- tidemark verify --emit-sql: apply with `mariadb < FILE` (or `mysql < FILE`);"
    )?;
    writeln!(
        w,
        "-- all or nothing: it stops at the first error and nothing is committed."
    )?;
    writeln!(w, "{};", crate::connect::SESSION)?;
    // The client cannot read warnings as Tidemark's own sessions do, so the file is
    // strict: a value the destination would have to alter stops it, and nothing applies.
    writeln!(
        w,
        "SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES');"
    )?;
    writeln!(w, "{};", REPAIR_SESSION)?;
    writeln!(w, "START TRANSACTION;")?;
    Ok(())
}

/// A repair writes as the incremental applier does: Tidemark's destination triggers do
/// not fire for its rows, foreign keys are not checked across the order tables are
/// repaired in.
const REPAIR_SESSION: &str = crate::connect::APPLY_SESSION;

/// Destination triggers on the table that do not step aside for Tidemark's sessions.
fn unguarded_triggers(dst: &mut mysql::Conn, t: &TablePlan) -> Result<Vec<String>> {
    let found: Vec<(String, String)> = dst
        .exec(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
            (&t.target.database, &t.target.table),
        )
        .with_context(|| format!("reading the destination triggers of {}", t.target))?;
    Ok(found
        .into_iter()
        .filter(|(_, body)| {
            !body
                .trim_start()
                .starts_with("IF @tidemark_apply IS NULL THEN")
        })
        .map(|(name, _)| name)
        .collect())
}

/// Writes (or emits) the source's rows over missing and differing ones, and deletes
/// extra ones. Returns how many rows were written or deleted.
fn repair(
    src: &mut mysql::Conn,
    dst: &mut mysql::Conn,
    t: &TablePlan,
    r: &TableReport,
    mut sql_out: Option<&mut std::io::BufWriter<std::fs::File>>,
) -> Result<u64> {
    let mut statements = Vec::new();
    for d in r.missing.iter().chain(&r.differing) {
        if let Some(row) = fetch(src, t, false, &d.values)? {
            let mut b = InsertBuilder::new(t, InsertMode::Replace, 1, usize::MAX);
            b.push(&row);
            let built = b.take();
            statements.push((built.body, built.error_values));
        }
    }
    for d in &r.extra {
        let mut cond = Vec::new();
        for (n, lit) in key_names(t, true).into_iter().zip(&d.key) {
            cond.push(format!("{n} = {lit}"));
        }
        statements.push((
            format!(
                "DELETE FROM {} WHERE {} LIMIT 1",
                t.target.quoted(),
                cond.join(" AND ")
            ),
            Vec::new(),
        ));
    }
    match sql_out.as_mut() {
        Some(w) => {
            writeln!(w, "-- {} → {}", r.source, r.target)?;
            for (s, _) in &statements {
                writeln!(w, "{s};")?;
            }
        }
        None => {
            dst.query_drop(REPAIR_SESSION)?;
            dst.query_drop("START TRANSACTION")?;
            // The session is not strict (`connect::SESSION`): a row the destination had
            // to alter fails the repair, as it fails a copy's chunk, and nothing is kept.
            let written = t.target_columns();
            for (s, error_values) in &statements {
                dst.query_drop(s)
                    .with_context(|| format!("repairing {}", r.target))?;
                if dst.warnings() == 0 {
                    continue;
                }
                let serious =
                    crate::sink::mysql::writer::changed_values(dst, &written, false, error_values)
                        .with_context(|| format!("repairing {}", r.target))?;
                if !serious.is_empty() {
                    dst.query_drop("ROLLBACK")?;
                    anyhow::bail!(
                        "repairing {}: the destination changed values ({}); nothing of this table was repaired: make its columns fit the source's values, then run verify --repair again",
                        r.target,
                        serious.join("; ")
                    );
                }
            }
            dst.query_drop("COMMIT")?;
        }
    }
    Ok(statements.len() as u64)
}
