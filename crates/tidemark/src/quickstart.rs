//! `tidemark quickstart`: two throwaway local MariaDB servers, sample data, a live
//! migration with progress, and a checksum comparison. Nothing outlives the command.
//!
//! "Live" as in production: an application keeps writing orders to the source during
//! the whole migration (schema, full copy, then binlog changes), stops, and the task
//! catches up before the comparison.

use crate::config::Task;
use crate::state::{Store, TaskStatus};
use crate::task::{self, RunOptions};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_core::sql::qualified;
use tidemark_sandbox::Pair;

const SAMPLE: &str = include_str!("quickstart.sql");

pub fn run(rows: u64) -> Result<()> {
    let rows = rows.max(1_000);
    eprintln!("Starting two throwaway MariaDB servers (source with binlog ROW/FULL, destination)…");
    let pair = Pair::start().context("starting local MariaDB servers")?;
    eprintln!(
        "  source      {}\n  destination {}",
        pair.source.url(),
        pair.destination.url()
    );

    eprintln!("Loading sample data: database `shop`, {rows} orders…");
    let t0 = Instant::now();
    let script = SAMPLE
        .replace("{ROWS}", &rows.to_string())
        .replace("{CUSTOMERS}", &(rows / 10).max(100).to_string());
    let mut src = pair.source.conn()?;
    src.query_drop(&script).context("loading the sample data")?;
    eprintln!("  loaded in {:.1} s", t0.elapsed().as_secs_f64());

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("quickstart.toml");
    let toml = format!(
        r#"name = "quickstart"
[source]
url = "{}"
[destination]
url = "{}"
[migration]
types = ["schema", "full", "incremental"]
[full]
chunk_rows = 20000
[[objects]]
database = "shop"
"#,
        pair.source.url(),
        pair.destination.url()
    );
    std::fs::write(&file, &toml)?;
    eprintln!("Task file {}:\n{toml}", file.display());
    let task = Task::load(&file)?;

    // The "application": new orders, status changes and cancellations, all the time.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (writing, mut c) = (writing.clone(), pair.source.conn()?);
        let customers = (rows / 10).max(100);
        std::thread::spawn(move || -> Result<u64> {
            let mut n = 0u64;
            while writing.load(Ordering::Relaxed) {
                n += 1;
                let script = format!(
                    "START TRANSACTION;
                     INSERT INTO shop.orders (customer_id, sku, quantity, total, note)
                       VALUES ({c}, CONCAT('SKU-', LPAD({p}, 6, '0')), 2, 19.98, 'live order {n}');
                     UPDATE shop.orders SET status = 'paid' WHERE id = {u};
                     DELETE FROM shop.orders WHERE id = {d} AND status = 'cancelled';
                     COMMIT;",
                    c = 1 + n * 7919 % customers,
                    p = 1 + n % 1000,
                    u = 1 + n * 104_729 % rows,
                    d = 1 + n * 1_299_709 % rows,
                );
                c.query_drop(script)
                    .context("the sample application's write")?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(n)
        })
    };
    eprintln!("An application now writes to the source (new orders, payments, cancellations) while the task runs.");

    let t1 = Instant::now();
    let runner = {
        let task = task.clone();
        std::thread::spawn(move || {
            task::run(
                &task,
                RunOptions {
                    bars: true,
                    show_precheck: true,
                    stop_when_caught_up: false,
                },
            )
        })
    };
    // Let the live phase run a few seconds once the copy is done, then stop writing.
    let store_dir = task.state_dir.clone();
    let mut live_since = None;
    while !runner.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let status = Store::open_existing(&store_dir)
            .ok()
            .flatten()
            .and_then(|s| s.status().ok());
        if status == Some(TaskStatus::Incremental) && live_since.is_none() {
            live_since = Some(Instant::now());
            eprintln!(
                "Full copy done after {:.1} s; applying the source's binlog changes live…",
                t1.elapsed().as_secs_f64()
            );
        }
        if live_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            break;
        }
    }
    writing.store(false, Ordering::Relaxed);
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the sample application panicked"))??;
    eprintln!("The application stopped after {written} transactions (cut-over); waiting until the destination has caught up…");
    let caught_up = Instant::now();
    let mut dst = pair.destination.conn()?;
    while !runner.is_finished() && caught_up.elapsed() < Duration::from_secs(120) {
        if checksums(&mut src, &mut dst)?
            .iter()
            .all(|(_, a, b)| a == b)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    task::request_stop();
    runner
        .join()
        .map_err(|_| anyhow::anyhow!("the task panicked"))??;
    if let Some(applied) = Store::open_existing(&store_dir)?
        .and_then(|s| s.get(task::incremental::APPLIED).ok().flatten())
        .and_then(|s| serde_json::from_str::<task::incremental::Applied>(&s).ok())
    {
        eprintln!(
            "Binlog applied up to {}: {} transactions, {} row changes.",
            applied.position, applied.transactions, applied.rows_applied
        );
    }
    eprintln!(
        "Migrated in {:.1} s.\n\nVerification (CHECKSUM TABLE on both servers):",
        t1.elapsed().as_secs_f64()
    );

    let mut all_equal = true;
    for (table, a, b) in checksums(&mut src, &mut dst)? {
        let n: Option<u64> =
            dst.query_first(format!("SELECT COUNT(*) FROM {}", qualified("shop", table)))?;
        let same = a == b && a.is_some();
        all_equal &= same;
        eprintln!(
            "  shop.{table:<12} {:>9} rows  checksum {:>12}  {}",
            n.unwrap_or(0),
            b.unwrap_or(0),
            if same { "equal" } else { "DIFFERENT" }
        );
    }
    let views: Vec<String> =
        dst.query("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop'")?;
    let triggers: Vec<String> = dst.query(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'",
    )?;
    let routines: Vec<String> = dst.query(
        "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop'",
    )?;
    eprintln!(
        "  views {:?}, triggers {:?}, routines {:?}",
        views, triggers, routines
    );
    if !all_equal {
        anyhow::bail!("the destination differs from the source");
    }
    eprintln!("\nAll tables equal. Servers stopped and removed. Next: write your own task file (see docs/task-file.md).");
    Ok(())
}

const TABLES: [&str; 4] = ["customers", "products", "orders", "order_audit"];

/// A table and its checksum on the source and on the destination.
type Compared = (&'static str, Option<u64>, Option<u64>);

/// `CHECKSUM TABLE` of every sample table on both servers.
fn checksums(src: &mut mysql::Conn, dst: &mut mysql::Conn) -> Result<Vec<Compared>> {
    let mut out = Vec::new();
    for table in TABLES {
        let q = format!("CHECKSUM TABLE {}", qualified("shop", table));
        let a: Option<(String, Option<u64>)> = src.query_first(&q)?;
        let b: Option<(String, Option<u64>)> = dst.query_first(&q)?;
        out.push((table, a.and_then(|r| r.1), b.and_then(|r| r.1)));
    }
    Ok(out)
}
