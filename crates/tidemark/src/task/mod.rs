//! Where a task decides its next phase.
//!
//! `run` goes precheck → schema → full → post-load (deferred indexes, triggers) →
//! completed, recording each step in the state store. Started again after any
//! interruption, it runs the precheck again (the world may have changed), skips what is
//! recorded as done and continues from there.

pub mod fingerprint;
pub mod full;
pub mod incremental;
pub mod throttle;

use crate::config::{Phase, Task};
use crate::connect::{connect_raw, Side};
use crate::precheck;
use crate::progress::Progress;
use crate::source::binlog::client::StartAt;
use crate::source::current_position;
use crate::state::{Store, TaskStatus};
use crate::transform::mapping::Plan;
use anyhow::{bail, Result};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
/// The signal that asked for the stop (0: none, or `request_stop`).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if STOP.swap(true, Ordering::Relaxed) {
        // A second Ctrl-C: leave now. Nothing is lost (every chunk and batch is
        // committed before it is recorded), the work in flight is redone on the next run.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_STOPPED as libc::c_int) };
    }
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// The exit code of a run stopped on request before its phases finished (a stopped
/// incremental phase, the normal end of a live migration, exits 0).
pub const EXIT_STOPPED: u8 = 3;

/// Asks a running task to stop at its next checkpoint (what SIGTERM does).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Whether a stop was requested (Ctrl-C, SIGTERM, `tidemark stop`).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// What a phase returns when it stopped at a chunk or object boundary because a stop was
/// requested: not a failure, the next run continues from there.
#[derive(Debug)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped on request")
    }
}

impl std::error::Error for Stopped {}

/// `Err(Stopped)` once a stop was requested: called at the boundaries where stopping
/// leaves nothing half-done (between chunks, objects, tables, phases).
pub fn check_stop() -> Result<()> {
    if stop_requested() {
        return Err(anyhow::Error::new(Stopped));
    }
    Ok(())
}

/// Whether `e` is a requested stop rather than a failure.
pub fn is_stop(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Stopped>().is_some()
}

/// SIGINT and SIGTERM stop a task cleanly in every phase: the chunks (or the batch) being
/// written are finished and recorded, then the task exits as "stopped". A second signal
/// exits at once.
pub fn install_stop_handler() {
    // SAFETY: the handler only touches atomics and calls _exit, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every phase finished.
    Completed,
    /// The task had completed before; nothing was done.
    AlreadyCompleted,
    /// Stopped on request (or, incremental, caught up with `--stop-when-caught-up`),
    /// during this phase; the next run continues from there.
    Stopped(TaskStatus),
}

/// The progress of the copy in flight, for the heartbeat to record.
static LIVE_PROGRESS: Mutex<Option<Arc<Progress>>> = Mutex::new(None);

fn set_live_progress(p: Option<Arc<Progress>>) {
    *LIVE_PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = p;
}

/// How often a running task records that it is alive (and its copy's progress line).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Until `done`: records `heartbeat_at` (and the copy's progress) in the store, and
/// says once, as soon as a stop is requested, that the task is stopping.
fn heartbeat(store: &Store, done: &AtomicBool) {
    let mut last: Option<Instant> = None;
    let mut announced = false;
    // `None` until written once: a killed run may have left a "retrying" entry behind.
    let mut retry_shown = None;
    while !done.load(Ordering::Relaxed) {
        let retry = crate::retrying::oldest();
        if retry_shown.as_ref() != Some(&retry) {
            let text = match &retry {
                Some(r) => serde_json::to_string(r).unwrap_or_default(),
                None => String::new(),
            };
            // A busy store only delays the entry to the next round.
            if store.set(crate::retrying::KEY, &text).is_ok() {
                retry_shown = Some(retry);
            }
        }
        if stop_requested() && !announced {
            announced = true;
            let by = match SIGNAL.load(Ordering::Relaxed) {
                libc::SIGINT => "Ctrl-C (SIGINT)",
                libc::SIGTERM => "SIGTERM",
                _ => "request",
            };
            tracing::warn!(
                "stopping on {by}: finishing the chunks or the batch in flight, then stopping (press Ctrl-C again to leave at once)"
            );
        }
        if last.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
            last = Some(Instant::now());
            // A busy store only delays the next beat.
            let _ = store.set("heartbeat_at", &crate::state::now_rfc3339());
            let live = LIVE_PROGRESS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(p) = live {
                let _ = store.set("progress", &p.line());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a task to completion, to a requested stop, or to its first error (recorded in
/// the state store). Refused while another run of the task holds its lock, or when the
/// task file changed in a way the phases already started cannot follow.
pub fn run(task: &Task, opts: RunOptions) -> Result<Outcome> {
    let _lock = crate::state::lock::RunLock::acquire(&task.state_dir, &task.name)?;
    let store = Store::open(&task.state_dir)?;
    if store.status()? == TaskStatus::Completed {
        let _ = writeln!(
            std::io::stderr(),
            "task {} already completed; `tidemark reset {}` to run it again",
            task.name,
            task.file.display()
        );
        return Ok(Outcome::AlreadyCompleted);
    }
    let planned_from = fingerprint::of_file(&task.file)?;
    fingerprint::check(&store, &task.name, &planned_from)?;
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| heartbeat(&store, &done));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_phases(task, &store, opts, &planned_from)
        }));
        done.store(true, Ordering::Relaxed);
        r
    });
    set_live_progress(None);
    let _ = store.unset("progress");
    let _ = store.set(crate::retrying::KEY, "");
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(anyhow::anyhow!("internal error (a panic: {what}); please report it. Run the task again to continue from its last checkpoint"))
        }
    };
    match result {
        Ok(()) if task.has(Phase::Incremental) => {
            store.set_status(TaskStatus::Stopped)?;
            store.set("error", "")?;
            Ok(Outcome::Stopped(TaskStatus::Incremental))
        }
        Ok(()) => {
            store.set_status(TaskStatus::Completed)?;
            store.set("error", "")?;
            Ok(Outcome::Completed)
        }
        Err(e) if is_stop(&e) => {
            let during = store.status()?;
            store.set_status(TaskStatus::Stopped)?;
            store.set("error", "")?;
            store.set("stopped_during", during.as_str())?;
            Ok(Outcome::Stopped(during))
        }
        Err(e) => {
            store.set_status(TaskStatus::Failed)?;
            store.set("error", &crate::errors::describe(&e))?;
            Err(e)
        }
    }
}

/// Where an incremental task starts reading: the task's `start_position` or
/// `start_gtid`, else the source's current position.
fn start_position(task: &Task, plan: &Plan) -> Result<Position> {
    if let Some(p) = &task.migration.start_position {
        if let StartAt::File { file, position } = StartAt::parse_file_position(p)? {
            return Ok(Position {
                file,
                offset: position,
                ..Default::default()
            });
        }
    }
    if let Some(g) = &task.migration.start_gtid {
        return Ok(Position {
            file: String::new(),
            offset: 4,
            gtid: Some(g.clone()),
            ..Default::default()
        });
    }
    let mut src = connect_raw(&task.source, Side::Source)?;
    current_position(task, &plan.source_tables(), &mut src)
}

fn run_phases(
    task: &Task,
    store: &Store,
    opts: RunOptions,
    planned_from: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    store.set_status(TaskStatus::Prechecking)?;
    let checked = precheck::run(task, Some(store));
    if opts.show_precheck || !checked.report.passed() {
        let _ = write!(std::io::stderr(), "{}", checked.report.render());
    }
    check_stop()?;
    if !checked.report.passed() {
        bail!(
            "the precheck failed: {}. Nothing was written; fix the failures above and run again",
            checked.report.failures().join("; ")
        );
    }
    let Some(plan) = checked.plan else {
        bail!("the precheck produced no plan")
    };
    tracing::info!("precheck: done, {} table(s) selected", plan.tables.len());
    if task.has(Phase::Incremental)
        && incremental::load_position(store, incremental::START)?.is_none()
    {
        // Captured before the copy reads anything: every change from here on is replayed.
        let start = start_position(task, &plan)?;
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
        fingerprint::record(store, "schema", planned_from)?;
        store.set_status(TaskStatus::Schema)?;
        let Some(step) = task.destination.schema() else {
            bail!(
                "a {} destination has no schema step: remove \"schema\" from `migration.types`",
                task.destination.name()
            );
        };
        for note in step.migrate(task, &plan, store)? {
            tracing::warn!("{note}");
        }
        tracing::info!("schema: done");
        finish("schema")?;
    }
    // The destination opened once for the whole run (a queue's producer, its counters).
    let sink = task.destination.open(task, store)?;
    if task.has(Phase::Full) && !done("full")? {
        check_stop()?;
        fingerprint::record(store, "full", planned_from)?;
        store.set_status(TaskStatus::Full)?;
        let progress = Progress::start(full::estimate(&plan), opts.bars);
        // A resumed copy counts what earlier runs copied.
        progress.resume(&store.progress()?);
        set_live_progress(Some(progress.clone()));
        let copied = sink
            .full_copy(&plan)
            .and_then(|writer| full::copy(task, &plan, store, &progress, &*writer));
        let ended = sink.full_copy_ended(store);
        progress.finish();
        set_live_progress(None);
        copied?;
        ended?;
        tracing::info!("{}", progress.summary());
        finish("full")?;
    }
    if task.has(Phase::Full)
        && task.has(Phase::Incremental)
        && incremental::load_position(store, incremental::SAFE_UNTIL)?.is_none()
    {
        // Until the stream passes this point it may meet rows the copy already holds.
        let mut src = connect_raw(&task.source, Side::Source)?;
        let now = current_position(task, &plan.source_tables(), &mut src)?;
        incremental::save_position(store, incremental::SAFE_UNTIL, &now)?;
    }
    if task.has(Phase::Schema) && !done("post_load")? {
        check_stop()?;
        store.set_status(TaskStatus::PostLoad)?;
        let Some(step) = task.destination.schema() else {
            bail!("internal: post-load without a schema step");
        };
        for note in step.post_load(task, &plan, store)? {
            tracing::warn!("{note}");
        }
        finish("post_load")?;
    }
    if task.verification.mode == crate::config::VerificationMode::AfterFull
        && task.has(Phase::Full)
        && !done("verification")?
    {
        check_stop()?;
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
        check_stop()?;
        fingerprint::record(store, "incremental", planned_from)?;
        store.set_status(TaskStatus::Incremental)?;
        incremental::run(
            task,
            &plan,
            store,
            &STOP,
            incremental::Options {
                stop_when_caught_up: opts.stop_when_caught_up,
            },
            &*sink,
        )?;
    }
    Ok(())
}
