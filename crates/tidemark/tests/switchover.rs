//! Source switchover: the primary the task reads from goes away and its replica becomes
//! the new primary at another address (`[source] failover`). With GTIDs the task
//! continues from its GTID state on the new primary, losing nothing; without GTIDs it
//! fails and says why. This binary starts its own servers (a primary, its replica and a
//! destination), since it stops one of them.

mod common;

use common::text;
use mysql::prelude::Queryable;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tidemark_sandbox::{Options, Server};

fn sql(s: &Server, q: &str) {
    let mut c = s.conn().expect("connect");
    common::run_all(&mut c, q).unwrap_or_else(|e| panic!("{e}\n{q}"));
}

fn checksum(s: &Server, table: &str) -> Option<u64> {
    common::checksum(&mut s.conn().expect("connect"), "sw", table)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

fn write_task(
    dir: &std::path::Path,
    src: &Server,
    failover: &[u16],
    dst: &Server,
    rest: &str,
) -> std::path::PathBuf {
    let file = dir.join("task.toml");
    let failover: Vec<String> = failover
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    std::fs::write(
        &file,
        format!(
            "[source]\nurl = \"{}\"\nfailover = [{}]\n[destination]\nurl = \"{}\"\n{rest}",
            src.url(),
            failover.join(", "),
            dst.url()
        ),
    )
    .expect("write task");
    file
}

fn spawn(file: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark")
}

#[test]
fn switchover_to_a_new_primary_by_gtid() {
    let primary = Server::start(&Options {
        server_id: 11,
        ..Options::default()
    })
    .expect("primary");
    let replica = Server::start(&Options {
        server_id: 12,
        extra_args: vec!["--log-slave-updates=ON".into()],
        ..Options::default()
    })
    .expect("replica");
    let dst = Server::start(&Options {
        server_id: 13,
        ..Options::default()
    })
    .expect("destination");
    sql(
        &primary,
        "CREATE DATABASE sw; USE sw; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000;",
    );
    sql(
        &replica,
        &format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', MASTER_USE_GTID = slave_pos; START SLAVE;",
            primary.port
        ),
    );
    wait_until("the replica", Duration::from_secs(60), || {
        checksum(&primary, "t") == checksum(&replica, "t")
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let task = write_task(
        dir.path(),
        &primary,
        &[replica.port],
        &dst,
        "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[advanced]\nretry_connection_minutes = 10\nretry_other_minutes = 1\n[[objects]]\ndatabase = \"sw\"\n",
    );
    let child = spawn(&task);
    sql(&primary, "USE sw; INSERT INTO t SELECT seq, 'before' FROM seq_1001_to_1500; UPDATE t SET v = 'u1' WHERE id <= 10;");
    // Equal ends are not enough (the copy may have taken those rows): the task must be
    // reading the binlog before the primary goes away.
    let streaming = || {
        let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["status", "--json"])
            .arg(&task)
            .output()
            .expect("status");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"] == "incremental" && v["status_pid"] == child.id()
    };
    wait_until(
        "the destination before the switchover",
        Duration::from_secs(60),
        || {
            streaming()
                && checksum(&primary, "t") == checksum(&dst, "t")
                && checksum(&primary, "t") == checksum(&replica, "t")
        },
    );

    // The primary goes away; its replica is promoted and takes writes.
    primary.stop().expect("stop the primary");
    sql(&replica, "STOP SLAVE; RESET SLAVE ALL;");
    sql(&replica, "USE sw; INSERT INTO t SELECT seq, 'after' FROM seq_1501_to_2000; DELETE FROM t WHERE id <= 5;");
    let caught_up = {
        let started = Instant::now();
        let mut ok = false;
        while started.elapsed() < Duration::from_secs(90) {
            if checksum(&replica, "t") == checksum(&dst, "t") {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        ok
    };
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let log = text(&out);
    assert!(
        caught_up,
        "the destination did not follow the new primary:\n{log}"
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("new primary"), "{log}");
}

#[test]
fn another_server_without_gtid_fails_clearly() {
    let a = Server::start(&Options {
        server_id: 21,
        ..Options::default()
    })
    .expect("server a");
    let b = Server::start(&Options {
        server_id: 22,
        ..Options::default()
    })
    .expect("server b");
    let dst = Server::start(&Options {
        server_id: 23,
        ..Options::default()
    })
    .expect("destination");
    for s in [&a, &b, &dst] {
        sql(
            s,
            "CREATE DATABASE sw; USE sw; CREATE TABLE t (id INT PRIMARY KEY);",
        );
    }
    let pos: Option<mysql::Row> = a.conn().unwrap().query_first("SHOW MASTER STATUS").unwrap();
    let pos = pos.unwrap();
    let (file, offset): (String, u64) = (pos.get(0).unwrap(), pos.get(1).unwrap());
    sql(&a, "INSERT INTO sw.t VALUES (1)");
    let dir = tempfile::tempdir().expect("tempdir");
    let rest = format!(
        "[migration]\ntypes = [\"incremental\"]\nstart_position = \"{file}:{offset}\"\n[[objects]]\ndatabase = \"sw\"\n"
    );
    let task = write_task(dir.path(), &a, &[], &dst, &rest);
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress", "--stop-when-caught-up"])
        .arg(&task)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    // The same task now pointed at another server: no GTID position to continue from.
    let task = write_task(dir.path(), &b, &[], &dst, &rest);
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--no-progress", "--stop-when-caught-up"])
        .arg(&task)
        .output()
        .expect("run");
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("no GTID position to continue from"), "{log}");
}
