//! Runs an AnalyticDB for MySQL stand-in (`standin::adb`, not the engine) for benchmarks
//! and manual tries: prints its `mysql://` URL on a line of its own, then serves until
//! its standard input closes, and stops its storage server on the way out.
//!
//! `cargo run --release -p tidemark-sandbox --example adb_standin` (bench/adb.sh).

use std::io::{BufRead, Write};
use tidemark_sandbox::standin::adb::{AdbStandIn, Options};

fn main() -> anyhow::Result<()> {
    let standin = AdbStandIn::start(&Options::default())?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", standin.url())?;
    out.flush()?;
    // Until EOF: the caller holds the pipe open for as long as it needs the stand-in.
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    drop(standin);
    Ok(())
}
