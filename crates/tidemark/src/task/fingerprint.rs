//! What each phase was planned from: when a phase starts, the task file's keys that
//! decide what lands where (the selection, renames, `name_case`, the phases, the
//! destination's message layout) are recorded, one hash per key. A later run compares
//! them with the task file as it is now and refuses to continue a phase planned from
//! different keys: the schema it created, the chunks it copied or the binlog position it
//! holds would not match the edited task, and continuing would mix two plans.
//!
//! Keys that only say how fast, how hard or how to connect may change between runs (see
//! [`SAFE`]); they are not recorded. Only hashes are stored, never values.

use crate::state::Store;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Keys (and sections, ending in `.`) that may change between runs of a task:
/// throttles, threads, retry windows, verification, connection details; and most of
/// `[destination]`, see [`DESTINATION_LAYOUT`]. Matched against dotted key paths.
pub const SAFE: &[&str] = &[
    "name",
    "source.",
    "full.",
    "incremental.",
    "verification.",
    "state.",
    "advanced.retry_connection_minutes",
    "advanced.retry_other_minutes",
];

/// `[destination]` keys that decide where rows land and in what form; its other keys
/// say how to connect (URL, TLS, timeouts, name servers, credentials, producer group,
/// `max_tps`) and may change.
const DESTINATION_LAYOUT: &[&str] = &[
    "type",
    "topic",
    "ddl_topic",
    "format",
    "full_before_image",
    "ordering",
    "filter_large_messages",
    "topics",
    "ddl_placement",
    "enum_set",
    "timezone",
    "decimal_handling_mode",
    "time_precision_mode",
    "schemas_enable",
    "keys",
    "tags",
];

fn is_safe(key: &str) -> bool {
    if let Some(rest) = key.strip_prefix("destination.") {
        let first = rest.split(['.', '[']).next().unwrap_or(rest);
        return !DESTINATION_LAYOUT.contains(&first);
    }
    SAFE.iter().any(|p| match p.strip_suffix('.') {
        // A section: every key in it.
        Some(section) => key == section || key.starts_with(p),
        // One key (or the keys nested under it), not keys that merely start alike.
        None => {
            key == *p
                || key
                    .strip_prefix(p)
                    .is_some_and(|r| r.starts_with(['.', '[']))
        }
    })
}

/// The task file's plan-deciding keys as dotted paths, each with a hash of its value.
pub fn of_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read task file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid task file {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut out);
    out.retain(|k, _| !is_safe(k));
    Ok(out)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => {
            let mut h = tidemark_core::hash::Fnv1a::default();
            h.write(leaf.to_string().as_bytes());
            out.insert(prefix.to_string(), format!("{:016x}", h.finish()));
        }
    }
}

fn store_key(phase: &str) -> String {
    format!("planned.{phase}")
}

/// Records what `phase` is planned from, unless an earlier run already did.
pub fn record(store: &Store, phase: &str, current: &BTreeMap<String, String>) -> Result<()> {
    if store.get(&store_key(phase))?.is_none() {
        store.set(&store_key(phase), &serde_json::to_string(current)?)?;
    }
    Ok(())
}

/// Forgets what `phase` was planned from (it will be planned again).
pub fn forget(store: &Store, phase: &str) -> Result<()> {
    store.unset(&store_key(phase))
}

/// The keys that differ between two fingerprints (added, removed or changed).
fn changed(was: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = was
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(now.keys().filter(|k| !was.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Refuses to continue when a phase an earlier run started was planned from other keys.
pub fn check(store: &Store, task_name: &str, current: &BTreeMap<String, String>) -> Result<()> {
    let mut phases = Vec::new();
    let mut keys = Vec::new();
    for phase in ["schema", "full", "incremental"] {
        let Some(text) = store.get(&store_key(phase))? else {
            continue;
        };
        let was: BTreeMap<String, String> = serde_json::from_str(&text)
            .with_context(|| format!("the state store holds an unreadable {}", store_key(phase)))?;
        let diff = changed(&was, current);
        if !diff.is_empty() {
            phases.push(phase);
            keys.extend(diff);
        }
    }
    if phases.is_empty() {
        return Ok(());
    }
    keys.sort();
    keys.dedup();
    bail!(
        "the task file changed since task {task_name}'s {} phase started: {} changed. \
         Continuing would mix the old plan with the new one, so nothing was written. \
         Undo the change to continue where the task stopped, or run `tidemark reset TASKFILE` \
         to start this task over with the new file (drop what it created on the destination first). \
         Keys that may change between runs: threads, throttles, batch sizes, retry windows, \
         [verification], and connection details ([source], [destination] url, TLS, credentials); see docs/operating.md",
        phases.join(" and "),
        keys.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(text: &str) -> BTreeMap<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        std::fs::write(&p, text).unwrap();
        of_file(&p).unwrap()
    }

    #[test]
    fn only_plan_keys_count_and_changes_are_named() {
        let a = fp("[source]\nurl = \"x\"\n[migration]\ntypes = [\"full\"]\nname_case = \"keep\"\n[full]\nthreads = 2\n[[objects]]\ndatabase = \"d\"\n");
        let b = fp("[source]\nurl = \"y\"\n[migration]\ntypes = [\"full\"]\nname_case = \"lower\"\n[full]\nthreads = 8\n[[objects]]\ndatabase = \"d\"\nrename = \"e\"\n");
        assert!(!a.contains_key("source.url") && !a.contains_key("full.threads"));
        assert_eq!(
            changed(&a, &b),
            vec![
                "migration.name_case".to_string(),
                "objects[0].rename".into()
            ]
        );
        assert!(is_safe("destination.url") && !is_safe("destination.topic"));
        assert!(!is_safe("destination.topics[0].topic") && !is_safe("advanced.online_ddl"));
        assert!(is_safe("advanced.retry_other_minutes") && !is_safe("advanced.retry_other"));
    }
}
