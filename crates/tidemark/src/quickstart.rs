//! `tidemark quickstart`: two throwaway local MariaDB servers, sample data, a live
//! migration with progress, and a checksum comparison. Nothing outlives the command.

use crate::config::Task;
use crate::task::{self, RunOptions};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::time::Instant;
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
types = ["schema", "full"]
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
    let t1 = Instant::now();
    task::run(
        &task,
        RunOptions {
            bars: true,
            show_precheck: true,
            stop_when_caught_up: false,
        },
    )?;
    eprintln!(
        "Migrated in {:.1} s.\n\nVerification (CHECKSUM TABLE on both servers):",
        t1.elapsed().as_secs_f64()
    );

    let mut dst = pair.destination.conn()?;
    let mut all_equal = true;
    for table in ["customers", "products", "orders", "order_audit"] {
        let q = format!("CHECKSUM TABLE {}", qualified("shop", table));
        let a: Option<(String, Option<u64>)> = src.query_first(&q)?;
        let b: Option<(String, Option<u64>)> = dst.query_first(&q)?;
        let (a, b) = (a.and_then(|r| r.1), b.and_then(|r| r.1));
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
