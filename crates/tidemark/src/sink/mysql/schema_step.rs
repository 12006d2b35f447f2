//! The MySQL destination's schema step: the schema phase (databases, tables, routines,
//! views) and the post-load step (deferred secondary indexes, then triggers, so no
//! trigger fires while rows load).
//!
//! Every object created is recorded in the state store, so a resumed task neither
//! recreates it nor mistakes it for a conflicting table.

use crate::config::Task;
use crate::connect::{connect_raw, explain, Side};
use crate::endpoint::Endpoint;
use crate::sink::mysql::schema::{
    execute_in, routine_ddl, show_create, table_ddl, trigger_ddl, view_ddl,
};
use crate::state::Store;
use crate::transform::mapping::Plan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tidemark_core::sql::quote_ident;
use tidemark_core::TableName;

/// Index builds and DDL may run long on a healthy server: their own read bound.
fn ddl_conn(destination: &Endpoint) -> Result<Conn> {
    let mut c = connect_raw(&destination.for_long_statements(), Side::Destination)?;
    // UTC, as `show_create` reads definitions: TIMESTAMP defaults keep their instant.
    c.query_drop("SET NAMES utf8mb4, foreign_key_checks = 0, time_zone = '+00:00'")
        .map_err(|e| explain(e, destination, Side::Destination))?;
    Ok(c)
}

/// Runs `work` on up to `threads` threads (no more than `items`), each taking the next
/// item from the shared counter until none are left or another has failed (the flag);
/// their results, or the first real error (a stop seen because another failed is not
/// the cause).
fn on_workers<T: Send>(
    threads: usize,
    items: usize,
    work: impl Fn(&AtomicUsize, &AtomicBool) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let workers = threads.min(items).max(1);
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let mut out = Vec::new();
    let mut first_error = None;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let r = work(&next, &failed);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => {
                    if first_error.is_none()
                        || first_error.as_ref().is_some_and(crate::task::is_stop)
                    {
                        first_error = Some(e);
                    }
                }
                Err(_) => {
                    first_error.get_or_insert_with(|| {
                        anyhow::anyhow!("internal: a schema thread panicked")
                    });
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Creates databases, tables, routines and views. Returns notes for the operator
/// (objects not migrated and why).
pub fn migrate(
    destination: &Endpoint,
    task: &Task,
    plan: &Plan,
    store: &Store,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut src = connect_raw(&task.source, Side::Source)?;
    let mut dst = ddl_conn(destination)?;
    for db in &plan.databases {
        // Charset and collation are names the server printed; they cannot be quoted.
        let bare =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !bare(&db.source.charset) || !bare(&db.source.collation) {
            anyhow::bail!(
                "unexpected charset or collation name on database {}",
                db.source.name
            );
        }
        let sql = format!(
            "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {} COLLATE {}",
            quote_ident(&db.target),
            db.source.charset,
            db.source.collation
        );
        dst.query_drop(&sql)
            .with_context(|| format!("creating database {}", quote_ident(&db.target)))?;
    }
    let mut pending = Vec::new();
    for (i, t) in plan.tables.iter().enumerate() {
        if !store.was_created("table", &t.target.to_string())? {
            pending.push(i);
        }
    }
    // Each CREATE TABLE is a round trip the destination spends mostly creating files:
    // with thousands of tables, several connections at once take a fraction of the time.
    // Order does not matter: `ddl_conn` turns foreign key checks off.
    let mut table_notes: Vec<(usize, Vec<String>)> =
        on_workers(task.full.threads, pending.len(), |next, failed| {
            create_tables(destination, task, plan, store, &pending, next, failed)
        })?
        .into_iter()
        .flatten()
        .collect();
    table_notes.sort_by_key(|(i, _)| *i);
    notes.extend(table_notes.into_iter().flat_map(|(_, n)| n));
    for db in plan.databases.iter().filter(|d| d.whole) {
        for (name, kind) in &db.source.routines {
            crate::task::check_stop()?;
            let id = format!("{}.{name}", db.target);
            if store.was_created(kind, &id)? {
                continue;
            }
            let (text, mode) = show_create(&mut src, kind, &db.source.name, name, 2)?;
            let created = execute_in(
                &mut dst,
                &db.target,
                mode.as_deref(),
                &routine_ddl(&text, plan),
            )
            .and_then(|_| {
                dst.query_drop(format!(
                    "ALTER {kind} {} SQL SECURITY INVOKER",
                    quote_ident(name)
                ))
                .map_err(Into::into)
            });
            match created {
                Ok(()) => store.mark_created(kind, &id)?,
                Err(e) => notes.push(format!("{kind} {id} not migrated: {e:#}")),
            }
        }
        // Views may depend on views: create what can be created until nothing changes.
        let mut pending: Vec<&String> = Vec::new();
        for v in &db.source.views {
            if !store.was_created("view", &format!("{}.{v}", db.target))? {
                pending.push(v);
            }
        }
        let mut last_errors = Vec::new();
        while !pending.is_empty() {
            let mut progressed = false;
            last_errors.clear();
            let mut still = Vec::new();
            for v in pending {
                let (text, _) = show_create(&mut src, "VIEW", &db.source.name, v, 1)?;
                let target = TableName::new(
                    &db.target,
                    crate::transform::mapping::apply_case(
                        task.migration.name_case,
                        plan.dest_lower,
                        v,
                    ),
                );
                let sql = view_ddl(&text, &target, plan)?;
                match execute_in(&mut dst, &db.target, None, &sql) {
                    Ok(()) => {
                        store.mark_created("view", &format!("{}.{v}", db.target))?;
                        progressed = true;
                    }
                    Err(e) => {
                        last_errors.push(format!("view {}.{v} not migrated: {e:#}", db.target));
                        still.push(v);
                    }
                }
            }
            pending = still;
            if !progressed {
                break;
            }
        }
        notes.extend(last_errors);
    }
    Ok(notes)
}

/// One schema worker: creates the tables of `pending` it takes (through `next`) until
/// none is left or another worker failed; returns the notes per table index.
fn create_tables(
    destination: &Endpoint,
    task: &Task,
    plan: &Plan,
    store: &Store,
    pending: &[usize],
    next: &AtomicUsize,
    failed: &AtomicBool,
) -> Result<Vec<(usize, Vec<String>)>> {
    let mut notes = Vec::new();
    let mut src = connect_raw(&task.source, Side::Source)?;
    let mut dst = ddl_conn(destination)?;
    loop {
        // Between objects: what was created is recorded, the next run goes on from there.
        crate::task::check_stop()?;
        if failed.load(Ordering::Relaxed) {
            return Ok(notes);
        }
        let Some(&i) = pending.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return Ok(notes);
        };
        let t = &plan.tables[i];
        let target = t.target.to_string();
        let exists: Option<String> = dst.exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.target.database, &t.target.table),
        )?;
        if exists.is_some() {
            notes.push((i, vec![format!("{target} already exists on the destination: kept as it is (on_conflicting_tables = \"ignore\")")]));
            continue;
        }
        let n = &t.def().name;
        let (text, _) = show_create(&mut src, "TABLE", &n.database, &n.table, 1)?;
        let ddl = table_ddl(&text, t, plan, task.full.defers_indexes_of(t.source.rows))?;
        dst.query_drop(&ddl.create).with_context(|| {
            format!(
                "the destination rejected the table definition of {target}:\n{}",
                ddl.create
            )
        })?;
        store.set(
            &format!("deferred-indexes:{target}"),
            &serde_json::to_string(&ddl.deferred_indexes)?,
        )?;
        store.mark_created("table", &target)?;
        if !ddl.notes.is_empty() {
            notes.push((i, ddl.notes));
        }
    }
}

/// One post-load worker: the deferred indexes of the next tables, each table's in one
/// ALTER TABLE, recorded as done in the state store.
fn build_deferred_indexes(
    destination: &Endpoint,
    plan: &Plan,
    store: &Store,
    next: &AtomicUsize,
    failed: &AtomicBool,
) -> Result<()> {
    let mut dst: Option<Conn> = None;
    loop {
        crate::task::check_stop()?;
        if failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(t) = plan.tables.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return Ok(());
        };
        let target = t.target.to_string();
        let key = format!("deferred-indexes:{target}");
        let Some(json) = store.get(&key)? else {
            continue;
        };
        let clauses: Vec<String> = serde_json::from_str(&json)?;
        if clauses.is_empty() {
            continue;
        }
        // Opened on the first table with work: most tables have none.
        let dst = match &mut dst {
            Some(c) => c,
            None => dst.insert(ddl_conn(destination)?),
        };
        let sql = format!("ALTER TABLE {} {}", t.target.quoted(), clauses.join(", "));
        tracing::info!(
            "{target}: creating {} secondary index(es) after the load",
            clauses.len()
        );
        match dst.query_drop(&sql) {
            Ok(()) => {}
            // ER_DUP_KEYNAME: a run killed after this ALTER but before the state store
            // noted it (the ALTER is atomic: all or none of them exist). Each clause on
            // its own, those that exist skipped, so a resumed run completes.
            Err(mysql::Error::MySqlError(e)) if e.code == 1061 => {
                tracing::info!("{target}: deferred index(es) already created by an earlier run");
                for clause in &clauses {
                    let one = format!("ALTER TABLE {} {clause}", t.target.quoted());
                    match dst.query_drop(&one) {
                        Err(mysql::Error::MySqlError(e)) if e.code == 1061 => {}
                        done => done.with_context(|| {
                            format!("creating the deferred indexes of {target}")
                        })?,
                    }
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("creating the deferred indexes of {target}"))
            }
        }
        store.set(&key, "[]")?;
    }
}

/// After the load: deferred indexes (tables in parallel), then triggers.
pub fn post_load(
    destination: &Endpoint,
    task: &Task,
    plan: &Plan,
    store: &Store,
) -> Result<Vec<String>> {
    // Index builds of different tables on connections of their own: each is one long
    // statement, mostly sorting, and the destination has cores to spare meanwhile.
    on_workers(task.full.threads, plan.tables.len(), |next, failed| {
        build_deferred_indexes(destination, plan, store, next, failed)
    })?;
    let mut notes = Vec::new();
    let mut src = connect_raw(&task.source, Side::Source)?;
    let mut dst = ddl_conn(destination)?;
    for db in plan.databases.iter().filter(|d| d.whole) {
        for (name, table) in &db.source.triggers {
            let id = format!("{}.{name}", db.target);
            if store.was_created("trigger", &id)? {
                continue;
            }
            let (text, mode) = show_create(&mut src, "TRIGGER", &db.source.name, name, 2)?;
            let mut sql = trigger_ddl(&text, &TableName::new(&db.source.name, table), plan);
            if task.has(crate::config::Phase::Incremental) {
                sql = crate::sink::mysql::schema::guard_trigger(&sql).unwrap_or(sql);
            }
            match execute_in(&mut dst, &db.target, mode.as_deref(), &sql) {
                Ok(()) => store.mark_created("trigger", &id)?,
                Err(e) => notes.push(format!("trigger {id} not migrated: {e:#}")),
            }
        }
    }
    Ok(notes)
}
