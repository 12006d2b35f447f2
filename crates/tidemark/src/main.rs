//! The `tidemark` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tidemark::config::Task;
use tidemark::state::lock::{self, Process};
use tidemark::state::{Store, TaskStatus};
use tidemark::{inspect, precheck, quickstart, task};

/// The binlog stream decodes rows on one thread and frees them on others (coordinator,
/// apply workers): glibc's malloc spent about a third of the catch-up's CPU on that,
/// half of it waiting on its arena lock. mimalloc frees across threads without one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that never panics: a closed pipe (`tidemark status | head`) ends the output,
/// not the program.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Migrate MySQL/MariaDB databases (schema, full data, binlog changes) to MySQL, or stream them into RocketMQ topics"
)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `tidemark=debug` (or set RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check both ends and the task before anything is written.
    Precheck {
        task: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run (or resume) a task: precheck, then each selected phase.
    ///
    /// SIGINT (Ctrl-C), SIGTERM or `tidemark stop` stop it cleanly in any phase, at the
    /// next chunk, object or batch (exit code 3 before its phases finished, 0 for a
    /// stopped incremental phase). With incremental migration it keeps applying changes
    /// until stopped. A second run of a running task is refused.
    Run {
        task: PathBuf,
        /// No progress bars (log lines instead).
        #[arg(long)]
        no_progress: bool,
        /// Incremental: stop once every change the source has logged is applied (for
        /// cut-over: stop writes on the source first).
        #[arg(long)]
        stop_when_caught_up: bool,
    },
    /// Show a task's phase and per-table progress (and, for RocketMQ, the messages
    /// acknowledged and the large rows skipped).
    Status {
        task: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the tasks whose state is under DIR (default: ./.tidemark), with their status.
    List {
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Ask a running task to stop (as Ctrl-C would): it finishes the chunks or the batch
    /// in flight, records them, and exits; `tidemark run` continues from there.
    Stop {
        task: PathBuf,
        /// Seconds to wait for it to exit (0: do not wait).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// Forget a task's state, so the next run starts over (or, with --table, copies one
    /// table again).
    Reset {
        task: PathBuf,
        /// Copy only this table again (source name DB.TABLE, or its destination name):
        /// it is emptied on the destination now and copied on the next run.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
    },
    /// Compare a MySQL destination with the source (chunk checksums computed by the
    /// servers, drilled down to rows); exits 1 when anything differs.
    Verify {
        task: PathBuf,
        /// Machine-readable output: every difference, by key and column.
        #[arg(long)]
        json: bool,
        /// Make the destination equal: write the source's rows over missing and differing
        /// ones, delete extra ones.
        #[arg(long, conflicts_with = "emit_sql")]
        repair: bool,
        /// Write the repair as SQL to FILE instead of applying it.
        #[arg(long, value_name = "FILE")]
        emit_sql: Option<PathBuf>,
        /// Tables verified at once (each uses one connection to either end).
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Rows compared per second, 0 = unlimited.
        #[arg(long, default_value_t = 0)]
        rows_per_second: u64,
        /// No progress bars (log lines instead).
        #[arg(long)]
        no_progress: bool,
    },
    /// Binary log tools.
    Binlog {
        #[command(subcommand)]
        command: BinlogCommand,
    },
    /// Start two throwaway local MariaDB servers, load sample data, migrate it live while a
    /// sample application writes, cut over, compare checksums.
    Quickstart {
        /// Rows in the largest sample table.
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
    },
}

#[derive(Subcommand)]
enum BinlogCommand {
    /// Print the events of a binlog file and the rows they carry (like mysqlbinlog -v).
    ///
    /// Either FILE, or --from URL to read from a live source as a replica.
    Inspect {
        /// A binlog file (MySQL 5.1+ or MariaDB).
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        file: Option<PathBuf>,
        /// Read from this source, e.g. mysql://repl:${PW}@db1:3306 (needs REPLICATION SLAVE).
        #[arg(long)]
        from: Option<String>,
        /// With --from: start at FILE:POS (default: the oldest binlog file).
        #[arg(long, requires = "from")]
        start: Option<String>,
        /// With --from: start after this GTID set (MySQL uuid:1-5) or list (MariaDB 0-1-5).
        #[arg(long, requires = "from")]
        gtid: Option<String>,
        /// With --from: keep waiting for new events instead of stopping at the end.
        #[arg(long, requires = "from")]
        follow: bool,
        /// With --from: the server id to register with (unique among the source's replicas).
        #[arg(long, default_value_t = 4_123_456_789)]
        server_id: u32,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(|| tidemark::progress::LogWriter)
        // Colours only for a person at a terminal (never into pipes and log files).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        // Its own report of a failed write is an `eprintln!`, which panics on a closed pipe.
        .log_internal_errors(false)
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            say!("error: {}", tidemark::errors::describe(&e));
            ExitCode::from(1)
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Precheck { task, json } => {
            let task = Task::load(&task)?;
            let store = Store::open_existing(&task.state_dir)?;
            let checked = precheck::run(&task, store.as_ref());
            if json {
                out!("{}", serde_json::to_string_pretty(&checked.report)?);
            } else {
                let _ = std::io::Write::write_all(
                    &mut std::io::stdout(),
                    checked.report.render().as_bytes(),
                );
            }
            Ok(if checked.report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Run {
            task,
            no_progress,
            stop_when_caught_up,
        } => {
            let task = Task::load(&task)?;
            task::install_stop_handler();
            let outcome = task::run(
                &task,
                task::RunOptions {
                    bars: !no_progress,
                    show_precheck: true,
                    stop_when_caught_up,
                },
            )?;
            let again = format!("`tidemark run {}`", task.file.display());
            Ok(match outcome {
                task::Outcome::Completed => {
                    say!("task {}: completed", task.name);
                    ExitCode::SUCCESS
                }
                task::Outcome::AlreadyCompleted => ExitCode::SUCCESS,
                task::Outcome::Stopped(TaskStatus::Incremental) => {
                    say!(
                        "task {}: stopped at a checkpoint; {again} continues from it",
                        task.name
                    );
                    ExitCode::SUCCESS
                }
                task::Outcome::Stopped(during) => {
                    let boundary = match during {
                        TaskStatus::Full => "at a chunk boundary",
                        _ => "between two objects",
                    };
                    say!(
                        "task {}: stopped on request during the {} phase, {boundary} (everything recorded as done is committed); {again} continues from there",
                        task.name,
                        during.as_str()
                    );
                    ExitCode::from(task::EXIT_STOPPED)
                }
            })
        }
        Command::Status { task, json } => {
            let task = Task::load_offline(&task)?;
            status(&task, json)
        }
        Command::List { dir, json } => {
            list(&dir.unwrap_or_else(|| PathBuf::from(".tidemark")), json)
        }
        Command::Stop { task, wait } => stop(&Task::load_offline(&task)?, wait),
        Command::Reset { task, table } => match table {
            Some(table) => reset_table(&Task::load(&task)?, &table),
            None => reset(&Task::load_offline(&task)?),
        },
        Command::Verify {
            task,
            json,
            repair,
            emit_sql,
            threads,
            rows_per_second,
            no_progress,
        } => {
            let task = Task::load(&task)?;
            task::install_stop_handler();
            let opts = tidemark::verify::Options {
                repair,
                emit_sql,
                threads,
                rows_per_second,
                bars: !no_progress && !json,
            };
            verify(&task, json, opts)
        }
        Command::Binlog {
            command:
                BinlogCommand::Inspect {
                    file,
                    from,
                    start,
                    gtid,
                    follow,
                    server_id,
                    json,
                },
        } => {
            match (file, from) {
                (Some(file), _) => inspect::file(&file, json)?,
                (None, Some(url)) => inspect::remote(&inspect::Remote {
                    url: &url,
                    start: start.as_deref(),
                    gtid: gtid.as_deref(),
                    follow,
                    server_id,
                    json,
                })?,
                (None, None) => anyhow::bail!("give a binlog FILE or --from URL"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Quickstart { rows } => {
            quickstart::run(rows)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(task: &Task, json: bool, opts: tidemark::verify::Options) -> Result<ExitCode> {
    // A destination that cannot be compared says why.
    task.destination.verification()?;
    let store = Store::open_existing(&task.state_dir)?;
    let checked = precheck::run(task, store.as_ref());
    let Some(plan) = checked.plan else {
        let _ =
            std::io::Write::write_all(&mut std::io::stderr(), checked.report.render().as_bytes());
        anyhow::bail!("cannot verify: the source and destination could not be read (see above)");
    };
    let report = match tidemark::verify::run(task, &plan, &opts) {
        Err(e) if task::is_stop(&e) => {
            say!("verify: stopped on request between chunks; nothing was compared or repaired past that point. Run `tidemark verify` again to compare everything");
            return Ok(ExitCode::from(task::EXIT_STOPPED));
        }
        r => r?,
    };
    let equal = report.equal();
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &report.databases {
            if !d.missing_objects.is_empty() {
                out!(
                    "{} → {}: the destination lacks {}",
                    d.source,
                    d.target,
                    d.missing_objects.join(", ")
                );
            }
            for kind in &d.not_compared {
                out!("{} → {}: not compared: {kind}", d.source, d.target);
            }
        }
        for r in &report.tables {
            let verdict = if r.equal() { "equal" } else { "DIFFERENT" };
            out!(
                "{} → {}: {verdict}, {} rows compared in {} chunk(s), {:.1} s",
                r.source,
                r.target,
                r.rows_compared,
                r.chunks,
                r.seconds
            );
            if let Some(p) = &r.problem {
                out!("  problem: {p}");
            }
            for s in &r.schema {
                out!("  schema: {s}");
            }
            for (what, list) in [
                ("missing on the destination", &r.missing),
                ("extra on the destination", &r.extra),
                ("differing", &r.differing),
            ] {
                if list.is_empty() {
                    continue;
                }
                out!("  {} {what}:", list.len());
                for d in list.iter().take(20) {
                    let cols = if d.columns.is_empty() {
                        String::new()
                    } else {
                        format!(" (columns {})", d.columns.join(", "))
                    };
                    out!("    key ({}){cols}", d.key.join(", "));
                }
                if list.len() > 20 {
                    out!("    … {} more (--json lists all)", list.len() - 20);
                }
            }
            if r.repaired > 0 {
                let how = if opts.emit_sql.is_some() {
                    "statements written"
                } else {
                    "rows repaired"
                };
                out!("  {} {how}", r.repaired);
            }
        }
    }
    Ok(if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What `status` and `list` call a task's process: `running` while a run holds the
/// task's lock, `dead` when the recorded phase is an active one but no process holds it
/// (killed, crashed, the machine restarted), else the recorded status.
fn run_state(status: TaskStatus, process: &Process) -> &'static str {
    match (process, status) {
        (Process::Running(_), _) => "running",
        (
            Process::NotRunning(_),
            TaskStatus::Prechecking
            | TaskStatus::Schema
            | TaskStatus::Full
            | TaskStatus::PostLoad
            | TaskStatus::Incremental,
        ) => "dead",
        (Process::NotRunning(_), s) => s.as_str(),
    }
}

fn holder(process: &Process) -> Option<&lock::Holder> {
    match process {
        Process::Running(h) | Process::NotRunning(h) => h.as_ref(),
    }
}

fn status(task: &Task, json: bool) -> Result<ExitCode> {
    let process = lock::process(&task.state_dir)?;
    let Some(store) = Store::open_existing(&task.state_dir)? else {
        if json {
            out!(
                "{}",
                serde_json::json!({ "task": task.name, "status": "not-started", "state": run_state(TaskStatus::NotStarted, &process), "tables": [] })
            );
        } else {
            out!("task {}: not started", task.name);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (status, status_pid) = store.status_and_pid()?;
    let state = run_state(status, &process);
    let running = matches!(process, Process::Running(_));
    let mut tables = store.progress()?;
    for t in &mut tables {
        // Planned and started: being copied now, or left part-way by a stopped run.
        if t.state == "planned" && t.chunks_started > 0 {
            t.state = if running { "copying" } else { "partial" }.into();
        }
    }
    let error = store.get("error")?.filter(|e| !e.is_empty());
    let updated = store.get("updated_at")?;
    let retrying: Option<tidemark::retrying::Retrying> = store
        .get(tidemark::retrying::KEY)?
        .and_then(|s| serde_json::from_str(&s).ok())
        // A killed run may have left its last retry behind.
        .filter(|_| running);
    let heartbeat = store.get("heartbeat_at")?;
    let live = store.get("progress")?.filter(|_| running);
    let who = holder(&process);
    let incremental: Option<task::incremental::Applied> = store
        .get(task::incremental::APPLIED)?
        .and_then(|s| serde_json::from_str(&s).ok());
    let messages: Option<serde_json::Value> = store
        .get(tidemark::sink::rocketmq::COUNTERS)?
        .and_then(|s| serde_json::from_str(&s).ok());
    let lindorm: Option<serde_json::Value> = store
        .get(tidemark::sink::lindorm::COUNTERS)?
        .and_then(|s| serde_json::from_str(&s).ok());
    if json {
        let verification: Option<serde_json::Value> = store
            .get("verification")?
            .and_then(|s| serde_json::from_str(&s).ok());
        let v = serde_json::json!({
            "task": task.name, "status": status, "state": state,
            "pid": who.map(|h| h.pid), "host": who.map(|h| h.host.clone()),
            "heartbeat_at": heartbeat, "progress": live,
            "status_pid": status_pid,
            "updated_at": updated, "error": error, "tables": tables, "retrying": retrying,
            "incremental": incremental, "verification": verification, "messages": messages,
            "lindorm": lindorm,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let since = updated.map(|u| format!(" since {u}")).unwrap_or_default();
    let beat = heartbeat
        .map(|h| format!("; last heartbeat {h}"))
        .unwrap_or_default();
    let again = format!("`tidemark run {}`", task.file.display());
    match state {
        "running" => out!(
            "task {}: running ({}), phase {}{since}{beat}",
            task.name,
            who.map(|h| h.to_string())
                .unwrap_or_else(|| "just starting".into()),
            status.as_str()
        ),
        "dead" => out!(
            "task {}: dead: its process{} ended without stopping during the {} phase{beat}; {again} continues from its last checkpoint",
            task.name,
            who.map(|h| format!(" ({h})")).unwrap_or_default(),
            status.as_str()
        ),
        "stopped" => out!(
            "task {}: stopped{}{since}; {again} continues from there",
            task.name,
            store
                .get("stopped_during")?
                .map(|p| format!(" during the {p} phase"))
                .unwrap_or_default()
        ),
        other => out!("task {}: {other}{since}", task.name),
    }
    if let Some(r) = &retrying {
        out!("retrying since {}: {}", r.since, r.what);
    }
    if let Some(e) = error {
        out!("last error: {e}");
    }
    if let Some(p) = live {
        out!("copy: {p}");
    } else if tables.iter().any(|t| t.state != "copied") {
        let copied: u64 = tables.iter().map(|t| t.rows_copied).sum();
        let estimate: u64 = tables.iter().map(|t| t.rows_estimate).sum();
        out!(
            "copy: {copied} of ~{estimate} rows ({:.0}%)",
            (copied as f64 * 100.0 / estimate.max(1) as f64).min(100.0)
        );
    }
    if let Some(v) = store.get("verification_summary")? {
        out!("verification: {v}");
    }
    if let Some(m) = messages {
        out!(
            "messages acknowledged by RocketMQ: {} ({:.1} MB); rows over 4 MiB skipped: {}",
            m["messages"],
            m["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            m["skipped_large"]
        );
    }
    if let Some(l) = lindorm {
        out!(
            "rows over LindormTable's limits skipped: {}",
            l["skipped_large"]
        );
    }
    if let Some(i) = incremental {
        let verb = task.destination.capabilities().applied_verb;
        out!(
            "binlog {verb} up to {} ({} transactions, {} row changes); latency at the last batch {:.1} s",
            i.position, i.transactions, i.rows_applied, i.latency_seconds
        );
    }
    if !tables.is_empty() {
        let width = tables
            .iter()
            .map(|t| t.source.chars().count() + t.target.chars().count() + 3)
            .max()
            .unwrap_or(0)
            .max(40);
        out!(
            "\n{:<width$} {:<8} {:>12} {:>12} {:>10}",
            "table",
            "state",
            "rows",
            "MB",
            "chunks"
        );
        for t in &tables {
            out!(
                "{:<width$} {:<8} {:>12} {:>12.1} {:>10}",
                format!("{} → {}", t.source, t.target),
                t.state,
                t.rows_copied,
                t.bytes_copied as f64 / 1e6,
                format!("{}/{}", t.chunks_done, t.chunks_total)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidemark list`: every task state directory under `dir` (and `dir` itself).
fn list(dir: &Path, json: bool) -> Result<ExitCode> {
    let mut dirs = vec![dir.to_path_buf()];
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for e in entries {
        let p = e?.path();
        if p.is_dir() {
            dirs.push(p);
        }
    }
    dirs.sort();
    let mut rows = Vec::new();
    for d in dirs {
        let Some(store) = Store::open_existing(&d)? else {
            continue;
        };
        let process = lock::process(&d)?;
        let status = store.status()?;
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        rows.push(serde_json::json!({
            "task": name, "dir": d.display().to_string(),
            "state": run_state(status, &process), "status": status,
            "pid": holder(&process).filter(|_| matches!(process, Process::Running(_))).map(|h| h.pid),
            "updated_at": store.get("updated_at")?, "heartbeat_at": store.get("heartbeat_at")?,
        }));
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        out!("no tasks under {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let name_width = rows
        .iter()
        .map(|r| r["task"].as_str().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    out!(
        "{:<name_width$}  {:<11}  {:<11}  {:<8}  {:<20}",
        "task",
        "state",
        "phase",
        "pid",
        "updated"
    );
    for r in &rows {
        let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        out!(
            "{:<name_width$}  {:<11}  {:<11}  {:<8}  {:<20}",
            text("task"),
            text("state"),
            text("status"),
            r["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
            text("updated_at")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidemark stop`: SIGTERM to the process holding the task's lock, then wait for the
/// lock to be released.
fn stop(task: &Task, wait: u64) -> Result<ExitCode> {
    let h = match lock::process(&task.state_dir)? {
        Process::NotRunning(_) => {
            out!("task {} is not running", task.name);
            return Ok(ExitCode::SUCCESS);
        }
        Process::Running(None) => {
            anyhow::bail!(
                "task {} is just starting; run `tidemark stop` again in a moment",
                task.name
            )
        }
        Process::Running(Some(h)) => h,
    };
    if h.host != lock::host_name() {
        anyhow::bail!(
            "task {} runs on host {} (pid {}): run `tidemark stop` there",
            task.name,
            h.host,
            h.pid
        );
    }
    let pid = i32::try_from(h.pid).context("the lock file names an invalid pid")?;
    // SAFETY: kill(2) with a pid the lock's live holder wrote about itself.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot signal pid {pid}"));
    }
    say!(
        "asked task {} (pid {pid}) to stop: it finishes the chunks or the batch in flight first",
        task.name
    );
    if wait == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    while std::time::Instant::now() < deadline {
        if matches!(lock::process(&task.state_dir)?, Process::NotRunning(_)) {
            out!("task {}: stopped", task.name);
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!(
        "task {} (pid {pid}) is still running after {wait} s; it may be finishing a large chunk or a long statement (see `tidemark status`)",
        task.name
    )
}

/// `tidemark reset`: removes the task's state store, so the next run starts over.
fn reset(task: &Task) -> Result<ExitCode> {
    let _lock = lock::RunLock::acquire(&task.state_dir, &task.name)?;
    let mut removed = false;
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let p = task.state_dir.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }
    if !removed {
        out!("task {} has no state to reset", task.name);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "task {}: state removed; the next `tidemark run` starts over. What it wrote to the destination is kept: drop those tables first, or the precheck reports them as conflicting (on_conflicting_tables = \"ignore\" keeps them and writes over them)",
        task.name
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidemark reset --table`: forgets one table's copy and empties it on the destination,
/// so the next run copies it again (with incremental migration, the binlog from the
/// checkpoint on is applied idempotently past the new copy).
fn reset_table(task: &Task, table: &str) -> Result<ExitCode> {
    let _lock = lock::RunLock::acquire(&task.state_dir, &task.name)?;
    let Some(store) = Store::open_existing(&task.state_dir)? else {
        anyhow::bail!("task {} has not run yet: nothing to reset", task.name);
    };
    let tables = store.progress()?;
    let Some(t) = tables
        .iter()
        .find(|t| t.source == table || t.target == table)
    else {
        let known: Vec<&str> = tables.iter().map(|t| t.source.as_str()).collect();
        anyhow::bail!(
            "task {} has copied no table {table}; its tables: {}",
            task.name,
            if known.is_empty() {
                "none yet".into()
            } else {
                known.join(", ")
            }
        );
    };
    let forgotten = task.destination.forget_table(&t.target)?;
    store.forget_table(&t.source)?;
    for key in [
        "phase.full",
        "phase.verification",
        "verification",
        "verification_summary",
    ] {
        store.unset(key)?;
    }
    if task.has(tidemark::config::Phase::Incremental) {
        // Replayed idempotently until the binlog passes the new copy.
        store.unset(task::incremental::SAFE_UNTIL)?;
    }
    if store.status()? == TaskStatus::Completed {
        store.set_status(TaskStatus::Stopped)?;
    }
    out!(
        "{} → {}: {}; the next `tidemark run {}` copies it again",
        t.source,
        t.target,
        forgotten,
        task.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
