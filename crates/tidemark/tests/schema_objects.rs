//! Schema objects: views (a view on a view), triggers, routines and foreign keys move with
//! a whole database, run as SQL SECURITY INVOKER, and work on the destination; triggers are
//! created after the load, so they do not fire during it. A table-level selection moves no
//! such objects. Deferred secondary indexes, AUTO_INCREMENT counters, partitioning,
//! fulltext and prefix indexes and comments survive.

mod common;

use common::{assert_same, dst_sql, env, rows, src_sql, strings, TaskDir};
use mysql::prelude::Queryable;

fn one(c: &mut mysql::Conn, q: &str) -> String {
    let v = strings(c, q);
    assert_eq!(v.len(), 1, "one row expected from {q}: {v:?}");
    v[0].clone()
}

/// Same query, same rows, on both sides.
fn same_rows(q: &str) {
    let e = env();
    let a = rows(&mut e.src(), q);
    assert!(!a.is_empty(), "no rows from the source for {q}");
    assert_eq!(a, rows(&mut e.dst(), q), "{q}");
}

/// `SHOW CREATE TABLE` without its first line (the table name).
fn definition(c: &mut mysql::Conn, db: &str, table: &str) -> String {
    let q = format!(
        "SHOW CREATE TABLE {}",
        tidemark_core::sql::qualified(db, table)
    );
    let r: (String, String) = c.query_first(&q).expect("show create").expect("row");
    r.1.split_once('\n')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default()
}

fn auto_increment(c: &mut mysql::Conn, db: &str, table: &str) -> u64 {
    let v: Option<Option<u64>> = c
        .exec_first("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .expect("auto_increment");
    v.flatten().expect("an AUTO_INCREMENT counter")
}

fn base_tables(c: &mut mysql::Conn, db: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", (db,))
        .expect("tables");
    v.sort();
    v
}

/// Index name, column, position, prefix, uniqueness and type of every index of a table.
fn statistics(
    c: &mut mysql::Conn,
    db: &str,
    table: &str,
) -> Vec<(String, String, u32, Option<u32>, u32, String)> {
    c.exec(
        "SELECT INDEX_NAME, COLUMN_NAME, SEQ_IN_INDEX, SUB_PART, NON_UNIQUE, INDEX_TYPE FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (db, table),
    )
    .expect("statistics")
}

/// Every statement text the destination logged about `needle` (DDL is logged as text).
fn destination_binlog(needle: &str) -> Vec<String> {
    let mut c = env().dst();
    let logs: Vec<mysql::Row> = c.query("SHOW BINARY LOGS").expect("binary logs");
    let mut found = Vec::new();
    for log in logs {
        let file: String = log.get(0).expect("log name");
        let events: Vec<mysql::Row> = c
            .query(format!("SHOW BINLOG EVENTS IN '{file}'"))
            .expect("binlog events");
        for ev in events {
            let info = ev
                .get_opt::<Vec<u8>, _>("Info")
                .and_then(Result::ok)
                .unwrap_or_default();
            let info = String::from_utf8_lossy(&info).into_owned();
            if info.contains(needle) {
                found.push(info);
            }
        }
    }
    found
}

fn create_shop(db: &str) {
    src_sql(&format!(
        "SET NAMES utf8mb4;
         CREATE DATABASE {db}; USE {db};
         CREATE TABLE customers (
           id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
           name VARCHAR(100) NOT NULL COMMENT 'full name',
           email VARCHAR(150) NOT NULL,
           country CHAR(2) NOT NULL DEFAULT 'FR',
           UNIQUE KEY uk_email (email),
           KEY k_country (country)
         ) ENGINE=InnoDB COMMENT='people who buy';
         CREATE TABLE orders (
           id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
           customer_id INT UNSIGNED NOT NULL,
           total DECIMAL(12,2) NOT NULL,
           status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
           ordered_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
           KEY k_customer (customer_id),
           CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE ON UPDATE CASCADE
         ) ENGINE=InnoDB;
         CREATE TABLE order_audit (
           id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
           order_id BIGINT NOT NULL,
           note VARCHAR(20) NOT NULL
         ) ENGINE=InnoDB;
         CREATE TABLE employees (
           id INT NOT NULL PRIMARY KEY,
           name VARCHAR(50) NOT NULL,
           manager_id INT NULL,
           CONSTRAINT fk_manager FOREIGN KEY (manager_id) REFERENCES employees (id) ON DELETE SET NULL
         ) ENGINE=InnoDB;
         CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
           INSERT INTO order_audit (order_id, note) VALUES (NEW.id, 'trigger');
         CREATE TRIGGER customers_country BEFORE INSERT ON customers FOR EACH ROW
           SET NEW.country = UPPER(NEW.country);
         INSERT INTO customers (name, email, country)
           SELECT CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'), ELT(1 + seq % 5, 'fr', 'DE', 'jp', 'BR', 'US')
           FROM seq_1_to_1200;
         DELETE FROM customers WHERE id > 1150;
         INSERT INTO orders (customer_id, total, status, ordered_at)
           SELECT 1 + seq % 1150, (seq % 1000) + 0.99, ELT(1 + seq % 3, 'new', 'paid', 'shipped'),
                  FROM_UNIXTIME(1700000000 + seq * 61.5)
           FROM seq_1_to_5000;
         DELETE FROM order_audit WHERE order_id % 50 = 0;
         INSERT INTO order_audit (order_id, note) VALUES (0, 'manual'), (0, 'manual');
         INSERT INTO employees VALUES (1, 'boss', NULL);
         INSERT INTO employees SELECT seq, CONCAT('e', seq), 1 + seq DIV 10 FROM seq_2_to_1500;
         CREATE VIEW order_totals AS
           SELECT c.country, COUNT(*) AS orders, SUM(o.total) AS revenue
           FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.country;
         CREATE VIEW big_countries AS SELECT country, revenue FROM order_totals WHERE orders > 10;
         CREATE PROCEDURE orders_of(IN cid INT UNSIGNED)
           SELECT CAST(id AS CHAR) FROM orders WHERE customer_id = cid ORDER BY id;
         CREATE FUNCTION order_count(cid INT UNSIGNED) RETURNS INT READS SQL DATA
           RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = cid);
         ANALYZE TABLE customers, orders, order_audit, employees;"
    ));
}

#[test]
fn whole_database_objects_work_on_the_destination() {
    let e = env();
    let db = "so_shop";
    create_shop(db);
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 1000\nbatch_rows = 250\n\
         [[objects]]\ndatabase = \"{db}\"\n"
    ));
    t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());

    // Tables: same definitions (AUTO_INCREMENT counters, comments, keys) and same rows.
    assert_eq!(base_tables(&mut s, db), base_tables(&mut d, db));
    for table in base_tables(&mut s, db) {
        assert_eq!(
            definition(&mut s, db, &table),
            definition(&mut d, db, &table),
            "definition of {table}"
        );
        assert_same(db, &table, db, &table);
    }
    // The counter is kept, not reset to MAX(id) + 1 = 1151.
    assert!(auto_increment(&mut d, db, "customers") > 1151);
    assert_eq!(
        auto_increment(&mut s, db, "customers"),
        auto_increment(&mut d, db, "customers")
    );

    // The audit trigger did not fire while rows were loaded.
    let audit = format!("SELECT CAST(COUNT(*) AS CHAR) FROM {db}.order_audit");
    assert_eq!(one(&mut d, &audit), "4902");
    assert_eq!(one(&mut s, &audit), one(&mut d, &audit));

    // Views return the same rows and run as INVOKER.
    same_rows(&format!("SELECT * FROM {db}.order_totals ORDER BY country"));
    same_rows(&format!(
        "SELECT * FROM {db}.big_countries ORDER BY country"
    ));
    let mut security: Vec<(String, String)> = d
        .exec(
            "SELECT TABLE_NAME, SECURITY_TYPE FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .expect("views");
    security.sort();
    assert_eq!(
        security,
        [
            ("big_countries".to_string(), "INVOKER".to_string()),
            ("order_totals".to_string(), "INVOKER".to_string())
        ]
    );
    let (_, text, _, _): (String, String, String, String) = d
        .query_first(format!("SHOW CREATE VIEW {db}.big_countries"))
        .expect("show")
        .expect("row");
    assert!(text.contains("SQL SECURITY INVOKER"), "{text}");
    let mut routines: Vec<(String, String, String)> = d
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE, SECURITY_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
            (db,),
        )
        .expect("routines");
    routines.sort();
    assert_eq!(
        routines,
        [
            (
                "order_count".to_string(),
                "FUNCTION".to_string(),
                "INVOKER".to_string()
            ),
            (
                "orders_of".to_string(),
                "PROCEDURE".to_string(),
                "INVOKER".to_string()
            ),
        ]
    );

    // Routines run on the destination and give the source's answers.
    for cid in [5, 17, 1149] {
        let call = format!("CALL {db}.orders_of({cid})");
        let a = strings(&mut s, &call);
        assert!(!a.is_empty());
        assert_eq!(a, strings(&mut d, &call), "{call}");
        let f = format!("SELECT CAST({db}.order_count({cid}) AS CHAR)");
        assert_eq!(one(&mut s, &f), one(&mut d, &f), "{f}");
    }

    // Foreign keys exist with their rules.
    let mut fks: Vec<(String, String, String, String, String)> = d
        .exec(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, DELETE_RULE, UPDATE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY CONSTRAINT_NAME",
            (db,),
        )
        .expect("foreign keys");
    let mut s_fks: Vec<(String, String, String, String, String)> = s
        .exec(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, DELETE_RULE, UPDATE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY CONSTRAINT_NAME",
            (db,),
        )
        .expect("foreign keys");
    fks.sort();
    s_fks.sort();
    assert_eq!(fks, s_fks);
    assert_eq!(
        fks,
        [
            (
                "fk_customer".into(),
                "orders".into(),
                "customers".into(),
                "CASCADE".into(),
                "CASCADE".into()
            ),
            (
                "fk_manager".into(),
                "employees".into(),
                "employees".into(),
                "SET NULL".into(),
                "RESTRICT".into()
            ),
        ]
    );

    // Triggers exist and work on the destination.
    let mut trg: Vec<(String, String, String, String)> = d
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME",
            (db,),
        )
        .expect("triggers");
    trg.sort();
    assert_eq!(
        trg,
        [
            (
                "customers_country".into(),
                "customers".into(),
                "BEFORE".into(),
                "INSERT".into()
            ),
            (
                "orders_audit".into(),
                "orders".into(),
                "AFTER".into(),
                "INSERT".into()
            ),
        ]
    );
    dst_sql(&format!(
        "INSERT INTO {db}.customers (id, name, email, country) VALUES (5000, 'New', 'new@example.com', 'nl');
         INSERT INTO {db}.orders (id, customer_id, total) VALUES (900000, 5000, 1.50);"
    ));
    assert_eq!(
        one(
            &mut d,
            &format!("SELECT country FROM {db}.customers WHERE id = 5000")
        ),
        "NL"
    );
    assert_eq!(
        one(&mut d, &format!("SELECT CAST(COUNT(*) AS CHAR) FROM {db}.order_audit WHERE order_id = 900000 AND note = 'trigger'")),
        "1"
    );

    // Foreign keys are enforced again (a new session has foreign_key_checks = 1).
    let err = d
        .query_drop(format!(
            "INSERT INTO {db}.orders (customer_id, total) VALUES (999999, 1)"
        ))
        .expect_err("an order of a missing customer must be refused");
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1452),
        "{err}"
    );
    let err = d
        .query_drop(format!(
            "INSERT INTO {db}.employees VALUES (99999, 'x', 88888)"
        ))
        .expect_err("a missing manager must be refused");
    assert!(
        matches!(&err, mysql::Error::MySqlError(m) if m.code == 1452),
        "{err}"
    );
    // ON DELETE CASCADE and SET NULL act.
    dst_sql(&format!(
        "DELETE FROM {db}.customers WHERE id = 17; DELETE FROM {db}.employees WHERE id = 1;"
    ));
    assert_eq!(
        one(
            &mut d,
            &format!("SELECT CAST(COUNT(*) AS CHAR) FROM {db}.orders WHERE customer_id = 17")
        ),
        "0"
    );
    assert_eq!(
        one(
            &mut d,
            &format!("SELECT CAST(COUNT(*) AS CHAR) FROM {db}.employees WHERE manager_id IS NULL")
        ),
        "8"
    );
}

#[test]
fn table_selection_moves_no_views_triggers_or_routines() {
    let e = env();
    src_sql(
        "CREATE DATABASE so_part; USE so_part;
         CREATE TABLE t1 (id INT PRIMARY KEY, v INT);
         CREATE TABLE t3 (id INT PRIMARY KEY);
         CREATE TABLE t2 (id INT PRIMARY KEY, t3_id INT, KEY (t3_id), CONSTRAINT fk_t3 FOREIGN KEY (t3_id) REFERENCES t3 (id));
         INSERT INTO t1 SELECT seq, seq FROM seq_1_to_100;
         INSERT INTO t3 SELECT seq FROM seq_1_to_10;
         INSERT INTO t2 SELECT seq, 1 + seq % 10 FROM seq_1_to_100;
         CREATE VIEW v1 AS SELECT id FROM t1;
         CREATE TRIGGER t1_trg BEFORE INSERT ON t1 FOR EACH ROW SET NEW.v = NEW.v + 1;
         CREATE PROCEDURE p1() SELECT 1;
         CREATE FUNCTION f1() RETURNS INT DETERMINISTIC RETURN 1;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [[objects]]\ndatabase = \"so_part\"\ntable = \"t1\"\n\
         [[objects]]\ndatabase = \"so_part\"\ntable = \"t2\"\n",
    );
    t.run_ok();
    let mut d = e.dst();
    assert_eq!(base_tables(&mut d, "so_part"), ["t1", "t2"]);
    let count = |d: &mut mysql::Conn, q: &str| -> u64 {
        d.exec_first(q, ("so_part",)).expect("count").expect("row")
    };
    assert_eq!(
        count(
            &mut d,
            "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?"
        ),
        0
    );
    assert_eq!(
        count(
            &mut d,
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"
        ),
        0
    );
    assert_eq!(
        count(
            &mut d,
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?"
        ),
        0
    );
    // t3 is not selected: the foreign key to it cannot exist; the rest of t2 does.
    assert_eq!(
        count(&mut d, "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?"),
        0
    );
    assert_same("so_part", "t1", "so_part", "t1");
    assert_same("so_part", "t2", "so_part", "t2");
    assert_eq!(
        statistics(&mut e.src(), "so_part", "t2"),
        statistics(&mut d, "so_part", "t2")
    );
}

#[test]
fn deferred_indexes_and_table_options_survive() {
    let e = env();
    src_sql(
        "SET NAMES utf8mb4;
         CREATE DATABASE so_defer; USE so_defer;
         CREATE TABLE counters (
           id INT NOT NULL AUTO_INCREMENT,
           code VARCHAR(40) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL COMMENT 'the code',
           qty INT NOT NULL DEFAULT 0 CHECK (qty >= 0),
           updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
           PRIMARY KEY (id),
           KEY k_qty (qty),
           KEY k_code_qty (code(8), qty DESC)
         ) ENGINE=InnoDB AUTO_INCREMENT=10 COMMENT='counts things';
         INSERT INTO counters (code, qty) SELECT CONCAT('code-', seq), seq % 100 FROM seq_1_to_3000;
         DELETE FROM counters WHERE id > 2900;
         CREATE TABLE docs (
           id INT NOT NULL PRIMARY KEY,
           title VARCHAR(200) NOT NULL,
           body TEXT NOT NULL,
           pos POINT NOT NULL,
           counter_id INT,
           UNIQUE KEY uk_title (title),
           KEY k_title_prefix (title(10)),
           FULLTEXT KEY ft_title_body (title, body),
           FULLTEXT KEY ft_body (body),
           SPATIAL KEY sp_pos (pos),
           KEY k_counter (counter_id),
           CONSTRAINT fk_counter FOREIGN KEY (counter_id) REFERENCES counters (id) ON DELETE SET NULL
         ) ENGINE=InnoDB;
         INSERT INTO docs SELECT seq, CONCAT('Title ', seq), REPEAT(CONCAT('word', seq % 97, ' '), 20), POINT(seq, seq), 10 + seq % 2000
           FROM seq_1_to_2500;
         CREATE TABLE parts (
           id INT NOT NULL,
           created DATE NOT NULL,
           v VARCHAR(20),
           PRIMARY KEY (id, created),
           KEY k_v (v)
         ) ENGINE=InnoDB
         PARTITION BY RANGE (YEAR(created)) (
           PARTITION p2020 VALUES LESS THAN (2021),
           PARTITION p2021 VALUES LESS THAN (2022),
           PARTITION pmax VALUES LESS THAN MAXVALUE
         );
         INSERT INTO parts SELECT seq, '2020-01-01' + INTERVAL seq DAY, CONCAT('v', seq % 13) FROM seq_1_to_3000;
         CREATE TABLE aria_notes (id INT PRIMARY KEY, note TEXT, FULLTEXT KEY ft_note (note), KEY k_note (note(5)))
           ENGINE=Aria COMMENT='not InnoDB';
         INSERT INTO aria_notes SELECT seq, CONCAT('note ', seq) FROM seq_1_to_1500;
         ANALYZE TABLE counters, docs, parts, aria_notes;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 1000\nbatch_rows = 300\ndefer_secondary_indexes = true\n\
         [[objects]]\ndatabase = \"so_defer\"\n",
    );
    t.run_ok();
    let (mut s, mut d) = (e.src(), e.dst());
    let tables = base_tables(&mut s, "so_defer");
    assert_eq!(tables, ["aria_notes", "counters", "docs", "parts"]);
    assert_eq!(tables, base_tables(&mut d, "so_defer"));
    for table in &tables {
        assert_eq!(
            statistics(&mut s, "so_defer", table),
            statistics(&mut d, "so_defer", table),
            "indexes of {table}"
        );
        assert_eq!(
            definition(&mut s, "so_defer", table),
            definition(&mut d, "so_defer", table),
            "definition of {table}"
        );
        assert_same("so_defer", table, "so_defer", table);
    }
    assert!(auto_increment(&mut d, "so_defer", "counters") > 2901);
    assert_eq!(
        auto_increment(&mut s, "so_defer", "counters"),
        auto_increment(&mut d, "so_defer", "counters")
    );
    let parts: Vec<(String, Option<u64>)> = d
        .query(
            "SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS \
             WHERE TABLE_SCHEMA = 'so_defer' AND TABLE_NAME = 'parts' ORDER BY PARTITION_ORDINAL_POSITION",
        )
        .expect("partitions");
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["p2020", "p2021", "pmax"]);
    // The secondary indexes really were created after the load: the CREATE TABLE the
    // destination ran has none of them, a later ALTER TABLE adds them.
    let ddl = destination_binlog("`so_defer`.`docs`");
    let create = ddl
        .iter()
        .position(|s| s.contains("CREATE TABLE"))
        .expect("CREATE TABLE of docs in the binlog");
    assert!(
        !ddl[create].contains("FULLTEXT") && !ddl[create].contains("k_title_prefix"),
        "{}",
        ddl[create]
    );
    assert!(
        ddl[create].contains("uk_title"),
        "unique keys are created with the table: {}",
        ddl[create]
    );
    let alter = ddl
        .iter()
        .position(|s| s.contains("ALTER TABLE") && s.contains("ft_body"))
        .expect("ALTER TABLE of docs");
    assert!(alter > create);
    // Full-text search works on the destination.
    let q =
        "SELECT CAST(COUNT(*) AS CHAR) FROM so_defer.docs WHERE MATCH (body) AGAINST ('word42')";
    assert_eq!(strings(&mut s, q), strings(&mut d, q));
}
