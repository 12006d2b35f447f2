//! The Lindorm wide table destination (`type = "lindorm"`): LindormTable over its
//! MySQL-compatible port, written with Lindorm SQL (UPSERT, DELETE by key).
//!
//! * [`config`]: its `[destination]` keys and the engine's limits.
//! * [`precheck`]: connection, tables (existing ones compared with the source), keys,
//!   types; values that change meaning as warnings.
//! * [`types`]: the MySQL → Lindorm type mapping, literals, definitions read back.
//! * [`write`]: UPSERT requests under the limits, DELETE by key.
//! * `full`: the full copy's chunk writer; `applier`: binlog batches, split by key hash
//!   over connections, and the DDL the engine takes.
//! * `verify`: rows read back by key range for `tidemark verify`, and its repairs.
//!
//! The engine has no multi-row transactions: a chunk or a batch is "committed" once
//! every request of it was acknowledged, and replay is exact because every write is a
//! full-row upsert or a delete by key.

mod applier;
pub mod config;
mod full;
mod precheck;
pub mod types;
mod verify;
pub mod write;

use crate::config::Task;
use crate::connect::{connect_raw, Side};
use crate::endpoint::Endpoint;
use crate::sink::{Capabilities, ChangeApplier, DdlKinds, FullCopy, Kind, SchemaStep, Session};
use crate::state::Store;
use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{bail, Context, Result};
use config::Config;
use mysql::prelude::Queryable;
use std::sync::atomic::AtomicU64;

/// The Lindorm destination kind.
pub struct Lindorm {
    pub endpoint: Endpoint,
    pub config: Config,
}

impl Kind for Lindorm {
    fn name(&self) -> &'static str {
        "lindorm"
    }

    fn describe(&self) -> String {
        format!("Lindorm {}", self.endpoint)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Its tables are not MySQL tables to read definitions back from: after DDL
            // the tracker reads the source's.
            tables: false,
            exact_keyless_handoff: false,
            ddl: DdlKinds::Executed,
            applied_verb: "applied",
            queued_batches: 2,
        }
    }

    fn verification_server(&self) -> Result<&Endpoint> {
        bail!("a Lindorm destination has no server-side checksums to compare (LindormTable computes none): `tidemark verify` reads its rows back instead")
    }

    /// Rows read back and compared in Tidemark (`verify.rs`).
    fn verification(&self) -> Result<crate::sink::Verification<'_>> {
        Ok(crate::sink::Verification::Rows(self))
    }

    fn precheck<'a>(&'a self, task: &'a Task) -> Box<dyn crate::sink::Precheck + 'a> {
        Box::new(precheck::Check {
            kind: self,
            task,
            conn: None,
        })
    }

    fn schema(&self) -> Option<&dyn SchemaStep> {
        self.config.create_tables.then_some(self as &dyn SchemaStep)
    }

    fn open<'a>(&'a self, task: &'a Task, store: &'a Store) -> Result<Box<dyn Session + 'a>> {
        let counters: Counters = store
            .get(COUNTERS)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Ok(Box::new(Opened {
            kind: self,
            task,
            counters,
        }))
    }

    fn forget_table(&self, _target: &str) -> Result<&'static str> {
        Ok("its rows will be upserted again (rows already on Lindorm stay until overwritten: drop and recreate the table there to start empty)")
    }
}

impl Lindorm {
    /// `user@host:port`, without secrets.
    pub fn describe_endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    /// A connection to the engine: no session settings (it has none of MySQL's), and a
    /// plain `Conn`, never a pool that resets connections (COM_RESET_CONNECTION is
    /// refused there).
    pub fn connect(&self) -> Result<mysql::Conn> {
        connect_raw(&self.endpoint, Side::Destination)
    }

    /// Connects again after a lost connection, with a growing pause, until `deadline`.
    pub fn reconnect(&self, deadline: std::time::Instant) -> Result<mysql::Conn> {
        let _retrying =
            crate::retrying::begin(format!("reconnecting to Lindorm {}", self.endpoint));
        let mut pause = std::time::Duration::from_millis(500);
        loop {
            match self.connect() {
                Ok(c) => return Ok(c),
                Err(e) if std::time::Instant::now() + pause < deadline => {
                    tracing::warn!("Lindorm {}: reconnecting in {pause:?}: {e:#}", self.endpoint);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(e.context(
                        "Lindorm stayed unreachable for the whole retry window (`advanced.retry_connection_minutes`)",
                    ))
                }
            }
        }
    }
}

/// The destination name and source column of every copied column, and the key's
/// destination names.
pub(crate) fn target_columns(
    t: &TablePlan,
) -> (
    Vec<(String, &tidemark_core::schema::ColumnDef)>,
    Vec<String>,
) {
    let cols: Vec<_> = t
        .copied_columns()
        .map(|c| (t.columns[&c.name].clone(), c))
        .collect();
    let def = t.def();
    let key = def
        .key
        .iter()
        .flatten()
        .map(|&i| {
            let c = &def.columns[i];
            t.columns
                .get(&c.name)
                .cloned()
                .unwrap_or_else(|| c.name.clone())
        })
        .collect();
    (cols, key)
}

/// `create_tables = true`: namespaces and tables created from the source's definitions.
impl SchemaStep for Lindorm {
    fn migrate(&self, _task: &Task, plan: &Plan, _store: &Store) -> Result<Vec<String>> {
        let mut c = self.connect()?;
        let mut notes = Vec::new();
        let mut namespaces = std::collections::BTreeSet::new();
        for t in &plan.tables {
            if namespaces.insert(t.target.database.clone()) {
                c.query_drop(format!(
                    "CREATE DATABASE IF NOT EXISTS {}",
                    tidemark_core::sql::quote_ident(&t.target.database)
                ))
                .with_context(|| format!("creating namespace {} on Lindorm", t.target.database))?;
            }
            let (cols, key) = target_columns(t);
            let sql = types::create_table(&t.target, &cols, &key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", t.def().name))?;
            c.query_drop(&sql)
                .with_context(|| format!("creating {} on Lindorm: {sql}", t.target))?;
            tracing::info!("schema: {} ready on Lindorm", t.target);
        }
        if !plan.tables.is_empty() {
            notes.push(format!(
                "schema: {} table(s) created on Lindorm (where missing); indexes, views, routines, triggers and foreign keys are not migrated to Lindorm",
                plan.tables.len()
            ));
        }
        Ok(notes)
    }

    fn post_load(&self, _: &Task, _: &Plan, _: &Store) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// State-store key of the counters (`tidemark status`).
pub const COUNTERS: &str = "lindorm.counters";

/// Counters for `status`; they add up over restarts.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Rows over the engine's limits skipped under `filter_large_messages`.
    pub skipped_large: AtomicU64,
}

impl Counters {
    pub(crate) fn save(&self, store: &Store) -> Result<()> {
        store.set(COUNTERS, &serde_json::to_string(self)?)
    }
}

/// A Lindorm destination opened for a run: connections are opened by each part.
struct Opened<'a> {
    kind: &'a Lindorm,
    task: &'a Task,
    counters: Counters,
}

impl Session for Opened<'_> {
    fn full_copy<'a>(&'a self, plan: &'a Plan) -> Result<Box<dyn FullCopy + 'a>> {
        Ok(Box::new(full::Copy {
            kind: self.kind,
            plan,
            skipped: &self.counters.skipped_large,
        }))
    }

    fn applier<'a>(&'a self) -> Result<Box<dyn ChangeApplier + 'a>> {
        Ok(Box::new(applier::Applier::new(
            self.kind,
            self.task,
            &self.counters,
        )?))
    }

    fn full_copy_ended(&self, store: &Store) -> Result<()> {
        self.counters.save(store)
    }
}
