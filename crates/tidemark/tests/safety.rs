//! Operator safety: privileges that hide objects, precheck items for the mistakes
//! operators make (colliding destinations, heartbeat privileges, the source's own
//! server_id, a source without a binary log), and `verify --repair` / `--emit-sql`
//! applying exactly what they say.

mod common;

use common::{assert_same, env, text, TaskDir};
use mysql::prelude::Queryable;
use std::process::{Command, Stdio};

fn precheck(t: &TaskDir) -> (bool, String) {
    let out = t.tidemark(&["precheck"]);
    (out.status.success(), text(&out))
}

fn count(c: &mut mysql::Conn, q: &str) -> u64 {
    c.query_first(q).expect(q).unwrap_or(0)
}

// ---- privileges (item 3) -------------------------------------------------------------

#[test]
fn a_user_without_trigger_privilege_is_refused_and_verify_says_what_it_cannot_see() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE priv_src; USE priv_src;
         CREATE TABLE t (id INT PRIMARY KEY, v INT);
         CREATE TABLE log (n INT);
         CREATE TRIGGER t_log AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.v);
         INSERT INTO t VALUES (1, 1), (2, 2);
         CREATE USER 'notrig'@'127.0.0.1' IDENTIFIED BY 'pw-notrig';
         GRANT SELECT, SHOW VIEW ON priv_src.* TO 'notrig'@'127.0.0.1';
         GRANT SELECT ON mysql.proc TO 'notrig'@'127.0.0.1';",
    );
    let rest =
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"priv_src\"\n";
    let limited = TaskDir::with_urls(
        &e.pair.source.url_for("notrig", "pw-notrig"),
        &e.pair.destination.url(),
        rest,
    );
    let (ok, report) = precheck(&limited);
    assert!(!ok, "the precheck must fail:\n{report}");
    assert!(
        report.contains("source-object-privileges")
            && report.contains("triggers of `priv_src`")
            && report.contains("GRANT TRIGGER ON `priv_src`.*"),
        "{report}"
    );
    // Nothing written.
    let dbs: Vec<String> = e.dst().query("SHOW DATABASES LIKE 'priv_src'").unwrap();
    assert!(dbs.is_empty());

    // Migrated by an account that sees everything, then the destination loses the
    // trigger: verify by the limited account cannot list triggers, and says so.
    TaskDir::new(rest).run_ok();
    e.dst_sql("DROP TRIGGER priv_src.t_log");
    let out = limited.tidemark(&["verify", "--no-progress"]);
    let log = text(&out);
    assert!(
        !out.status.success(),
        "verify must not call this equal:\n{log}"
    );
    assert!(
        log.contains("not compared: triggers") && log.contains("TRIGGER ON `priv_src`.*"),
        "{log}"
    );
    // With the privilege, the missing trigger is found by name.
    e.src_sql("GRANT TRIGGER ON priv_src.* TO 'notrig'@'127.0.0.1';");
    let log = text(&limited.tidemark(&["verify", "--no-progress"]));
    assert!(log.contains("trigger t_log"), "{log}");
}

// ---- precheck gaps (item 9) ----------------------------------------------------------

#[test]
fn two_objects_mapped_to_one_destination_table_fail_the_precheck() {
    env().src_sql(
        "CREATE DATABASE col_a; CREATE TABLE col_a.t (id INT PRIMARY KEY);
         CREATE DATABASE col_b; CREATE TABLE col_b.t (id INT PRIMARY KEY);",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [[objects]]\ndatabase = \"col_a\"\nrename = \"col_dst\"\n\
         [[objects]]\ndatabase = \"col_b\"\nrename = \"col_dst\"\n",
    );
    let (ok, report) = precheck(&t);
    assert!(!ok, "{report}");
    assert!(
        report.contains("destination-collisions")
            && report.contains("col_a.t and col_b.t → col_dst.t")
            && report.contains("rename"),
        "{report}"
    );
}

#[test]
fn heartbeat_privileges_are_checked_before_anything_is_copied() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE hb_src; CREATE TABLE hb_src.t (id INT PRIMARY KEY);
         CREATE USER 'nohb'@'127.0.0.1' IDENTIFIED BY 'pw-nohb';
         GRANT SELECT, SHOW VIEW, TRIGGER ON hb_src.* TO 'nohb'@'127.0.0.1';
         GRANT SELECT ON mysql.proc TO 'nohb'@'127.0.0.1';
         GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'nohb'@'127.0.0.1';",
    );
    let rest = "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
                [advanced]\nheartbeat = true\n\
                [[objects]]\ndatabase = \"hb_src\"\n";
    let t = TaskDir::with_urls(
        &e.pair.source.url_for("nohb", "pw-nohb"),
        &e.pair.destination.url(),
        rest,
    );
    let (ok, report) = precheck(&t);
    assert!(!ok, "{report}");
    assert!(
        report.contains("CREATE on `tidemark_heartbeat`.*")
            && report.contains("DELETE on `tidemark_heartbeat`.*")
            && report.contains("advanced.heartbeat"),
        "{report}"
    );
    e.src_sql("GRANT CREATE, INSERT, DELETE ON tidemark_heartbeat.* TO 'nohb'@'127.0.0.1';");
    let (_, report) = precheck(&t);
    assert!(
        report.contains("PASS source-privileges"),
        "granted, the item passes:\n{report}"
    );
}

#[test]
fn the_sources_own_server_id_fails_the_precheck() {
    let e = env();
    e.src_sql("CREATE DATABASE sid_src; CREATE TABLE sid_src.t (id INT PRIMARY KEY);");
    let own: u32 = e.src().query_first("SELECT @@server_id").unwrap().unwrap();
    let file = |id: u32| {
        format!(
            "[source]\nurl = \"{}\"\nserver_id = {id}\n[destination]\nurl = \"{}\"\n\
             [migration]\ntypes = [\"incremental\"]\n[[objects]]\ndatabase = \"sid_src\"\n",
            e.pair.source.url(),
            e.pair.destination.url()
        )
    };
    let (ok, report) = precheck(&TaskDir::raw(&file(own)));
    assert!(!ok, "{report}");
    assert!(
        report.contains("FAIL server-id") && report.contains("source.server_id"),
        "{report}"
    );
    let (_, report) = precheck(&TaskDir::raw(&file(own + 1000)));
    assert!(report.contains("PASS server-id"), "{report}");
}

#[test]
fn a_source_without_binlog_gets_the_right_advice() {
    let e = env();
    let source = tidemark_sandbox::Server::start(&tidemark_sandbox::Options {
        binlog: false,
        server_id: 9,
        ..Default::default()
    })
    .expect("start a MariaDB server without binlog");
    let mut c = source.conn().expect("connect");
    common::script(
        &mut c,
        "CREATE DATABASE nobin; CREATE TABLE nobin.t (id INT PRIMARY KEY);",
    );
    let t = TaskDir::with_urls(
        &source.url(),
        &e.pair.destination.url(),
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"nobin\"\n",
    );
    let (ok, report) = precheck(&t);
    assert!(!ok, "{report}");
    assert!(
        report.contains("log_bin = mysql-bin")
            && report.contains("base name")
            && report.contains("server_id = ")
            && !report.contains("log_bin=ON"),
        "{report}"
    );
}

// ---- verify --repair and --emit-sql (item 6) -----------------------------------------

#[test]
fn repair_does_not_fire_destination_triggers() {
    let e = env();
    e.src_sql(
        "CREATE DATABASE rep_trg; USE rep_trg;
         CREATE TABLE t (id INT PRIMARY KEY, v INT);
         CREATE TABLE audit (n INT);
         CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
         CREATE TRIGGER t_del AFTER DELETE ON t FOR EACH ROW INSERT INTO audit VALUES (-OLD.id);
         INSERT INTO t SELECT seq, seq FROM seq_1_to_20;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"rep_trg\"\n",
    );
    let out = t.tidemark(&["run", "--no-progress", "--stop-when-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same("rep_trg", "audit", "rep_trg", "audit");
    // Differences made without firing the (guarded) triggers: a changed row, a missing
    // row, an extra row.
    e.dst_sql(
        "SET @tidemark_apply = 1; USE rep_trg;
         UPDATE t SET v = 99 WHERE id = 1; DELETE FROM t WHERE id = 2; INSERT INTO t VALUES (100, 100);",
    );
    let out = t.tidemark(&["verify", "--no-progress", "--repair"]);
    let log = text(&out);
    assert!(log.contains("rows repaired"), "{log}");
    // Equal afterwards, the audit table included: no trigger fired for the repair.
    let out = t.tidemark(&["verify", "--no-progress"]);
    assert!(
        out.status.success(),
        "differences after the repair:\n{}",
        text(&out)
    );
    assert_same("rep_trg", "t", "rep_trg", "t");
    assert_same("rep_trg", "audit", "rep_trg", "audit");

    // A trigger Tidemark did not create (unguarded) would fire: the table is not repaired.
    e.dst_sql(
        "USE rep_trg; CREATE TRIGGER mine AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (0);
         SET @tidemark_apply = 1; DELETE FROM t WHERE id = 3;",
    );
    let out = t.tidemark(&["verify", "--no-progress", "--repair"]);
    let log = text(&out);
    assert!(
        !out.status.success() && log.contains("not repaired") && log.contains("mine"),
        "{log}"
    );
    assert_eq!(
        count(&mut e.dst(), "SELECT COUNT(*) FROM rep_trg.t WHERE id = 3"),
        0
    );
}

/// Applies a file with the `mariadb` client to the shared destination, as a user would.
fn apply_with_client(file: &std::path::Path) -> std::process::Output {
    let port = env().pair.destination.port.to_string();
    Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &port, "-u", "root"])
        .stdin(std::fs::File::open(file).expect("open emitted SQL"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the mariadb client")
}

#[test]
fn emitted_sql_applies_exactly_with_the_client_or_not_at_all() {
    let e = env();
    // The source runs at +05:30 and the destination at -08:00: a TIMESTAMP written
    // without the file's time zone would move.
    e.src_sql(
        "CREATE DATABASE emit_src; USE emit_src;
         CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(40) CHARACTER SET utf8mb4, l VARCHAR(20) CHARACTER SET latin1, ts TIMESTAMP(6) NULL);
         CREATE TABLE u (id INT PRIMARY KEY, s VARCHAR(20));
         INSERT INTO t VALUES (1, 'plain', 'abc', '2024-03-10 12:00:00.123456'),
                              (2, 'emoji 🐟🌊 ok', 'café', '2038-01-19 03:14:07.5'),
                              (3, 'quote '' and \\\\ backslash', NULL, '1999-12-31 23:59:59');
         INSERT INTO u VALUES (1, 'one'), (2, 'a longer value');",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"emit_src\"\n",
    );
    t.run_ok();
    assert_same("emit_src", "t", "emit_src", "t");
    e.dst_sql(
        "USE emit_src; DELETE FROM t WHERE id = 2; UPDATE t SET ts = NOW(), s = 'x' WHERE id = 1;
         INSERT INTO t VALUES (9, 'extra', NULL, NULL); DELETE FROM u;",
    );
    let file = t.dir.path().join("repair.sql");
    let out = t.tidemark(&[
        "verify",
        "--no-progress",
        "--emit-sql",
        file.to_str().unwrap(),
    ]);
    assert!(text(&out).contains("statements written"), "{}", text(&out));
    let sql = std::fs::read_to_string(&file).expect("read emitted SQL");
    assert!(
        sql.contains("SET NAMES binary")
            && sql.contains("time_zone = '+00:00'")
            && sql.contains("START TRANSACTION;")
            && sql.trim_end().ends_with("COMMIT;"),
        "{sql}"
    );

    // Not at all: a statement the destination rejects (u.s shortened so a row no
    // longer fits) stops the client, and the transaction takes everything back.
    e.dst_sql("ALTER TABLE emit_src.u MODIFY s VARCHAR(5)");
    let out = apply_with_client(&file);
    assert!(!out.status.success(), "the client should stop at the error");
    assert_eq!(
        count(&mut e.dst(), "SELECT COUNT(*) FROM emit_src.t WHERE id = 9"),
        1,
        "the DELETE of the extra row must have been rolled back"
    );
    assert_eq!(count(&mut e.dst(), "SELECT COUNT(*) FROM emit_src.u"), 0);

    // Exactly: applied in full, both tables are equal to the source.
    e.dst_sql("ALTER TABLE emit_src.u MODIFY s VARCHAR(20)");
    let out = apply_with_client(&file);
    assert!(out.status.success(), "{}", text(&out));
    assert_same("emit_src", "t", "emit_src", "t");
    assert_same("emit_src", "u", "emit_src", "u");
    let out = t.tidemark(&["verify", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
}
