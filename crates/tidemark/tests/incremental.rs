//! Incremental migration against live MariaDB servers: full copy + binlog changes under
//! concurrent writes, crash safety mid-stream, DDL, triggers.

mod common;

use common::{checksum, env, spawn, stop, text, wait_incremental, TaskDir};
use mysql::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until every listed table has the same checksum on both sides.
fn wait_equal(pairs: &[(&str, &str, &str, &str)], limit: Duration) -> bool {
    let e = env();
    let started = Instant::now();
    while started.elapsed() < limit {
        let (mut s, mut d) = (e.src(), e.dst());
        if pairs.iter().all(|(sd, st, dd, dt)| {
            checksum(&mut s, sd, st).is_some()
                && checksum(&mut s, sd, st) == checksum(&mut d, dd, dt)
        }) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}

/// Random inserts, updates (including key changes) and deletes, in transactions of
/// 1–5 statements, until `ops` statements ran.
fn write_load(db: &str, ops: usize, seed: u64) {
    let e = env();
    let mut c = e.src();
    c.query_drop(format!("USE {db}")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut done = 0;
    while done < ops {
        c.query_drop("START TRANSACTION").unwrap();
        for _ in 0..rng.gen_range(1..=5) {
            let id: u32 = rng.gen_range(1..=3000);
            let sql = match rng.gen_range(0..10) {
                0..=3 => format!(
                    "INSERT INTO orders (id, customer, total, note) VALUES ({id}, {}, {}.{:02}, 'n{id}') ON DUPLICATE KEY UPDATE total = total + 1",
                    rng.gen_range(1..100),
                    rng.gen_range(0..1000),
                    rng.gen_range(0..100)
                ),
                4..=6 => format!("UPDATE orders SET total = total * 2, note = CONCAT(note, 'u') WHERE id = {id}"),
                7 => format!("UPDATE IGNORE orders SET id = id + 10000 + {} WHERE id = {id}", rng.gen_range(0..1000)),
                8 => format!("DELETE FROM orders WHERE id = {id}"),
                _ => format!(
                    "INSERT INTO order_lines (order_id, line, qty) VALUES ({id}, {}, 1) ON DUPLICATE KEY UPDATE qty = qty + 1",
                    rng.gen_range(1..4)
                ),
            };
            c.query_drop(&sql).unwrap();
            done += 1;
        }
        c.query_drop("COMMIT").unwrap();
        if rng.gen_range(0..20) == 0 {
            c.query_drop("INSERT INTO events (what) VALUES ('tick')")
                .unwrap();
            c.query_drop("DELETE FROM events WHERE what = 'tick' LIMIT 1")
                .unwrap();
        }
    }
}

fn create_shop(db: &str) {
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total DECIMAL(12,2), note VARCHAR(200), KEY (customer));
         CREATE TABLE order_lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line));
         CREATE TABLE events (what VARCHAR(20), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));
         INSERT INTO orders SELECT seq, seq % 97, seq * 1.5, CONCAT('order ', seq) FROM seq_1_to_2000;
         INSERT INTO order_lines SELECT seq, 1, seq % 7 FROM seq_1_to_2000;
         INSERT INTO events (what) VALUES ('a'), ('b');"
    ));
}

#[test]
fn full_then_incremental_under_concurrent_writes() {
    let db = "inc_live";
    create_shop(db);
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [full]\nchunk_rows = 1000\nrows_per_second = 3000\n\
         [[objects]]\ndatabase = \"{db}\"\nrename = \"inc_live_copy\"\n"
    ));
    let writer = std::thread::spawn(move || write_load(db, 3000, 1));
    let child = spawn(&t, &[]);
    writer.join().expect("writer");
    let tables = [
        (db, "orders", "inc_live_copy", "orders"),
        (db, "order_lines", "inc_live_copy", "order_lines"),
        (db, "events", "inc_live_copy", "events"),
    ];
    let equal = wait_equal(&tables, Duration::from_secs(90));
    let log = stop(child);
    assert!(equal, "destination never caught up:\n{log}");
    let out = t.tidemark(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["status"], "stopped", "{status}");
}

#[test]
fn sigkill_mid_stream_resumes_without_loss() {
    let db = "inc_kill";
    create_shop(db);
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [incremental]\nbatch_rows = 50\nthreads = 3\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let writer = std::thread::spawn(move || write_load(db, 4000, 2));
    let mut rng = rand::thread_rng();
    for _ in 0..4 {
        let mut child = spawn(&t, &[]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(1500..3500)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    writer.join().expect("writer");
    let mut child = spawn(&t, &[]);
    // Signals before the task runs would not be a clean stop.
    wait_incremental(&t, &mut child);
    let tables = [
        (db, "orders", db, "orders"),
        (db, "order_lines", db, "order_lines"),
        (db, "events", db, "events"),
    ];
    let equal = wait_equal(&tables, Duration::from_secs(90));
    let log = stop(child);
    assert!(equal, "destination differs after SIGKILLs:\n{log}");
}

#[test]
fn ddl_is_replicated_in_order() {
    let db = "inc_ddl";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10));
         CREATE TABLE gone (id INT PRIMARY KEY);
         INSERT INTO t VALUES (1, 'one'), (2, 'two');"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [[objects]]\ndatabase = \"{db}\"\nrename = \"inc_ddl_copy\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "USE {db};
         INSERT INTO t VALUES (3, 'three');
         ALTER TABLE t ADD COLUMN b INT NOT NULL DEFAULT 7, ADD KEY (b);
         INSERT INTO t VALUES (4, 'four', 44);
         UPDATE t SET b = 8 WHERE id = 1;
         CREATE TABLE fresh (k VARCHAR(10) PRIMARY KEY, v JSON);
         INSERT INTO fresh VALUES ('x', '{{\"a\": 1}}');
         RENAME TABLE fresh TO renamed;
         INSERT INTO renamed VALUES ('y', '[]');
         ALTER TABLE t DROP COLUMN a;
         INSERT INTO t VALUES (5, 55);
         DROP TABLE gone;"
    ));
    let tables = [
        (db, "t", "inc_ddl_copy", "t"),
        (db, "renamed", "inc_ddl_copy", "renamed"),
    ];
    let equal = wait_equal(&tables, Duration::from_secs(60));
    let log = stop(child);
    assert!(equal, "DDL not followed:\n{log}");
    let mut d = env().dst();
    let gone: Option<String> = d
        .query_first("SELECT table_name FROM information_schema.tables WHERE table_schema = 'inc_ddl_copy' AND table_name = 'gone'")
        .unwrap();
    assert_eq!(gone, None, "the dropped table is still on the destination");
    let cols: Vec<String> = d
        .query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'inc_ddl_copy' AND table_name = 't' ORDER BY ordinal_position")
        .unwrap();
    assert_eq!(cols, vec!["id", "b"]);

    // A restart decodes with the definitions saved at its checkpoint.
    env().src_sql(&format!("USE {db}; INSERT INTO t VALUES (6, 66); ALTER TABLE t ADD COLUMN c INT; INSERT INTO t VALUES (7, 77, 777);"));
    let child = spawn(&t, &[]);
    let equal = wait_equal(&tables[..1], Duration::from_secs(60));
    let log = stop(child);
    assert!(equal, "restart after DDL:\n{log}");
}

#[test]
fn destination_triggers_do_not_fire_twice() {
    let db = "inc_trig";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v INT);
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, t_id INT, what VARCHAR(10));
         CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (t_id, what) VALUES (NEW.id, 'ins');
         INSERT INTO t VALUES (1, 1);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "USE {db}; INSERT INTO t VALUES (2, 2), (3, 3); UPDATE t SET v = 9 WHERE id = 1;"
    ));
    let tables = [(db, "t", db, "t"), (db, "audit", db, "audit")];
    let equal = wait_equal(&tables, Duration::from_secs(60));
    let log = stop(child);
    assert!(equal, "audit rows doubled or missing:\n{log}");
    // The trigger still works for the destination's own writers after cut-over.
    let mut d = env().dst();
    d.query_drop(format!("INSERT INTO {db}.t VALUES (100, 1)"))
        .unwrap();
    let n: Option<u64> = d
        .query_first(format!("SELECT COUNT(*) FROM {db}.audit WHERE t_id = 100"))
        .unwrap();
    assert_eq!(n, Some(1));
}

/// gh-ost and pt-online-schema-change build a shadow table, fill it, and swap it in
/// with RENAME. With only the table selected (and renamed), either mode (the shadow's
/// ALTERs applied at the swap, or the shadow copied) leaves the destination table with
/// the new definition and every row, and no tool table behind.
#[test]
fn online_schema_changes_are_followed() {
    online_schema_change("inc_osc", "gh-ost");
}

#[test]
fn online_schema_changes_are_copied() {
    online_schema_change("inc_osc_copy", "copy");
}

/// Without online-DDL handling the swap renames an unfollowed table into the
/// selection: it is copied from the source, so no row is lost.
#[test]
fn tables_renamed_into_the_selection_are_copied() {
    online_schema_change("inc_osc_none", "none");
}

fn online_schema_change(db: &str, mode: &str) {
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, a INT);
         CREATE TABLE unselected (id INT PRIMARY KEY);
         INSERT INTO t SELECT seq, seq FROM seq_1_to_500;"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [advanced]\nonline_ddl = \"{mode}\"\n\
         [[objects]]\ndatabase = \"{db}\"\ntable = \"t\"\nrename = \"t_copy\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "USE {db};
         -- gh-ost
         CREATE TABLE _t_gho LIKE t;
         ALTER TABLE _t_gho ADD COLUMN b INT NOT NULL DEFAULT 0;
         CREATE TABLE _t_ghc (id BIGINT AUTO_INCREMENT PRIMARY KEY, hint VARCHAR(64), value VARCHAR(255));
         INSERT INTO _t_ghc (hint, value) VALUES ('heartbeat', 'now');
         INSERT IGNORE INTO _t_gho (id, a) SELECT id, a FROM t;
         UPDATE t SET a = a + 1000 WHERE id <= 10;
         UPDATE _t_gho SET a = a + 1000 WHERE id <= 10;
         RENAME TABLE t TO _t_del, _t_gho TO t;
         DROP TABLE IF EXISTS _t_del;
         DROP TABLE IF EXISTS _t_ghc;
         INSERT INTO t VALUES (1000, 1, 2);
         -- pt-online-schema-change
         CREATE TABLE _t_new LIKE t;
         ALTER TABLE _t_new ADD COLUMN c VARCHAR(10);
         INSERT LOW_PRIORITY IGNORE INTO _t_new (id, a, b) SELECT id, a, b FROM t;
         RENAME TABLE t TO _t_old, _t_new TO t;
         DROP TABLE IF EXISTS _t_old;
         INSERT INTO t VALUES (2000, 2, 3, 'after');
         INSERT INTO unselected VALUES (1);"
    ));
    let equal = wait_equal(&[(db, "t", db, "t_copy")], Duration::from_secs(60));
    let log = stop(child);
    assert!(equal, "online schema change not followed:\n{log}");
    let mut d = env().dst();
    let tables: Vec<String> = d
        .query(format!("SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' ORDER BY 1"))
        .unwrap();
    if mode == "none" {
        // Without online-DDL handling the tool's renames out of the selection are
        // mirrored on the destination, and what it then drops there is not followed.
        assert!(tables.contains(&"t_copy".to_string()), "{tables:?}");
    } else {
        assert_eq!(
            tables,
            vec!["t_copy"],
            "shadow tables left behind, or an unselected table copied"
        );
    }
    let cols: Vec<String> = d
        .query(format!("SELECT column_name FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = 't_copy' ORDER BY ordinal_position"))
        .unwrap();
    assert_eq!(cols, vec!["id", "a", "b", "c"]);
}

/// An incremental-only task from a recorded position, ended with
/// `--stop-when-caught-up` (the cut-over step).
#[test]
fn incremental_only_from_a_position_until_caught_up() {
    let db = "inc_only";
    let setup = format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE k (a INT, b VARCHAR(10), PRIMARY KEY (a, b), v DOUBLE, u UUID, n INET6);
         CREATE TABLE nokey (x INT, y TEXT);
         INSERT INTO k VALUES (1, 'x', 0.5, UUID(), '::1'), (2, 'y', NULL, NULL, NULL);
         INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (2, NULL);"
    );
    env().src_sql(&setup);
    env().dst_sql(&setup);
    let mut src = env().src();
    let row: Option<(String, u64)> = src
        .query_first("SHOW MASTER STATUS")
        .unwrap()
        .map(|r: mysql::Row| (r.get(0).unwrap(), r.get(1).unwrap()));
    let (file, pos) = row.unwrap();
    env().src_sql(&format!(
        "USE {db};
         INSERT INTO k VALUES (3, 'z', 1e300, '6ccd780c-baba-1026-9564-5b8c656024db', 'fe80::1:2');
         UPDATE k SET u = '12345678-1234-5678-9abc-def012345678', n = '::ffff:10.0.0.1' WHERE a = 1;
         UPDATE k SET b = 'moved' WHERE a = 1;
         DELETE FROM k WHERE a = 2;
         DELETE FROM nokey WHERE x = 1 LIMIT 1;
         UPDATE nokey SET y = 'b' WHERE x = 2;
         INSERT INTO nokey VALUES (3, 'c');"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"incremental\"]\nstart_position = \"{file}:{pos}\"\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let out = t.tidemark(&["run", "--no-progress", "--stop-when-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    // `threads` unset: as many apply connections as the destination has CPUs (MariaDB's
    // thread_pool_size), within 2..=8.
    let cpus: u64 = env()
        .dst()
        .query_first("SELECT @@thread_pool_size")
        .unwrap()
        .unwrap();
    let expected = format!(
        "incremental: {} apply connections (the destination has {cpus} CPUs)",
        cpus.clamp(2, 8)
    );
    assert!(
        text(&out).contains(&expected),
        "expected {expected:?} in:\n{}",
        text(&out)
    );
    for table in ["k", "nokey"] {
        let (mut s, mut d) = (env().src(), env().dst());
        assert_eq!(
            checksum(&mut s, db, table),
            checksum(&mut d, db, table),
            "{table}"
        );
    }
    let out = t.tidemark(&["status"]);
    assert!(
        text(&out).contains("binlog applied up to"),
        "{}",
        text(&out)
    );
}

#[test]
fn incremental_bad_input_is_explained() {
    let db = "inc_bad";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY);"
    ));
    env().dst_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY);"
    ));
    // A start position with a full copy, and a malformed one.
    for (extra, expect) in [
        (
            "types = [\"full\", \"incremental\"]\nstart_position = \"binlog.000001:4\"",
            "applies to incremental-only tasks",
        ),
        (
            "types = [\"incremental\"]\nstart_position = \"binlog.000001\"",
            "expected FILE:POS",
        ),
    ] {
        let t = TaskDir::new(&format!(
            "[migration]\n{extra}\n[[objects]]\ndatabase = \"{db}\"\n"
        ));
        let out = t.tidemark(&["run", "--no-progress"]);
        assert!(!out.status.success());
        assert!(text(&out).contains(expect), "{}", text(&out));
    }
    // A binlog file the source does not have (purged): the task fails and says how to recover.
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"incremental\"]\nstart_position = \"binlog.999999:4\"\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("rerun the task with full migration"),
        "{}",
        text(&out)
    );
    let status = t.tidemark(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["status"], "failed");
}

/// The binlog dump connection killed on the source, and the apply connections on the
/// destination, twice: the task reconnects and nothing is lost.
#[test]
fn lost_connections_are_reopened_mid_stream() {
    let db = "inc_reconnect";
    let e = env();
    for mut c in [e.src(), e.dst()] {
        common::script(
            &mut c,
            "CREATE USER inc_rc@'%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO inc_rc@'%';",
        );
    }
    create_shop(db);
    let t = TaskDir::with_urls(
        &e.pair.source.url_for("inc_rc", "pw"),
        &e.pair.destination.url_for("inc_rc", "pw"),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let writer = std::thread::spawn(move || write_load(db, 2000, 3));
    let (mut s, mut d) = (e.src(), e.dst());
    let mut killed = 0;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        for c in [&mut s, &mut d] {
            let ids: Vec<u64> = c
                .query("SELECT id FROM information_schema.processlist WHERE user = 'inc_rc'")
                .unwrap();
            for id in ids {
                if c.query_drop(format!("KILL CONNECTION {id}")).is_ok() {
                    killed += 1;
                }
            }
        }
    }
    writer.join().expect("writer");
    assert!(killed > 0);
    let tables = [
        (db, "orders", db, "orders"),
        (db, "order_lines", db, "order_lines"),
    ];
    let equal = wait_equal(&tables, Duration::from_secs(90));
    let log = stop(child);
    assert!(equal, "changes lost after reconnecting:\n{log}");
    assert!(
        log.contains("reconnecting") || log.contains("retrying"),
        "{log}"
    );
}

/// Past the hand-off point changes apply exactly: a row the source inserts that the
/// destination already has stops the task and says why. Also: a start by MariaDB GTID.
#[test]
fn exact_mode_reports_divergence_and_gtid_start_works() {
    let db = "inc_exact";
    let setup =
        format!("CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v INT);");
    env().src_sql(&setup);
    env().dst_sql(&setup);
    let mut src = env().src();
    let gtid: Option<String> = src.query_first("SELECT @@gtid_binlog_pos").unwrap();
    let gtid = gtid.unwrap();
    env().src_sql(&format!("USE {db}; INSERT INTO t VALUES (1, 1), (2, 2);"));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"incremental\"]\nstart_gtid = \"{gtid}\"\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let out = t.tidemark(&["run", "--no-progress", "--stop-when-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    let (mut s, mut d) = (env().src(), env().dst());
    assert_eq!(checksum(&mut s, db, "t"), checksum(&mut d, db, "t"));

    // A rotation ends the binlog with non-transaction events (a binlog checkpoint, a
    // GTID list): the task still sees that it has caught up.
    env().src_sql(&format!(
        "INSERT INTO {db}.t VALUES (10, 10); FLUSH BINARY LOGS;"
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress", "--stop-when-caught-up"])
        .arg(&t.file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("--stop-when-caught-up never finished after a binlog rotation");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The destination gets a row of its own; the source then inserts the same key.
    env().dst_sql(&format!("INSERT INTO {db}.t VALUES (3, 999)"));
    env().src_sql(&format!("INSERT INTO {db}.t VALUES (3, 3)"));
    let out = t.tidemark(&["run", "--no-progress", "--stop-when-caught-up"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("already has a row the source inserted"),
        "{log}"
    );
}

/// Views, routines and triggers created in a database selected whole are replicated;
/// `operations` leaves deletes out; a DDL statement the destination rejects is logged,
/// counted and skipped while the task goes on.
#[test]
fn object_ddl_operations_and_rejected_ddl() {
    let db = "inc_obj";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [[objects]]\ndatabase = \"{db}\"\nrename = \"inc_obj_copy\"\noperations = [\"insert\", \"update\", \"ddl\"]\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    // The destination already has a table the source is about to create.
    env().dst_sql("CREATE TABLE inc_obj_copy.blocker (id INT PRIMARY KEY)");
    env().src_sql(&format!(
        "USE {db};
         CREATE VIEW v AS SELECT id, v * 2 AS double_v FROM t;
         CREATE PROCEDURE p(IN x INT) SELECT x + 1 AS y;
         CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 42;
         CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.v + 100;
         INSERT INTO t VALUES (2, 2), (3, 3);
         DELETE FROM t WHERE id = 1;
         CREATE TABLE blocker (id INT PRIMARY KEY);
         INSERT INTO blocker VALUES (7);
         UPDATE t SET v = 5 WHERE id = 2;"
    ));
    let mut d = env().dst();
    let started = Instant::now();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        got = d
            .query::<(i32, i32), _>("SELECT id, v FROM inc_obj_copy.t ORDER BY id")
            .unwrap_or_default();
        if got == vec![(1, 1), (2, 5), (3, 103)] {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = stop(child);
    // Row 1 stays (deletes are left out); rows 2 and 3 carry the source trigger's +100
    // once, not twice.
    assert_eq!(got, vec![(1, 1), (2, 5), (3, 103)], "{log}");
    let view: Vec<(i32, i64)> = d
        .query("SELECT id, double_v FROM inc_obj_copy.v ORDER BY id")
        .unwrap();
    assert_eq!(view.len(), 3, "{log}");
    let y: Option<i64> = d.query_first("CALL inc_obj_copy.p(41)").unwrap();
    assert_eq!(y, Some(42));
    let f: Option<i64> = d.query_first("SELECT inc_obj_copy.f()").unwrap();
    assert_eq!(f, Some(42));
    let blocker: Option<i64> = d
        .query_first("SELECT id FROM inc_obj_copy.blocker")
        .unwrap();
    assert_eq!(
        blocker,
        Some(7),
        "rows of the table still flow after its CREATE was rejected"
    );
    let out = t.tidemark(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incremental"]["ddl_rejected"], 1, "{v}");
}

/// `[advanced] heartbeat`: a quiet source still shows a small, fresh latency.
#[test]
fn heartbeat_keeps_latency_fresh_on_a_quiet_source() {
    let db = "inc_hb";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [advanced]\nheartbeat = true\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    std::thread::sleep(Duration::from_secs(4));
    let out = t.tidemark(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = stop(child);
    let latency = v["incremental"]["latency_seconds"]
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(
        latency < 3.0,
        "latency {latency} on a quiet source with heartbeats: {v}\n{log}"
    );
    assert!(
        v["incremental"]["transactions"].as_u64().unwrap_or(0) >= 2,
        "{v}"
    );
    let mut s = env().src();
    let n: Option<u64> = s
        .query_first("SELECT COUNT(*) FROM tidemark_heartbeat.heartbeat WHERE task = 'task'")
        .unwrap();
    assert_eq!(n, Some(1));
}

/// `where` filters apply to change events with the source's semantics: rows entering
/// the filter by an update are inserted, rows leaving it deleted.
#[test]
fn where_filters_apply_to_changes() {
    let db = "inc_where";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v INT, name VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, at DATETIME);
         INSERT INTO t VALUES (1, 5, 'apple', '2024-01-01'), (2, 50, 'avocado', '2024-06-01'), (3, 50, 'banana', '2024-06-01');"
    ));
    let filter = "v >= 10 AND name LIKE 'A%' AND at >= '2024-02-01'";
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [[objects]]\ndatabase = \"{db}\"\ntable = \"t\"\nrename = \"t_copy\"\nwhere = \"{filter}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "USE {db};
         INSERT INTO t VALUES (4, 99, 'Apricot', '2024-03-01'), (5, 1, 'ant', '2024-03-01'), (6, 99, 'ant', '2023-01-01');
         UPDATE t SET v = 20 WHERE id = 1;
         UPDATE t SET at = '2024-05-05' WHERE id = 1;
         UPDATE t SET name = 'blueberry' WHERE id = 2;
         UPDATE t SET v = v + 1 WHERE id = 4;
         UPDATE t SET name = 'aa', v = 11 WHERE id = 3;
         DELETE FROM t WHERE id = 5;
         DELETE FROM t WHERE id = 4;"
    ));
    let want: Vec<(i32, i32, String)> = env()
        .src()
        .query(format!(
            "SELECT id, v, name FROM {db}.t WHERE {filter} ORDER BY id"
        ))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        got = env()
            .dst()
            .query::<(i32, i32, String), _>(format!(
                "SELECT id, v, name FROM {db}.t_copy ORDER BY id"
            ))
            .unwrap_or_default();
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = stop(child);
    assert_eq!(got, want, "{log}");
    assert_eq!(want.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
}

/// `[verification] mode = "continuous"`: passes run while the source takes writes and
/// report no false difference; a real one (made on the destination behind the task's
/// back) is found.
#[test]
fn continuous_verification_under_writes() {
    let db = "inc_live_verify";
    create_shop(db);
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [verification]\nmode = \"continuous\"\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let writer = std::thread::spawn(move || write_load(db, 3000, 7));
    let summary = |t: &TaskDir| -> String {
        let out = t.tidemark(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let tables = v["verification"]["tables"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let differing: usize = tables
            .iter()
            .map(|r| {
                r["missing"].as_array().map_or(0, |a| a.len())
                    + r["extra"].as_array().map_or(0, |a| a.len())
                    + r["differing"].as_array().map_or(0, |a| a.len())
            })
            .sum();
        let out = t.tidemark(&["status"]);
        format!("{differing} {}", text(&out))
    };
    // Passes complete while the writer runs; none may report a difference.
    let mut passes = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let s = summary(&t);
        assert!(s.starts_with("0 "), "a false difference under writes: {s}");
        if let Some(p) = s.split("verification: pass ").nth(1) {
            passes.insert(p.split(':').next().unwrap_or("").to_string());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    writer.join().expect("writer");
    // A difference the task did not make is reported by a later pass: at the latest by
    // the first pass that started after it was made (two passes on from the last one
    // finished before, since the one in flight may have compared the table already).
    // Waiting for that pass, not for a fixed time, keeps this exact on a loaded machine.
    let pass_of = |s: &str| -> u64 {
        s.split("verification: pass ")
            .nth(1)
            .and_then(|p| p.split(':').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = pass_of(&summary(&t));
    // A row the source never had (the writer's ids stay below 14 000): deleting an
    // existing row instead raced with the writer, which may have deleted or moved it.
    env().dst_sql(&format!(
        "INSERT INTO {db}.orders (id, customer, total, note) VALUES (900000, 1, 1.00, 'planted')"
    ));
    let started = Instant::now();
    let mut found = String::new();
    while started.elapsed() < Duration::from_secs(600) {
        found = summary(&t);
        if found.contains("1 extra") || pass_of(&found) >= before + 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = stop(child);
    assert!(
        found.contains("1 extra"),
        "the planted difference was not found by a pass that started after it (passes before: {before}): {found}\n{log}"
    );
    assert!(
        !passes.is_empty() || log.contains("verification: pass"),
        "no pass ran under writes:\n{log}"
    );
}

/// Database `db` made by `setup` and followed with batches of 300 row changes over two
/// connections, once copied; and a destination session holding row `id = 1` of `table`.
fn followed_with_row_1_held(
    db: &str,
    table: &str,
    setup: &str,
) -> (TaskDir, std::process::Child, mysql::Conn) {
    let e = env();
    e.src_sql(&format!("CREATE DATABASE {db}; USE {db}; {setup}"));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [incremental]\nbatch_rows = 300\nthreads = 2\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    assert!(
        wait_equal(&[(db, table, db, table)], Duration::from_secs(60)),
        "the copy never finished"
    );
    let mut holder = e.dst();
    holder.query_drop("START TRANSACTION").unwrap();
    holder
        .query_drop(format!(
            "SELECT * FROM {db}.{table} WHERE id = 1 FOR UPDATE"
        ))
        .unwrap();
    (t, child, holder)
}

/// A batch split over the apply connections is queued behind the one before on each
/// connection: a connection done with its share writes its share of the next batch while
/// another still waits (here on a row lock held on the destination), instead of every
/// connection waiting for the slowest before the next batch is handed over.
#[test]
fn a_connection_writes_the_next_batch_while_another_waits_on_a_lock() {
    let db = "inc_queued";
    let e = env();
    let (_t, child, mut holder) = followed_with_row_1_held(
        db,
        "t",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, 0 FROM seq_1_to_10;",
    );
    // Two full batches (more than batch_rows each, split over both connections).
    let mut s = e.src();
    for sql in [
        format!("USE {db}"),
        "START TRANSACTION".to_string(),
        format!("UPDATE {db}.t SET v = 1 WHERE id = 1"),
        format!("INSERT INTO {db}.t SELECT seq, 1 FROM seq_1001_to_1599"),
        "COMMIT".to_string(),
        format!("INSERT INTO {db}.t SELECT seq, 2 FROM seq_2001_to_2600"),
    ] {
        s.query_drop(sql).unwrap();
    }
    let mut d = e.dst();
    let count = |d: &mut mysql::Conn, q: &str| -> u64 { d.query_first(q).unwrap().unwrap_or(0) };
    let started = Instant::now();
    let mut second = 0;
    while second == 0 && started.elapsed() < Duration::from_secs(30) {
        second = count(
            &mut d,
            &format!("SELECT COUNT(*) FROM {db}.t WHERE id > 2000"),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let first_held = count(&mut d, &format!("SELECT v FROM {db}.t WHERE id = 1"));
    holder.query_drop("ROLLBACK").unwrap();
    let equal = wait_equal(&[(db, "t", db, "t")], Duration::from_secs(60));
    let log = stop(child);
    assert!(
        second > 0,
        "no row of the second batch was written while the first waited on the lock:\n{log}"
    );
    assert_eq!(first_held, 0, "the locked row changed while it was held");
    assert!(
        equal,
        "destination differs after the lock was released:\n{log}"
    );
}

/// A table with a second unique key: a change may free a unique value that another
/// key's change takes in the next batch. The next batch is then not queued behind the
/// one before (its share on a free connection could be written first, and the earlier
/// REPLACE would delete the row that took the value): nothing is lost.
#[test]
fn a_unique_value_moved_between_keys_across_batches_is_not_lost() {
    let db = "inc_unique_moves";
    let e = env();
    let (_t, child, mut holder) = followed_with_row_1_held(
        db,
        "u",
        "CREATE TABLE u (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL, v INT, UNIQUE KEY (code));
         INSERT INTO u SELECT seq, CONCAT('o', seq), 0 FROM seq_1_to_20;",
    );
    // Batch one: keys 1-20 take x1-x20. Batch two: they move on to y1-y20, and keys
    // 21-40 take x1-x20. Each is more than batch_rows, split over both connections.
    let mut s = e.src();
    for sql in [
        format!("USE {db}"),
        "START TRANSACTION".to_string(),
        "UPDATE u SET code = CONCAT('x', id) WHERE id <= 20".to_string(),
        "INSERT INTO u SELECT seq, CONCAT('f', seq), 1 FROM seq_1001_to_1300".to_string(),
        "COMMIT".to_string(),
        "START TRANSACTION".to_string(),
        "UPDATE u SET code = CONCAT('y', id) WHERE id <= 20".to_string(),
        "INSERT INTO u SELECT seq + 20, CONCAT('x', seq), 2 FROM seq_1_to_20".to_string(),
        "INSERT INTO u SELECT seq, CONCAT('f', seq), 2 FROM seq_2001_to_2300".to_string(),
        "COMMIT".to_string(),
    ] {
        s.query_drop(sql).unwrap();
    }
    // Batch two waits for batch one, which waits for the lock: give a connection that
    // would not wait the time to write (it would show in rows of batch two).
    let mut d = e.dst();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let second: u64 = d
            .query_first(format!("SELECT COUNT(*) FROM {db}.u WHERE id > 2000"))
            .unwrap()
            .unwrap_or(0);
        if second > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    holder.query_drop("ROLLBACK").unwrap();
    let equal = wait_equal(&[(db, "u", db, "u")], Duration::from_secs(60));
    let missing: u64 = d
        .query_first(format!(
            "SELECT 20 - COUNT(*) FROM {db}.u WHERE id BETWEEN 21 AND 40"
        ))
        .unwrap()
        .unwrap_or(0);
    let log = stop(child);
    assert_eq!(
        missing, 0,
        "rows that took a freed unique value were lost:\n{log}"
    );
    assert!(equal, "destination differs:\n{log}");
}
