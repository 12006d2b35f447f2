//! Contract test of the AnalyticDB for MySQL 3.0 stand-in: the same scenarios run
//! against a real cluster when `TIDEMARK_TEST_ADB_URL` (`mysql://user:pass@host:port`)
//! is set, and against `tidemark_sandbox::standin::adb` otherwise. Against the
//! stand-in the error messages are checked too; against a real cluster only that the
//! statement fails (its wording is the engine's). Scenarios that only make sense for
//! the stand-in (its statement-size limit, wrong password, restart) say so and are
//! skipped for a real cluster.

use mysql::prelude::Queryable;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tidemark_sandbox::standin::adb::{AdbStandIn, Options, Spelling};

struct Target {
    url: String,
    standin: Option<AdbStandIn>,
}

fn target() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| match std::env::var("TIDEMARK_TEST_ADB_URL") {
        Ok(url) if !url.is_empty() => {
            eprintln!("ADB contract: running against the real cluster in TIDEMARK_TEST_ADB_URL");
            Target { url, standin: None }
        }
        _ => {
            eprintln!(
                "ADB contract: running against the stand-in; the real-cluster run is skipped \
                 because TIDEMARK_TEST_ADB_URL is not set"
            );
            let s = AdbStandIn::start(&Options::default()).expect("start the ADB stand-in");
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
        mysql::Opts::from_url(&target().url).expect("TIDEMARK_TEST_ADB_URL is a mysql:// URL");
    mysql::Conn::new(opts).expect("connect")
}

/// A fresh database for one scenario, current on the returned connection.
fn fresh_db(name: &str) -> (mysql::Conn, String) {
    let db = format!("contract_{name}_{}", std::process::id());
    let mut c = conn();
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{db}`")).unwrap();
    c.select_db(&db).unwrap();
    (c, db)
}

/// Runs `sql`, which must fail; against the stand-in the message must contain `needle`.
fn expect_err(c: &mut mysql::Conn, sql: &str, needle: &str) {
    match c.query_drop(sql) {
        Ok(()) => panic!("accepted, but ADB rejects it: {sql}"),
        Err(mysql::Error::MySqlError(e)) => {
            eprintln!("  rejected as expected: {} -> {}", short(sql), e.message);
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

fn short(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(90).collect()
}

fn show_create(c: &mut mysql::Conn, table: &str) -> String {
    let row: (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{table}`"))
        .unwrap()
        .expect("a row");
    row.1
}

/// Upper case without spaces or backticks, so the checks do not depend on layout.
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '`')
        .collect::<String>()
        .to_uppercase()
}

fn has_distribution(ddl: &str, clause: &str) -> bool {
    let n = norm(ddl);
    n.contains(&format!("DISTRIBUTEDBY{clause}")) || n.contains(&format!("DISTRIBUTEBY{clause}"))
}

#[test]
fn accepted_ddl_and_show_create_form() {
    let (mut c, db) = fresh_db("ddl");
    // The documented example: primary key holding distribution and partition keys.
    c.query_drop(
        "CREATE TABLE customer (
           customer_id BIGINT NOT NULL COMMENT 'customer',
           customer_name VARCHAR NOT NULL,
           phone_num BIGINT NOT NULL,
           city_name VARCHAR,
           sex INT,
           id_number VARCHAR,
           home_address VARCHAR,
           office_address VARCHAR,
           age INT,
           login_time TIMESTAMP NOT NULL,
           PRIMARY KEY (login_time, customer_id, phone_num)
         ) DISTRIBUTED BY HASH(customer_id)
           PARTITION BY VALUE(DATE_FORMAT(login_time, '%Y%m%d')) LIFECYCLE 30
           INDEX_ALL='Y' ENGINE='XUANWU' BLOCK_SIZE=8192
           TABLE_PROPERTIES='{\"format\":\"columnstore\"}' COMMENT 'customers'",
    )
    .unwrap();
    let ddl = show_create(&mut c, "customer");
    eprintln!("  SHOW CREATE TABLE customer:\n{ddl}");
    assert!(has_distribution(&ddl, "HASH(CUSTOMER_ID)"), "{ddl}");
    assert!(
        norm(&ddl).contains("PARTITIONBYVALUE(DATE_FORMAT(LOGIN_TIME,'%Y%M%D'))LIFECYCLE30"),
        "{ddl}"
    );
    assert!(
        norm(&ddl).contains("PRIMARYKEY(LOGIN_TIME,CUSTOMER_ID,PHONE_NUM)"),
        "{ddl}"
    );

    // A dimension (replicated) table.
    c.query_drop(
        "CREATE TABLE dim (id INT PRIMARY KEY, name VARCHAR(20)) DISTRIBUTED BY BROADCAST",
    )
    .unwrap();
    assert!(has_distribution(&show_create(&mut c, "dim"), "BROADCAST"));

    // No distribution key: the primary key is used.
    c.query_drop("CREATE TABLE pk_only (a BIGINT, b VARCHAR, v DOUBLE, PRIMARY KEY (a, b))")
        .unwrap();
    assert!(has_distribution(
        &show_create(&mut c, "pk_only"),
        "HASH(A,B)"
    ));

    // No primary key: the engine adds __adb_auto_id__.
    c.query_drop("CREATE TABLE keyless (a INT, b VARCHAR)")
        .unwrap();
    let ddl = show_create(&mut c, "keyless");
    assert!(norm(&ddl).contains("PRIMARYKEY(__ADB_AUTO_ID__)"), "{ddl}");

    // Every documented type, FROM_UNIXTIME partitioning, an informational foreign key.
    c.query_drop(
        "CREATE TABLE types (
           id BIGINT AUTO_INCREMENT, b BOOLEAN, t TINYINT, s SMALLINT, i INT, g INTEGER,
           f FLOAT, d DOUBLE, m DECIMAL(38, 10), v VARCHAR(10) DEFAULT 'x', bin BINARY,
           dt DATE, tm TIME, dtt DATETIME DEFAULT CURRENT_TIMESTAMP, ts TIMESTAMP, p POINT,
           j JSON, epoch BIGINT NOT NULL, dim_id INT,
           KEY idx_v (v),
           CONSTRAINT fk_dim FOREIGN KEY (dim_id) REFERENCES dim (id),
           PRIMARY KEY (id, epoch)
         ) DISTRIBUTE BY HASH(id) PARTITION BY VALUE(FROM_UNIXTIME(epoch, '%Y%m')) LIFECYCLE 12",
    )
    .unwrap();
    assert!(norm(&show_create(&mut c, "types")).contains("FROM_UNIXTIME(EPOCH,'%Y%M')"));

    // IF NOT EXISTS on an existing table is no error.
    c.query_drop("CREATE TABLE IF NOT EXISTS dim (id INT PRIMARY KEY) DISTRIBUTED BY BROADCAST")
        .unwrap();
    let tables: Vec<String> = c
        .query(format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' \
             ORDER BY table_name"
        ))
        .unwrap();
    assert_eq!(tables, ["customer", "dim", "keyless", "pk_only", "types"]);
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn rejected_ddl() {
    let (mut c, db) = fresh_db("reject");
    c.query_drop("CREATE TABLE dim (id INT PRIMARY KEY) DISTRIBUTED BY BROADCAST")
        .unwrap();
    let cases = [
        (
            "CREATE TABLE t (a INT, b INT, PRIMARY KEY (a)) DISTRIBUTED BY HASH(b)",
            "must contain the distribution key",
        ),
        (
            "CREATE TABLE t (a INT, d DATE, PRIMARY KEY (a)) DISTRIBUTED BY HASH(a) \
             PARTITION BY VALUE(DATE_FORMAT(d, '%Y%m%d')) LIFECYCLE 7",
            "must contain the partition key",
        ),
        ("CREATE TABLE t (a INT UNSIGNED PRIMARY KEY)", "UNSIGNED"),
        ("CREATE TABLE t (a MEDIUMINT PRIMARY KEY)", "MEDIUMINT"),
        ("CREATE TABLE t (a INT PRIMARY KEY, b BIT(1))", "BIT"),
        ("CREATE TABLE t (a INT PRIMARY KEY, b YEAR)", "YEAR"),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b ENUM('x', 'y'))",
            "ENUM",
        ),
        ("CREATE TABLE t (a INT PRIMARY KEY, b SET('x', 'y'))", "SET"),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b DECIMAL(40, 2))",
            "1 to 38",
        ),
        ("CREATE TABLE t (a INT PRIMARY KEY, b LINESTRING)", "POINT"),
        (
            "CREATE TABLE t (a INT AUTO_INCREMENT PRIMARY KEY)",
            "must be BIGINT",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b INT, c INT, \
             FOREIGN KEY (b, c) REFERENCES dim (id, id))",
            "one column",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b INT, \
             FOREIGN KEY (b) REFERENCES dim (id) ON DELETE CASCADE)",
            "informational",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b INT, UNIQUE KEY (b))",
            "grammar",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY) ENGINE=InnoDB",
            "not an AnalyticDB engine",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY) DEFAULT CHARSET=utf8mb4",
            "not an AnalyticDB table option",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR(10) CHARACTER SET utf8mb4)",
            "column grammar",
        ),
        (
            "CREATE TABLE t (a INT PRIMARY KEY, d DATETIME ON UPDATE CURRENT_TIMESTAMP)",
            "column grammar",
        ),
        (
            "CREATE TABLE t (a INT, d DATE, PRIMARY KEY (a, d)) \
             PARTITION BY VALUE(DATE_FORMAT(d, '%d')) LIFECYCLE 7",
            "partition format",
        ),
    ];
    for (sql, needle) in cases {
        expect_err(&mut c, sql, needle);
    }
    let tables: Vec<String> = c
        .query(format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'"
        ))
        .unwrap();
    assert_eq!(
        tables,
        ["dim"],
        "a rejected CREATE TABLE left a table behind"
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn alter_table_rules() {
    let (mut c, db) = fresh_db("alter");
    c.query_drop(
        "CREATE TABLE t (id BIGINT, k VARCHAR, d DATE, v INT, w VARCHAR, \
         PRIMARY KEY (id, k, d)) DISTRIBUTED BY HASH(id) \
         PARTITION BY VALUE(DATE_FORMAT(d, '%Y%m%d')) LIFECYCLE 10",
    )
    .unwrap();
    c.query_drop("INSERT INTO t (id, k, d, v, w) VALUES (1, 'a', '2024-01-02', 5, 'x')")
        .unwrap();
    c.query_drop("ALTER TABLE t ADD COLUMN n1 INT DEFAULT 7")
        .unwrap();
    c.query_drop("ALTER TABLE t ADD (n2 VARCHAR COMMENT 'two', n3 DOUBLE)")
        .unwrap();
    c.query_drop("ALTER TABLE t DROP COLUMN w").unwrap();
    c.query_drop("ALTER TABLE t MODIFY COLUMN v BIGINT")
        .unwrap();
    let ddl = norm(&show_create(&mut c, "t"));
    assert!(ddl.contains("N1INTDEFAULT7"), "{ddl}");
    assert!(ddl.contains("N2VARCHARCOMMENT'TWO'"), "{ddl}");
    assert!(ddl.contains("VBIGINT"), "{ddl}");
    assert!(!ddl.contains("WVARCHAR"), "{ddl}");
    let row: (i64, String, i64, i64, Option<String>) = c
        .query_first("SELECT id, k, v, n1, n2 FROM t")
        .unwrap()
        .unwrap();
    assert_eq!(row, (1, "a".into(), 5, 7, None));

    let cases = [
        ("ALTER TABLE t MODIFY COLUMN id INT", "primary key"),
        ("ALTER TABLE t DROP COLUMN k", "primary key"),
        ("ALTER TABLE t DROP COLUMN d", "primary key"),
        ("ALTER TABLE t CHANGE v v2 INT", "CHANGE"),
        ("ALTER TABLE t ADD PRIMARY KEY (id, v)", "primary key"),
        ("ALTER TABLE t DROP PRIMARY KEY", "primary key"),
        ("ALTER TABLE t ADD COLUMN x INT PRIMARY KEY", "primary key"),
        ("ALTER TABLE t ADD COLUMN x INT UNSIGNED", "UNSIGNED"),
        ("ALTER TABLE t ADD COLUMN x MEDIUMINT", "MEDIUMINT"),
        (
            "ALTER TABLE t ALTER COLUMN v SET DEFAULT 1",
            "not supported",
        ),
        ("ALTER TABLE t ENGINE=InnoDB", "not supported"),
        ("ALTER TABLE t ADD COLUMN v INT", "Duplicate column"),
    ];
    for (sql, needle) in cases {
        expect_err(&mut c, sql, needle);
    }
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn dml_round_trip() {
    let (mut c, db) = fresh_db("dml");
    c.query_drop(
        "CREATE TABLE t (id BIGINT NOT NULL, name VARCHAR, amount DECIMAL(12, 2), \
         at DATETIME, flag BOOLEAN, PRIMARY KEY (id)) DISTRIBUTED BY HASH(id)",
    )
    .unwrap();
    // A batch of over 1 000 rows in one statement, as ADB recommends.
    let values: Vec<String> = (1..=1500)
        .map(|i| {
            format!(
                "({i}, 'n{i}', {i}.25, '2024-03-04 05:06:07.123', {})",
                i % 2
            )
        })
        .collect();
    c.query_drop(format!(
        "INSERT INTO t (id, name, amount, at, flag) VALUES {}",
        values.join(",")
    ))
    .unwrap();
    assert_eq!(c.affected_rows(), 1500);
    // INSERT keeps the stored row on a key conflict; REPLACE overwrites it.
    c.query_drop("INSERT INTO t (id, name) VALUES (1, 'ignored')")
        .unwrap();
    c.query_drop(
        "REPLACE INTO t (id, name, amount, at, flag) VALUES (2, 'replaced', 9.5, NULL, 1)",
    )
    .unwrap();
    c.query_drop("INSERT INTO t (id, name) VALUES (3, 'x') ON DUPLICATE KEY UPDATE name = 'upd'")
        .unwrap();
    expect_err(
        &mut c,
        "INSERT INTO t (id, amount) VALUES (4, 1) ON DUPLICATE KEY UPDATE amount = amount + 1",
        "constants",
    );
    // A value that does not fit is an error, not a silently altered row.
    expect_err(
        &mut c,
        "INSERT INTO t (id, name) VALUES ('not a number', 'x')",
        "Incorrect",
    );
    c.query_drop("INSERT INTO t (id, name) VALUES (1, 'ignored') -- a trailing comment")
        .unwrap();
    c.query_drop("DELETE FROM t WHERE id IN (5, 6)").unwrap();
    c.query_drop("UPDATE t SET name = 'updated' WHERE id = 7")
        .unwrap();
    type Row = (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = c
        .query("SELECT id, name, CAST(amount AS CHAR), CAST(at AS CHAR), flag FROM t WHERE id <= 7 ORDER BY id")
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1,
                Some("n1".into()),
                Some("1.25".into()),
                Some("2024-03-04 05:06:07.123".into()),
                Some(1)
            ),
            (
                2,
                Some("replaced".into()),
                Some("9.50".into()),
                None,
                Some(1)
            ),
            (
                3,
                Some("upd".into()),
                Some("3.25".into()),
                Some("2024-03-04 05:06:07.123".into()),
                Some(1)
            ),
            (
                4,
                Some("n4".into()),
                Some("4.25".into()),
                Some("2024-03-04 05:06:07.123".into()),
                Some(0)
            ),
            (
                7,
                Some("updated".into()),
                Some("7.25".into()),
                Some("2024-03-04 05:06:07.123".into()),
                Some(1)
            ),
        ]
    );
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!(n, Some(1498));
    let cols: Vec<String> = c
        .query(format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = '{db}' \
             AND table_name = 't' ORDER BY ordinal_position"
        ))
        .unwrap();
    assert_eq!(cols, ["id", "name", "amount", "at", "flag"]);
    // Several statements in one query, several results.
    let mut r = c.query_iter("SELECT 1; SELECT 2, 3").unwrap();
    let mut sets = 0;
    while let Some(set) = r.iter() {
        sets += 1;
        assert_eq!(set.count(), 1);
    }
    assert_eq!(sets, 2);
    drop(r);
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn protocol_commands() {
    let (mut c, db) = fresh_db("proto");
    assert!(c.ping().is_ok());
    c.select_db("information_schema").unwrap();
    let cur: Option<String> = c.query_first("SELECT DATABASE()").unwrap();
    assert_eq!(cur.as_deref(), Some("information_schema"));
    c.query_drop(format!("USE `{db}`")).unwrap();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    // A pool resets connections it takes back (COM_RESET_CONNECTION).
    let pool = mysql::Pool::new(mysql::Opts::from_url(&target().url).unwrap()).unwrap();
    for _ in 0..3 {
        let mut pc = pool.get_conn().unwrap();
        let one: Option<i64> = pc.query_first("SELECT 1").unwrap();
        assert_eq!(one, Some(1));
    }
    expect_err(&mut c, "SELECT * FROM no_such_table", "doesn't exist");
    let v: Option<String> = c.query_first("SELECT adb_version()").unwrap();
    eprintln!("  adb_version() = {v:?}");
    assert!(v.is_some_and(|v| v.starts_with('3')));
    if is_standin() {
        let v: Option<String> = c.query_first("SELECT CAST(@@version AS CHAR)").unwrap();
        assert_eq!(
            v.as_deref(),
            Some(tidemark_sandbox::standin::adb::SERVER_VERSION)
        );
    }
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn standin_only_limits_login_and_restart() {
    if !is_standin() {
        eprintln!(
            "skipped against a real cluster: the 16 MB statement size is documented as advice, \
             and wrong-password and restart checks need a server we control"
        );
        return;
    }
    // Its own stand-in: stopping it must not cut the other scenarios' connections.
    let s = AdbStandIn::start(&Options::default()).unwrap();
    let conn = || mysql::Conn::new(mysql::Opts::from_url(&s.url()).unwrap()).unwrap();
    let mut c = conn();
    let db = "limits";
    c.query_drop(format!("CREATE DATABASE {db}")).unwrap();
    c.select_db(db).unwrap();
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR)")
        .unwrap();
    let big = "x".repeat(16 << 20);
    expect_err(
        &mut c,
        &format!("INSERT INTO t (id, v) VALUES (1, '{big}')"),
        "limit of 16777216 bytes per statement",
    );
    // Just under the limit is fine.
    let fits = "y".repeat((16 << 20) - 100);
    c.query_drop(format!("INSERT INTO t (id, v) VALUES (2, '{fits}')"))
        .unwrap();
    let len: Option<i64> = c
        .query_first("SELECT LENGTH(v) FROM t WHERE id = 2")
        .unwrap();
    assert_eq!(len, Some(((16 << 20) - 100) as i64));

    let bad = format!("mysql://root:wrong@127.0.0.1:{}", s.port());
    match mysql::Conn::new(mysql::Opts::from_url(&bad).unwrap()) {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1045, "{}", e.message),
        other => panic!("a wrong password was not refused: {:?}", other.map(|_| ())),
    }

    // A stand-in stopped and started again keeps its data and port.
    s.stop();
    assert!(
        c.query_drop("SELECT 1").is_err(),
        "a connection survived the stop"
    );
    s.start_again().unwrap();
    let mut c = conn();
    c.select_db(db).unwrap();
    let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!(n, Some(1));
    assert!(norm(&show_create(&mut c, "t")).contains("DISTRIBUTEDBYHASH(ID)"));
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

#[test]
fn standin_spelling_option() {
    if !is_standin() {
        eprintln!("skipped against a real cluster: the spelling is the stand-in's option");
        return;
    }
    let s = AdbStandIn::start(&Options {
        spelling: Spelling::Distribute,
        password: "pw".into(),
        ..Options::default()
    })
    .unwrap();
    let mut c = mysql::Conn::new(mysql::Opts::from_url(&s.url()).unwrap()).unwrap();
    c.query_drop("CREATE DATABASE d; USE d; CREATE TABLE t (id INT PRIMARY KEY)")
        .unwrap();
    let ddl = show_create(&mut c, "t");
    assert!(ddl.contains("DISTRIBUTE BY HASH(`id`)"), "{ddl}");
}

#[test]
fn prepared_statements() {
    let (mut c, db) = fresh_db("prep");
    c.query_drop(
        "CREATE TABLE t (id BIGINT, name VARCHAR, d DOUBLE, at DATETIME, bin BINARY, \
         PRIMARY KEY (id)) DISTRIBUTED BY HASH(id)",
    )
    .unwrap();
    let at = mysql::Value::Date(2024, 5, 6, 7, 8, 9, 123000);
    c.exec_drop(
        "REPLACE INTO t (id, name, d, at, bin) VALUES (?, ?, ?, ?, ?)",
        (-5i64, "it's", 2.5f64, at, vec![0u8, 255, 7]),
    )
    .unwrap();
    c.exec_drop(
        "REPLACE INTO t (id, name, d, at, bin) VALUES (?, ?, ?, ?, ?)",
        (
            6u64,
            mysql::Value::NULL,
            1e300f64,
            mysql::Value::NULL,
            mysql::Value::NULL,
        ),
    )
    .unwrap();
    type Row = (i64, Option<String>, f64, Option<String>, Option<Vec<u8>>);
    let rows: Vec<Row> = c
        .exec(
            "SELECT id, name, d, CAST(at AS CHAR), bin FROM t WHERE id >= ? ORDER BY id",
            (-10,),
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                -5,
                Some("it's".into()),
                2.5,
                Some("2024-05-06 07:08:09.123".into()),
                Some(vec![0, 255, 7])
            ),
            (6, None, 1e300, None, None),
        ]
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).unwrap();
}

/// Tidemark's ADB source reads each table's binary log this way: `BINLOG=true` on the
/// table, its position from `SHOW MASTER STATUS FOR t`, then a binlog dump of that file
/// from that position, whose rows events are the table's. Not publicly documented: this
/// is the scenario to run against a real cluster (`TIDEMARK_TEST_ADB_URL`, with CDC
/// enabled) before relying on an ADB source's incremental migration.
#[test]
fn per_table_binlog_subscription() {
    use mysql::binlog::events::EventData;
    let (mut c, db) = fresh_db("binlog");
    c.query_drop(
        "CREATE TABLE logged (id BIGINT NOT NULL, v VARCHAR, PRIMARY KEY (id)) \
         DISTRIBUTED BY HASH(id) BINLOG=true",
    )
    .unwrap();
    c.query_drop("ALTER TABLE logged binlog_ttl='1d'").unwrap();
    let ddl = norm(&show_create(&mut c, "logged"));
    assert!(
        ddl.contains("BINLOG=TRUE") && ddl.contains("BINLOG_TTL='1D'"),
        "SHOW CREATE TABLE does not show the binlog settings: {ddl}"
    );
    let row: mysql::Row = c
        .query_first(format!("SHOW MASTER STATUS FOR `{db}`.`logged`"))
        .unwrap()
        .expect("SHOW MASTER STATUS FOR returns a row");
    let file: String = row.get(0).expect("a file");
    let pos: u64 = row.get(1).expect("a position");
    eprintln!("  SHOW MASTER STATUS FOR {db}.logged: {file}:{pos}");
    for i in 1..=3 {
        c.query_drop(format!("INSERT INTO logged VALUES ({i}, 'v{i}')"))
            .unwrap();
    }
    let mut stream = conn()
        .get_binlog_stream(
            mysql::BinlogRequest::new(4_100_000_000)
                .with_filename(file.as_bytes().to_vec())
                .with_pos(pos),
        )
        .expect("a binlog dump of the table's file is accepted");
    let (mut rows, deadline) = (0, Instant::now() + Duration::from_secs(60));
    while rows < 3 {
        assert!(
            Instant::now() < deadline,
            "no rows events for the 3 inserts in 60 s"
        );
        let ev = stream.next().expect("the stream ended").expect("an event");
        if let Some(EventData::RowsEvent(r)) = ev.read_data().expect("a readable event") {
            let tme = stream
                .get_tme(r.table_id())
                .expect("a table map before rows");
            assert_eq!(
                tme.table_name(),
                "logged",
                "rows of another table in its stream"
            );
            rows += r.rows(tme).count();
        }
    }
}
