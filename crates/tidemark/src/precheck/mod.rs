//! Prechecks: everything that can be known to fail before anything is written.
//!
//! Each item passes, warns or fails, and says what to do. `tidemark run` runs them first
//! and stops on any failure. The checks also produce the [`Plan`] the run executes, so
//! what was checked is exactly what runs.

pub(crate) mod grants;

use crate::config::{ConflictMode, Phase, Task};
use crate::connect::{connect_raw, ServerInfo, Side};
use crate::source::catalog;
use crate::state::Store;
use crate::transform::mapping::{self, Plan};
use anyhow::Context;
use grants::Grants;
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;
use std::collections::BTreeMap;
use tidemark_core::sql::quote_ident;

/// The database of the heartbeat table (`[advanced] heartbeat`).
const HEARTBEAT_DATABASE: &str = "tidemark_heartbeat";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warning,
    Failure,
}

/// One precheck item.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    fn pass(&mut self, id: &'static str, detail: impl Into<String>) {
        self.items.push(Item {
            id,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        });
    }
    fn warn(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.items.push(Item {
            id,
            status: Status::Warning,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    fn fail(&mut self, id: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.items.push(Item {
            id,
            status: Status::Failure,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }

    pub fn passed(&self) -> bool {
        !self.items.iter().any(|i| i.status == Status::Failure)
    }

    /// The failures, one sentence each with its fix (for the task's recorded error).
    pub fn failures(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.status == Status::Failure)
            .map(|i| match &i.fix {
                Some(fix) => format!("{}: {} ({fix})", i.id, i.detail),
                None => format!("{}: {}", i.id, i.detail),
            })
            .collect()
    }

    /// The human table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for i in &self.items {
            let mark = match i.status {
                Status::Pass => "PASS",
                Status::Warning => "WARN",
                Status::Failure => "FAIL",
            };
            out.push_str(&format!("{mark:<5}{:<24}{}\n", i.id, i.detail));
            if let Some(fix) = &i.fix {
                out.push_str(&format!("{:<29}→ {fix}\n", ""));
            }
        }
        let (w, f) = self.items.iter().fold((0, 0), |(w, f), i| match i.status {
            Status::Warning => (w + 1, f),
            Status::Failure => (w, f + 1),
            Status::Pass => (w, f),
        });
        out.push_str(&format!(
            "\n{} items: {} passed, {w} warnings, {f} failures\n",
            self.items.len(),
            self.items.len() - w - f
        ));
        out
    }
}

/// What the checks learned, for the run.
pub struct Checked {
    pub report: Report,
    pub plan: Option<Plan>,
    pub source: Option<ServerInfo>,
    pub destination: Option<ServerInfo>,
}

/// Runs every check. `store` lets a resumed task recognise tables it created itself.
pub fn run(task: &Task, store: Option<&Store>) -> Checked {
    let mut r = Report::default();
    let mut src = match connect_raw(&task.source, Side::Source) {
        Ok(c) => {
            r.pass("source-connection", format!("connected to {}", task.source));
            Some(c)
        }
        Err(e) => {
            r.fail(
                "source-connection",
                format!("{e:#}"),
                "fix `source.url` or the server, then rerun the precheck",
            );
            None
        }
    };
    let queue = task.destination_kind == crate::config::DestinationKind::Rocketmq;
    let mut dst = if queue {
        None
    } else {
        match connect_raw(&task.destination, Side::Destination) {
            Ok(c) => {
                r.pass(
                    "destination-connection",
                    format!("connected to {}", task.destination),
                );
                Some(c)
            }
            Err(e) => {
                r.fail(
                    "destination-connection",
                    format!("{e:#}"),
                    "fix `destination.url` or the server, then rerun the precheck",
                );
                None
            }
        }
    };
    let failed = |r: Report| Checked {
        report: r,
        plan: None,
        source: None,
        destination: None,
    };
    let Some(src) = src.as_mut() else {
        return failed(r);
    };
    if dst.is_none() && !queue {
        return failed(r);
    }
    match check_all(task, store, src, dst.as_mut(), &mut r) {
        Ok((plan, s, d)) => Checked {
            report: r,
            plan,
            source: Some(s),
            destination: d,
        },
        Err(e) => {
            r.fail(
                "precheck",
                format!("the precheck itself failed: {e:#}"),
                "fix the cause above and rerun",
            );
            failed(r)
        }
    }
}

/// The connection's user's grants.
pub(crate) fn show_grants(c: &mut Conn) -> anyhow::Result<Grants> {
    let lines: Vec<String> = c.query("SHOW GRANTS")?;
    Ok(Grants::parse(lines.iter().map(String::as_str)))
}

/// Runs the checks on a connected source and, for a MySQL destination, destination.
fn check_all(
    task: &Task,
    store: Option<&Store>,
    src: &mut Conn,
    mut dst: Option<&mut Conn>,
    r: &mut Report,
) -> anyhow::Result<(Option<Plan>, ServerInfo, Option<ServerInfo>)> {
    let s = ServerInfo::read(src)?;
    let mut d = None;
    if let Some(dst) = dst.as_deref_mut() {
        let info = ServerInfo::read(dst)?;
        versions(&s, &info, r);
        d = Some(info);
    }
    let dest_lower = d.as_ref().is_some_and(|d| d.lower_case_table_names != 0);

    // Objects.
    let mut dbs = BTreeMap::new();
    for o in &task.objects {
        if let Some(info) = catalog::read_database(src, &o.database)? {
            dbs.insert(o.database.clone(), info);
        }
    }
    let (plan, problems) = mapping::build(task, &dbs, dest_lower);
    if problems.is_empty() {
        r.pass(
            "objects",
            format!(
                "{} database(s), {} table(s) selected",
                plan.databases.len(),
                plan.tables.len()
            ),
        );
    }
    for p in problems {
        r.fail("objects", p, "correct [[objects]] in the task file");
    }
    where_filters(task, &plan, src, r);
    source_privileges(task, &plan, src, r)?;
    keys(task, &plan, &s, r);
    destination_collisions(&plan, r);
    unsupported(&plan, r);
    invisible(&plan, &s, r);
    match dst {
        Some(dst) => {
            destination_privileges(task, &plan, dst, r)?;
            target_names(&plan, r);
            conflicts(task, store, &plan, dst, r)?;
            space(task, &plan, dst, r);
        }
        None => queue_destination(task, &plan, r),
    }
    if task.has(Phase::Incremental) {
        binlog(task, src, r)?;
        server_id(task, src, r)?;
        checkpoint_binlog(store, src, r)?;
    }
    Ok((Some(plan), s, d))
}

/// A RocketMQ destination: name servers, topics, credentials, partition columns; and
/// what does not apply to a message queue.
fn queue_destination(task: &Task, plan: &Plan, r: &mut Report) {
    let Some(config) = &task.rocketmq else {
        return;
    };
    if task.has(Phase::Schema) {
        r.fail(
            "schema-migration",
            "schema migration does not apply to a RocketMQ destination (there are no tables to create; DDL from the binlog is sent as messages)",
            "remove \"schema\" from `migration.types`",
        );
    }
    if task.verification.mode != crate::config::VerificationMode::Off {
        r.fail(
            "verification",
            "verification compares tables on a MySQL destination; a RocketMQ destination has none",
            "set `[verification] mode = \"off\"` (consumers can compare what they rebuild with `tidemark verify` against their own database)",
        );
    }
    let sink = crate::sink::rocketmq::Sink::new(
        config.clone(),
        &task.name,
        std::time::Duration::from_secs(30),
    );
    let problems = sink.check(&plan.tables);
    if problems.is_empty() {
        r.pass(
            "destination-topics",
            format!(
                "name server {} answers; topic(s) {} exist with writable queues; the broker accepts producer group {:?}",
                config.name_servers.join(","),
                config.topics().join(", "),
                config.producer_group
            ),
        );
    }
    for p in problems {
        r.fail(
            "destination-topics",
            p,
            "fix `[destination]` (name_servers, topic, credentials, topics) or the RocketMQ cluster, then rerun the precheck",
        );
    }
}

/// On a restart: the binlog file the task continues from is still on the source.
fn checkpoint_binlog(store: Option<&Store>, src: &mut Conn, r: &mut Report) -> anyhow::Result<()> {
    use crate::task::incremental::{load_position, CHECKPOINT, START};
    let Some(store) = store else { return Ok(()) };
    let at = match load_position(store, CHECKPOINT)? {
        Some(p) => Some(p),
        None => load_position(store, START)?,
    };
    let Some(at) = at.filter(|p| !p.file.is_empty()) else {
        return Ok(());
    };
    let files: Vec<String> = src
        .query_map("SHOW BINARY LOGS", |row: mysql::Row| {
            row.get::<String, _>(0).unwrap_or_default()
        })
        .unwrap_or_default();
    if files.is_empty() || files.contains(&at.file) {
        r.pass(
            "binlog-position",
            format!("the source still has {}", at.file),
        );
    } else {
        r.fail(
            "binlog-position",
            format!(
                "binlog {} (where this task continues, {at}) was purged from the source; the changes since then cannot be read",
                at.file
            ),
            "rerun the task with full migration: delete its state directory and run it again with types = [\"schema\", \"full\", \"incremental\"]; keep binlogs longer (binlog_expire_logs_seconds)",
        );
    }
    Ok(())
}

fn versions(s: &ServerInfo, d: &ServerInfo, r: &mut Report) {
    let supported = |i: &ServerInfo| {
        if i.mariadb {
            i.major >= 10
        } else {
            i.at_least(5, 7, 0)
        }
    };
    for (id, i, side) in [
        ("source-version", s, "source"),
        ("destination-version", d, "destination"),
    ] {
        if supported(i) {
            r.pass(id, format!("{side} runs {}", i.version));
        } else {
            r.fail(
                id,
                format!("{side} runs {}, which is not supported", i.version),
                "use MySQL 5.7 or later, or MariaDB 10.x or later",
            );
        }
    }
    if !s.mariadb && d.mariadb && s.major >= 8 {
        r.warn(
            "compatibility",
            "MySQL 8 → MariaDB: utf8mb4_0900 collations and JSON columns may not exist on MariaDB",
            "check the schema step's output; map collations on the destination if needed",
        );
    } else if (d.mariadb == s.mariadb) && (d.major, d.minor) < (s.major, s.minor) {
        r.warn(
            "compatibility",
            format!(
                "destination {} is older than source {}",
                d.version, s.version
            ),
            "use a destination of the same or a newer version, or check every DDL applies",
        );
    } else {
        r.pass(
            "compatibility",
            "destination version can hold the source schema",
        );
    }
}

fn where_filters(task: &Task, plan: &Plan, src: &mut Conn, r: &mut Report) {
    for t in plan.tables.iter().filter(|t| t.where_clause.is_some()) {
        let w = t.where_clause.as_deref().unwrap_or_default();
        let q = format!(
            "SELECT 1 FROM {} WHERE ({w}) LIMIT 0",
            t.def().name.quoted()
        );
        match src.query_drop(&q) {
            Ok(()) => r.pass(
                "where-filter",
                format!("`where` of {} accepted by the source", t.def().name),
            ),
            Err(e) => r.fail(
                "where-filter",
                format!("the source rejects the `where` of {}: {e}", t.def().name),
                "correct the `where` expression in [[objects]]; it is evaluated by the source",
            ),
        }
    }
    let _ = task;
}

fn source_privileges(
    task: &Task,
    plan: &Plan,
    src: &mut Conn,
    r: &mut Report,
) -> anyhow::Result<()> {
    let g = show_grants(src)?;
    let user = &task.source.user;
    let mut missing = Vec::new();
    // information_schema hides tables the user may not read: a whole database needs
    // SELECT on all of it, or tables would silently be left out.
    for db in plan.databases.iter().filter(|d| d.whole) {
        if !g.has("SELECT", Some(&db.source.name), None) {
            missing.push(format!("SELECT on `{}`.*", db.source.name));
        }
    }
    for t in plan.tables.iter().filter(|t| !t.whole_database) {
        let n = &t.def().name;
        if !g.has("SELECT", Some(&n.database), Some(&n.table)) {
            missing.push(format!("SELECT on {n}"));
        }
    }
    for db in plan
        .databases
        .iter()
        .filter(|d| d.whole && !d.source.views.is_empty())
    {
        if !g.has("SHOW VIEW", Some(&db.source.name), None) {
            missing.push(format!("SHOW VIEW on `{}`.*", db.source.name));
        }
    }
    if task.has(Phase::Incremental) {
        if !g.has("REPLICATION SLAVE", None, None) {
            missing.push("REPLICATION SLAVE on *.*".into());
        }
        if !g.has("REPLICATION CLIENT", None, None) && !g.has("BINLOG MONITOR", None, None) {
            missing.push("REPLICATION CLIENT (MariaDB: BINLOG MONITOR) on *.*".into());
        }
        if task.advanced.heartbeat {
            // The heartbeat creates its table and writes it with REPLACE.
            for p in ["CREATE", "INSERT", "DELETE"] {
                if !g.has(p, Some(HEARTBEAT_DATABASE), None) {
                    missing.push(format!(
                        "{p} on `{HEARTBEAT_DATABASE}`.* (`advanced.heartbeat`)"
                    ));
                }
            }
        }
    }
    if task.has(Phase::Schema) {
        object_privileges(&g, plan, src, r)?;
    }
    if missing.is_empty() {
        r.pass(
            "source-privileges",
            format!("{user} may read every selected object"),
        );
    } else {
        r.fail(
            "source-privileges",
            format!("{user} lacks {}", missing.join(", ")),
            format!(
                "on the source: GRANT {} TO the migration user",
                missing.join("; GRANT ")
            ),
        );
    }
    Ok(())
}

/// The schema phase migrates the triggers, procedures and functions of databases
/// selected whole: a user who cannot see them would migrate none and report none
/// missing. Events are not migrated; the user is told which exist.
fn object_privileges(
    g: &Grants,
    plan: &Plan,
    src: &mut Conn,
    r: &mut Report,
) -> anyhow::Result<()> {
    let mut hidden = Vec::new();
    let mut events = Vec::new();
    let mut unseen_events = Vec::new();
    for db in plan.databases.iter().filter(|d| d.whole) {
        let name = &db.source.name;
        for (kind, grant) in g.hidden_objects(name) {
            hidden.push(format!("{kind} of `{name}` (GRANT {grant})"));
        }
        if g.has("EVENT", Some(name.as_str()), None) {
            let found: Vec<String> = src.exec(
                "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME",
                (name,),
            )?;
            events.extend(found.into_iter().map(|e| format!("{name}.{e}")));
        } else {
            unseen_events.push(format!("`{name}`"));
        }
    }
    if hidden.is_empty() {
        r.pass(
            "source-object-privileges",
            "the migration user sees every trigger, procedure and function of the selected databases",
        );
    } else {
        r.fail(
            "source-object-privileges",
            format!(
                "the migration user cannot see these, so they would be silently left out: {}",
                hidden.join("; ")
            ),
            "grant the privileges named above on the source, or select the tables one by one (their triggers and routines are then not migrated)",
        );
    }
    if !events.is_empty() {
        r.warn(
            "events",
            format!("events are not migrated: {}", events.join(", ")),
            "create them on the destination yourself (SHOW CREATE EVENT), disabled until cut-over",
        );
    } else if !unseen_events.is_empty() {
        r.warn(
            "events",
            format!(
                "the migration user lacks EVENT on {}, so whether they hold events cannot be told (events are not migrated)",
                unseen_events.join(", ")
            ),
            "GRANT EVENT on those databases to see them listed here, or check SHOW EVENTS yourself",
        );
    } else {
        r.pass("events", "no events in the selected databases");
    }
    Ok(())
}

fn destination_privileges(
    task: &Task,
    plan: &Plan,
    dst: &mut Conn,
    r: &mut Report,
) -> anyhow::Result<()> {
    let g = show_grants(dst)?;
    let mut missing = Vec::new();
    for db in &plan.databases {
        let mut need = vec!["SELECT", "INSERT", "DELETE"];
        if task.has(Phase::Schema) {
            need.extend(["CREATE", "ALTER", "INDEX", "REFERENCES"]);
            if db.whole && !db.source.views.is_empty() {
                need.push("CREATE VIEW");
            }
            if db.whole && !db.source.triggers.is_empty() {
                need.push("TRIGGER");
            }
            if db.whole && !db.source.routines.is_empty() {
                need.extend(["CREATE ROUTINE", "ALTER ROUTINE"]);
            }
        }
        if task.has(Phase::Incremental) {
            need.extend(["UPDATE", "DROP"]);
        }
        for p in need {
            if !g.has(p, Some(&db.target), None) {
                missing.push(format!("{p} on {}.*", quote_ident(&db.target)));
            }
        }
    }
    if missing.is_empty() {
        r.pass(
            "destination-privileges",
            format!(
                "{} may create and write every target object",
                task.destination.user
            ),
        );
    } else {
        r.fail(
            "destination-privileges",
            format!("{} lacks {}", task.destination.user, missing.join(", ")),
            "on the destination: GRANT those privileges to the migration user",
        );
    }
    Ok(())
}

fn target_names(plan: &Plan, r: &mut Report) {
    let bad =
        |n: &str| n.is_empty() || n.chars().count() > 64 || n.ends_with(' ') || n.contains('\0');
    let mut problems = Vec::new();
    for db in &plan.databases {
        if bad(&db.target) || db.target.contains('/') || db.target.contains('\\') {
            problems.push(format!("database name {:?}", db.target));
        }
    }
    for t in &plan.tables {
        if bad(&t.target.table) {
            problems.push(format!("table name {:?}", t.target.table));
        }
        for c in t.columns.values().filter(|c| bad(c)) {
            problems.push(format!("column name {c:?} in {}", t.target));
        }
    }
    if problems.is_empty() {
        r.pass("destination-names", "every destination name is valid");
    } else {
        r.fail(
            "destination-names",
            format!("invalid on the destination: {}", problems.join(", ")),
            "names must be 1–64 characters, not end with a space and not contain '/', '\\' or NUL: change `rename`",
        );
    }
}

fn keys(task: &Task, plan: &Plan, s: &ServerInfo, r: &mut Report) {
    let keyless: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| t.def().key.is_none())
        .map(|t| t.def().name.to_string())
        .collect();
    if keyless.is_empty() {
        r.pass(
            "primary-keys",
            "every selected table has a PRIMARY KEY or a NOT NULL UNIQUE key",
        );
        return;
    }
    r.warn(
        "primary-keys",
        format!("no PRIMARY KEY or NOT NULL UNIQUE key: {}", keyless.join(", ")),
        "add a primary key: these tables are copied in one piece, an interrupted copy restarts them from scratch, and the destination cannot refuse a duplicate row",
    );
    // Their copy must meet the binlog at an exact position (see `task::full`): MariaDB
    // reports a snapshot's position, MySQL needs a brief table lock.
    let hand_off = task.has(Phase::Full) && task.has(Phase::Incremental);
    if hand_off && !s.mariadb && !task.full.keyless_table_lock {
        r.fail(
            "keyless-hand-off",
            format!(
                "{} has no key and this source (MySQL) reports no snapshot binlog position; with `full.keyless_table_lock = false` its copy cannot meet the binlog exactly (changes made during the copy would be applied twice)",
                keyless.join(", ")
            ),
            "allow the brief per-table lock (`full.keyless_table_lock = true`, needs RELOAD and LOCK TABLES), or add a primary key to these tables",
        );
    }
}

/// Two selected tables written to one destination table would mix their rows, and the
/// second's schema step or copy would fail half-way.
fn destination_collisions(plan: &Plan, r: &mut Report) {
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &plan.tables {
        let target = if plan.dest_lower {
            t.target.to_string().to_lowercase()
        } else {
            t.target.to_string()
        };
        by_target
            .entry(target)
            .or_default()
            .push(t.def().name.to_string());
    }
    let clashes: Vec<String> = by_target
        .iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(target, sources)| format!("{} → {target}", sources.join(" and ")))
        .collect();
    if clashes.is_empty() {
        r.pass(
            "destination-collisions",
            "every selected table has a destination table of its own",
        );
    } else {
        r.fail(
            "destination-collisions",
            format!("several source tables map to one destination table: {}", clashes.join("; ")),
            "give each a different destination with `rename` in [[objects]] (or a different `name_case`), or leave one out",
        );
    }
}

fn unsupported(plan: &Plan, r: &mut Report) {
    let found: Vec<String> = plan
        .databases
        .iter()
        .filter(|d| d.whole)
        .flat_map(|d| {
            d.source
                .unsupported
                .iter()
                .map(move |(t, kind)| format!("{}.{t} ({kind})", d.source.name))
        })
        .collect();
    if found.is_empty() {
        r.pass(
            "table-types",
            "every table in the selected databases can be migrated",
        );
    } else {
        r.warn(
            "table-types",
            format!("not migrated by this version: {}", found.join(", ")),
            "create them on the destination yourself (e.g. with mariadb-dump --no-data) or leave them out",
        );
    }
}

fn conflicts(
    task: &Task,
    store: Option<&Store>,
    plan: &Plan,
    dst: &mut Conn,
    r: &mut Report,
) -> anyhow::Result<()> {
    let mut existing = Vec::new();
    let mut missing = Vec::new();
    for t in &plan.tables {
        let n: Option<String> = dst.exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.target.database, &t.target.table),
        )?;
        let ours = match store {
            Some(s) => s.was_created("table", &t.target.to_string())?,
            None => false,
        };
        match (n.is_some(), ours) {
            (true, false) => existing.push(t.target.to_string()),
            (false, _) if !task.has(Phase::Schema) => missing.push(t.target.to_string()),
            _ => {}
        }
    }
    if !missing.is_empty() {
        r.fail(
            "destination-tables",
            format!("missing on the destination: {}", missing.join(", ")),
            "add \"schema\" to migration.types, or create the tables first",
        );
    }
    if existing.is_empty() || !task.has(Phase::Schema) {
        if missing.is_empty() {
            r.pass(
                "conflicting-tables",
                "no selected table exists on the destination yet",
            );
        }
        return Ok(());
    }
    if task.migration.on_conflicting_tables == ConflictMode::Ignore && task.has(Phase::Full) {
        // A keyless table's rows cannot be matched: copying into one that has rows
        // doubles every row they share.
        let mut filled = Vec::new();
        for t in plan.tables.iter().filter(|t| t.def().key.is_none()) {
            if !existing.contains(&t.target.to_string()) {
                continue;
            }
            let any: Option<u8> = dst
                .query_first(format!("SELECT 1 FROM {} LIMIT 1", t.target.quoted()))
                .with_context(|| format!("reading {} on the destination", t.target))?;
            if any.is_some() {
                filled.push(t.target.to_string());
            }
        }
        if !filled.is_empty() {
            r.fail(
                "conflicting-tables",
                format!(
                    "already on the destination with rows, and without a key (its rows cannot be matched with the source's, so the copy would double them): {}",
                    filled.join(", ")
                ),
                "empty those tables on the destination (TRUNCATE), add a primary key on both ends, or leave them out of [[objects]]",
            );
        }
    }
    let list = existing.join(", ");
    match task.migration.on_conflicting_tables {
        ConflictMode::Fail => r.fail(
            "conflicting-tables",
            format!("already on the destination: {list}"),
            "drop or rename them on the destination, use `rename` in [[objects]], or set migration.on_conflicting_tables = \"ignore\" to keep their rows",
        ),
        ConflictMode::Ignore => r.warn(
            "conflicting-tables",
            format!("already on the destination (kept; rows whose key exists are not overwritten): {list}"),
            "make sure their definitions match the source",
        ),
    }
    Ok(())
}

fn invisible(plan: &Plan, s: &ServerInfo, r: &mut Report) {
    let cols: Vec<String> = plan
        .tables
        .iter()
        .flat_map(|t| {
            t.def()
                .columns
                .iter()
                .filter(|c| c.invisible)
                .map(move |c| format!("{}.{}", t.def().name, c.name))
        })
        .collect();
    if cols.is_empty() {
        r.pass("invisible-columns", "no invisible columns");
    } else if !s.mariadb && s.at_least(8, 0, 23) && cols.iter().any(|c| c.ends_with(".my_row_id")) {
        r.warn(
            "invisible-columns",
            format!("generated invisible primary keys / invisible columns: {}", cols.join(", ")),
            "they are copied by name; keep sql_generate_invisible_primary_key identical on the destination",
        );
    } else {
        r.warn(
            "invisible-columns",
            format!("invisible columns (copied explicitly): {}", cols.join(", ")),
            "nothing to do; listed so you know",
        )
    }
}

fn space(task: &Task, plan: &Plan, dst: &mut Conn, r: &mut Report) {
    let need: u64 = plan.tables.iter().map(|t| t.source.bytes).sum();
    let local = ["127.0.0.1", "localhost", "::1"].contains(&task.destination.host.as_str());
    let free = local
        .then(|| {
            dst.query_first::<String, _>("SELECT @@datadir")
                .ok()
                .flatten()
        })
        .flatten()
        .and_then(|dir| free_bytes(&dir));
    match free {
        Some(f) if f < need => r.warn(
            "destination-space",
            format!("the selected data takes about {} MB on the source; the destination disk has {} MB free", need >> 20, f >> 20),
            "free disk space on the destination before running",
        ),
        Some(f) => r.pass("destination-space", format!("about {} MB needed, {} MB free", need >> 20, f >> 20)),
        None => r.warn(
            "destination-space",
            format!("the selected data takes about {} MB on the source; free space on a remote destination cannot be read", need >> 20),
            "make sure the destination has more free space than that (tables grow during a load)",
        ),
    }
}

fn free_bytes(dir: &str) -> Option<u64> {
    let c = std::ffi::CString::new(dir).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// The task reads the binlog as a replica with `source.server_id`: a server ignores and
/// refuses a replica registered with its own id.
fn server_id(task: &Task, src: &mut Conn, r: &mut Report) -> anyhow::Result<()> {
    let own: Option<u32> = src.query_first("SELECT @@server_id")?;
    match own {
        Some(id) if id == task.server_id => r.fail(
            "server-id",
            format!("the task would register as replica server_id {id}, which is the source's own server_id"),
            "set `source.server_id` in the task file to an id no server or replica in the source's topology uses",
        ),
        _ => r.pass(
            "server-id",
            format!("the task reads the binlog as server_id {}", task.server_id),
        ),
    }
    Ok(())
}

fn binlog(task: &Task, src: &mut Conn, r: &mut Report) -> anyhow::Result<()> {
    let var = |c: &mut Conn, name: &str| -> anyhow::Result<Option<String>> {
        let row: Option<(String, String)> =
            c.exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))?;
        Ok(row.map(|(_, v)| v))
    };
    let expect = [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
    ];
    for (name, want) in expect {
        let got = var(src, name)?.unwrap_or_default();
        if got.eq_ignore_ascii_case(want) {
            r.pass("binlog", format!("{name} = {got}"));
        } else if name == "log_bin" {
            // `log_bin` takes the binlog files' base name (`log_bin = ON` would name
            // them ON.000001), and a server only logs with a non-zero server_id.
            r.fail(
                "binlog",
                format!("the binary log is off (log_bin = {got:?}); incremental migration reads it"),
                "in the source's server configuration ([mysqld] section) set `log_bin = mysql-bin` (the binlog files' base name), `server_id = 1` (any non-zero id unique among its replicas), `binlog_format = ROW` and `binlog_row_image = FULL`, then restart the source",
            );
        } else {
            r.fail(
                "binlog",
                format!("{name} is {got:?}; incremental migration needs {want}"),
                format!("SET GLOBAL {name} = {want}, and set `{name} = {want}` in the source's server configuration so it survives a restart (sessions already open keep the old value)"),
            );
        }
    }
    let days: f64 = var(src, "expire_logs_days")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let secs: f64 = var(src, "binlog_expire_logs_seconds")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let retention_h = if secs > 0.0 {
        secs / 3600.0
    } else {
        days * 24.0
    };
    let need_h = if task.has(Phase::Full) {
        7.0 * 24.0
    } else {
        24.0
    };
    if retention_h == 0.0 || retention_h >= need_h {
        r.pass(
            "binlog-retention",
            if retention_h == 0.0 {
                "binlogs are never purged automatically".to_string()
            } else {
                format!("binlogs kept {retention_h:.0} h")
            },
        );
    } else {
        r.fail(
            "binlog-retention",
            format!(
                "binlogs are kept only {retention_h:.0} h; this task needs at least {need_h:.0} h"
            ),
            format!(
                "SET GLOBAL binlog_expire_logs_seconds = {}",
                (need_h * 3600.0) as u64
            ),
        );
    }
    // Only a source that is itself a replica logs other servers' changes through it.
    let replica = src
        .query_iter("SHOW SLAVE STATUS")
        .map(|mut r| r.iter().is_some_and(|mut set| set.next().is_some()))
        .unwrap_or(false);
    match (var(src, "log_slave_updates")?.as_deref(), replica) {
        (Some("ON"), _) => r.pass("log-slave-updates", "log_slave_updates = ON"),
        (_, false) => r.pass("log-slave-updates", "the source is not a replica"),
        _ => r.warn("log-slave-updates", "the source is a replica and log_slave_updates is OFF: changes replicated into it do not reach its binlog", "turn log_slave_updates ON (needed in a dual-primary setup, or to migrate what this replica receives)"),
    }
    Ok(())
}
