//! Throwaway local MariaDB servers for tests, the quickstart and benchmarks.
//!
//! [`Server::start`] runs `mariadb-install-db` and `mariadbd` from the installed packages
//! in a temporary directory on a free port. A small watchdog shell kills the server and
//! removes its directory when the owning process exits, even after `SIGKILL` or when a
//! test binary keeps servers in a `static`.
//!
//! A server can be stopped and started again on the same data directory and port
//! ([`Server::stop`], [`Server::start_again`], [`Server::restart`]), e.g. to test that a
//! client reconnects after a server restart.
//!
//! [`tls`] makes a test CA and certificates for TLS-enabled servers; [`proxy`] is a TCP
//! proxy that freezes, resets, slows or cuts a path and can be re-pointed to another
//! server, for network failure and failover tests; [`galera`] runs a 3-node MariaDB
//! Galera cluster, for cluster destinations.

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod galera;
pub mod proxy;
pub mod rocketmq;
pub mod standin;
pub mod tls;

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Write a binary log (ROW format, FULL row image), as a replication source needs.
    pub binlog: bool,
    pub server_id: u32,
    /// `default-time-zone`, e.g. `+05:30`.
    pub time_zone: Option<String>,
    /// Extra `--option=value` arguments for `mariadbd`.
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            binlog: true,
            server_id: 1,
            time_zone: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running server; stopped and deleted on drop.
pub struct Server {
    pub port: u16,
    dir: tempfile::TempDir,
    watchdog: Child,
}

fn tool(name: &str, fallback: &str) -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        for n in [name, fallback] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return Ok(p);
            }
        }
    }
    bail!("`{name}` was not found: install MariaDB's server package (e.g. `apt-get install -y mariadb-server`)")
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free local port")?;
    Ok(l.local_addr()?.port())
}

/// Runs `cmd` under a watchdog shell that outlives neither us nor the process: when our
/// pid is gone it kills the process and removes `dir`. A process that exits on its own
/// leaves its exit status in `dir/exited`, and `dir` (with its logs) stays until our pid
/// is gone or a `quit` file appears, so the failure can be reported. The
/// one exception is a stop asked for through `dir/hold`: while that file exists the
/// watchdog keeps the directory and, once the file is removed, starts the process again
/// (it writes `down` when the process has exited, and removes it when it starts it
/// again). A `quit` file makes a held watchdog clean up and exit. The process's pid is
/// in `dir/pid.watched`.
pub(crate) fn watch(cmd: &[String], dir: &Path) -> Result<Child> {
    let quoted: Vec<String> = cmd
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let d = dir.display().to_string();
    let script = format!(
        "trap '' HUP INT; {cmd} & srv=$!; echo $srv > '{d}/pid.watched'; trap 'touch \"{d}/quit\"; kill -9 $srv 2>/dev/null' TERM; \
         while kill -0 {parent} 2>/dev/null; do \
           if ! kill -0 $srv 2>/dev/null; then \
             wait $srv 2>/dev/null; echo $? > '{d}/exited'; \
             if [ ! -e '{d}/hold' ]; then \
               while [ ! -e '{d}/quit' ] && kill -0 {parent} 2>/dev/null; do sleep 0.2; done; break; \
             fi; \
             [ ! -e '{d}/quit' ] || break; rm -f '{d}/exited'; \
             touch '{d}/down'; \
             while [ -e '{d}/hold' ] && [ ! -e '{d}/quit' ] && kill -0 {parent} 2>/dev/null; do sleep 0.1; done; \
             [ ! -e '{d}/quit' ] && kill -0 {parent} 2>/dev/null || break; \
             {cmd} & srv=$!; echo $srv > '{d}/pid.watched'; rm -f '{d}/down'; \
           fi; \
           sleep 0.2; \
         done; \
         kill -9 $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf '{d}'",
        cmd = quoted.join(" "),
        parent = std::process::id(),
    );
    // Its own process group: a Ctrl-C or hang-up aimed at the terminal must not kill
    // the watchdog before it has cleaned up.
    Ok(Command::new("bash")
        .process_group(0)
        .current_dir(dir)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Holds a watched process down (see [`watch`]): `kill` makes it exit; returns once it has.
pub(crate) fn hold_down(dir: &Path, kill: impl FnOnce() -> Result<()>, what: &str) -> Result<()> {
    let hold = dir.join("hold");
    let down = dir.join("down");
    std::fs::write(&hold, b"").context("writing the sandbox's hold file")?;
    kill()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !down.exists() {
        if Instant::now() > deadline {
            bail!("{what} did not stop in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Lets a process held by [`hold_down`] start again; returns once the watchdog started it.
pub(crate) fn release(dir: &Path, what: &str) -> Result<()> {
    let hold = dir.join("hold");
    let down = dir.join("down");
    if !hold.exists() {
        bail!("{what} was not stopped");
    }
    std::fs::remove_file(&hold).context("removing the sandbox's hold file")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while down.exists() {
        if Instant::now() > deadline {
            bail!("the sandbox watchdog did not start {what} again");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Sends `signal` to the watched process of `dir`.
pub(crate) fn signal_watched(dir: &Path, signal: &str) -> Result<()> {
    let pid =
        std::fs::read_to_string(dir.join("pid.watched")).context("reading the watched pid")?;
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.trim().to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -{signal} {} failed", pid.trim());
    }
    Ok(())
}

impl Server {
    pub fn start(opts: &Options) -> Result<Server> {
        let installer = tool("mariadb-install-db", "mysql_install_db")?;
        let daemon = tool("mariadbd", "mysqld")?;
        let dir = tempfile::Builder::new()
            .prefix("tidemark-mariadb-")
            .tempdir()?;
        let data = dir.path().join("data");
        // A private tmpdir: servers bootstrapping side by side must not share one.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let install = || {
            let _ = std::fs::remove_dir_all(&data);
            Command::new(&installer)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args([
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ])
                .env("TMPDIR", &tmp)
                .output()
                .with_context(|| format!("running {}", installer.display()))
        };
        let mut out = install()?;
        if !out.status.success() {
            out = install()?;
        }
        if !out.status.success() {
            bail!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let port = free_port()?;
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            "--user=root".into(),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--pid-file={}", dir.path().join("pid").display()),
            format!("--log-error={}", dir.path().join("error.log").display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--server-id={}", opts.server_id),
            "--innodb-buffer-pool-size=256M".into(),
            "--innodb-log-file-size=256M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--max-connections=500".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_general_ci".into(),
        ];
        if opts.binlog {
            args.push(format!("--log-bin={}", data.join("binlog").display()));
            args.extend([
                "--binlog-format=ROW".into(),
                "--binlog-row-image=FULL".into(),
            ]);
        }
        if let Some(tz) = &opts.time_zone {
            args.push(format!("--default-time-zone={tz}"));
        }
        args.extend(opts.extra_args.iter().cloned());
        let cmd: Vec<String> = std::iter::once(daemon.display().to_string())
            .chain(args)
            .collect();
        let watchdog = watch(&cmd, dir.path()).context("starting mariadbd")?;
        let server = Server {
            port,
            dir,
            watchdog,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut c) = self.try_conn() {
                use mysql::prelude::Queryable;
                if c.query_drop("SELECT 1").is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "mariadbd did not become ready in 60 s; its error log:\n{}",
                    self.error_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_conn(&self) -> mysql::Result<mysql::Conn> {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(self.port)
                .user(Some("root")),
        )
    }

    /// A root connection.
    pub fn conn(&self) -> Result<mysql::Conn> {
        self.try_conn()
            .with_context(|| format!("connecting to sandbox on port {}", self.port))
    }

    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// `mysql://USER:PASS@127.0.0.1:PORT`.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Shuts the server down cleanly (`SHUTDOWN`) and waits until it has exited, keeping
    /// its data directory and port for [`Server::start_again`]. Connections to it fail
    /// meanwhile, as they would against a real server being restarted.
    pub fn stop(&self) -> Result<()> {
        let what = format!("the server on port {}", self.port);
        hold_down(
            self.dir.path(),
            || {
                use mysql::prelude::Queryable;
                let mut c = self.conn().context("connecting to shut the server down")?;
                // The server may close the connection before it answers.
                let _ = c.query_drop("SHUTDOWN");
                Ok(())
            },
            &what,
        )
        .with_context(|| format!("its error log:\n{}", self.error_log()))
    }

    /// Starts a server stopped with [`Server::stop`] again, on the same data directory,
    /// port and options, and waits until it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        release(
            self.dir.path(),
            &format!("the server on port {}", self.port),
        )?;
        self.wait_ready()
    }

    /// [`Server::stop`], a pause of `downtime`, then [`Server::start_again`].
    pub fn restart(&self, downtime: Duration) -> Result<()> {
        self.stop()?;
        std::thread::sleep(downtime);
        self.start_again()
    }

    /// The server's error log (empty when it cannot be read).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A stopped server is not started again: the watchdog cleans up and exits.
        let _ = std::fs::write(self.dir.path().join("quit"), b"");
        // Ask for a clean shutdown, then make sure.
        if let Ok(mut c) = self.try_conn() {
            use mysql::prelude::Queryable;
            let _ = c.query_drop("SHUTDOWN");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// A source (binlog on) and a destination server, started in parallel.
pub struct Pair {
    pub source: Server,
    pub destination: Server,
}

impl Pair {
    pub fn start() -> Result<Pair> {
        Self::start_with(
            Options::default(),
            Options {
                server_id: 2,
                ..Options::default()
            },
        )
    }

    pub fn start_with(source: Options, destination: Options) -> Result<Pair> {
        let dst = std::thread::spawn(move || Server::start(&destination));
        let source = Server::start(&source)?;
        let destination = dst
            .join()
            .map_err(|_| anyhow::anyhow!("server start panicked"))??;
        Ok(Pair {
            source,
            destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::prelude::Queryable;

    #[test]
    fn restart_keeps_data_and_port() {
        let s = Server::start(&Options::default()).expect("start");
        let mut c = s.conn().unwrap();
        c.query_drop(
            "CREATE DATABASE r; CREATE TABLE r.t (id INT PRIMARY KEY); INSERT INTO r.t VALUES (1)",
        )
        .unwrap();
        let file: Option<(String, u64)> = c
            .query_first("SHOW MASTER STATUS")
            .unwrap()
            .map(|r: mysql::Row| (r.get(0).unwrap(), r.get(1).unwrap()));
        drop(c);
        s.stop().expect("stop");
        assert!(s.conn().is_err(), "a stopped server accepts connections");
        assert!(s.start_again().is_ok());
        assert!(s.start_again().is_err(), "started twice");
        s.restart(Duration::from_millis(200)).expect("restart");
        let mut c = s.conn().unwrap();
        let n: Option<u64> = c.query_first("SELECT COUNT(*) FROM r.t").unwrap();
        assert_eq!(n, Some(1));
        // A restart opens a new binlog file.
        let after: Option<(String, u64)> = c
            .query_first("SHOW MASTER STATUS")
            .unwrap()
            .map(|r: mysql::Row| (r.get(0).unwrap(), r.get(1).unwrap()));
        assert_ne!(file.unwrap().0, after.unwrap().0);
        drop(c);
        let dir = s.dir().to_path_buf();
        s.stop().expect("stop");
        // A server dropped while stopped: its watchdog exits at once (it is not waited
        // for until the drop's timeout) and nothing is left behind.
        let started = Instant::now();
        drop(s);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!dir.exists());
    }
}
