//! MariaDB → AnalyticDB for MySQL 3.0 (`type = "adb-mysql"`), against the ADB stand-in
//! of `tidemark-sandbox` (not the engine: see docs/standins.md): schema in ADB's dialect
//! (fact, dimension and partitioned tables), full copy and incremental under concurrent
//! writes with primary-key updates and deletes, a SIGKILL mid-stream, ADD COLUMN applied
//! and other DDL skipped and counted; rows compared column by column under the
//! documented type mapping; bad input refused by the precheck before anything is written.

mod common;

use common::{env, keys, spawn, stop, text, verified, wait_incremental, TaskDir};
use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tidemark_sandbox::standin::adb::{AdbStandIn, Options};

fn adb() -> &'static AdbStandIn {
    static ADB: OnceLock<AdbStandIn> = OnceLock::new();
    ADB.get_or_init(|| AdbStandIn::start(&Options::default()).expect("start the ADB stand-in"))
}

fn adb_conn() -> mysql::Conn {
    mysql::Conn::new(mysql::Opts::from_url(&adb().url()).expect("url")).expect("ADB stand-in")
}

/// A task file from the shared source to the stand-in.
fn task(destination: &str, rest: &str) -> TaskDir {
    TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"adb-mysql\"\nurl = \"{}\"\n{destination}\n{rest}",
        env().pair.source.url(),
        adb().url()
    ))
}

/// A query's rows as text (NULL as `None`), sorted.
fn text_rows(c: &mut mysql::Conn, q: &str) -> Vec<Vec<Option<String>>> {
    let rs: Vec<mysql::Row> = c.query(q).unwrap_or_else(|e| panic!("{e}\n{q}"));
    let mut out: Vec<Vec<Option<String>>> = rs
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    mysql::Value::Int(i) => Some(i.to_string()),
                    mysql::Value::UInt(u) => Some(u.to_string()),
                    other => Some(format!("{other:?}")),
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// Per table: the source's values as ADB holds them (the documented mapping), and the
/// stand-in's columns, both as text.
const FACTS_SRC: &str = "SELECT CAST(id AS CHAR), CAST(tiny AS CHAR), CAST(med AS CHAR), CAST(big AS CHAR), \
     CAST(b + 0 AS CHAR), CAST(y AS CHAR), CAST(e AS CHAR), CAST(s AS CHAR), name, body, HEX(bin), \
     IF(YEAR(d) = 0 OR MONTH(d) = 0 OR DAY(d) = 0, NULL, CAST(d AS CHAR)), LEFT(CAST(dt AS CHAR), 23), \
     TIME_FORMAT(t, '%H:%i:%s'), CAST(amount AS CHAR), CAST(js AS CHAR), CAST(UNIX_TIMESTAMP(ts) AS CHAR) FROM adb_live.facts";
const FACTS_DST: &str =
    "SELECT CAST(id AS CHAR), CAST(tiny AS CHAR), CAST(med AS CHAR), CAST(big AS CHAR), \
     b, CAST(y AS CHAR), e, s, name, body, HEX(bin), CAST(d AS CHAR), CAST(dt AS CHAR), \
     TIME_FORMAT(t, '%H:%i:%s'), CAST(amount AS CHAR), CAST(js AS CHAR), CAST(UNIX_TIMESTAMP(ts) AS CHAR) FROM adb_live.facts";

fn facts_src(extra: bool) -> String {
    if extra {
        FACTS_SRC.replace(" FROM ", ", CAST(extra AS CHAR) FROM ")
    } else {
        FACTS_SRC.to_string()
    }
}

fn facts_dst(extra: bool) -> String {
    if extra {
        FACTS_DST.replace(" FROM ", ", CAST(extra AS CHAR) FROM ")
    } else {
        FACTS_DST.to_string()
    }
}

const DIMS: &str = "SELECT code, label FROM adb_live.dims";
const EVENTS: &str =
    "SELECT CAST(id AS CHAR), CAST(day AS CHAR), CAST(v AS CHAR) FROM adb_live.events";

/// The three tables equal under the mapping, or the first difference.
fn compare(extra: bool) -> Result<(), String> {
    let (mut src, mut dst) = (env().src(), adb_conn());
    for (name, s, d) in [
        ("facts", facts_src(extra), facts_dst(extra)),
        ("dims", DIMS.to_string(), DIMS.to_string()),
        ("events", EVENTS.to_string(), EVENTS.to_string()),
    ] {
        let (a, b) = (text_rows(&mut src, &s), text_rows(&mut dst, &d));
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("source {x:?} vs ADB {y:?}"))
                .unwrap_or_default();
            return Err(format!(
                "{name}: {} source rows, {} on ADB; first difference: {first}",
                a.len(),
                b.len()
            ));
        }
    }
    Ok(())
}

fn converge(extra: bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match compare(extra) {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("ADB never caught up: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

const SEED: &str = "SET SESSION sql_mode = ''; \
    DROP DATABASE IF EXISTS adb_live; CREATE DATABASE adb_live; USE adb_live; \
    CREATE TABLE facts (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, tiny TINYINT UNSIGNED, \
      med MEDIUMINT, big BIGINT UNSIGNED, b BIT(5), y YEAR, e ENUM('a','b','it''s'), s SET('x','y','z'), \
      name VARCHAR(40) NOT NULL, body TEXT, bin BLOB, d DATE, dt DATETIME(6), t TIME, amount DECIMAL(12,3), \
      js JSON, ts TIMESTAMP(3) NULL) CHARSET utf8mb4; \
    CREATE TABLE dims (code VARCHAR(10) PRIMARY KEY, label VARCHAR(40)) CHARSET utf8mb4; \
    CREATE TABLE events (id INT PRIMARY KEY, day DATE NOT NULL, v INT) CHARSET utf8mb4; \
    INSERT INTO facts (tiny, med, big, b, y, e, s, name, body, bin, d, dt, t, amount, js, ts) \
      SELECT seq % 256, CAST(seq AS SIGNED) * 7 - 8000000, 18446744073709551615 - seq, seq % 32, 1901 + seq % 254, \
        1 + seq % 3, seq % 8, CONCAT('name ', seq), REPEAT('body ', seq % 20), UNHEX(HEX(seq)), \
        IF(seq % 97 = 0, '0000-00-00', '2024-01-01' + INTERVAL seq % 400 DAY), \
        '2024-03-04 05:06:07.123456' + INTERVAL seq SECOND, SEC_TO_TIME(seq % 86400), seq / 8, \
        IF(seq % 5 = 0, NULL, CONCAT('{\"n\": ', seq, '}')), \
        '2024-05-06 07:08:09.123' + INTERVAL seq MINUTE FROM seq_1_to_3000; \
    INSERT INTO facts (id, tiny, big, name, e, s) VALUES (4000000000, 255, 18446744073709551615, 'max', 0, 7); \
    INSERT INTO dims SELECT CONCAT('c', seq), CONCAT('label ', seq) FROM seq_1_to_50; \
    INSERT INTO events SELECT seq, '2024-06-01' + INTERVAL seq % 60 DAY, seq FROM seq_1_to_500;";

const TABLES: &str = "[[destination.tables]]\ndatabase = \"adb_live\"\ntable = \"dims\"\ntype = \"dimension\"\n\
    [[destination.tables]]\ndatabase = \"adb_live\"\ntable = \"events\"\nprimary_key = [\"id\", \"day\"]\n\
    distribution_key = [\"id\"]\npartition_key = \"day\"\npartition_rule = \"%Y%m%d\"\nlifecycle = 30\n";

/// Random row changes on the three tables until told to stop: inserts, updates, updates
/// of the primary key (and of the partition column), deletes.
fn writer(stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = env().src();
        c.query_drop("SET SESSION sql_mode = ''").unwrap();
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut new_id = 10_000_000u64;
        while !stop.load(Ordering::Relaxed) {
            let r = next();
            let id = 1 + next() % 3000;
            let sql = match r % 10 {
                0 | 1 => {
                    new_id += 1;
                    format!(
                        "INSERT INTO adb_live.facts (id, tiny, big, b, e, s, name, dt, t, d) VALUES ({new_id}, {}, {}, {}, {}, {}, 'new {new_id}', '2025-01-01 00:00:00.987654', '23:59:59', IF({new_id} % 3 = 0, '0000-00-00', '2025-02-03'))",
                        r % 256, u64::MAX - r, r % 32, r % 4, r % 8
                    )
                }
                2 => format!(
                    "UPDATE adb_live.facts SET name = CONCAT(name, '+'), tiny = {} WHERE id = {id}",
                    r % 256
                ),
                3 => {
                    new_id += 1;
                    format!("UPDATE adb_live.facts SET id = {new_id} WHERE id = {id}")
                }
                4 => format!("DELETE FROM adb_live.facts WHERE id = {id}"),
                5 => format!(
                    "UPDATE adb_live.events SET v = v + 1 WHERE id = {}",
                    1 + r % 500
                ),
                6 => format!(
                    "UPDATE adb_live.events SET day = day + INTERVAL 1 DAY WHERE id = {}",
                    1 + r % 500
                ),
                7 => format!("DELETE FROM adb_live.events WHERE id = {}", 1 + r % 500),
                8 => format!(
                    "REPLACE INTO adb_live.dims VALUES ('c{}', 'relabel {r}')",
                    r % 80
                ),
                _ => format!("DELETE FROM adb_live.dims WHERE code = 'c{}'", r % 80),
            };
            c.query_drop(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
            done.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn wait_ops(done: &AtomicU64, n: u64) {
    let target = done.load(Ordering::Relaxed) + n;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the writer stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mysql_to_adb_schema_full_incremental_with_a_kill_mid_stream() {
    env().src_sql(SEED);
    let t = task(
        TABLES,
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[full]\nchunk_rows = 1500\n[[objects]]\ndatabase = \"adb_live\"\n",
    );
    let pre = t.tidemark(&["precheck"]);
    let pre_text = text(&pre);
    assert!(pre.status.success(), "{pre_text}");
    // A warning per column whose values change.
    for col in ["facts.b", "facts.e", "facts.s", "facts.d", "facts.dt"] {
        assert!(
            pre_text.contains(col),
            "no mapping warning for {col}:\n{pre_text}"
        );
    }
    assert!(pre_text.contains("not migrated"), "{pre_text}");

    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    // ADB's DDL: types mapped, dimension broadcast, partition with lifecycle.
    let mut a = adb_conn();
    let show = |a: &mut mysql::Conn, table: &str| -> String {
        let r: Option<(String, String)> = a
            .query_first(format!("SHOW CREATE TABLE adb_live.{table}"))
            .expect("SHOW CREATE TABLE");
        r.map(|r| r.1.to_ascii_lowercase()).unwrap_or_default()
    };
    let facts = show(&mut a, "facts");
    for want in [
        "`id` bigint",
        "`tiny` smallint",
        "`med` int",
        "`big` decimal(20,0)",
        "`b` varchar",
        "`y` smallint",
        "`e` varchar",
        "`bin` binary",
        "hash(`id`)",
    ] {
        assert!(facts.contains(want), "{want} not in:\n{facts}");
    }
    assert!(show(&mut a, "dims").contains("broadcast"));
    let events = show(&mut a, "events");
    assert!(
        events.contains("partition by value(date_format(") && events.contains("lifecycle 30"),
        "{events}"
    );
    converge(false);
    // The mapping's values, spelled out once.
    let r: Option<(String, String, String, String, Option<String>)> = a
        .query_first(
            "SELECT CAST(big AS CHAR), e, s, b, CAST(d AS CHAR) FROM adb_live.facts WHERE id = 97",
        )
        .expect("row 97");
    assert_eq!(
        r,
        Some((
            "18446744073709551518".into(),
            "b".into(),
            "x".into(),
            "1".into(),
            None
        ))
    );
    let r: Option<(String, String, String)> = a
        .query_first("SELECT CAST(id AS CHAR), e, s FROM adb_live.facts WHERE id = 4000000000")
        .expect("max row");
    assert_eq!(r, Some(("4000000000".into(), "".into(), "x,y,z".into())));

    let (halt, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let w = writer(halt.clone(), done.clone());
    wait_ops(&done, 300);
    // SIGKILL mid-stream: no chance to clean up; the next run resumes from its checkpoint.
    let _ = child.kill();
    let _ = child.wait();
    wait_ops(&done, 200);
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    wait_ops(&done, 200);
    // ADD COLUMN reaches ADB (type mapped, existing rows get the default); other DDL is
    // skipped and counted.
    env().src_sql(
        "ALTER TABLE adb_live.facts ADD COLUMN extra INT UNSIGNED NOT NULL DEFAULT 3; \
         ALTER TABLE adb_live.facts ADD INDEX by_name (name); \
         ALTER TABLE adb_live.dims DROP COLUMN label, ADD COLUMN label VARCHAR(60) DEFAULT 'none';",
    );
    wait_ops(&done, 200);
    // A table created mid-stream is created on ADB from the source's definition.
    env().src_sql(
        "CREATE TABLE adb_live.late (id INT PRIMARY KEY, v TINYINT UNSIGNED, e ENUM('p','q')); \
         INSERT INTO adb_live.late VALUES (1, 200, 'q'), (2, 7, 'p'), (3, 0, NULL); \
         UPDATE adb_live.late SET v = 255, id = 4 WHERE id = 2; DELETE FROM adb_live.late WHERE id = 3; \
         UPDATE adb_live.facts SET extra = id % 1000 WHERE id % 7 = 0;",
    );
    wait_ops(&done, 100);
    halt.store(true, Ordering::Relaxed);
    w.join().expect("writer");
    converge(true);
    let late = "SELECT CAST(id AS CHAR), CAST(v AS CHAR), CAST(e AS CHAR) FROM adb_live.late";
    let deadline = Instant::now() + Duration::from_secs(60);
    while text_rows(&mut adb_conn(), late) != text_rows(&mut env().src(), late) {
        assert!(Instant::now() < deadline, "adb_live.late never matched");
        std::thread::sleep(Duration::from_millis(300));
    }
    let status: serde_json::Value =
        serde_json::from_slice(&t.tidemark(&["status", "--json"]).stdout).unwrap_or_default();
    assert_eq!(status["incremental"]["ddl_rejected"], 1, "{status}");
    let log = stop(child);
    assert!(log.contains("skipped"), "{log}");
    assert!(show(&mut a, "facts").contains("`extra` bigint"));
}

#[test]
fn bad_input_fails_before_anything_is_written() {
    env().src_sql(
        "DROP DATABASE IF EXISTS adb_bad; CREATE DATABASE adb_bad; USE adb_bad; \
         CREATE TABLE nokey (a INT, b VARCHAR(10)); \
         CREATE TABLE shapes (id INT PRIMARY KEY, g POLYGON, wide DECIMAL(50,2)); \
         CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, day DATE); \
         INSERT INTO orders VALUES (1, 2, '2024-01-01');",
    );
    let none_written = || {
        let dbs: Vec<String> = adb_conn().query("SHOW DATABASES").expect("SHOW DATABASES");
        assert!(!dbs.iter().any(|d| d == "adb_bad"), "{dbs:?}");
    };
    let objects =
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"adb_bad\"\n";
    // The primary key named in the task file omits the distribution key: the task file
    // itself is refused.
    let t = task(
        "[[destination.tables]]\ndatabase = \"adb_bad\"\ntable = \"orders\"\nprimary_key = [\"id\"]\ndistribution_key = [\"user_id\"]\n",
        objects,
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("must contain the distribution key column `user_id`"),
        "{log}"
    );
    none_written();
    // The default primary key (the source's) omits the distribution or partition key, a
    // table without a primary key, types ADB cannot hold: precheck failures.
    let t = task(
        "[[destination.tables]]\ndatabase = \"adb_bad\"\ntable = \"orders\"\ndistribution_key = [\"user_id\"]\npartition_key = \"day\"\nlifecycle = 7\n",
        objects,
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    for want in [
        "adb_bad.nokey: the table has no primary key",
        "__adb_auto_id__",
        "must contain the distribution key column `user_id`",
        "must contain the partition key `day`",
        "column `g`",
        "column `wide`",
    ] {
        assert!(log.contains(want), "{want} not in:\n{log}");
    }
    none_written();
}

#[test]
fn statements_stay_within_adbs_16_mb_even_when_batches_may_be_larger() {
    env().src_sql(
        "DROP DATABASE IF EXISTS adb_big; CREATE DATABASE adb_big; USE adb_big; \
         CREATE TABLE adb_big.blobs (id INT PRIMARY KEY, payload LONGTEXT) CHARSET utf8mb4; \
         INSERT INTO adb_big.blobs SELECT seq, REPEAT(CHAR(65 + seq % 26), 300000) FROM seq_1_to_120;",
    );
    // 36 MB of rows, and batches allowed up to 64 MB: the stand-in refuses any statement
    // over 16 MB, as ADB advises.
    let t = task(
        "",
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[full]\nbatch_bytes = 67108864\nbatch_rows = 100000\n[[objects]]\ndatabase = \"adb_big\"\n",
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let q = "SELECT CAST(id AS CHAR), MD5(payload) FROM adb_big.blobs";
    let same = || text_rows(&mut env().src(), q) == text_rows(&mut adb_conn(), q);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !same() {
        assert!(Instant::now() < deadline, "the full copy never matched");
        std::thread::sleep(Duration::from_millis(500));
    }
    // One source transaction of 36 MB of changes.
    env().src_sql("UPDATE adb_big.blobs SET payload = REPEAT('z', 300000 + id);");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !same() {
        assert!(
            Instant::now() < deadline,
            "the big transaction never reached ADB"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    stop(child);
}

/// `tidemark verify` on an ADB destination reads the rows back and compares them under
/// the type mapping: clean after a migration (every mapped type, several chunks, a
/// table whose ADB key extends the source's with its partition column), also when the
/// task verifies by itself after the copy; a changed value, a missing row and an extra
/// row planted on the stand-in are each reported (and a row left under an old partition
/// value); `--emit-sql` writes the fix as REPLACE INTO / DELETE; `--repair` fixes them
/// and verify is clean again.
#[test]
fn verify_finds_planted_differences_and_repair_fixes_them() {
    env().src_sql(
        "SET SESSION sql_mode = ''; \
         DROP DATABASE IF EXISTS adb_verify; CREATE DATABASE adb_verify; USE adb_verify; \
         CREATE TABLE t (id INT UNSIGNED PRIMARY KEY, tiny TINYINT UNSIGNED, big BIGINT UNSIGNED, \
           med MEDIUMINT, b BIT(5), y YEAR, e ENUM('a','b'), s SET('x','y','z'), name VARCHAR(40) NOT NULL, \
           bin VARBINARY(8), d DATE, dt DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(3), f FLOAT, dd DOUBLE, \
           amount DECIMAL(12,3), js JSON) CHARSET utf8mb4; \
         INSERT INTO t SELECT seq, seq % 256, 18446744073709551615 - seq, CAST(seq AS SIGNED) * 7 - 8000000, seq % 32, \
           1901 + seq % 254, 1 + seq % 2, seq % 8, CONCAT('n', seq, ' ✓'), IF(seq % 5 = 0, X'', X'0A0B'), \
           IF(seq % 97 = 0, '0000-00-00', '2024-01-01' + INTERVAL seq % 400 DAY), \
           '2024-03-04 05:06:07.123456' + INTERVAL seq SECOND, '2024-05-06 07:08:09.123' + INTERVAL seq MINUTE, \
           SEC_TO_TIME(seq % 86400) + INTERVAL 0.25 SECOND, seq / 3, seq / 7, seq / 8, \
           IF(seq % 5 = 0, NULL, CONCAT('{\"n\":  ', seq, '}')) FROM seq_1_to_12000; \
         CREATE TABLE events (id INT PRIMARY KEY, day DATE NOT NULL, v INT) CHARSET utf8mb4; \
         INSERT INTO events SELECT seq, '2024-06-01' + INTERVAL seq % 60 DAY, seq FROM seq_1_to_500; \
         ANALYZE TABLE t, events;",
    );
    let t = task(
        "[[destination.tables]]\ndatabase = \"adb_verify\"\ntable = \"events\"\nprimary_key = [\"id\", \"day\"]\n\
         distribution_key = [\"id\"]\npartition_key = \"day\"\npartition_rule = \"%Y%m%d\"\nlifecycle = 90\n",
        "[migration]\ntypes = [\"schema\", \"full\"]\n[verification]\nmode = \"after-full\"\n[[objects]]\ndatabase = \"adb_verify\"\n",
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&t.tidemark(&["status"]));
    assert!(
        shown.contains("verification: equal (2 tables, 12500 rows compared)"),
        "{shown}"
    );
    let out = t.tidemark(&["verify", "--no-progress"]);
    let log = text(&out);
    assert!(
        out.status.success(),
        "not clean after the migration:\n{log}"
    );
    assert!(
        log.contains("adb_verify.t → adb_verify.t: equal, 12000 rows compared"),
        "{log}"
    );

    // Planted on the stand-in: a changed value, a missing row, an extra row, and in the
    // partitioned table a row under another partition value than its source row's.
    let mut a = adb_conn();
    for sql in [
        "UPDATE adb_verify.t SET name = 'planted' WHERE id = 5",
        "DELETE FROM adb_verify.t WHERE id = 7",
        "REPLACE INTO adb_verify.t (id, name) VALUES (999999, 'extra')",
        "REPLACE INTO adb_verify.events (id, day, v) VALUES (3, '2030-01-01', 3)",
    ] {
        a.query_drop(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
    let out = t.tidemark(&["verify", "--json"]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let r = verified(&report, "adb_verify.t");
    assert!(r["chunks"].as_u64() > Some(1), "one chunk only: {r}");
    assert_eq!(keys(&r["missing"]), vec!["7"], "{r}");
    assert_eq!(keys(&r["extra"]), vec!["999999"], "{r}");
    assert_eq!(keys(&r["differing"]), vec!["5"], "{r}");
    assert_eq!(
        r["differing"][0]["columns"],
        serde_json::json!(["name"]),
        "{r}"
    );
    let r = verified(&report, "adb_verify.events");
    assert!(keys(&r["extra"]).contains(&"3".to_string()), "{r}");

    // The fix as a file of ADB statements.
    let file = t.dir.path().join("fix.sql");
    let out = t.tidemark(&["verify", "--emit-sql", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let sql = std::fs::read_to_string(&file).unwrap();
    assert!(sql.contains("REPLACE INTO `adb_verify`.`t`"), "{sql}");
    assert!(
        sql.contains("DELETE FROM `adb_verify`.`t` WHERE `id` = 999999;"),
        "{sql}"
    );

    let out = t.tidemark(&["verify", "--repair", "--no-progress"]);
    let log = text(&out);
    // In the partitioned table: the row under the old partition value deleted, its
    // source row written again.
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
    let q = "SELECT CAST(id AS CHAR), name FROM adb_verify.t WHERE id IN (5, 7, 999999)";
    assert_eq!(
        text_rows(&mut adb_conn(), q),
        vec![
            vec![Some("5".to_string()), Some("n5 ✓".into())],
            vec![Some("7".into()), Some("n7 ✓".into())]
        ]
    );
    let q = "SELECT CAST(id AS CHAR), CAST(day AS CHAR) FROM adb_verify.events WHERE id = 3";
    assert_eq!(
        text_rows(&mut adb_conn(), q),
        vec![vec![Some("3".to_string()), Some("2024-06-04".into())]]
    );
}

/// Two source tables renamed onto one ADB table without `merge = true` would overwrite
/// each other's rows by key: the precheck still refuses it, naming both, before
/// anything is written (merging is only done when asked).
#[test]
fn two_source_tables_onto_one_adb_table_need_merge() {
    env().src_sql(
        "DROP DATABASE IF EXISTS adb_two; CREATE DATABASE adb_two; USE adb_two; \
         CREATE TABLE a1 (id INT PRIMARY KEY, v INT); CREATE TABLE a2 (id INT PRIMARY KEY, v INT); \
         INSERT INTO a1 VALUES (1, 1); INSERT INTO a2 VALUES (1, 2);",
    );
    let t = task(
        "",
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [[objects]]\ndatabase = \"adb_two\"\ntable = \"a1\"\nrename = \"m\"\n\
         [[objects]]\ndatabase = \"adb_two\"\ntable = \"a2\"\nrename = \"m\"\n",
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("adb_two.a1 and adb_two.a2 → adb_two.m"),
        "{log}"
    );
    let dbs: Vec<String> = adb_conn().query("SHOW DATABASES").expect("SHOW DATABASES");
    assert!(!dbs.iter().any(|d| d == "adb_two"), "{dbs:?}");
}

/// Merge tables: three source tables (keys overlapping) renamed onto one ADB table with
/// `merge = true` land in it with `__dts_data_source` naming each row's source and
/// extending the key; full copy, then inserts, updates (of a key two sources share, and
/// of a key) and deletes on each are applied to their own source's rows only; compared
/// row by row, and by `tidemark verify`. Tables whose columns differ are refused.
#[test]
fn merged_tables_full_and_incremental() {
    env().src_sql(
        "DROP DATABASE IF EXISTS adb_merge; CREATE DATABASE adb_merge; USE adb_merge; \
         CREATE TABLE a (id INT PRIMARY KEY, name VARCHAR(20), v INT UNSIGNED, e ENUM('x','y')); \
         CREATE TABLE b LIKE a; CREATE TABLE c LIKE a; \
         CREATE TABLE d (id INT PRIMARY KEY, name VARCHAR(20), other DATE); \
         INSERT INTO a SELECT seq, CONCAT('a', seq), seq, 1 + seq % 2 FROM seq_1_to_200; \
         INSERT INTO b SELECT seq, CONCAT('b', seq), seq * 2, 1 FROM seq_100_to_300; \
         INSERT INTO c SELECT seq, CONCAT('c', seq), NULL, 2 FROM seq_1_to_50;",
    );
    let dest =
        "[[destination.tables]]\ndatabase = \"adb_merge\"\ntable = \"merged\"\nmerge = true\n";
    let objects = |tables: &[&str]| {
        let mut s = "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n".to_string();
        for t in tables {
            s.push_str(&format!(
                "[[objects]]\ndatabase = \"adb_merge\"\ntable = \"{t}\"\nrename = \"merged\"\n"
            ));
        }
        s
    };
    // Columns that differ: refused, naming both tables, before anything is written.
    let bad = task(dest, &objects(&["a", "d"]));
    let out = bad.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains(
            "adb_merge.a and adb_merge.d are merged into adb_merge.merged but their columns differ"
        ),
        "{log}"
    );
    let dbs: Vec<String> = adb_conn().query("SHOW DATABASES").expect("SHOW DATABASES");
    assert!(!dbs.iter().any(|d| d == "adb_merge"), "{dbs:?}");

    let t = task(dest, &objects(&["a", "b", "c"]));
    let pre = t.tidemark(&["precheck"]);
    assert!(pre.status.success(), "{}", text(&pre));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let show: Option<(String, String)> = adb_conn()
        .query_first("SHOW CREATE TABLE adb_merge.merged")
        .expect("SHOW CREATE TABLE");
    let show = show.map(|r| r.1.to_ascii_lowercase()).unwrap_or_default();
    assert!(
        show.contains("`__dts_data_source` varchar not null")
            && show.contains("primary key (`id`,`__dts_data_source`)"),
        "{show}"
    );
    let source = "SELECT 'adb_merge.a', CAST(id AS CHAR), name, CAST(v AS CHAR), CAST(e AS CHAR) FROM adb_merge.a \
        UNION ALL SELECT 'adb_merge.b', CAST(id AS CHAR), name, CAST(v AS CHAR), CAST(e AS CHAR) FROM adb_merge.b \
        UNION ALL SELECT 'adb_merge.c', CAST(id AS CHAR), name, CAST(v AS CHAR), CAST(e AS CHAR) FROM adb_merge.c";
    let merged = "SELECT __dts_data_source, CAST(id AS CHAR), name, CAST(v AS CHAR), e FROM adb_merge.merged";
    let same = || {
        let (a, b) = (
            text_rows(&mut env().src(), source),
            text_rows(&mut adb_conn(), merged),
        );
        (
            a == b,
            format!("{} source rows, {} merged", a.len(), b.len()),
        )
    };
    let converge = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, why) = same();
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: never matched ({why})");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    converge("full copy");
    assert_eq!(
        text_rows(&mut adb_conn(), "SELECT COUNT(*) FROM adb_merge.merged"),
        vec![vec![Some("451".to_string())]]
    );
    // Keys 100..200 are in both a and b: each change reaches its own source's row only.
    env().src_sql(
        "INSERT INTO adb_merge.a VALUES (1000, 'new a', 1, 'y'); \
         INSERT INTO adb_merge.b VALUES (1000, 'new b', 2, 'x'); \
         INSERT INTO adb_merge.c VALUES (150, 'new c', 3, 'x'); \
         UPDATE adb_merge.a SET name = 'a150 changed', v = 7 WHERE id = 150; \
         UPDATE adb_merge.b SET id = 5000 WHERE id = 120; \
         UPDATE adb_merge.c SET e = 'y', v = 9 WHERE id <= 10; \
         DELETE FROM adb_merge.b WHERE id = 150; \
         DELETE FROM adb_merge.c WHERE id BETWEEN 20 AND 29; \
         DELETE FROM adb_merge.a WHERE id = 199;",
    );
    converge("incremental");
    let r = text_rows(
        &mut adb_conn(),
        "SELECT __dts_data_source, name FROM adb_merge.merged WHERE id = 150",
    );
    assert_eq!(
        r,
        vec![
            vec![Some("adb_merge.a".to_string()), Some("a150 changed".into())],
            vec![Some("adb_merge.c".into()), Some("new c".into())]
        ]
    );
    let log = stop(child);
    assert!(!log.contains("ERROR"), "{log}");
    let out = t.tidemark(&["verify", "--no-progress"]);
    assert!(out.status.success(), "verify:\n{}", text(&out));
    // Verify compares each source with its own rows: a row planted under c's name is
    // extra for c only, and `--repair` removes it alone.
    adb_conn()
        .query_drop("REPLACE INTO adb_merge.merged (id, name, __dts_data_source) VALUES (1000, 'planted', 'adb_merge.c')")
        .expect("plant");
    let out = t.tidemark(&["verify", "--json"]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let tables = report["tables"].as_array().cloned().unwrap_or_default();
    let extra: Vec<(String, Vec<String>)> = tables
        .iter()
        .map(|t| {
            (
                t["source"].as_str().unwrap_or("").to_string(),
                keys(&t["extra"]),
            )
        })
        .filter(|(_, k)| !k.is_empty())
        .collect();
    assert_eq!(
        extra,
        vec![("adb_merge.c".to_string(), vec!["1000".to_string()])],
        "{report}"
    );
    let out = t.tidemark(&["verify", "--repair", "--no-progress"]);
    assert!(text(&out).contains("1 rows repaired"), "{}", text(&out));
    assert!(same().0, "{}", same().1);
}
