//! Contract test of the LindormTable SQL stand-in: the same scenarios run against a
//! real LindormTable (MySQL compatibility on, port 33060) when
//! `TIDEMARK_TEST_LINDORM_URL` (`mysql://user:pass@host:33060`) is set, and against
//! `tidemark_sandbox::standin::lindorm` otherwise. Against the stand-in the error
//! messages are checked too; against a real instance only that the statement fails.
//! Scenarios that need a server we control (restart, wrong password) are skipped for a
//! real instance, with a printed reason.

use mysql::prelude::Queryable;
use std::sync::OnceLock;
use std::time::Duration;
use tidemark_sandbox::standin::lindorm::{LindormStandIn, Options};

struct Target {
    url: String,
    standin: Option<LindormStandIn>,
}

fn target() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| match std::env::var("TIDEMARK_TEST_LINDORM_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!(
                "Lindorm contract: running against the instance in TIDEMARK_TEST_LINDORM_URL"
            );
            Target { url, standin: None }
        }
        _ => {
            eprintln!(
                "Lindorm contract: running against the stand-in; the real-instance run is \
                 skipped because TIDEMARK_TEST_LINDORM_URL is not set"
            );
            let s = LindormStandIn::start(&Options::default()).expect("start the Lindorm stand-in");
            Target {
                url: s.url(),
                standin: Some(s),
            }
        }
    })
}

fn is_standin() -> bool {
    target().standin.is_some()
}

fn conn() -> mysql::Conn {
    let opts =
        mysql::Opts::from_url(&target().url).expect("TIDEMARK_TEST_LINDORM_URL is a mysql:// URL");
    mysql::Conn::new(opts).expect("connect")
}

/// A fresh table name for one scenario (the default namespace is shared).
fn table(name: &str) -> String {
    format!("contract_{name}_{}", std::process::id())
}

fn expect_err(c: &mut mysql::Conn, sql: &str, needle: &str) {
    match c.query_drop(sql) {
        Ok(()) => panic!("accepted, but Lindorm rejects it: {sql}"),
        Err(mysql::Error::MySqlError(e)) => {
            let short: String = sql.chars().take(90).collect();
            eprintln!("  rejected as expected: {short} -> {}", e.message);
            if is_standin() {
                assert!(
                    e.message.to_lowercase().contains(&needle.to_lowercase()),
                    "the error for {sql} does not name the problem ({needle}): {}",
                    e.message
                );
            }
        }
        Err(other) => panic!("{sql}: not a server error: {other}"),
    }
}

#[test]
fn dialect_round_trip() {
    let mut c = conn();
    let t = table("rt");
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{t}` (id BIGINT NOT NULL, k VARCHAR NOT NULL, \
         v VARCHAR, d DOUBLE, m DECIMAL(12, 2), ts TIMESTAMP, b VARBINARY, flag BOOLEAN, \
         PRIMARY KEY(id, k)) WITH (CONSISTENCY = 'strong')"
    ))
    .unwrap();
    c.query_drop(format!(
        "UPSERT INTO `{t}` (id, k, v, d, m, ts, b, flag) VALUES \
         (1, 'a', 'one', 1.5E0, 10.25, '2024-01-02 03:04:05.678', x'0102', true), \
         (2, 'b', 'two', -2.5e3, 20.5, '2024-01-02 03:04:05', '', false)"
    ))
    .unwrap();
    // INSERT is an upsert too, and overwrites only the columns it names.
    c.query_drop(format!(
        "INSERT INTO `{t}` (id, k, v) VALUES (1, 'a', 'uno')"
    ))
    .unwrap();
    // Deleting a missing row is no error.
    c.query_drop(format!("DELETE FROM `{t}` WHERE id = 9 AND k = 'z'"))
        .unwrap();
    c.query_drop(format!("DELETE FROM `{t}` WHERE k = 'b' AND id = 2"))
        .unwrap();
    c.query_drop(format!("UPSERT INTO `{t}` (id, k, d) VALUES (3, 'c', 3E0)"))
        .unwrap();
    type Row = (
        i64,
        String,
        Option<String>,
        Option<f64>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let rows: Vec<Row> = c
        .query(format!(
            "SELECT id, k, v, d, CAST(m AS CHAR), b FROM `{t}` ORDER BY id"
        ))
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1,
                "a".into(),
                Some("uno".into()),
                Some(1.5),
                Some("10.25".into()),
                Some(vec![1, 2])
            ),
            (3, "c".into(), None, Some(3.0), None, None),
        ]
    );
    c.query_drop(format!(
        "ALTER TABLE `{t}` ADD COLUMN extra INTEGER, ADD note VARCHAR"
    ))
    .unwrap();
    c.query_drop(format!(
        "UPSERT INTO `{t}` (id, k, extra) VALUES (3, 'c', 7)"
    ))
    .unwrap();
    let extra: Option<Option<i64>> = c
        .query_first(format!("SELECT extra FROM `{t}` WHERE id = 3 AND k = 'c'"))
        .unwrap();
    assert_eq!(extra, Some(Some(7)));
    let (_, ddl): (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{t}`"))
        .unwrap()
        .unwrap();
    assert!(ddl.contains("extra"), "{ddl}");
    // Empty VARBINARY reads back as NULL (row 2 was deleted; write one more).
    c.query_drop(format!("UPSERT INTO `{t}` (id, k, b) VALUES (4, 'd', '')"))
        .unwrap();
    let b: Option<Option<Vec<u8>>> = c
        .query_first(format!("SELECT b FROM `{t}` WHERE id = 4 AND k = 'd'"))
        .unwrap();
    assert_eq!(b, Some(None));
    c.query_drop(format!("DROP TABLE `{t}`")).unwrap();
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
}

#[test]
fn dialect_rejections() {
    let mut c = conn();
    let t = table("rej");
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{t}` (id BIGINT, k VARCHAR, d DOUBLE, v VARCHAR, PRIMARY KEY(id, k))"
    ))
    .unwrap();
    let cases = [
        (
            format!("REPLACE INTO `{t}` (id, k, v) VALUES (1, 'a', 'x')"),
            "UPSERT",
        ),
        (
            format!(
                "INSERT INTO `{t}` (id, k, v) VALUES (1, 'a', 'x') ON DUPLICATE KEY UPDATE v = 'y'"
            ),
            "ON DUPLICATE KEY",
        ),
        (
            format!("UPSERT INTO `{t}` (id, k, d) VALUES (1, 'a', 1.5)"),
            "scientific notation",
        ),
        (
            format!("UPSERT INTO `{t}` (id, v) VALUES (1, 'x')"),
            "every key column",
        ),
        (
            format!("DELETE FROM `{t}` WHERE id = 1"),
            "every key column",
        ),
        (
            format!("DELETE FROM `{t}` WHERE id > 1 AND k = 'a'"),
            "every key column",
        ),
        (
            format!("DELETE FROM `{t}` WHERE id = 1 AND k = 'a' AND v = 'x'"),
            "every key column",
        ),
        (
            format!("ALTER TABLE `{t}` ADD COLUMN x INTEGER DEFAULT 0"),
            "name and a type only",
        ),
        (
            format!("ALTER TABLE `{t}` ADD COLUMN x INTEGER NOT NULL"),
            "name and a type only",
        ),
        ("BEGIN".to_string(), "transactions"),
        ("START TRANSACTION".to_string(), "transactions"),
        ("SET autocommit = 0".to_string(), "transactions"),
        (
            "CREATE TABLE bad_bit (id BIGINT, b BIT(1), PRIMARY KEY(id))".to_string(),
            "BIT",
        ),
        (
            "CREATE TABLE bad_mi (id BIGINT, b MEDIUMINT, PRIMARY KEY(id))".to_string(),
            "MEDIUMINT",
        ),
        (
            "CREATE TABLE bad_dt (id BIGINT, b DATETIME, PRIMARY KEY(id))".to_string(),
            "TIMESTAMP",
        ),
        (
            "CREATE TABLE bad_text (id BIGINT, b TEXT, PRIMARY KEY(id))".to_string(),
            "VARCHAR",
        ),
        (
            "CREATE TABLE bad_uns (id INTEGER UNSIGNED, PRIMARY KEY(id))".to_string(),
            "UNSIGNED",
        ),
        (
            "CREATE TABLE bad_len (id INTEGER(11), PRIMARY KEY(id))".to_string(),
            "no length",
        ),
        (
            "CREATE TABLE bad_dec (id BIGINT, m DECIMAL(40, 2), PRIMARY KEY(id))".to_string(),
            "1 to 38",
        ),
        (
            "CREATE TABLE bad_key (a BIGINT, b BIGINT, c BIGINT, d BIGINT, e BIGINT, f BIGINT, \
             v VARCHAR, PRIMARY KEY(a, b, c, d, e, f))"
                .to_string(),
            "at most 5",
        ),
        (
            "CREATE TABLE bad_vb (a VARBINARY, b BIGINT, v VARCHAR, PRIMARY KEY(a, b))".to_string(),
            "last key column",
        ),
        (
            "CREATE TABLE bad_nokey (a BIGINT, v VARCHAR)".to_string(),
            "PRIMARY KEY",
        ),
    ];
    for (sql, needle) in &cases {
        expect_err(&mut c, sql, needle);
    }
    let n: Option<i64> = c
        .query_first(format!("SELECT COUNT(*) FROM `{t}`"))
        .unwrap();
    assert_eq!(n, Some(0), "a rejected write changed the table");
    c.query_drop(format!("DROP TABLE `{t}`")).unwrap();
}

#[test]
fn write_limits() {
    let mut c = conn();
    let t = table("lim");
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{t}` (id BIGINT, v VARCHAR, PRIMARY KEY(id))"
    ))
    .unwrap();
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("({i}, 'v{i}')"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    c.query_drop(format!("UPSERT INTO `{t}` (id, v) VALUES {}", rows(2000)))
        .unwrap();
    assert_eq!(c.affected_rows(), 2000);
    expect_err(
        &mut c,
        &format!("UPSERT INTO `{t}` (id, v) VALUES {}", rows(2001)),
        "at most 2000 rows",
    );
    // A row just under 2 MB of values fits; one over it is refused, naming the key.
    let near = "x".repeat((2 << 20) - 16);
    c.query_drop(format!("UPSERT INTO `{t}` (id, v) VALUES (5000, '{near}')"))
        .unwrap();
    let over = "y".repeat((2 << 20) + 1);
    expect_err(
        &mut c,
        &format!("UPSERT INTO `{t}` (id, v) VALUES (5001, '{over}')"),
        "key (5001)",
    );
    let len: Option<i64> = c
        .query_first(format!("SELECT LENGTH(v) FROM `{t}` WHERE id = 5000"))
        .unwrap();
    assert_eq!(len, Some(((2 << 20) - 16) as i64));
    let n: Option<i64> = c
        .query_first(format!("SELECT COUNT(*) FROM `{t}`"))
        .unwrap();
    assert_eq!(n, Some(2001));
    c.query_drop(format!("DROP TABLE `{t}`")).unwrap();
}

#[test]
fn protocol_commands() {
    let mut c = conn();
    assert!(c.ping().is_ok());
    c.select_db("default").unwrap();
    if is_standin() {
        let v: Option<String> = c.query_first("SELECT VERSION()").unwrap();
        assert_eq!(
            v.as_deref(),
            Some(tidemark_sandbox::standin::lindorm::SERVER_VERSION)
        );
    }
    // COM_RESET_CONNECTION (and the crate's COM_CHANGE_USER fallback) are refused.
    assert!(c.reset().is_err(), "a connection reset was accepted");
    // A pool works once told not to reset connections.
    let opts = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(&target().url).unwrap())
        .pool_opts(mysql::PoolOpts::default().with_reset_connection(false));
    let pool = mysql::Pool::new(opts).unwrap();
    for _ in 0..3 {
        let mut pc = pool.get_conn().unwrap();
        let one: Option<i64> = pc.query_first("SELECT 1").unwrap();
        assert_eq!(one, Some(1));
    }
}

#[test]
fn standin_restart_keeps_rows_and_login() {
    if !is_standin() {
        eprintln!("skipped against a real instance: restarting and wrong-password checks need a server we control");
        return;
    }
    // Its own stand-in: a restart must not cut the other scenarios' connections.
    let s = LindormStandIn::start(&Options::default()).unwrap();
    let conn = || mysql::Conn::new(mysql::Opts::from_url(&s.url()).unwrap()).unwrap();
    let mut c = conn();
    let t = table("restart");
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{t}` (id BIGINT, v VARCHAR, PRIMARY KEY(id))"
    ))
    .unwrap();
    c.query_drop(format!(
        "UPSERT INTO `{t}` (id, v) VALUES (1, 'kept'), (2, 'gone')"
    ))
    .unwrap();
    c.query_drop(format!("DELETE FROM `{t}` WHERE id = 2"))
        .unwrap();
    s.restart(Duration::from_millis(200)).unwrap();
    assert!(
        c.query_drop("SELECT 1").is_err(),
        "a connection survived the restart"
    );
    let mut c = conn();
    let rows: Vec<(i64, String)> = c.query(format!("SELECT id, v FROM `{t}`")).unwrap();
    assert_eq!(rows, vec![(1, "kept".to_string())]);
    let (_, ddl): (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{t}`"))
        .unwrap()
        .unwrap();
    assert!(ddl.contains("PRIMARY KEY(`id`)"), "{ddl}");
    c.query_drop(format!("DROP TABLE `{t}`")).unwrap();

    let bad = format!("mysql://root:wrong@127.0.0.1:{}", s.port());
    match mysql::Conn::new(mysql::Opts::from_url(&bad).unwrap()) {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1045, "{}", e.message),
        other => panic!("a wrong password was not refused: {:?}", other.map(|_| ())),
    }
}

#[test]
fn prepared_statements() {
    let mut c = conn();
    let t = table("prep");
    c.query_drop(format!("DROP TABLE IF EXISTS `{t}`")).unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{t}` (id BIGINT, d DOUBLE, v VARCHAR, b VARBINARY, PRIMARY KEY(id))"
    ))
    .unwrap();
    // Bound DOUBLE values are no literals: any number is fine.
    c.exec_drop(
        format!("UPSERT INTO `{t}` (id, d, v, b) VALUES (?, ?, ?, ?)"),
        (1i64, 3i64, "x", vec![1u8, 2]),
    )
    .unwrap();
    c.exec_drop(
        format!("UPSERT INTO `{t}` (id, d, v, b) VALUES (?, ?, ?, ?)"),
        (2i64, 0.25f64, mysql::Value::NULL, Vec::<u8>::new()),
    )
    .unwrap();
    c.exec_drop(format!("DELETE FROM `{t}` WHERE id = ?"), (9i64,))
        .unwrap();
    type Row = (i64, f64, Option<String>, Option<Vec<u8>>);
    let rows: Vec<Row> = c
        .exec(
            format!("SELECT id, d, v, b FROM `{t}` WHERE id > ? ORDER BY id"),
            (0,),
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, 3.0, Some("x".into()), Some(vec![1, 2])),
            (2, 0.25, None, None)
        ]
    );
    c.query_drop(format!("DROP TABLE `{t}`")).unwrap();
}
