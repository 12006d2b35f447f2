//! Where a task decides its next phase.
//!
//! `run` goes precheck → schema → full → post-load (deferred indexes, triggers) →
//! completed, recording each step in the state store. Started again after any
//! interruption, it runs the precheck again (the world may have changed), skips what is
//! recorded as done and continues from there.

pub mod full;
pub mod full_queue;
pub mod incremental;
pub mod schema;
pub mod throttle;

use crate::config::{Phase, Task};
use crate::connect::{connect_raw, Side};
use crate::precheck;
use crate::progress::Progress;
use crate::source::binlog::client::{current_position, StartAt};
use crate::state::{Store, TaskStatus};
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use tidemark_core::Position;

/// How `run` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Progress bars on a terminal (log lines otherwise).
    pub bars: bool,
    /// Print the precheck report.
    pub show_precheck: bool,
    /// Incremental: stop once every change logged so far is applied.
    pub stop_when_caught_up: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Asks a running task to stop at its next checkpoint (what SIGTERM does).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM stop the incremental phase cleanly: the batch being written is
/// finished and checkpointed, then the task exits as "stopped".
pub fn install_stop_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
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
    let result = with_retry_reporter(&store, || run_phases(task, &store, opts));
    match &result {
        Ok(()) if task.has(Phase::Incremental) => {
            store.set_status(TaskStatus::Stopped)?;
            store.set("error", "")?;
        }
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

/// Runs `work` while a reporter thread keeps the state store's "retrying" entry (for
/// `status`) equal to the retry in progress the longest, cleared when there is none.
fn with_retry_reporter<T>(store: &Store, work: impl FnOnce() -> Result<T>) -> Result<T> {
    use crate::retrying;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reporter = s.spawn(|| -> Result<()> {
            // Written at once: a killed run may have left an entry behind.
            let mut shown = None;
            loop {
                let now = retrying::oldest();
                if shown.as_ref() != Some(&now) {
                    let text = match &now {
                        Some(r) => serde_json::to_string(r)?,
                        None => String::new(),
                    };
                    store.set(retrying::KEY, &text)?;
                    shown = Some(now);
                }
                if done.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        });
        let result = work();
        done.store(true, Ordering::Relaxed);
        let reported = reporter
            .join()
            .map_err(|_| anyhow::anyhow!("the status reporter panicked"))?;
        if let Err(e) = reported {
            tracing::warn!("status: could not record a retry in the state store: {e:#}");
        }
        result
    })
}

/// Where an incremental task starts reading: the task's `start_position` or
/// `start_gtid`, else the source's current position.
fn start_position(task: &Task) -> Result<Position> {
    if let Some(p) = &task.migration.start_position {
        if let StartAt::File { file, position } = StartAt::parse_file_position(p)? {
            return Ok(Position {
                file,
                offset: position,
                gtid: None,
            });
        }
    }
    if let Some(g) = &task.migration.start_gtid {
        return Ok(Position {
            file: String::new(),
            offset: 4,
            gtid: Some(g.clone()),
        });
    }
    let mut src = connect_raw(&task.source, Side::Source)?;
    current_position(&mut src)
}

fn run_phases(task: &Task, store: &Store, opts: RunOptions) -> Result<()> {
    store.set_status(TaskStatus::Prechecking)?;
    let checked = precheck::run(task, Some(store));
    if opts.show_precheck || !checked.report.passed() {
        eprint!("{}", checked.report.render());
    }
    if !checked.report.passed() {
        bail!(
            "the precheck failed: {}. Nothing was written; fix the failures above and run again",
            checked.report.failures().join("; ")
        );
    }
    let Some(plan) = checked.plan else {
        bail!("the precheck produced no plan")
    };
    if task.has(Phase::Incremental)
        && incremental::load_position(store, incremental::START)?.is_none()
    {
        // Captured before the copy reads anything: every change from here on is replayed.
        let start = start_position(task)?;
        tracing::info!("incremental: changes will be read from {start}");
        incremental::save_position(store, incremental::START, &start)?;
    }
    // A finished phase is not run again: once the binlog is being applied, the
    // destination's tables follow the source's DDL, not the task's start.
    let done = |phase: &str| -> Result<bool> {
        Ok(store.get(&format!("phase.{phase}"))?.as_deref() == Some("done"))
    };
    let finish = |phase: &str| store.set(&format!("phase.{phase}"), "done");
    if task.has(Phase::Schema) && !done("schema")? {
        store.set_status(TaskStatus::Schema)?;
        for note in schema::migrate(task, &plan, store)? {
            tracing::warn!("{note}");
        }
        tracing::info!("schema: done");
        finish("schema")?;
    }
    // A message queue destination: one producer for the whole run.
    let sink = task.rocketmq.as_ref().map(|c| {
        let mut sink = crate::sink::rocketmq::Sink::new(
            c.clone(),
            &task.name,
            task.advanced.connection_window(),
        );
        sink.client.set_timeout(task.advanced.timeouts().network);
        sink
    });
    if let Some(sink) = &sink {
        sink.load_counters(store)?;
    }
    if task.has(Phase::Full) && !done("full")? {
        store.set_status(TaskStatus::Full)?;
        let progress = Progress::start(full::estimate(&plan), opts.bars);
        let copied = match &sink {
            Some(sink) => full_queue::copy(task, &plan, store, &progress, sink),
            None => full::copy(task, &plan, store, &progress),
        };
        progress.finish();
        copied?;
        tracing::info!(
            "{} in {:.1} s",
            progress.line(),
            progress.elapsed().as_secs_f64()
        );
        finish("full")?;
    }
    if task.has(Phase::Full)
        && task.has(Phase::Incremental)
        && incremental::load_position(store, incremental::SAFE_UNTIL)?.is_none()
    {
        // Until the stream passes this point it may meet rows the copy already holds.
        let mut src = connect_raw(&task.source, Side::Source)?;
        incremental::save_position(store, incremental::SAFE_UNTIL, &current_position(&mut src)?)?;
    }
    if task.has(Phase::Schema) && !done("post_load")? {
        store.set_status(TaskStatus::PostLoad)?;
        for note in schema::post_load(task, &plan, store)? {
            tracing::warn!("{note}");
        }
        finish("post_load")?;
    }
    if task.verification.mode == crate::config::VerificationMode::AfterFull
        && task.has(Phase::Full)
        && !done("verification")?
    {
        // With incremental migration this runs before any binlog change is applied: rows
        // the source changed during the copy differ until the stream brings them in.
        tracing::info!("verification: comparing the destination with the source");
        let report = crate::verify::run(task, &plan, &crate::verify::Options::default())?;
        let summary = crate::verify::summary(&report);
        tracing::info!("verification: {summary}");
        store.set("verification", &serde_json::to_string(&report)?)?;
        store.set("verification_summary", &summary)?;
        finish("verification")?;
    }
    if task.has(Phase::Incremental) {
        store.set_status(TaskStatus::Incremental)?;
        incremental::run(
            task,
            &plan,
            store,
            &STOP,
            incremental::Options {
                stop_when_caught_up: opts.stop_when_caught_up,
            },
            sink.as_ref(),
        )?;
    }
    Ok(())
}
