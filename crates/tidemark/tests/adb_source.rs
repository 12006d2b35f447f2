//! AnalyticDB for MySQL 3.0 as the **source** (`[source] type = "adb-mysql"`), against two
//! ADB stand-ins of `tidemark-sandbox` (not the engine: see docs/standins.md): schema
//! read from ADB's `SHOW CREATE TABLE` (layouts kept: hash, broadcast, partition with
//! lifecycle), full copy by key ranges, incremental from one binary log per table merged
//! into one task, SIGKILL mid-copy and mid-stream, exact at the end; bad input refused by
//! the precheck before anything is written.

mod common;

use common::{spawn, stop, text, wait_incremental_within, TaskDir};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tidemark_sandbox::standin::adb::{AdbStandIn, Options};

/// The source cluster and the destination cluster, one stand-in each.
fn clusters() -> &'static (AdbStandIn, AdbStandIn) {
    static BOTH: OnceLock<(AdbStandIn, AdbStandIn)> = OnceLock::new();
    BOTH.get_or_init(|| {
        let (s, d) = std::thread::scope(|sc| {
            let s = sc.spawn(|| AdbStandIn::start(&Options::default()));
            let d = sc.spawn(|| AdbStandIn::start(&Options::default()));
            (s.join(), d.join())
        });
        (
            s.expect("thread").expect("start the source ADB stand-in"),
            d.expect("thread")
                .expect("start the destination ADB stand-in"),
        )
    })
}

fn conn(a: &AdbStandIn) -> mysql::Conn {
    mysql::Conn::new(mysql::Opts::from_url(&a.url()).expect("url")).expect("ADB stand-in")
}

fn src() -> mysql::Conn {
    conn(&clusters().0)
}

fn dst() -> mysql::Conn {
    conn(&clusters().1)
}

fn run(c: &mut mysql::Conn, sql: &str) {
    for s in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        c.query_drop(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
}

fn task(rest: &str) -> TaskDir {
    TaskDir::raw(&format!(
        "[source]\ntype = \"adb-mysql\"\nurl = \"{}\"\n[destination]\ntype = \"adb-mysql\"\nurl = \"{}\"\n{rest}",
        clusters().0.url(),
        clusters().1.url()
    ))
}

/// A table's rows as text, ordered by its key (`order`).
fn rows(c: &mut mysql::Conn, table: &str, order: &str) -> Vec<Vec<Option<String>>> {
    let q = format!("SELECT * FROM {table} ORDER BY {order}");
    let rs: Vec<mysql::Row> = c.query(&q).unwrap_or_else(|e| panic!("{e}\n{q}"));
    rs.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(format!("{other:?}")),
                })
                .collect()
        })
        .collect()
}

/// The tables of the ADB → ADB test: (name, key order).
const TABLES: [(&str, &str); 5] = [
    ("orders", "id"),
    ("customers", "cid"),
    ("regions", "code"),
    ("events", "day, id"),
    ("clicks", "ts, id"),
];

const SCHEMA: &str = "CREATE DATABASE a2a;
CREATE TABLE a2a.orders (id BIGINT NOT NULL, cid INT NOT NULL, amount DECIMAL(12,2), note VARCHAR, paid BOOLEAN, at DATETIME, PRIMARY KEY (id)) DISTRIBUTED BY HASH(id) BINLOG=true binlog_ttl='1d';
CREATE TABLE a2a.customers (cid INT NOT NULL, name VARCHAR NOT NULL, blob_col BINARY, score DOUBLE, PRIMARY KEY (cid)) DISTRIBUTE BY HASH(cid) BINLOG=true binlog_ttl='2d';
CREATE TABLE a2a.regions (code VARCHAR NOT NULL, label VARCHAR, PRIMARY KEY (code)) DISTRIBUTED BY BROADCAST BINLOG=true binlog_ttl='7d';
CREATE TABLE a2a.events (id BIGINT NOT NULL, day DATE NOT NULL, kind SMALLINT, t TIME, PRIMARY KEY (id, day)) DISTRIBUTED BY HASH(id) PARTITION BY VALUE(DATE_FORMAT(day, '%Y%m%d')) LIFECYCLE 30 BINLOG=true binlog_ttl='1d';
CREATE TABLE a2a.clicks (id BIGINT NOT NULL, ts BIGINT NOT NULL, url VARCHAR, PRIMARY KEY (id, ts)) DISTRIBUTED BY HASH(id) PARTITION BY VALUE(ts) LIFECYCLE 90 BINLOG=true binlog_ttl='1d'";

/// `n` rows of every table, from `from` on, in batches.
fn seed(c: &mut mysql::Conn, from: u64, n: u64) {
    let mut at = from;
    while at < from + n {
        let end = (at + 500).min(from + n);
        let vals = |f: &dyn Fn(u64) -> String| -> String {
            (at..end).map(f).collect::<Vec<_>>().join(", ")
        };
        run(
            c,
            &format!(
                "INSERT INTO a2a.orders VALUES {};\n\
                 INSERT INTO a2a.customers VALUES {};\n\
                 INSERT INTO a2a.regions VALUES {};\n\
                 INSERT INTO a2a.events VALUES {};\n\
                 INSERT INTO a2a.clicks VALUES {}",
                vals(&|i| format!(
                    "({i}, {}, {}.25, 'note {i} ''q''', {}, '2026-0{}-1{} 10:11:12.345')",
                    i % 97,
                    i * 3,
                    i % 2,
                    1 + i % 9,
                    i % 10
                )),
                vals(&|i| format!("({i}, 'name {i}', x'00ff{:04x}', {}.5)", i % 65536, i)),
                vals(&|i| format!("('r{i}', 'region {i}')")),
                vals(&|i| format!(
                    "({i}, '2026-11-{:02}', {}, '0{}:30:00')",
                    1 + i % 28,
                    i % 7,
                    i % 10
                )),
                vals(&|i| format!("({i}, {}, 'https://x/{i}')", 1_760_000_000 + i)),
            ),
        );
        at = end;
    }
}

/// Writes to every table until `halt`: inserts, updates (some of a key column), deletes.
fn writer(halt: Arc<AtomicBool>, done: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = src();
        let mut i: u64 = 1_000_000;
        while !halt.load(Ordering::Relaxed) {
            i += 1;
            let k = i % 3000;
            let sql = match i % 6 {
                0 => format!("INSERT INTO a2a.orders VALUES ({i}, 1, 9.99, 'live', 1, '2026-12-01 00:00:00.5')"),
                1 => format!("UPDATE a2a.orders SET amount = amount + 1, note = 'upd {i}' WHERE id = {k}"),
                2 => format!("UPDATE a2a.customers SET cid = {i} WHERE cid = {k}"),
                3 => format!("DELETE FROM a2a.regions WHERE code = 'r{k}'"),
                4 => format!("REPLACE INTO a2a.events VALUES ({i}, '2026-11-30', 1, '23:59:59')"),
                _ => format!("DELETE FROM a2a.clicks WHERE id = {k}"),
            };
            // A row already moved or deleted makes some statements no-ops; never errors.
            c.query_drop(&sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn wait_ops(done: &AtomicU64, n: u64) {
    let target = done.load(Ordering::Relaxed) + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the writer stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn converged() -> Result<(), String> {
    let (mut s, mut d) = (src(), dst());
    for (t, order) in TABLES {
        let table = format!("a2a.{t}");
        let (a, b) = (rows(&mut s, &table, order), rows(&mut d, &table, order));
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            return Err(format!(
                "{table}: {} rows on the source, {} on the destination; first difference at row {first}: {:?} vs {:?}",
                a.len(),
                b.len(),
                a.get(first),
                b.get(first)
            ));
        }
    }
    Ok(())
}

fn converge_within(limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match converged() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn count_on_destination() -> u64 {
    let mut d = dst();
    TABLES
        .iter()
        .map(|(t, _)| {
            d.query_first::<u64, _>(format!("SELECT COUNT(*) FROM a2a.{t}"))
                .unwrap_or(None)
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn adb_to_adb_many_tables_full_and_incremental_survive_sigkill() {
    let mut s = src();
    run(&mut s, SCHEMA);
    seed(&mut s, 0, 3000);
    // Small chunks, throttled, so the copy is still running when it is killed.
    let t = task(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[full]\nchunk_rows = 1000\nrows_per_second = 5000\n[[objects]]\ndatabase = \"a2a\"\n",
    );
    let pre = t.tidemark(&["precheck"]);
    let pre_text = text(&pre);
    assert!(pre.status.success(), "{pre_text}");
    for item in [
        "adb-version",
        "adb-binlog",
        "adb-binlog-retention",
        "adb-source-keys",
    ] {
        assert!(pre_text.contains(item), "{item} missing:\n{pre_text}");
    }

    let (halt, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let w = writer(halt.clone(), done.clone());
    let mut child = spawn(&t, &[]);
    // SIGKILL mid-copy.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_on_destination() < 2000 {
        assert!(Instant::now() < deadline, "the copy never started");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the task ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        count_on_destination() < 5 * 3000,
        "the copy finished before the kill"
    );
    let _ = child.kill();
    let _ = child.wait();
    wait_ops(&done, 100);

    let mut child = spawn(&t, &[]);
    wait_incremental_within(&t, &mut child, Duration::from_secs(120));
    wait_ops(&done, 300);
    // SIGKILL mid-stream.
    let _ = child.kill();
    let _ = child.wait();
    wait_ops(&done, 300);
    let mut child = spawn(&t, &[]);
    wait_incremental_within(&t, &mut child, Duration::from_secs(120));
    wait_ops(&done, 300);
    halt.store(true, Ordering::Relaxed);
    w.join().expect("writer");
    // ADD COLUMN on the source reaches the destination; its values follow.
    run(
        &mut src(),
        "ALTER TABLE a2a.orders ADD COLUMN extra BIGINT;\nUPDATE a2a.orders SET extra = id * 2 WHERE id < 50",
    );
    if let Err(e) = converge_within(Duration::from_secs(30)) {
        let status = text(&t.tidemark(&["status"]));
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        panic!("never converged: {e}\n{status}\n{}", text(&out));
    }

    // Layouts are the source's: hash, broadcast, partitions with their lifecycle.
    let mut d = dst();
    let show = |d: &mut mysql::Conn, t: &str| -> String {
        let r: Option<(String, String)> = d
            .query_first(format!("SHOW CREATE TABLE a2a.{t}"))
            .expect("SHOW CREATE TABLE");
        r.map(|r| r.1.to_ascii_lowercase()).unwrap_or_default()
    };
    assert!(show(&mut d, "regions").contains("broadcast"));
    let events = show(&mut d, "events");
    assert!(
        events.contains("date_format(`day`, '%y%m%d')") && events.contains("lifecycle 30"),
        "{events}"
    );
    let clicks = show(&mut d, "clicks");
    assert!(
        clicks.contains("partition by value(`ts`) lifecycle 90"),
        "{clicks}"
    );
    let orders = show(&mut d, "orders");
    for want in [
        "`amount` decimal(12,2)",
        "`paid` boolean",
        "`note` varchar",
        "hash(`id`)",
    ] {
        assert!(orders.contains(want), "{want} not in:\n{orders}");
    }
    let log = stop(child);
    assert!(!log.contains("panicked"), "{log}");
    // `tidemark verify` reads both ADB ends (the reference cannot verify at all).
    let out = t.tidemark(&["verify", "--no-progress"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for (table, _) in TABLES {
        assert!(
            log.contains(&format!("a2a.{table} → a2a.{table}: equal")),
            "{log}"
        );
    }
}

#[test]
fn bad_adb_sources_fail_the_precheck_before_anything_is_written() {
    let mut s = src();
    run(
        &mut s,
        "CREATE DATABASE a2bad;
CREATE TABLE a2bad.auto (v VARCHAR, n INT) BINLOG=true;
CREATE TABLE a2bad.nolog (id INT NOT NULL, PRIMARY KEY (id)) DISTRIBUTED BY HASH(id);
CREATE TABLE a2bad.fine (id INT NOT NULL, PRIMARY KEY (id)) DISTRIBUTED BY HASH(id) BINLOG=true binlog_ttl='1h'",
    );
    let t = task(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"a2bad\"\n",
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    for want in [
        "adb-source-keys",
        "a2bad.auto",
        "__adb_auto_id__",
        "adb-binlog",
        "a2bad.nolog",
        "ALTER TABLE `a2bad`.`nolog` BINLOG=true",
        "adb-binlog-retention",
        "a2bad.fine (1h)",
    ] {
        assert!(log.contains(want), "{want} missing:\n{log}");
    }
    // Nothing reached the destination.
    let dbs: Vec<String> = dst().query("SHOW DATABASES").expect("SHOW DATABASES");
    assert!(!dbs.iter().any(|d| d == "a2bad"), "{dbs:?}");

    // Task-file options an ADB source cannot honour are refused when the file is read.
    let t = task(
        "[migration]\ntypes = [\"incremental\"]\nstart_position = \"binlog.000001:4\"\n[[objects]]\ndatabase = \"a2bad\"\n",
    );
    let out = t.tidemark(&["precheck"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("one binlog per table"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_old_engine_cannot_serve_incremental() {
    let old = AdbStandIn::start(&Options {
        adb_version: "3.1.10.2".into(),
        ..Options::default()
    })
    .expect("start an old ADB stand-in");
    let mut c = conn(&old);
    run(
        &mut c,
        "CREATE DATABASE a2old;
CREATE TABLE a2old.t (id INT NOT NULL, PRIMARY KEY (id)) DISTRIBUTED BY HASH(id) BINLOG=true",
    );
    let t = TaskDir::raw(&format!(
        "[source]\ntype = \"adb-mysql\"\nurl = \"{}\"\n[destination]\ntype = \"adb-mysql\"\nurl = \"{}\"\n[migration]\ntypes = [\"full\", \"incremental\"]\n[[objects]]\ndatabase = \"a2old\"\n",
        old.url(),
        clusters().1.url()
    ));
    let out = t.tidemark(&["precheck"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("adb-version") && log.contains("3.1.10.2") && log.contains("3.2.1.0"),
        "{log}"
    );
}
