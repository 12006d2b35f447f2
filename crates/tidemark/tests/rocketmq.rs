//! MariaDB → RocketMQ end to end, against a real name server and broker: full +
//! incremental under concurrent writes in every format, rebuilt by a consumer and
//! compared value by value with the source; per-key order; large rows; a broker restart
//! mid-stream; bad input.

mod common;
#[path = "consumers/flink.rs"]
mod flink;

use common::{env, spawn, stop, text, wait_incremental, TaskDir};
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tidemark::sink::rocketmq::client::{send_all, Client, Message, Outbox, Pulled};
use tidemark_sandbox::rocketmq::{skip_unless_installed, Options, RocketMq};

fn mq() -> &'static RocketMq {
    // A failed start is kept too: every test reports it at once instead of trying again.
    static MQ: OnceLock<Result<RocketMq, String>> = OnceLock::new();
    match MQ.get_or_init(|| RocketMq::start(&Options::default()).map_err(|e| format!("{e:#}"))) {
        Ok(mq) => mq,
        Err(e) => {
            panic!("start RocketMQ (run `cargo install rocketmq-namesrv rocketmq-broker`): {e}")
        }
    }
}

/// Creates `topic`, and its default DDL topic `<topic>_ddl` (one queue) that every task
/// without `ddl_placement` sends DDL to.
fn create_topic(mq: &RocketMq, topic: &str, queues: u32) {
    create_one_topic(mq, topic, queues);
    create_one_topic(mq, &format!("{topic}_ddl"), 1);
}

fn create_one_topic(mq: &RocketMq, topic: &str, queues: u32) {
    let c = Client::new(vec![mq.name_server.clone()], None);
    c.create_topic(&mq.broker, topic, queues)
        .expect("create topic");
    // The name server learns of the topic from the broker.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.route(topic, true).is_err() {
        assert!(
            Instant::now() < deadline,
            "topic {topic} never appeared on the name server"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A task file for the shared source and the shared cluster.
fn task(destination: &str, rest: &str) -> TaskDir {
    let e = env();
    TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"rocketmq\"\nname_servers = [\"{}\"]\n{destination}\n{rest}",
        e.pair.source.url(),
        mq().name_server
    ))
}

/// Creates database `db` afresh on the source and runs `sql` there.
fn fresh(db: &str, sql: &str) {
    env().src_sql(&format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; {sql}"
    ));
}

/// `[migration]` and `[[objects]]` of a full + incremental task over one database.
fn live(db: &str) -> String {
    format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n")
}

fn status(t: &TaskDir) -> serde_json::Value {
    serde_json::from_slice(&t.tidemark(&["status", "--json"]).stdout).unwrap_or_default()
}

/// Every message of a topic, per queue in queue order.
fn consume(topic: &str) -> Vec<Vec<Pulled>> {
    let c = Client::new(vec![mq().name_server.clone()], None);
    let route = c.read_route(topic).expect("route");
    route
        .queues
        .iter()
        .map(|q| {
            let mut offset = 0;
            let mut all = Vec::new();
            loop {
                let (msgs, next) = c.pull(topic, "tidemark-test", q, offset, 32).expect("pull");
                if msgs.is_empty() {
                    break;
                }
                all.extend(msgs);
                offset = next;
            }
            all
        })
        .collect()
}

const TABLE: &str = "CREATE TABLE t (
    id INT PRIMARY KEY, grp INT NOT NULL, v INT NOT NULL,
    a VARCHAR(50) CHARACTER SET utf8mb4, l VARCHAR(20) CHARACTER SET latin1,
    d DECIMAL(20,6), ts DATETIME(3), tz TIMESTAMP(6) NULL, dt DATE, tm TIME(2),
    j JSON, b VARBINARY(16), e ENUM('x','y','z'), s SET('p','q'), bits BIT(10),
    f DOUBLE, fl FLOAT, n INT NULL, u BIGINT UNSIGNED, yr YEAR)";

const COLUMNS: [&str; 20] = [
    "id", "grp", "v", "a", "l", "d", "ts", "tz", "dt", "tm", "j", "b", "e", "s", "bits", "f", "fl",
    "n", "u", "yr",
];

/// A row's values for an INSERT, from a seed.
fn values(id: u32, seed: u64) -> String {
    let r = |k: u64| {
        (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(k.wrapping_mul(1442695040888963407))
            >> 33) as u32
    };
    format!(
        "({id}, {grp}, 0, 'héllo {s} ✓', 'café{s}', {d}.{f6:06}, '2024-0{m}-1{dd} 10:11:12.{ms:03}', '2023-05-06 07:08:09.{us:06}', '2020-02-29', '-{h}:05:06.{cs:02}', '{{\"k\": {s}, \"arr\": [1, \"x\"]}}', X'{bin:08X}00FF', '{e}', '{set}', b'{bits:b}', {dbl}e{exp}, {fl}.25, {n}, 18446744073709551615, {yr})",
        grp = id % 7,
        s = r(1) % 1000,
        d = r(2) % 100_000,
        f6 = r(3) % 1_000_000,
        m = 1 + r(4) % 9,
        dd = r(5) % 10,
        ms = r(6) % 1000,
        us = r(7) % 1_000_000,
        h = r(8) % 800,
        cs = r(9) % 100,
        bin = r(10),
        e = ["x", "y", "z"][(r(11) % 3) as usize],
        set = ["", "p", "q", "p,q"][(r(12) % 4) as usize],
        bits = r(13) % 1024,
        dbl = (r(14) % 100_000) as f64 / 7.0,
        exp = r(15) % 30,
        fl = r(16) % 1000,
        n = if r(17) % 3 == 0 { "NULL".to_string() } else { (r(17) % 1000).to_string() },
        yr = 1901 + r(18) % 254,
    )
}

/// Writes random inserts, updates and deletes until `stop`, from two connections.
fn writer(
    db: &str,
    keys: u32,
    stop: Arc<AtomicBool>,
    deletes: bool,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..2u64)
        .map(|w| {
            let (db, stop) = (db.to_string(), stop.clone());
            std::thread::spawn(move || {
                let mut c = env().src();
                c.query_drop(format!("USE `{db}`")).unwrap();
                let mut n = 0u64;
                let mut seed = 7 + w;
                while !stop.load(Ordering::Relaxed) {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let id = (seed >> 40) as u32 % keys + 1;
                    let sql = match (seed >> 20) % 10 {
                        0..=2 => format!("INSERT IGNORE INTO t VALUES {}", values(id, seed)),
                        3 if deletes => format!("DELETE FROM t WHERE id = {id}"),
                        // A key change: a delete of the old key and an insert of the new.
                        4 if deletes => format!("UPDATE IGNORE t SET id = id + {keys} WHERE id = {id}"),
                        _ => format!(
                            "UPDATE t SET v = v + 1, a = 'upd {seed}', d = {}.5, tz = NOW(6), b = X'0102{:04X}', n = NULL WHERE id = {id}",
                            seed % 1000,
                            seed % 65536
                        ),
                    };
                    c.query_drop(&sql).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect()
}

fn setup(db: &str, rows: u32) {
    let e = env();
    e.src_sql(&format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`; USE `{db}`; {TABLE}"
    ));
    let mut c = e.src();
    c.query_drop(format!("USE `{db}`")).unwrap();
    let all: Vec<String> = (1..=rows).map(|i| values(i, i as u64)).collect();
    for chunk in all.chunks(500) {
        c.query_drop(format!("INSERT INTO t VALUES {}", chunk.join(",")))
            .unwrap();
    }
}

type Rows = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// The source's rows as canonical text (UTC temporal values, binary as ISO-8859-1, BIT
/// as a number).
fn source_rows(db: &str) -> Rows {
    let mut c = env().src();
    c.query_drop("SET time_zone = '+00:00'").unwrap();
    let cols = COLUMNS.map(|c| {
        if c == "bits" {
            "bits+0".to_string()
        } else {
            format!("`{c}`")
        }
    });
    let rows: Vec<mysql::Row> = c
        .query(format!("SELECT {} FROM `{db}`.t", cols.join(",")))
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let vals: BTreeMap<String, Option<String>> = COLUMNS
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let v = match r.as_ref(i).unwrap() {
                        mysql::Value::NULL => None,
                        mysql::Value::Bytes(b) if *name == "b" => {
                            Some(b.iter().map(|&x| x as char).collect())
                        }
                        mysql::Value::Bytes(b) => Some(String::from_utf8(b.clone()).unwrap()),
                        other => Some(other.as_sql(true)),
                    };
                    (name.to_string(), v)
                })
                .collect();
            (vals["id"].clone().unwrap(), vals)
        })
        .collect()
}

fn same_value(col: &str, got: &Option<String>, want: &Option<String>) -> bool {
    match (got, want) {
        (Some(g), Some(w)) if col == "f" || col == "fl" => {
            let (g, w): (f64, f64) = (g.parse().unwrap(), w.parse().unwrap());
            let tol = if col == "fl" { 1e-6 } else { 1e-14 };
            (g - w).abs() <= tol * w.abs().max(1.0)
        }
        (Some(g), Some(w)) if col == "j" => {
            serde_json::from_str::<serde_json::Value>(g).ok()
                == serde_json::from_str::<serde_json::Value>(w).ok()
        }
        _ => got == want,
    }
}

fn assert_rows_equal(got: &Rows, want: &Rows) -> Result<(), String> {
    if got.len() != want.len() {
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(*k))
            .take(5)
            .collect();
        return Err(format!(
            "{} rows rebuilt, {} on the source; missing {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        ));
    }
    for (k, w) in want {
        let g = &got[k];
        for c in COLUMNS {
            if !same_value(c, &g[c], &w[c]) {
                return Err(format!(
                    "row {k} column {c}: rebuilt {:?}, source {:?}",
                    g[c], w[c]
                ));
            }
        }
    }
    Ok(())
}

/// One decoded message: the key, and the row after it (`None`: deleted).
struct Decoded {
    key: String,
    after: Option<BTreeMap<String, Option<String>>>,
    snapshot: bool,
    v: Option<i64>,
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&x| x as char).collect()
}

fn decode_canal(m: &Pulled) -> Vec<Decoded> {
    let v: serde_json::Value = serde_json::from_slice(&m.body).expect("canal json");
    if v["isDdl"] == true {
        return Vec::new();
    }
    for f in [
        "id",
        "database",
        "table",
        "pkNames",
        "isDdl",
        "type",
        "es",
        "ts",
        "sql",
        "sqlType",
        "mysqlType",
        "data",
        "old",
        "gtid",
    ] {
        assert!(v.get(f).is_some(), "canal message lacks {f}: {v}");
    }
    // Every message of the data topic is one Flink's canal-json accepts.
    if let Err(e) = flink::canal_json(&m.body) {
        panic!("Flink's canal-json would fail on {v}: {e}");
    }
    assert_eq!(v["pkNames"], serde_json::json!(["id"]));
    // Canal's forms back to the source's text: ENUM index and SET bitmask to members
    // (sqlType 4 and -7), TIMESTAMP from the source's zone to UTC.
    let row = |r: &serde_json::Value| -> BTreeMap<String, Option<String>> {
        r.as_object()
            .unwrap()
            .iter()
            .map(|(k, val)| {
                let s = val.as_str().map(String::from);
                let s = match (k.as_str(), s) {
                    ("e", Some(i)) => {
                        assert_eq!(v["sqlType"]["e"], 4);
                        let i: usize = i.parse().unwrap();
                        Some(["", "x", "y", "z"][i].to_string())
                    }
                    ("s", Some(bits)) => {
                        assert_eq!(v["sqlType"]["s"], -7);
                        let b: u32 = bits.parse().unwrap();
                        let m: Vec<&str> = [(1, "p"), (2, "q")]
                            .iter()
                            .filter(|(bit, _)| b & bit != 0)
                            .map(|(_, n)| *n)
                            .collect();
                        Some(m.join(","))
                    }
                    ("tz", Some(t)) => Some(to_utc(&t, source_offset())),
                    (_, s) => s,
                };
                (k.clone(), s)
            })
            .collect()
    };
    let data = row(&v["data"][0]);
    let key = data["id"].clone().unwrap();
    let ver = data["v"].as_ref().and_then(|s| s.parse().ok());
    let snapshot = m.properties.contains_key("tidemark_snapshot");
    match v["type"].as_str().unwrap() {
        "INSERT" | "UPDATE" => vec![Decoded {
            key,
            after: Some(data),
            snapshot,
            v: ver,
        }],
        "DELETE" => vec![Decoded {
            key,
            after: None,
            snapshot,
            v: ver,
        }],
        t => panic!("unexpected canal type {t}"),
    }
}

/// The source server's offset from UTC now (seconds): the zone Canal JSON renders
/// TIMESTAMP in by default.
fn source_offset() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let mut c = env().src();
        c.query_first::<i64, _>("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', @@global.time_zone))")
            .unwrap()
            .unwrap()
    })
}

/// `YYYY-MM-DD hh:mm:ss[.f]` at `offset` → the same instant in UTC.
fn to_utc(t: &str, offset: i64) -> String {
    if offset == 0 || t.starts_with("0000") {
        return t.to_string();
    }
    let (date, rest) = t.split_once(' ').unwrap();
    let (time, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let n: Vec<u32> = date
        .split('-')
        .chain(time.split(':'))
        .map(|x| x.parse().unwrap())
        .collect();
    let d = tidemark_core::DateTime {
        year: n[0] as u16,
        month: n[1] as u8,
        day: n[2] as u8,
        hour: n[3] as u8,
        minute: n[4] as u8,
        second: n[5] as u8,
        micros: 0,
    };
    let u = tidemark::sink::rocketmq::format::shift(&d, -offset);
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    );
    if let Some(f) = frac {
        s = format!("{s}.{f}");
    }
    s
}

fn decode_debezium(m: &Pulled) -> Vec<Decoded> {
    let v: serde_json::Value = serde_json::from_slice(&m.body).expect("debezium json");
    if v.get("ddl").is_some() {
        return Vec::new();
    }
    let row = |r: &serde_json::Value| -> BTreeMap<String, Option<String>> {
        r.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                use base64::Engine;
                // Debezium's encodings back to the source's text: DECIMAL(20,6) from its
                // unscaled two's-complement bytes, DATETIME(3) from ms, DATE from days,
                // TIME(2) from µs, BIT from little-endian bytes, BIGINT UNSIGNED from
                // its signed 64 bits.
                let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
                let civil =
                    |secs: i64, micros: u32| tidemark_core::DateTime::from_unix(secs, micros);
                let s = match (k.as_str(), v) {
                    (_, serde_json::Value::Null) => None,
                    ("b", serde_json::Value::String(s)) => Some(latin1(&b64(s))),
                    ("tz", serde_json::Value::String(s)) => {
                        Some(s.replace('T', " ").trim_end_matches('Z').to_string())
                    }
                    ("d", serde_json::Value::String(s)) => {
                        let bytes = b64(s);
                        let mut n: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                        for b in bytes {
                            n = (n << 8) | i128::from(b);
                        }
                        let digits = format!("{:07}", n.unsigned_abs());
                        let (int, frac) = digits.split_at(digits.len() - 6);
                        Some(format!("{}{int}.{frac}", if n < 0 { "-" } else { "" }))
                    }
                    ("ts", serde_json::Value::Number(ms)) => {
                        let ms = ms.as_i64().unwrap();
                        let d = civil(ms.div_euclid(1000), 0);
                        Some(format!(
                            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
                            d.year,
                            d.month,
                            d.day,
                            d.hour,
                            d.minute,
                            d.second,
                            ms.rem_euclid(1000)
                        ))
                    }
                    ("dt", serde_json::Value::Number(days)) => {
                        let d = civil(days.as_i64().unwrap() * 86_400, 0);
                        Some(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                    }
                    ("tm", serde_json::Value::Number(us)) => {
                        let us = us.as_i64().unwrap();
                        let a = us.unsigned_abs();
                        let secs = a / 1_000_000;
                        Some(format!(
                            "{}{:02}:{:02}:{:02}.{:02}",
                            if us < 0 { "-" } else { "" },
                            secs / 3600,
                            secs / 60 % 60,
                            secs % 60,
                            a % 1_000_000 / 10_000
                        ))
                    }
                    ("bits", serde_json::Value::String(s)) => {
                        let mut le = [0u8; 8];
                        for (i, b) in b64(s).into_iter().enumerate() {
                            le[i] = b;
                        }
                        Some(u64::from_le_bytes(le).to_string())
                    }
                    ("u", serde_json::Value::Number(n)) => {
                        Some((n.as_i64().unwrap() as u64).to_string())
                    }
                    (_, serde_json::Value::String(s)) => Some(s.clone()),
                    (_, other) => Some(other.to_string()),
                };
                (k.clone(), s)
            })
            .collect()
    };
    if let Err(e) = flink::debezium_json(&m.body, false) {
        panic!("Flink's debezium-json would fail on {v}: {e}");
    }
    let op = v["op"].as_str().unwrap();
    let snapshot = v["source"]["snapshot"] == "true";
    assert_eq!(snapshot, op == "r");
    match op {
        "r" | "c" | "u" => {
            let after = row(&v["after"]);
            let ver = after["v"].as_ref().and_then(|s| s.parse().ok());
            vec![Decoded {
                key: after["id"].clone().unwrap(),
                after: Some(after),
                snapshot,
                v: ver,
            }]
        }
        "d" => {
            let before = row(&v["before"]);
            vec![Decoded {
                key: before["id"].clone().unwrap(),
                after: None,
                snapshot,
                v: None,
            }]
        }
        o => panic!("unexpected op {o}"),
    }
}

/// A reader of the published Avro schema (tidemark::sink::rocketmq::format::avro::SCHEMA).
struct Avro<'a>(&'a [u8]);

impl Avro<'_> {
    fn long(&mut self) -> i64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.0[0];
            self.0 = &self.0[1..];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.long() as usize;
        let b = self.0[..n].to_vec();
        self.0 = &self.0[n..];
        b
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }
    fn image(&mut self, names: &[String]) -> Option<BTreeMap<String, Option<String>>> {
        if self.long() == 0 {
            return None;
        }
        let mut out = BTreeMap::new();
        let mut i = 0;
        loop {
            let n = self.long();
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let v = match self.long() {
                    0 => None,
                    1 => Some(self.long().to_string()),
                    2 => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(&self.0[..8]);
                        self.0 = &self.0[8..];
                        Some(f64::from_le_bytes(a).to_string())
                    }
                    3 => Some(self.string()),
                    4 => Some(latin1(&self.bytes())),
                    b => panic!("bad union branch {b}"),
                };
                out.insert(names[i].clone(), v);
                i += 1;
            }
        }
        Some(out)
    }
}

fn decode_avro(m: &Pulled) -> Vec<Decoded> {
    let mut r = Avro(&m.body);
    assert_eq!(r.long(), 1, "schema version");
    let op = r.long();
    let (_db, _table, _file) = (r.string(), r.string(), r.string());
    let (_pos, _row) = (r.long(), r.long());
    if r.long() == 1 {
        r.string();
    }
    let (_src, _ts) = (r.long(), r.long());
    let mut names = Vec::new();
    loop {
        let n = r.long();
        if n == 0 {
            break;
        }
        for _ in 0..n {
            names.push(r.string());
            r.string();
            r.0 = &r.0[1..];
        }
    }
    let before = r.image(&names);
    let after = r.image(&names);
    let ddl = if r.long() == 1 {
        Some(r.string())
    } else {
        None
    };
    assert!(r.0.is_empty(), "trailing bytes in an Avro record");
    if op == 4 {
        assert!(ddl.is_some());
        return Vec::new();
    }
    let snapshot = op == 0;
    match op {
        0..=2 => {
            let after = after.unwrap();
            let ver = after["v"].as_ref().and_then(|s| s.parse().ok());
            vec![Decoded {
                key: after["id"].clone().unwrap(),
                after: Some(after),
                snapshot,
                v: ver,
            }]
        }
        3 => vec![Decoded {
            key: before.unwrap()["id"].clone().unwrap(),
            after: None,
            snapshot,
            v: None,
        }],
        o => panic!("bad op {o}"),
    }
}

/// Applies every message in queue order (at-least-once: replayed changes are upserts
/// and deletes by key, as a Canal consumer writing to a database does).
fn rebuild(queues: &[Vec<Pulled>], decode: fn(&Pulled) -> Vec<Decoded>) -> Rows {
    let mut rows = Rows::new();
    for q in queues {
        for m in q {
            for d in decode(m) {
                match d.after {
                    Some(r) => {
                        rows.insert(d.key, r);
                    }
                    None => {
                        rows.remove(&d.key);
                    }
                }
            }
        }
    }
    rows
}

/// The documented deduplication: per queue, (binlog position, row index) of the binlog
/// changes only grows (without restarts, strictly: nothing is sent twice).
fn assert_dedup_keys_increase(queues: &[Vec<Pulled>]) {
    for (qi, q) in queues.iter().enumerate() {
        let mut last: Option<(String, u64, u32)> = None;
        for m in q {
            let Some(p) = m.properties.get("tidemark_position") else {
                continue;
            };
            let (file, offset) = p.rsplit_once(':').unwrap();
            let key = (
                file.to_string(),
                offset.parse::<u64>().unwrap(),
                m.properties["tidemark_row"].parse::<u32>().unwrap(),
            );
            if let Some(prev) = &last {
                assert!(key > *prev, "queue {qi}: {key:?} after {prev:?}");
            }
            last = Some(key);
        }
    }
}

/// Full + incremental under concurrent writes; the consumer's rebuild equals the source.
fn round_trip(db: &str, format: &str, decode: fn(&Pulled) -> Vec<Decoded>) -> Vec<Vec<Pulled>> {
    setup(db, 1500);
    let topic = format!("{db}_topic");
    create_topic(mq(), &topic, 4);
    let stop_writes = Arc::new(AtomicBool::new(false));
    let writers = writer(db, 2000, stop_writes.clone(), true);
    let t = task(
        &format!("topic = \"{topic}\"\nformat = \"{format}\"\nfull_before_image = {}", format == "canal-json"),
        &format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[full]\nchunk_rows = 1000\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    std::thread::sleep(Duration::from_secs(2));
    stop_writes.store(true, Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(writes > 50, "only {writes} writes");
    let want = source_rows(db);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        let queues = consume(&topic);
        let got = rebuild(&queues, decode);
        match assert_rows_equal(&got, &want) {
            Ok(()) => {
                assert_dedup_keys_increase(&queues);
                let out = stop(child);
                assert!(out.contains("stopped at"), "{out}");
                let s = status(&t);
                assert!(s["messages"]["messages"].as_u64().unwrap() >= 1500, "{s}");
                return queues;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = stop(child);
    panic!("the rebuilt table never matched the source: {last}\n{out}");
}

#[test]
fn canal_json_rebuilds_the_source() {
    if skip_unless_installed("rocketmq::canal_json_rebuilds_the_source") {
        return;
    }
    round_trip("mq_canal", "canal-json", decode_canal);
}

#[test]
fn debezium_json_rebuilds_the_source() {
    if skip_unless_installed("rocketmq::debezium_json_rebuilds_the_source") {
        return;
    }
    round_trip("mq_debezium", "debezium-json", decode_debezium);
}

#[test]
fn avro_rebuilds_the_source() {
    if skip_unless_installed("rocketmq::avro_rebuilds_the_source") {
        return;
    }
    let queues = round_trip("mq_avro", "tidemark-avro", decode_avro);
    // An independent reader: Python's fastavro, with the published schema, must read
    // every record to its end and find the same rows.
    let bodies: Vec<&Pulled> = queues.iter().flatten().collect();
    let theirs = fastavro_decode(&bodies);
    assert_eq!(theirs.len(), bodies.len());
    for (m, r) in bodies.iter().zip(&theirs) {
        let ours = decode_avro(m);
        if r["op"] == "DDL" {
            assert!(ours.is_empty());
            continue;
        }
        let names: Vec<&str> = r["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let image = if r["op"] == "DELETE" {
            &r["before"]
        } else {
            &r["after"]
        };
        let row: BTreeMap<String, Option<String>> = names
            .iter()
            .zip(image.as_array().unwrap())
            .map(|(n, v)| {
                let v = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => Some(o["bytes"].as_str().unwrap().to_string()),
                    n => Some(match n.as_i64() {
                        Some(i) => i.to_string(),
                        None => n.as_f64().unwrap().to_string(),
                    }),
                };
                (n.to_string(), v)
            })
            .collect();
        let d = &ours[ours.len() - 1];
        match &d.after {
            Some(after) => {
                for c in COLUMNS {
                    assert!(
                        same_value(c, &row[c], &after[c]),
                        "column {c}: fastavro {:?}, ours {:?}",
                        row[c],
                        after[c]
                    );
                }
            }
            None => assert_eq!(row["id"].as_deref(), Some(d.key.as_str())),
        }
    }
}

/// Every Avro body decoded by fastavro (`pip install fastavro`; `.ci/run` installs it)
/// against `schema`, each record whole as JSON; bytes as their ISO-8859-1 text, or as
/// `{"bytes": text}` with `bytes_as_objects` (to tell them from strings).
fn fastavro_records(
    schema: &str,
    bodies: &[&Pulled],
    bytes_as_objects: bool,
) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("schema.avsc");
    std::fs::write(&schema_file, schema).unwrap();
    let data = dir.path().join("bodies.bin");
    let mut all = Vec::new();
    for m in bodies {
        all.extend_from_slice(&(m.body.len() as u32).to_be_bytes());
        all.extend_from_slice(&m.body);
    }
    std::fs::write(&data, all).unwrap();
    let script = r#"
import io, json, struct, sys
from fastavro import parse_schema, schemaless_reader
schema = parse_schema(json.load(open(sys.argv[1])))
data = open(sys.argv[2], "rb").read()
as_objects = sys.argv[3] == "1"
i, out = 0, []
while i < len(data):
    n = struct.unpack(">I", data[i:i + 4])[0]
    buf = io.BytesIO(data[i + 4:i + 4 + n])
    i += 4 + n
    out.append(schemaless_reader(buf, schema))
    assert buf.tell() == n, "trailing bytes"
text = lambda b: b.decode("latin-1")
print(json.dumps(out, default=(lambda b: {"bytes": text(b)}) if as_objects else text))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema_file)
        .arg(&data)
        .arg(if bytes_as_objects { "1" } else { "0" })
        .output()
        .expect("run python3 (with fastavro: pip install fastavro)");
    assert!(
        out.status.success(),
        "fastavro could not read the records: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Tidemark Avro bodies decoded by fastavro and the published schema: op, column names,
/// before/after (bytes as `{"bytes": ISO-8859-1 text}`), ddl.
fn fastavro_decode(bodies: &[&Pulled]) -> Vec<serde_json::Value> {
    fastavro_records(tidemark::sink::rocketmq::format::avro::SCHEMA, bodies, true)
        .into_iter()
        .map(|r| {
            let columns: Vec<serde_json::Value> = r["columns"]
                .as_array()
                .map(|cs| cs.iter().map(|c| c["name"].clone()).collect())
                .unwrap_or_default();
            serde_json::json!({"op": r["op"], "columns": columns,
                "before": r["before"], "after": r["after"], "ddl": r["ddl"]})
        })
        .collect()
}

/// Changes to one key arrive on one queue, in source order.
fn per_key_order(db: &str, destination: &str) -> Vec<Vec<Pulled>> {
    setup(db, 300);
    let topic = format!("{db}_topic");
    create_topic(mq(), &topic, 4);
    let t = task(&format!("topic = \"{topic}\"\n{destination}"), &live(db));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let stop_writes = Arc::new(AtomicBool::new(false));
    // Updates (v = v + 1) and inserts of new keys only: per key, v grows with each change.
    let writers = writer(db, 400, stop_writes.clone(), false);
    std::thread::sleep(Duration::from_secs(3));
    stop_writes.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let want = source_rows(db);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let queues = consume(&topic);
        if assert_rows_equal(&rebuild(&queues, decode_canal), &want).is_ok() {
            let mut queue_of: HashMap<String, usize> = HashMap::new();
            let mut last_v: HashMap<String, i64> = HashMap::new();
            let mut checked = 0;
            for (qi, q) in queues.iter().enumerate() {
                for m in q {
                    for d in decode_canal(m) {
                        let prev = queue_of.insert(d.key.clone(), qi);
                        assert!(
                            prev.is_none_or(|p| p == qi),
                            "key {} on queues {prev:?} and {qi}",
                            d.key
                        );
                        if d.snapshot {
                            continue;
                        }
                        let v = d.v.unwrap();
                        if let Some(p) = last_v.insert(d.key.clone(), v) {
                            assert!(v > p, "key {}: version {v} after {p}", d.key);
                            checked += 1;
                        }
                    }
                }
            }
            assert!(checked > 50, "only {checked} ordered pairs checked");
            stop(child);
            return queues;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuilt table never matched the source"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn primary_key_ordering_keeps_each_key_in_order() {
    if skip_unless_installed("rocketmq::primary_key_ordering_keeps_each_key_in_order") {
        return;
    }
    let queues = per_key_order("mq_order_pk", "ordering = \"primary-key\"");
    assert!(
        queues.iter().all(|q| !q.is_empty()),
        "keys spread over every queue"
    );
}

#[test]
fn table_ordering_puts_a_table_on_one_queue() {
    if skip_unless_installed("rocketmq::table_ordering_puts_a_table_on_one_queue") {
        return;
    }
    let queues = per_key_order("mq_order_table", "ordering = \"table\"");
    let used = queues.iter().filter(|q| !q.is_empty()).count();
    assert_eq!(used, 1, "a table's changes on {used} queues");
}

#[test]
fn column_ordering_keeps_each_key_in_order() {
    if skip_unless_installed("rocketmq::column_ordering_keeps_each_key_in_order") {
        return;
    }
    per_key_order(
        "mq_order_cols",
        "ordering = \"columns\"\n[[destination.topics]]\ndatabase = \"mq_order_cols\"\ntable = \"t\"\npartition_columns = [\"grp\"]",
    );
}

/// Total messages stored in a topic.
fn stored(topic: &str) -> u64 {
    let c = Client::new(vec![mq().name_server.clone()], None);
    let route = c.read_route(topic).expect("route");
    route
        .queues
        .iter()
        .map(|q| c.max_offset(topic, q).expect("offset"))
        .sum()
}

#[test]
fn rows_over_4_mib_fail_the_task_unless_filtered() {
    if skip_unless_installed("rocketmq::rows_over_4_mib_fail_the_task_unless_filtered") {
        return;
    }
    let db = "mq_large";
    fresh(db, &format!(
        "CREATE TABLE {db}.t (id INT PRIMARY KEY, payload LONGBLOB);
         INSERT INTO {db}.t VALUES (1, 'small'), (2, REPEAT('x', 5 * 1024 * 1024)), (3, 'small too');"
    ));
    let topic = "mq_large_topic";
    create_topic(mq(), topic, 2);
    let rest = format!("[migration]\ntypes = [\"full\"]\n[[objects]]\ndatabase = \"{db}\"\n");
    let t = task(&format!("topic = \"{topic}\""), &rest);
    let out = t.tidemark(&["run", "--no-progress"]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("mq_large.t (key 2)")
            && msg.contains("4 MiB")
            && msg.contains("filter_large_messages"),
        "{msg}"
    );

    let t = task(
        &format!("topic = \"{topic}\"\nfilter_large_messages = true"),
        &rest,
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("skipped a") && msg.contains("mq_large.t (key 2)"),
        "{msg}"
    );
    let s = status(&t);
    assert_eq!(s["messages"]["skipped_large"], 1, "{s}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys: Vec<String> = consume(topic)
            .iter()
            .flatten()
            .map(|m| m.properties["KEYS"].clone())
            .collect();
        if keys.iter().any(|k| k == "3") {
            assert!(
                !keys.iter().any(|k| k == "2"),
                "the large row was sent: {keys:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "row 3 never arrived: {keys:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn broker_killed_mid_stream_loses_nothing() {
    if skip_unless_installed("rocketmq::broker_killed_mid_stream_loses_nothing") {
        return;
    }
    broker_outage_loses_nothing(Outage::Kill);
}

/// The broker frozen (the path silent, connections open) for twice the task's network
/// timeout: the missing acknowledgements are detected, the batches sent again.
#[test]
fn broker_frozen_mid_stream_is_detected_and_loses_nothing() {
    if skip_unless_installed("rocketmq::broker_frozen_mid_stream_is_detected_and_loses_nothing") {
        return;
    }
    broker_outage_loses_nothing(Outage::Freeze);
}

#[derive(Clone, Copy, PartialEq)]
enum Outage {
    /// SIGKILL for 3 s, then started again.
    Kill,
    /// SIGSTOP for twice the task's 3 s network timeout, then SIGCONT.
    Freeze,
}

fn broker_outage_loses_nothing(outage: Outage) {
    // Its own cluster: the broker is killed or frozen.
    let own = RocketMq::start(&Options::default()).expect("start RocketMQ");
    let db = match outage {
        Outage::Kill => "mq_restart",
        Outage::Freeze => "mq_frozen",
    };
    let e = env();
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO {db}.t VALUES (1, 0), (2, 0), (3, 0);"
        ),
    );
    let topic = format!("{db}_topic");
    let topic = topic.as_str();
    create_topic(&own, topic, 4);
    let timeout = match outage {
        Outage::Kill => String::new(),
        Outage::Freeze => "[advanced]\nnetwork_timeout_seconds = 3\n".into(),
    };
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"rocketmq\"\nname_servers = [\"{}\"]\ntopic = \"{topic}\"\n[migration]\ntypes = [\"full\", \"incremental\"]\n{timeout}[[objects]]\ndatabase = \"{db}\"\n",
        e.pair.source.url(),
        own.name_server
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let stop_writes = Arc::new(AtomicBool::new(false));
    let w = {
        let stop = stop_writes.clone();
        std::thread::spawn(move || {
            let mut c = env().src();
            let mut id = 10;
            while !stop.load(Ordering::Relaxed) {
                c.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, 0)"))
                    .unwrap();
                c.query_drop(format!(
                    "UPDATE {db}.t SET v = v + 1 WHERE id = {}",
                    id % 7 + 1
                ))
                .unwrap();
                id += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            id
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    match outage {
        Outage::Kill => {
            own.kill_broker().expect("kill broker");
            std::thread::sleep(Duration::from_secs(3));
            own.start_broker_again().expect("start broker again");
        }
        Outage::Freeze => {
            own.freeze_broker().expect("freeze broker");
            std::thread::sleep(Duration::from_secs(6));
            own.thaw_broker().expect("thaw broker");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    stop_writes.store(true, Ordering::Relaxed);
    let last = w.join().unwrap();
    assert!(last > 100);
    // Everything the source holds arrives, each change at least once.
    let c = Client::new(vec![own.name_server.clone()], None);
    let mut want: Vec<(u32, u32)> = e
        .src()
        .query(format!("SELECT id, v FROM {db}.t ORDER BY id"))
        .unwrap();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let route = c.read_route(topic);
        let mut rows: BTreeMap<u32, u32> = BTreeMap::new();
        let mut seen: HashMap<(String, String), u32> = HashMap::new();
        if let Ok(route) = route {
            for q in &route.queues {
                let mut offset = 0;
                while let Ok((msgs, next)) = c.pull(topic, "restart-test", q, offset, 32) {
                    if msgs.is_empty() {
                        break;
                    }
                    for m in &msgs {
                        *seen
                            .entry((
                                m.properties
                                    .get("tidemark_position")
                                    .cloned()
                                    .unwrap_or_default(),
                                m.properties["tidemark_row"].clone(),
                            ))
                            .or_default() += 1;
                        for d in decode_canal(m) {
                            let r = d.after.unwrap();
                            let id: u32 = r["id"].clone().unwrap().parse().unwrap();
                            rows.insert(id, r["v"].clone().unwrap().parse().unwrap());
                        }
                    }
                    offset = next;
                }
            }
        }
        let got: Vec<(u32, u32)> = rows.into_iter().collect();
        if got == want {
            let dups = seen
                .iter()
                .filter(|(k, n)| !k.0.is_empty() && **n > 1)
                .count();
            eprintln!(
                "broker restart: {} changes, {dups} delivered twice",
                seen.len()
            );
            let out = stop(child);
            match outage {
                Outage::Kill => assert!(
                    out.contains("retrying") || out.contains("sending the batch again"),
                    "{out}"
                ),
                Outage::Freeze => assert!(
                    out.contains("within 3 s (`advanced.network_timeout_seconds`); sending again"),
                    "the silence must be detected by the network timeout:\n{out}"
                ),
            }
            return;
        }
        if Instant::now() > deadline {
            let out = stop(child);
            panic!("after the broker outage the topic never held the source's rows ({} of {}):\n{out}\n{}", got.len(), want.len(), own.broker_log());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs a task that must fail before sending anything; returns its output.
fn fails_before_sending(t: &TaskDir, topic: &str) -> String {
    let out = t.tidemark(&["run", "--no-progress"]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    if !topic.is_empty() {
        assert_eq!(stored(topic), 0, "messages were sent: {msg}");
    }
    msg
}

#[test]
fn bad_destinations_fail_before_anything_is_sent() {
    if skip_unless_installed("rocketmq::bad_destinations_fail_before_anything_is_sent") {
        return;
    }
    let db = "mq_bad";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, grp INT); INSERT INTO {db}.t VALUES (1, 1);"
        ),
    );
    let topic = "mq_bad_topic";
    create_topic(mq(), topic, 2);
    let rest = live(db);

    // Unreachable name server.
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n[destination]\ntype = \"rocketmq\"\nname_servers = [\"127.0.0.1:1\"]\ntopic = \"{topic}\"\n{rest}",
        env().pair.source.url()
    ));
    let msg = fails_before_sending(&t, topic);
    assert!(
        msg.contains("name server 127.0.0.1:1") && msg.contains("cannot connect"),
        "{msg}"
    );

    // A topic that does not exist.
    let t = task("topic = \"mq_no_such_topic\"", &rest);
    let msg = fails_before_sending(&t, "");
    assert!(
        msg.contains("\"mq_no_such_topic\" does not exist") && msg.contains("create it"),
        "{msg}"
    );

    // The default DDL topic missing.
    create_one_topic(mq(), "mq_bad_nodl", 1);
    let t = task("topic = \"mq_bad_nodl\"", &rest);
    let msg = fails_before_sending(&t, "mq_bad_nodl");
    assert!(
        msg.contains("\"mq_bad_nodl_ddl\" does not exist")
            && msg.contains("it is the DDL topic")
            && msg.contains("ddl_placement"),
        "{msg}"
    );

    // A partition column the table does not have.
    let t = task(
        &format!("topic = \"{topic}\"\nordering = \"columns\"\n[[destination.topics]]\ndatabase = \"{db}\"\ntable = \"t\"\npartition_columns = [\"nope\"]"),
        &rest,
    );
    let msg = fails_before_sending(&t, topic);
    assert!(
        msg.contains("partition column \"nope\" does not exist in mq_bad.t")
            && msg.contains("id, grp"),
        "{msg}"
    );

    // `tidemark verify` compares with a MySQL destination only.
    let t = task(&format!("topic = \"{topic}\""), &rest);
    let out = t.tidemark(&["verify"]);
    assert!(
        !out.status.success() && text(&out).contains("this task's destination is RocketMQ"),
        "{}",
        text(&out)
    );

    // Schema migration selected.
    let t = task(
        &format!("topic = \"{topic}\""),
        &rest.replace("[\"full\"", "[\"schema\", \"full\""),
    );
    let msg = fails_before_sending(&t, topic);
    assert!(msg.contains("schema migration does not apply"), "{msg}");

    // Keys that belong to the other destination type, and bad values.
    for (dest, want) in [
        (
            "topic = \"x\"\nurl = \"mysql://a@b\"",
            "unknown field `url`",
        ),
        ("topic = \"bad topic\"", "not a valid RocketMQ topic name"),
        ("topic = \"x\"\nformat = \"xml\"", "unknown variant `xml`"),
        (
            "topic = \"x\"\naccess_key = \"ak\"",
            "both `destination.access_key` and `destination.secret_key`",
        ),
        (
            "topic = \"x\"\nformat = \"avro\"\nfull_before_image = true",
            "canal-json",
        ),
        (
            "topic = \"x\"\n[[destination.topics]]\ndatabase = \"d\"\npartition_columns = [\"a\"]",
            "needs `table`",
        ),
    ] {
        let t = task(dest, &rest);
        let out = t.tidemark(&["precheck"]);
        let msg = text(&out);
        assert!(!out.status.success() && msg.contains(want), "{dest}: {msg}");
    }
}

#[test]
fn wrong_credentials_fail_before_anything_is_sent() {
    if skip_unless_installed("rocketmq::wrong_credentials_fail_before_anything_is_sent") {
        return;
    }
    let secured = RocketMq::start(&Options {
        credentials: Some(("tidemark".into(), "s3cret-key".into())),
        ..Options::default()
    })
    .expect("start RocketMQ with ACL");
    let admin = Client::new(
        vec![secured.name_server.clone()],
        Some(tidemark::sink::rocketmq::remoting::Credentials {
            access_key: "tidemark".into(),
            secret_key: "s3cret-key".into(),
        }),
    );
    for (topic, queues) in [("acl_topic", 2), ("acl_topic_ddl", 1)] {
        admin
            .create_topic(&secured.broker, topic, queues)
            .expect("create topic with credentials");
    }
    let db = "mq_acl";
    fresh(
        db,
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1), (2);"),
    );
    let file = |secret: &str| {
        TaskDir::raw(&format!(
            "[source]\nurl = \"{}\"\n[destination]\ntype = \"rocketmq\"\nname_servers = [\"{}\"]\ntopic = \"acl_topic\"\naccess_key = \"tidemark\"\nsecret_key = \"${{MQ_SECRET}}\"\n[migration]\ntypes = [\"full\"]\n[[objects]]\ndatabase = \"{db}\"\n",
            env().pair.source.url(),
            secured.name_server
        ))
        .with_env("MQ_SECRET", secret)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.route("acl_topic", true).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = file("wrong-secret");
    let out = t.tidemark(&["run", "--no-progress"]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("refused the producer") && msg.contains("access_key"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-secret"), "the secret leaked: {msg}");
    let route = admin.read_route("acl_topic").unwrap();
    let sent: u64 = route
        .queues
        .iter()
        .map(|q| admin.max_offset("acl_topic", q).unwrap())
        .sum();
    assert_eq!(sent, 0);
    // The right secret works.
    let t = file("s3cret-key");
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn ddl_sits_between_the_rows_before_and_after_it_on_every_queue() {
    if skip_unless_installed(
        "rocketmq::ddl_sits_between_the_rows_before_and_after_it_on_every_queue",
    ) {
        return;
    }
    let db = "mq_ddl";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT); INSERT INTO {db}.t VALUES (1, 1);"
        ),
    );
    let topic = "mq_ddl_topic";
    create_topic(mq(), topic, 4);
    let t = task(
        &format!("topic = \"{topic}\"\nddl_placement = \"every-queue\""),
        &live(db),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let mut c = env().src();
    for id in 2..40 {
        c.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, {id})"))
            .unwrap();
    }
    c.query_drop(format!(
        "ALTER TABLE {db}.t ADD COLUMN note VARCHAR(10) DEFAULT 'x'"
    ))
    .unwrap();
    for id in 40..80 {
        c.query_drop(format!("INSERT INTO {db}.t VALUES ({id}, {id}, 'n{id}')"))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let queues = consume(topic);
        let total: usize = queues.iter().map(Vec::len).sum();
        // 79 rows + the DDL on each of the 4 queues.
        if total >= 79 + 4 {
            for q in &queues {
                let mut seen_ddl = false;
                for m in q {
                    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
                    if v["isDdl"] == true {
                        assert_eq!(v["type"], "ALTER");
                        assert!(v["sql"].as_str().unwrap().contains("ADD COLUMN"), "{v}");
                        seen_ddl = true;
                        continue;
                    }
                    let id: u32 = v["data"][0]["id"].as_str().unwrap().parse().unwrap();
                    let has_note = v["data"][0].get("note").is_some();
                    assert_eq!(has_note, seen_ddl, "row {id} on the wrong side of the DDL");
                    assert_eq!(has_note, id >= 40, "row {id}");
                    if has_note {
                        assert_eq!(v["data"][0]["note"], format!("n{id}"));
                        assert_eq!(v["mysqlType"]["note"], "varchar(10)");
                    }
                }
                assert!(seen_ddl, "a queue without the DDL");
            }
            stop(child);
            return;
        }
        assert!(Instant::now() < deadline, "only {total} messages arrived");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn sigkill_mid_copy_and_mid_stream_loses_nothing() {
    if skip_unless_installed("rocketmq::sigkill_mid_copy_and_mid_stream_loses_nothing") {
        return;
    }
    let db = "mq_kill";
    setup(db, 6000);
    let topic = "mq_kill_topic";
    create_topic(mq(), topic, 4);
    let t = task(
        &format!("topic = \"{topic}\""),
        &format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[full]\nchunk_rows = 1000\nthreads = 2\nrows_per_second = 3000\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let stop_writes = Arc::new(AtomicBool::new(false));
    let writers = writer(db, 7000, stop_writes.clone(), true);
    // Killed mid-copy.
    let mut child = spawn(&t, &[]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status(&t)["status"], "full", "not copying when killed");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // Killed mid-stream.
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    std::thread::sleep(Duration::from_millis(700));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let child = spawn(&t, &[]);
    std::thread::sleep(Duration::from_secs(1));
    stop_writes.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let want = source_rows(db);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        let queues = consume(topic);
        match assert_rows_equal(&rebuild(&queues, decode_canal), &want) {
            Ok(()) => {
                let snapshot = queues
                    .iter()
                    .flatten()
                    .filter(|m| m.properties.contains_key("tidemark_snapshot"))
                    .count();
                // A chunk interrupted by the kill is sent again: at most `threads` chunks.
                assert!(
                    snapshot <= 6000 + 2 * 1000 + 2000,
                    "{snapshot} snapshot messages"
                );
                stop(child);
                return;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = stop(child);
    panic!("after two SIGKILLs the rebuilt table never matched the source: {last}\n{out}");
}

/// The client alone: 3000 messages in batches over 4 queues come back in order.
#[test]
fn client_batches_keep_their_order_per_queue() {
    if skip_unless_installed("rocketmq::client_batches_keep_their_order_per_queue") {
        return;
    }
    let mq = mq();
    let c = Client::new(vec![mq.name_server.clone()], None);
    c.create_topic(&mq.broker, "order_test", 4)
        .expect("create topic");
    let route = c.route("order_test", true).expect("route");
    assert_eq!(route.queues.len(), 4);
    let mut out = Outbox::default();
    for i in 0..3000u32 {
        let q = &route.queues[(i % 4) as usize];
        out.push(
            "order_test",
            q,
            Message {
                body: format!("{i}").into_bytes(),
                keys: format!("k{i}"),
                tags: "t".into(),
                properties: vec![("tidemark_row", i.to_string())],
            },
        );
    }
    send_all(&c, "g", &mut out, Duration::from_secs(30), &|_, _| {}).expect("send");
    for (qi, q) in route.queues.iter().enumerate() {
        let mut offset = 0;
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 750 && std::time::Instant::now() < deadline {
            let (msgs, next) = c
                .pull("order_test", "test-consumer", q, offset, 32)
                .expect("pull");
            if msgs.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            for m in msgs {
                assert_eq!(
                    m.properties.get("KEYS").map(String::as_str),
                    Some(format!("k{}", String::from_utf8_lossy(&m.body)).as_str())
                );
                got.push(String::from_utf8_lossy(&m.body).parse::<u32>().unwrap());
            }
            offset = next;
        }
        let want: Vec<u32> = (0..3000).filter(|i| i % 4 == qi as u32).collect();
        assert_eq!(got, want, "queue {qi}");
    }
}

#[test]
fn ddl_topic_and_table_topics_route_messages() {
    if skip_unless_installed("rocketmq::ddl_topic_and_table_topics_route_messages") {
        return;
    }
    let db = "mq_route";
    fresh(db, &format!(
        "CREATE TABLE {db}.a (id INT PRIMARY KEY); CREATE TABLE {db}.b (id INT PRIMARY KEY);
         INSERT INTO {db}.a VALUES (1); INSERT INTO {db}.b VALUES (1);
         DROP DATABASE IF EXISTS mq_route2; CREATE DATABASE mq_route2; CREATE TABLE mq_route2.c (id INT PRIMARY KEY); INSERT INTO mq_route2.c VALUES (1);"
    ));
    for (topic, queues) in [
        ("mq_route_data", 2),
        ("mq_route_b", 2),
        ("mq_route_ddl", 1),
        ("mq_route_db2", 1),
    ] {
        create_topic(mq(), topic, queues);
    }
    // Table b has its own topic, database mq_route2 one of its own; table a uses the default.
    let t = task(
        &format!("topic = \"mq_route_data\"\nddl_topic = \"mq_route_ddl\"\n[[destination.topics]]\ndatabase = \"{db}\"\ntable = \"b\"\ntopic = \"mq_route_b\"\n[[destination.topics]]\ndatabase = \"mq_route2\"\ntopic = \"mq_route_db2\""),
        &format!("[migration]\ntypes = [\"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n[[objects]]\ndatabase = \"mq_route2\"\n"),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!("INSERT INTO {db}.a VALUES (2); ALTER TABLE {db}.b ADD COLUMN x INT; INSERT INTO {db}.b VALUES (2, 2);"));
    let tables = |topic: &str| -> Vec<String> {
        consume(topic)
            .iter()
            .flatten()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
                format!(
                    "{}{}",
                    if v["isDdl"] == true { "ddl:" } else { "" },
                    v["table"].as_str().unwrap()
                )
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (data, b, ddl) = (
            tables("mq_route_data"),
            tables("mq_route_b"),
            tables("mq_route_ddl"),
        );
        let db2 = tables("mq_route_db2");
        if data.len() >= 2 && b.len() >= 2 && !ddl.is_empty() && !db2.is_empty() {
            assert_eq!(data, vec!["a", "a"], "the default topic");
            assert_eq!(b, vec!["b", "b"], "the table's topic");
            assert_eq!(ddl, vec!["ddl:b"], "the DDL topic");
            assert_eq!(db2, vec!["c"], "the database's topic");
            stop(child);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "data {data:?}, b {b:?}, ddl {ddl:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn max_tps_paces_the_messages() {
    if skip_unless_installed("rocketmq::max_tps_paces_the_messages") {
        return;
    }
    let db = "mq_tps";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY);
         USE {db}; INSERT INTO t SELECT seq FROM seq_1_to_600;"
        ),
    );
    let topic = "mq_tps_topic";
    create_topic(mq(), topic, 4);
    let t = task(
        &format!("topic = \"{topic}\"\nmax_tps = 200"),
        &format!("[migration]\ntypes = [\"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let started = Instant::now();
    t.run_ok();
    // 600 messages at 200/s: the last of four 150-message batches starts after 2.25 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "600 messages at max_tps = 200 took {took:?}"
    );
    assert_eq!(status(&t)["messages"]["messages"], 600);
}

/// The known limit of a queue destination: after a DDL statement the table's definition
/// is read from the source. Behind two DDLs on one table, the task stops with a clear
/// error instead of mis-decoding rows.
#[test]
fn behind_two_ddls_on_one_table_stops_with_a_clear_error() {
    if skip_unless_installed("rocketmq::behind_two_ddls_on_one_table_stops_with_a_clear_error") {
        return;
    }
    let db = "mq_two_ddl";
    fresh(
        db,
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1);"),
    );
    let topic = "mq_two_ddl_topic";
    create_topic(mq(), topic, 1);
    let t = task(&format!("topic = \"{topic}\""), &live(db));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    stop(child);
    env().src_sql(&format!(
        "ALTER TABLE {db}.t ADD COLUMN a INT; INSERT INTO {db}.t VALUES (2, 2);
         ALTER TABLE {db}.t ADD COLUMN b INT; INSERT INTO {db}.t VALUES (3, 3, 3);"
    ));
    let out = t.tidemark(&["run", "--no-progress", "--stop-when-caught-up"]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("has 2 columns but the tracked definition has 3")
            && msg.contains("read from the source after a DDL statement")
            && msg.contains("rerun the task with full migration"),
        "{msg}"
    );
}

/// The default configuration (only `topic` and `format` set) under inserts, updates,
/// deletes and DDL of every kind Canal names: every message of the data topic is one
/// Flink's deserializer accepts and emits rows for (`tests/consumers/flink.rs`, from
/// Flink's `CanalJsonDeserializationSchema`/`DebeziumJsonDeserializationSchema`), and
/// each DDL statement is on the DDL topic once.
fn default_configuration_suits_flink(db: &str, format: &str) {
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, e ENUM('x','y'), s SET('p','q'), tz TIMESTAMP NULL);
             INSERT INTO {db}.t VALUES (1, 1, 'x', 'p,q', '2024-01-01 00:00:00'), (2, 2, 'y', '', NULL), (3, 3, NULL, 'q', NOW());"
        ),
    );
    let topic = format!("{db}_topic");
    create_topic(mq(), &topic, 4);
    let t = task(
        &format!("topic = \"{topic}\"\nformat = \"{format}\""),
        &live(db),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "INSERT INTO {db}.t VALUES (4, 4, 'y', 'p', NULL);
         UPDATE {db}.t SET a = 10, e = 'x' WHERE id = 1;
         DELETE FROM {db}.t WHERE id = 2;
         ALTER TABLE {db}.t ADD COLUMN b INT;
         CREATE INDEX ia ON {db}.t (a);
         INSERT INTO {db}.t VALUES (5, 5, 'x', 'q', NULL, 5);
         CREATE TABLE {db}.t2 (id INT PRIMARY KEY);
         RENAME TABLE {db}.t2 TO {db}.t3;
         TRUNCATE TABLE {db}.t3;
         DROP TABLE {db}.t3;"
    ));
    // 3 copied rows + 4 changes; 6 DDL statements.
    let (rows, ddls) = (7, 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let data: Vec<Pulled> = consume(&topic).into_iter().flatten().collect();
        let ddl: Vec<Pulled> = consume(&format!("{topic}_ddl"))
            .into_iter()
            .flatten()
            .collect();
        if data.len() >= rows && ddl.len() >= ddls {
            assert_eq!((data.len(), ddl.len()), (rows, ddls), "messages sent twice");
            for m in &data {
                let body = String::from_utf8_lossy(&m.body).into_owned();
                let kinds = match format {
                    "canal-json" => flink::canal_json(&m.body),
                    _ => flink::debezium_json(&m.body, false),
                };
                match kinds {
                    Ok(k) => assert!(!k.is_empty(), "Flink skips a row message: {body}"),
                    Err(e) => panic!("Flink's {format} fails on {body}: {e}"),
                }
            }
            let statements: Vec<String> = ddl
                .iter()
                .map(|m| {
                    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
                    match format {
                        "canal-json" => {
                            assert_eq!(v["isDdl"], true, "{v}");
                            format!(
                                "{} {}",
                                v["type"].as_str().unwrap(),
                                v["table"].as_str().unwrap()
                            )
                        }
                        _ => v["ddl"]
                            .as_str()
                            .unwrap()
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .to_string(),
                    }
                })
                .collect();
            if format == "canal-json" {
                // Canal's types, a RENAME named by its new table (DruidDdlParser).
                assert_eq!(
                    statements,
                    [
                        "ALTER t",
                        "CINDEX t",
                        "CREATE t2",
                        "RENAME t3",
                        "TRUNCATE t3",
                        "ERASE t3"
                    ],
                );
            } else {
                assert_eq!(
                    statements,
                    ["ALTER", "CREATE", "CREATE", "RENAME", "TRUNCATE", "DROP"]
                );
            }
            stop(child);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} data and {} DDL messages arrived",
            data.len(),
            ddl.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn default_configuration_suits_flink_canal_json() {
    if skip_unless_installed("rocketmq::default_configuration_suits_flink_canal_json") {
        return;
    }
    default_configuration_suits_flink("mq_flink_canal", "canal-json");
}

#[test]
fn default_configuration_suits_flink_debezium_json() {
    if skip_unless_installed("rocketmq::default_configuration_suits_flink_debezium_json") {
        return;
    }
    default_configuration_suits_flink("mq_flink_dbz", "debezium-json");
}

/// `timezone` renders TIMESTAMP values at the offset given; DATETIME is never shifted.
#[test]
fn canal_timestamps_follow_the_timezone_setting() {
    if skip_unless_installed("rocketmq::canal_timestamps_follow_the_timezone_setting") {
        return;
    }
    let db = "mq_tz";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, tz TIMESTAMP(3) NULL, dt DATETIME);
             SET time_zone = '+00:00'; INSERT INTO {db}.t VALUES (1, '2024-02-29 20:30:00.250', '2024-02-29 20:30:00');"
        ),
    );
    let topic = "mq_tz_topic";
    create_topic(mq(), topic, 1);
    let t = task(
        &format!("topic = \"{topic}\"\ntimezone = \"+08:00\"\nenum_set = \"number\""),
        &format!("[migration]\ntypes = [\"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let msgs: Vec<Pulled> = consume(topic).into_iter().flatten().collect();
    assert_eq!(msgs.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&msgs[0].body).unwrap();
    assert_eq!(v["data"][0]["tz"], "2024-03-01 04:30:00.250", "{v}");
    assert_eq!(v["data"][0]["dt"], "2024-02-29 20:30:00", "{v}");
    // KEYS and TAGS by default: the key values and the table.
    assert_eq!(
        msgs[0].properties.get("KEYS").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        msgs[0].properties.get("TAGS").map(String::as_str),
        Some("t")
    );
}

/// `format = "dts-avro"` end to end: every message decodes with fastavro against the
/// reference's `Record` schema (`format::dts_avro::SCHEMA`, recreated from the
/// subscription SDK's `Record.java`), and the records rebuild the source table.
#[test]
fn dts_avro_records_rebuild_the_source() {
    if skip_unless_installed("rocketmq::dts_avro_records_rebuild_the_source") {
        return;
    }
    let db = "mq_dts";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(10), d DECIMAL(5,2));
             INSERT INTO {db}.t VALUES (1, 'one', 1.50), (2, 'two', NULL), (3, 'three', -2.25);"
        ),
    );
    let topic = "mq_dts_topic";
    create_topic(mq(), topic, 2);
    let t = task(
        &format!("topic = \"{topic}\"\nformat = \"dts-avro\""),
        &live(db),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "INSERT INTO {db}.t VALUES (4, 'four', 4.00); UPDATE {db}.t SET a = 'uno' WHERE id = 1; DELETE FROM {db}.t WHERE id = 2;"
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let bodies = loop {
        let all: Vec<Pulled> = consume(topic).into_iter().flatten().collect();
        if all.len() >= 6 {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "only {} messages arrived",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    stop(child);
    let bodies: Vec<&Pulled> = bodies.iter().collect();
    let records = fastavro_records(
        tidemark::sink::rocketmq::format::dts_avro::SCHEMA,
        &bodies,
        false,
    );
    // Queue by queue, as a subscription consumer applies them.
    type Row = (Option<String>, Option<String>);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for r in &records {
        assert_eq!(r["objectName"], format!("{db}.t"), "{r}");
        let names: Vec<&str> = r["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "a", "d"]);
        let image = |k: &str| -> Option<(String, Row)> {
            let img = r[k].as_array()?;
            let id = img[0]["value"].as_str().unwrap().to_string();
            let a = img[1]["value"].as_str().map(String::from);
            let d = img[2]["value"].as_str().map(String::from);
            Some((id, (a, d)))
        };
        match r["operation"].as_str().unwrap() {
            "INSERT" | "UPDATE" => {
                let (id, v) = image("afterImages").unwrap();
                rows.insert(id, v);
            }
            "DELETE" => {
                let (id, _) = image("beforeImages").unwrap();
                rows.remove(&id);
            }
            o => panic!("unexpected operation {o}: {r}"),
        }
    }
    let want: BTreeMap<String, Row> = [
        ("1", Some("uno"), Some("1.50")),
        ("3", Some("three"), Some("-2.25")),
        ("4", Some("four"), Some("4.00")),
    ]
    .into_iter()
    .map(|(id, a, d)| (id.to_string(), (a.map(String::from), d.map(String::from))))
    .collect();
    assert_eq!(rows, want);
}

/// Polls `topics` until `done` says the messages are all there (each topic's messages,
/// queue by queue), or fails after 60 s.
fn await_messages(
    topics: &[&str],
    what: &str,
    done: impl Fn(&[Vec<Vec<Pulled>>]) -> bool,
) -> Vec<Vec<Vec<Pulled>>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Vec<Vec<Pulled>>> = topics.iter().map(|t| consume(t)).collect();
        if done(&got) {
            return got;
        }
        let counts: Vec<usize> = got.iter().map(|t| t.iter().map(Vec::len).sum()).collect();
        assert!(
            Instant::now() < deadline,
            "{what}: only {counts:?} messages arrived on {topics:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn count(queues: &[Vec<Pulled>]) -> usize {
    queues.iter().map(Vec::len).sum()
}

/// Generated columns (virtual and stored) reach Canal JSON consumers with the source's
/// values, in copied rows and in changes alike, as Canal sends them.
#[test]
fn canal_json_carries_generated_columns() {
    if skip_unless_installed("rocketmq::canal_json_carries_generated_columns") {
        return;
    }
    let db = "mq_gen";
    fresh(
        db,
        &format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s VARCHAR(20) AS (CONCAT('x', a)) STORED);
             INSERT INTO {db}.t (id, a) VALUES (1, 5), (2, 7);"
        ),
    );
    let topic = "mq_gen_topic";
    create_topic(mq(), topic, 2);
    let t = task(&format!("topic = \"{topic}\""), &live(db));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "INSERT INTO {db}.t (id, a) VALUES (3, 9); UPDATE {db}.t SET a = 6 WHERE id = 1;"
    ));
    let got = await_messages(&[topic], "generated columns", |g| count(&g[0]) >= 4);
    stop(child);
    // The last message per key, as a consumer applies them, against the source.
    let mut rows: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for m in got[0].iter().flatten() {
        let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(v["sqlType"]["v"], 4, "{v}");
        assert_eq!(v["mysqlType"]["s"], "varchar(20)", "{v}");
        let row = v["data"][0].clone();
        rows.insert(row["id"].as_str().unwrap().to_string(), row);
    }
    let source: Vec<(u32, i32, i32, String)> = env()
        .src()
        .query(format!("SELECT id, a, v, s FROM {db}.t ORDER BY id"))
        .unwrap();
    assert_eq!(rows.len(), source.len());
    for (id, a, v, s) in source {
        let r = &rows[&id.to_string()];
        assert_eq!(
            (&r["a"], &r["v"], &r["s"]),
            (&a.to_string().into(), &v.to_string().into(), &s.into()),
            "row {id}"
        );
    }
}

/// Debezium JSON with Debezium's options on: `source` names each rows event (start
/// position and server as `SHOW BINLOG EVENTS` lists them, the statement from MariaDB's
/// ANNOTATE_ROWS, `connector = "mariadb"`), every change carries the transaction block
/// and the transaction topic its BEGIN/END records, a delete is followed by a tombstone
/// with its KEYS on its queue, and DDL is a schema change record with `tableChanges`.
#[test]
fn debezium_options_name_events_transactions_and_tombstones() {
    if skip_unless_installed("rocketmq::debezium_options_name_events_transactions_and_tombstones") {
        return;
    }
    let db = "mq_dbz_opts";
    fresh(
        db,
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT);"),
    );
    let topic = "mq_dbz_opts_topic";
    create_topic(mq(), topic, 2);
    create_one_topic(mq(), &format!("{topic}_transaction"), 1);
    let t = task(
        &format!(
            "topic = \"{topic}\"\nformat = \"debezium-json\"\ninclude_query = true\nprovide_transaction_metadata = true\ntombstones_on_delete = true"
        ),
        &live(db),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let mut src = env().src();
    let start = tidemark::source::binlog::client::current_position(&mut src).unwrap();
    src.query_drop("BEGIN").unwrap();
    src.query_drop(format!("INSERT INTO {db}.t VALUES (1, 10), (2, 20)"))
        .unwrap();
    src.query_drop(format!("DELETE FROM {db}.t WHERE id = 2"))
        .unwrap();
    src.query_drop("COMMIT").unwrap();
    // The transaction's GTID (other tests write to the same source meanwhile).
    let txn_gtid: String = src.query_first("SELECT @@last_gtid").unwrap().unwrap();
    src.query_drop(format!("ALTER TABLE {db}.t ADD COLUMN b VARCHAR(5)"))
        .unwrap();
    let server_id: u64 = src.query_first("SELECT @@server_id").unwrap().unwrap();
    let rows_at: Vec<u64> = src
        .exec_map(
            format!(
                "SHOW BINLOG EVENTS IN '{}' FROM {}",
                start.file, start.offset
            ),
            (),
            |r: mysql::Row| {
                (
                    r.get::<u64, _>("Pos").unwrap(),
                    r.get::<String, _>("Event_type").unwrap(),
                )
            },
        )
        .unwrap()
        .into_iter()
        .filter(|(_, ty)| ty.ends_with("_rows_v1"))
        .map(|(p, _)| p)
        .collect();
    let ddl_topic = format!("{topic}_ddl");
    let txn_topic = format!("{topic}_transaction");
    // 2 inserts, the delete and its tombstone; BEGIN and END; the ALTER.
    let got = await_messages(&[topic, &txn_topic, &ddl_topic], "debezium options", |g| {
        count(&g[0]) >= 4 && count(&g[1]) >= 2 && count(&g[2]) >= 1
    });
    stop(child);
    assert_eq!(
        (count(&got[0]), count(&got[1]), count(&got[2])),
        (4, 2, 1),
        "messages sent twice"
    );
    let mut orders = Vec::new();
    for queue in &got[0] {
        for (i, m) in queue.iter().enumerate() {
            if m.body.is_empty() {
                // A tombstone: right after the delete of the same key, on its queue.
                let prev = &queue[i - 1];
                assert_eq!(
                    m.properties.get("tidemark_tombstone").map(String::as_str),
                    Some("true")
                );
                assert_eq!(m.properties.get("KEYS"), prev.properties.get("KEYS"));
                let v: serde_json::Value = serde_json::from_slice(&prev.body).unwrap();
                assert_eq!(v["op"], "d", "{v}");
                assert_eq!(flink::debezium_json(&m.body, false), Ok(vec![]));
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
            assert!(flink::debezium_json(&m.body, false).is_ok(), "{v}");
            let s = &v["source"];
            assert_eq!(s["connector"], "mariadb", "{v}");
            assert_eq!(s["server_id"], server_id, "{v}");
            assert_eq!(s["gtid"], txn_gtid.as_str(), "{v}");
            assert_eq!(s["thread"], serde_json::Value::Null, "{v}");
            assert!(
                rows_at.contains(&s["pos"].as_u64().unwrap()),
                "{rows_at:?} {v}"
            );
            let (op, id) = (v["op"].as_str().unwrap(), s["row"].as_u64().unwrap());
            match op {
                "c" => {
                    assert_eq!(
                        s["query"],
                        format!("INSERT INTO {db}.t VALUES (1, 10), (2, 20)")
                    );
                    // Row 0 and 1 of the one rows event.
                    assert_eq!(id, v["after"]["id"].as_u64().unwrap() - 1, "{v}");
                }
                "d" => assert_eq!(s["query"], format!("DELETE FROM {db}.t WHERE id = 2")),
                o => panic!("unexpected op {o}: {v}"),
            }
            assert_eq!(v["transaction"]["id"], txn_gtid.as_str(), "{v}");
            orders.push(v["transaction"]["total_order"].as_u64().unwrap());
        }
    }
    orders.sort_unstable();
    assert_eq!(orders, [1, 2, 3]);
    let records: Vec<serde_json::Value> = got[1]
        .iter()
        .flatten()
        .map(|m| serde_json::from_slice(&m.body).unwrap())
        .collect();
    assert_eq!(records[0]["status"], "BEGIN");
    assert_eq!(records[1]["status"], "END");
    assert_eq!(records[1]["id"], txn_gtid.as_str());
    assert_eq!(records[1]["event_count"], 3);
    assert_eq!(
        records[1]["data_collections"],
        serde_json::json!([{"data_collection": format!("{db}.t"), "event_count": 3}])
    );
    let ddl: serde_json::Value = serde_json::from_slice(&got[2][0][0].body).unwrap();
    assert_eq!(ddl["databaseName"], db);
    let change = &ddl["tableChanges"][0];
    assert_eq!(change["type"], "ALTER", "{ddl}");
    assert_eq!(change["id"], format!("\"{db}\".\"t\""));
    let cols: Vec<&str> = change["table"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["id", "a", "b"], "{ddl}");
    assert_eq!(change["table"]["columns"][2]["length"], 5);
    assert_eq!(
        change["table"]["primaryKeyColumnNames"],
        serde_json::json!(["id"])
    );
}

/// `dts_control_records`: each queue's share of a transaction sits between a BEGIN and
/// a COMMIT record carrying the transaction's id, and HEARTBEAT records arrive on every
/// queue while the source is idle; every record decodes with fastavro against the SDK's
/// schema.
#[test]
fn dts_avro_control_records_frame_each_transaction() {
    if skip_unless_installed("rocketmq::dts_avro_control_records_frame_each_transaction") {
        return;
    }
    let db = "mq_dts_ctl";
    fresh(
        db,
        &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT);"),
    );
    let topic = "mq_dts_ctl_topic";
    create_topic(mq(), topic, 2);
    let t = task(
        &format!("topic = \"{topic}\"\nformat = \"dts-avro\"\ndts_control_records = true"),
        &live(db),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    env().src_sql(&format!(
        "BEGIN; INSERT INTO {db}.t VALUES (1, 1), (2, 2), (3, 3), (4, 4); COMMIT;"
    ));
    let decode = |queue: &[Pulled]| -> Vec<serde_json::Value> {
        let bodies: Vec<&Pulled> = queue.iter().collect();
        fastavro_records(
            tidemark::sink::rocketmq::format::dts_avro::SCHEMA,
            &bodies,
            false,
        )
        .into_iter()
        .map(|r| {
            serde_json::json!({"op": r["operation"], "txid": r["sourceTxid"],
                    "id": r["id"], "object": r["objectName"]})
        })
        .collect()
    };
    // Every queue with inserts: BEGIN, its inserts, COMMIT; every queue ends with a
    // heartbeat.
    let control = |m: &Pulled| m.properties.get("tidemark_control").cloned();
    let got = await_messages(&[topic], "control records", |g| {
        let rows: usize = g[0]
            .iter()
            .flatten()
            .filter(|m| control(m).is_none())
            .count();
        rows == 4
            && g[0].iter().all(|q| {
                q.last().and_then(control).as_deref() == Some("HEARTBEAT")
                    && (q.iter().all(|m| control(m).is_some())
                        || q.iter().any(|m| control(m).as_deref() == Some("COMMIT")))
            })
    });
    stop(child);
    let mut inserts = 0;
    for queue in &got[0] {
        let records = decode(queue);
        let ops: Vec<&str> = records.iter().map(|r| r["op"].as_str().unwrap()).collect();
        assert!(ops.contains(&"HEARTBEAT"), "{ops:?}");
        if !ops.contains(&"INSERT") {
            // A queue the transaction did not use: heartbeats only.
            assert!(ops.iter().all(|o| *o == "HEARTBEAT"), "{ops:?}");
            continue;
        }
        let begin = ops.iter().position(|o| *o == "BEGIN").expect("a BEGIN");
        let commit = ops.iter().position(|o| *o == "COMMIT").expect("a COMMIT");
        assert!(begin < commit, "{ops:?}");
        assert!(
            ops[begin + 1..commit].iter().all(|o| *o == "INSERT") && commit > begin + 1,
            "{ops:?}"
        );
        assert!(
            ops[commit + 1..].iter().all(|o| *o == "HEARTBEAT"),
            "{ops:?}"
        );
        inserts += commit - begin - 1;
        let txid = &records[begin]["txid"];
        assert!(!txid.as_str().unwrap().is_empty());
        for r in &records[begin..=commit] {
            assert_eq!(&r["txid"], txid, "{r}");
        }
        assert_eq!(records[begin]["object"], serde_json::Value::Null);
        let ids: Vec<i64> = records[begin..=commit]
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
    assert_eq!(inserts, 4);
}
