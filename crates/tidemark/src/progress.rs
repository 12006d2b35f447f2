//! Progress output: bars (rows, bytes, rate, ETA) on a terminal, a log line every ten
//! seconds otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Progress {
    /// What the log lines call the work (`full`, `verify`).
    label: &'static str,
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    tables: Mutex<HashMap<String, ProgressBar>>,
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    estimate: u64,
    started: Instant,
    done: Arc<AtomicBool>,
}

fn bytes_h(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

/// `{rate}`: whole rows per second.
fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} rows/s", state.per_sec());
        },
    )
}

impl Progress {
    /// `estimate`: total rows expected. `bars`: draw bars (only if stderr is a terminal).
    pub fn start(estimate: u64, bars: bool) -> Arc<Progress> {
        Progress::start_as("full", estimate, bars)
    }

    /// As [`Progress::start`], with `label` naming the work in log lines (`verify`).
    pub fn start_as(label: &'static str, estimate: u64, bars: bool) -> Arc<Progress> {
        let bars = bars && std::io::stderr().is_terminal();
        let (multi, total) = if bars {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let t = m.add(ProgressBar::new(estimate.max(1)));
            t.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {human_pos}/{human_len} rows  {msg}  {rate}  ETA {eta}",
                )
                .map(with_rate)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            t.set_prefix("total");
            (Some(m), Some(t))
        } else {
            (None, None)
        };
        let p = Arc::new(Progress {
            label,
            multi,
            total,
            tables: Mutex::new(HashMap::new()),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            estimate,
            started: Instant::now(),
            done: Arc::new(AtomicBool::new(false)),
        });
        if p.multi.is_none() {
            let weak = Arc::downgrade(&p);
            let done = p.done.clone();
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() < Duration::from_secs(10) {
                        continue;
                    }
                    last = Instant::now();
                    match weak.upgrade() {
                        Some(p) => tracing::info!("{}", p.line()),
                        None => break,
                    }
                }
            });
        }
        p
    }

    /// One line summary: rows, bytes, rates, ETA.
    pub fn line(&self) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed) as f64;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / secs;
        let pct = if self.estimate > 0 {
            (rows as f64 * 100.0 / self.estimate as f64).min(100.0)
        } else {
            100.0
        };
        let eta = if rate > 0.0 && self.estimate > rows {
            format!("{:.0} s", (self.estimate - rows) as f64 / rate)
        } else {
            "-".into()
        };
        if bytes == 0.0 {
            return format!(
                "{}: {rows} / ~{} rows ({pct:.0}%), {rate:.0} rows/s, ETA {eta}",
                self.label, self.estimate
            );
        }
        format!(
            "{}: {rows} / ~{} rows ({pct:.0}%), {}, {:.0} rows/s, {:.1} MB/s, ETA {eta}",
            self.label,
            self.estimate,
            bytes_h(bytes),
            rate,
            bytes / secs / 1e6
        )
    }

    pub fn table_started(&self, table: &str, estimate: u64) {
        let Some(m) = &self.multi else { return };
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if tables.contains_key(table) {
            return;
        }
        let b = m.add(ProgressBar::new(estimate.max(1)));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {human_pos}/{human_len} rows  {rate}",
            )
            .map(with_rate)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let short: String = table
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        b.set_prefix(short);
        tables.insert(table.to_string(), b);
    }

    pub fn add(&self, table: &str, rows: u64, bytes: u64) {
        let r = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if let Some(t) = &self.total {
            if r > t.length().unwrap_or(0) {
                t.set_length(r);
            }
            t.set_position(r);
            t.set_message(bytes_h(b as f64));
        }
        if let Some(bar) = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
        {
            bar.inc(rows);
            if bar.position() > bar.length().unwrap_or(0) {
                bar.set_length(bar.position());
            }
        }
    }

    pub fn table_done(&self, table: &str) {
        if let Some(b) = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(table)
        {
            b.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&b);
            }
        }
    }

    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        for (_, b) in self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            b.finish_and_clear();
        }
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}
