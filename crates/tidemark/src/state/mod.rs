//! The embedded state store: task state, schema objects created, and per-chunk progress,
//! in one SQLite file (`state.db`) in the task's state directory. Nothing to install.
//!
//! Chunks are recorded before they are copied and marked done only after the destination
//! committed them, so a restart copies every chunk that is not done, and only those. No
//! secret is ever written here: the task file's URLs are not stored.

pub mod lock;

use crate::source::snapshot::Chunk;
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    NotStarted,
    Prechecking,
    Schema,
    Full,
    PostLoad,
    /// Applying binlog changes; runs until stopped.
    Incremental,
    Completed,
    Failed,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::NotStarted => "not-started",
            TaskStatus::Prechecking => "prechecking",
            TaskStatus::Schema => "schema",
            TaskStatus::Full => "full",
            TaskStatus::PostLoad => "post-load",
            TaskStatus::Incremental => "incremental",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> TaskStatus {
        match s {
            "prechecking" => TaskStatus::Prechecking,
            "schema" => TaskStatus::Schema,
            "full" => TaskStatus::Full,
            "post-load" => TaskStatus::PostLoad,
            "incremental" => TaskStatus::Incremental,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "stopped" => TaskStatus::Stopped,
            _ => TaskStatus::NotStarted,
        }
    }
}

/// Progress of one chunk as stored.
#[derive(Clone, Debug)]
pub struct ChunkState {
    pub chunk: Chunk,
    pub done: bool,
    /// How many times a copy of this chunk was started.
    pub attempts: u32,
}

/// One table's progress, for `tidemark status`.
#[derive(Clone, Debug, Serialize)]
pub struct TableProgress {
    pub source: String,
    pub target: String,
    pub state: String,
    pub rows_estimate: u64,
    pub rows_copied: u64,
    pub bytes_copied: u64,
    pub chunks_total: u64,
    pub chunks_done: u64,
    /// Chunks whose copy was started at least once (done or not).
    pub chunks_started: u64,
}

pub struct Store {
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS task (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS created (kind TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS tables (
  source TEXT PRIMARY KEY, target TEXT NOT NULL, state TEXT NOT NULL,
  rows_estimate INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chunks (
  source TEXT NOT NULL, idx INTEGER NOT NULL, bounds TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (source, idx));
";

fn busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy)
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let path = dir.join("state.db");
        let db = Connection::open(&path)
            .with_context(|| format!("cannot open the state store {}", path.display()))?;
        // Other processes (`tidemark status`) and the task's own threads open the store
        // too: wait for a lock rather than fail.
        db.busy_timeout(std::time::Duration::from_secs(30))
            .context("configuring the state store")?;
        // Switching to WAL takes an exclusive lock, for which SQLite does not always wait
        // (the pragma then just answers the old mode): retry while a reader holds the file.
        let started = std::time::Instant::now();
        let patient = || started.elapsed() < std::time::Duration::from_secs(30);
        loop {
            match db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => break,
                // A file system without WAL support keeps the rollback journal.
                Ok(_) if !patient() => break,
                Err(e) if !busy(&e) || !patient() => {
                    return Err(e).context("initialising the state store")
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        loop {
            match db.execute_batch(SCHEMA) {
                Ok(()) => break,
                Err(e) if busy(&e) && patient() => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => return Err(e).context("initialising the state store"),
            }
        }
        db.execute_batch("PRAGMA synchronous=NORMAL;")
            .context("configuring the state store")?;
        Ok(Store { db: Mutex::new(db) })
    }

    /// Opens the store of a task that ran, for reading (`status`, `precheck`, `verify`):
    /// `None` when the task never ran, or is only creating its store. It changes nothing
    /// in the file (no journal mode, no tables), so it never competes with the task for
    /// the locks those take.
    pub fn open_existing(dir: &Path) -> Result<Option<Store>> {
        let path = dir.join("state.db");
        if !path.exists() {
            return Ok(None);
        }
        let db = Connection::open(&path)
            .with_context(|| format!("cannot open the state store {}", path.display()))?;
        db.busy_timeout(std::time::Duration::from_secs(30))
            .context("configuring the state store")?;
        // `chunks` is created last: once it exists, every table does.
        let ready: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'chunks'",
                [],
                |r| r.get(0),
            )
            .context("reading the state store")?;
        if ready == 0 {
            return Ok(None);
        }
        Ok(Some(Store { db: Mutex::new(db) }))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each call is atomic).
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row("SELECT value FROM task WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        self.db().execute(
            "INSERT INTO task (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Sets every `(key, value)` in one transaction: all of them or none survive a crash.
    pub fn set_all(&self, entries: &[(&str, String)]) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for (key, value) in entries {
            tx.execute(
                "INSERT INTO task (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn status(&self) -> Result<TaskStatus> {
        Ok(self
            .get("status")?
            .map_or(TaskStatus::NotStarted, |s| TaskStatus::parse(&s)))
    }

    /// Records the status, and which process recorded it (so a watcher can tell a status
    /// left by an earlier run from this run's).
    /// Records the status with the process that set it, in one transaction, so a reader
    /// of [`Store::status_and_pid`] never pairs one run's status with another run's pid.
    pub fn set_status(&self, s: TaskStatus) -> Result<()> {
        self.set_all(&[
            ("status", s.as_str().to_string()),
            ("status_pid", std::process::id().to_string()),
            ("updated_at", now_rfc3339()),
        ])
    }

    /// The status and the pid of the process that set it, read in one statement.
    pub fn status_and_pid(&self) -> Result<(TaskStatus, Option<u32>)> {
        let db = self.db();
        let mut q =
            db.prepare("SELECT key, value FROM task WHERE key IN ('status', 'status_pid')")?;
        let mut rows = q.query([])?;
        let (mut status, mut pid) = (TaskStatus::NotStarted, None);
        while let Some(r) = rows.next()? {
            let (key, value): (String, String) = (r.get(0)?, r.get(1)?);
            match key.as_str() {
                "status" => status = TaskStatus::parse(&value),
                _ => pid = value.parse::<u32>().ok(),
            }
        }
        Ok((status, pid))
    }

    /// Records a schema object this task created on the destination.
    pub fn mark_created(&self, kind: &str, name: &str) -> Result<()> {
        self.db().execute(
            "INSERT OR IGNORE INTO created (kind, name) VALUES (?1, ?2)",
            params![kind, name],
        )?;
        Ok(())
    }

    pub fn was_created(&self, kind: &str, name: &str) -> Result<bool> {
        Ok(self
            .db()
            .query_row(
                "SELECT 1 FROM created WHERE kind = ?1 AND name = ?2",
                params![kind, name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn table_state(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .db()
            .query_row(
                "SELECT state FROM tables WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_table_state(
        &self,
        source: &str,
        target: &str,
        state: &str,
        rows_estimate: u64,
    ) -> Result<()> {
        self.db().execute(
            "INSERT INTO tables (source, target, state, rows_estimate) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(source) DO UPDATE SET state = excluded.state",
            params![source, target, state, rows_estimate as i64],
        )?;
        Ok(())
    }

    /// Stores a table's chunk plan and marks it planned, atomically.
    pub fn save_chunks(
        &self,
        source: &str,
        target: &str,
        rows_estimate: u64,
        chunks: &[Chunk],
    ) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM chunks WHERE source = ?1", [source])?;
        for c in chunks {
            tx.execute(
                "INSERT INTO chunks (source, idx, bounds) VALUES (?1, ?2, ?3)",
                params![source, c.index, serde_json::to_string(c)?],
            )?;
        }
        tx.execute(
            "INSERT INTO tables (source, target, state, rows_estimate) VALUES (?1, ?2, 'planned', ?3) \
             ON CONFLICT(source) DO UPDATE SET state = 'planned', rows_estimate = excluded.rows_estimate",
            params![source, target, rows_estimate as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn chunks(&self, source: &str) -> Result<Vec<ChunkState>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT bounds, done, attempts FROM chunks WHERE source = ?1 ORDER BY idx")?;
        let rows = st.query_map([source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (bounds, done, attempts) = r?;
            let chunk: Chunk = serde_json::from_str(&bounds).with_context(|| {
                format!("the state store holds an unreadable chunk of {source}")
            })?;
            out.push(ChunkState {
                chunk,
                done,
                attempts,
            });
        }
        Ok(out)
    }

    /// Counts one more attempt at a chunk and returns how many there were before.
    pub fn start_chunk(&self, source: &str, idx: u32) -> Result<u32> {
        let db = self.db();
        let before: u32 = db.query_row(
            "SELECT attempts FROM chunks WHERE source = ?1 AND idx = ?2",
            params![source, idx],
            |r| r.get(0),
        )?;
        db.execute(
            "UPDATE chunks SET attempts = attempts + 1 WHERE source = ?1 AND idx = ?2",
            params![source, idx],
        )?;
        Ok(before)
    }

    /// Marks a chunk copied; call only after the destination committed it.
    pub fn finish_chunk(&self, source: &str, idx: u32, rows: u64, bytes: u64) -> Result<()> {
        self.db().execute(
            "UPDATE chunks SET done = 1, rows = ?3, bytes = ?4 WHERE source = ?1 AND idx = ?2",
            params![source, idx, rows as i64, bytes as i64],
        )?;
        Ok(())
    }

    pub fn progress(&self) -> Result<Vec<TableProgress>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT t.source, t.target, t.state, t.rows_estimate, \
                    COALESCE(SUM(c.rows), 0), COALESCE(SUM(c.bytes), 0), COUNT(c.idx), COALESCE(SUM(c.done), 0), \
                    COALESCE(SUM(c.attempts > 0), 0) \
             FROM tables t LEFT JOIN chunks c ON c.source = t.source GROUP BY t.source ORDER BY t.source",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TableProgress {
                source: r.get(0)?,
                target: r.get(1)?,
                state: r.get(2)?,
                rows_estimate: r.get::<_, i64>(3)? as u64,
                rows_copied: r.get::<_, i64>(4)? as u64,
                bytes_copied: r.get::<_, i64>(5)? as u64,
                chunks_total: r.get::<_, i64>(6)? as u64,
                chunks_done: r.get::<_, i64>(7)? as u64,
                chunks_started: r.get::<_, i64>(8)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Store {
    /// Forgets a table's copy (`tidemark reset --table`): its chunks, its state, and that
    /// the full phase finished, so the next run plans and copies it again. Returns
    /// whether the store knew the table.
    pub fn forget_table(&self, source: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM chunks WHERE source = ?1", [source])?;
        let known = tx.execute("DELETE FROM tables WHERE source = ?1", [source])? > 0;
        tx.commit()?;
        Ok(known)
    }

    /// Removes a task key.
    pub fn unset(&self, key: &str) -> Result<()> {
        self.db()
            .execute("DELETE FROM task WHERE key = ?1", [key])?;
        Ok(())
    }
}

/// Current UTC time as RFC 3339, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// A Unix time as RFC 3339 UTC.
pub fn rfc3339(unix_seconds: i64) -> String {
    let t = tidemark_core::DateTime::from_unix(unix_seconds, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task creating its store while `tidemark status` polls it (the tests' and an
    /// operator's `watch tidemark status`): neither side fails with "database is locked".
    #[test]
    fn a_store_being_created_can_be_polled() {
        for round in 0..150 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let poller = {
                let (path, stop) = (path.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if let Some(s) = Store::open_existing(&path).expect("status open") {
                            s.status().expect("status read");
                        }
                    }
                })
            };
            let store = Store::open(&path).unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            for i in 0..20 {
                store.set("k", &i.to_string()).expect("write while polled");
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            poller.join().unwrap();
            let mode: String = store
                .db()
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }
}
