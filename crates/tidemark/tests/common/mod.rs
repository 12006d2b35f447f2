//! Shared test harness: one source/destination MariaDB pair per test binary, and helpers
//! to write task files and run the real `tidemark` binary against them.
//!
//! Tests run in parallel on the shared servers, so each test uses its own database names
//! (prefix them with the test's name).

#![allow(dead_code)]

use mysql::prelude::Queryable;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tidemark_sandbox::{Options, Pair};

pub struct Env {
    pub pair: Pair,
}

/// The shared pair. The source runs in UTC+05:30 and the destination in UTC-08:00, so
/// TIMESTAMP handling is always exercised across time zones.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let pair = Pair::start_with(
            Options {
                time_zone: Some("+05:30".into()),
                ..Options::default()
            },
            Options {
                server_id: 2,
                time_zone: Some("-08:00".into()),
                ..Options::default()
            },
        )
        .expect("start MariaDB servers (is mariadb-server installed?)");
        Env { pair }
    })
}

impl Env {
    pub fn src(&self) -> mysql::Conn {
        self.pair.source.conn().expect("source connection")
    }

    pub fn dst(&self) -> mysql::Conn {
        self.pair
            .destination
            .conn()
            .expect("destination connection")
    }

    /// Runs SQL (several statements allowed) on the source; panics on the first error of
    /// any statement.
    pub fn src_sql(&self, sql: &str) {
        run_all(&mut self.src(), sql).unwrap_or_else(|e| panic!("source SQL failed: {e}\n{sql}"));
    }

    pub fn dst_sql(&self, sql: &str) {
        run_all(&mut self.dst(), sql)
            .unwrap_or_else(|e| panic!("destination SQL failed: {e}\n{sql}"));
    }
}

/// Runs a multi-statement script, surfacing errors of every statement (dropping a result
/// would silently ignore errors after the first statement).
pub fn run_all(c: &mut mysql::Conn, sql: &str) -> mysql::Result<()> {
    let mut result = c.query_iter(sql)?;
    while let Some(set) = result.iter() {
        for row in set {
            row?;
        }
    }
    Ok(())
}

/// A task directory with a task file; removed at drop.
pub struct TaskDir {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    /// Environment variables `tidemark` runs with (e.g. secrets for `${NAME}`).
    pub env: Vec<(String, String)>,
}

impl TaskDir {
    /// Writes a task file whose [source] and [destination] point at the shared pair;
    /// `rest` holds [migration], [[objects]] and anything else.
    pub fn new(rest: &str) -> TaskDir {
        let e = env();
        Self::with_urls(&e.pair.source.url(), &e.pair.destination.url(), rest)
    }

    pub fn with_urls(src: &str, dst: &str, rest: &str) -> TaskDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("task.toml");
        let text = format!("[source]\nurl = \"{src}\"\n[destination]\nurl = \"{dst}\"\n{rest}");
        std::fs::write(&file, text).expect("write task file");
        TaskDir {
            dir,
            file,
            env: Vec::new(),
        }
    }

    pub fn raw(text: &str) -> TaskDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("task.toml");
        std::fs::write(&file, text).expect("write task file");
        TaskDir {
            dir,
            file,
            env: Vec::new(),
        }
    }

    pub fn with_env(mut self, name: &str, value: &str) -> TaskDir {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs `tidemark ARGS... TASKFILE`.
    pub fn tidemark(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        cmd.args(args)
            .arg(&self.file)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.output().expect("run tidemark")
    }

    /// Runs `tidemark run --no-progress` and asserts success.
    pub fn run_ok(&self) -> Output {
        let out = self.tidemark(&["run", "--no-progress"]);
        assert!(out.status.success(), "tidemark run failed:\n{}", text(&out));
        out
    }

    pub fn state_db(&self) -> PathBuf {
        self.dir
            .path()
            .join(".tidemark")
            .join("task")
            .join("state.db")
    }
}

/// stdout + stderr as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `CHECKSUM TABLE` of `db`.`table` on a connection.
pub fn checksum(c: &mut mysql::Conn, db: &str, table: &str) -> Option<u64> {
    let q = format!(
        "CHECKSUM TABLE {}",
        tidemark_core::sql::qualified(db, table)
    );
    let row: Option<(String, Option<u64>)> = c.query_first(q).expect("CHECKSUM TABLE");
    row.and_then(|r| r.1)
}

/// Asserts that source `sdb.stable` and destination `ddb.dtable` have equal checksums
/// (and that the table is not empty unless `allow_empty`).
pub fn assert_same(sdb: &str, stable: &str, ddb: &str, dtable: &str) {
    let e = env();
    let a = checksum(&mut e.src(), sdb, stable);
    let b = checksum(&mut e.dst(), ddb, dtable);
    assert!(a.is_some(), "source table {sdb}.{stable} missing");
    assert_eq!(
        a, b,
        "checksum of {sdb}.{stable} (source) vs {ddb}.{dtable} (destination)"
    );
}

/// Runs a script of several statements, panicking on the first statement that fails.
pub fn script(c: &mut mysql::Conn, sql: &str) {
    run_all(c, sql).unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
}

/// Runs a script on the shared source.
pub fn src_sql(sql: &str) {
    env().src_sql(sql);
}

/// Runs a script on the shared destination.
pub fn dst_sql(sql: &str) {
    env().dst_sql(sql);
}

/// Every row of a query, as driver values.
pub fn rows(c: &mut mysql::Conn, q: &str) -> Vec<Vec<mysql::Value>> {
    let rs: Vec<mysql::Row> = c.query(q).unwrap_or_else(|e| panic!("{e}\n{q}"));
    rs.into_iter().map(|r| r.unwrap()).collect()
}

/// A one-column query as strings.
pub fn strings(c: &mut mysql::Conn, q: &str) -> Vec<String> {
    c.query(q).unwrap_or_else(|e| panic!("{e}\n{q}"))
}

/// Starts `tidemark run --no-progress EXTRA... TASKFILE` in the background.
pub fn spawn(t: &TaskDir, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress"])
        .args(extra)
        .arg(&t.file)
        .env_remove("RUST_LOG")
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark")
}

/// Stops a running task with SIGTERM and returns its output; asserts a clean exit.
pub fn stop(child: Child) -> String {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait for tidemark");
    let log = text(&out);
    assert!(
        out.status.success(),
        "tidemark did not stop cleanly:\n{log}"
    );
    log
}

/// Waits until the task is applying binlog changes.
pub fn wait_incremental(t: &TaskDir, child: &mut Child) {
    wait_incremental_within(t, child, Duration::from_secs(90))
}

/// As [`wait_incremental`], with another limit (a long full copy).
pub fn wait_incremental_within(t: &TaskDir, child: &mut Child, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().expect("try_wait").is_some() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the task ended before the incremental phase:\n{err}");
        }
        let out = t.tidemark(&["status", "--json"]);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            // This run's status, not one an earlier (killed) run left behind.
            if v["status"] == "incremental" && v["status_pid"] == child.id() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the task never reached the incremental phase within {limit:?}");
}

/// The JSON report of `tidemark verify` for one destination table.
pub fn verified<'a>(report: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["target"] == target))
        .unwrap_or_else(|| panic!("no {target} in {report}"))
}

/// The keys of a verify report's list, each as its literals joined by commas.
pub fn keys(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|d| {
                    d["key"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}
