//! The MySQL/MariaDB destination.
//!
//! * [`config`]: its `[destination]` keys.
//! * [`precheck`]: connection, versions, privileges, names, existing tables, space.
//! * [`schema_step`]: the schema phase and post-load step, with DDL from [`schema`].
//! * [`full`]: the full copy's chunk writer, with statements from [`writer`].
//! * [`applier`]: binlog batches, coalesced and applied in parallel by [`apply`].

pub(crate) mod applier;
pub mod apply;
pub mod cluster;
pub mod config;
pub(crate) mod full;
mod precheck;
pub mod schema;
pub mod schema_step;
pub mod writer;

use crate::config::Task;
use crate::endpoint::Endpoint;
use crate::sink::{Capabilities, ChangeApplier, DdlKinds, FullCopy, Kind, SchemaStep, Session};
use crate::state::Store;
use crate::transform::mapping::Plan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;

/// The MySQL destination kind (`type = "mysql"`, the default).
pub struct Mysql {
    pub endpoint: Endpoint,
}

impl Kind for Mysql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn describe(&self) -> String {
        self.endpoint.to_string()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tables: true,
            exact_keyless_handoff: true,
            ddl: DdlKinds::Executed,
            applied_verb: "applied",
            queued_batches: 2,
        }
    }

    fn verification_server(&self) -> Result<&Endpoint> {
        Ok(&self.endpoint)
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
        Ok(Box::new(Opened { kind: self, task }))
    }

    fn forget_table(&self, target: &str) -> Result<&'static str> {
        let mut dst = crate::connect::connect(&self.endpoint, crate::connect::Side::Destination)?;
        empty_table(&mut dst, target)?;
        Ok("emptied on the destination")
    }
}

impl SchemaStep for Mysql {
    fn migrate(&self, task: &Task, plan: &Plan, store: &Store) -> Result<Vec<String>> {
        schema_step::migrate(&self.endpoint, task, plan, store)
    }

    fn post_load(&self, task: &Task, plan: &Plan, store: &Store) -> Result<Vec<String>> {
        schema_step::post_load(&self.endpoint, task, plan, store)
    }
}

/// A MySQL destination opened for a run: connections are opened by each part.
struct Opened<'a> {
    kind: &'a Mysql,
    task: &'a Task,
}

impl Session for Opened<'_> {
    fn full_copy<'a>(&'a self, plan: &'a Plan) -> Result<Box<dyn FullCopy + 'a>> {
        Ok(Box::new(full::Copy::new(
            &self.kind.endpoint,
            self.task,
            plan,
        )?))
    }

    fn applier<'a>(&'a self) -> Result<Box<dyn ChangeApplier + 'a>> {
        Ok(Box::new(applier::Applier::new(
            self.task,
            &self.kind.endpoint,
        )?))
    }

    fn full_copy_ended(&self, _: &Store) -> Result<()> {
        Ok(())
    }
}

/// TRUNCATE of a destination table named `db.table` (found in the destination's catalog,
/// since either name may hold a dot), without foreign key checks or triggers.
fn empty_table(dst: &mut mysql::Conn, target: &str) -> Result<()> {
    let found: Vec<(String, String)> = dst.exec(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) = ?",
        (target,),
    )?;
    let [(db, name)] = found.as_slice() else {
        anyhow::bail!("the destination has no single table {target} to empty");
    };
    dst.query_drop("SET SESSION foreign_key_checks = 0")?;
    dst.query_drop(format!(
        "TRUNCATE TABLE {}",
        tidemark_core::sql::qualified(db, name)
    ))
    .with_context(|| format!("emptying {target} on the destination"))?;
    Ok(())
}

/// The destination's CPU count, which sizes the full copy's pipelines into one table and
/// the apply connections: MariaDB's `thread_pool_size`, which defaults to it; `None`
/// where the variable is unknown (MySQL).
fn destination_cpus(dst: &mut mysql::Conn) -> Option<usize> {
    let cpus = dst
        .query_first::<u64, _>("SELECT @@thread_pool_size")
        .ok()
        .flatten()?;
    Some(usize::try_from(cpus).unwrap_or(usize::MAX))
}
