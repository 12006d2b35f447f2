//! Silent network failures: a TCP proxy (`tidemark_sandbox::proxy`) between Tidemark and
//! one end freezes the path (connections stay open, nothing is answered). Every
//! connection has a timeout (`[advanced] network_timeout_seconds`, 4 s here), so the task
//! notices, says so in its log and in `status` ("retrying"), reconnects, redoes the
//! interrupted chunk or batch, and ends identical to the source; with a `failover`
//! address it moves there. A slow but healthy destination is not cut by the default.

mod common;

use common::{checksum, env, spawn, stop, text, wait_incremental, TaskDir};
use std::process::Child;
use std::time::{Duration, Instant};
use tidemark_sandbox::proxy::Proxy;

const TIMEOUT: Duration = Duration::from_secs(4);

fn advanced() -> String {
    format!(
        "[advanced]\nnetwork_timeout_seconds = {}\nretry_connection_minutes = 10\nretry_other_minutes = 5\n",
        TIMEOUT.as_secs()
    )
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

fn status(t: &TaskDir) -> serde_json::Value {
    let out = t.tidemark(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Chunks committed so far.
fn chunks_done(t: &TaskDir) -> u64 {
    status(t)["tables"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["chunks_done"].as_u64()).sum())
        .unwrap_or(0)
}

fn same(db: &str, table: &str) -> bool {
    let e = env();
    let a = checksum(&mut e.src(), db, table);
    a.is_some() && a == checksum(&mut e.dst(), db, table)
}

fn table(db: &str, rows: u32) {
    env().src_sql(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, k INT, c CHAR(100), KEY (k)); \
         INSERT INTO {db}.t SELECT seq, seq % 97, REPEAT('x', 100) FROM {db}.seq_1_to_{rows};"
    ));
}

/// Freezes `proxy` for twice the timeout while the task runs, checking that `status`
/// reports the retry meanwhile; then lets the path pass again.
fn freeze_and_restore(proxy: &Proxy, t: &TaskDir, child: &mut Child) {
    proxy.freeze();
    let frozen = Instant::now();
    let mut retrying = None;
    while frozen.elapsed() < TIMEOUT * 2 + Duration::from_secs(4) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the task ended while the path was frozen"
        );
        let r = &status(t)["retrying"];
        if retrying.is_none() && r.is_object() {
            retrying = Some((frozen.elapsed(), r.clone()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.pass();
    let (after, r) = retrying.expect("status never said the task was retrying");
    assert!(
        r["since"].as_str().is_some_and(|s| s.ends_with('Z'))
            && r["what"]
                .as_str()
                .is_some_and(|w| w.contains("reconnecting")),
        "{r}"
    );
    assert!(
        after <= TIMEOUT * 2 + Duration::from_secs(3),
        "the retry showed only after {after:?}"
    );
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().expect("wait for tidemark");
    let log = text(&out);
    assert!(out.status.success(), "tidemark failed:\n{log}");
    log
}

/// Which end's path a test freezes.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Source,
    Destination,
}

/// A throttled full copy whose path to `frozen` is frozen after two chunks for twice
/// the timeout, then restored: the copy must say so, redo the chunk and end exact.
/// Returns the task's log.
fn copy_through_a_frozen_path(db: &str, frozen: End) -> String {
    table(db, 40_000);
    let e = env();
    let behind = match frozen {
        End::Source => e.pair.source.port,
        End::Destination => e.pair.destination.port,
    };
    let proxy = Proxy::start(&format!("127.0.0.1:{behind}")).unwrap();
    let through_proxy = format!("mysql://root@127.0.0.1:{}", proxy.port);
    let (source, destination) = match frozen {
        End::Source => (through_proxy, e.pair.destination.url()),
        End::Destination => (e.pair.source.url(), through_proxy),
    };
    let t = TaskDir::with_urls(
        &source,
        &destination,
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 2000\nthreads = 2\nrows_per_second = 5000\n{}\
             [[objects]]\ndatabase = \"{db}\"\n",
            advanced()
        ),
    );
    let mut child = spawn(&t, &[]);
    wait_until("the first chunks", Duration::from_secs(60), || {
        chunks_done(&t) >= 2
    });
    freeze_and_restore(&proxy, &t, &mut child);
    let log = finish(child);
    assert!(same(db, "t"), "checksums differ:\n{log}");
    log
}

#[test]
fn destination_frozen_mid_copy_is_detected_and_resumed() {
    let log = copy_through_a_frozen_path("st_copy", End::Destination);
    assert!(
        log.contains("no answer for 4 s") && log.contains("copying it again"),
        "the timeout was not logged:\n{log}"
    );
}

#[test]
fn source_frozen_mid_copy_is_detected_and_resumed() {
    let log = copy_through_a_frozen_path("st_source", End::Source);
    assert!(
        log.contains("reading chunk") && log.contains("no answer for 4 s"),
        "the timeout was not logged:\n{log}"
    );
}

#[test]
fn destination_frozen_mid_stream_is_detected_and_resumed() {
    let db = "st_stream";
    table(db, 2_000);
    let e = env();
    let proxy = Proxy::start(&format!("127.0.0.1:{}", e.pair.destination.port)).unwrap();
    let t = TaskDir::with_urls(
        &e.pair.source.url(),
        &format!("mysql://root@127.0.0.1:{}", proxy.port),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[incremental]\nbatch_rows = 200\n{}\
             [[objects]]\ndatabase = \"{db}\"\n",
            advanced()
        ),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    // Writes keep coming before, during and after the freeze.
    let writer = std::thread::spawn(move || {
        let mut c = env().src();
        for i in 0..300 {
            common::run_all(
                &mut c,
                &format!(
                    "INSERT INTO {db}.t VALUES ({id}, 1, 'new') ON DUPLICATE KEY UPDATE c = 'again'; \
                     UPDATE {db}.t SET k = k + 1 WHERE id = {upd}; DELETE FROM {db}.t WHERE id = {del};",
                    id = 10_000 + i,
                    upd = 1 + i,
                    del = 1_000 + i
                ),
            )
            .expect("source write");
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    freeze_and_restore(&proxy, &t, &mut child);
    writer.join().expect("writer");
    wait_until(
        "the destination to catch up",
        Duration::from_secs(90),
        || same(db, "t"),
    );
    let log = stop(child);
    assert!(
        log.contains("no answer for 4 s") && log.contains("retrying"),
        "the timeout was not logged:\n{log}"
    );
}

#[test]
fn destination_frozen_for_good_moves_to_the_failover_address() {
    let db = "st_failover";
    table(db, 30_000);
    let e = env();
    let proxy = Proxy::start(&format!("127.0.0.1:{}", e.pair.destination.port)).unwrap();
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\nurl = \"mysql://root@127.0.0.1:{}\"\nfailover = [\"127.0.0.1:{}\"]\n\
         [migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 2000\nthreads = 2\nrows_per_second = 6000\n{}\
         [[objects]]\ndatabase = \"{db}\"\n",
        e.pair.source.url(),
        proxy.port,
        e.pair.destination.port,
        advanced()
    ));
    // The server behind the frozen path still holds the lost session's open transaction
    // (and its row locks) until it notices; the failover address leads to the same
    // server here, so let it end such transactions soon, as a DBA would.
    e.dst_sql("SET GLOBAL idle_transaction_timeout = 10");
    let child = spawn(&t, &[]);
    wait_until("the first chunks", Duration::from_secs(60), || {
        chunks_done(&t) >= 2
    });
    proxy.freeze();
    let log = finish(child);
    assert!(
        log.contains(&format!(
            "127.0.0.1:{} answers: connections go there from now on",
            e.pair.destination.port
        )),
        "the task did not say it moved:\n{log}"
    );
    assert!(same(db, "t"), "checksums differ:\n{log}");
}

/// A 20 s statement on a healthy destination (a trigger that sleeps) is waited for under
/// the default `network_timeout_seconds`, not cut and retried.
#[test]
fn a_slow_healthy_destination_is_not_cut_by_the_default() {
    let db = "st_slow";
    table(db, 3_000);
    let e = env();
    e.dst_sql(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, k INT, c CHAR(100), KEY (k)); \
         CREATE TRIGGER {db}.slow BEFORE INSERT ON {db}.t FOR EACH ROW BEGIN IF NEW.id = 1500 THEN DO SLEEP(20); END IF; END;"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"full\"]\non_conflicting_tables = \"ignore\"\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let started = Instant::now();
    let out = t.run_ok();
    let log = text(&out);
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "the slow statement did not run"
    );
    assert!(
        !log.contains("no answer") && !log.contains("copying it again"),
        "a healthy statement was cut:\n{log}"
    );
    assert!(same(db, "t"), "checksums differ:\n{log}");
}
