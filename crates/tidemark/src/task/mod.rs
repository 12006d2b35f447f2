//! Where a task decides its next phase.
//!
//! `run` goes precheck → schema → full → post-load (deferred indexes, triggers) →
//! completed, recording each step in the state store. Started again after any
//! interruption, it runs the precheck again (the world may have changed), skips what is
//! recorded as done and continues from there.

pub mod full;
pub mod schema;
pub mod throttle;

use crate::config::{Phase, Task};
use crate::precheck;
use crate::progress::Progress;
use crate::state::{Store, TaskStatus};
use anyhow::{bail, Result};

/// How `run` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Progress bars on a terminal (log lines otherwise).
    pub bars: bool,
    /// Print the precheck report.
    pub show_precheck: bool,
}

/// Runs a task to completion (or to its first error, recorded in the state store).
pub fn run(task: &Task, opts: RunOptions) -> Result<()> {
    let store = Store::open(&task.state_dir)?;
    if store.status()? == TaskStatus::Completed {
        eprintln!(
            "task {} already completed; delete {} to run it again",
            task.name,
            task.state_dir.display()
        );
        return Ok(());
    }
    let result = run_phases(task, &store, opts);
    match &result {
        Ok(()) => {
            store.set_status(TaskStatus::Completed)?;
            store.set("error", "")?;
        }
        Err(e) => {
            store.set_status(TaskStatus::Failed)?;
            store.set("error", &format!("{e:#}"))?;
        }
    }
    result
}

fn run_phases(task: &Task, store: &Store, opts: RunOptions) -> Result<()> {
    store.set_status(TaskStatus::Prechecking)?;
    let checked = precheck::run(task, Some(store));
    if opts.show_precheck || !checked.report.passed() {
        eprint!("{}", checked.report.render());
    }
    if !checked.report.passed() {
        bail!("the precheck failed: nothing was written; fix the failures above and run again");
    }
    let Some(plan) = checked.plan else {
        bail!("the precheck produced no plan")
    };
    if task.has(Phase::Incremental) {
        bail!("incremental migration is not available in this version yet: remove \"incremental\" from migration.types");
    }
    if task.has(Phase::Schema) {
        store.set_status(TaskStatus::Schema)?;
        for note in schema::migrate(task, &plan, store)? {
            tracing::warn!("{note}");
        }
        tracing::info!("schema: done");
    }
    if task.has(Phase::Full) {
        store.set_status(TaskStatus::Full)?;
        let progress = Progress::start(full::estimate(&plan), opts.bars);
        let copied = full::copy(task, &plan, store, &progress);
        progress.finish();
        copied?;
        tracing::info!(
            "{} in {:.1} s",
            progress.line(),
            progress.elapsed().as_secs_f64()
        );
    }
    if task.has(Phase::Schema) {
        store.set_status(TaskStatus::PostLoad)?;
        for note in schema::post_load(task, &plan, store)? {
            tracing::warn!("{note}");
        }
    }
    Ok(())
}
