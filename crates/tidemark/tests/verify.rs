//! `tidemark verify`: planted differences are found, named by key and column, written as
//! SQL or repaired; semantically equal JSON is not a difference; odd tables are reported,
//! not crashed on.

mod common;

use common::{assert_same, env, text, TaskDir};

fn verify_json(t: &TaskDir, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = t.tidemark(&all);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}\n{}", text(&out)));
    (out.status.success(), v)
}

fn keys(v: &serde_json::Value, what: &str) -> Vec<String> {
    v[what]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|d| d["key"][0].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn planted_differences_are_found_and_repaired() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE vf; USE vf;
         CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB, s VARCHAR(20) NULL, ts TIMESTAMP NULL,
                         d DECIMAL(10,3), j JSON, n VARCHAR(10));
         INSERT INTO t SELECT seq, IF(seq = 7, REPEAT('x', 300000), 'blob'), IF(seq = 8, NULL, 's'),
                              '2024-01-01 00:00:00', 1.234, '{\"a\": 1, \"b\": [1, 2]}', 'n'
                       FROM seq_1_to_3000;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"vf\"\ntable = \"t\"\nrename = \"t2\"\ncolumn_rename = { n = \"renamed\" }\n",
    );
    t.run_ok();
    let (ok, v) = verify_json(&t, &[]);
    assert!(ok, "a fresh copy verifies clean: {v}");

    e.dst_sql(
        "USE vf;
         DELETE FROM t2 WHERE id = 5;
         INSERT INTO t2 VALUES (99999, 'extra', 's', NULL, 0, NULL, 'n');
         UPDATE t2 SET b = CONCAT(LEFT(b, 299999), 'y') WHERE id = 7;
         UPDATE t2 SET s = '' WHERE id = 8;
         UPDATE t2 SET ts = ts + INTERVAL 1 SECOND WHERE id = 9;
         UPDATE t2 SET d = 1.235 WHERE id = 10;
         UPDATE t2 SET j = '{\"b\":[1,2],  \"a\":1}' WHERE id = 11;",
    );
    let (ok, v) = verify_json(&t, &[]);
    assert!(!ok, "differences must fail verify: {v}");
    let r = &v["tables"][0];
    assert_eq!(keys(r, "missing"), vec!["5"], "{r}");
    assert_eq!(keys(r, "extra"), vec!["99999"], "{r}");
    let differing: Vec<(String, Vec<String>)> = r["differing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"][0].as_str().unwrap().to_string(),
                d["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        differing,
        vec![
            ("7".to_string(), vec!["b".to_string()]),
            ("8".to_string(), vec!["s".to_string()]),
            ("9".to_string(), vec!["ts".to_string()]),
            ("10".to_string(), vec!["d".to_string()]),
        ],
        "JSON with other key order and spacing (row 11) is not a difference: {r}"
    );

    // --emit-sql writes the fix and changes nothing.
    let sql = t.dir.path().join("fix.sql");
    let out = t.tidemark(&["verify", "--emit-sql", sql.to_str().unwrap()]);
    assert!(!out.status.success());
    let fix = std::fs::read_to_string(&sql).expect("fix.sql");
    assert!(
        fix.contains("REPLACE INTO `vf`.`t2`") && fix.contains("DELETE FROM `vf`.`t2`"),
        "{fix}"
    );
    assert!(
        !verify_json(&t, &[]).0,
        "--emit-sql must not change the destination"
    );

    // --repair fixes it; verify is then clean and the tables are identical.
    let out = t.tidemark(&["verify", "--repair"]);
    assert!(text(&out).contains("rows repaired"), "{}", text(&out));
    let (ok, v) = verify_json(&t, &[]);
    assert!(ok, "after --repair: {v}");
    e.dst_sql("UPDATE vf.t2 SET j = '{\"a\": 1, \"b\": [1, 2]}' WHERE id = 11");
    let mut d = e.dst();
    common::script(&mut d, "ALTER TABLE vf.t2 RENAME COLUMN renamed TO n");
    assert_same("vf", "t", "vf", "t2");
}

#[test]
fn odd_tables_are_reported_not_crashed_on() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE vodd; USE vodd;
         CREATE TABLE nokey (a INT, b INT); INSERT INTO nokey VALUES (1, 1), (2, 2);
         CREATE TABLE gone (id INT PRIMARY KEY); INSERT INTO gone VALUES (1);
         CREATE TABLE cols (id INT PRIMARY KEY, x INT); INSERT INTO cols VALUES (1, 1);
         CREATE TABLE typ (id INT PRIMARY KEY, v INT, w INT DEFAULT 5, KEY kv (v)); INSERT INTO typ (id, v) VALUES (1, 1);
         CREATE TABLE fk_child (id INT PRIMARY KEY, pid INT, CONSTRAINT fkp FOREIGN KEY (pid) REFERENCES typ (id));
         CREATE VIEW vv AS SELECT id FROM typ;
         CREATE VIEW vkeep AS SELECT t.id, t.v * 2 AS dv FROM vodd.typ t WHERE t.id > 0;
         CREATE TRIGGER trg BEFORE INSERT ON cols FOR EACH ROW SET NEW.id = NEW.id + 0;
         CREATE PROCEDURE p() SELECT 1;
         CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 7;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"vodd\"\n",
    );
    t.run_ok();
    e.dst_sql(
        "USE vodd; INSERT INTO nokey VALUES (3, 3); DROP TABLE gone; ALTER TABLE cols DROP COLUMN x;
         ALTER TABLE typ MODIFY v BIGINT, DROP INDEX kv, ALTER w SET DEFAULT 6; DROP VIEW vv;
         ALTER TABLE fk_child DROP FOREIGN KEY fkp;
         DROP PROCEDURE p; CREATE PROCEDURE p() SELECT 2;",
    );
    let (ok, v) = verify_json(&t, &[]);
    assert!(!ok);
    let problem = |table: &str| -> String {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"].as_str().unwrap_or("").contains(table))
            .and_then(|r| r["problem"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(problem("nokey").contains("no key"), "{v}");
    assert!(problem("gone").contains("has no table"), "{v}");
    assert!(problem("cols").contains("lacks column"), "{v}");
    let schema: Vec<String> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"].as_str().unwrap_or("").contains("typ"))
        .map(|r| {
            r["schema"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        schema.iter().any(|s| s.contains("column v is bigint")),
        "{schema:?}"
    );
    assert!(
        schema.iter().any(|s| s.contains("index kv is missing")),
        "{schema:?}"
    );
    assert_eq!(
        v["databases"][0]["missing_objects"],
        serde_json::json!(["view vv"]),
        "{v}"
    );
}

/// `[verification] mode = "after-full"`: the task verifies by itself; `status` shows it.
#[test]
fn a_task_verifies_after_the_full_copy() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE vauto; USE vauto; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_500;
         CREATE VIEW v1 AS SELECT t.id FROM vauto.t t WHERE t.v > 10;
         CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET NEW.v = NEW.v + 1;
         CREATE PROCEDURE pr() SELECT COUNT(*) FROM vauto.t;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[verification]\nmode = \"after-full\"\n[[objects]]\ndatabase = \"vauto\"\nrename = \"vauto_copy\"\n",
    );
    t.run_ok();
    let out = t.tidemark(&["status"]);
    assert!(
        text(&out).contains("verification: equal (1 tables, 500 rows compared)"),
        "{}",
        text(&out)
    );
    let out = t.tidemark(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verification"]["tables"][0]["rows_compared"], 500, "{v}");
}
