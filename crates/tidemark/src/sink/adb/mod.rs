//! The AnalyticDB for MySQL 3.0 destination (`type = "adb-mysql"`).
//!
//! ADB speaks MySQL's protocol and most of its DML, so rows are written by the MySQL
//! destination's writer and applier (`sink/mysql/`: batched REPLACE INTO, DELETE by key);
//! what differs is here:
//!
//! * [`config`]: its `[destination]` keys and `[[destination.tables]]` (fact or
//!   dimension, primary, distribution and partition keys, lifecycle).
//! * [`types`]: the MySQL → ADB type mapping and the values it changes.
//! * [`schema`]: each table's layout and `CREATE TABLE` in ADB's dialect; the schema step.
//! * [`precheck`]: layouts, per-column mapping warnings, what is not migrated.
//! * [`full`]: converted rows as REPLACE INTO of ≤ 16 MB.
//! * [`applier`]: converted changes, ADD/DROP COLUMN translated, other DDL skipped.
//! * [`verify`]: `tidemark verify` by rows read back (values follow the mapping).

mod applier;
pub mod config;
mod full;
mod precheck;
pub mod schema;
pub mod types;
mod verify;

use crate::config::Task;
use crate::connect::{connect, connect_raw, Side};
use crate::endpoint::Endpoint;
use crate::sink::{Capabilities, ChangeApplier, DdlKinds, FullCopy, Kind, SchemaStep, Session};
use crate::state::Store;
use crate::transform::mapping::Plan;
use anyhow::{Context, Result};
use config::TableSettings;
use mysql::prelude::Queryable;
use tidemark_core::sql::quote_ident;

/// The ADB destination kind.
pub struct Adb {
    pub endpoint: Endpoint,
    pub tables: Vec<TableSettings>,
}

impl Kind for Adb {
    fn name(&self) -> &'static str {
        "adb-mysql"
    }

    fn describe(&self) -> String {
        self.endpoint.to_string()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // ADB holds tables, but in its own types: the tracker must decode binlog rows
            // with the source's definitions, so they are read from the source, and a
            // table renamed into the selection is created by `copy_rows`, in ADB's form.
            tables: false,
            // Keyless tables are refused by the precheck.
            exact_keyless_handoff: false,
            ddl: DdlKinds::Executed,
            applied_verb: "applied",
            queued_batches: 2,
        }
    }

    fn verification_server(&self) -> Result<&Endpoint> {
        anyhow::bail!(
            "an adb-mysql destination is not compared by server-side checksums: its values follow the ADB type mapping, so `tidemark verify` reads its rows back instead"
        )
    }

    /// Rows read back and compared in Tidemark under the type mapping (`verify.rs`).
    fn verification(&self) -> Result<crate::sink::Verification<'_>> {
        Ok(crate::sink::Verification::Rows(self))
    }

    fn precheck<'a>(&'a self, task: &'a Task) -> Box<dyn crate::sink::Precheck + 'a> {
        Box::new(precheck::Check {
            kind: self,
            task,
            conn: None,
            info: None,
        })
    }

    fn schema(&self) -> Option<&dyn SchemaStep> {
        Some(self)
    }

    fn open<'a>(&'a self, task: &'a Task, _store: &'a Store) -> Result<Box<dyn Session + 'a>> {
        // ADB takes at most 16 MB per statement; the MySQL applier cuts its statements
        // after the row that passes `full.batch_bytes`, so half of that leaves room for
        // the row.
        let mut task = task.clone();
        task.full.batch_bytes = task.full.batch_bytes.min(full::MAX_STATEMENT / 2);
        Ok(Box::new(Opened { kind: self, task }))
    }

    fn merges_into(&self, target: &tidemark_core::TableName) -> bool {
        self.tables.iter().any(|s| {
            s.merge
                && s.database.eq_ignore_ascii_case(&target.database)
                && s.table.eq_ignore_ascii_case(&target.table)
        })
    }

    fn forget_table(&self, target: &str) -> Result<&'static str> {
        let mut dst = connect(&self.endpoint, Side::Destination)?;
        let found: Vec<(String, String)> = dst.exec(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) = ?",
            (target,),
        )?;
        let [(db, name)] = found.as_slice() else {
            anyhow::bail!("ADB has no single table {target} to empty");
        };
        dst.query_drop(format!(
            "DELETE FROM {}",
            tidemark_core::sql::qualified(db, name)
        ))
        .with_context(|| format!("emptying {target} on ADB"))?;
        Ok("emptied on ADB")
    }
}

impl SchemaStep for Adb {
    /// Databases and tables only, each table recorded once created.
    fn migrate(&self, task: &Task, plan: &Plan, store: &Store) -> Result<Vec<String>> {
        let layouts = schema::layouts(&task.source, &self.tables, &plan.tables)?;
        let mut dst = connect_raw(&self.endpoint, Side::Destination)?;
        for db in &plan.databases {
            let sql = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&db.target));
            dst.query_drop(&sql)
                .with_context(|| format!("creating database {} on ADB", db.target))?;
        }
        for (t, l, _) in &layouts {
            crate::task::check_stop()?;
            let target = t.target.to_string();
            if store.was_created("table", &target)? {
                continue;
            }
            let ddl = schema::create_table(t, l);
            dst.query_drop(&ddl).with_context(|| {
                format!("ADB rejected the table definition of {target}:\n{ddl}")
            })?;
            store.mark_created("table", &target)?;
        }
        Ok(vec![
            "foreign keys, triggers, routines and views are not migrated to ADB".to_string(),
        ])
    }

    fn post_load(&self, _: &Task, _: &Plan, _: &Store) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

struct Opened<'a> {
    kind: &'a Adb,
    /// The task, with statement sizes capped for ADB.
    task: Task,
}

impl Session for Opened<'_> {
    fn full_copy<'a>(&'a self, plan: &'a Plan) -> Result<Box<dyn FullCopy + 'a>> {
        let layouts = schema::layouts(&self.task.source, &self.kind.tables, &plan.tables)?;
        let tables = layouts
            .into_iter()
            .map(|(t, l, data_source)| {
                let by_source = schema::conversions(&t, &l);
                let conv = t.copied.iter().map(|&i| by_source[i].clone()).collect();
                full::Table {
                    plan: t,
                    conversions: conv,
                    data_source,
                }
            })
            .collect();
        Ok(Box::new(full::Copy::new(
            &self.kind.endpoint,
            &self.task,
            plan,
            tables,
        )?))
    }

    fn applier<'a>(&'a self) -> Result<Box<dyn ChangeApplier + 'a>> {
        Ok(Box::new(applier::Applier::new(
            &self.task,
            &self.kind.endpoint,
            &self.kind.tables,
        )?))
    }

    fn full_copy_ended(&self, _: &Store) -> Result<()> {
        Ok(())
    }
}
