//! Every DDL form `docs/incremental.md` says is replicated, applied on the source while a
//! task streams a database selected whole, each checked on the destination: one task,
//! one table of cases, each named in a failure.

mod common;

use common::{env, spawn, stop, wait_incremental, TaskDir};
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

/// One form: the statements run on the source (in the test database), a query on the
/// destination (in the same database) and the single value it must come to give.
struct Case {
    name: &'static str,
    source: &'static str,
    check: &'static str,
    expect: &'static str,
}

const fn case(
    name: &'static str,
    source: &'static str,
    check: &'static str,
    expect: &'static str,
) -> Case {
    Case {
        name,
        source,
        check,
        expect,
    }
}

const VIEWS: &str =
    "SELECT CONCAT('[', IFNULL(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), ''), ']') FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()";
const TABLES: &str =
    "SELECT CONCAT('[', IFNULL(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), ''), ']') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'";
const TRIGGERS: &str =
    "SELECT CONCAT('[', IFNULL(GROUP_CONCAT(TRIGGER_NAME ORDER BY TRIGGER_NAME), ''), ']') FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()";
const ROUTINES: &str =
    "SELECT CONCAT('[', IFNULL(GROUP_CONCAT(ROUTINE_NAME ORDER BY ROUTINE_NAME), ''), ']') FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()";

const CASES: &[Case] = &[
    case(
        "CREATE OR REPLACE VIEW (new)",
        "CREATE OR REPLACE VIEW v1 AS SELECT id FROM t",
        VIEWS,
        "[v1]",
    ),
    case(
        "CREATE OR REPLACE VIEW (replacing)",
        "CREATE OR REPLACE VIEW v1 AS SELECT id, n FROM t",
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'v1'",
        "2",
    ),
    case(
        "CREATE VIEW IF NOT EXISTS",
        "CREATE VIEW IF NOT EXISTS v2 AS SELECT n FROM t",
        VIEWS,
        "[v1,v2]",
    ),
    case(
        "CREATE ALGORITHM=MERGE DEFINER=... SQL SECURITY DEFINER VIEW",
        "CREATE ALGORITHM=MERGE DEFINER=CURRENT_USER SQL SECURITY DEFINER VIEW v3 AS SELECT id FROM t",
        VIEWS,
        "[v1,v2,v3]",
    ),
    case(
        "ALTER ALGORITHM=MERGE VIEW",
        "ALTER ALGORITHM=MERGE VIEW v2 AS SELECT n, id FROM t",
        "SELECT CONCAT(ALGORITHM, ' ', (SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'v2')) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'v2'",
        "MERGE 2",
    ),
    case(
        "DROP VIEW IF EXISTS (several, one missing)",
        "DROP VIEW IF EXISTS v1, v2, v3, no_such_view",
        VIEWS,
        "[]",
    ),
    case(
        "CREATE TABLE IF NOT EXISTS",
        "CREATE TABLE IF NOT EXISTS t2 (id INT PRIMARY KEY); INSERT INTO t2 VALUES (1)",
        "SELECT COUNT(*) FROM t2",
        "1",
    ),
    case(
        "CREATE TABLE IF NOT EXISTS (existing: no-op)",
        "CREATE TABLE IF NOT EXISTS t2 (other INT); INSERT INTO t2 VALUES (2)",
        "SELECT SUM(id) FROM t2",
        "3",
    ),
    case(
        "CREATE OR REPLACE TABLE",
        "CREATE OR REPLACE TABLE t2 (id INT PRIMARY KEY, x INT); INSERT INTO t2 VALUES (1, 5)",
        "SELECT CONCAT(COUNT(*), ' ', SUM(x)) FROM t2",
        "1 5",
    ),
    case(
        "ALTER TABLE ... ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE t ADD COLUMN m INT, ALGORITHM=INPLACE, LOCK=NONE; UPDATE t SET m = 2",
        "SELECT SUM(m) FROM t",
        "6",
    ),
    case(
        "ALTER TABLE IF EXISTS ... ADD COLUMN IF NOT EXISTS",
        "ALTER TABLE IF EXISTS t ADD COLUMN IF NOT EXISTS k INT DEFAULT 7; UPDATE t SET k = k + 1",
        "SELECT SUM(k) FROM t",
        "24",
    ),
    case(
        "CREATE INDEX IF NOT EXISTS",
        "CREATE INDEX IF NOT EXISTS ik ON t (k)",
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'ik'",
        "1",
    ),
    case(
        "DROP INDEX IF EXISTS",
        "DROP INDEX IF EXISTS ik ON t",
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'ik'",
        "0",
    ),
    case(
        "RENAME TABLE (several)",
        "CREATE TABLE r1 (id INT PRIMARY KEY); CREATE TABLE r2 (id INT PRIMARY KEY); RENAME TABLE r1 TO r1b, r2 TO r2b; INSERT INTO r1b VALUES (1); INSERT INTO r2b VALUES (2)",
        "SELECT CONCAT((SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('r1', 'r2')), ' ', (SELECT id FROM r1b), ' ', (SELECT id FROM r2b))",
        "0 1 2",
    ),
    case(
        "ALTER TABLE ... RENAME TO",
        "ALTER TABLE r1b RENAME TO r1c; INSERT INTO r1c VALUES (3)",
        "SELECT SUM(id) FROM r1c",
        "4",
    ),
    case(
        "DROP TABLE IF EXISTS (several, one missing)",
        "DROP TABLE IF EXISTS r1c, r2b, no_such_table",
        TABLES,
        "[t,t2]",
    ),
    case(
        "CREATE OR REPLACE TRIGGER",
        "CREATE OR REPLACE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.n = NEW.n + 1",
        TRIGGERS,
        "[tr]",
    ),
    case(
        "CREATE TRIGGER IF NOT EXISTS",
        "CREATE TRIGGER IF NOT EXISTS tr2 BEFORE UPDATE ON t FOR EACH ROW SET NEW.n = NEW.n",
        TRIGGERS,
        "[tr,tr2]",
    ),
    case(
        "DROP TRIGGER IF EXISTS",
        "DROP TRIGGER IF EXISTS tr; DROP TRIGGER IF EXISTS tr2; DROP TRIGGER IF EXISTS no_such_trigger",
        TRIGGERS,
        "[]",
    ),
    case(
        "CREATE OR REPLACE PROCEDURE and FUNCTION",
        "CREATE OR REPLACE PROCEDURE p() SELECT 1; CREATE OR REPLACE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1; CREATE OR REPLACE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 2",
        "SELECT CONCAT((SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()), ' ', f())",
        "2 2",
    ),
    case(
        "CREATE PROCEDURE IF NOT EXISTS",
        "CREATE PROCEDURE IF NOT EXISTS p2() SELECT 2",
        ROUTINES,
        "[f,p,p2]",
    ),
    case(
        "DROP PROCEDURE / FUNCTION IF EXISTS",
        "DROP PROCEDURE IF EXISTS p; DROP PROCEDURE IF EXISTS p2; DROP FUNCTION IF EXISTS f; DROP FUNCTION IF EXISTS no_such_function",
        ROUTINES,
        "[]",
    ),
];

fn value(c: &mut mysql::Conn, q: &str) -> Option<String> {
    let row: Option<mysql::Row> = c.query_first(q).ok().flatten();
    row.and_then(|r| r.get_opt::<Option<String>, _>(0)?.ok().flatten())
}

#[test]
fn every_documented_ddl_form_is_replicated() {
    let db = "ddl_forms";
    let e = env();
    e.src_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, n INT); INSERT INTO t VALUES (1, 1), (2, 2), (3, 3);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let mut dst = e.dst();
    let mut failed = Vec::new();
    for c in CASES {
        e.src_sql(&format!("USE {db}; {}", c.source));
        dst.query_drop(format!("USE {db}")).expect("use");
        let started = Instant::now();
        let mut got = value(&mut dst, c.check);
        while got.as_deref() != Some(c.expect) && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
            got = value(&mut dst, c.check);
        }
        if got.as_deref() != Some(c.expect) {
            failed.push(format!(
                "{}: expected {:?}, the destination has {got:?}",
                c.name, c.expect
            ));
        }
    }
    let log = stop(child);
    assert!(
        failed.is_empty(),
        "DDL forms not replicated:\n{}\n\ntask log:\n{log}",
        failed.join("\n")
    );
}
