//! The binlog reader against a live MariaDB source: every column type decoded from the
//! binlog equals what the snapshot reader reads for the same row, and `tidemark binlog
//! inspect --from` shows the changes.

mod common;

use common::{env, text};
use mysql::prelude::Queryable;
use std::process::Command;
use tidemark::config::{endpoint_from_url, TlsMode};
use tidemark::source::binlog::client::{current_position, Reader, StartAt};
use tidemark::source::binlog::value::conform;
use tidemark::source::binlog::{Body, RowsKind};
use tidemark::source::{catalog, snapshot};
use tidemark_core::Value;

const ZOO: &str = "CREATE TABLE zoo (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, biu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d10 DECIMAL(10,2), dneg DECIMAL(5,0),
    c CHAR(10), vc VARCHAR(300) CHARACTER SET utf8mb4, lat VARCHAR(20) CHARACTER SET latin1,
    bin BINARY(4), vb VARBINARY(10), t TEXT, b BLOB, mb MEDIUMBLOB,
    e ENUM('', 'a', 'b'), s SET('', 'x', 'y'),
    bit1 BIT(1), bit13 BIT(13), bit64 BIT(64),
    j JSON,
    dt DATE, dtt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
    tm TIME, tm6 TIME(6), y YEAR,
    g GEOMETRY, p POINT,
    u UUID, i6 INET6, i4 INET4
)";

const ROWS: &str = "INSERT INTO zoo VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -3.4e38, 1.7976931348623157e308, -12345678901234567890123456789012345.123456789012345678901234567890, 99999999.99, -99999,
  'abc', 'emoji 😀 and ünïcode', 'café', x'00010200', x'ff00', 'text', x'0001', REPEAT('m', 70000),
  '', '', b'1', b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111',
  '{\"a\": [1, 2.5, \"x\"], \"b\": null}',
  '0000-00-00', '0000-00-00 00:00:00', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999',
  '-838:59:59', '838:59:58.999999', 0000,
  ST_GeomFromText('LINESTRING(0 0, 1 1, 2 3)'), POINT(1.5, -2.25),
  '6ccd780c-baba-1026-9564-5b8c656024db', '1:0:0:2:0:0:3:4', '192.168.1.10'),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  1.5, -2.5e-300, 0.000000000000000000000000000001, -0.01, 0,
  '', '', '', x'', x'', '', x'', x'',
  'b', 'x,y', b'0', b'0', b'0',
  '[]', '1000-01-01', '9999-12-31 23:59:59', '1970-01-01 00:00:01.000001', '1970-01-01 05:30:01',
  '00:00:00', '-00:00:00.5', 2155, ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'), POINT(0, 0),
  '12345678-1234-5678-9abc-def012345678', '::ffff:1.2.3.4', '0.0.0.1'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

#[test]
fn binlog_values_equal_snapshot_values() {
    let e = env();
    e.src_sql("CREATE DATABASE bl_zoo; USE bl_zoo;");
    let mut src = e.src();
    src.query_drop("USE bl_zoo").unwrap();
    src.query_drop(ZOO).unwrap();
    let start = current_position(&mut src).unwrap();
    src.query_drop(ROWS).unwrap();
    src.query_drop(
        "UPDATE zoo SET vc = 'changed', iu = 7, ts = '2001-02-03 04:05:06.789' WHERE id = 2",
    )
    .unwrap();
    src.query_drop("INSERT INTO zoo (id) VALUES (4)").unwrap();
    src.query_drop("DELETE FROM zoo WHERE id = 4").unwrap();
    let end = current_position(&mut src).unwrap();

    // The table as the snapshot reader sees it (in its session: raw bytes, UTC).
    src.query_drop("SET NAMES binary, time_zone = '+00:00'")
        .unwrap();
    let db = catalog::read_database(&mut src, "bl_zoo").unwrap().unwrap();
    let def = &db.table("zoo").unwrap().def;
    let snapshot = snapshot::read_table(&mut src, def).unwrap();
    assert_eq!(snapshot.len(), 3);

    // The same rows from the binlog: the last image of each id.
    let ep = endpoint_from_url("source", &e.pair.source.url(), TlsMode::Preferred).unwrap();
    let mut reader = Reader::open(
        &ep,
        &StartAt::File {
            file: start.file.clone(),
            position: start.offset,
        },
        4_000_001,
    )
    .unwrap();
    let mut latest: std::collections::BTreeMap<i64, Option<Vec<Value>>> = Default::default();
    let mut kinds = Vec::new();
    while let Some((event, pos)) = reader.next_event().unwrap() {
        if let Body::Rows { kind, table, rows } = &event.body {
            if table.table != "zoo" || table.database != "bl_zoo" {
                continue;
            }
            // A large row set is split over several events of one kind.
            if kinds.last() != Some(kind) {
                kinds.push(*kind);
            }
            for r in rows {
                let image = match kind {
                    RowsKind::Delete => r.before.as_ref().unwrap(),
                    _ => r.after.as_ref().unwrap(),
                };
                let values: Vec<Value> = image
                    .iter()
                    .zip(&table.types)
                    .zip(&def.columns)
                    .map(|((v, ty), col)| conform(v.clone().expect("full row image"), *ty, col))
                    .collect();
                let Value::Int(id) = values[0] else {
                    panic!("id {:?}", values[0])
                };
                latest.insert(id, (*kind != RowsKind::Delete).then_some(values));
            }
        }
        if (pos.file.as_str(), pos.offset) >= (end.file.as_str(), end.offset) {
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![
            RowsKind::Insert,
            RowsKind::Update,
            RowsKind::Insert,
            RowsKind::Delete
        ]
    );
    assert_eq!(latest.remove(&4), Some(None), "row 4 was deleted");
    let from_binlog: Vec<Vec<Value>> = latest.into_values().map(|v| v.unwrap()).collect();
    for (b, s) in from_binlog.iter().zip(&snapshot) {
        for ((bv, sv), col) in b.iter().zip(s).zip(&def.columns) {
            assert_eq!(bv, sv, "column {} of row {:?}", col.name, s[0]);
        }
    }
}

#[test]
fn inspect_reads_a_live_source() {
    let e = env();
    let mut src = e.src();
    let start = current_position(&mut src).unwrap();
    src.query_drop("CREATE DATABASE bl_inspect").unwrap();
    src.query_drop("CREATE TABLE bl_inspect.t (id INT PRIMARY KEY, name VARCHAR(20))")
        .unwrap();
    src.query_drop("INSERT INTO bl_inspect.t VALUES (1, 'first'), (2, 'second')")
        .unwrap();
    let from = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        cmd.args([
            "binlog",
            "inspect",
            "--from",
            &e.pair.source.url(),
            "--start",
        ])
        .arg(format!("{}:{}", start.file, start.offset));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run tidemark");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let human = from(false);
    assert!(human.contains("CREATE TABLE bl_inspect.t"), "{human}");
    assert!(
        human.contains("INSERT INTO `bl_inspect`.`t` (2 rows)"),
        "{human}"
    );
    assert!(human.contains("'second'"), "{human}");
    let json = from(true);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .filter(|v: &serde_json::Value| v["event"] == "rows" && v["database"] == "bl_inspect")
        .collect();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(
        rows[0]["rows"][1]["after"],
        serde_json::json!([2, "second"])
    );

    // A purged or unknown file is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args([
            "binlog",
            "inspect",
            "--from",
            &e.pair.source.url(),
            "--start",
            "nosuch-bin.000001:4",
        ])
        .output()
        .expect("run tidemark");
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(msg.contains("rerun the task with full migration"), "{msg}");
}

/// MariaDB's compressed events (`log_bin_compress`): QUERY_COMPRESSED and the
/// compressed row events decode to the same statements and rows.
#[test]
fn mariadb_compressed_events_decode() {
    let e = env();
    let mut src = e.src();
    src.query_drop("SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10")
        .unwrap();
    let start = current_position(&mut src).unwrap();
    src.query_drop("CREATE DATABASE bl_compressed").unwrap();
    src.query_drop("USE bl_compressed").unwrap();
    src.query_drop(
        "CREATE TABLE bl_compressed.t (id INT PRIMARY KEY, body TEXT) /* a comment to make it long */",
    )
    .unwrap();
    src.query_drop(
        "INSERT INTO bl_compressed.t SELECT seq, REPEAT('compressible ', seq) FROM seq_1_to_50",
    )
    .unwrap();
    src.query_drop("UPDATE bl_compressed.t SET body = 'short' WHERE id <= 10")
        .unwrap();
    src.query_drop("DELETE FROM bl_compressed.t WHERE id > 40")
        .unwrap();
    let end = current_position(&mut src).unwrap();
    src.query_drop("SET GLOBAL log_bin_compress = OFF").unwrap();

    let ep = endpoint_from_url("source", &e.pair.source.url(), TlsMode::Preferred).unwrap();
    let start = StartAt::File {
        file: start.file,
        position: start.offset,
    };
    let mut reader = Reader::open(&ep, &start, 4_000_002).unwrap();
    let (mut statements, mut counts) = (Vec::new(), [0usize; 3]);
    while let Some((event, pos)) = reader.next_event().unwrap() {
        match &event.body {
            Body::Query { statement, .. } => statements.push(statement.clone()),
            Body::Rows { kind, table, rows } if table.database == "bl_compressed" => {
                counts[*kind as usize] += rows.len();
                if *kind == RowsKind::Insert {
                    let after = rows[0].after.as_ref().unwrap();
                    let Some(Value::Int(id)) = after[0] else {
                        panic!("{after:?}")
                    };
                    let expected = "compressible ".repeat(id as usize);
                    assert_eq!(after[1], Some(Value::Bytes(expected.into_bytes())));
                }
            }
            _ => {}
        }
        if (pos.file.as_str(), pos.offset) >= (end.file.as_str(), end.offset) {
            break;
        }
    }
    assert!(
        statements
            .iter()
            .any(|s| s.ends_with("/* a comment to make it long */")),
        "{statements:?}"
    );
    assert_eq!(counts, [50, 10, 10]);
}

/// What the stream says about each rows event, checked with the server's own
/// `SHOW BINLOG EVENTS`: where the event starts (`Pos`), the server that wrote it
/// (`Server_id`), and the statement its ANNOTATE_ROWS event carries (MariaDB logs one
/// before each statement's rows, `binlog_annotate_row_events` being on by default);
/// a DDL statement's QUERY event likewise.
#[test]
fn stream_names_each_rows_event() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tidemark::source::binlog::stream::{self, Item};
    let e = env();
    let mut src = e.src();
    let start = current_position(&mut src).unwrap();
    src.query_drop("CREATE DATABASE bl_events").unwrap();
    src.query_drop("CREATE TABLE bl_events.t (id INT PRIMARY KEY, v INT)")
        .unwrap();
    src.query_drop("INSERT INTO bl_events.t VALUES (1, 10), (2, 20)")
        .unwrap();
    src.query_drop("UPDATE bl_events.t SET v = v + 1 WHERE id = 2")
        .unwrap();
    let server_id: u32 = src.query_first("SELECT @@server_id").unwrap().unwrap();
    // (Pos, Event_type, Server_id) of the events after `start`.
    let events: Vec<(u64, String, u32)> = src
        .exec_map(
            format!(
                "SHOW BINLOG EVENTS IN '{}' FROM {}",
                start.file, start.offset
            ),
            (),
            |row: mysql::Row| {
                (
                    row.get::<u64, _>("Pos").unwrap(),
                    row.get::<String, _>("Event_type").unwrap(),
                    row.get::<u32, _>("Server_id").unwrap(),
                )
            },
        )
        .unwrap();
    let rows_at: Vec<u64> = events
        .iter()
        .filter(|(_, ty, _)| ty.ends_with("_rows_v1") || ty.ends_with("_rows"))
        .filter(|(_, ty, _)| !ty.starts_with("Annotate"))
        .map(|e| e.0)
        .collect();
    let ddl_at: Vec<u64> = events
        .iter()
        .filter(|(_, ty, _)| ty == "Query")
        .map(|e| e.0)
        .collect();
    assert_eq!(rows_at.len(), 2, "{events:?}");

    let ep = endpoint_from_url("source", &e.pair.source.url(), TlsMode::Preferred).unwrap();
    let databases: HashSet<String> = ["bl_events".to_string()].into();
    let source = stream::Source {
        endpoints: std::slice::from_ref(&ep),
        identity: None,
        databases: &databases,
        server_id: 4_000_003,
        retry_window: std::time::Duration::from_secs(10),
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = AtomicBool::new(false);
    let (mut blocks, mut ddls) = (Vec::new(), Vec::new());
    std::thread::scope(|s| {
        let reader = s.spawn(|| stream::read(&source, start.clone(), &stop, tx));
        while blocks.len() < 2 {
            match rx.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(Item::Txn(t)) => {
                    if let Some(d) = t.ddl.clone() {
                        ddls.push(d);
                    }
                    blocks.extend(
                        t.rows
                            .into_iter()
                            .filter(|b| b.table.database == "bl_events"),
                    );
                }
                Ok(_) => {}
                Err(e) => panic!("no transaction from the stream: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        let _ = reader.join();
    });
    let got: Vec<u64> = blocks.iter().map(|b| b.event.offset).collect();
    assert_eq!(got, rows_at);
    for b in &blocks {
        assert_eq!(b.event.server_id, server_id);
        assert!(b.event.timestamp > 0);
    }
    assert_eq!(
        blocks[0].event.query.as_deref(),
        Some("INSERT INTO bl_events.t VALUES (1, 10), (2, 20)")
    );
    assert_eq!(
        blocks[1].event.query.as_deref(),
        Some("UPDATE bl_events.t SET v = v + 1 WHERE id = 2")
    );
    let create = ddls
        .iter()
        .find(|d| d.statement.starts_with("CREATE TABLE"))
        .expect("the CREATE TABLE");
    assert!(
        ddl_at.contains(&create.event.offset),
        "{ddl_at:?} {:?}",
        create.event
    );
    assert_eq!(create.event.server_id, server_id);
}
