//! Progress output: bars (rows, bytes, rate, ETA) on a terminal, a log line every ten
//! seconds otherwise. While bars are drawn, log lines go through [`LogWriter`], which
//! lifts the bars out of the way, so no half-drawn bar is left between log lines.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bars being drawn, if any, for [`LogWriter`].
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where log lines go: stderr, with the bars (if drawn) cleared around each line.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    /// Never fails: a log line that cannot be written (stderr is a closed pipe) has
    /// nowhere else to go, and the task goes on.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = match active {
            Some(m) => m.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        };
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

pub struct Progress {
    /// What the log lines call the work (`full`, `verify`).
    label: &'static str,
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    tables: Mutex<HashMap<String, ProgressBar>>,
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    /// Rows earlier runs had copied (counted, but not in this run's rate).
    resumed_rows: AtomicU64,
    resumed_bytes: AtomicU64,
    /// Per table: rows earlier runs had copied, for its bar.
    resumed_tables: Mutex<HashMap<String, u64>>,
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
                    "[{bar:30}] {human_pos:>11}/{human_len:<11} rows {rate:>14}  {msg}  ETA {eta}  (all tables)",
                )
                .map(with_rate)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(m.clone());
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
            resumed_rows: AtomicU64::new(0),
            resumed_bytes: AtomicU64::new(0),
            resumed_tables: Mutex::new(HashMap::new()),
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

    /// Counts the rows and bytes earlier runs copied (a resumed copy), so the totals and
    /// bars start where they stopped; the rates count only this run's rows.
    pub fn resume(&self, tables: &[crate::state::TableProgress]) {
        let rows: u64 = tables.iter().map(|t| t.rows_copied).sum();
        let bytes: u64 = tables.iter().map(|t| t.bytes_copied).sum();
        self.rows.store(rows, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.resumed_rows.store(rows, Ordering::Relaxed);
        self.resumed_bytes.store(bytes, Ordering::Relaxed);
        let mut per_table = self
            .resumed_tables
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for t in tables.iter().filter(|t| t.rows_copied > 0) {
            per_table.insert(t.target.clone(), t.rows_copied);
        }
        if let Some(t) = &self.total {
            t.set_length(t.length().unwrap_or(0).max(rows));
            t.set_position(rows);
            t.set_message(bytes_h(bytes as f64));
            t.reset_eta();
        }
    }

    /// Rows per second in this run.
    fn rate(&self) -> f64 {
        let rows = self.rows.load(Ordering::Relaxed) - self.resumed_rows.load(Ordering::Relaxed);
        rows as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }

    /// The closing line: what was copied, how long it took, how fast.
    pub fn summary(&self) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let resumed = self.resumed_rows.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let earlier = if resumed > 0 {
            format!(" ({resumed} of them by earlier runs)")
        } else {
            String::new()
        };
        format!(
            "{}: {rows} rows{earlier}, {} in {secs:.1} s ({:.0} rows/s)",
            self.label,
            bytes_h(self.bytes.load(Ordering::Relaxed) as f64),
            self.rate()
        )
    }

    /// One line summary: rows, bytes, rates, ETA.
    pub fn line(&self) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed) as f64;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.rate();
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
            (bytes - self.resumed_bytes.load(Ordering::Relaxed) as f64) / secs / 1e6
        )
    }

    pub fn table_started(&self, table: &str, estimate: u64) {
        let Some(m) = &self.multi else { return };
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if tables.contains_key(table) {
            return;
        }
        let done = self
            .resumed_tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .copied()
            .unwrap_or(0);
        let b = m.add(ProgressBar::new(estimate.max(done).max(1)));
        // The name last, whole: a bar never cuts it.
        b.set_style(
            ProgressStyle::with_template(
                "[{bar:30}] {human_pos:>11}/{human_len:<11} rows {rate:>14}  {prefix}",
            )
            .map(with_rate)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(table.to_string());
        b.set_position(done);
        b.reset_eta();
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
        if self.multi.is_some() {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if self.multi.is_some() {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}
