//! Incremental migration under stress: every column type the binlog decoder supports
//! with a 100 000-row transaction under concurrent writes, repeated SIGKILLs (one in the
//! middle of a large transaction's apply), restarts of the source and of the destination
//! server mid-stream, and a resume whose binlog file was purged.
//!
//! The restart and purge tests disturb their servers, so they start their own
//! source/destination pair instead of using the binary's shared one.

mod common;

use common::{checksum, env, run_all, script, text, TaskDir};
use mysql::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_sandbox::{Options, Pair, Server};

// ---------------------------------------------------------------- helpers ------------

/// A root connection to a sandbox server by port (usable from writer threads).
fn connect(port: u16) -> mysql::Result<mysql::Conn> {
    mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .user(Some("root")),
    )
}

fn sql(port: u16, script: &str) {
    let mut c = connect(port).expect("connect");
    run_all(&mut c, script).unwrap_or_else(|e| panic!("SQL failed: {e}\n{script}"));
}

/// A source/destination pair of this test's own, started like the shared one: the source
/// with a ROW/FULL binlog in UTC+05:30, the destination in UTC-08:00.
fn private_pair() -> Pair {
    Pair::start_with(
        Options {
            time_zone: Some("+05:30".into()),
            ..Options::default()
        },
        Options {
            server_id: 2,
            time_zone: Some("-08:00".into()),
            ..Options::default()
        },
    )
    .expect("start a private MariaDB pair")
}

/// A running `tidemark run`, its stderr going to a file (a pipe nobody reads could fill
/// up and block the task).
struct Run {
    child: Child,
    log: PathBuf,
}

fn spawn(t: &TaskDir, extra: &[&str]) -> Run {
    static N: AtomicU64 = AtomicU64::new(0);
    let log = t
        .dir
        .path()
        .join(format!("run-{}.log", N.fetch_add(1, Ordering::Relaxed)));
    let err = std::fs::File::create(&log).expect("create the run log");
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress"])
        .args(extra)
        .arg(&t.file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn tidemark");
    Run { child, log }
}

impl Run {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill9(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        self.log()
    }

    /// Stops the task with SIGTERM and returns its log; asserts a clean exit.
    fn stop(mut self) -> String {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "tidemark did not stop within 60 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log();
        assert!(status.success(), "tidemark did not stop cleanly:\n{log}");
        log
    }

    /// Waits for the process to end by itself, at most `limit`.
    fn wait_exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return (s, self.log());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("tidemark still runs after {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn status_json(t: &TaskDir) -> serde_json::Value {
    let out = t.tidemark(&["status", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}\n{}", text(&out)))
}

/// Waits until the task is applying binlog changes.
fn wait_incremental(t: &TaskDir, run: &mut Run) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if run.child.try_wait().expect("try_wait").is_some() {
            panic!(
                "the task ended before the incremental phase:\n{}",
                run.log()
            );
        }
        let out = t.tidemark(&["status", "--json"]);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            // This run's status, not one an earlier (killed) run left behind.
            if v["status"] == "incremental" && v["status_pid"] == run.child.id() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the task never reached the incremental phase:\n{}",
        run.log()
    );
}

/// The tables (source table, destination table) of one database whose checksums differ;
/// empty when all are equal.
fn differing(src: u16, dst: u16, db: &str, tables: &[&str]) -> Vec<String> {
    let (Ok(mut s), Ok(mut d)) = (connect(src), connect(dst)) else {
        return vec!["(a server is unreachable)".into()];
    };
    tables
        .iter()
        .filter(|t| {
            let a = checksum(&mut s, db, t);
            a.is_none() || a != checksum(&mut d, db, t)
        })
        .map(|t| t.to_string())
        .collect()
}

/// Waits until every table has the same checksum on both sides; returns the tables
/// that still differ when `limit` is reached.
fn wait_equal(src: u16, dst: u16, db: &str, tables: &[&str], limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let diff = differing(src, dst, db, tables);
        if diff.is_empty() || started.elapsed() > limit {
            return diff;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether an error may go away by running the transaction again: a deadlock, a lock
/// wait timeout, or a connection lost to a server restart.
fn retryable(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::MySqlError(m) => matches!(m.code, 1213 | 1205 | 1053 | 1927 | 2006 | 2013),
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::CodecError(_) => {
            true
        }
        _ => false,
    }
}

/// Runs one transaction (the statements, then COMMIT); a retryable error rolls it back
/// and reconnects when needed. Other errors panic.
fn transaction(port: u16, c: &mut Option<mysql::Conn>, db: &str, stmts: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if c.is_none() {
            match connect(port).and_then(|mut x| {
                x.query_drop(format!(
                    "USE {db}; SET NAMES utf8mb4; SET time_zone = '+00:00'; SET sql_mode = 'ALLOW_INVALID_DATES'"
                ))?;
                Ok(x)
            }) {
                Ok(x) => *c = Some(x),
                Err(e) if retryable(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                Err(e) => panic!("the writer cannot connect: {e}"),
            }
        }
        let conn = c.as_mut().expect("connected");
        let result = (|| {
            conn.query_drop("START TRANSACTION")?;
            for s in stmts {
                conn.query_drop(s)?;
            }
            conn.query_drop("COMMIT")
        })();
        match result {
            Ok(()) => return,
            Err(e) if retryable(&e) && Instant::now() < deadline => {
                if conn.query_drop("ROLLBACK").is_err() {
                    *c = None;
                }
            }
            Err(e) => panic!("writer SQL failed: {e}\n{}", stmts.join(";\n")),
        }
    }
}

// ---------------------------------------------------------------- the shop ----------

const SHOP_TABLES: [&str; 4] = ["orders", "order_lines", "events", "big"];

fn create_shop(port: u16, db: &str) {
    sql(
        port,
        &format!(
            "CREATE DATABASE {db}; USE {db};
             CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total DECIMAL(12,2), note VARCHAR(200), KEY (customer));
             CREATE TABLE order_lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line));
             CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));
             CREATE TABLE big (id INT PRIMARY KEY, a INT, b VARCHAR(100), KEY (a));
             INSERT INTO orders SELECT seq, seq % 97, seq * 1.5, CONCAT('order ', seq) FROM seq_1_to_2000;
             INSERT INTO order_lines SELECT seq, 1, seq % 7 FROM seq_1_to_2000;
             INSERT INTO events (what) VALUES ('a'), ('b');
             INSERT INTO big SELECT seq, seq, 'initial' FROM seq_1_to_100;"
        ),
    );
}

/// One random transaction of 1–5 statements on the shop tables.
fn shop_transaction(rng: &mut StdRng) -> Vec<String> {
    let mut stmts = Vec::new();
    for _ in 0..rng.gen_range(1..=5) {
        let id: u32 = rng.gen_range(1..=3000);
        stmts.push(match rng.gen_range(0..12) {
            0..=3 => format!(
                "INSERT INTO orders (id, customer, total, note) VALUES ({id}, {}, {}.{:02}, 'n{id}') ON DUPLICATE KEY UPDATE total = total + 1",
                rng.gen_range(1..100),
                rng.gen_range(0..1000),
                rng.gen_range(0..100)
            ),
            4..=6 => format!("UPDATE orders SET total = total * 2, note = CONCAT(note, 'u') WHERE id = {id}"),
            7 => format!("UPDATE IGNORE orders SET id = id + 10000 + {} WHERE id = {id}", rng.gen_range(0..1000)),
            8 => format!("DELETE FROM orders WHERE id = {id}"),
            9 => "INSERT INTO events (what) VALUES ('tick')".to_string(),
            10 => "DELETE FROM events WHERE what = 'tick' ORDER BY id LIMIT 1".to_string(),
            _ => format!(
                "INSERT INTO order_lines (order_id, line, qty) VALUES ({id}, {}, 1) ON DUPLICATE KEY UPDATE qty = qty + 1",
                rng.gen_range(1..4)
            ),
        });
    }
    stmts
}

/// Random shop transactions until `stop` is set; returns how many committed.
fn shop_writer(port: u16, db: String, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let stmts = shop_transaction(&mut rng);
        transaction(port, &mut c, &db, &stmts);
        n += 1;
        std::thread::sleep(Duration::from_millis(3));
    }
    n
}

/// One transaction inserting `rows` rows into `big` (the even ids from `first`),
/// updating some of them and a few orders, and deleting some of the new rows (unless
/// `no_delete`), as one source transaction.
fn big_transaction(db: &str, first: u32, rows: u32) -> Vec<String> {
    let mut stmts = big_transaction_no_delete(first, rows);
    stmts.push(format!(
        "DELETE FROM {db}.big WHERE id BETWEEN {} AND {}",
        first + 100,
        first + 149
    ));
    stmts
}

fn big_transaction_no_delete(first: u32, rows: u32) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO big SELECT {first} + 2 * seq, seq % 1000, CONCAT('bulk ', seq, ' ', REPEAT('x', seq % 50)) FROM seq_0_to_{}",
            rows - 1
        ),
        "UPDATE orders SET note = CONCAT(note, ' big') WHERE id <= 50".to_string(),
        format!("UPDATE big SET a = -a WHERE id BETWEEN {first} AND {first} + 99"),
    ]
}

// ---------------------------------------------------------------- the zoo -----------

/// Every column type of tests/types.rs's zoo: all that incremental migration decodes
/// (MariaDB's UUID / INET4 / INET6 are refused by its precheck and are left out).
const ZOO_DDL: &str = "CREATE TABLE zoo (
   id INT NOT NULL PRIMARY KEY,
   ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
   mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
   bi BIGINT, biu BIGINT UNSIGNED,
   dec65 DECIMAL(65,30),
   f FLOAT, d DOUBLE,
   b1 BIT(1), b13 BIT(13), b64 BIT(64),
   dt DATE, dtm DATETIME, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL DEFAULT NULL,
   tm TIME, tm6 TIME(6), tm2 TIME(2), yr YEAR,
   emoji VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
   lat VARCHAR(64) CHARACTER SET latin1, lat_txt TEXT CHARACTER SET latin1,
   bin BINARY(6), vbin VARBINARY(64), blb BLOB, lblob LONGBLOB,
   ch CHAR(10), vch VARCHAR(20),
   en ENUM('', 'zebra', 'apple', 'Mango'),
   st SET('', 'x', 'y', 'z'),
   js JSON,
   geo GEOMETRY, pt POINT NOT NULL, ls LINESTRING, pg POLYGON,
   gv BIGINT AS (i + 1) VIRTUAL,
   gs VARCHAR(80) AS (CONCAT('<', emoji, '>')) PERSISTENT,
   inv INT INVISIBLE,
   SPATIAL KEY sp_pt (pt),
   KEY k_gs (gs)
 ) ENGINE=InnoDB";

const ZOO_COLUMNS: [&str; 42] = [
    "id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "dec65", "f", "d", "b1",
    "b13", "b64", "dt", "dtm", "dt6", "ts3", "tm", "tm6", "tm2", "yr", "emoji", "lat", "lat_txt",
    "bin", "vbin", "blb", "lblob", "ch", "vch", "en", "st", "js", "geo", "pt", "ls", "pg", "inv",
];

/// `n` random bytes as a hex literal.
fn hex_bytes(rng: &mut StdRng, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    let mut s = String::with_capacity(2 * n + 3);
    s.push_str("X'");
    for x in b {
        s.push_str(&format!("{x:02X}"));
    }
    s.push('\'');
    s
}

/// A random SQL value for a zoo column: NULLs, extremes, zero and invalid dates, long
/// blobs, awkward text and JSON.
fn zoo_value(rng: &mut StdRng, col: &str) -> String {
    fn pick(rng: &mut StdRng, options: &[&str]) -> String {
        options[rng.gen_range(0..options.len())].to_string()
    }
    // One value in eight is NULL, except for the NOT NULL columns.
    if col != "pt" && rng.gen_range(0..8) == 0 {
        return "NULL".into();
    }
    let r: i64 = rng.gen();
    match col {
        "ti" => pick(rng, &["-128", "127", "0", &(r % 128).to_string()]),
        "tiu" => pick(rng, &["0", "255", &(r.rem_euclid(256)).to_string()]),
        "si" => pick(rng, &["-32768", "32767", &(r % 32768).to_string()]),
        "siu" => pick(rng, &["0", "65535", &(r.rem_euclid(65536)).to_string()]),
        "mi" => pick(rng, &["-8388608", "8388607", &(r % 8388608).to_string()]),
        "miu" => pick(rng, &["0", "16777215", &(r.rem_euclid(16777216)).to_string()]),
        "i" => pick(rng, &["-2147483648", "2147483646", &(r % 2147483647).to_string()]),
        "iu" => pick(rng, &["0", "4294967295", &(r.rem_euclid(4294967296)).to_string()]),
        "bi" => pick(
            rng,
            &["-9223372036854775808", "9223372036854775807", &r.to_string()],
        ),
        "biu" => pick(
            rng,
            &["0", "18446744073709551615", &(r as u64).to_string()],
        ),
        "dec65" => pick(
            rng,
            &[
                "-99999999999999999999999999999999999.999999999999999999999999999999",
                "99999999999999999999999999999999999.999999999999999999999999999999",
                "0.000000000000000000000000000001",
                "-0.000000000000000000000000000001",
                "0",
                &format!("{}.{:030}", r % 1_000_000_000_000, r.rem_euclid(1_000_000_007)),
            ],
        ),
        "f" => pick(
            rng,
            &[
                "-3.4028234663852886e38",
                "3.4028234663852886e38",
                "1.401298464324817e-45",
                "-0e0",
                &format!("{}e{}", r % 100000, r.rem_euclid(60) - 30),
            ],
        ),
        "d" => pick(
            rng,
            &[
                "-1.7976931348623157e308",
                "1.7976931348623157e308",
                "4.9406564584124654e-324",
                "-0e0",
                &format!("{}e{}", r % 100000000, r.rem_euclid(600) - 300),
            ],
        ),
        "b1" => pick(rng, &["b'0'", "b'1'"]),
        "b13" => pick(
            rng,
            &["b'0'", "b'1111111111111'", &(r.rem_euclid(8192)).to_string()],
        ),
        "b64" => pick(
            rng,
            &[
                "b'0'",
                "b'1111111111111111111111111111111111111111111111111111111111111111'",
                "b'1000000000000000000000000000000000000000000000000000000000000001'",
                &format!("{}", r as u64),
            ],
        ),
        "dt" => pick(
            rng,
            &["'0000-00-00'", "'0001-01-01'", "'9999-12-31'", "'2021-02-31'", "'2024-02-29'", "CURDATE()"],
        ),
        "dtm" => pick(
            rng,
            &[
                "'0000-00-00 00:00:00'",
                "'0001-01-01 00:00:00'",
                "'9999-12-31 23:59:59'",
                "'2021-04-31 10:00:00'",
                "NOW()",
            ],
        ),
        "dt6" => pick(
            rng,
            &[
                "'0000-00-00 00:00:00.000000'",
                "'0001-01-01 00:00:00.000000'",
                "'9999-12-31 23:59:59.999999'",
                "'2024-02-29 12:34:56.000001'",
                "NOW(6)",
            ],
        ),
        "ts3" => pick(
            rng,
            &[
                "'0000-00-00 00:00:00'",
                "'1970-01-01 00:00:01.000'",
                "'2038-01-19 03:14:07.999'",
                "'2001-09-09 01:46:40.123'",
                "NOW(3)",
            ],
        ),
        "tm" => pick(rng, &["'-838:59:59'", "'838:59:59'", "'00:00:00'", "'-12:34:56'"]),
        "tm6" => pick(
            rng,
            &["'-838:59:59.000000'", "'838:59:59.000000'", "'-00:00:00.000001'", "'-00:00:01.250000'"],
        ),
        // Negative with a fraction: mysql_common's TIME(1|2) decoding (vendor/README.md).
        "tm2" => pick(
            rng,
            &["'-838:59:58.99'", "'-12:05:06.78'", "'-00:00:00.01'", "'12:05:06.78'"],
        ),
        "yr" => pick(rng, &["0", "1901", "2155", "2000"]),
        "emoji" => pick(
            rng,
            &[
                "''",
                "'😀🎉 ñ 中文 \\\\ \\' \" \\0 end'",
                "'Ünïcödé ✓'",
                "'\\t\\n\\r'",
                &format!("'r{} 😀 é'", r % 1000),
            ],
        ),
        "lat" => pick(rng, &["''", "'éßÿ'", "'Ñandú'", "'a\\tb'"]),
        "lat_txt" => pick(rng, &["''", "REPEAT('àéîõü ßÿ ', 300)", "'ÿ'", "REPEAT('x', 65535)"]),
        "bin" => {
            let random = hex_bytes(rng, 6);
            pick(rng, &["X''", "X'00FF00FF0000'", "X'0A0D1A5C2700'", &random])
        }
        "vbin" => {
            let n = rng.gen_range(0..=64);
            let random = hex_bytes(rng, n);
            pick(rng, &["X''", "X'00'", &random])
        }
        "blb" => {
            let n = *[0usize, 1, 255, 256, 4000, 65535]
                .get(rng.gen_range(0..6))
                .unwrap_or(&0);
            hex_bytes(rng, n)
        }
        "lblob" => {
            let n = *[0usize, 1, 1000, 70000, 250_000]
                .get(rng.gen_range(0..5))
                .unwrap_or(&0);
            hex_bytes(rng, n)
        }
        "ch" => pick(rng, &["''", "'ab   '", "' a'", "'ñ中'"]),
        "vch" => pick(rng, &["''", "'ab   '", "' a '", "'trailing  '"]),
        "en" => pick(rng, &["''", "'zebra'", "'apple'", "'Mango'", "1", "4"]),
        "st" => pick(rng, &["''", "'x'", "'x,y,z'", "15", "0", "'y,z'"]),
        "js" => pick(
            rng,
            &[
                "'[]'",
                "'{}'",
                "'null'",
                "'{\"big\": 123456789012345678901234567890123456789, \"tiny\": 1e-300, \"u\": \"\\\\u00e9\\\\ud83d\\\\ude00\", \"nested\": [[[1, [2, [3, []]]]]]}'",
                "'[1e308, -1e-308, 0.1, 18446744073709551616, -9223372036854775809]'",
                "'\"\\\\u0000 and \\\\u001f\"'",
                &format!("JSON_OBJECT('n', {r}, 'a', JSON_ARRAY({}, 'é', JSON_ARRAY()))", r % 77),
            ],
        ),
        "geo" => pick(
            rng,
            &[
                "ST_GeomFromText('POINT(0 0)')",
                "ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))')",
                "ST_GeomFromText('MULTIPOINT(1 1, 2 2)')",
                "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))')",
            ],
        ),
        "pt" => pick(
            rng,
            &[
                "ST_GeomFromText('POINT(0 0)')",
                "ST_GeomFromText('POINT(-1.7976931348623157e308 1e-300)')",
                &format!("POINT({}, {})", r % 1000, (r >> 20) % 1000),
            ],
        ),
        "ls" => pick(
            rng,
            &[
                "ST_GeomFromText('LINESTRING(0 0, 1 1)')",
                "ST_GeomFromText('LINESTRING(0 0, 1e300 -1e300, 0.5 0.25, 3 4, 5 6, 7 8)')",
            ],
        ),
        "pg" => pick(
            rng,
            &[
                "ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))')",
                "ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 2, 1 1))')",
            ],
        ),
        "inv" => pick(rng, &["-2147483648", "2147483647", &(r % 1000).to_string()]),
        other => panic!("no generator for zoo column {other}"),
    }
}

fn zoo_row(rng: &mut StdRng, id: i64) -> String {
    let values: Vec<String> = ZOO_COLUMNS
        .iter()
        .map(|c| {
            if *c == "id" {
                id.to_string()
            } else {
                zoo_value(rng, c)
            }
        })
        .collect();
    format!("({})", values.join(", "))
}

/// Bulk zoo rows with ids `first + 1 ..= first + n`, computed by the server.
fn zoo_bulk(first: i64, n: u32) -> String {
    format!(
        "INSERT INTO zoo ({cols})
         SELECT {first} + seq, seq % 256 - 128, seq % 256, seq * 7 % 65536 - 32768, seq * 7 % 65536,
           seq * 1013 % 16777216 - 8388608, seq * 1013 % 16777216,
           IF(seq % 2, 1, -1) * (seq * 1000003 % 2147483647), seq * 1000003 % 4294967295,
           IF(seq % 2, -1, 1) * seq * 1844674407370955, 18446744073709551615 - seq * 3,
           IF(seq % 3, 1, -1) * seq / 7,
           seq / 3, IF(seq % 2, -1, 1) * seq / 7e10,
           seq % 2, seq % 8192, seq * 2654435761,
           '2000-01-01' + INTERVAL seq DAY, '1960-01-01' + INTERVAL seq * 86399 SECOND,
           '2000-01-01' + INTERVAL seq * 1234567 MICROSECOND,
           FROM_UNIXTIME(1000000000 + seq * 86401 + (seq % 1000) / 1000),
           SEC_TO_TIME(seq * 97 - 250000), SEC_TO_TIME(seq * 601 - 1500000 + seq * 0.000001),
           SEC_TO_TIME(seq * 13 - 400000 + (seq % 100) * 0.01),
           1901 + seq % 255,
           CONCAT('r', seq, ' 😀 é'), CONCAT('é', seq, 'ß'), IF(seq % 5 = 0, NULL, REPEAT('ÿ', seq % 50)),
           UNHEX(LPAD(HEX(seq), 12, '0')), UNHEX(MD5(seq)), UNHEX(SHA2(seq, 512)),
           IF(seq % 10 = 0, REPEAT(UNHEX(SHA2(seq, 256)), 50), NULL),
           CONCAT('c', seq, '  '), CONCAT('v', seq, ' '),
           ELT(1 + seq % 4, '', 'zebra', 'apple', 'Mango'), seq % 16,
           JSON_OBJECT('n', seq, 'a', JSON_ARRAY(seq, 'é', seq / 3, JSON_ARRAY())),
           IF(seq % 3 = 0, NULL, POINT(seq / 7, seq / 11)), POINT(seq, -seq),
           IF(seq % 4 = 0, NULL, ST_GeomFromText(CONCAT('LINESTRING(0 0, ', seq, ' ', seq, ')'))),
           NULL, seq
         FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_{n}) s",
        cols = ZOO_COLUMNS.join(", ")
    )
}

/// One random transaction of 1–5 statements on the zoo (and the plain table).
fn zoo_transaction(rng: &mut StdRng) -> Vec<String> {
    let cols = ZOO_COLUMNS.join(", ");
    let mut stmts = Vec::new();
    for _ in 0..rng.gen_range(1..=5) {
        let id: i64 = rng.gen_range(1..=3500);
        let stmt = match rng.gen_range(0..20) {
            0..=2 => format!("INSERT IGNORE INTO zoo ({cols}) VALUES {}", zoo_row(rng, id)),
            3 => format!("REPLACE INTO zoo ({cols}) VALUES {}", zoo_row(rng, id)),
            4 => {
                let rows: Vec<String> = (0..rng.gen_range(2..6))
                    .map(|k| zoo_row(rng, 600_000 + id * 8 + k))
                    .collect();
                format!("INSERT IGNORE INTO zoo ({cols}) VALUES {}", rows.join(", "))
            }
            5..=9 => {
                let sets: Vec<String> = (0..rng.gen_range(1..5))
                    .map(|_| {
                        let c = ZOO_COLUMNS[rng.gen_range(1..ZOO_COLUMNS.len())];
                        format!("{c} = {}", zoo_value(rng, c))
                    })
                    .collect();
                format!("UPDATE zoo SET {} WHERE id = {id}", sets.join(", "))
            }
            10 => format!(
                "UPDATE zoo SET ti = IF(ti < 100, ti + 1, -5), js = JSON_SET(COALESCE(js, '{{}}'), '$.touched', {id}) WHERE id BETWEEN {id} AND {id} + 20"
            ),
            11 => format!("UPDATE zoo SET lblob = CONCAT(COALESCE(lblob, ''), {}) WHERE id = {id}", hex_bytes(rng, 3000)),
            // Primary-key changes: a move, and a swap of two keys through a third.
            12 => format!("UPDATE IGNORE zoo SET id = id + 500000 WHERE id = {id}"),
            13 => {
                let other = rng.gen_range(1..=3500);
                stmts.push(format!("UPDATE IGNORE zoo SET id = -{id} WHERE id = {id}"));
                stmts.push(format!("UPDATE IGNORE zoo SET id = {id} WHERE id = {other}"));
                format!("UPDATE IGNORE zoo SET id = {other} WHERE id = -{id}")
            }
            14 => format!("UPDATE IGNORE zoo SET id = id - 500000 WHERE id BETWEEN 500000 AND 503500 AND id % 7 = {}", id % 7),
            15 => format!("DELETE FROM zoo WHERE id = {id}"),
            16 => format!("DELETE FROM zoo WHERE id BETWEEN {id} AND {id} + 3"),
            17 => format!(
                "INSERT INTO plain (id, a, b, c) VALUES ({id}, {}, 'p{id}', NOW(6)) ON DUPLICATE KEY UPDATE a = a + 1, b = CONCAT(b, '+')",
                rng.gen_range(-1000..1000)
            ),
            18 => format!("UPDATE plain SET id = id + 2000000 WHERE id = {id}"),
            _ => format!("DELETE FROM plain WHERE id = {id}"),
        };
        stmts.push(stmt);
    }
    stmts
}

// ---------------------------------------------------------------- 1 ------------------

/// Schema + full + incremental of every column type the binlog decoder supports, while
/// random writes (NULLs, extremes, long blobs, zero dates, JSON, primary-key changes,
/// multi-statement transactions) and one 100 000-row transaction run on the source.
#[test]
fn type_zoo_and_big_transaction_under_writes() {
    let db = "rob_zoo";
    let e = env();
    let (sp, dp) = (e.pair.source.port, e.pair.destination.port);
    sql(
        sp,
        &format!(
            "SET NAMES utf8mb4; SET time_zone = '+00:00';
             CREATE DATABASE {db}; USE {db};
             {ZOO_DDL};
             CREATE TABLE plain (id INT PRIMARY KEY, a INT, b VARCHAR(100), c DATETIME(6), KEY (a));
             INSERT INTO plain SELECT seq, seq % 10, CONCAT('p', seq), '2020-01-01' + INTERVAL seq MINUTE FROM seq_1_to_3000;
             INSERT INTO zoo (id, pt) VALUES (3, ST_GeomFromText('POINT(1 2)'));
             {bulk};",
            bulk = zoo_bulk(1000, 2000)
        ),
    );
    // Rows of extremes and zero dates, as the writer makes them.
    let mut rng = StdRng::seed_from_u64(7);
    let mut c = None;
    for id in [1, 2, 4, 5, 6, 7] {
        let row = zoo_row(&mut rng, id);
        transaction(
            sp,
            &mut c,
            db,
            &[format!(
                "INSERT INTO zoo ({}) VALUES {row}",
                ZOO_COLUMNS.join(", ")
            )],
        );
    }
    drop(c);

    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [full]\nchunk_rows = 1000\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let mut run = spawn(&t, &[]);
    wait_incremental(&t, &mut run);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|k| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + k);
                let mut c = None;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let stmts = zoo_transaction(&mut rng);
                    transaction(sp, &mut c, db, &stmts);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    // The big transaction: 100 000 rows in the plain table, zoo rows, updates and
    // deletes, in one source transaction.
    let started = Instant::now();
    let mut c = None;
    transaction(
        sp,
        &mut c,
        db,
        &[
            "INSERT INTO plain SELECT 1000000 + seq, seq % 1000, CONCAT('bulk ', seq), '2021-01-01' + INTERVAL seq SECOND FROM seq_1_to_100000".into(),
            zoo_bulk(300_000, 1000),
            "UPDATE zoo SET js = JSON_ARRAY(id), lblob = NULL WHERE id BETWEEN 1000 AND 1100".into(),
            "DELETE FROM plain WHERE id BETWEEN 1000500 AND 1000599".into(),
            "UPDATE plain SET id = id + 5000000 WHERE id BETWEEN 1000600 AND 1000699".into(),
        ],
    );
    eprintln!(
        "the 100 000-row transaction committed in {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let txns: u64 = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    eprintln!("{txns} writer transactions");
    let started = Instant::now();
    let diff = wait_equal(sp, dp, db, &["zoo", "plain"], Duration::from_secs(120));
    eprintln!("caught up {:?} after the writes stopped", started.elapsed());
    let log = run.stop();
    assert!(diff.is_empty(), "{diff:?} differ after the writes:\n{log}");
    let mut s = connect(sp).unwrap();
    let n: Option<u64> = s
        .query_first(format!(
            "SELECT COUNT(*) FROM {db}.plain WHERE id > 1000000"
        ))
        .unwrap();
    assert!(n.unwrap() >= 99_800, "the big transaction's rows: {n:?}");
    // The writes reached what they aimed at (checked on the destination).
    let mut d = connect(dp).unwrap();
    let probe = common::rows(
        &mut d,
        &format!(
            "SELECT SUM(LENGTH(lblob) >= 250000), SUM(CAST(dt AS CHAR) = '0000-00-00'),
               SUM(id BETWEEN 500000 AND 503500), SUM(id > 600000), SUM(id BETWEEN 300001 AND 301000),
               SUM(b64 = 18446744073709551615), SUM(js IS NULL), SUM(yr = 0), SUM(f = -3.4028234663852886e38)
             FROM {db}.zoo"
        ),
    );
    let counts: Vec<u64> = probe[0]
        .iter()
        .map(|v| mysql::from_value_opt::<u64>(v.clone()).unwrap_or(0))
        .collect();
    assert!(
        counts.iter().all(|&c| c > 0),
        "some kinds of values never reached the destination: {counts:?}"
    );
    assert_eq!(status_json(&t)["status"], "stopped");
}

// ---------------------------------------------------------------- 2 ------------------

/// Six SIGKILLs at random moments while a writer runs: during the copy, mid-stream,
/// right after a 20 000-row transaction committed on the source (while it is read), and
/// while that transaction is being applied. Each restart resumes; nothing is lost or
/// doubled.
#[test]
fn five_sigkills_mid_stream() {
    let db = "rob_kill";
    let e = env();
    let (sp, dp) = (e.pair.source.port, e.pair.destination.port);
    create_shop(sp, db);
    // Two rows amid the keys of a large transaction below (even ids from 2 000 000):
    // a destination session locks the gap between them, which holds one of its keys.
    sql(
        sp,
        &format!("INSERT INTO {db}.big VALUES (2020001, 0, 'sentinel'), (2020003, 0, 'sentinel')"),
    );
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [full]\nchunk_rows = 1000\n\
         [incremental]\nbatch_rows = 50\nthreads = 3\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || shop_writer(sp, db.to_string(), 11, stop))
    };
    let mut rng = StdRng::from_entropy();
    let mut logs = String::new();
    let mut kills = 0;
    let mut c = None;

    // Random moments, the first ones possibly during the full copy.
    for _ in 0..3 {
        let run = spawn(&t, &[]);
        std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3500)));
        logs += &run.kill9();
        kills += 1;
    }

    // Right after a large transaction committed: the task is reading or applying it.
    let mut run = spawn(&t, &[]);
    wait_incremental(&t, &mut run);
    transaction(sp, &mut c, db, &big_transaction(db, 1_000_000, 20_000));
    std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
    logs += &run.kill9();
    kills += 1;

    // While a large transaction is being applied. A destination session holds a gap
    // lock in the middle of the transaction's key range, so the apply connection that
    // writes the key in that gap waits, with rows changed but not committed, while other
    // connections may already have committed their shares of the batch. The task is
    // killed in that state.
    let mut run = spawn(&t, &[]);
    wait_incremental(&t, &mut run);
    std::thread::sleep(Duration::from_millis(500));
    let mut dst = connect(dp).expect("destination");
    let first = 2_000_000;
    let mid = first + 20_000;
    script(
        &mut dst,
        &format!(
            "START TRANSACTION; SELECT COUNT(*) FROM {db}.big WHERE id = {} FOR UPDATE",
            mid + 2
        ),
    );
    // No deletes in this one: deleting keys the destination does not have takes gap
    // locks that would make every apply connection wait, not only the one at the lock.
    transaction(sp, &mut c, db, &big_transaction_no_delete(first, 20_000));
    let started = Instant::now();
    let mut blocked = None;
    while started.elapsed() < Duration::from_secs(30) && blocked.is_none() {
        blocked = dst
            .query_first::<u64, _>(
                "SELECT trx_rows_modified FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
            )
            .expect("innodb_trx");
        // INNODB_TRX is a cache refreshed only when it was not read for 100 ms.
        std::thread::sleep(Duration::from_millis(250));
    }
    // Some other rows of the batch may still be on their way: give them a moment.
    std::thread::sleep(Duration::from_millis(300));
    let partly: u64 = dst
        .query_first(format!("SELECT COUNT(*) FROM {db}.big WHERE id > {first}"))
        .expect("count")
        .unwrap_or(0);
    logs += &run.kill9();
    kills += 1;
    script(&mut dst, "ROLLBACK");
    drop(dst);
    let Some(blocked_rows) = blocked else {
        let dump = |port: u16| -> String {
            let mut c = connect(port).unwrap();
            let r = common::rows(&mut c, "SELECT id, user, command, time, state, LEFT(info, 120) FROM information_schema.processlist");
            let t = common::rows(&mut c, "SELECT trx_id, trx_state, trx_rows_modified, trx_mysql_thread_id, LEFT(trx_query, 80) FROM information_schema.innodb_trx");
            format!("{r:?}\n{t:?}")
        };
        eprintln!(
            "SOURCE {}\nDEST {}\nSTATUS {}",
            dump(sp),
            dump(dp),
            text(&t.tidemark(&["status"]))
        );
        panic!("the apply of the large transaction never waited on the destination's lock ({partly} rows arrived):\n{logs}");
    };
    eprintln!(
        "killed while an apply connection waited with {blocked_rows} rows changed, {partly} of the 20 000 rows committed"
    );

    // And one more at a random moment.
    let run = spawn(&t, &[]);
    std::thread::sleep(Duration::from_millis(rng.gen_range(500..2500)));
    logs += &run.kill9();
    kills += 1;
    assert!(kills >= 5);

    stop.store(true, Ordering::Relaxed);
    let txns = writer.join().expect("writer");
    eprintln!("{kills} SIGKILLs, {txns} writer transactions");
    let mut run = spawn(&t, &[]);
    // A SIGTERM before the task runs would not be a clean stop.
    wait_incremental(&t, &mut run);
    let diff = wait_equal(sp, dp, db, &SHOP_TABLES, Duration::from_secs(90));
    let log = run.stop();
    assert!(
        diff.is_empty(),
        "{diff:?} differ after {kills} SIGKILLs:\n{log}\n--- earlier runs ---\n{logs}"
    );
}

// ---------------------------------------------------------------- 3 ------------------

/// Restarts one server of a private pair while the task runs and a writer writes; the
/// task must reconnect by itself and catch up.
fn restart_mid_stream(which: &str) {
    let pair = private_pair();
    let (sp, dp) = (pair.source.port, pair.destination.port);
    let db = "rob_restart";
    create_shop(sp, db);
    let t = TaskDir::with_urls(
        &pair.source.url(),
        &pair.destination.url(),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [incremental]\nbatch_rows = 200\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let mut run = spawn(&t, &[]);
    wait_incremental(&t, &mut run);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || shop_writer(sp, db.to_string(), 21, stop))
    };
    std::thread::sleep(Duration::from_secs(2));
    let server: &Server = if which == "source" {
        &pair.source
    } else {
        &pair.destination
    };
    // Twice: once idle-ish (after the task caught up), once under a large transaction.
    server
        .restart(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("restarting the {which}: {e:#}"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.child.try_wait().expect("try_wait").is_none(),
        "the task ended after the {which} restarted:\n{}",
        run.log()
    );
    let mut c = None;
    transaction(sp, &mut c, db, &big_transaction(db, 1_000_000, 20_000));
    std::thread::sleep(Duration::from_millis(300));
    server
        .restart(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("restarting the {which}: {e:#}"));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let txns = writer.join().expect("writer");
    eprintln!("{txns} writer transactions");
    let diff = wait_equal(sp, dp, db, &SHOP_TABLES, Duration::from_secs(90));
    let alive = run.child.try_wait().expect("try_wait").is_none();
    let log = if alive { run.stop() } else { run.log() };
    assert!(alive, "the task ended after the {which} restarted:\n{log}");
    assert!(
        diff.is_empty(),
        "{diff:?} differ after the {which} restarted:\n{log}"
    );
    assert!(
        log.contains("reconnecting") || log.contains("retrying"),
        "no reconnection logged:\n{log}"
    );
    assert_eq!(status_json(&t)["status"], "stopped");
}

/// A clean shutdown of the source ends the binlog dump without an error packet: that end
/// of stream must be retried as a lost connection, not fail the task.
#[test]
fn source_restart_mid_stream() {
    restart_mid_stream("source");
}

#[test]
fn destination_restart_mid_stream() {
    restart_mid_stream("destination");
}

// ---------------------------------------------------------------- 4 ------------------

/// The binlog file of the checkpoint was purged while the task was stopped: the next
/// run fails, says why and how to recover, and the status is "failed".
#[test]
fn purged_binlog_before_resume_fails_clearly() {
    let pair = private_pair();
    let (sp, dp) = (pair.source.port, pair.destination.port);
    let db = "rob_purge";
    sql(
        sp,
        &format!(
            "CREATE DATABASE {db}; USE {db};
             CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
             INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_500;"
        ),
    );
    let t = TaskDir::with_urls(
        &pair.source.url(),
        &pair.destination.url(),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let mut run = spawn(&t, &[]);
    wait_incremental(&t, &mut run);
    sql(
        sp,
        &format!(
            "USE {db}; INSERT INTO t VALUES (1000, 'live'); UPDATE t SET v = 'u' WHERE id < 10;"
        ),
    );
    let diff = wait_equal(sp, dp, db, &["t"], Duration::from_secs(60));
    let log = run.stop();
    assert!(diff.is_empty(), "not caught up before the purge:\n{log}");

    let mut s = connect(sp).unwrap();
    let master = |s: &mut mysql::Conn| -> String {
        let r: mysql::Row = s.query_first("SHOW MASTER STATUS").unwrap().unwrap();
        r.get(0).unwrap()
    };
    let before = master(&mut s);
    script(&mut s, "FLUSH BINARY LOGS");
    script(&mut s, &format!("INSERT INTO {db}.t VALUES (1001, 'lost')"));
    script(&mut s, "FLUSH BINARY LOGS");
    script(
        &mut s,
        &format!("INSERT INTO {db}.t VALUES (1002, 'lost too')"),
    );
    let newest = master(&mut s);
    assert_ne!(before, newest);
    // The server keeps a file while a dump thread still reads it (the stopped task's,
    // until the server notices its connection is gone) or while InnoDB may still need
    // it for recovery: purge until the checkpoint's file is gone.
    let started = Instant::now();
    loop {
        script(&mut s, &format!("PURGE BINARY LOGS TO '{newest}'"));
        let files: Vec<String> = s
            .query_map("SHOW BINARY LOGS", |r: mysql::Row| {
                r.get::<String, _>(0).unwrap()
            })
            .unwrap();
        if !files.contains(&before) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{before} was not purged: {files:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let (status, log) = spawn(&t, &[]).wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "the run succeeded after the purge:\n{log}"
    );
    let error = log
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(
        error.contains("purged") && error.contains("rerun the task with full migration"),
        "the failure does not say the binlog was purged and how to recover:\n{log}"
    );
    let status = status_json(&t);
    assert_eq!(status["status"], "failed", "{log}");
    assert!(
        status["error"].as_str().unwrap_or("").contains("purged"),
        "{status}"
    );
    // The destination was left as it was: nothing after the purge point was applied.
    let mut d = connect(dp).unwrap();
    let n: Option<u64> = d
        .query_first(format!("SELECT COUNT(*) FROM {db}.t WHERE id > 1000"))
        .unwrap();
    assert_eq!(n, Some(0));
}
