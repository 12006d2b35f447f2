//! Every column type at its extremes, copied unchanged (schema + full), and chunking over
//! every kind of key: composite, string (unicode, mixed case), sparse integers, BIGINT
//! UNSIGNED near 2^64-1, ENUM, TIMESTAMP.

mod common;

use common::{assert_same, checksum, dst_sql, env, rows, src_sql, TaskDir};
use mysql::prelude::Queryable;
use rand::RngCore;

/// One row of strings (NULL as "NULL").
fn strings(c: &mut mysql::Conn, q: &str) -> Vec<String> {
    let r = rows(c, q);
    assert_eq!(r.len(), 1, "expected one row from {q}");
    r[0].iter()
        .map(|v| match v {
            mysql::Value::NULL => "NULL".to_string(),
            mysql::Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => other.as_sql(true),
        })
        .collect()
}

fn count(c: &mut mysql::Conn, db: &str, table: &str) -> u64 {
    let q = format!(
        "SELECT COUNT(*) FROM {}",
        tidemark_core::sql::qualified(db, table)
    );
    c.query_first(q).expect("count").expect("a row")
}

/// Number of chunks the task planned for a source table.
fn chunks_of(t: &TaskDir, source_table: &str) -> u64 {
    let db = rusqlite::Connection::open(t.state_db()).expect("open state store");
    db.query_row(
        "SELECT COUNT(*) FROM chunks WHERE source = ?1",
        [source_table],
        |r| r.get(0),
    )
    .expect("count chunks")
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Same query, same rows, on both sides.
fn same_rows(q_src: &str, q_dst: &str) {
    let e = env();
    let a = rows(&mut e.src(), q_src);
    let b = rows(&mut e.dst(), q_dst);
    assert!(!a.is_empty(), "no rows from the source for {q_src}");
    assert_eq!(a, b, "source: {q_src}\ndestination: {q_dst}");
}

const ZOO_COLUMNS: &str = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, dec65, f, d, b1, b13, b64, \
    dt, dtm, dt6, ts3, tm, tm6, yr, emoji, lat, lat_txt, bin, vbin, blb, lblob, ch, vch, en, st, js, \
    geo, pt, ls, pg, inv";

fn create_zoo() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(create_zoo_once);
}

fn create_zoo_once() {
    let e = env();
    src_sql(
        "SET NAMES utf8mb4; SET time_zone = '+00:00';
         CREATE DATABASE types_zoo; USE types_zoo;
         CREATE TABLE types_zoo.zoo (
           id INT NOT NULL PRIMARY KEY,
           ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
           mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
           bi BIGINT, biu BIGINT UNSIGNED,
           dec65 DECIMAL(65,30),
           f FLOAT, d DOUBLE,
           b1 BIT(1), b13 BIT(13), b64 BIT(64),
           dt DATE, dtm DATETIME, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL DEFAULT NULL,
           tm TIME, tm6 TIME(6), yr YEAR,
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
         ) ENGINE=InnoDB;",
    );
    let insert = format!("INSERT INTO types_zoo.zoo ({ZOO_COLUMNS}) VALUES");
    // 1: every column at its low extreme.
    // 2: every column at its high extreme (the LONGBLOB is set below).
    // 3: NULL in every nullable column.
    // 5, 6: awkward values.
    src_sql(&format!(
        "SET NAMES utf8mb4; SET time_zone = '+00:00';
         {insert} (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
           -99999999999999999999999999999999999.999999999999999999999999999999,
           -3.4028234663852886e38, -1.7976931348623157e308,
           b'0', b'0', b'0',
           '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00.000000', '1970-01-01 00:00:01.000',
           '-838:59:59', '-838:59:59.000000', 1901,
           '', '', '', X'', X'', X'', X'', '', '', '', '', '[]',
           ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(0 0)', 0),
           ST_GeomFromText('LINESTRING(0 0, 1 1)'), ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'),
           -2147483648);
         {insert} (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
           9223372036854775807, 18446744073709551615,
           99999999999999999999999999999999999.999999999999999999999999999999,
           3.4028234663852886e38, 1.7976931348623157e308,
           b'1', b'1111111111111', b'1111111111111111111111111111111111111111111111111111111111111111',
           '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999',
           '838:59:59', '838:59:59.000000', 2155,
           '😀🎉 ñ 中文 \\\\ \\' \" \\0 end', 'éßÿ', REPEAT('àéîõü ßÿ ', 300),
           X'00FF00FF0000', X'00FF00', X'FF00FF0000FF', X'00', 'ab   ', 'ab   ',
           'Mango', 15,
           '{{\"big\": 123456789012345678901234567890123456789, \"tiny\": 1e-300, \"u\": \"\\\\u00e9\\\\ud83d\\\\ude00\", \"nested\": [[[1, [2, [3, []]]]]], \"q\": \"a \\\\\" b \\\\\\\\ c\"}}',
           ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))', 0),
           ST_GeomFromText('POINT(-1.7976931348623157e308 1e-300)', 0),
           ST_GeomFromText('LINESTRING(0 0, 1e300 -1e300, 0.5 0.25, 3 4, 5 6, 7 8)'),
           ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 2, 1 1))'),
           2147483647);
         INSERT INTO types_zoo.zoo (id, pt) VALUES (3, ST_GeomFromText('POINT(1 2)'));
         {insert} (5, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
           0.000000000000000000000000000001,
           1.1754943508222875e-38, 2.2250738585072014e-308,
           b'1', b'1010101010101', b'1000000000000000000000000000000000000000000000000000000000000001',
           '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.001',
           '-12:34:56', '-00:00:01.250000', 2000,
           'Ünïcödé ✓', 'Ñandú', 'ÿ', X'000000000000', X'00000000', X'FFFFFFFF', X'', ' a', ' a ',
           'zebra', 1,
           '\"\\\\u0000 and \\\\u001f\"',
           ST_GeomFromText('MULTIPOINT(1 1, 2 2)'), ST_GeomFromText('POINT(1.5 -2.5)'),
           ST_GeomFromText('LINESTRING(1 1, 2 2)'), ST_GeomFromText('POLYGON((0 0, 2 0, 2 2, 0 0))'),
           0);
         {insert} (6, -1, 254, -1, 65534, -1, 16777214, -1, 4294967294, -1, 18446744073709551614,
           -0.000000000000000000000000000001,
           -0e0, -0e0,
           b'0', b'0000000000001', b'0111111111111111111111111111111111111111111111111111111111111111',
           '1999-12-31', '1999-12-31 23:59:59', '1999-12-31 23:59:59.500000', '2001-09-09 01:46:40.000',
           '00:00:00', '-00:00:00.000001', 1999,
           '\\t\\n\\r', 'a\\tb', '', X'0A0D1A5C2700', X'5C00', X'27', X'1A', '', '',
           'apple', 3,
           '[1e308, -1e-308, 0.1, 18446744073709551616, -9223372036854775809]',
           ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'), ST_GeomFromText('POINT(0 0)'),
           NULL, NULL, NULL);
         UPDATE types_zoo.zoo SET d = 4.9406564584124654e-324, f = 1.401298464324817e-45 WHERE id = 5;"
    ));
    // 4: zero dates and an invalid date, stored under a permissive sql_mode.
    src_sql(
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; SET time_zone = '+00:00';
         INSERT INTO types_zoo.zoo (id, dt, dtm, dt6, ts3, yr, pt) VALUES
           (4, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', 0,
            ST_GeomFromText('POINT(4 4)'));
         INSERT INTO types_zoo.zoo (id, dt, dtm, pt) VALUES
           (7, '2021-02-31', '2021-04-31 10:00:00', ST_GeomFromText('POINT(7 7)'));",
    );
    // 5000 rows of mixed values, so the table takes several chunks and batches.
    src_sql(&format!(
        "SET NAMES utf8mb4; SET time_zone = '+00:00'; USE types_zoo;
         INSERT INTO types_zoo.zoo ({ZOO_COLUMNS})
         SELECT 1000 + seq, seq % 256 - 128, seq % 256, seq * 7 % 65536 - 32768, seq * 7 % 65536,
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
         FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_5000) s;
         ANALYZE TABLE types_zoo.zoo;"
    ));
    // Several hundred KB of random bytes in two rows of the same chunk.
    let mut rng = rand::thread_rng();
    for (id, len) in [(2, 400 * 1024), (5, 300 * 1024 + 7)] {
        let mut blob = vec![0u8; len];
        rng.fill_bytes(&mut blob);
        e.src()
            .exec_drop(
                "UPDATE types_zoo.zoo SET lblob = ? WHERE id = ?",
                (blob, id),
            )
            .expect("set the large blob");
    }
}

#[test]
fn type_zoo_is_copied_unchanged() {
    let e = env();
    create_zoo();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 1000\nbatch_rows = 100\nbatch_bytes = 65536\nthreads = 2\n\
         [[objects]]\ndatabase = \"types_zoo\"\n",
    );
    t.run_ok();
    assert!(
        chunks_of(&t, "types_zoo.zoo") > 3,
        "the zoo should take several chunks"
    );
    assert_eq!(
        count(&mut e.src(), "types_zoo", "zoo"),
        count(&mut e.dst(), "types_zoo", "zoo")
    );
    assert_eq!(count(&mut e.dst(), "types_zoo", "zoo"), 5007);

    // The definition is the same (types, generated columns, invisible column, indexes).
    let show = |c: &mut mysql::Conn| -> String {
        let r: (String, String) = c
            .query_first("SHOW CREATE TABLE types_zoo.zoo")
            .expect("show")
            .expect("row");
        r.1
    };
    assert_eq!(show(&mut e.src()), show(&mut e.dst()));

    // Values checked directly, not only through checksums.
    let mut d = e.dst();
    assert_eq!(
        strings(
            &mut d,
            "SELECT HEX(b1), HEX(b13), HEX(b64) FROM types_zoo.zoo WHERE id = 2"
        ),
        ["1", "1FFF", "FFFFFFFFFFFFFFFF"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT HEX(b1), HEX(b13), HEX(b64) FROM types_zoo.zoo WHERE id = 5"
        ),
        ["1", "1555", "8000000000000001"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT ti, tiu, si, siu, mi, miu, i, iu, bi, biu FROM types_zoo.zoo WHERE id = 1"
        ),
        [
            "-128",
            "0",
            "-32768",
            "0",
            "-8388608",
            "0",
            "-2147483648",
            "0",
            "-9223372036854775808",
            "0"
        ]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT ti, tiu, si, siu, mi, miu, i, iu, bi, biu FROM types_zoo.zoo WHERE id = 2"
        ),
        [
            "127",
            "255",
            "32767",
            "65535",
            "8388607",
            "16777215",
            "2147483647",
            "4294967295",
            "9223372036854775807",
            "18446744073709551615"
        ]
    );
    same_rows(
        "SELECT id, CAST(dec65 AS CHAR), CONCAT(f), CONCAT(d), HEX(f), HEX(d) FROM types_zoo.zoo ORDER BY id",
        "SELECT id, CAST(dec65 AS CHAR), CONCAT(f), CONCAT(d), HEX(f), HEX(d) FROM types_zoo.zoo ORDER BY id",
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT CAST(dec65 AS CHAR) FROM types_zoo.zoo WHERE id = 6"
        ),
        ["-0.000000000000000000000000000001"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT CONCAT(d), CONCAT(d) = 1.7976931348623157e308 FROM types_zoo.zoo WHERE id = 2"
        ),
        ["1.7976931348623157e308", "1"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT d = 4.9406564584124654e-324 FROM types_zoo.zoo WHERE id = 5"
        ),
        ["1"]
    );
    // The large blobs, byte for byte.
    same_rows(
        "SELECT id, LENGTH(lblob), MD5(lblob), MD5(blb), HEX(bin), HEX(vbin) FROM types_zoo.zoo ORDER BY id",
        "SELECT id, LENGTH(lblob), MD5(lblob), MD5(blb), HEX(bin), HEX(vbin) FROM types_zoo.zoo ORDER BY id",
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT LENGTH(lblob) FROM types_zoo.zoo WHERE id = 2"
        ),
        ["409600"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT HEX(bin), HEX(vbin), HEX(blb), LENGTH(lblob) FROM types_zoo.zoo WHERE id = 1"
        ),
        ["000000000000", "", "", "0"]
    );
    // TIMESTAMP: the same instant, although the servers run in different time zones.
    same_rows(
        "SELECT id, UNIX_TIMESTAMP(ts3) FROM types_zoo.zoo ORDER BY id",
        "SELECT id, UNIX_TIMESTAMP(ts3) FROM types_zoo.zoo ORDER BY id",
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT UNIX_TIMESTAMP(ts3) FROM types_zoo.zoo WHERE id = 1"
        ),
        ["1.000"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT UNIX_TIMESTAMP(ts3) FROM types_zoo.zoo WHERE id = 2"
        ),
        ["2147483647.999"]
    );
    // TIME, DATETIME(6), YEAR, zero and invalid dates.
    assert_eq!(
        strings(
            &mut d,
            "SELECT CAST(tm AS CHAR), CAST(tm6 AS CHAR), yr + 0 FROM types_zoo.zoo WHERE id = 1"
        ),
        ["-838:59:59", "-838:59:59.000000", "1901"]
    );
    assert_eq!(
        strings(&mut d, "SELECT CAST(tm AS CHAR), CAST(tm6 AS CHAR), yr + 0, CAST(dt6 AS CHAR) FROM types_zoo.zoo WHERE id = 2"),
        ["838:59:59", "838:59:59.000000", "2155", "9999-12-31 23:59:59.999999"]
    );
    assert_eq!(
        strings(&mut d, "SELECT CAST(tm AS CHAR), CAST(tm6 AS CHAR), CAST(dt6 AS CHAR) FROM types_zoo.zoo WHERE id = 5"),
        ["-12:34:56", "-00:00:01.250000", "2024-02-29 12:34:56.000001"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT CAST(tm6 AS CHAR) FROM types_zoo.zoo WHERE id = 6"
        ),
        ["-00:00:00.000001"]
    );
    assert_eq!(
        strings(&mut d, "SELECT CAST(dt AS CHAR), CAST(dtm AS CHAR), CAST(dt6 AS CHAR), CAST(ts3 AS CHAR), yr + 0 FROM types_zoo.zoo WHERE id = 4"),
        ["0000-00-00", "0000-00-00 00:00:00", "0000-00-00 00:00:00.000000", "0000-00-00 00:00:00.000", "0"]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT CAST(dt AS CHAR), CAST(dtm AS CHAR) FROM types_zoo.zoo WHERE id = 7"
        ),
        ["2021-02-31", "2021-04-31 10:00:00"]
    );
    same_rows(
        "SELECT id, CAST(dt AS CHAR), CAST(dtm AS CHAR), CAST(dt6 AS CHAR), CAST(tm AS CHAR), CAST(tm6 AS CHAR), yr + 0 FROM types_zoo.zoo ORDER BY id",
        "SELECT id, CAST(dt AS CHAR), CAST(dtm AS CHAR), CAST(dt6 AS CHAR), CAST(tm AS CHAR), CAST(tm6 AS CHAR), yr + 0 FROM types_zoo.zoo ORDER BY id",
    );
    // Text in its own character set; trailing spaces.
    assert_eq!(
        strings(
            &mut d,
            "SELECT HEX(lat), CHAR_LENGTH(lat_txt) FROM types_zoo.zoo WHERE id = 2"
        ),
        ["E9DFFF", "2700"]
    );
    assert_eq!(
        strings(&mut d, "SELECT HEX(emoji) FROM types_zoo.zoo WHERE id = 2"),
        [hex_upper("😀🎉 ñ 中文 \\ ' \" \0 end".as_bytes())]
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT LENGTH(ch), LENGTH(vch) FROM types_zoo.zoo WHERE id = 2"
        ),
        ["2", "5"]
    );
    assert_eq!(
        strings(&mut d, "SELECT LENGTH(vch) FROM types_zoo.zoo WHERE id = 5"),
        ["3"]
    );
    // ENUM and SET with an empty member: the index and the bits, not only the text.
    assert_eq!(
        strings(&mut d, "SELECT GROUP_CONCAT(en + 0 ORDER BY id), GROUP_CONCAT(st + 0 ORDER BY id) FROM types_zoo.zoo WHERE id IN (1, 2, 5, 6)"),
        ["1,4,2,3", "0,15,1,3"]
    );
    same_rows(
        "SELECT id, en + 0, st + 0, HEX(en), HEX(st) FROM types_zoo.zoo ORDER BY id",
        "SELECT id, en + 0, st + 0, HEX(en), HEX(st) FROM types_zoo.zoo ORDER BY id",
    );
    // JSON (MariaDB: LONGTEXT with a JSON_VALID check).
    assert_eq!(
        strings(&mut d, "SELECT JSON_VALID(js), JSON_EXTRACT(js, '$.big'), JSON_UNQUOTE(JSON_EXTRACT(js, '$.u')), JSON_LENGTH(js, '$.nested[0][0]') FROM types_zoo.zoo WHERE id = 2"),
        ["1", "123456789012345678901234567890123456789", "é😀", "2"]
    );
    // Geometry, with its SRID.
    same_rows(
        "SELECT id, ST_AsText(geo), ST_AsText(pt), ST_SRID(pt), ST_AsText(ls), ST_AsText(pg), HEX(pt) FROM types_zoo.zoo ORDER BY id",
        "SELECT id, ST_AsText(geo), ST_AsText(pt), ST_SRID(pt), ST_AsText(ls), ST_AsText(pg), HEX(pt) FROM types_zoo.zoo ORDER BY id",
    );
    assert_eq!(
        strings(
            &mut d,
            "SELECT ST_AsText(pt), ST_SRID(pt) FROM types_zoo.zoo WHERE id = 5"
        ),
        ["POINT(1.5 -2.5)", "0"]
    );
    // Generated and invisible columns.
    assert_eq!(
        strings(&mut d, "SELECT gv, inv FROM types_zoo.zoo WHERE id = 2"),
        ["2147483648", "2147483647"]
    );
    same_rows(
        "SELECT id, gv, gs, inv FROM types_zoo.zoo ORDER BY id",
        "SELECT id, gv, gs, inv FROM types_zoo.zoo ORDER BY id",
    );
    // NULLs stay NULL.
    assert_eq!(
        strings(&mut d, "SELECT COUNT(*) FROM types_zoo.zoo WHERE id = 3 AND ti IS NULL AND biu IS NULL AND dec65 IS NULL \
            AND f IS NULL AND d IS NULL AND b64 IS NULL AND ts3 IS NULL AND tm6 IS NULL AND yr IS NULL AND emoji IS NULL \
            AND lat IS NULL AND lblob IS NULL AND ch IS NULL AND en IS NULL AND st IS NULL AND js IS NULL AND geo IS NULL \
            AND ls IS NULL AND pg IS NULL AND gv IS NULL AND gs IS NULL AND inv IS NULL"),
        ["1"]
    );
    // And every byte of every row.
    assert_same("types_zoo", "zoo", "types_zoo", "zoo");
}

/// A TIMESTAMP column's DEFAULT names an instant: it must not move with the servers' time
/// zones (the source runs in +05:30, the destination in -08:00).
#[test]
fn timestamp_default_keeps_its_instant() {
    let e = env();
    src_sql(
        "CREATE DATABASE types_tsdef;
         CREATE TABLE types_tsdef.t (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL DEFAULT '2001-02-03 04:05:06');
         INSERT INTO types_tsdef.t (id) VALUES (1);",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"types_tsdef\"\n",
    );
    t.run_ok();
    assert_same("types_tsdef", "t", "types_tsdef", "t");
    src_sql("INSERT INTO types_tsdef.t (id) VALUES (2)");
    dst_sql("INSERT INTO types_tsdef.t (id) VALUES (2)");
    let q = "SELECT UNIX_TIMESTAMP(ts) FROM types_tsdef.t WHERE id = 2";
    let a: Option<u64> = e.src().query_first(q).expect("source");
    let b: Option<u64> = e.dst().query_first(q).expect("destination");
    assert_eq!(
        a, b,
        "the default of types_tsdef.t.ts moved to another instant"
    );
}

/// Tables over several chunks for every kind of key; each must be copied exactly.
#[test]
fn chunking_by_key_kinds() {
    let e = env();
    src_sql(
        "SET NAMES utf8mb4;
         CREATE DATABASE types_keys; USE types_keys;
         CREATE TABLE types_keys.composite (a INT NOT NULL, b VARCHAR(40) NOT NULL, v INT, PRIMARY KEY (a, b));
         INSERT INTO types_keys.composite
           SELECT seq % 5, CONCAT(ELT(1 + seq % 8, 'alpha', 'Beta', 'éclair', 'Zulu', 'ßtraße', '日本', 'Ärger', '😀'), '-', seq), seq
           FROM seq_1_to_4500;
         CREATE TABLE types_keys.strkey (k VARCHAR(60) NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.strkey
           SELECT CONCAT(ELT(1 + seq % 8, 'alpha', 'Beta', 'éclair', 'Zulu', 'ßtraße', '日本', 'Ärger', '😀'), '-', seq), seq
           FROM seq_1_to_4500;
         CREATE TABLE types_keys.sparse (id BIGINT NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.sparse SELECT seq, seq FROM seq_1_to_3000;
         INSERT INTO types_keys.sparse VALUES (1000000000000000, 1), (1000000000000007, 2),
           (9223372036854775807, 3), (-9223372036854775808, 4), (-5, 5), (0, 6);
         CREATE TABLE types_keys.ubig_dense (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.ubig_dense SELECT 18446744073709551615 - seq, seq FROM seq_0_to_3499;
         CREATE TABLE types_keys.ubig_sparse (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.ubig_sparse SELECT seq, seq FROM seq_0_to_2500;
         INSERT INTO types_keys.ubig_sparse VALUES (9223372036854775808, 1), (18446744073709551614, 2), (18446744073709551615, 3);
         CREATE TABLE types_keys.enumkey (e ENUM('zebra', 'apple', 'Mango') NOT NULL, n INT NOT NULL, PRIMARY KEY (e, n));
         INSERT INTO types_keys.enumkey SELECT ELT(1 + seq % 3, 'zebra', 'apple', 'Mango'), seq FROM seq_1_to_3500;
         CREATE TABLE types_keys.tskey (t TIMESTAMP(6) NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.tskey SELECT FROM_UNIXTIME(1000000000 + seq * 3607.000001), seq FROM seq_1_to_3000;
         CREATE TABLE types_keys.deckey (d DECIMAL(30,10) NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.deckey SELECT (CAST(seq AS SIGNED) - 1500) * 1234567.0000001, seq FROM seq_1_to_3000;
         CREATE TABLE types_keys.uuidkey (u UUID NOT NULL PRIMARY KEY, ip INET6 NOT NULL, v INT, UNIQUE KEY (ip));
         INSERT INTO types_keys.uuidkey
           SELECT CONCAT(LPAD(HEX(seq * 7919 % 65536), 8, '0'), '-', LPAD(HEX(seq), 4, '0'), '-1000-8000-', LPAD(HEX(seq * 31), 12, '0')),
                  CONCAT('2001:db8::', HEX(seq)), seq
           FROM seq_1_to_3000;
         CREATE TABLE types_keys.inetkey (ip INET6 NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.inetkey SELECT CONCAT('::ffff:10.0.', seq DIV 256, '.', seq % 256), seq FROM seq_1_to_3000;
         CREATE TABLE types_keys.latinkey (k VARCHAR(30) CHARACTER SET latin1 NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.latinkey
           SELECT CONCAT(ELT(1 + seq % 6, 'é', 'Z', 'a', 'ß', 'ÿ', 'Ö'), seq), seq FROM seq_1_to_3000;
         CREATE TABLE types_keys.nopadkey (k VARCHAR(30) COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY, v INT);
         INSERT INTO types_keys.nopadkey
           SELECT CONCAT('k', seq DIV 3, REPEAT(' ', seq % 3)), seq FROM seq_1_to_3000;
         ANALYZE TABLE types_keys.latinkey, types_keys.nopadkey, types_keys.uuidkey, types_keys.inetkey, types_keys.composite, types_keys.strkey, types_keys.sparse, types_keys.ubig_dense,
           types_keys.ubig_sparse, types_keys.enumkey, types_keys.tskey, types_keys.deckey;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 1000\nbatch_rows = 100\nthreads = 3\n\
         [[objects]]\ndatabase = \"types_keys\"\n",
    );
    t.run_ok();
    let tables = [
        "composite",
        "strkey",
        "sparse",
        "ubig_dense",
        "ubig_sparse",
        "enumkey",
        "tskey",
        "deckey",
        "uuidkey",
        "inetkey",
        "latinkey",
        "nopadkey",
    ];
    for table in tables {
        let n = chunks_of(&t, &format!("types_keys.{table}"));
        assert!(
            n >= 3,
            "types_keys.{table} should be split into several chunks, got {n}"
        );
        let a = count(&mut e.src(), "types_keys", table);
        let b = count(&mut e.dst(), "types_keys", table);
        assert_eq!(a, b, "row count of types_keys.{table}");
        assert_same("types_keys", table, "types_keys", table);
    }
    // The extreme keys made it.
    let ids: Vec<String> = e
        .dst()
        .query("SELECT CAST(id AS CHAR) FROM types_keys.ubig_sparse WHERE id > 9000000000000000000 ORDER BY id")
        .expect("ids");
    assert_eq!(
        ids,
        [
            "9223372036854775808",
            "18446744073709551614",
            "18446744073709551615"
        ]
    );
    let ids: Vec<String> = e
        .dst()
        .query(
            "SELECT CAST(id AS CHAR) FROM types_keys.sparse WHERE id > 3000 OR id < 1 ORDER BY id",
        )
        .expect("ids");
    assert_eq!(
        ids,
        [
            "-9223372036854775808",
            "-5",
            "0",
            "1000000000000000",
            "1000000000000007",
            "9223372036854775807"
        ]
    );
    assert!(checksum(&mut e.dst(), "types_keys", "strkey").is_some());
}

/// The types the zoo leaves out: MariaDB's UUID / INET4 / INET6, every TEXT and BLOB size,
/// ZEROFILL and (M,D) floating point, multi-geometries, and text in character sets whose
/// bytes are not UTF-8 (ucs2, utf16, utf32, sjis, gbk) or are a subset of it (utf8mb3).
#[test]
fn more_types_and_character_sets() {
    let e = env();
    src_sql(
        "SET NAMES utf8mb4;
         CREATE DATABASE types_more; USE types_more;
         CREATE TABLE more (
           id INT NOT NULL PRIMARY KEY,
           u UUID, i4 INET4, i6 INET6,
           tt TINYTEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, mb MEDIUMBLOB,
           z INT(8) ZEROFILL, bo BOOLEAN, fmd FLOAT(7,4), dmd DOUBLE(20,5), du DECIMAL(20,0) UNSIGNED,
           mp MULTIPOINT, mls MULTILINESTRING, mpg MULTIPOLYGON, gc GEOMETRYCOLLECTION,
           ucs VARCHAR(20) CHARACTER SET ucs2, u16 TEXT CHARACTER SET utf16, u32 VARCHAR(20) CHARACTER SET utf32,
           sj VARCHAR(20) CHARACTER SET sjis, gb VARCHAR(20) CHARACTER SET gbk, u3 VARCHAR(20) CHARACTER SET utf8mb3,
           cb CHAR(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
         );
         INSERT INTO more VALUES
           (1, 'f47ac10b-58cc-4372-a567-0e02b2c3d479', '192.168.0.1', '::ffff:1.2.3.4',
            REPEAT('t', 255), REPEAT('m', 70000), REPEAT('l😀', 30000), UNHEX(REPEAT('FF00', 127)), UNHEX(REPEAT('00FF', 40000)),
            42, TRUE, 123.4567, -12345678901234.12345, 99999999999999999999,
            ST_GeomFromText('MULTIPOINT(1 1, 2 2)'), ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))'),
            ST_GeomFromText('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((2 2, 3 2, 3 3, 2 2)))'),
            ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'),
            'Aé€', '😀x\\0y', 'A😀', 'ｱ日本語', '中文字符', 'é€', 'x'),
           (2, '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::', '', '', '', '', '',
            0, FALSE, -999.9999, 0, 0, NULL, NULL, NULL, NULL, 'A', 'A', '', '', '', '', ''),
           (3, NULL, '255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', NULL, NULL, NULL, NULL, NULL,
            99999999, NULL, 0.0001, 1e15, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nbatch_bytes = 65536\n[[objects]]\ndatabase = \"types_more\"\n",
    );
    t.run_ok();
    same_rows(
        "SELECT id, CAST(u AS CHAR), CAST(i4 AS CHAR), CAST(i6 AS CHAR), MD5(tt), MD5(mt), MD5(lt), MD5(tb), MD5(mb), \
           CAST(z AS CHAR), bo, CONCAT(fmd), CONCAT(dmd), CAST(du AS CHAR), ST_AsText(mp), ST_AsText(mls), ST_AsText(mpg), \
           ST_AsText(gc), HEX(ucs), HEX(u16), HEX(u32), HEX(sj), HEX(gb), HEX(u3), HEX(cb) \
         FROM types_more.more ORDER BY id",
        "SELECT id, CAST(u AS CHAR), CAST(i4 AS CHAR), CAST(i6 AS CHAR), MD5(tt), MD5(mt), MD5(lt), MD5(tb), MD5(mb), \
           CAST(z AS CHAR), bo, CONCAT(fmd), CONCAT(dmd), CAST(du AS CHAR), ST_AsText(mp), ST_AsText(mls), ST_AsText(mpg), \
           ST_AsText(gc), HEX(ucs), HEX(u16), HEX(u32), HEX(sj), HEX(gb), HEX(u3), HEX(cb) \
         FROM types_more.more ORDER BY id",
    );
    let mut d = e.dst();
    assert_eq!(
        strings(&mut d, "SELECT CAST(u AS CHAR), CAST(i6 AS CHAR), HEX(ucs), CONVERT(u16 USING utf8mb4), CONVERT(sj USING utf8mb4) FROM types_more.more WHERE id = 1"),
        ["f47ac10b-58cc-4372-a567-0e02b2c3d479", "::ffff:1.2.3.4", "004100E920AC", "😀x\0y", "ｱ日本語"]
    );
    assert_same("types_more", "more", "types_more", "more");
}

/// The same zoo through LOAD DATA LOCAL INFILE (the default writes prepared INSERTs).
#[test]
fn type_zoo_through_load_data() {
    create_zoo();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nload_method = \"load-data\"\nchunk_rows = 1000\nbatch_rows = 100\nbatch_bytes = 65536\n\
         [[objects]]\ndatabase = \"types_zoo\"\nrename = \"types_zoo_load\"\n",
    );
    t.run_ok();
    assert_same("types_zoo", "zoo", "types_zoo_load", "zoo");
}
