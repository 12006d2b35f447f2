//! Names: spaces, backticks, unicode and reserved words copied intact; database and table
//! renames, column subsets and renames, row filters, and the `name_case` policies.

mod common;

use common::{assert_same, dst_sql, env, rows, src_sql, strings, TaskDir};
use mysql::prelude::Queryable;
use tidemark_core::sql::{qualified, quote_ident};

/// Base tables and views of a database: (name, type), sorted by name.
fn objects(c: &mut mysql::Conn, db: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .expect("tables");
    v.sort();
    v
}

fn columns(c: &mut mysql::Conn, db: &str, table: &str) -> Vec<String> {
    c.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .expect("columns")
}

fn triggers(c: &mut mysql::Conn, db: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .exec("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", (db,))
        .expect("triggers");
    v.sort();
    v
}

fn routines(c: &mut mysql::Conn, db: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .exec("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", (db,))
        .expect("routines");
    v.sort();
    v
}

fn has_database(c: &mut mysql::Conn, db: &str) -> bool {
    let n: Option<String> = c
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .expect("schemata");
    n.is_some()
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn awkward_names_are_copied_intact() {
    let e = env();
    let db = "names wéird `db` 表";
    let qdb = quote_ident(db);
    src_sql(&format!(
        "SET NAMES utf8mb4;
         CREATE DATABASE {qdb}; USE {qdb};
         CREATE TABLE `select` (`from` INT NOT NULL PRIMARY KEY, `order` VARCHAR(20), `c``d` INT, `col umn` TEXT,
           `données` DECIMAL(10,2), KEY `idx ``x`` 表` (`c``d`, `order`)) COMMENT 'a `quoted` comment';
         INSERT INTO `select` SELECT seq, CONCAT('o', seq), seq % 7, CONCAT('v ', seq), seq / 3 FROM seq_1_to_2500;
         CREATE TABLE `order` (`where` VARCHAR(30) NOT NULL PRIMARY KEY, `group` INT, `表列` VARCHAR(10));
         INSERT INTO `order` SELECT CONCAT('Ключ ', seq), seq, '値' FROM seq_1_to_1500;
         CREATE TABLE `表` (`id` INT AUTO_INCREMENT PRIMARY KEY, `select` INT, `from` INT);
         INSERT INTO `表` (`select`, `from`) SELECT seq, -seq FROM seq_1_to_100;
         CREATE TABLE `from``x y` (`a b` INT PRIMARY KEY, `x``y` CHAR(3) DEFAULT 'a`b');
         INSERT INTO `from``x y` VALUES (1, 'q`q'), (2, DEFAULT);
         CREATE VIEW `v iew ``1``` AS SELECT `from`, `c``d`, `order` FROM `select` WHERE `from` <= 10;
         CREATE TRIGGER `trg ``x`` 表` BEFORE INSERT ON `order` FOR EACH ROW SET NEW.`group` = NEW.`group` * 10;
         CREATE PROCEDURE `proc ``p`` 表`(IN `in` INT) SELECT `from` FROM `select` WHERE `from` = `in`;
         ANALYZE TABLE `select`, `order`;"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 1000\nbatch_rows = 100\n\
         [[objects]]\ndatabase = {}\n",
        toml_str(db)
    ));
    t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());
    let names = objects(&mut s, db);
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names, objects(&mut d, db));
    for (table, kind) in &names {
        assert_eq!(
            columns(&mut s, db, table),
            columns(&mut d, db, table),
            "columns of {table}"
        );
        if kind == "BASE TABLE" {
            assert_same(db, table, db, table);
        }
    }
    let view = qualified(db, "v iew `1`");
    let q = format!("SELECT * FROM {view} ORDER BY 1");
    let from_view = rows(&mut d, &q);
    assert_eq!(from_view.len(), 10);
    assert_eq!(rows(&mut s, &q), from_view);
    assert_eq!(
        triggers(&mut d, db),
        [("trg `x` 表".to_string(), "order".to_string())]
    );
    assert_eq!(
        routines(&mut d, db),
        [("proc `p` 表".to_string(), "PROCEDURE".to_string())]
    );
    // The trigger fires on the destination; the procedure runs.
    dst_sql(&format!(
        "INSERT INTO {} (`where`, `group`) VALUES ('new', 4)",
        qualified(db, "order")
    ));
    let g: Vec<String> = strings(
        &mut d,
        &format!(
            "SELECT CAST(`group` AS CHAR) FROM {} WHERE `where` = 'new'",
            qualified(db, "order")
        ),
    );
    assert_eq!(g, ["40"]);
    let r: Vec<String> = strings(&mut d, &format!("CALL {}(7)", qualified(db, "proc `p` 表")));
    assert_eq!(r, ["7"]);
    // The comment with backticks survived.
    let c: Vec<String> = strings(
        &mut d,
        &format!("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = 'select'", tidemark_core::sql::quote_str(db)),
    );
    assert_eq!(c, ["a `quoted` comment"]);
}

#[test]
fn database_rename_moves_every_object() {
    let e = env();
    src_sql(
        "CREATE DATABASE names_ren_src; USE names_ren_src;
         CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TABLE b (id INT AUTO_INCREMENT PRIMARY KEY, a_id INT, KEY (a_id),
           CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES a (id));
         INSERT INTO a SELECT seq, CONCAT('a', seq) FROM seq_1_to_1200;
         INSERT INTO b (a_id) SELECT seq FROM seq_1_to_300;
         CREATE VIEW v AS SELECT a.id, a.v, COUNT(b.id) AS n FROM a LEFT JOIN b ON b.a_id = a.id GROUP BY a.id, a.v;
         CREATE VIEW `names_ren_src`.`v2` AS SELECT id FROM `names_ren_src`.`v` WHERE n > 0;
         CREATE TRIGGER a_ins AFTER INSERT ON `names_ren_src`.`a` FOR EACH ROW
           INSERT INTO `names_ren_src`.`b` (a_id) VALUES (NEW.id);
         CREATE FUNCTION b_count(x INT) RETURNS INT READS SQL DATA
           RETURN (SELECT COUNT(*) FROM `names_ren_src`.`b` WHERE a_id = x);
         ANALYZE TABLE a, b;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 1000\n\
         [[objects]]\ndatabase = \"names_ren_src\"\nrename = \"names_ren_dst\"\n",
    );
    t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());
    assert!(
        !has_database(&mut d, "names_ren_src"),
        "the source name must not appear on the destination"
    );
    assert_eq!(
        objects(&mut s, "names_ren_src"),
        objects(&mut d, "names_ren_dst")
    );
    for table in ["a", "b"] {
        assert_same("names_ren_src", table, "names_ren_dst", table);
    }
    for v in ["v", "v2"] {
        let (text,): (String,) = {
            let r: (String, String, String, String) = d
                .query_first(format!("SHOW CREATE VIEW names_ren_dst.{v}"))
                .expect("show")
                .expect("row");
            (r.1,)
        };
        assert!(
            !text.contains("names_ren_src"),
            "view {v} still refers to the source database: {text}"
        );
        let a = rows(
            &mut s,
            &format!("SELECT * FROM names_ren_src.{v} ORDER BY 1"),
        );
        assert_eq!(
            a,
            rows(
                &mut d,
                &format!("SELECT * FROM names_ren_dst.{v} ORDER BY 1")
            ),
            "view {v}"
        );
    }
    // The trigger and the function work on the renamed database.
    assert_eq!(
        triggers(&mut d, "names_ren_dst"),
        [("a_ins".to_string(), "a".to_string())]
    );
    dst_sql("INSERT INTO names_ren_dst.a VALUES (5000, 'new')");
    let n: Vec<String> = strings(&mut d, "SELECT CAST(names_ren_dst.b_count(5000) AS CHAR)");
    assert_eq!(n, ["1"]);
    let n: Vec<String> = strings(&mut d, "SELECT CAST(names_ren_dst.b_count(7) AS CHAR)");
    assert_eq!(n, ["1"]);
    let fk: Vec<String> = strings(
        &mut d,
        "SELECT CONCAT(UNIQUE_CONSTRAINT_SCHEMA, '.', REFERENCED_TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = 'names_ren_dst'",
    );
    assert_eq!(fk, ["names_ren_dst.a"]);
}

#[test]
fn table_rename_columns_and_filter() {
    let e = env();
    src_sql(
        "SET NAMES utf8mb4;
         CREATE DATABASE names_tbl; USE names_tbl;
         CREATE TABLE other (id INT PRIMARY KEY);
         INSERT INTO other SELECT seq FROM seq_1_to_10;
         CREATE TABLE unselected (id INT PRIMARY KEY);
         CREATE TABLE people (id INT NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(60),
           age INT NOT NULL, secret VARBINARY(16), other_id INT, team_id INT, u_id INT,
           KEY k_name (name), UNIQUE KEY uk_email (email), KEY k_age_email (age, email), KEY k_age (age),
           CONSTRAINT chk_email CHECK (email LIKE '%@%'),
           CONSTRAINT chk_age CHECK (age >= 0),
           CONSTRAINT fk_other FOREIGN KEY (other_id) REFERENCES other (id),
           CONSTRAINT fk_team FOREIGN KEY (team_id) REFERENCES other (id) ON DELETE CASCADE,
           CONSTRAINT fk_u FOREIGN KEY (u_id) REFERENCES unselected (id));
         INSERT INTO people SELECT seq, CONCAT(ELT(1 + seq % 4, 'Ann', 'Zoé', 'Bob', 'Zed'), ' ', seq),
           CONCAT('p', seq, '@x.org'), seq % 90, UNHEX(MD5(seq)), 1 + seq % 10, 1 + seq % 7, NULL FROM seq_1_to_4000;
         ANALYZE TABLE people;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 1000\nbatch_rows = 77\n\
         [[objects]]\ndatabase = \"names_tbl\"\ntable = \"other\"\n\
         [[objects]]\ndatabase = \"names_tbl\"\ntable = \"people\"\nrename = \"persons\"\n\
         columns = [\"id\", \"name\", \"age\", \"team_id\", \"u_id\"]\nwhere = \"age >= 30 AND name NOT LIKE 'Z%'\"\n\
         [objects.column_rename]\nid = \"person id\"\nname = \"full_name\"\nteam_id = \"team\"\n",
    );
    let out = t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());
    assert_eq!(
        objects(&mut d, "names_tbl"),
        [
            ("other".to_string(), "BASE TABLE".to_string()),
            ("persons".to_string(), "BASE TABLE".to_string())
        ]
    );
    assert_eq!(
        columns(&mut d, "names_tbl", "persons"),
        ["person id", "full_name", "age", "team", "u_id"]
    );
    let want = rows(
        &mut s,
        "SELECT id, name, age, team_id, u_id FROM names_tbl.people WHERE age >= 30 AND name NOT LIKE 'Z%' ORDER BY id",
    );
    let got = rows(&mut d, "SELECT `person id`, full_name, age, team, u_id FROM names_tbl.persons ORDER BY `person id`");
    assert!(
        want.len() > 1000 && want.len() < 4000,
        "the filter should select part of the rows: {}",
        want.len()
    );
    assert_eq!(want, got);
    // Indexes over the chosen columns survive with the new names; those over others are gone.
    let mut idx: Vec<(String, String)> = d
        .query(
            "SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = 'names_tbl' AND TABLE_NAME = 'persons' GROUP BY INDEX_NAME ORDER BY INDEX_NAME",
        )
        .expect("indexes");
    idx.sort();
    assert_eq!(
        idx,
        [
            ("PRIMARY".to_string(), "person id".to_string()),
            ("fk_team".to_string(), "team".to_string()),
            ("fk_u".to_string(), "u_id".to_string()),
            ("k_age".to_string(), "age".to_string()),
            ("k_name".to_string(), "full_name".to_string()),
        ]
    );
    // Constraints over chosen columns survive, renamed; those over others are left out, and
    // said so.
    let fks: Vec<(String, String, String)> = d
        .query(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = 'names_tbl'",
        )
        .expect("foreign keys");
    assert_eq!(
        fks,
        [(
            "fk_team".to_string(),
            "persons".to_string(),
            "other".to_string()
        )]
    );
    let mut checks: Vec<String> = d
        .query("SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'names_tbl'")
        .expect("checks");
    checks.sort();
    assert_eq!(checks, ["chk_age"]);
    let log = common::text(&out);
    assert!(
        log.contains("fk_other") && log.contains("chk_email") && log.contains("fk_u"),
        "{log}"
    );
    let err = d
        .query_drop("INSERT INTO names_tbl.persons VALUES (99999, 'x', 1, 11, NULL)")
        .expect_err("a missing team must be refused");
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1452),
        "{err}"
    );
    let err = d
        .query_drop("INSERT INTO names_tbl.persons VALUES (99999, 'x', -1, 1, NULL)")
        .expect_err("age < 0");
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 4025),
        "{err}"
    );
}

/// `name_case = lower | upper`: database, tables, views and columns change case; a
/// trigger follows its table, a view on a view finds the renamed view.
fn name_case(policy: &str, src_db: &str, f: fn(&str) -> String) {
    let e = env();
    src_sql(&format!(
        "CREATE DATABASE {src_db}; USE {src_db};
         CREATE TABLE MixedTable (Id INT NOT NULL PRIMARY KEY, CamelCol VARCHAR(20), KEY KeyCamel (CamelCol));
         CREATE TABLE OtherTBL (ID INT PRIMARY KEY, MixedId INT,
           CONSTRAINT FkMixed FOREIGN KEY (MixedId) REFERENCES MixedTable (Id));
         INSERT INTO MixedTable SELECT seq, CONCAT('Val', seq) FROM seq_1_to_1500;
         INSERT INTO OtherTBL SELECT seq, seq FROM seq_1_to_10;
         CREATE VIEW MixedView AS SELECT m.Id, m.CamelCol, o.ID AS OtherId FROM MixedTable m JOIN OtherTBL o ON o.MixedId = m.Id;
         CREATE VIEW ViewOnView AS SELECT Id FROM MixedView WHERE Id > 5;
         CREATE TRIGGER TrgUpper BEFORE INSERT ON MixedTable FOR EACH ROW SET NEW.CamelCol = UPPER(NEW.CamelCol);
         ANALYZE TABLE MixedTable;"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\nname_case = \"{policy}\"\n[full]\nchunk_rows = 1000\n\
         [[objects]]\ndatabase = \"{src_db}\"\n"
    ));
    t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());
    let dst_db = f(src_db);
    assert!(
        has_database(&mut d, &dst_db),
        "database {dst_db} on the destination"
    );
    assert!(
        !has_database(&mut d, src_db),
        "database {src_db} on the destination"
    );
    let want: Vec<(String, String)> = objects(&mut s, src_db)
        .into_iter()
        .map(|(n, k)| (f(&n), k))
        .collect();
    assert_eq!(objects(&mut d, &dst_db), want);
    for table in ["MixedTable", "OtherTBL"] {
        let cols: Vec<String> = columns(&mut s, src_db, table)
            .iter()
            .map(|c| f(c))
            .collect();
        assert_eq!(
            columns(&mut d, &dst_db, &f(table)),
            cols,
            "columns of {table}"
        );
        assert_same(src_db, table, &dst_db, &f(table));
    }
    for v in ["MixedView", "ViewOnView"] {
        let a = rows(&mut s, &format!("SELECT * FROM {src_db}.{v} ORDER BY 1"));
        let b = rows(
            &mut d,
            &format!(
                "SELECT * FROM {}.{} ORDER BY 1",
                quote_ident(&dst_db),
                quote_ident(&f(v))
            ),
        );
        assert!(!a.is_empty());
        assert_eq!(a, b, "view {v}");
    }
    // Trigger names are not table names: they keep their case; the table is the renamed one.
    assert_eq!(
        triggers(&mut d, &dst_db),
        [("TrgUpper".to_string(), f("MixedTable"))]
    );
    dst_sql(&format!(
        "INSERT INTO {} VALUES (9999, 'lower')",
        qualified(&dst_db, &f("MixedTable"))
    ));
    let v: Vec<String> = strings(
        &mut d,
        &format!(
            "SELECT {} FROM {} WHERE 9999 = {}",
            quote_ident(&f("CamelCol")),
            qualified(&dst_db, &f("MixedTable")),
            quote_ident(&f("Id"))
        ),
    );
    assert_eq!(v, ["LOWER"]);
}

#[test]
fn name_case_lower() {
    name_case("lower", "NmCaseLo", |s| s.to_lowercase());
}

#[test]
fn name_case_upper() {
    name_case("upper", "NmCaseUp", |s| s.to_uppercase());
}
