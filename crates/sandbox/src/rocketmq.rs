//! A throwaway RocketMQ cluster: one name server and one broker
//! (`rocketmq-namesrv-rust`, `rocketmq-broker-rust`, installed with
//! `cargo install rocketmq-namesrv rocketmq-broker`) on free ports with temporary
//! storage, watched like the MariaDB servers so nothing outlives the test.

use crate::{free_port, hold_down, release, signal_watched, watch};
use anyhow::{bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How to start the cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Require ACL credentials: `(access key, secret key)` of the one account.
    pub credentials: Option<(String, String)>,
    /// The broker's `maxMessageSize` (default 4 MiB).
    pub max_message_size: Option<usize>,
}

/// A running name server and broker.
pub struct RocketMq {
    /// `127.0.0.1:PORT` of the name server.
    pub name_server: String,
    /// `127.0.0.1:PORT` of the broker.
    pub broker: String,
    namesrv_dir: tempfile::TempDir,
    broker_dir: tempfile::TempDir,
    namesrv: Child,
    broker_watchdog: Child,
}

/// Where to look for the binaries instead of `PATH` and `~/.cargo/bin` (an empty
/// directory simulates a machine without them).
pub const BIN_DIR_VAR: &str = "TIDEMARK_ROCKETMQ_BIN_DIR";

fn tool(name: &str) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = match std::env::var_os(BIN_DIR_VAR) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default();
            if let Some(home) = std::env::var_os("HOME") {
                dirs.push(Path::new(&home).join(".cargo/bin"));
            }
            dirs
        }
    };
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{name} is not installed: run `cargo install rocketmq-namesrv rocketmq-broker` (30 to 70 minutes on 2 cores), or `.ci/run`, which installs it when missing")
        })
}

/// Whether the RocketMQ binaries are installed.
pub fn available() -> bool {
    tool("rocketmq-namesrv-rust").is_ok() && tool("rocketmq-broker-rust").is_ok()
}

/// Whether this is a CI run (`CI` set, as CI services and `.ci/run` do), where a
/// missing install must fail rather than skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// For tests that need a broker: `true`, after one line on stderr naming `test`, when
/// the binaries are not installed, so the test returns early as skipped. Under CI a
/// missing install panics instead: CI must not pass by skipping.
pub fn skip_unless_installed(test: &str) -> bool {
    if available() {
        return false;
    }
    if in_ci() {
        panic!(
            "{test}: the RocketMQ binaries are not installed, and CI={}: CI must run the RocketMQ tests (`.ci/run` installs them)",
            std::env::var("CI").unwrap_or_default()
        );
    }
    // Straight to the file descriptor: the test harness captures `eprintln!` of passing
    // tests, and this line is the point.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: rocketmq-namesrv-rust / rocketmq-broker-rust are not installed (`cargo install rocketmq-namesrv rocketmq-broker`, 30 to 70 minutes on 2 cores)"
    );
    true
}

/// A port `p` such that `p` and `p - 2` (the broker's fast channel) are both free.
fn broker_port() -> Result<u16> {
    for _ in 0..50 {
        let p = free_port()?;
        if p > 1026 && TcpListener::bind(("127.0.0.1", p - 2)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free pair of ports for the broker")
}

/// Waits until `addr` accepts connections from the process watched in `dir` (whose
/// output is `dir/out.log`). A process that exits, or does not listen within the limit,
/// is an error that carries its exit status or its state, and its log.
fn wait_port(addr: &str, what: &str, dir: &Path) -> Result<()> {
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    let log = || std::fs::read_to_string(dir.join("out.log")).unwrap_or_default();
    while TcpStream::connect(addr).is_err() {
        if let Ok(status) = std::fs::read_to_string(dir.join("exited")) {
            bail!(
                "{what} exited (status {}) before it listened on {addr}; its log:\n{}",
                status.trim(),
                log()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not listen on {addr} within {} s ({}); its log:\n{}",
                limit.as_secs(),
                process_state(dir),
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// What the watched process of `dir` is doing, for a failure message: its state, the
/// kernel function it waits in, and its threads' count (from `/proc`).
fn process_state(dir: &Path) -> String {
    let Ok(pid) = std::fs::read_to_string(dir.join("pid.watched")) else {
        return "no pid recorded".into();
    };
    let proc = Path::new("/proc").join(pid.trim());
    let status = std::fs::read_to_string(proc.join("status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    if status.is_empty() {
        return format!("pid {} is gone", pid.trim());
    }
    format!(
        "pid {}: state {}, threads {}, waiting in {}",
        pid.trim(),
        field("State:"),
        field("Threads:"),
        std::fs::read_to_string(proc.join("wchan")).unwrap_or_else(|_| "?".into())
    )
}

impl RocketMq {
    /// Starts a name server and a broker. A start that fails is tried once more on new
    /// ports and directories (a port taken between our check and the broker's bind);
    /// the error names both attempts' causes.
    pub fn start(opts: &Options) -> Result<RocketMq> {
        match Self::start_once(opts) {
            Ok(mq) => Ok(mq),
            Err(first) => Self::start_once(opts)
                .with_context(|| format!("a first attempt failed too: {first:#}")),
        }
    }

    fn start_once(opts: &Options) -> Result<RocketMq> {
        let namesrv_bin = tool("rocketmq-namesrv-rust")?;
        let broker_bin = tool("rocketmq-broker-rust")?;
        let namesrv_dir = tempfile::Builder::new()
            .prefix("tidemark-namesrv-")
            .tempdir()?;
        let ns_port = free_port()?;
        let ns = namesrv_dir.path();
        let mut cmd = clean_env(ns);
        cmd.extend([
            "bash".into(),
            "-c".into(),
            format!(
                "exec '{}' --listenPort {ns_port} --bindAddress 127.0.0.1 --rocketmqHome '{}' --kvConfigPath '{}' > '{}' 2>&1",
                namesrv_bin.display(),
                ns.display(),
                ns.join("kv.json").display(),
                ns.join("out.log").display()
            ),
        ]);
        let mut namesrv = watch(&cmd, ns).context("starting the RocketMQ name server")?;
        let name_server = format!("127.0.0.1:{ns_port}");
        if let Err(e) = wait_port(&name_server, "the RocketMQ name server", ns) {
            stop_watched(ns, &mut namesrv);
            return Err(e);
        }

        let broker_dir = tempfile::Builder::new()
            .prefix("tidemark-broker-")
            .tempdir()?;
        let b = broker_dir.path();
        let port = broker_port()?;
        let ha = free_port()?;
        let mut props = format!(
            "namesrvAddr={name_server}\nlistenPort={port}\nhaListenPort={ha}\nbrokerIP1=127.0.0.1\nbrokerName=tidemark-broker\nbrokerClusterName=tidemark\nstorePathRootDir={}\nautoCreateTopicEnable=false\nmappedFileSizeCommitLog=134217728\n",
            b.join("store").display()
        );
        if let Some(n) = opts.max_message_size {
            props.push_str(&format!("maxMessageSize={n}\n"));
        }
        if let Some((ak, sk)) = &opts.credentials {
            props.push_str(&format!(
                "authenticationEnabled=true\nauthConfigPath={}\ninitAuthenticationUser={ak}:{sk}\n",
                b.join("auth").display()
            ));
        }
        std::fs::write(b.join("broker.properties"), props)?;
        let mut cmd = clean_env(b);
        cmd.extend([
            "bash".to_string(),
            "-c".into(),
            format!(
                "exec '{}' -c '{}' >> '{}' 2>&1",
                broker_bin.display(),
                b.join("broker.properties").display(),
                b.join("out.log").display()
            ),
        ]);
        let broker_watchdog = watch(&cmd, b).context("starting the RocketMQ broker")?;
        let broker = format!("127.0.0.1:{port}");
        let mq = RocketMq {
            name_server,
            broker,
            namesrv_dir,
            broker_dir,
            namesrv,
            broker_watchdog,
        };
        mq.wait_broker()?;
        Ok(mq)
    }

    fn wait_broker(&self) -> Result<()> {
        wait_port(&self.broker, "the RocketMQ broker", self.broker_dir.path())?;
        // The broker registers with the name server shortly after it listens.
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    /// Kills the broker (SIGKILL: no clean shutdown) and keeps it down until
    /// [`RocketMq::start_broker_again`]. Its stored messages stay.
    pub fn kill_broker(&self) -> Result<()> {
        let dir = self.broker_dir.path();
        hold_down(dir, || signal_watched(dir, "KILL"), "the RocketMQ broker")
    }

    /// Freezes the broker (SIGSTOP): its connections stay open and nothing is answered,
    /// as behind a dead host or a stuck load balancer. [`RocketMq::thaw_broker`] resumes it.
    pub fn freeze_broker(&self) -> Result<()> {
        signal_watched(self.broker_dir.path(), "STOP")
    }

    pub fn thaw_broker(&self) -> Result<()> {
        signal_watched(self.broker_dir.path(), "CONT")
    }

    pub fn start_broker_again(&self) -> Result<()> {
        release(self.broker_dir.path(), "the RocketMQ broker")?;
        self.wait_broker()
    }

    /// The broker's output (for test failure messages).
    pub fn broker_log(&self) -> String {
        std::fs::read_to_string(self.broker_dir.path().join("out.log")).unwrap_or_default()
    }
}

impl Drop for RocketMq {
    fn drop(&mut self) {
        stop_watched(self.broker_dir.path(), &mut self.broker_watchdog);
        stop_watched(self.namesrv_dir.path(), &mut self.namesrv);
    }
}

/// Stops the process watched in `dir` and waits for its watchdog (which removes `dir`).
fn stop_watched(dir: &Path, watchdog: &mut Child) {
    let _ = std::fs::write(dir.join("quit"), b"");
    let _ = signal_watched(dir, "KILL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = watchdog.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = watchdog.kill();
    let _ = watchdog.wait();
}

/// `env -i` with the few variables the servers need: whatever else the caller's
/// environment holds (an `OTEL_EXPORTER_OTLP_ENDPOINT`, `RUST_LOG`, `ROCKETMQ_*`
/// settings) must not change how they start. An OTLP endpoint, for one, makes the
/// broker exit before it prints anything.
fn clean_env(home: &Path) -> Vec<String> {
    let mut cmd = vec!["/usr/bin/env".to_string(), "-i".into()];
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.push(format!("{var}={}", v.to_string_lossy()));
        }
    }
    cmd.push(format!("ROCKETMQ_HOME={}", home.display()));
    cmd
}
