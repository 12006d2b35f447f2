//! The `tidemark` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tidemark::config::Task;
use tidemark::state::{Store, TaskStatus};
use tidemark::{inspect, precheck, quickstart, task};

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
    /// With incremental migration the task keeps applying changes until it receives
    /// SIGINT (Ctrl-C) or SIGTERM, then stops cleanly at a checkpoint.
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
                println!("{}", serde_json::to_string_pretty(&checked.report)?);
            } else {
                print!("{}", checked.report.render());
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
            task::run(
                &task,
                task::RunOptions {
                    bars: !no_progress,
                    show_precheck: true,
                    stop_when_caught_up,
                },
            )?;
            let how = if task.has(tidemark::config::Phase::Incremental) {
                "stopped (run it again to continue from its checkpoint)"
            } else {
                "completed"
            };
            eprintln!("task {}: {how}", task.name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { task, json } => {
            let task = Task::load(&task)?;
            status(&task, json)
        }
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
    if task.rocketmq.is_some() {
        anyhow::bail!("`tidemark verify` compares the source with a MySQL destination; this task's destination is RocketMQ (compare what your consumer builds instead, e.g. with a second task into MySQL)");
    }
    let store = Store::open_existing(&task.state_dir)?;
    let checked = precheck::run(task, store.as_ref());
    let Some(plan) = checked.plan else {
        eprint!("{}", checked.report.render());
        anyhow::bail!("cannot verify: the source and destination could not be read (see above)");
    };
    let report = tidemark::verify::run(task, &plan, &opts)?;
    let equal = report.equal();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &report.databases {
            if !d.missing_objects.is_empty() {
                println!(
                    "{} → {}: the destination lacks {}",
                    d.source,
                    d.target,
                    d.missing_objects.join(", ")
                );
            }
            for kind in &d.not_compared {
                println!("{} → {}: not compared: {kind}", d.source, d.target);
            }
        }
        for r in &report.tables {
            let verdict = if r.equal() { "equal" } else { "DIFFERENT" };
            println!(
                "{} → {}: {verdict}, {} rows compared in {} chunk(s), {:.1} s",
                r.source, r.target, r.rows_compared, r.chunks, r.seconds
            );
            if let Some(p) = &r.problem {
                println!("  problem: {p}");
            }
            for s in &r.schema {
                println!("  schema: {s}");
            }
            for (what, list) in [
                ("missing on the destination", &r.missing),
                ("extra on the destination", &r.extra),
                ("differing", &r.differing),
            ] {
                if list.is_empty() {
                    continue;
                }
                println!("  {} {what}:", list.len());
                for d in list.iter().take(20) {
                    let cols = if d.columns.is_empty() {
                        String::new()
                    } else {
                        format!(" (columns {})", d.columns.join(", "))
                    };
                    println!("    key ({}){cols}", d.key.join(", "));
                }
                if list.len() > 20 {
                    println!("    … {} more (--json lists all)", list.len() - 20);
                }
            }
            if r.repaired > 0 {
                let how = if opts.emit_sql.is_some() {
                    "statements written"
                } else {
                    "rows repaired"
                };
                println!("  {} {how}", r.repaired);
            }
        }
    }
    Ok(if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn status(task: &Task, json: bool) -> Result<ExitCode> {
    let Some(store) = Store::open_existing(&task.state_dir)? else {
        if json {
            println!(
                "{}",
                serde_json::json!({ "task": task.name, "status": "not-started", "tables": [] })
            );
        } else {
            println!("task {}: not started", task.name);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let status = store.status()?;
    let tables = store.progress()?;
    let error = store.get("error")?.filter(|e| !e.is_empty());
    let updated = store.get("updated_at")?;
    let retrying: Option<tidemark::retrying::Retrying> = store
        .get(tidemark::retrying::KEY)?
        .and_then(|s| serde_json::from_str(&s).ok())
        .filter(|_| {
            !matches!(
                status,
                TaskStatus::Failed | TaskStatus::Completed | TaskStatus::Stopped
            )
        });
    let incremental: Option<task::incremental::Applied> = store
        .get(task::incremental::APPLIED)?
        .and_then(|s| serde_json::from_str(&s).ok());
    let messages: Option<serde_json::Value> = store
        .get(tidemark::sink::rocketmq::COUNTERS)?
        .and_then(|s| serde_json::from_str(&s).ok());
    if json {
        let verification: Option<serde_json::Value> = store
            .get("verification")?
            .and_then(|s| serde_json::from_str(&s).ok());
        let v = serde_json::json!({
            "task": task.name, "status": status, "updated_at": updated, "error": error, "tables": tables,
            "retrying": retrying,
            "incremental": incremental, "verification": verification, "messages": messages,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "task {}: {}{}",
        task.name,
        status.as_str(),
        updated.map(|u| format!(" (since {u})")).unwrap_or_default()
    );
    if let Some(r) = &retrying {
        println!("retrying since {}: {}", r.since, r.what);
    }
    if let Some(e) = error {
        println!("last error: {e}");
    }
    if let Some(v) = store.get("verification_summary")? {
        println!("verification: {v}");
    }
    if let Some(m) = messages {
        println!(
            "messages acknowledged by RocketMQ: {} ({:.1} MB); rows over 4 MiB skipped: {}",
            m["messages"],
            m["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            m["skipped_large"]
        );
    }
    if let Some(i) = incremental {
        let verb = if task.rocketmq.is_some() {
            "sent (and acknowledged)"
        } else {
            "applied"
        };
        println!(
            "binlog {verb} up to {} ({} transactions, {} row changes); latency at the last batch {:.1} s",
            i.position, i.transactions, i.rows_applied, i.latency_seconds
        );
    }
    if !tables.is_empty() {
        println!(
            "\n{:<40} {:<8} {:>12} {:>12} {:>10}",
            "table", "state", "rows", "MB", "chunks"
        );
        for t in &tables {
            println!(
                "{:<40} {:<8} {:>12} {:>12.1} {:>10}",
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
