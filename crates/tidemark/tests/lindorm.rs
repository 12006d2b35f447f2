//! MariaDB → Lindorm end to end, against the Lindorm stand-in of `tidemark-sandbox`
//! (not the engine: see docs/standins.md): full + incremental with `create_tables`
//! under concurrent writes including key changes and deletes, compared column by
//! column; precheck failures with nothing written.

mod common;

use common::{env, keys, spawn, stop, text, verified, wait_incremental, TaskDir};
use mysql::prelude::Queryable;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tidemark_sandbox::standin::lindorm::{LindormStandIn, Options};

fn lindorm() -> &'static LindormStandIn {
    static L: OnceLock<LindormStandIn> = OnceLock::new();
    L.get_or_init(|| {
        LindormStandIn::start(&Options::default()).expect("start the Lindorm stand-in")
    })
}

fn lconn() -> mysql::Conn {
    mysql::Conn::new(mysql::Opts::from_url(&lindorm().url()).expect("url"))
        .expect("connect to the stand-in")
}

fn task(destination: &str, rest: &str) -> TaskDir {
    TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"lindorm\"\nurl = \"{}\"\n{destination}\n{rest}",
        env().pair.source.url(),
        lindorm().url()
    ))
}

fn fresh(db: &str, sql: &str) {
    env().src_sql(&format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; USE `{db}`; {sql}"
    ));
}

/// Every row as text, in key order.
fn dump(c: &mut mysql::Conn, q: &str) -> Vec<Vec<String>> {
    let rows: Vec<mysql::Row> = c.query(q).unwrap_or_else(|e| panic!("{e}\n{q}"));
    rows.into_iter()
        .map(|r| r.unwrap().into_iter().map(|v| v.as_sql(true)).collect())
        .collect()
}

const COLS: &str = "id, v, name, d, f, dt, e, b, y";

/// The source's rows, TIMESTAMPs read in UTC (the mapping's time-zone rule).
fn src_utc() -> mysql::Conn {
    let mut c = env().src();
    c.query_drop("SET time_zone = '+00:00'").unwrap();
    c
}

fn same(db: &str) -> bool {
    let q = format!("SELECT {COLS} FROM `{db}`.`t` ORDER BY id");
    let a = dump(&mut src_utc(), &q);
    let b = dump(&mut lconn(), &q);
    a == b
}

#[test]
fn full_and_incremental_with_created_tables_under_concurrent_writes() {
    let db = "lin_live";
    let mut rows = String::new();
    for i in 1..=3000 {
        rows.push_str(if i == 1 {
            "INSERT INTO t (id, v, name, d, f, dt, e, b, y) VALUES "
        } else {
            ", "
        });
        rows.push_str(&format!(
            "({i}, 0, 'n{i} ✓ ''q''', {i}.25, 1.5, '2024-01-02 10:11:12.345', 'y', X'0A0B', 2001)"
        ));
    }
    fresh(
        db,
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), d DECIMAL(12,2), f DOUBLE, dt DATETIME(3), e ENUM('x','y'), b VARBINARY(8), y YEAR, ts TIMESTAMP(6) NULL); {rows}; UPDATE t SET ts = '2023-05-06 07:08:09.123456' WHERE id % 3 = 0;"
        ),
    );
    let t = task(
        "create_tables = true\nbatch_rows = 700",
        &format!("[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    // Concurrent writers: updates, deletes, inserts and primary-key changes.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = env().src();
                for i in 0..150u32 {
                    let id = 1 + (i * 7 + w * 1000) % 3000;
                    c.query_drop(format!("UPDATE `{db}`.t SET v = v + 1, name = 'u{i}' WHERE id = {id}")).unwrap();
                    if i.is_multiple_of(10) {
                        c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = {}", id + 1)).unwrap();
                    }
                    if i.is_multiple_of(15) {
                        // A key change: the old key goes, the new one comes.
                        c.query_drop(format!("UPDATE `{db}`.t SET id = {} WHERE id = {}", 100_000 + w * 1000 + i, id + 2)).unwrap();
                    }
                    c.query_drop(format!("INSERT INTO `{db}`.t (id, v, name, d, f, dt, e, b, y) VALUES ({}, 1, NULL, NULL, 2.5e10, NULL, NULL, NULL, NULL)", 200_000 + w * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // A table renamed into the selection is created and copied.
    env().src_sql(
        "DROP DATABASE IF EXISTS lin_live_out; CREATE DATABASE lin_live_out; CREATE TABLE lin_live_out.x (k BIGINT PRIMARY KEY, s VARCHAR(10)); INSERT INTO lin_live_out.x VALUES (1, 'a'), (2, 'b');",
    );
    env().src_sql(&format!(
        "RENAME TABLE lin_live_out.x TO `{db}`.y; INSERT INTO `{db}`.y VALUES (3, 'c');"
    ));
    // DDL while streaming: ADD COLUMN with attributes (dropped on Lindorm).
    env().src_sql(&format!("ALTER TABLE `{db}`.t ADD COLUMN extra INT DEFAULT 7; UPDATE `{db}`.t SET extra = 9 WHERE id = 5;"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !same(db) {
        assert!(
            Instant::now() < deadline,
            "Lindorm never caught up with the source"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let q = format!("SELECT id, extra FROM `{db}`.`t` WHERE id = 5");
    let want: Vec<mysql::Row> = env().src().query(&q).unwrap();
    let want: Vec<Vec<String>> = want
        .into_iter()
        .map(|r| r.unwrap().into_iter().map(|v| v.as_sql(true)).collect())
        .collect();
    loop {
        // The column is missing until the ALTER arrives.
        if let Ok(got) = lconn().query::<mysql::Row, _>(&q) {
            let got: Vec<Vec<String>> = got
                .into_iter()
                .map(|r| r.unwrap().into_iter().map(|v| v.as_sql(true)).collect())
                .collect();
            if got == want {
                break;
            }
        }
        if Instant::now() > deadline {
            panic!("the added column never arrived:\n{}", stop(child));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let q = format!("SELECT k, s FROM `{db}`.`y` ORDER BY k");
    let got = lconn().query::<mysql::Row, _>(&q).map(|rs| {
        rs.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| v.as_sql(true))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        got.ok(),
        Some(dump(&mut env().src(), &q)),
        "the renamed-in table"
    );
    // TIMESTAMP as its UTC instant, to the millisecond.
    let q = format!("SELECT id, ts FROM `{db}`.`t` WHERE ts IS NOT NULL ORDER BY id");
    let want = dump(&mut src_utc(), &q.replace("ts FROM", "LEFT(ts, 23) FROM"));
    assert!(!want.is_empty());
    assert_eq!(dump(&mut lconn(), &q), want);
    let log = stop(child);
    // Only the RENAME is reported as not migrated (the table it brought in was copied).
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.len() == 1 && errors[0].contains("skipped: RENAME TABLE"),
        "{log}"
    );
}

#[test]
fn precheck_failures_write_nothing() {
    let db = "lin_bad";
    fresh(
        db,
        "CREATE TABLE nokey (a INT, b INT); INSERT INTO nokey VALUES (1, 2);
         CREATE TABLE keyonly (a INT PRIMARY KEY); INSERT INTO keyonly VALUES (1);
         CREATE TABLE bits (a INT PRIMARY KEY, b BIT(3)); INSERT INTO bits VALUES (1, 1);
         CREATE TABLE wide (a INT PRIMARY KEY, d DECIMAL(40,2));
         CREATE TABLE bigkey (a VARCHAR(600), b INT, PRIMARY KEY (a));
         CREATE TABLE sjis (a INT PRIMARY KEY, b VARCHAR(5) CHARACTER SET sjis);
         CREATE TABLE sixkey (a INT, b INT, c INT, d INT, e INT, f INT, g INT, PRIMARY KEY (a, b, c, d, e, f));
         CREATE TABLE frac (a INT PRIMARY KEY, t DATETIME(6), b BLOB);",
    );
    let t = task(
        "create_tables = true",
        &format!("[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    for needle in [
        "lin_bad.nokey has no primary key",
        "lin_bad.keyonly has only key columns",
        "lin_bad.bits.b: BIT",
        "lin_bad.wide.d: DECIMAL(40,2)",
        "lin_bad.bigkey: its primary key can take",
        "lin_bad.sjis.b: character set sjis",
        "lin_bad.sixkey: its primary key has 6 columns",
        // Warnings per column, not failures.
        "WARN lindorm-values          lin_bad.frac.t: datetime(6) keeps fractional seconds",
        "WARN lindorm-values          lin_bad.frac.b: an empty VARBINARY value becomes NULL",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    let dbs: Vec<String> = lconn().query("SHOW DATABASES").unwrap();
    // Verify compares nothing here (the tables were never written) and says why for
    // the table Lindorm cannot hold: no primary key is not supported there.
    let out = t.tidemark(&["verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not supported for a Lindorm destination"),
        "{}",
        text(&out)
    );
    assert!(!dbs.iter().any(|d| d == db), "{dbs:?}");

    // A pre-created table whose DECIMAL precision differs; and a missing table.
    let db = "lin_pre";
    fresh(db, "CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL(10,2)); INSERT INTO t VALUES (1, 1.5); CREATE TABLE gone (id INT PRIMARY KEY, v INT);");
    let mut l = lconn();
    l.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .unwrap();
    l.query_drop(format!("CREATE TABLE IF NOT EXISTS `{db}`.`t` (`id` INTEGER NOT NULL, `d` DECIMAL(12,2), PRIMARY KEY(`id`))")).unwrap();
    let t = task(
        "",
        &format!("[migration]\ntypes = [\"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("DECIMAL precision that differs"), "{log}");
    assert!(
        log.contains("lin_pre.gone does not exist on Lindorm"),
        "{log}"
    );
    let n: Vec<u64> = l.query(format!("SELECT COUNT(*) FROM `{db}`.`t`")).unwrap();
    assert_eq!(n, vec![0]);
}

/// SIGKILL of tidemark mid-stream, then a restart of the stand-in mid-stream, while
/// the source keeps changing (updates, deletes, key changes); exact at the end. Other
/// DDL is skipped and counted.
#[test]
fn sigkill_and_a_stand_in_restart_mid_stream_end_exact() {
    let own = LindormStandIn::start(&Options::default()).expect("start a Lindorm stand-in");
    let db = "lin_crash";
    let mut rows = String::from("INSERT INTO t VALUES ");
    for i in 1..=2000 {
        if i > 1 {
            rows.push_str(", ");
        }
        rows.push_str(&format!(
            "({i}, 0, 'r{i}', {i}.5, 0.25, '2024-03-04 05:06:07.890', 'x', X'01', 1999)"
        ));
    }
    fresh(
        db,
        &format!("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), d DECIMAL(12,2), f DOUBLE, dt DATETIME(3), e ENUM('x','y'), b VARBINARY(8), y YEAR); {rows};"),
    );
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"lindorm\"\nurl = \"{}\"\ncreate_tables = true\n[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n",
        env().pair.source.url(),
        own.url()
    ));
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let w = {
        let writing = writing.clone();
        std::thread::spawn(move || {
            let mut c = env().src();
            let mut i = 0u32;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let id = 1 + (i * 13) % 2000;
                c.query_drop(format!(
                    "UPDATE `{db}`.t SET v = v + 1, name = 'c{i}' WHERE id = {id}"
                ))
                .unwrap();
                if i.is_multiple_of(9) {
                    c.query_drop(format!(
                        "DELETE FROM `{db}`.t WHERE id = {}",
                        1 + (i * 17) % 2000
                    ))
                    .unwrap();
                }
                if i.is_multiple_of(11) {
                    c.query_drop(format!(
                        "UPDATE `{db}`.t SET id = {} WHERE id = {}",
                        50_000 + i,
                        1 + (i * 19) % 2000
                    ))
                    .unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL: no chance to checkpoint or clean up.
    child.kill().expect("kill");
    let _ = child.wait();
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    std::thread::sleep(Duration::from_secs(1));
    own.restart(Duration::from_millis(800))
        .expect("restart the stand-in");
    std::thread::sleep(Duration::from_secs(2));
    env().src_sql(&format!("CREATE INDEX iv ON `{db}`.t (v)"));
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    w.join().unwrap();
    let q = format!("SELECT {COLS} FROM `{db}`.`t` ORDER BY id");
    let want = dump(&mut env().src(), &q);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = mysql::Conn::new(mysql::Opts::from_url(&own.url()).unwrap())
            .ok()
            .and_then(|mut c| c.query::<mysql::Row, _>(&q).ok())
            .map(|rs| {
                rs.into_iter()
                    .map(|r| {
                        r.unwrap()
                            .into_iter()
                            .map(|v| v.as_sql(true))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            });
        if got.as_ref() == Some(&want) {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "Lindorm never matched the source after the crash and the restart:\n{}",
                stop(child)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status: serde_json::Value =
        serde_json::from_slice(&t.tidemark(&["status", "--json"]).stdout).unwrap_or_default();
    let log = stop(child);
    assert!(
        log.contains("DDL not migrated to Lindorm") && log.contains("CREATE INDEX"),
        "{log}"
    );
    assert!(
        status["incremental"]["ddl_rejected"].as_u64() >= Some(1),
        "{status}"
    );
    // The restart was seen and ridden out.
    assert!(
        log.contains("sending the share again") || log.contains("reconnecting"),
        "{log}"
    );
}

fn status(t: &TaskDir) -> serde_json::Value {
    serde_json::from_slice(&t.tidemark(&["status", "--json"]).stdout).unwrap_or_default()
}

/// Tables created on Lindorm beforehand (the default); SIGKILL mid-copy, then a resume
/// that ends exact; a source transaction of 100 000 rows and rows near the 2 MB limit
/// written within the request limits.
#[test]
fn precreated_tables_sigkill_mid_copy_big_transactions_and_large_rows() {
    let db = "lin_pre_ok";
    let mut rows = String::from("INSERT INTO t (id, v, name, d, f, dt, e, b, y) VALUES ");
    for i in 1..=6000 {
        if i > 1 {
            rows.push_str(", ");
        }
        rows.push_str(&format!(
            "({i}, 0, 'p{i}', {i}.5, -3.75e-5, '2021-06-07 08:09:10.111', 'y', X'FF', 2020)"
        ));
    }
    fresh(
        db,
        &format!("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), d DECIMAL(12,2), f DOUBLE, dt DATETIME(3), e ENUM('x','y'), b VARBINARY(8), y YEAR, big LONGTEXT); {rows};"),
    );
    let mut l = lconn();
    l.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .unwrap();
    l.query_drop(format!("DROP TABLE IF EXISTS `{db}`.`t`"))
        .unwrap();
    l.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (`id` INTEGER NOT NULL, `v` INTEGER, `name` VARCHAR, `d` DECIMAL(12,2), `f` DOUBLE, `dt` TIMESTAMP, `e` VARCHAR, `b` VARBINARY, `y` SMALLINT, `big` VARCHAR, PRIMARY KEY(`id`))"
    ))
    .unwrap();
    let t = task(
        "batch_rows = 2000",
        &format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[full]\nthreads = 2\nchunk_rows = 1000\nrows_per_second = 1500\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let mut child = spawn(&t, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&t)["status"] != "full" {
        if child.try_wait().expect("try_wait").is_some() {
            panic!(
                "tidemark ended: {}",
                text(&child.wait_with_output().unwrap())
            );
        }
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("kill");
    let _ = child.wait();
    let copied: Vec<u64> = l.query(format!("SELECT COUNT(*) FROM `{db}`.`t`")).unwrap();
    assert!(copied[0] < 6000, "the copy was already done: {copied:?}");
    // Resumed without the throttle's wait mattering for the rest.
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    assert!(same(db), "after the resumed copy");
    // One transaction of 100 000 rows, and rows near the 2 MB row limit.
    let mut c = env().src();
    c.query_drop(format!("USE `{db}`")).unwrap();
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, v, name) SELECT 1000000 + seq, 1, CONCAT('s', seq) FROM seq_1_to_100000"
    ))
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, v, big) VALUES (7000001, 2, REPEAT('a', 2000000)), (7000002, 2, REPEAT('b', 2000000)), (7000003, 2, REPEAT('c', 2000000))"
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let q = format!("SELECT COUNT(*), SUM(LENGTH(big)) FROM `{db}`.`t`");
    loop {
        if same(db) && dump(&mut lconn(), &q) == dump(&mut env().src(), &q) {
            break;
        }
        if Instant::now() > deadline {
            panic!("Lindorm never caught up:\n{}", stop(child));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // A row over the limit fails the task, naming table and key.
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, v, big) VALUES (7000009, 2, REPEAT('z', 2200000))"
    ))
    .unwrap();
    let out = child.wait_with_output().expect("wait");
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("lin_pre_ok.t with key (7000009)") && log.contains("2097152"),
        "{log}"
    );
}

/// `tidemark verify` reads the rows back and compares them under the type mapping:
/// clean after a migration (and `[verification] mode = "after-full"` says so) (every mapped type, a generated column, several chunks, a
/// composite text key whose case-insensitive source order differs from the engine's
/// byte order); a changed value, a missing row and an extra row planted on the
/// stand-in are each reported; `--emit-sql` writes the fix as Lindorm statements;
/// `--repair` fixes them and verify is clean again.
#[test]
fn verify_finds_planted_differences_and_repair_fixes_them() {
    let db = "lin_verify";
    fresh(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, g INT AS (v + 1) VIRTUAL, name VARCHAR(40), d DECIMAL(12,2), f FLOAT, dd DOUBLE, dt DATETIME(6), ts TIMESTAMP(3) NULL, e ENUM('x','y'), s SET('a','b','c'), b VARBINARY(8), y YEAR, u TINYINT UNSIGNED, big BIGINT UNSIGNED, j JSON, tm TIME(3), l1 VARCHAR(10) CHARACTER SET latin1);
         INSERT INTO t (id, v, name, d, f, dd, dt, ts, e, s, b, y, u, big, j, tm, l1) SELECT seq, seq % 7, CONCAT('n', seq, ' ✓'), seq / 4, seq / 3, seq / 7, '2024-01-02 10:11:12.345678', '2023-05-06 07:08:09.123', IF(seq % 2, 'x', 'y'), 'a,c', IF(seq % 5 = 0, X'', X'0A0B'), 2001, 200, 18446744073709551615, '{\"k\": 1}', '-12:34:56.789', 'café' FROM seq_1_to_12000;
         CREATE TABLE k2 (a VARCHAR(20), b INT, c TEXT, PRIMARY KEY (a, b));
         INSERT INTO k2 SELECT CONCAT(IF(seq % 2, 'A', 'a'), seq % 97, IF(seq % 3, 'Q', 'q')), seq, CONCAT('c', seq) FROM seq_1_to_11000;
         ANALYZE TABLE t, k2;",
    );
    let t = task(
        "create_tables = true",
        &format!("[migration]\ntypes = [\"schema\", \"full\"]\n[verification]\nmode = \"after-full\"\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    // The task verified by itself after the copy.
    let shown = text(&t.tidemark(&["status"]));
    assert!(
        shown.contains("verification: equal (2 tables, 23000 rows compared)"),
        "{shown}"
    );
    let out = t.tidemark(&["verify", "--no-progress"]);
    let log = text(&out);
    assert!(
        out.status.success(),
        "not clean after the migration:\n{log}"
    );
    assert!(
        log.contains("lin_verify.t → lin_verify.t: equal, 12000 rows compared"),
        "{log}"
    );
    assert!(
        log.contains("lin_verify.k2 → lin_verify.k2: equal, 11000 rows compared"),
        "{log}"
    );

    // Planted on the stand-in: a changed value, a missing row, an extra row (and in the
    // composite-key table, a changed value and an extra row).
    let mut l = lconn();
    for sql in [
        format!("UPSERT INTO `{db}`.`t` (`id`, `name`) VALUES (5, 'planted')"),
        format!("DELETE FROM `{db}`.`t` WHERE `id` = 7"),
        format!("UPSERT INTO `{db}`.`t` (`id`, `v`) VALUES (999999, 1)"),
        format!("UPSERT INTO `{db}`.`k2` (`a`, `b`, `c`) VALUES ('zz', 9, 'extra')"),
        format!("UPSERT INTO `{db}`.`k2` (`a`, `b`, `c`) VALUES ('A1Q', 1, 'changed')"),
    ] {
        l.query_drop(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
    let out = t.tidemark(&["verify", "--json"]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let r = verified(&report, "lin_verify.t");
    assert!(r["chunks"].as_u64() > Some(1), "one chunk only: {r}");
    assert_eq!(keys(&r["missing"]), vec!["7"], "{r}");
    assert_eq!(keys(&r["extra"]), vec!["999999"], "{r}");
    assert_eq!(keys(&r["differing"]), vec!["5"], "{r}");
    assert_eq!(
        r["differing"][0]["columns"],
        serde_json::json!(["name"]),
        "{r}"
    );
    let r = verified(&report, "lin_verify.k2");
    assert!(r["chunks"].as_u64() > Some(1), "one chunk only: {r}");
    assert_eq!(keys(&r["extra"]), vec!["'zz',9"], "{r}");
    assert_eq!(keys(&r["differing"]), vec!["'A1Q',1"], "{r}");
    assert_eq!(
        r["differing"][0]["columns"],
        serde_json::json!(["c"]),
        "{r}"
    );
    assert_eq!(keys(&r["missing"]), Vec::<String>::new(), "{r}");

    // The fix as a file of Lindorm statements.
    let file = t.dir.path().join("fix.sql");
    let out = t.tidemark(&["verify", "--emit-sql", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.contains("UPSERT INTO `lin_verify`.`t`"), "{sql}");
    assert!(
        sql.contains("DELETE FROM `lin_verify`.`t` WHERE `id` = 999999;"),
        "{sql}"
    );
    assert!(
        sql.contains("DELETE FROM `lin_verify`.`k2` WHERE `a` = 'zz' AND `b` = 9;"),
        "{sql}"
    );
    assert!(
        !sql.contains("START TRANSACTION") && !sql.contains("COMMIT"),
        "{sql}"
    );

    let out = t.tidemark(&["verify", "--repair", "--no-progress"]);
    let log = text(&out);
    assert!(
        log.contains("3 rows repaired") && log.contains("2 rows repaired"),
        "{log}"
    );
    let out = t.tidemark(&["verify", "--no-progress"]);
    assert!(
        out.status.success(),
        "not clean after --repair:\n{}",
        text(&out)
    );
    let q = format!("SELECT id, name FROM `{db}`.`t` WHERE id IN (5, 7, 999999) ORDER BY id");
    assert_eq!(
        dump(&mut lconn(), &q),
        vec![
            vec!["'5'".to_string(), "'n5 ✓'".into()],
            vec!["'7'".into(), "'n7 ✓'".into()]
        ]
    );
}

/// `filter_large_messages = true` (the RocketMQ destination's key): rows over the
/// engine's 2 MB limit are skipped, logged with table and key, and counted in `status`,
/// in the full copy and in the stream; the rows around them arrive.
#[test]
fn rows_over_the_limit_are_skipped_and_counted_with_the_option() {
    let db = "lin_skip";
    fresh(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, big LONGTEXT);
         INSERT INTO t VALUES (1, 'a'), (2, REPEAT('x', 2200000)), (3, 'c');",
    );
    let t = task(
        "create_tables = true\nfilter_large_messages = true",
        &format!("[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "INSERT INTO `{db}`.t VALUES (4, REPEAT('y', 2300000)); INSERT INTO `{db}`.t VALUES (5, 'e');"
    ));
    let q = format!("SELECT id FROM `{db}`.`t` ORDER BY id");
    let deadline = Instant::now() + Duration::from_secs(60);
    while dump(&mut lconn(), &q) != vec![vec!["'1'"], vec!["'3'"], vec!["'5'"]] {
        if Instant::now() > deadline {
            panic!(
                "the rows around the large ones never arrived:\n{}",
                stop(child)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let s = status(&t);
    assert_eq!(s["lindorm"]["skipped_large"].as_u64(), Some(2), "{s}");
    let shown = text(&t.tidemark(&["status"]));
    assert!(
        shown.contains("rows over LindormTable's limits skipped: 2"),
        "{shown}"
    );
    let log = stop(child);
    for key in ["(2)", "(4)"] {
        assert!(
            log.contains(&format!("skipped a row of lin_skip.t with key {key}")),
            "{log}"
        );
    }
}

/// Tables created on Lindorm beforehand (the default), full + incremental while writers
/// update, delete, insert and change primary keys both during the copy and during the
/// stream; at the end every column equals the source's under the mapping (read
/// directly, and by `tidemark verify`).
#[test]
fn precreated_tables_under_concurrent_writes_with_key_changes_and_deletes() {
    let db = "lin_pre_live";
    fresh(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), d DECIMAL(12,2), f DOUBLE, dt DATETIME(3), e ENUM('x','y'), b VARBINARY(8), y YEAR, ts TIMESTAMP(3) NULL);
         INSERT INTO t SELECT seq, 0, CONCAT('p', seq), seq / 8, seq / 3, '2022-02-03 04:05:06.789', IF(seq % 2, 'x', 'y'), X'0102', 1990 + seq % 30, '2021-01-01 00:00:00.5' FROM seq_1_to_8000;",
    );
    let mut l = lconn();
    l.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .unwrap();
    l.query_drop(format!("DROP TABLE IF EXISTS `{db}`.`t`"))
        .unwrap();
    l.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (`id` INTEGER NOT NULL, `v` INTEGER, `name` VARCHAR, `d` DECIMAL(12,2), `f` DOUBLE, `dt` TIMESTAMP, `e` VARCHAR, `b` VARBINARY, `y` SMALLINT, `ts` TIMESTAMP, PRIMARY KEY(`id`))"
    ))
    .unwrap();
    let t = task(
        "",
        &format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[full]\nthreads = 2\nchunk_rows = 1000\nrows_per_second = 4000\n[incremental]\nthreads = 3\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let writing = writing.clone();
            std::thread::spawn(move || {
                let mut c = env().src();
                let mut i = 0u32;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let id = 1 + (i * 31 + w * 4000) % 8000;
                    c.query_drop(format!("UPDATE `{db}`.t SET v = v + 1, name = 'w{w}-{i}', ts = NOW(3) WHERE id = {id}")).unwrap();
                    if i.is_multiple_of(7) {
                        c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = {}", 1 + (id + 3) % 8000)).unwrap();
                    }
                    if i.is_multiple_of(5) {
                        // A key change, and another in the same transaction.
                        let n = 100_000 + w * 100_000 + i;
                        c.query_drop(format!("BEGIN; UPDATE `{db}`.t SET id = {n} WHERE id = {}; UPDATE `{db}`.t SET id = {} WHERE id = {n}; COMMIT", 1 + (id + 5) % 8000, n + 50_000)).unwrap();
                    }
                    c.query_drop(format!("INSERT INTO `{db}`.t (id, v, name, b) VALUES ({}, 1, NULL, X'') ON DUPLICATE KEY UPDATE v = v + 1", 500_000 + w * 100_000 + i)).unwrap();
                    std::thread::sleep(Duration::from_millis(3));
                }
            })
        })
        .collect();
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    std::thread::sleep(Duration::from_secs(2));
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let q = format!("SELECT id, v, name, d, f, dt, e, b, y, ts FROM `{db}`.`t` ORDER BY id");
    // The mapping: an empty VARBINARY is NULL on Lindorm.
    let want = dump(&mut src_utc(), &q.replace(" b,", " NULLIF(b, '') AS b,"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = dump(&mut lconn(), &q);
        if got == want {
            break;
        }
        if Instant::now() > deadline {
            let first = got.iter().zip(&want).find(|(a, b)| a != b);
            panic!(
                "Lindorm never caught up ({} rows, source {}; first difference {first:?}):\n{}",
                got.len(),
                want.len(),
                stop(child)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = stop(child);
    assert!(!log.contains("ERROR"), "{log}");
    let out = t.tidemark(&["verify", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
}
