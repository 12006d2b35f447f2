//! Precheck items of an AnalyticDB source: what must hold before its tables are read
//! (from ADB's "Migrate data between AnalyticDB for MySQL clusters" prerequisites and
//! the binary-log subscription pages: engine ≥ 3.2.1.0 for incremental, `BINLOG=true` on
//! each table, XUANWU_V2 tables only from 3.2.5.0, no `__adb_auto_id__` keys).

use super::binlog::table_files;
use crate::config::{Phase, Task};
use crate::precheck::Report;
use crate::state::Store;
use crate::transform::mapping::Plan;
use mysql::prelude::Queryable;
use std::time::Duration;

/// The engine version per-table binary logs need (ADB's subscription pages).
const BINLOG_VERSION: [u32; 4] = [3, 2, 1, 0];
/// XUANWU_V2 tables log only from this version on (the pages disagree between 3.2.5.0
/// and 3.2.6.0; the lower is taken and the failure names the table).
const XUANWU_V2_VERSION: [u32; 4] = [3, 2, 5, 0];
/// The reference's advice: a task stopped longer than a day may find its logs expired.
const RETENTION: Duration = Duration::from_secs(86_400);

fn version(text: &str) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let digits = text
        .trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit());
    for (i, part) in digits.split('.').take(4).enumerate() {
        let n: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        out[i] = n.parse().ok()?;
    }
    Some(out)
}

/// The checks, on the plan's tables with their ADB definitions (`TableInfo::adb`).
pub fn check(
    task: &Task,
    plan: &Plan,
    src: &mut mysql::Conn,
    store: Option<&Store>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let incremental = task.has(Phase::Incremental);
    let shown: Option<String> = src.query_first("SELECT adb_version()").unwrap_or(None);
    let engine = shown.as_deref().and_then(version);
    match (engine, incremental) {
        (Some(v), true) if v < BINLOG_VERSION => r.fail(
            "adb-version",
            format!(
                "the source cluster runs engine {}; reading its binary logs needs 3.2.1.0 or later",
                shown.as_deref().unwrap_or("?")
            ),
            "update the cluster's minor version (console: Cluster Information → Configuration Information), or migrate without \"incremental\"",
        ),
        (None, true) => r.fail(
            "adb-version",
            format!("the source did not tell its engine version (SELECT adb_version() answered {shown:?}); is it an AnalyticDB for MySQL 3.0 cluster?"),
            "check `source.url` and `source.type`; incremental migration needs engine 3.2.1.0 or later",
        ),
        _ => r.pass(
            "adb-version",
            format!("source engine {}", shown.as_deref().unwrap_or("unknown")),
        ),
    }
    let (mut auto, mut off, mut v2, mut short, mut types) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in &plan.tables {
        let name = t.def().name.to_string();
        let Some(def) = &t.source.adb else { continue };
        if def.auto_keyed() {
            auto.push(name.clone());
        }
        for c in &def.columns {
            if matches!(c.base().as_str(), "ARRAY" | "MAP") {
                types.push(format!("{name}.{} ({})", c.name, c.ty));
            }
        }
        if !incremental {
            continue;
        }
        if !def.binlog {
            off.push(name.clone());
            continue;
        }
        let is_v2 = def
            .engine
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("XUANWU_V2"));
        if is_v2 && engine.is_some_and(|v| v < XUANWU_V2_VERSION) {
            v2.push(name.clone());
        }
        match def.retention() {
            Ok(d) if d < RETENTION => short.push(format!(
                "{name} ({})",
                def.binlog_ttl.as_deref().unwrap_or("6h, the default")
            )),
            Ok(_) => {}
            Err(e) => short.push(format!("{name} ({e})")),
        }
    }
    if auto.is_empty() {
        r.pass(
            "adb-source-keys",
            "every selected table has a primary key of its own",
        );
    } else {
        r.fail(
            "adb-source-keys",
            format!(
                "{} table(s) are keyed on ADB's generated `__adb_auto_id__` and cannot be migrated (their rows have no key of their own to match on the destination): {}",
                auto.len(),
                auto.join(", ")
            ),
            "recreate them with a primary key of their own columns, or leave them out of [[objects]]",
        );
    }
    if !types.is_empty() {
        r.fail(
            "adb-source-types",
            format!(
                "ARRAY and MAP columns are not migrated yet: {}",
                types.join(", ")
            ),
            "leave these columns out (`columns` in [[objects]]) or the tables out of the selection",
        );
    }
    if !incremental {
        return Ok(());
    }
    if off.is_empty() {
        r.pass(
            "adb-binlog",
            "every selected table logs its changes (BINLOG=true)",
        );
    } else {
        let fixes: Vec<String> = off
            .iter()
            .take(3)
            .map(|t| {
                let (db, table) = t.split_once('.').unwrap_or(("", t));
                format!(
                    "ALTER TABLE {} BINLOG=true",
                    tidemark_core::sql::qualified(db, table)
                )
            })
            .collect();
        r.fail(
            "adb-binlog",
            format!(
                "{} selected table(s) have no binary log, so their changes cannot be read: {}",
                off.len(),
                off.join(", ")
            ),
            format!(
                "turn it on per table ({}{}) — the cluster's CDC must be enabled first (ask Alibaba Cloud support) — or migrate without \"incremental\"",
                fixes.join("; "),
                if off.len() > 3 { "; …" } else { "" }
            ),
        );
    }
    if !v2.is_empty() {
        r.fail(
            "adb-binlog",
            format!(
                "XUANWU_V2 tables log changes only from engine 3.2.5.0 on (this cluster runs {}): {}",
                shown.as_deref().unwrap_or("?"),
                v2.join(", ")
            ),
            "update the cluster's minor version, or migrate these tables without \"incremental\"",
        );
    }
    if short.is_empty() {
        r.pass(
            "adb-binlog-retention",
            "every selected table keeps its binary log at least a day",
        );
    } else {
        r.warn(
            "adb-binlog-retention",
            format!(
                "binary logs kept less than a day: {}; a task stopped longer than that cannot resume",
                short.join(", ")
            ),
            "ALTER TABLE … binlog_ttl='1d' (or longer; up to 365d on recent minor versions)",
        );
    }
    checkpoint_files(store, src, r)
}

/// On a restart: every table's log still has the file its checkpoint names.
fn checkpoint_files(
    store: Option<&Store>,
    src: &mut mysql::Conn,
    r: &mut Report,
) -> anyhow::Result<()> {
    use crate::task::incremental::{load_position, CHECKPOINT, START};
    let Some(store) = store else { return Ok(()) };
    let at = match load_position(store, CHECKPOINT)? {
        Some(p) => Some(p),
        None => load_position(store, START)?,
    };
    let Some(at) = at else { return Ok(()) };
    let mut gone = Vec::new();
    for (table, p) in &at.tables {
        let (db, name) = table.split_once('.').unwrap_or(("", table));
        let files = table_files(src, &tidemark_core::TableName::new(db, name)).unwrap_or_default();
        if !files.is_empty() && !files.contains(&p.file) {
            gone.push(format!("{table} ({})", p.file));
        }
    }
    if gone.is_empty() {
        if !at.tables.is_empty() {
            r.pass(
                "binlog-position",
                format!(
                    "the source still has the binlog files of {} table(s)",
                    at.tables.len()
                ),
            );
        }
    } else {
        r.fail(
            "binlog-position",
            format!(
                "binlog files where this task continues have expired: {}; the changes since then cannot be read",
                gone.join(", ")
            ),
            "rerun the task with full migration (delete its state directory), and raise `binlog_ttl` on these tables",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare_by_number() {
        assert_eq!(super::version("3.2.1.0"), Some([3, 2, 1, 0]));
        assert!(super::version("3.1.10.2").unwrap() < super::BINLOG_VERSION);
        assert!(super::version("3.2.10.0").unwrap() > super::XUANWU_V2_VERSION);
        assert_eq!(super::version("V3.2.1"), Some([3, 2, 1, 0]));
    }
}
