//! MariaDB → Lindorm end to end, against the Lindorm stand-in of `tidemark-sandbox`
//! (not the engine: see docs/standins.md): full + incremental with `create_tables`
//! under concurrent writes including key changes and deletes, compared column by
//! column; precheck failures with nothing written.

mod common;

use common::{env, spawn, stop, text, wait_incremental, TaskDir};
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

fn same(db: &str) -> bool {
    let q = format!("SELECT {COLS} FROM `{db}`.`t` ORDER BY id");
    let a = dump(&mut env().src(), &q);
    let b = dump(&mut lconn(), &q);
    a == b
}

#[test]
fn full_and_incremental_with_created_tables_under_concurrent_writes() {
    let db = "lin_live";
    let mut rows = String::new();
    for i in 1..=3000 {
        rows.push_str(if i == 1 {
            "INSERT INTO t VALUES "
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
            "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, name VARCHAR(40), d DECIMAL(12,2), f DOUBLE, dt DATETIME(3), e ENUM('x','y'), b VARBINARY(8), y YEAR); {rows};"
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
                    if i % 10 == 0 {
                        c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = {}", id + 1)).unwrap();
                    }
                    if i % 15 == 0 {
                        // A key change: the old key goes, the new one comes.
                        c.query_drop(format!("UPDATE `{db}`.t SET id = {} WHERE id = {}", 100_000 + w * 1000 + i, id + 2)).unwrap();
                    }
                    c.query_drop(format!("INSERT INTO `{db}`.t VALUES ({}, 1, NULL, NULL, 2.5e10, NULL, NULL, NULL, NULL)", 200_000 + w * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
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
    let log = stop(child);
    assert!(!log.contains("ERROR"), "{log}");
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
         CREATE TABLE bigkey (a VARCHAR(600), b INT, PRIMARY KEY (a));",
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
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    let dbs: Vec<String> = lconn().query("SHOW DATABASES").unwrap();
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
