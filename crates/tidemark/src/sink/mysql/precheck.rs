//! The MySQL destination's precheck items: connection, versions, privileges, names,
//! tables already there, disk space; and what the destination is (a Galera node, a
//! Group Replication member, Aurora, PolarDB, TiDB: `cluster.rs`), whether it takes
//! writes, and the rules its tables must follow there.

use super::cluster::Topology;
use super::Mysql;
use crate::config::{ConflictMode, Phase, Task};
use crate::connect::{connect_raw, ServerInfo, Side};
use crate::precheck::{show_grants, Report};
use crate::sink::PlanFacts;
use crate::state::Store;
use crate::transform::mapping::Plan;
use anyhow::Context;
use mysql::prelude::Queryable;
use mysql::Conn;
use tidemark_core::sql::quote_ident;

/// The destination side of the precheck, on one connection.
pub(super) struct Check<'a> {
    pub(super) kind: &'a Mysql,
    pub(super) task: &'a Task,
    pub(super) conn: Option<Conn>,
    pub(super) info: Option<ServerInfo>,
}

impl crate::sink::Precheck for Check<'_> {
    fn connect(&mut self, r: &mut Report) -> bool {
        let destination = &self.kind.endpoint;
        match connect_raw(destination, Side::Destination) {
            Ok(c) => {
                r.pass(
                    "destination-connection",
                    format!("connected to {destination}"),
                );
                self.conn = Some(c);
                true
            }
            Err(e) => {
                r.fail(
                    "destination-connection",
                    format!("{e:#}"),
                    "fix `destination.url` or the server, then rerun the precheck",
                );
                false
            }
        }
    }

    fn before_plan(&mut self, source: &ServerInfo, r: &mut Report) -> anyhow::Result<PlanFacts> {
        let Some(dst) = self.conn.as_mut() else {
            anyhow::bail!("internal: the destination precheck is not connected");
        };
        let info = ServerInfo::read(dst)?;
        versions(source, &info, r);
        let facts = PlanFacts {
            lower_case_names: info.lower_case_table_names != 0,
        };
        self.info = Some(info);
        Ok(facts)
    }

    fn check(&mut self, store: Option<&Store>, plan: &Plan, r: &mut Report) -> anyhow::Result<()> {
        let Some(dst) = self.conn.as_mut() else {
            anyhow::bail!("internal: the destination precheck is not connected");
        };
        let task = self.task;
        let destination = &self.kind.endpoint;
        topology(task, plan, dst, r)?;
        destination_privileges(task, destination, plan, dst, r)?;
        target_names(plan, r);
        conflicts(task, store, plan, dst, r)?;
        space(destination, plan, dst, r);
        local_infile(task, dst, r);
        Ok(())
    }

    fn server(&self) -> Option<ServerInfo> {
        self.info.clone()
    }
}

/// What the destination is, whether it takes writes, and whether the selected tables
/// may live there (a Galera cluster replicates InnoDB tables with a primary key only).
fn topology(task: &Task, plan: &Plan, dst: &mut Conn, r: &mut Report) -> anyhow::Result<()> {
    let t = match Topology::detect(dst) {
        Ok(t) => t,
        Err(e) => {
            r.warn(
                "destination-topology",
                format!("what the destination is could not be read: {e:#}"),
                "nothing to do for a single server; for a cluster, grant the user access to its status variables",
            );
            return Ok(());
        }
    };
    let report = t.report();
    let summary = report
        .iter()
        .filter(|l| !l.starts_with("not writable:"))
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if t.limits.assumed.is_empty() {
        r.pass("destination-topology", summary);
    } else {
        r.warn(
            "destination-topology",
            summary,
            "grant the CONFIG privilege so the transaction limits can be read, or check that the assumed ones hold",
        );
    }
    if let Some(why) = t.not_writable() {
        // MariaDB lets SUPER / READ_ONLY ADMIN write through `read_only` on a server
        // of its own; anything stronger, or any cluster node, refuses the task.
        let only_read_only = t.read_only.read_only
            && !t.read_only.super_read_only
            && !t.read_only.innodb_read_only
            && !t.read_only.transaction_read_only;
        if t.kind == super::cluster::Kind::Single && only_read_only {
            r.warn(
                "destination-writable",
                why,
                "turn `read_only` off on the destination unless the migration user may write through it",
            );
        } else {
            r.fail(
                "destination-writable",
                why,
                "point `destination.url` at the writer (the cluster endpoint or primary), or list the other nodes in `destination.failover`",
            );
        }
    }
    let rules = t.rules();
    if rules.primary_key_required || rules.innodb_only {
        let engines = source_engines(task, plan)?;
        let mut problems = Vec::new();
        for p in &plan.tables {
            let name = &p.def().name;
            let engine = engines
                .get(&(name.database.clone(), name.table.clone()))
                .map(String::as_str)
                .unwrap_or("InnoDB");
            let has_pk = p.def().key_name.as_deref() == Some("PRIMARY");
            problems.extend(rules.check_table(&name.database, &name.table, engine, has_pk));
        }
        if problems.is_empty() {
            r.pass(
                "destination-table-rules",
                "every selected table has a primary key and uses InnoDB, as the cluster requires",
            );
        } else {
            r.fail(
                "destination-table-rules",
                problems.join("; "),
                "fix each table on the source as said, or leave it out of [[objects]]",
            );
        }
    }
    if rules.ddl_blocks_cluster && (task.has(Phase::Schema) || task.has(Phase::Incremental)) {
        r.warn(
            "destination-ddl",
            "DDL on this Galera cluster runs as Total Order Isolation (wsrep_OSU_method = TOI):              each CREATE or ALTER the task applies blocks writes on every node until it finishes",
            "run large schema changes at a quiet time, or with wsrep_OSU_method = RSU node by node",
        );
    }
    Ok(())
}

/// The source engine of each planned table (what the schema step creates it with).
fn source_engines(
    task: &Task,
    plan: &Plan,
) -> anyhow::Result<std::collections::HashMap<(String, String), String>> {
    let mut src = connect_raw(&task.source, Side::Source)?;
    let mut dbs: Vec<&str> = plan
        .tables
        .iter()
        .map(|t| t.def().name.database.as_str())
        .collect();
    dbs.sort_unstable();
    dbs.dedup();
    let mut engines = std::collections::HashMap::new();
    for db in dbs {
        let rows: Vec<(String, Option<String>)> = src
            .exec(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                (db,),
            )
            .with_context(|| format!("reading the engines of the source's tables in {db}"))?;
        for (table, engine) in rows {
            engines.insert((db.to_string(), table), engine.unwrap_or_default());
        }
    }
    Ok(engines)
}

/// `load_method = "load-data"` needs the destination to accept LOAD DATA LOCAL.
fn local_infile(task: &Task, dst: &mut Conn, r: &mut Report) {
    if task.full.load_method != crate::config::LoadMethod::LoadData
        || !task.migration.types.contains(&crate::config::Phase::Full)
    {
        return;
    }
    match dst.query_first::<u8, _>("SELECT @@local_infile") {
        Ok(Some(1)) => r.pass("local-infile", "the destination accepts LOAD DATA LOCAL INFILE"),
        Ok(_) => r.fail(
            "local-infile",
            "`full.load_method = \"load-data\"` but the destination has local_infile = OFF",
            "run SET GLOBAL local_infile = ON on the destination, or remove `load_method` (the default writes prepared INSERTs)",
        ),
        Err(e) => r.warn(
            "local-infile",
            format!("could not read the destination's local_infile: {e}"),
            "make sure it is ON, or remove `load_method`",
        ),
    }
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

fn destination_privileges(
    task: &Task,
    destination: &crate::endpoint::Endpoint,
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
                destination.user
            ),
        );
    } else {
        r.fail(
            "destination-privileges",
            format!("{} lacks {}", destination.user, missing.join(", ")),
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

fn space(destination: &crate::endpoint::Endpoint, plan: &Plan, dst: &mut Conn, r: &mut Report) {
    let need: u64 = plan.tables.iter().map(|t| t.source.bytes).sum();
    let local = ["127.0.0.1", "localhost", "::1"].contains(&destination.host.as_str());
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
