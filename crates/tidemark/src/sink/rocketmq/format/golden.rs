//! Golden messages: a table of every type rendered in each format, checked against the
//! reference consumers' rendering rules. Every expectation is written from the
//! reference's code (file named at each), never from our output.

use super::*;
use crate::source::catalog::TableInfo;
use crate::transform::mapping::{whole_table, Operations};
use serde_json::{json, Value as J};
use tidemark_core::{DateTime, TableDef, TableName, Time};

#[path = "../../../../tests/consumers/flink.rs"]
mod flink;

fn col(name: &str, ty: &str, kind: ColumnKind, charset: Option<&str>) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        column_type: ty.into(),
        kind,
        nullable: true,
        generated: false,
        invisible: false,
        charset: charset.map(String::from),
    }
}

const S: Option<&str> = Some("utf8mb4");

/// Every type, with a value that exercises its rendering.
fn every_type() -> (TablePlan, Vec<Value>) {
    use ColumnKind as K;
    let signed = K::Int { unsigned: false };
    let unsigned = K::Int { unsigned: true };
    let cols = vec![
        (col("id", "int(11)", signed, None), Value::Int(7)),
        (col("ti", "tinyint(4)", signed, None), Value::Int(-128)),
        (
            col("tu", "tinyint(3) unsigned", unsigned, None),
            Value::UInt(255),
        ),
        (
            col("tu_small", "tinyint(3) unsigned", unsigned, None),
            Value::UInt(127),
        ),
        (
            col("su", "smallint(5) unsigned", unsigned, None),
            Value::UInt(65535),
        ),
        (
            col("mu", "mediumint(8) unsigned", unsigned, None),
            Value::UInt(16_777_215),
        ),
        (
            col("iu", "int(10) unsigned", unsigned, None),
            Value::UInt(4_294_967_295),
        ),
        (
            col("iu_small", "int(10) unsigned", unsigned, None),
            Value::UInt(1),
        ),
        (col("bi", "bigint(20)", signed, None), Value::Int(-5)),
        (
            col("bu", "bigint(20) unsigned", unsigned, None),
            Value::UInt(u64::MAX),
        ),
        (col("fl", "float", K::Float, None), Value::Float(1.0e10)),
        (
            col("db", "double", K::Double, None),
            Value::Double(0.1 + 0.2),
        ),
        (col("db_int", "double", K::Double, None), Value::Double(5.0)),
        (
            col("dec", "decimal(20,6)", K::Decimal, None),
            Value::Decimal("-12.340000".into()),
        ),
        (
            col("c", "char(3)", K::Text, S),
            Value::Bytes(b"ab".to_vec()),
        ),
        (
            col("v", "varchar(10)", K::Text, Some("latin1")),
            Value::Bytes(vec![0x63, 0x61, 0x66, 0xe9]),
        ),
        (
            col("tx", "text", K::Text, S),
            Value::Bytes("✓".as_bytes().to_vec()),
        ),
        (
            col("bn", "binary(2)", K::Binary, None),
            Value::Bytes(vec![0x00, 0xff]),
        ),
        (
            col("vb", "varbinary(4)", K::Binary, None),
            Value::Bytes(vec![0x80, 0x41]),
        ),
        (col("bl", "blob", K::Binary, None), Value::Bytes(vec![0xc3])),
        (col("e", "enum('x','y','z')", K::Enum, S), Value::UInt(2)),
        (col("s", "set('p','q')", K::Set, S), Value::UInt(3)),
        (col("s_null", "set('p','q')", K::Set, S), Value::Null),
        (col("bits", "bit(10)", K::Bit, None), Value::Bit(513)),
        (
            col("j", "json", K::Json, None),
            Value::Json(br#"{"k": 1}"#.to_vec()),
        ),
        (
            col("dt", "date", K::Date, None),
            Value::Date(DateTime {
                year: 2020,
                month: 2,
                day: 29,
                ..DateTime::ZERO
            }),
        ),
        (
            col("tm", "time(2)", K::Time, None),
            Value::Time(Time {
                negative: true,
                hours: 100,
                minutes: 5,
                seconds: 6,
                micros: 500_000,
            }),
        ),
        (
            col("dtm", "datetime(3)", K::DateTime, None),
            Value::DateTime(DateTime {
                year: 2024,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
                micros: 123_000,
            }),
        ),
        (
            col("dtm6", "datetime(6)", K::DateTime, None),
            Value::DateTime(DateTime {
                year: 2024,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
                micros: 123_456,
            }),
        ),
        (
            col("ts", "timestamp(6)", K::Timestamp, None),
            Value::DateTime(DateTime {
                year: 2023,
                month: 5,
                day: 6,
                hour: 23,
                minute: 30,
                second: 0,
                micros: 1,
            }),
        ),
        (
            col("ts_zero", "timestamp", K::Timestamp, None),
            Value::DateTime(DateTime::ZERO),
        ),
        (col("yr", "year(4)", K::Year, None), Value::Int(2024)),
        (col("yr_zero", "year(4)", K::Year, None), Value::Int(0)),
        (
            col("g", "point", K::Geometry, None),
            Value::Bytes(vec![0, 0, 0, 0, 1, 1, 0, 0, 0]),
        ),
        (col("n", "int(11)", signed, None), Value::Null),
    ];
    let (defs, values): (Vec<_>, Vec<_>) = cols.into_iter().unzip();
    let def = TableDef {
        name: TableName::new("shop", "every"),
        columns: defs,
        key: Some(vec![0]),
        key_name: Some("PRIMARY".into()),
    };
    let plan = crate::transform::mapping::test_plan(def);
    (plan, values)
}

fn position() -> Position {
    Position {
        file: "mysql-bin.000003".into(),
        offset: 1234,
        gtid: Some("0-1-42,1-1-3".into()),
        ..Default::default()
    }
}

fn insert<'a>(t: &'a TablePlan, row: &'a [Value], p: &'a Position) -> RowEvent<'a> {
    RowEvent {
        table: t,
        op: Op::Insert,
        before: None,
        after: Some(row),
        snapshot: false,
        origin: Origin {
            position: Some(p),
            gtid: Some("0-1-42"),
            index: 0,
            source_ms: 1_700_000_000_000,
            built_ms: 1_700_000_000_500,
            event: None,
            row: 0,
            thread: None,
            begin: 0,
            order: None,
        },
    }
}

fn canal(opts: CanalOptions, ev: &RowEvent<'_>) -> J {
    serde_json::from_slice(&canal::row(ev, &opts)).expect("canal json")
}

/// Canal's values and sqlTypes, column by column. Sources (alibaba/canal):
/// `dbsync/.../RowsLogBuffer.java` (`fetchValue`, `mysqlToJavaType`) and
/// `parse/.../dbsync/LogEventConvert.java` (`parseOneRow`).
#[test]
fn canal_renders_every_type_as_canal_does() {
    let (t, row) = every_type();
    let p = position();
    let opts = CanalOptions {
        utc_offset: 8 * 3600,
        ..Default::default()
    };
    let v = canal(opts, &insert(&t, &row, &p));
    let want: &[(&str, J, i32)] = &[
        // MYSQL_TYPE_LONG → Types.INTEGER, `String.valueOf(value)`.
        ("id", json!("7"), 4),
        // MYSQL_TYPE_TINY → Types.TINYINT.
        ("ti", json!("-128"), -6),
        // Unsigned and negative as signed: `TINYINT_MAX_VALUE + number.intValue()`,
        // "往上加一个量级" TINYINT → SMALLINT.
        ("tu", json!("255"), 5),
        // Within the signed range: not widened.
        ("tu_small", json!("127"), -6),
        // SHORT → INTEGER.
        ("su", json!("65535"), 4),
        // INT24 stays INTEGER.
        ("mu", json!("16777215"), 4),
        // LONG → BIGINT.
        ("iu", json!("4294967295"), -5),
        ("iu_small", json!("1"), 4),
        ("bi", json!("-5"), -5),
        // LONGLONG → DECIMAL, `BIGINT_MAX_VALUE.add(...)`.
        ("bu", json!("18446744073709551615"), 3),
        // Types.REAL, `String.valueOf(Float)`: Java's computerized scientific notation.
        ("fl", json!("1.0E10"), 7),
        ("db", json!("0.30000000000000004"), 8),
        ("db_int", json!("5.0"), 8),
        // NEWDECIMAL: `((BigDecimal) value).toPlainString()`.
        ("dec", json!("-12.340000"), 3),
        // STRING → Types.CHAR; VARCHAR → Types.VARCHAR.
        ("c", json!("ab"), 1),
        ("v", json!("café"), 12),
        // BLOB of a text type (`isText`) → Types.CLOB, decoded.
        ("tx", json!("✓"), 2005),
        // BINARY/VARBINARY/BLOB → Types.BLOB, `new String(bytes, ISO_8859_1)`.
        ("bn", json!("\u{0}\u{ff}"), 2004),
        ("vb", json!("\u{80}A"), 2004),
        ("bl", json!("\u{c3}"), 2004),
        // MYSQL_TYPE_ENUM → Types.INTEGER, the index (`valueOf(int32)`).
        ("e", json!("2"), 4),
        // MYSQL_TYPE_SET → Types.BIT, the bitmask.
        ("s", json!("3"), -7),
        // A NULL SET: `mysqlToJavaType` gives Types.BINARY, which `parseOneRow`'s NULL
        // branch turns into Types.BLOB.
        ("s_null", J::Null, 2004),
        // MYSQL_TYPE_BIT → Types.BIT, the number.
        ("bits", json!("513"), -7),
        // MYSQL_TYPE_JSON → Types.VARCHAR.
        ("j", json!(r#"{"k": 1}"#), 12),
        // DATE/TIME/DATETIME2 text; TIME hours past 99 unpadded, fraction to `meta` digits.
        ("dt", json!("2020-02-29"), 91),
        ("tm", json!("-100:05:06.50"), 92),
        ("dtm", json!("2024-01-02 03:04:05.123"), 93),
        ("dtm6", json!("2024-01-02 03:04:05.123456"), 93),
        // TIMESTAMP2: `new Timestamp(tv_sec * 1000).toString()` in the JVM's zone (here
        // +08:00), without its ".0", then the fraction.
        ("ts", json!("2023-05-07 07:30:00.000001"), 93),
        // `tv_sec == 0` → "0000-00-00 00:00:00", not shifted.
        ("ts_zero", json!("0000-00-00 00:00:00"), 93),
        // MYSQL_TYPE_YEAR → Types.VARCHAR; 0 → "0000".
        ("yr", json!("2024"), 12),
        ("yr_zero", json!("0000"), 12),
        // MYSQL_TYPE_GEOMETRY → Types.BINARY → BLOB, ISO-8859-1 of SRID + WKB.
        (
            "g",
            json!("\u{0}\u{0}\u{0}\u{0}\u{1}\u{1}\u{0}\u{0}\u{0}"),
            2004,
        ),
        // A NULL INT: null, its unwidened type.
        ("n", J::Null, 4),
    ];
    assert_eq!(v["data"][0].as_object().map(|o| o.len()), Some(want.len()));
    for (name, value, sql_type) in want {
        assert_eq!(&v["data"][0][name], value, "value of {name}");
        assert_eq!(v["sqlType"][name], json!(sql_type), "sqlType of {name}");
    }
    // `mysqlType` is the column type as the table defines it (`FieldMeta.getColumnType`).
    assert_eq!(v["mysqlType"]["tu"], "tinyint(3) unsigned");
    assert_eq!(v["mysqlType"]["e"], "enum('x','y','z')");
    // FlatMessage's fields (protocol/.../FlatMessage.java), `gtid` from the header's
    // GTID set (`LogEventConvert.createHeader`: `logHeader.getGtidSetStr()`).
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
        assert!(v.get(f).is_some(), "no {f}");
    }
    assert_eq!(v["gtid"], "0-1-42,1-1-3");
    assert_eq!(v["type"], "INSERT");
    assert_eq!(v["isDdl"], false);
    assert_eq!(v["pkNames"], json!(["id"]));
    assert_eq!(v["es"], 1_700_000_000_000u64);
    assert_eq!(v["old"], J::Null);
    assert_eq!(
        flink::canal_json(&canal::row(&insert(&t, &row, &p), &opts)),
        Ok(vec!["+I"])
    );
}

#[test]
fn canal_enum_and_set_as_text_on_request() {
    let (t, row) = every_type();
    let p = position();
    let opts = CanalOptions {
        enum_set: EnumSet::Text,
        ..Default::default()
    };
    let v = canal(opts, &insert(&t, &row, &p));
    assert_eq!(v["data"][0]["e"], "y");
    assert_eq!(v["data"][0]["s"], "p,q");
    assert_eq!(v["sqlType"]["e"], 12);
    assert_eq!(v["sqlType"]["s"], 12);
    // At offset 0 TIMESTAMP is UTC.
    assert_eq!(v["data"][0]["ts"], "2023-05-06 23:30:00.000001");
}

/// `old` holds the changed columns only (`MQMessageUtils.messageConverter` keeps the
/// before-image columns whose `getUpdated()` is true; `LogEventConvert.isUpdate`
/// compares the rendered values), `data` the row after; Flink reads it as -U/+U.
#[test]
fn canal_update_old_holds_the_changed_columns() {
    let (t, row) = every_type();
    let p = position();
    let mut after = row.clone();
    after[1] = Value::Int(1);
    after[20] = Value::UInt(3);
    let ev = RowEvent {
        op: Op::Update,
        before: Some(&row),
        after: Some(&after),
        ..insert(&t, &row, &p)
    };
    let opts = CanalOptions::default();
    let v = canal(opts, &ev);
    assert_eq!(v["old"], json!([{"ti": "-128", "e": "2"}]));
    assert_eq!(v["data"][0]["e"], "3");
    assert_eq!(
        flink::canal_json(&canal::row(&ev, &opts)),
        Ok(vec!["-U", "+U"])
    );
    let del = RowEvent {
        op: Op::Delete,
        before: Some(&row),
        after: None,
        ..insert(&t, &row, &p)
    };
    let v = canal(opts, &del);
    assert_eq!(v["type"], "DELETE");
    assert_eq!(v["data"][0]["id"], "7");
    assert_eq!(flink::canal_json(&canal::row(&del, &opts)), Ok(vec!["-D"]));
}

/// DDL `type`s as alibaba/canal `parse/.../ddl/DruidDdlParser.java` gives them (the first
/// result, as `LogEventConvert.parseQueryEvent` keeps it).
#[test]
fn canal_ddl_types_follow_druid_ddl_parser() {
    for (sql, want) in [
        ("CREATE TABLE t (id INT)", "CREATE"),
        ("ALTER TABLE t ADD COLUMN x INT", "ALTER"),
        // SQLAlterTableAddIndex, SQLAlterTableAddConstraint with a SQLUnique.
        ("ALTER TABLE t ADD INDEX i (x)", "CINDEX"),
        ("ALTER TABLE `d`.`t` ADD UNIQUE KEY u (x)", "CINDEX"),
        ("ALTER TABLE t ADD CONSTRAINT c UNIQUE (x)", "CINDEX"),
        (
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES p (id)",
            "ALTER",
        ),
        // SQLAlterTableDropIndex / DropKey / DropConstraint.
        ("ALTER TABLE t DROP INDEX i", "DINDEX"),
        ("ALTER TABLE t DROP KEY i", "DINDEX"),
        // SQLAlterTableRename.
        ("ALTER TABLE t RENAME TO u", "RENAME"),
        ("ALTER TABLE t RENAME COLUMN a TO b", "ALTER"),
        ("DROP TABLE t", "ERASE"),
        ("RENAME TABLE t TO u", "RENAME"),
        ("TRUNCATE TABLE t", "TRUNCATE"),
        ("CREATE INDEX i ON t (x)", "CINDEX"),
        ("DROP INDEX i ON t", "DINDEX"),
        ("CREATE DATABASE d", "QUERY"),
    ] {
        assert_eq!(canal::ddl_type(sql), want, "{sql}");
    }
    // A RENAME's `table` is the new name (`processName(ddlResult, ..., item.getTo(), false)`).
    let p = position();
    let ev = DdlEvent {
        database: "shop",
        table: Some("t"),
        statement: "RENAME TABLE t TO u",
        definition: None,
        origin: Origin::binlog(Some(&p), 0, 1000),
    };
    let v: J = serde_json::from_slice(&canal::ddl(&ev)).unwrap();
    assert_eq!(v["table"], "u");
    assert_eq!(v["isDdl"], true);
    assert_eq!(v["gtid"], "0-1-42,1-1-3");
    assert_eq!(v["data"], J::Null);
    // Which is why DDL must not share a topic with Flink's canal-json.
    assert!(flink::canal_json(&canal::ddl(&ev)).is_err());
}

/// Decodes Avro bodies with Python's fastavro against `schema` (`pip install
/// fastavro`), union branches named: an independent reader of the records.
fn fastavro(schema: &str, bodies: &[Vec<u8>]) -> Vec<J> {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema_path = dir.path().join("schema.avsc");
    std::fs::write(&schema_path, schema).expect("write schema");
    let data = dir.path().join("bodies.bin");
    let mut all = Vec::new();
    for b in bodies {
        all.extend_from_slice(&(b.len() as u32).to_be_bytes());
        all.extend_from_slice(b);
    }
    std::fs::write(&data, all).expect("write bodies");
    let script = r#"
import io, json, struct, sys
from fastavro import parse_schema, schemaless_reader
schema = parse_schema(json.load(open(sys.argv[1])))
data = open(sys.argv[2], "rb").read()
i, out = 0, []
while i < len(data):
    n = struct.unpack(">I", data[i:i + 4])[0]
    buf = io.BytesIO(data[i + 4:i + 4 + n])
    i += 4 + n
    out.append(schemaless_reader(buf, schema, return_record_name=True))
    assert buf.tell() == n, "trailing bytes"
print(json.dumps(out, default=lambda b: {"hex": b.hex()}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema_path)
        .arg(&data)
        .output()
        .expect("run python3 (with fastavro: pip install fastavro)");
    assert!(
        out.status.success(),
        "fastavro could not read the records: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fastavro's JSON")
}

/// A union value as fastavro gives it with `return_record_name`: `[name, record]` for
/// records; the short name and the record.
fn branch(v: &J) -> (String, J) {
    match v {
        J::Array(a) if a.len() == 2 && a[0].is_string() => (
            a[0].as_str()
                .unwrap_or("")
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_string(),
            a[1].clone(),
        ),
        other => (String::new(), other.clone()),
    }
}

/// `dts-avro` records read with fastavro against the reference's `Record` schema
/// (recreated from aliyun/aliyun-dts-subscribe-sdk-java `formats/avro/Record.java`
/// `SCHEMA$`), every value type in the branch the SDK's `DefaultValueDeserializer`
/// reads, with the value back.
#[test]
fn dts_avro_round_trips_every_type_through_fastavro() {
    let (t, row) = every_type();
    let p = position();
    let mut after = row.clone();
    after[1] = Value::Int(1);
    let ins = insert(&t, &row, &p);
    let upd = RowEvent {
        op: Op::Update,
        before: Some(&row),
        after: Some(&after),
        ..insert(&t, &row, &p)
    };
    let del = RowEvent {
        op: Op::Delete,
        before: Some(&row),
        after: None,
        ..insert(&t, &row, &p)
    };
    let ddl = DdlEvent {
        database: "shop",
        table: Some("every"),
        statement: "ALTER TABLE every ADD COLUMN z INT",
        definition: None,
        origin: Origin::binlog(Some(&p), 3, 1_700_000_000_000),
    };
    let bodies = vec![
        dts_avro::row(&ins),
        dts_avro::row(&upd),
        dts_avro::row(&del),
        dts_avro::ddl(&ddl),
    ];
    let r = fastavro(dts_avro::SCHEMA, &bodies);
    assert_eq!(r.len(), 4);
    let ops: Vec<&J> = r.iter().map(|x| &x["operation"]).collect();
    assert_eq!(
        ops,
        [
            &json!("INSERT"),
            &json!("UPDATE"),
            &json!("DELETE"),
            &json!("DDL")
        ]
    );
    let rec = &r[0];
    // `AvroRecordParser.getNames` splits `objectName` at dots; `pk_uk_info` is the key.
    assert_eq!(rec["objectName"], "shop.every");
    let pk: J = serde_json::from_str(rec["tags"]["pk_uk_info"].as_str().unwrap()).unwrap();
    assert_eq!(pk, json!({"PRIMARY": ["id"]}));
    assert_eq!(rec["sourceTimestamp"], 1_700_000_000);
    assert_eq!(rec["sourceTxid"], "0-1-42");
    assert_eq!(rec["source"]["sourceType"], "MySQL");
    let fields = rec["fields"].as_array().unwrap();
    assert_eq!(fields.len(), row.len());
    assert_eq!(fields[0], json!({"name": "id", "dataTypeNumber": 3}));
    let image = rec["afterImages"].as_array().unwrap();
    assert_eq!(rec["beforeImages"], J::Null);
    let get = |name: &str| -> (String, J) {
        let i = fields.iter().position(|f| f["name"] == name).unwrap();
        branch(&image[i])
    };
    let want: &[(&str, &str, J)] = &[
        ("id", "Integer", json!({"precision": 10, "value": "7"})),
        ("ti", "Integer", json!({"precision": 3, "value": "-128"})),
        ("tu", "Integer", json!({"precision": 3, "value": "255"})),
        (
            "bu",
            "Integer",
            json!({"precision": 20, "value": "18446744073709551615"}),
        ),
        (
            "fl",
            "Float",
            json!({"value": 1.0e10, "precision": 24, "scale": -1}),
        ),
        (
            "db",
            "Float",
            json!({"value": 0.1 + 0.2, "precision": 53, "scale": -1}),
        ),
        (
            "dec",
            "Decimal",
            json!({"value": "-12.340000", "precision": 20, "scale": 6}),
        ),
        (
            "c",
            "Character",
            json!({"charset": "utf8mb4", "value": {"hex": "6162"}}),
        ),
        (
            "v",
            "Character",
            json!({"charset": "latin1", "value": {"hex": "636166e9"}}),
        ),
        (
            "bn",
            "BinaryObject",
            json!({"type": "BINARY", "value": {"hex": "00ff"}}),
        ),
        (
            "bl",
            "BinaryObject",
            json!({"type": "BLOB", "value": {"hex": "c3"}}),
        ),
        ("e", "TextObject", json!({"type": "ENUM", "value": "y"})),
        ("s", "TextObject", json!({"type": "SET", "value": "p,q"})),
        ("s_null", "", J::Null),
        ("bits", "Integer", json!({"precision": 10, "value": "513"})),
        (
            "j",
            "TextObject",
            json!({"type": "JSON", "value": r#"{"k": 1}"#}),
        ),
        (
            "dt",
            "DateTime",
            json!({"year": 2020, "month": 2, "day": 29, "hour": null, "minute": null, "second": null, "millis": null}),
        ),
        // `millis` is microseconds (`setNaons(millis * 1000)`).
        (
            "tm",
            "DateTime",
            json!({"year": null, "month": null, "day": null, "hour": -100, "minute": 5, "second": 6, "millis": 500_000}),
        ),
        (
            "dtm",
            "DateTime",
            json!({"year": 2024, "month": 1, "day": 2, "hour": 3, "minute": 4, "second": 5, "millis": 123_000}),
        ),
        // 2023-05-06 23:30:00 UTC; `millis` is microseconds (`setMicro`).
        (
            "ts",
            "Timestamp",
            json!({"timestamp": 1_683_415_800, "millis": 1}),
        ),
        ("ts_zero", "Timestamp", json!({"timestamp": 0, "millis": 0})),
        (
            "yr",
            "DateTime",
            json!({"year": 2024, "month": null, "day": null, "hour": null, "minute": null, "second": null, "millis": null}),
        ),
        // WKB, without the server's SRID prefix (the SDK's `WKBGeometry`).
        (
            "g",
            "BinaryGeometry",
            json!({"type": "POINT", "value": {"hex": "0101000000"}}),
        ),
        ("n", "", J::Null),
    ];
    for (name, b, value) in want {
        assert_eq!(get(name), (b.to_string(), value.clone()), "{name}");
    }
    // Every text and binary type name is one the SDK's `ObjectType.valueOf` knows.
    let known = [
        "BINARY", "BOOL", "BLOB", "XML", "JSON", "TEXT", "BFILE", "RAW", "LONG_RAW", "ROWID",
        "UROWID", "ENUM", "SET", "BYTEA", "GEOMETRY", "XTYPE", "UUID",
    ];
    for v in image {
        let (b, v) = branch(v);
        if b == "TextObject" || b == "BinaryObject" {
            assert!(known.contains(&v["type"].as_str().unwrap()), "{v}");
        }
    }
    // An update carries both images; a delete the row before.
    let (_, ti) = branch(&r[1]["afterImages"][1]);
    assert_eq!(ti["value"], "1");
    assert_eq!(
        r[1]["beforeImages"].as_array().map(Vec::len),
        Some(row.len())
    );
    assert_eq!(r[2]["afterImages"], J::Null);
    // DDL: the statement as `afterImages`, no fields (`AvroRecordParser` names it "ddl").
    assert_eq!(r[3]["afterImages"], "ALTER TABLE every ADD COLUMN z INT");
    assert_eq!(r[3]["fields"], J::Null);
    assert_eq!(r[3]["objectName"], "shop.every");
    // Ids grow with the position and the change's index.
    assert!(r[3]["id"].as_i64() > r[0]["id"].as_i64());
}

/// The schema is the SDK's: the same fields, in the same order, with the same types.
#[test]
fn dts_avro_schema_matches_the_sdk_record() {
    let v: J = serde_json::from_str(dts_avro::SCHEMA).expect("the schema is JSON");
    assert_eq!(v["name"], "Record");
    assert_eq!(v["namespace"], "com.alibaba.dts.formats.avro");
    let names: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    // `Record.java` `SCHEMA$`, field order.
    assert_eq!(
        names,
        [
            "version",
            "id",
            "sourceTimestamp",
            "sourcePosition",
            "safeSourcePosition",
            "sourceTxid",
            "source",
            "operation",
            "objectName",
            "processTimestamps",
            "tags",
            "fields",
            "beforeImages",
            "afterImages"
        ]
    );
    let items: Vec<&str> = v["fields"][12]["type"][2]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().or_else(|| i["name"].as_str()).unwrap())
        .collect();
    assert_eq!(
        items,
        [
            "null",
            "Integer",
            "Character",
            "Decimal",
            "Float",
            "Timestamp",
            "DateTime",
            "TimestampWithTimeZone",
            "BinaryGeometry",
            "TextGeometry",
            "BinaryObject",
            "TextObject",
            "EmptyObject"
        ]
    );
    assert_eq!(v["fields"][13]["type"][2]["items"], json!(items));
    let doc = include_str!("../../../../../../docs/rocketmq.md");
    assert!(
        doc.contains(dts_avro::SCHEMA),
        "docs/rocketmq.md must publish dts_avro::SCHEMA"
    );
}

fn debezium(o: debezium::Options, ev: &RowEvent<'_>) -> J {
    serde_json::from_slice(&debezium::row(ev, "task", &o)).expect("debezium json")
}

/// Debezium's default encodings, column by column, from debezium/debezium
/// `BinlogValueConverters` and the types it names (`io.debezium.time.Date`: days;
/// `MicroTime`: µs; `Timestamp`/`MicroTimestamp` by fsp under
/// `adaptive_time_microseconds`; `ZonedTimestamp`: ISO-8601 UTC; `Decimal` under
/// `precise`: the unscaled value's `BigInteger.toByteArray()`; `Bits`: little-endian
/// bytes; BIT(1) BOOLEAN; BIGINT UNSIGNED under `long`: the signed 64 bits), bytes in
/// base64 (Kafka's `JsonConverter`).
#[test]
fn debezium_renders_every_type_with_its_default_encodings() {
    let (t, row) = every_type();
    let p = position();
    let ins = insert(&t, &row, &p);
    let v = debezium(debezium::Options::default(), &ins);
    let a = &v["after"];
    let want: &[(&str, J)] = &[
        ("id", json!(7)),
        ("ti", json!(-128)),
        ("tu", json!(255)),
        ("iu", json!(4_294_967_295u64)),
        ("bu", json!(-1)),
        ("db", json!(0.1 + 0.2)),
        // BigInteger("-12340000").toByteArray() = ff 43 b4 e0.
        ("dec", json!("/0O04A==")),
        ("c", json!("ab")),
        ("v", json!("café")),
        ("bn", json!("AP8=")),
        ("e", json!("y")),
        ("s", json!("p,q")),
        ("s_null", J::Null),
        // 513 = 0x0201, little-endian.
        ("bits", json!("AQI=")),
        ("j", json!(r#"{"k": 1}"#)),
        ("dt", json!(18_321)),
        ("tm", json!(-360_306_500_000i64)),
        ("dtm", json!(1_704_164_645_123i64)),
        ("dtm6", json!(1_704_164_645_123_456i64)),
        ("ts", json!("2023-05-06T23:30:00.000001Z")),
        // A nullable column's zero TIMESTAMP is null.
        ("ts_zero", J::Null),
        ("yr", json!(2024)),
        ("g", json!({"wkb": "AQEAAAA=", "srid": 0})),
        ("n", J::Null),
    ];
    for (name, value) in want {
        assert_eq!(&a[name], value, "{name}");
    }
    assert_eq!(a["fl"].as_f64(), Some(1.0e10));
    assert_eq!(v["op"], "c");
    assert_eq!(v["before"], J::Null);
    // `source` as `BinlogSourceInfoStructMaker` fills it: the transaction's own GTID.
    assert_eq!(v["source"]["gtid"], "0-1-42");
    assert_eq!(v["source"]["file"], "mysql-bin.000003");
    assert_eq!(v["source"]["db"], "shop");
    assert_eq!(v["source"]["table"], "every");
    let body = debezium::row(&ins, "task", &Default::default());
    assert_eq!(flink::debezium_json(&body, false), Ok(vec!["+I"]));

    // The modes Debezium users pick.
    let o = debezium::Options {
        decimal: debezium::DecimalMode::String,
        time: debezium::TimeMode::Connect,
        ..Default::default()
    };
    let a = debezium(o, &ins)["after"].clone();
    assert_eq!(a["dec"], "-12.340000");
    assert_eq!(a["tm"], json!(-360_306_500i64));
    assert_eq!(a["dtm6"], json!(1_704_164_645_123i64));
    let o = debezium::Options {
        decimal: debezium::DecimalMode::Double,
        ..Default::default()
    };
    assert_eq!(debezium(o, &ins)["after"]["dec"], json!(-12.34));
}

#[test]
fn decimal_bytes_are_java_big_integer_bytes() {
    // BigInteger.valueOf(n).toByteArray(): minimal two's complement, big-endian.
    for (d, want) in [
        ("0", vec![0x00]),
        ("127", vec![0x7f]),
        ("128", vec![0x00, 0x80]),
        ("-1", vec![0xff]),
        ("-128", vec![0x80]),
        ("-129", vec![0xff, 0x7f]),
        ("-256", vec![0xff, 0x00]),
        ("1.50", vec![0x00, 0x96]),
        ("-0.00", vec![0x00]),
    ] {
        assert_eq!(debezium::unscaled_bytes(d), want, "{d}");
    }
}

/// `schemas_enable`: Kafka Connect's `JsonConverter` envelope, `{"schema", "payload"}`,
/// with the Connect types and logical names Debezium declares; Flink reads it with
/// `debezium-json.schema-include = true`.
#[test]
fn debezium_schema_envelope_declares_each_column() {
    let (t, row) = every_type();
    let p = position();
    let ins = insert(&t, &row, &p);
    let o = debezium::Options {
        schemas: true,
        ..Default::default()
    };
    let body = debezium::row(&ins, "task", &o);
    let v: J = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["payload"]["after"]["dt"], 18_321);
    assert_eq!(v["schema"]["name"], "task.shop.every.Envelope");
    let after = &v["schema"]["fields"][1];
    assert_eq!(after["field"], "after");
    let of = |name: &str| -> J {
        after["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
            .unwrap_or(J::Null)
    };
    for (name, ty, logical) in [
        ("ti", "int16", J::Null),
        ("su", "int32", J::Null),
        ("iu", "int64", J::Null),
        (
            "dec",
            "bytes",
            json!("org.apache.kafka.connect.data.Decimal"),
        ),
        ("dt", "int32", json!("io.debezium.time.Date")),
        ("tm", "int64", json!("io.debezium.time.MicroTime")),
        ("dtm", "int64", json!("io.debezium.time.Timestamp")),
        ("dtm6", "int64", json!("io.debezium.time.MicroTimestamp")),
        ("ts", "string", json!("io.debezium.time.ZonedTimestamp")),
        ("bits", "bytes", json!("io.debezium.data.Bits")),
        ("e", "string", json!("io.debezium.data.Enum")),
        ("g", "struct", json!("io.debezium.data.geometry.Geometry")),
    ] {
        let f = of(name);
        assert_eq!((&f["type"], &f["name"]), (&json!(ty), &logical), "{name}");
    }
    assert_eq!(
        of("dec")["parameters"],
        json!({"scale": "6", "connect.decimal.precision": "20"})
    );
    assert_eq!(of("e")["parameters"]["allowed"], "x,y,z");
    assert_eq!(flink::debezium_json(&body, true), Ok(vec!["+I"]));
    assert!(flink::debezium_json(&body, false).is_err());
}

/// A table with a virtual and a stored generated column, and one row of it as the
/// binlog logs it (every column's value).
fn generated_table() -> (TablePlan, Vec<Value>) {
    let signed = ColumnKind::Int { unsigned: false };
    let mut v = col("v", "int(11)", signed, None);
    v.generated = true;
    let mut s = col("s", "varchar(20)", ColumnKind::Text, S);
    s.generated = true;
    let def = TableDef {
        name: TableName::new("shop", "gen"),
        columns: vec![
            col("id", "int(11)", signed, None),
            col("a", "int(11)", signed, None),
            v,
            s,
        ],
        key: Some(vec![0]),
        key_name: Some("PRIMARY".into()),
    };
    let info = TableInfo {
        def,
        rows: 0,
        bytes: 0,
        indexes: Default::default(),
        adb: None,
    };
    let plan = whole_table(info, TableName::new("shop", "gen"), Operations::default());
    let row = vec![
        Value::Int(1),
        Value::Int(5),
        Value::Int(10),
        Value::Bytes(b"x5".to_vec()),
    ];
    (plan, row)
}

/// Canal sends generated columns: alibaba/canal `LogEventConvert.parseOneRow` loops
/// `for (int i = 0; i < columnCnt; i++)` over the row image's columns and skips only
/// those the image leaves out (`if (!cols.get(i)) continue;`, MINIMAL/NOBLOB images);
/// nothing there tests for a generated column, and the server logs their values with
/// `binlog_row_image = FULL` (MariaDB 10.11 logs `v INT AS (a*2) VIRTUAL` as `@3=10`).
/// The copy reads them too, so copied rows and binlog rows have the same columns.
#[test]
fn canal_sends_generated_columns_as_canal_does() {
    let (t, row) = generated_table();
    // A MySQL destination computes them: they are not copied there.
    assert_eq!(t.copied, vec![0, 1]);
    assert_eq!(sent(&t), vec![0, 1, 2, 3]);
    let p = position();
    let v = canal(CanalOptions::default(), &insert(&t, &row, &p));
    assert_eq!(
        v["data"][0],
        json!({"id": "1", "a": "5", "v": "10", "s": "x5"})
    );
    // Types as any column of theirs (`mysqlToJavaType`): the generated flag plays no part.
    assert_eq!(v["sqlType"]["v"], 4);
    assert_eq!(v["sqlType"]["s"], 12);
    assert_eq!(v["mysqlType"]["v"], "int(11)");
    // An update of `a` changes `v` and `s` too: all three are in `old`.
    let mut after = row.clone();
    after[1] = Value::Int(6);
    after[2] = Value::Int(12);
    after[3] = Value::Bytes(b"x6".to_vec());
    let upd = RowEvent {
        op: Op::Update,
        before: Some(&row),
        after: Some(&after),
        ..insert(&t, &row, &p)
    };
    let v = canal(CanalOptions::default(), &upd);
    assert_eq!(v["old"], json!([{"a": "5", "v": "10", "s": "x5"}]));
    // The copy's SELECT reads them.
    let chunk = crate::source::snapshot::Chunk {
        index: 0,
        lower: None,
        upper: None,
    };
    let (q, _) = crate::source::snapshot::chunk_query(sent_plan(&t).as_ref(), &chunk);
    assert!(q.contains("`v`") && q.contains("`s`"), "{q}");
    let (q, _) = crate::source::snapshot::chunk_query(&t, &chunk);
    assert!(!q.contains("`v`"), "{q}");
    // Debezium's rows carry them as well (its table schema has every column).
    let d = debezium(debezium::Options::default(), &insert(&t, &row, &p));
    assert_eq!(d["after"]["v"], 10);
}

fn event_info() -> crate::source::binlog::stream::EventInfo {
    crate::source::binlog::stream::EventInfo {
        offset: 990,
        server_id: 223_344,
        timestamp: 1_700_000_001,
        query: Some("INSERT INTO every VALUES (...)".into()),
    }
}

/// `source` field for field as debezium/debezium `BinlogSourceInfoStructMaker.struct`
/// fills it, in its schema's order (`SchemaFactory.sourceInfoSchemaBuilder`, then the
/// struct maker's fields): `server_id` from the event header
/// (`BinlogStreamingChangeEventSource.handleEvent`: `setBinlogServerId(eventHeader.
/// getServerId())`), `pos` the event's start (`setEventPosition(trackableEventHeader.
/// getPosition())`), `row` the row in the event (`handleChange`: `setRowNumber(rowIndex,
/// numRows)`), `thread` from MySQL's BEGIN (`handleTransactionBegin(..., command.
/// getThreadId())`; MariaDB passes null), `query` from ROWS_QUERY/ANNOTATE_ROWS only with
/// `include.query` (`handleRecordingQuery`), `ts_ms` the event's time, `connector` the
/// connector's module name (`MariaDbSourceInfoStructMaker`: "mariadb").
#[test]
fn debezium_source_names_the_event_as_debezium_does() {
    let (t, row) = every_type();
    let p = position();
    let info = event_info();
    let ev = RowEvent {
        origin: Origin {
            thread: Some(7),
            ..insert(&t, &row, &p).origin.in_event(Some(&info), 2)
        },
        ..insert(&t, &row, &p)
    };
    let v = debezium(debezium::Options::default(), &ev);
    let s = &v["source"];
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    let order = vec![
        "version",
        "connector",
        "name",
        "ts_ms",
        "snapshot",
        "db",
        "sequence",
        "ts_us",
        "ts_ns",
        "table",
        "server_id",
        "gtid",
        "file",
        "pos",
        "row",
        "thread",
        "query",
    ];
    let mut want = order.clone();
    want.sort_unstable();
    assert_eq!(keys, want);
    // In the schema's order in the body, as `JsonConverter` writes a struct.
    let body = String::from_utf8(debezium::row(&ev, "task", &Default::default())).unwrap();
    let source = &body[body.find("\"source\":").unwrap()..];
    let at: Vec<usize> = order
        .iter()
        .map(|k| source.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{source}");
    assert_eq!(s["connector"], "mysql");
    assert_eq!(s["server_id"], 223_344);
    assert_eq!(s["file"], "mysql-bin.000003");
    assert_eq!(s["pos"], 990);
    assert_eq!(s["row"], 2);
    assert_eq!(s["thread"], 7);
    assert_eq!(s["ts_ms"], 1_700_000_001_000u64);
    assert_eq!(s["ts_us"], 1_700_000_001_000_000u64);
    assert_eq!(s["gtid"], "0-1-42");
    // `include.query` is off by default.
    assert_eq!(s["query"], J::Null);
    assert_eq!(s["sequence"], J::Null);
    // The envelope's own timestamps (`Envelope.create`: ts_ms, ts_us, ts_ns), and the
    // `transaction` field, null unless `provide.transaction.metadata`.
    assert_eq!(v["ts_us"], 1_700_000_000_500_000u64);
    assert_eq!(v["transaction"], J::Null);
    let o = debezium::Options {
        include_query: true,
        mariadb: true,
        schemas: true,
        ..Default::default()
    };
    let w = debezium(o, &ev);
    assert_eq!(
        w["payload"]["source"]["query"],
        "INSERT INTO every VALUES (...)"
    );
    assert_eq!(w["payload"]["source"]["connector"], "mariadb");
    let source = &w["schema"]["fields"][2];
    assert_eq!(source["name"], "io.debezium.connector.mariadb.Source");
    let declared: Vec<&str> = source["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        declared, order,
        "the schema declares the fields in the payload's order"
    );
    // MariaDB logs no BEGIN: no thread.
    let ev = RowEvent {
        origin: insert(&t, &row, &p).origin.in_event(Some(&info), 0),
        ..insert(&t, &row, &p)
    };
    assert_eq!(debezium(o, &ev)["payload"]["source"]["thread"], J::Null);
    // A copied row: the snapshot's zero position, no server.
    let snap = RowEvent::snapshot(&t, &row, 5);
    let s = debezium(debezium::Options::default(), &snap)["source"].clone();
    assert_eq!(
        (&s["server_id"], &s["pos"], &s["gtid"]),
        (&json!(0), &json!(0), &J::Null)
    );
    assert_eq!(
        flink::debezium_json(&debezium::row(&ev, "task", &Default::default()), false),
        Ok(vec!["+I"])
    );
}

/// `provide.transaction.metadata`: the `transaction` block of debezium/debezium
/// `AbstractTransactionStructMaker.addTransactionBlock` (`id`, `total_order`: the
/// transaction's event count so far, `data_collection_order`: the table's,
/// `TransactionContext.event`, both from 1) with the id of
/// `BinlogOffsetContext.setTransactionId` (the GTID, else `file=%s,pos=%s` of the
/// BEGIN: `NON_GTID_TRANSACTION_ID_FORMAT`), and the BEGIN/END records of
/// `buildBeginTransactionValue`/`buildEndTransactionValue` (`SchemaFactory.
/// transactionValueSchema` field order).
#[test]
fn debezium_transaction_metadata_as_debezium_writes_it() {
    let (t, row) = every_type();
    let p = position();
    let o = debezium::Options {
        transaction_metadata: true,
        ..Default::default()
    };
    let ev = RowEvent {
        origin: Origin {
            order: Some((3, 2)),
            begin: 400,
            ..insert(&t, &row, &p).origin
        },
        ..insert(&t, &row, &p)
    };
    let v = debezium(o, &ev);
    assert_eq!(
        v["transaction"],
        json!({"id": "0-1-42", "total_order": 3, "data_collection_order": 2})
    );
    let no_gtid = RowEvent {
        origin: Origin {
            gtid: None,
            ..ev.origin
        },
        ..insert(&t, &row, &p)
    };
    assert_eq!(
        debezium(o, &no_gtid)["transaction"]["id"],
        "file=mysql-bin.000003,pos=400"
    );
    // Off (Debezium's default): the field is there, null.
    assert_eq!(
        debezium(debezium::Options::default(), &ev)["transaction"],
        J::Null
    );
    let begin: J =
        serde_json::from_slice(&debezium::transaction_record(&ev.origin, None, &o)).unwrap();
    assert_eq!(
        begin,
        json!({"status": "BEGIN", "id": "0-1-42", "event_count": null,
               "data_collections": null, "ts_ms": 1_700_000_000_000u64})
    );
    let tables = vec![("shop.every".to_string(), 2), ("shop.other".to_string(), 1)];
    let end: J =
        serde_json::from_slice(&debezium::transaction_record(&ev.origin, Some(&tables), &o))
            .unwrap();
    assert_eq!(
        end,
        json!({"status": "END", "id": "0-1-42", "event_count": 3,
               "data_collections": [{"data_collection": "shop.every", "event_count": 2},
                                    {"data_collection": "shop.other", "event_count": 1}],
               "ts_ms": 1_700_000_000_000u64})
    );
    let with_schema = debezium::Options { schemas: true, ..o };
    let e: J = serde_json::from_slice(&debezium::transaction_record(
        &ev.origin,
        Some(&tables),
        &with_schema,
    ))
    .unwrap();
    assert_eq!(
        e["schema"]["name"],
        "io.debezium.connector.common.TransactionMetadataValue"
    );
    assert_eq!(e["payload"]["event_count"], 3);
    // Flink reads the rows with the block (an unknown field to it).
    assert_eq!(
        flink::debezium_json(&debezium::row(&ev, "task", &o), false),
        Ok(vec!["+I"])
    );
}

/// DDL as Debezium's schema change record: the value of its schema change topic
/// (debezium/debezium `SchemaFactory.schemaHistoryConnectorValueSchema`: `source`,
/// `ts_ms`, `databaseName`, `schemaName`, `ddl`, `tableChanges`), each table change as
/// `ConnectTableChangeSerializer.toStruct` writes it (`type`, `id` as
/// `TableId.toDoubleQuotedString`, the table's charset, primary key and columns), with
/// each column's `jdbcType` as `MySqlAntlrDdlParser.initDataTypeResolver` resolves it
/// and its ENUM/SET members unquoted (`extractEnumAndSetOptions`).
#[test]
fn debezium_ddl_is_a_schema_change_record() {
    let (t, _) = every_type();
    let p = position();
    let info = event_info();
    let ev = DdlEvent {
        database: "shop",
        table: Some("every"),
        statement: "ALTER TABLE every ADD COLUMN z INT",
        definition: Some(t.def()),
        origin: Origin::binlog(Some(&p), 0, 1_700_000_000_000)
            .with_gtid(Some("0-1-42"))
            .in_event(Some(&info), 0),
    };
    let o = debezium::Options::default();
    let v: J = serde_json::from_slice(&debezium::ddl(&ev, "task", &o)).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys = keys.clone();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "databaseName",
            "ddl",
            "schemaName",
            "source",
            "tableChanges",
            "ts_ms"
        ]
    );
    assert_eq!(v["databaseName"], "shop");
    assert_eq!(v["schemaName"], J::Null);
    assert_eq!(v["source"]["pos"], 990);
    assert_eq!(v["source"]["server_id"], 223_344);
    let change = &v["tableChanges"][0];
    assert_eq!(change["type"], "ALTER");
    assert_eq!(change["id"], "\"shop\".\"every\"");
    let table = &change["table"];
    assert_eq!(table["primaryKeyColumnNames"], json!(["id"]));
    assert_eq!(table["defaultCharsetName"], "utf8mb4");
    let columns = table["columns"].as_array().unwrap();
    assert_eq!(columns.len(), t.def().columns.len());
    let of = |name: &str| columns.iter().find(|c| c["name"] == name).unwrap().clone();
    let c = of("id");
    assert_eq!(
        (&c["jdbcType"], &c["typeName"], &c["position"], &c["length"]),
        (&json!(4), &json!("INT"), &json!(1), &json!(11))
    );
    for (name, jdbc, type_name) in [
        ("ti", -6, "TINYINT"),
        ("tu", -6, "TINYINT UNSIGNED"),
        ("bu", -5, "BIGINT UNSIGNED"),
        ("fl", 6, "FLOAT"),
        ("db", 8, "DOUBLE"),
        ("dec", 3, "DECIMAL"),
        ("c", 1, "CHAR"),
        ("v", 12, "VARCHAR"),
        ("tx", 12, "TEXT"),
        ("bn", -2, "BINARY"),
        ("vb", -3, "VARBINARY"),
        ("bl", 2004, "BLOB"),
        ("e", 1, "ENUM"),
        ("s", 1, "SET"),
        ("bits", -7, "BIT"),
        ("j", 1111, "JSON"),
        ("dt", 91, "DATE"),
        ("tm", 92, "TIME"),
        ("dtm", 93, "DATETIME"),
        ("ts", 2014, "TIMESTAMP"),
        ("yr", 4, "YEAR"),
        ("g", 1111, "POINT"),
    ] {
        let c = of(name);
        assert_eq!(
            (&c["jdbcType"], &c["typeName"]),
            (&json!(jdbc), &json!(type_name)),
            "{name}"
        );
        assert_eq!(c["typeExpression"], c["typeName"], "{name}");
    }
    assert_eq!(
        (of("dec")["length"].clone(), of("dec")["scale"].clone()),
        (json!(20), json!(6))
    );
    assert_eq!(of("e")["enumValues"], json!(["x", "y", "z"]));
    assert_eq!(of("v")["charsetName"], "latin1");
    assert_eq!(of("bn")["charsetName"], J::Null);
    assert_eq!(of("n")["optional"], true);
    // A dropped table has no definition; a statement on no table changes none.
    let drop = DdlEvent {
        statement: "DROP TABLE every",
        ..ev
    };
    let v: J = serde_json::from_slice(&debezium::ddl(&drop, "task", &o)).unwrap();
    assert_eq!(v["tableChanges"][0]["type"], "DROP");
    assert_eq!(v["tableChanges"][0]["table"], J::Null);
    let db = DdlEvent {
        statement: "CREATE DATABASE other",
        table: None,
        definition: None,
        ..ev
    };
    let v: J = serde_json::from_slice(&debezium::ddl(&db, "task", &o)).unwrap();
    assert_eq!(v["tableChanges"], json!([]));
    // Flink's debezium-json would fail on it (no `op`): it goes to the DDL topic.
    assert!(flink::debezium_json(&debezium::ddl(&ev, "task", &o), false).is_err());
}

/// `dts_control_records`: BEGIN, COMMIT and HEARTBEAT records, read with fastavro
/// against the SDK's schema, as aliyun-dts-subscribe-sdk-java reads them:
/// `AvroRecordParser.getOperationType` maps `Operation` BEGIN/COMMIT/HEARTBEAT to its
/// `OperationType`s, `getNames` takes a null `objectName` (`ObjectNameUtils.
/// uncompressionObjectName(null)` is null), `getAvroRecordFields` a null `fields` as no
/// fields; ids grow across BEGIN, the changes and COMMIT ("unique id of this record in
/// the whole stream").
#[test]
fn dts_avro_control_records_read_as_the_sdk_reads_them() {
    let (t, row) = every_type();
    let p = position();
    let ins = insert(&t, &row, &p);
    let txn = Origin {
        begin: 1000,
        ..ins.origin
    };
    let bodies = vec![
        dts_avro::control(dts_avro::Control::Begin, &txn),
        dts_avro::row(&ins),
        dts_avro::control(dts_avro::Control::Commit, &txn),
        dts_avro::control(
            dts_avro::Control::Heartbeat,
            &Origin::binlog(Some(&p), 0, 1_700_000_100_000),
        ),
    ];
    let r = fastavro(dts_avro::SCHEMA, &bodies);
    let ops: Vec<&J> = r.iter().map(|x| &x["operation"]).collect();
    assert_eq!(
        ops,
        [
            &json!("BEGIN"),
            &json!("INSERT"),
            &json!("COMMIT"),
            &json!("HEARTBEAT")
        ]
    );
    for i in [0, 2, 3] {
        let c = &r[i];
        assert_eq!(c["objectName"], J::Null, "{i}");
        assert_eq!(c["fields"], J::Null, "{i}");
        assert_eq!(c["beforeImages"], J::Null, "{i}");
        assert_eq!(c["afterImages"], J::Null, "{i}");
        assert_eq!(c["tags"], json!({}), "{i}");
    }
    assert_eq!(r[0]["sourceTxid"], "0-1-42");
    assert_eq!(r[2]["sourceTxid"], "0-1-42");
    assert_eq!(r[2]["sourcePosition"], "mysql-bin.000003:1234");
    assert_eq!(r[3]["sourceTimestamp"], 1_700_000_100);
    let id = |i: usize| r[i]["id"].as_i64().unwrap();
    assert!(
        id(0) < id(1) && id(1) < id(2),
        "{} {} {}",
        id(0),
        id(1),
        id(2)
    );
}
