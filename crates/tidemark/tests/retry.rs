//! Transient failures during the full copy: a lock wait timeout and killed connections
//! on both ends are retried inside the `[advanced]` windows, and the copy still ends
//! identical to the source.
//!
//! This binary sets the destination's `innodb_lock_wait_timeout` to 1 s globally, so its
//! tests live apart from the others.

mod common;

use common::{assert_same, env, script, text, TaskDir};
use mysql::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn lock_wait_timeout_is_retried() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE rt_lock; USE rt_lock; \
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_5000;",
    );
    // The destination already holds row 5 (same as the source's), locked by another
    // transaction for a few seconds: the copy's INSERT IGNORE must wait for it.
    e.dst_sql(
        "SET GLOBAL innodb_lock_wait_timeout = 1; CREATE DATABASE rt_lock; \
         CREATE TABLE rt_lock.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO rt_lock.t VALUES (5, 'v5');",
    );
    let mut locker = e.dst();
    script(
        &mut locker,
        "START TRANSACTION; SELECT * FROM rt_lock.t WHERE id = 5 FOR UPDATE;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"full\"]\non_conflicting_tables = \"ignore\"\n\
         [advanced]\nretry_other_minutes = 1\n\
         [[objects]]\ndatabase = \"rt_lock\"\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress"])
        .arg(&t.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark");
    std::thread::sleep(Duration::from_secs(4));
    locker.query_drop("COMMIT").expect("release the lock");
    let out = child.wait_with_output().expect("wait for tidemark");
    let log = text(&out);
    assert!(out.status.success(), "tidemark failed:\n{log}");
    assert!(
        log.contains("rolled back, copying it again") && log.contains("1205"),
        "the lock wait timeout should have been retried:\n{log}"
    );
    assert_same("rt_lock", "t", "rt_lock", "t");
}

/// Kills every connection of `user` on a server.
fn kill_all(c: &mut mysql::Conn, user: &str) -> usize {
    let ids: Vec<u64> = c
        .exec(
            "SELECT id FROM information_schema.processlist WHERE user = ?",
            (user,),
        )
        .expect("processlist");
    for id in &ids {
        let _ = c.query_drop(format!("KILL CONNECTION {id}"));
    }
    ids.len()
}

#[test]
fn killed_connections_are_reopened() {
    let e = env();
    let user = "rt_kill";
    for side in [e.src(), e.dst()] {
        let mut c = side;
        script(
            &mut c,
            "CREATE USER rt_kill@'%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO rt_kill@'%';",
        );
    }
    e.src_sql(
        "CREATE DATABASE rt_kill; USE rt_kill; \
         CREATE TABLE t (id INT PRIMARY KEY, k INT, c CHAR(60), KEY (k)); \
         INSERT INTO t SELECT seq, seq % 101, REPEAT('x', 60) FROM seq_1_to_30000;",
    );
    let t = TaskDir::with_urls(
        &e.pair.source.url_for(user, "pw"),
        &e.pair.destination.url_for(user, "pw"),
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 2000\nthreads = 2\nrows_per_second = 6000\n\
         [[objects]]\ndatabase = \"rt_kill\"\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress"])
        .arg(&t.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark");
    // Kill both ends' connections twice while the copy runs (about 5 s at 6000 rows/s).
    let (mut src, mut dst) = (e.src(), e.dst());
    let started = Instant::now();
    let mut killed = 0;
    for wait in [1500, 3000] {
        while started.elapsed() < Duration::from_millis(wait) {
            std::thread::sleep(Duration::from_millis(50));
        }
        killed += kill_all(&mut src, user) + kill_all(&mut dst, user);
    }
    assert!(killed > 0, "no tidemark connection was found to kill");
    let out = child.wait_with_output().expect("wait for tidemark");
    let log = text(&out);
    assert!(out.status.success(), "tidemark failed:\n{log}");
    assert_same("rt_kill", "t", "rt_kill", "t");
}
