//! Operator safety and operability, against real servers and the real binary: Ctrl-C /
//! SIGTERM stop a copy at a chunk boundary and the resume is exact; one run per task
//! (and a `kill -9`ed run does not block the next); an edited task file is refused;
//! passwords with URL-special characters through `${ENV}`; `status` / `list` / `stop` /
//! `reset`; closed pipes; readable errors.

mod common;

use common::{assert_same, env, spawn, text, TaskDir};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A task over database `db` (copied as `db`_dst), throttled so the copy takes a while.
fn slow_task(db: &str, rows_per_second: u64) -> TaskDir {
    TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 2000\nthreads = 2\nrows_per_second = {rows_per_second}\n\
         [[objects]]\ndatabase = \"{db}\"\nrename = \"{db}_dst\"\n"
    ))
}

/// A source database with one 40 000-row table `big` and a keyless table.
fn big_source(db: &str) {
    env().src_sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; \
         CREATE TABLE {db}.big (id INT PRIMARY KEY, k INT, c CHAR(60)); \
         INSERT INTO {db}.big SELECT seq, seq % 97, REPEAT(CHAR(65 + seq % 26), 60) FROM seq_1_to_40000; \
         CREATE TABLE {db}.keyless (a INT, b VARCHAR(20)); \
         INSERT INTO {db}.keyless SELECT seq, CONCAT('row ', seq) FROM seq_1_to_3000; \
         ANALYZE TABLE {db}.big, {db}.keyless;"
    ));
    env().dst_sql(&format!("DROP DATABASE IF EXISTS {db}_dst"));
}

fn status(t: &TaskDir) -> serde_json::Value {
    serde_json::from_slice(&t.tidemark(&["status", "--json"]).stdout).unwrap_or_default()
}

/// Waits until `cond` holds on the task's `status --json` (the run must still be alive).
fn wait_status(
    t: &TaskDir,
    child: &mut Child,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the run ended before {what}"
        );
        if cond(&status(t)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never {what}: {}", status(t));
}

fn chunks_done(v: &serde_json::Value, table: &str) -> u64 {
    v["tables"]
        .as_array()
        .and_then(|ts| ts.iter().find(|x| x["source"] == table))
        .and_then(|x| x["chunks_done"].as_u64())
        .unwrap_or(0)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn sigterm_mid_copy_stops_at_a_chunk_boundary_and_the_resume_is_exact() {
    let db = "op_sigterm";
    big_source(db);
    let t = slow_task(db, 8000);
    let mut child = spawn(&t, &[]);
    wait_status(&t, &mut child, "a chunk was copied", |v| {
        chunks_done(v, "op_sigterm.big") >= 2 && v["progress"].is_string()
    });
    // While it copies: `running` with its pid, the table `copying`, an overall ETA.
    let human = text(&t.tidemark(&["status"]));
    assert!(
        human.contains(&format!("running (pid {} on host", child.id())),
        "{human}"
    );
    assert!(human.contains("copying"), "{human}");
    assert!(human.contains("ETA"), "{human}");

    signal(&child, libc::SIGTERM);
    let asked = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = asked.elapsed();
    let log = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code of a stopped copy:\n{log}"
    );
    assert!(
        took < Duration::from_secs(15),
        "took {took:?} to stop:\n{log}"
    );
    assert!(log.contains("stopping on SIGTERM"), "{log}");
    assert!(
        log.contains("stopped on request during the full phase")
            && log.contains("continues from there"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a piped log:\n{log}"
    );
    let v = status(&t);
    assert_eq!(v["status"], "stopped", "{v}");
    assert_eq!(v["state"], "stopped", "{v}");
    let done = chunks_done(&v, "op_sigterm.big");
    assert!(done < 20, "the copy ran to the end ({done} chunks done)");
    assert!(text(&t.tidemark(&["status"])).contains("partial"));

    // The resume copies the rest; its count includes what the first run copied.
    let resumed = t.run_ok();
    let log = text(&resumed);
    assert!(log.contains("by earlier runs"), "{log}");
    assert!(!log.contains("ETA - in"), "{log}");
    for table in ["big", "keyless"] {
        assert_same(db, table, &format!("{db}_dst"), table);
    }
    let dst_rows: Vec<u64> = common::strings(
        &mut env().dst(),
        &format!("SELECT COUNT(*) FROM {db}_dst.keyless"),
    )
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(dst_rows, vec![3000]);
    assert_eq!(status(&t)["status"], "completed");
}

#[test]
fn a_second_run_is_refused_and_a_killed_run_does_not_block_the_next() {
    let db = "op_lock";
    big_source(db);
    let t = slow_task(db, 6000);
    let mut first = spawn(&t, &[]);
    wait_status(&t, &mut first, "copying", |v| v["status"] == "full");
    let second = t.tidemark(&["run", "--no-progress"]);
    let log = text(&second);
    assert_eq!(second.status.code(), Some(1), "{log}");
    assert!(
        log.contains("already running") && log.contains(&format!("pid {}", first.id())),
        "{log}"
    );
    // The refused run changed nothing: the first is still copying.
    let v = status(&t);
    assert_eq!(v["status"], "full", "{v}");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["pid"], first.id(), "{v}");

    // kill -9: no cleanup. The task reads as dead, and the next run takes over.
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    let v = status(&t);
    assert_eq!(v["state"], "dead", "{v}");
    assert!(
        text(&t.tidemark(&["status"])).contains("dead: its process"),
        "{v}"
    );
    let log = text(&t.run_ok());
    assert!(log.contains("completed"), "{log}");
    for table in ["big", "keyless"] {
        assert_same(db, table, &format!("{db}_dst"), table);
    }
}

#[test]
fn stop_command_stops_a_running_task_and_verify_stops_on_sigterm() {
    let db = "op_stop";
    big_source(db);
    let t = slow_task(db, 5000);
    let mut child = spawn(&t, &[]);
    wait_status(&t, &mut child, "copying", |v| {
        chunks_done(v, "op_stop.big") >= 1
    });
    let stop = t.tidemark(&["stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(text(&stop).contains("stopped"), "{}", text(&stop));
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let again = t.tidemark(&["stop"]);
    assert!(text(&again).contains("not running"), "{}", text(&again));
    t.run_ok();

    // verify, throttled, stopped between chunks: exit 3 and a line saying so.
    let mut verify = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["verify", "--no-progress", "--rows-per-second", "2000"])
        .arg(&t.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verify");
    std::thread::sleep(Duration::from_millis(1500));
    signal(&verify, libc::SIGTERM);
    let asked = Instant::now();
    let out = loop {
        if verify.try_wait().expect("try_wait").is_some() {
            break verify.wait_with_output().expect("wait");
        }
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "verify did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("verify: stopped on request"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_edited_task_file_is_refused_naming_the_keys_and_reset_starts_over() {
    let db = "op_edit";
    big_source(db);
    env().dst_sql("DROP DATABASE IF EXISTS op_edit_new");
    let t = slow_task(db, 6000);
    let mut child = spawn(&t, &[]);
    wait_status(&t, &mut child, "copying", |v| {
        chunks_done(v, "op_edit.big") >= 1
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(child.wait().expect("wait").code(), Some(3));

    let original = std::fs::read_to_string(&t.file).unwrap();
    let edited = original
        .replace("rename = \"op_edit_dst\"", "rename = \"op_edit_new\"")
        .replace("[migration]\n", "[migration]\nname_case = \"lower\"\n");
    std::fs::write(&t.file, &edited).unwrap();
    let refused = t.tidemark(&["run", "--no-progress"]);
    let log = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(log.contains("the task file changed"), "{log}");
    assert!(
        log.contains("`migration.name_case`") && log.contains("`objects[0].rename`"),
        "{log}"
    );
    assert!(log.contains("tidemark reset"), "{log}");
    assert!(!log.contains("rows_per_second"), "{log}");
    assert_eq!(
        status(&t)["status"],
        "stopped",
        "the refusal changed the state"
    );

    // A safe change (the throttle) is accepted with the original plan.
    std::fs::write(
        &t.file,
        original.replace("rows_per_second = 6000", "rows_per_second = 0"),
    )
    .unwrap();
    t.run_ok();
    assert_same(db, "big", "op_edit_dst", "big");

    // After `reset`, the edited file runs from the start.
    std::fs::write(&t.file, &edited).unwrap();
    let reset = t.tidemark(&["reset"]);
    assert!(reset.status.success(), "{}", text(&reset));
    t.run_ok();
    assert_same(db, "big", "op_edit_new", "big");
}

#[test]
fn reset_table_copies_one_table_again_and_list_shows_tasks() {
    let db = "op_reset";
    big_source(db);
    let t = slow_task(db, 0);
    t.run_ok();
    env().dst_sql("DELETE FROM op_reset_dst.big WHERE id % 10 = 0; INSERT INTO op_reset_dst.keyless VALUES (-1, 'extra')");
    assert!(!t.tidemark(&["verify"]).status.success());

    let unknown = t.tidemark(&["reset", "--table", "op_reset.nope"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("op_reset.big"),
        "{}",
        text(&unknown)
    );
    for table in ["op_reset.big", "op_reset_dst.keyless"] {
        let out = t.tidemark(&["reset", "--table", table]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("emptied on the destination"),
            "{}",
            text(&out)
        );
    }
    let log = text(&t.run_ok());
    assert!(log.contains("completed"), "{log}");
    for table in ["big", "keyless"] {
        assert_same(db, table, "op_reset_dst", table);
    }
    assert!(t.tidemark(&["verify"]).status.success());

    let list = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("list")
        .arg(t.dir.path().join(".tidemark"))
        .output()
        .expect("list");
    let out = text(&list);
    assert!(list.status.success(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("task ") && l.contains("completed")),
        "{out}"
    );
}

/// Runs `tidemark ARGS TASKFILE` with stdout and stderr pipes whose reading ends are
/// closed at once, like `| head` that has read its lines.
fn with_closed_pipes(t: &TaskDir, args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(args)
        .arg(&t.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().expect("wait")
}

#[test]
fn closed_pipes_do_not_panic_or_leave_a_wrong_status() {
    let db = "op_pipe";
    big_source(db);
    let t = slow_task(db, 0);
    let run = with_closed_pipes(&t, &["run", "--no-progress"]);
    assert!(run.success(), "run into closed pipes: {run:?}");
    assert_eq!(status(&t)["status"], "completed");
    assert_same(db, "big", "op_pipe_dst", "big");
    for args in [&["status"][..], &["status", "--json"], &["verify"]] {
        let s = with_closed_pipes(&t, args);
        // 101 is Rust's exit code for a panic.
        assert_ne!(s.code(), Some(101), "{args:?} panicked");
        assert!(s.code().is_some(), "{args:?} died of a signal: {s:?}");
    }
}

#[test]
fn mysql_errors_are_readable() {
    let db = "op_errors";
    env().src_sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, s VARCHAR(50)); INSERT INTO {db}.t VALUES (1, 'far too long for two');"
    ));
    env().dst_sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\non_conflicting_tables = \"ignore\"\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    let out = t.tidemark(&["run", "--no-progress"]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("the server said: ERROR 1054"), "{log}");
    assert!(!log.contains("MySqlError {"), "{log}");
    let v = status(&t);
    let err = v["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("ERROR 1054") && !err.contains("MySqlError"),
        "{v}"
    );
}

/// A password holding every character that means something in a URL, given through
/// `${ENV}`, reaches a real server account intact.
#[test]
fn a_password_with_url_special_characters_through_env() {
    let db = "op_password";
    let password = "p@ss#w/rd:1?2%3+4 &x=y[]!$";
    env().src_sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO {db}.t VALUES (1, 'one'), (2, 'two'); \
         DROP USER IF EXISTS 'op_pw'@'%'; CREATE USER 'op_pw'@'%' IDENTIFIED BY {}; \
         GRANT ALL PRIVILEGES ON *.* TO 'op_pw'@'%';",
        tidemark_core::sql::quote_str(password)
    ));
    env().dst_sql(&format!("DROP DATABASE IF EXISTS {db}"));
    let e = env();
    let t = TaskDir::with_urls(
        &e.pair.source.url_for("op_pw", "${SRC_PW}"),
        &e.pair.destination.url(),
        &format!("[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    )
    .with_env("SRC_PW", password);
    let out: Output = t.run_ok();
    assert!(
        !text(&out).contains(password),
        "the password reached the output"
    );
    assert_same(db, "t", db, "t");
    // A wrong one is refused by the server (the URL is not silently re-read).
    let wrong = TaskDir::with_urls(
        &e.pair.source.url_for("op_pw", "${SRC_PW}"),
        &e.pair.destination.url(),
        &format!("[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    )
    .with_env("SRC_PW", "p@ss#w/rd:1?2%3+4 &x=y[]!");
    let out = wrong.tidemark(&["precheck"]);
    assert!(!out.status.success());
    assert!(
        text(&out).to_lowercase().contains("access denied"),
        "{}",
        text(&out)
    );
}

#[test]
fn sigint_during_the_schema_phase_stops_between_objects_and_the_resume_completes() {
    // Enough tables that creating them takes seconds, so the signal lands mid-phase.
    let db = "op_sigint_schema";
    let tables = 400;
    let mut sql = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};");
    for i in 0..tables {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id INT PRIMARY KEY, a VARCHAR(20), KEY (a)); INSERT INTO t{i} VALUES (1, 'x');"
        ));
    }
    env().src_sql(&sql);
    env().dst_sql(&format!("DROP DATABASE IF EXISTS {db}_dst"));
    let t = slow_task(db, 100_000);
    let mut child = spawn(&t, &[]);
    wait_status(&t, &mut child, "the schema phase", |v| {
        v["status"] == "schema"
    });

    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().expect("wait");
    let log = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code of a stopped schema phase:\n{log}"
    );
    // (The "stopping on Ctrl-C" line comes from the heartbeat thread, every 2 s: a phase
    // that reaches its next object boundary sooner ends before it is written.)
    assert!(
        log.contains("stopped on request during the schema phase, between two objects"),
        "{log}"
    );
    assert_eq!(status(&t)["status"], "stopped");
    let created: usize = common::strings(
        &mut env().dst(),
        &format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}_dst'"),
    )[0]
    .parse()
    .unwrap();
    assert!(
        created < tables,
        "the schema phase ran to the end ({created} tables)"
    );

    // The resume creates the rest (the ones created before the stop are not refused as
    // conflicting: they are the task's own) and copies every row.
    t.run_ok();
    for i in [0, tables / 2, tables - 1] {
        assert_same(db, &format!("t{i}"), &format!("{db}_dst"), &format!("t{i}"));
    }
    assert_eq!(status(&t)["status"], "completed");
}

/// `load_method = "load-data"` against a destination with local_infile = OFF is refused
/// by the precheck, naming the setting and both ways out, before anything is written.
#[test]
fn load_data_without_local_infile_is_refused_by_the_precheck() {
    let e = env();
    let db = "op_local_infile";
    e.src_sql(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY); INSERT INTO {db}.t VALUES (1);"
    ));
    let t = TaskDir::new(&format!(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nload_method = \"load-data\"\n[[objects]]\ndatabase = \"{db}\"\n"
    ));
    // No other test of this binary writes with LOAD DATA, so the switch cannot hurt them.
    struct Restore<'a>(&'a common::Env);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.dst_sql("SET GLOBAL local_infile = ON");
        }
    }
    e.dst_sql("SET GLOBAL local_infile = OFF");
    let _restore = Restore(e);
    let out = t.tidemark(&["run", "--no-progress"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("local-infile")
            && said.contains("local_infile = OFF")
            && said.contains("SET GLOBAL local_infile = ON"),
        "{said}"
    );
    let created: Vec<String> = common::strings(
        &mut e.dst(),
        &format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"),
    );
    assert!(
        created.is_empty(),
        "nothing is created when the precheck fails"
    );
}
