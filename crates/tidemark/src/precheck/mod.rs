//! Prechecks: everything that can be known to fail before anything is written.
//!
//! Each item passes, warns or fails, and says what to do. `tidemark run` runs them first
//! and stops on any failure. The checks also produce the [`Plan`] the run executes, so
//! what was checked is exactly what runs.

pub(crate) mod grants;

use crate::config::{Phase, SourceKind, Task};
use crate::connect::{connect_raw, ServerInfo, Side};
use crate::source::catalog;
use crate::state::Store;
use crate::transform::mapping::{self, Plan};
use grants::Grants;
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;
use std::collections::BTreeMap;

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
    pub(crate) fn pass(&mut self, id: &'static str, detail: impl Into<String>) {
        self.items.push(Item {
            id,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        });
    }
    pub(crate) fn warn(
        &mut self,
        id: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.items.push(Item {
            id,
            status: Status::Warning,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    pub(crate) fn fail(
        &mut self,
        id: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
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
            // At least one space after the name, so a long one never runs into its detail.
            out.push_str(&format!("{mark:<5}{:<23} {}\n", i.id, i.detail));
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
    let mut destination = task.destination.precheck(task);
    let dst_connected = destination.connect(&mut r);
    let failed = |r: Report| Checked {
        report: r,
        plan: None,
        source: None,
        destination: None,
    };
    let Some(src) = src.as_mut() else {
        return failed(r);
    };
    if !dst_connected {
        return failed(r);
    }
    match check_all(task, store, src, &mut *destination, &mut r) {
        Ok((plan, s)) => Checked {
            report: r,
            plan,
            source: Some(s),
            destination: destination.server(),
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

/// Runs the checks on a connected source and destination.
fn check_all(
    task: &Task,
    store: Option<&Store>,
    src: &mut Conn,
    dst: &mut dyn crate::sink::Precheck,
    r: &mut Report,
) -> anyhow::Result<(Option<Plan>, ServerInfo)> {
    let s = ServerInfo::read(src)?;
    let facts = dst.before_plan(&s, r)?;
    let dest_lower = facts.lower_case_names;

    // Objects.
    let mut dbs = BTreeMap::new();
    let adb = task.source_kind == SourceKind::AdbMysql;
    for o in &task.objects {
        if let Some(mut info) = catalog::read_database(src, &o.database)? {
            if adb {
                crate::source::adb::refine(src, &mut info)?;
            }
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
    destination_collisions(&plan, &*task.destination, r);
    unsupported(&plan, r);
    invisible(&plan, &s, r);
    dst.check(store, &plan, r)?;
    if adb {
        crate::source::adb::precheck::check(task, &plan, src, store, r)?;
    } else if task.has(Phase::Incremental) {
        binlog(task, src, r)?;
        server_id(task, src, r)?;
        checkpoint_binlog(store, src, r)?;
    }
    Ok((Some(plan), s))
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
            let hb = &task.advanced.heartbeat_database;
            for p in ["CREATE", "INSERT", "DELETE"] {
                if !g.has(p, Some(hb), None) {
                    missing.push(format!(
                        "{p} on {}.* (`advanced.heartbeat`)",
                        tidemark_core::sql::quote_ident(hb)
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
/// second's schema step or copy would fail half-way, unless the destination kind merges
/// them on purpose (`Kind::merges_into`).
fn destination_collisions(plan: &Plan, kind: &dyn crate::sink::Kind, r: &mut Report) {
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in plan.tables.iter().filter(|t| !kind.merges_into(&t.target)) {
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
