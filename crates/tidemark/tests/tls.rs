//! TLS that users can verify: a source and a destination with certificates from a CA
//! this binary makes (`tidemark_sandbox::tls`), reached with `verify-ca` and
//! `verify-identity`, client certificates for `REQUIRE X509` accounts, and errors that
//! say what to do. The task's account on both servers `REQUIRE SSL`, so every
//! connection a task opens (precheck, schema, snapshot, binlog, apply) must be TLS.
//!
//! The source's certificate names 127.0.0.1 and localhost; the destination's names only
//! `db.example.internal`, so `verify-identity` to it fails while `verify-ca` passes.

mod common;

use common::{checksum, run_all, text, TaskDir};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tidemark_sandbox::tls::{server_args, Issued, TestCa};
use tidemark_sandbox::{Options, Pair, Server};

struct Env {
    pair: Pair,
    ca: PathBuf,
    client: Issued,
    _dir: tempfile::TempDir,
}

/// The account tasks use: TLS required on both servers.
const USER: &str = "tls_task";
/// An account that also needs a client certificate signed by the CA.
const X509_USER: &str = "tls_x509";
const OTHER_NAME: &str = "db.example.internal";

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "Tidemark test CA").expect("make the test CA");
        let source_cert = ca
            .issue("source", &["127.0.0.1", "localhost"])
            .expect("issue the source's certificate");
        let destination_cert = ca
            .issue(OTHER_NAME, &[OTHER_NAME])
            .expect("issue the destination's certificate");
        let client = ca
            .issue("tidemark client", &["tidemark-client"])
            .expect("issue the client certificate");
        let pair = Pair::start_with(
            Options {
                extra_args: server_args(&ca, &source_cert),
                ..Options::default()
            },
            Options {
                server_id: 2,
                extra_args: server_args(&ca, &destination_cert),
                ..Options::default()
            },
        )
        .expect("start MariaDB servers with TLS");
        for server in [&pair.source, &pair.destination] {
            sql(
                server,
                &format!(
                    "CREATE USER {USER}@'%' IDENTIFIED BY 'pw' REQUIRE SSL; GRANT ALL ON *.* TO {USER}@'%'; \
                     CREATE USER {X509_USER}@'%' IDENTIFIED BY 'pw' REQUIRE X509; GRANT ALL ON *.* TO {X509_USER}@'%';"
                ),
            );
        }
        Env {
            pair,
            ca: ca.cert.clone(),
            client,
            _dir: dir,
        }
    })
}

fn sql(s: &Server, q: &str) {
    let mut c = s.conn().expect("connect");
    run_all(&mut c, q).unwrap_or_else(|e| panic!("{e}\n{q}"));
}

/// A task file for `user` with the given `[source]` and `[destination]` TLS keys.
fn task(user: &str, source_tls: &str, destination_tls: &str, rest: &str) -> TaskDir {
    let e = env();
    TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n{source_tls}\n[destination]\nurl = \"{}\"\n{destination_tls}\n{rest}",
        e.pair.source.url_for(user, "pw"),
        e.pair.destination.url_for(user, "pw"),
    ))
}

fn ca_line(tls: &str) -> String {
    format!("tls = \"{tls}\"\ntls_ca = \"{}\"", env().ca.display())
}

fn objects(db: &str, types: &str) -> String {
    format!("[migration]\ntypes = [{types}]\n[[objects]]\ndatabase = \"{db}\"\n")
}

fn database_exists(s: &Server, db: &str) -> bool {
    let mut c = s.conn().expect("connect");
    let names: Vec<String> = mysql::prelude::Queryable::query(&mut c, "SHOW DATABASES").unwrap();
    names.iter().any(|n| n == db)
}

#[test]
fn verified_connections_copy_and_stream() {
    let e = env();
    sql(
        &e.pair.source,
        "CREATE DATABASE tls_all; USE tls_all; CREATE TABLE tls_all.t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO tls_all.t SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000;",
    );
    let t = task(
        USER,
        &ca_line("verify-identity"),
        &ca_line("verify-ca"),
        &objects("tls_all", "\"schema\", \"full\", \"incremental\""),
    );
    let out = t.tidemark(&["precheck"]);
    assert!(out.status.success(), "precheck failed:\n{}", text(&out));
    let mut child = common::spawn(&t, &[]);
    common::wait_incremental(&t, &mut child);
    // Changes after the copy arrive through the (verified) binlog connection.
    sql(
        &e.pair.source,
        "INSERT INTO tls_all.t SELECT seq, 'late' FROM tls_all.seq_3001_to_3100; \
         UPDATE tls_all.t SET v = 'changed' WHERE id <= 10; DELETE FROM tls_all.t WHERE id = 20;",
    );
    let started = Instant::now();
    loop {
        let a = checksum(&mut e.pair.source.conn().unwrap(), "tls_all", "t");
        let b = checksum(&mut e.pair.destination.conn().unwrap(), "tls_all", "t");
        if a.is_some() && a == b {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the destination did not catch up ({a:?} vs {b:?})"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    common::stop(child);
    // verify opens its own connections to both ends, through the same TLS settings.
    let out = t.tidemark(&["verify", "--no-progress"]);
    let log = text(&out);
    assert!(out.status.success(), "verify over TLS failed:\n{log}");
    assert!(log.contains("equal") && !log.contains("DIFFERENT"), "{log}");
}

#[test]
fn an_untrusted_ca_fails_the_precheck_with_the_fix() {
    let e = env();
    sql(
        &e.pair.source,
        "CREATE DATABASE tls_untrusted; CREATE TABLE tls_untrusted.t (id INT PRIMARY KEY); \
         INSERT INTO tls_untrusted.t VALUES (1);",
    );
    for mode in ["verify-ca", "verify-identity"] {
        let t = task(
            USER,
            &format!("tls = \"{mode}\""),
            &ca_line("verify-ca"),
            &objects("tls_untrusted", "\"schema\", \"full\""),
        );
        for args in [&["precheck"][..], &["run", "--no-progress"]] {
            let out = t.tidemark(args);
            let log = text(&out);
            assert!(
                !out.status.success(),
                "{args:?} passed without the CA:\n{log}"
            );
            assert!(
                log.contains("signed by a CA Tidemark does not trust")
                    && log.contains("source.tls_ca = "),
                "{mode}: the advice is missing:\n{log}"
            );
            assert!(
                !log.contains("CodecError") && !log.contains("UnknownIssuer"),
                "{log}"
            );
        }
    }
    assert!(
        !database_exists(&e.pair.destination, "tls_untrusted"),
        "something was written although the precheck failed"
    );
    // A CA in the system trust store (here through SSL_CERT_FILE) is trusted too.
    let t = task(
        USER,
        "tls = \"verify-identity\"",
        &ca_line("verify-ca"),
        &objects("tls_untrusted", "\"schema\", \"full\""),
    )
    .with_env("SSL_CERT_FILE", &e.ca.display().to_string());
    let out = t.tidemark(&["precheck"]);
    assert!(
        out.status.success(),
        "the system trust store was not used:\n{}",
        text(&out)
    );
}

#[test]
fn a_certificate_for_another_name() {
    let e = env();
    sql(&e.pair.source, "CREATE DATABASE tls_name;");
    let identity = task(
        USER,
        &ca_line("verify-ca"),
        &ca_line("verify-identity"),
        &objects("tls_name", "\"schema\""),
    );
    let out = identity.tidemark(&["precheck"]);
    let log = text(&out);
    assert!(!out.status.success(), "verify-identity passed:\n{log}");
    assert!(
        log.contains(OTHER_NAME) && log.contains("\"127.0.0.1\"") && log.contains("verify-ca"),
        "the error should name both names:\n{log}"
    );
    let ca_only = task(
        USER,
        &ca_line("verify-ca"),
        &ca_line("verify-ca"),
        &objects("tls_name", "\"schema\""),
    );
    let out = ca_only.tidemark(&["precheck"]);
    assert!(out.status.success(), "verify-ca failed:\n{}", text(&out));
}

#[test]
fn x509_accounts_need_a_client_certificate() {
    let e = env();
    sql(
        &e.pair.source,
        "CREATE DATABASE tls_x509; USE tls_x509; CREATE TABLE tls_x509.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO tls_x509.t SELECT seq, REPEAT('x', seq % 50) FROM seq_1_to_500;",
    );
    let rest = objects("tls_x509", "\"schema\", \"full\"");
    let without = task(
        X509_USER,
        &ca_line("verify-identity"),
        &ca_line("verify-ca"),
        &rest,
    );
    let out = without.tidemark(&["precheck"]);
    let log = text(&out);
    assert!(
        !out.status.success(),
        "an X509 account connected without a certificate:\n{log}"
    );
    assert!(
        log.contains("source.tls_cert") && log.contains("source.tls_key"),
        "the error should say to set tls_cert and tls_key:\n{log}"
    );

    // Relative paths start at the task file's directory; `${ENV}` is allowed.
    let t = task(X509_USER, "", "", &rest);
    let dir = t.dir.path().to_path_buf();
    std::fs::copy(&e.client.cert, dir.join("client.pem")).unwrap();
    std::fs::copy(&e.client.key, dir.join("client.key")).unwrap();
    let keys =
        |side: &str| {
            format!(
            "url = \"{}\"\n{}\ntls_cert = \"client.pem\"\ntls_key = \"${{KEY_DIR}}/client.key\"",
            if side == "source" {
                e.pair.source.url_for(X509_USER, "pw")
            } else {
                e.pair.destination.url_for(X509_USER, "pw")
            },
            ca_line(if side == "source" { "verify-identity" } else { "verify-ca" }),
        )
        };
    std::fs::write(
        &t.file,
        format!(
            "[source]\n{}\n[destination]\n{}\n{rest}",
            keys("source"),
            keys("destination")
        ),
    )
    .unwrap();
    let t = t.with_env("KEY_DIR", &dir.display().to_string());
    let precheck = t.tidemark(&["precheck"]);
    assert!(
        precheck.status.success(),
        "precheck failed:\n{}",
        text(&precheck)
    );
    let run = t.run_ok();
    let a = checksum(&mut e.pair.source.conn().unwrap(), "tls_x509", "t");
    let b = checksum(&mut e.pair.destination.conn().unwrap(), "tls_x509", "t");
    assert!(a.is_some() && a == b, "{a:?} vs {b:?}");
    let status = t.tidemark(&["status", "--json"]);

    // The private key's contents appear nowhere: output, status, state store.
    let key = std::fs::read_to_string(&e.client.key).unwrap();
    let body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!body.is_empty());
    let mut seen = text(&precheck) + &text(&run) + &text(&status) + &log;
    for entry in walk(&dir.join(".tidemark")) {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    for line in body {
        assert!(!seen.contains(line), "the private key leaked: {line}");
    }
}

#[test]
fn bad_tls_settings_are_explained() {
    let e = env();
    let cases = [
        (
            format!("tls = \"required\"\ntls_ca = \"{}\"", e.ca.display()),
            "does not check the server's certificate",
        ),
        (
            format!(
                "tls = \"verify-ca\"\ntls_cert = \"{}\"",
                e.client.cert.display()
            ),
            "go together",
        ),
        (
            "tls = \"verify-ca\"\ntls_ca = \"nowhere.pem\"".to_string(),
            "cannot read",
        ),
        (
            format!(
                "tls = \"disabled\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
                e.client.cert.display(),
                e.client.key.display()
            ),
            "TLS files are given",
        ),
    ];
    for (keys, expected) in cases {
        let t = task(USER, &keys, "", &objects("tls_bad", "\"schema\""));
        let out = t.tidemark(&["precheck"]);
        let log = text(&out);
        assert!(
            !out.status.success() && log.contains(expected),
            "{keys}:\n{log}"
        );
    }
    // An encrypted key cannot be used: said before connecting.
    let dir = tempfile::tempdir().unwrap();
    let encrypted = dir.path().join("encrypted.key");
    let status = Command::new("openssl")
        .args(["pkey", "-aes256", "-passout", "pass:secret", "-in"])
        .arg(&e.client.key)
        .arg("-out")
        .arg(&encrypted)
        .stdout(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let t = task(
        USER,
        &format!(
            "{}\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            ca_line("verify-ca"),
            e.client.cert.display(),
            encrypted.display()
        ),
        "",
        &objects("tls_bad", "\"schema\""),
    );
    let out = t.tidemark(&["precheck"]);
    let log = text(&out);
    assert!(!out.status.success() && log.contains("encrypted"), "{log}");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}
