//! Bad input: each case ends in a clear error naming the problem and the fix, a non-zero
//! exit, and nothing written to the destination.

mod common;

use common::{env, text, TaskDir};
use mysql::prelude::Queryable;

fn dst_has_database(db: &str) -> bool {
    let n: Option<String> = env()
        .dst()
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (db,),
        )
        .expect("query");
    n.is_some()
}

/// Runs `tidemark run`, expects failure whose output contains every `needle`.
fn expect_failure(task: &TaskDir, needles: &[&str]) -> String {
    let out = task.tidemark(&["run", "--no-progress"]);
    let t = text(&out);
    assert!(!out.status.success(), "expected failure, got success:\n{t}");
    for n in needles {
        assert!(t.contains(n), "expected {n:?} in:\n{t}");
    }
    t
}

const OBJECTS: &str =
    "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\n";

fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        env().src_sql(
            "CREATE DATABASE IF NOT EXISTS bad_src; \
             CREATE TABLE IF NOT EXISTS bad_src.t1 (id INT PRIMARY KEY, v INT); \
             CREATE TABLE IF NOT EXISTS bad_src.t2 (id INT PRIMARY KEY, v INT); \
             INSERT IGNORE INTO bad_src.t1 VALUES (1, 1), (2, 2);",
        );
    });
}

#[test]
fn malformed_toml_names_the_line() {
    let t = TaskDir::raw("[source]\nurl = \"mysql://x@h\"\n[destination\n");
    expect_failure(&t, &["invalid task file", "line 3"]);
}

#[test]
fn unknown_key_is_named_with_allowed_keys() {
    let t = TaskDir::new(&format!("{OBJECTS}colour = \"blue\"\n"));
    expect_failure(&t, &["unknown field `colour`", "line", "expected one of"]);
}

#[test]
fn invalid_value_lists_allowed_values() {
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"everything\"]\n[[objects]]\ndatabase = \"bad_src\"\n",
    );
    expect_failure(
        &t,
        &["unknown variant `everything`", "schema", "incremental"],
    );
}

#[test]
fn wrong_password_is_access_denied_and_secret_stays_secret() {
    setup();
    let e = env();
    let url = e.pair.source.url_for("root", "Hunter2-secret");
    let t = TaskDir::with_urls(
        &url,
        &e.pair.destination.url(),
        &OBJECTS.replace("bad_src\"", "bad_src\"\nrename = \"bad_pw\""),
    );
    let out = expect_failure(&t, &["access denied", "source.url"]);
    assert!(
        !out.contains("Hunter2-secret"),
        "the password leaked into the output:\n{out}"
    );
    let state = std::fs::read(t.state_db()).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&state).contains("Hunter2-secret"),
        "the password leaked into the state store"
    );
    assert!(!dst_has_database("bad_pw"));
}

#[test]
fn unreachable_host_says_cannot_connect() {
    let e = env();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let t = TaskDir::with_urls(
        &format!("mysql://root@127.0.0.1:{port}"),
        &e.pair.destination.url(),
        OBJECTS,
    );
    expect_failure(&t, &["cannot connect", "host and port"]);
}

#[test]
fn missing_privilege_is_named_with_the_grant_to_run() {
    setup();
    let e = env();
    e.src_sql(
        "CREATE USER IF NOT EXISTS 'lowpriv'@'127.0.0.1' IDENTIFIED BY 'pw-lowpriv'; \
         GRANT SELECT ON bad_src.t1 TO 'lowpriv'@'127.0.0.1';",
    );
    let url = e.pair.source.url_for("lowpriv", "pw-lowpriv");
    let rest = "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\nrename = \"bad_priv\"\n";
    let out = expect_failure(
        &TaskDir::with_urls(&url, &e.pair.destination.url(), rest),
        &["source-privileges", "SELECT on `bad_src`.*", "GRANT"],
    );
    assert!(!out.contains("pw-lowpriv"));
    assert!(!dst_has_database("bad_priv"));
}

#[test]
fn incremental_checks_replication_privileges() {
    setup();
    let e = env();
    e.src_sql(
        "CREATE USER IF NOT EXISTS 'norepl'@'127.0.0.1' IDENTIFIED BY 'pw'; \
         GRANT SELECT ON bad_src.* TO 'norepl'@'127.0.0.1';",
    );
    let url = e.pair.source.url_for("norepl", "pw");
    let rest = "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"bad_src\"\nrename = \"bad_repl\"\n";
    let t = TaskDir::with_urls(&url, &e.pair.destination.url(), rest);
    let out = t.tidemark(&["precheck", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("precheck --json is JSON");
    let items = report["items"].as_array().expect("items");
    let privs = items
        .iter()
        .find(|i| i["id"] == "source-privileges")
        .expect("source-privileges item");
    assert_eq!(privs["status"], "failure");
    assert!(
        privs["detail"]
            .as_str()
            .unwrap_or("")
            .contains("REPLICATION SLAVE"),
        "{privs}"
    );
    // The sandbox source has ROW/FULL binlogs: those items pass.
    assert!(
        items
            .iter()
            .filter(|i| i["id"] == "binlog")
            .all(|i| i["status"] == "pass"),
        "{report}"
    );
}

#[test]
fn missing_database_and_table_are_named() {
    setup();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"no_such_db\"\n",
    );
    expect_failure(&t, &["database `no_such_db` does not exist"]);
    let t = TaskDir::new("[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\ntable = \"nope\"\nrename = \"bad_nope\"\n");
    expect_failure(&t, &["table `bad_src`.`nope` does not exist"]);
    assert!(!dst_has_database("no_such_db"));
}

#[test]
fn where_rejected_by_the_source_is_reported() {
    setup();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\ntable = \"t1\"\nwhere = \"no_such_column > 3\"\n",
    );
    expect_failure(&t, &["rejects the `where` of bad_src.t1", "no_such_column"]);
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\ntable = \"t1\"\nwhere = \"id > 1; DROP TABLE t1\"\n",
    );
    expect_failure(&t, &["invalid `where`", "';' is not allowed"]);
}

#[test]
fn conflicting_table_fails_in_fail_mode_and_is_kept_in_ignore_mode() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE IF NOT EXISTS conf_src; CREATE TABLE IF NOT EXISTS conf_src.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         REPLACE INTO conf_src.t VALUES (1, 'src'), (2, 'src'), (3, 'src');",
    );
    e.dst_sql(
        "CREATE DATABASE IF NOT EXISTS conf_src; CREATE TABLE IF NOT EXISTS conf_src.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         REPLACE INTO conf_src.t VALUES (1, 'dst');",
    );
    let objects = "[[objects]]\ndatabase = \"conf_src\"\n";
    let fail = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\n{objects}"
    ));
    expect_failure(
        &fail,
        &["conflicting-tables", "conf_src.t", "on_conflicting_tables"],
    );
    let ignore = TaskDir::new(&format!("[migration]\ntypes = [\"schema\", \"full\"]\non_conflicting_tables = \"ignore\"\n{objects}"));
    ignore.run_ok();
    let rows: Vec<(i32, String)> = e
        .dst()
        .query("SELECT id, v FROM conf_src.t ORDER BY id")
        .expect("rows");
    assert_eq!(
        rows,
        vec![(1, "dst".into()), (2, "src".into()), (3, "src".into())]
    );
}

#[test]
fn column_subset_without_key_is_refused() {
    setup();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\ntable = \"t1\"\ncolumns = [\"v\"]\n",
    );
    expect_failure(&t, &["leaves out key column(s) id"]);
}

#[test]
fn invalid_destination_name_is_refused() {
    setup();
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"bad_src\"\nrename = \"ends with space \"\n",
    );
    expect_failure(
        &t,
        &[
            "destination-names",
            "\"ends with space \"",
            "not end with a space",
        ],
    );
    assert!(!dst_has_database("ends with space "));
}

#[test]
fn tls_required_against_a_server_without_tls_is_explained() {
    setup();
    let e = env();
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\ntls = \"required\"\n[destination]\nurl = \"{}\"\n{OBJECTS}",
        e.pair.source.url(),
        e.pair.destination.url()
    ));
    expect_failure(&t, &["does not offer TLS", "source.tls"]);
}

#[test]
fn sequences_are_named_as_not_migrated() {
    let e = env();
    e.src_sql("CREATE DATABASE seq_src; CREATE SEQUENCE seq_src.s; CREATE TABLE seq_src.t (id INT PRIMARY KEY);");
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"seq_src\"\n",
    );
    let out = t.tidemark(&["precheck"]);
    let report = text(&out);
    assert!(
        out.status.success(),
        "a warning does not fail the precheck:\n{report}"
    );
    assert!(
        report.contains("WARN") && report.contains("seq_src.s (SEQUENCE)"),
        "{report}"
    );
}

#[test]
fn a_destination_that_would_truncate_fails_instead_of_changing_data() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE trunc_src; CREATE TABLE trunc_src.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO trunc_src.t VALUES (1, 'short'), (2, 'much too long for it');",
    );
    e.dst_sql(
        "CREATE DATABASE trunc_src; CREATE TABLE trunc_src.t (id INT PRIMARY KEY, v VARCHAR(5));",
    );
    for method in ["load-data", "insert"] {
        e.dst_sql("DELETE FROM trunc_src.t");
        let t = TaskDir::new(&format!(
            "[migration]\ntypes = [\"schema\", \"full\"]\non_conflicting_tables = \"ignore\"\n\
             [full]\nload_method = \"{method}\"\n[[objects]]\ndatabase = \"trunc_src\"\n"
        ));
        let out = expect_failure(&t, &["trunc_src"]);
        assert!(
            out.contains("Data too long") || out.contains("truncated"),
            "{method}: {out}"
        );
        let n: Option<u64> = e
            .dst()
            .query_first("SELECT COUNT(*) FROM trunc_src.t")
            .expect("count");
        assert_eq!(
            n,
            Some(0),
            "{method}: the failed chunk must leave nothing behind"
        );
    }
}
