//! The ADB stand-in's per-table binary logs: the DDL options, `SHOW MASTER STATUS FOR`,
//! `SHOW BINARY LOGS FOR`, and a replication stream (the `mysql` crate's
//! `get_binlog_stream`, as Tidemark's reader uses it) filtered to one table. Stand-in
//! only: how a real cluster serves the stream is not publicly documented (see the
//! module doc of `tidemark_sandbox::standin::adb`).

use mysql::binlog::events::EventData;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};
use tidemark_sandbox::standin::adb::{AdbStandIn, Options};

fn conn(adb: &AdbStandIn) -> mysql::Conn {
    mysql::Conn::new(mysql::Opts::from_url(&adb.url()).unwrap()).unwrap()
}

fn err_of(r: mysql::Result<impl Sized>) -> mysql::MySqlError {
    match r {
        Err(mysql::Error::MySqlError(e)) => e,
        Err(other) => panic!("not a server error: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

fn master_status(c: &mut mysql::Conn, t: &str) -> (String, u64) {
    let row: mysql::Row = c
        .query_first(format!("SHOW MASTER STATUS FOR {t}"))
        .unwrap()
        .unwrap();
    (row.get(0).unwrap(), row.get(1).unwrap())
}

/// What a stream delivered: rows events' table names, rotate names, and the position
/// after each rows event.
#[derive(Default, Debug)]
struct Seen {
    tables: Vec<String>,
    rotates: Vec<String>,
    row_ends: Vec<u32>,
    ids: Vec<i64>,
}

/// Reads the stream from `file`/`pos` until `want` rows events arrived (or 20 s).
fn read(adb: &AdbStandIn, file: &str, pos: u64, want: usize) -> Seen {
    let c = conn(adb);
    let mut s = c
        .get_binlog_stream(
            mysql::BinlogRequest::new(4242)
                .with_filename(file.as_bytes().to_vec())
                .with_pos(pos),
        )
        .unwrap();
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.row_ends.len() < want && Instant::now() < deadline {
        let ev = s.next().expect("stream ended").expect("event");
        match ev.read_data().unwrap() {
            Some(EventData::RotateEvent(r)) => seen.rotates.push(r.name().into_owned()),
            Some(EventData::RowsEvent(r)) => {
                let tme = s.get_tme(r.table_id()).expect("table map before rows");
                seen.tables.push(tme.table_name().into_owned());
                for row in r.rows(tme) {
                    let (_, after) = row.unwrap();
                    let after = after.expect("write rows carry an after image");
                    let v = after.as_ref(0).unwrap();
                    if let mysql::binlog::value::BinlogValue::Value(mysql::Value::Int(i)) = v {
                        seen.ids.push(*i);
                    }
                }
                seen.row_ends.push(ev.header().log_pos());
            }
            _ => {}
        }
    }
    seen
}

#[test]
fn one_tables_stream() {
    let adb = AdbStandIn::start(&Options::default()).unwrap();
    let mut c = conn(&adb);
    c.query_drop("CREATE DATABASE bl").unwrap();
    c.select_db("bl").unwrap();
    c.query_drop(
        "CREATE TABLE a (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR) DISTRIBUTED BY HASH(id) \
         BINLOG=true INDEX_ALL='Y'",
    )
    .unwrap();
    c.query_drop("CREATE TABLE b (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR) BINLOG=true")
        .unwrap();
    let ddl: (String, String) = c.query_first("SHOW CREATE TABLE a").unwrap().unwrap();
    assert!(ddl.1.contains("BINLOG=true binlog_ttl='6h'"), "{}", ddl.1);

    let (file, pos) = master_status(&mut c, "a");
    assert!(file.starts_with("adb-binlog."), "{file}");
    let (file_b, _) = master_status(&mut c, "`bl`.`b`");
    assert_ne!(file, file_b, "each table has its own file name");
    for i in 1..=3 {
        c.query_drop(format!("INSERT INTO a VALUES ({i}, 'a{i}')"))
            .unwrap();
        c.query_drop(format!("INSERT INTO b VALUES ({}, 'b{i}')", 100 + i))
            .unwrap();
    }
    c.query_drop("UPDATE a SET v = 'x' WHERE id = 1").unwrap();

    let seen = read(&adb, &file, pos, 4);
    assert_eq!(seen.tables, vec!["a"; 4], "{seen:?}");
    assert_eq!(seen.ids, vec![1, 2, 3, 1], "{seen:?}");
    assert!(!seen.rotates.is_empty());
    for r in &seen.rotates {
        assert_eq!(r, &file, "rotate names are per-table");
    }
    assert!(seen.row_ends.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // Resume after the second row's transaction (its XID's end, a per-table position
    // taken from the stream): only row 3 and the update follow.
    let resumed = read(
        &adb,
        &file,
        next_boundary(&adb, &file, pos, seen.row_ends[1]),
        2,
    );
    assert_eq!(resumed.ids, vec![3, 1], "{resumed:?}");
    assert_eq!(resumed.tables, vec!["a"; 2]);

    // SHOW BINARY LOGS FOR: per-table names from the stream start on.
    let logs: Vec<(String, u64)> = c.query("SHOW BINARY LOGS FOR a").unwrap();
    assert!(!logs.is_empty());
    assert!(logs
        .iter()
        .all(|(n, _)| n.starts_with(&file[..file.rfind("binlog.").unwrap()])));

    // A rotate on storage reaches the stream with the per-table name of the new file.
    adb.storage()
        .conn()
        .unwrap()
        .query_drop("FLUSH BINARY LOGS")
        .unwrap();
    c.query_drop("INSERT INTO a VALUES (4, 'a4')").unwrap();
    let (file2, _) = master_status(&mut c, "a");
    assert_ne!(file2, file);
    let after = read(&adb, &file, pos, 5);
    assert_eq!(after.ids, vec![1, 2, 3, 1, 4]);
    assert!(after.rotates.contains(&file2), "{after:?}");
    adb.stop();
}

/// The position just after the transaction holding the rows event ending at `end`:
/// the next XID's end, read from a full stream of the table.
fn next_boundary(adb: &AdbStandIn, file: &str, start: u64, end: u32) -> u64 {
    let c = conn(adb);
    let mut s = c
        .get_binlog_stream(
            mysql::BinlogRequest::new(4243)
                .with_filename(file.as_bytes().to_vec())
                .with_pos(start),
        )
        .unwrap();
    loop {
        let ev = s.next().unwrap().unwrap();
        if ev.header().log_pos() > end && ev.header().event_type_raw() == 16 {
            return ev.header().log_pos() as u64;
        }
    }
}

#[test]
fn ddl_options_and_errors() {
    let adb = AdbStandIn::start(&Options::default()).unwrap();
    let mut c = conn(&adb);
    c.query_drop("CREATE DATABASE e").unwrap();
    c.query_drop("USE e").unwrap();
    c.query_drop("CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY)")
        .unwrap();
    let e = err_of(c.query_drop("SHOW MASTER STATUS FOR t"));
    assert!(
        e.message.contains("binlog is not enabled for table e.t"),
        "{}",
        e.message
    );
    assert!(e.message.contains("ALTER TABLE"), "{}", e.message);
    let e = err_of(c.query_drop("SHOW BINARY LOGS FOR e.nope"));
    assert_eq!(e.code, 1146, "{}", e.message);

    for bad in ["'6x'", "'0'", "'366d'", "''", "'h'"] {
        let e = err_of(c.query_drop(format!("ALTER TABLE t binlog_ttl={bad}")));
        assert!(e.message.contains("binlog_ttl"), "{}", e.message);
    }
    c.query_drop("ALTER TABLE t BINLOG=true").unwrap();
    c.query_drop("ALTER TABLE t binlog_ttl='7d'").unwrap();
    let ddl: (String, String) = c.query_first("SHOW CREATE TABLE t").unwrap().unwrap();
    assert!(ddl.1.contains("BINLOG=true binlog_ttl='7d'"), "{}", ddl.1);
    for ok in ["'60000'", "'30s'", "'365d'", "'12h'"] {
        c.query_drop(format!("ALTER TABLE t binlog_ttl={ok}"))
            .unwrap();
    }
    let (file, pos) = master_status(&mut c, "t");
    let id_file = file.clone();
    c.query_drop("ALTER TABLE t BINLOG=false").unwrap();
    let ddl: (String, String) = c.query_first("SHOW CREATE TABLE t").unwrap().unwrap();
    assert!(!ddl.1.contains("BINLOG"), "{}", ddl.1);
    assert!(!ddl.1.contains("binlog_ttl"), "{}", ddl.1);

    // A stream for a table whose binlog is off, or a storage file name, is refused.
    for name in [id_file.as_str(), "binlog.000001"] {
        let s = conn(&adb)
            .get_binlog_stream(
                mysql::BinlogRequest::new(77)
                    .with_filename(name.as_bytes().to_vec())
                    .with_pos(pos),
            )
            .unwrap()
            .next()
            .unwrap();
        let e = err_of(s);
        assert_eq!(e.code, 1236);
        assert!(
            e.message.contains("SHOW MASTER STATUS FOR"),
            "{}",
            e.message
        );
    }
    // Before the stream start.
    c.query_drop("ALTER TABLE t BINLOG=true").unwrap();
    let (file, pos) = master_status(&mut c, "t");
    assert_eq!(file, id_file, "the table keeps its id");
    let ddl: (String, String) = c.query_first("SHOW CREATE TABLE t").unwrap().unwrap();
    assert!(
        ddl.1.contains("binlog_ttl='12h'"),
        "kept while off: {}",
        ddl.1
    );
    let s = conn(&adb)
        .get_binlog_stream(
            mysql::BinlogRequest::new(78)
                .with_filename(file.as_bytes().to_vec())
                .with_pos(4u64),
        )
        .unwrap()
        .next()
        .unwrap();
    let e = err_of(s);
    // The catalog write after the start moved the storage position on.
    assert!(
        e.message.contains(&format!("starts at {file}:")),
        "{}",
        e.message
    );
    assert!(pos > 4);

    // XUANWU_V2 tables cannot enable the binary log.
    c.query_drop("CREATE TABLE v2 (id BIGINT NOT NULL PRIMARY KEY) ENGINE='XUANWU_V2'")
        .unwrap();
    let e = err_of(c.query_drop("ALTER TABLE v2 BINLOG=true"));
    assert!(e.message.contains("XUANWU_V2"), "{}", e.message);
    let e = err_of(c.query_drop(
        "CREATE TABLE v3 (id BIGINT NOT NULL PRIMARY KEY) BINLOG=true ENGINE='XUANWU_V2'",
    ));
    assert!(e.message.contains("XUANWU_V2"), "{}", e.message);
    adb.stop();
}

#[test]
fn stream_ends_when_the_client_goes_or_the_listener_stops() {
    let adb = AdbStandIn::start(&Options::default()).unwrap();
    let mut c = conn(&adb);
    c.query_drop("CREATE DATABASE q").unwrap();
    c.query_drop("USE q").unwrap();
    c.query_drop("CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY) BINLOG=true")
        .unwrap();
    let (file, pos) = master_status(&mut c, "t");
    let dumps = |adb: &AdbStandIn| -> usize {
        let n: Vec<String> = adb
            .storage()
            .conn()
            .unwrap()
            .query("SELECT command FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
            .unwrap();
        n.len()
    };
    let wait_for = |adb: &AdbStandIn, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while dumps(adb) != n {
            assert!(
                Instant::now() < deadline,
                "{} storage dumps, expected {n}",
                dumps(adb)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let open = || {
        let mut s = conn(&adb)
            .get_binlog_stream(
                mysql::BinlogRequest::new(99)
                    .with_filename(file.as_bytes().to_vec())
                    .with_pos(pos),
            )
            .unwrap();
        s.next().unwrap().unwrap(); // the stream is up
        s
    };
    let mut s = open();
    wait_for(&adb, 1);
    // An idle stream carries heartbeats (every 5 s) naming the per-table file.
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        assert!(Instant::now() < deadline, "no heartbeat");
        let ev = s.next().unwrap().unwrap();
        if ev.header().event_type_raw() == 27 {
            assert_eq!(String::from_utf8_lossy(ev.data()), file);
            break;
        }
    }
    drop(s);
    wait_for(&adb, 0);

    let s2 = open();
    wait_for(&adb, 1);
    adb.stop();
    wait_for(&adb, 0);
    drop(s2);
    adb.start_again().unwrap();
    // COM_BINLOG_DUMP_GTID is refused.
    let s = conn(&adb)
        .get_binlog_stream(
            mysql::BinlogRequest::new(100)
                .with_use_gtid(true)
                .with_filename(file.as_bytes().to_vec())
                .with_pos(pos),
        )
        .unwrap()
        .next()
        .unwrap();
    assert!(err_of(s).message.contains("use file and position"));
}
