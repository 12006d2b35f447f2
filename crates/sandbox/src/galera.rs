//! A throwaway MariaDB Galera cluster on loopback: every node a `mariadbd` with the
//! galera-4 provider, in its own directory under one temporary directory, on free ports
//! (client, group communication, IST and rsync SST each need one per node).
//!
//! [`Cluster::start`] bootstraps node 1 (`--wsrep-new-cluster`), waits until it is
//! `Synced`, then starts the others, which join it by state transfer (rsync), and
//! returns once every node reports `wsrep_cluster_size` = the number of nodes and
//! `Synced`. A node can be SIGKILLed ([`Cluster::kill`]) and started again
//! ([`Cluster::start_again`]: it rejoins by IST), or set `read_only`.
//!
//! Running as root, the nodes run as the `mysql` user with their directories owned by
//! it: the rsync SST daemon writes the joiner's files as that user, and a root-owned
//! data directory makes the joiner fail ("Permission denied" on `ibdata1`, then "Will
//! never receive state"). Node 1 must not bootstrap again when it is restarted (it
//! would found a second cluster), so each node starts through a small script that
//! passes `--wsrep-new-cluster` only while a one-shot `bootstrap` file exists.
//!
//! Each node runs under the same watchdog as [`crate::Server`], and a further watchdog
//! removes the whole cluster directory when the owning process exits, even after
//! `SIGKILL` or when a test binary keeps the cluster in a `static`. Error logs live
//! outside the node directories so that a node that died can still be diagnosed.

use crate::{hold_down, release, signal_watched, tool, watch};
use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The provider Debian's `galera-4` package installs.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// How long a cluster (or a node rejoining it) may take to become synced. Generous: the
/// machine may be busy with builds and other clusters.
const SYNC_LIMIT: Duration = Duration::from_secs(180);

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes (3 unless a test needs otherwise; 1 is a valid one-node cluster).
    pub nodes: usize,
    /// `default-time-zone`, e.g. `-08:00`.
    pub time_zone: Option<String>,
    /// Extra `--option=value` arguments for every node's `mariadbd`.
    pub extra_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            time_zone: None,
            extra_args: Vec::new(),
        }
    }
}

/// One node of a [`Cluster`].
pub struct Node {
    /// 1-based, as in `nodeN` (its `wsrep_node_name`).
    pub number: usize,
    /// The client port.
    pub port: u16,
    /// Group communication (`base_port`), IST and SST ports.
    pub gcomm_port: u16,
    pub ist_port: u16,
    pub sst_port: u16,
    dir: PathBuf,
    log: PathBuf,
    watchdog: Child,
}

impl Node {
    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// `mysql://USER:PASS@127.0.0.1:PORT`.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, e.g. for [`crate::proxy::Proxy::start`].
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn try_conn(&self) -> mysql::Result<mysql::Conn> {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(self.port)
                .user(Some("root"))
                // The port, not the socket the driver would switch to.
                .prefer_socket(false)
                .tcp_connect_timeout(Some(Duration::from_secs(5)))
                .read_timeout(Some(Duration::from_secs(30))),
        )
    }

    /// A root connection.
    pub fn conn(&self) -> Result<mysql::Conn> {
        self.try_conn().with_context(|| {
            format!(
                "connecting to Galera node{} on port {}",
                self.number, self.port
            )
        })
    }

    /// The node's error log (empty when it cannot be read).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Held down by [`Cluster::kill`] and not started again yet.
    pub fn is_down(&self) -> bool {
        self.dir.join("hold").exists()
    }

    /// The node's view of the cluster, read from its `wsrep_%` status.
    pub fn status(&self) -> Result<NodeStatus> {
        let mut c = self.conn()?;
        let rows: Vec<(String, String)> = c
            .query(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', \
                 'wsrep_cluster_status', 'wsrep_local_state_comment', 'wsrep_ready')",
            )
            .with_context(|| format!("reading node{}'s wsrep status", self.number))?;
        let get = |name: &str| {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Ok(NodeStatus {
            cluster_size: get("wsrep_cluster_size").parse().unwrap_or(0),
            cluster_status: get("wsrep_cluster_status"),
            state: get("wsrep_local_state_comment"),
            ready: get("wsrep_ready").eq_ignore_ascii_case("ON"),
        })
    }

    /// The tail of the error log, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.error_log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "node{} error log (last lines):\n{}",
            self.number,
            lines[from..].join("\n")
        )
    }
}

/// What a node reports about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub cluster_size: u32,
    /// `Primary`, `non-Primary` or `Disconnected`.
    pub cluster_status: String,
    /// `wsrep_local_state_comment`: `Synced`, `Joining`, `Donor/Desynced`, …
    pub state: String,
    pub ready: bool,
}

impl NodeStatus {
    fn synced_in(&self, size: usize) -> bool {
        self.ready
            && self.state == "Synced"
            && self.cluster_status == "Primary"
            && self.cluster_size as usize == size
    }
}

/// A running Galera cluster; every node is killed and every file removed on drop.
pub struct Cluster {
    nodes: Vec<Node>,
    root: tempfile::TempDir,
    root_watchdog: Child,
}

/// Whether we run as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `n` distinct free local ports (the listeners are held until all are chosen, so none
/// is handed out twice).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free local port"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `kill -TERM PID` of a watchdog: it kills its process and cleans up.
fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Cluster {
    pub fn start(opts: &ClusterOptions) -> Result<Cluster> {
        if opts.nodes == 0 {
            bail!("a Galera cluster needs at least one node");
        }
        if !Path::new(PROVIDER).exists() {
            bail!(
                "the Galera provider {PROVIDER} was not found: install it (`apt-get install -y galera-4 rsync`)"
            );
        }
        if tool("rsync", "rsync").is_err() {
            bail!("`rsync` was not found: Galera's rsync state transfer needs it (`apt-get install -y rsync`)");
        }
        let installer = tool("mariadb-install-db", "mysql_install_db")?;
        let daemon = tool("mariadbd", "mysqld")?;
        let root_user = running_as_root();

        let root = tempfile::Builder::new()
            .prefix("tidemark-galera-")
            .tempdir()?;
        // A watchdog over the whole directory, for when we die without dropping.
        let root_watchdog = watch(&["sleep".into(), "2147483647".into()], root.path())
            .context("starting the cluster directory's watchdog")?;
        let logs = root.path().join("logs");
        std::fs::create_dir_all(&logs)?;
        if root_user {
            // The nodes run as `mysql`: it must reach its directories.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))?;
        }

        let ports = free_ports(4 * opts.nodes)?;
        let gcomm: Vec<String> = (0..opts.nodes)
            .map(|i| format!("127.0.0.1:{}", ports[4 * i + 1]))
            .collect();
        let address = format!("gcomm://{}", gcomm.join(","));

        // Data directories, installed side by side.
        let dirs: Vec<PathBuf> = (1..=opts.nodes)
            .map(|n| root.path().join(format!("node{n}")))
            .collect();
        let installs: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let (dir, installer) = (dir.clone(), installer.clone());
                std::thread::spawn(move || install(&installer, &dir, root_user))
            })
            .collect();
        for i in installs {
            i.join()
                .map_err(|_| anyhow::anyhow!("mariadb-install-db panicked"))??;
        }
        if root_user {
            chown_mysql(&logs)?;
        }

        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, dir) in dirs.into_iter().enumerate() {
            let number = i + 1;
            let (port, gcomm_port, ist_port, sst_port) = (
                ports[4 * i],
                ports[4 * i + 1],
                ports[4 * i + 2],
                ports[4 * i + 3],
            );
            let log = logs.join(format!("node{number}.err"));
            let mut args = vec![
                "--no-defaults".to_string(),
                format!("--datadir={}", dir.join("data").display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--socket={}", dir.join("sock").display()),
                format!("--pid-file={}", dir.join("pid").display()),
                format!("--log-error={}", log.display()),
                format!("--tmpdir={}", dir.join("tmp").display()),
                format!("--server-id={number}"),
                "--innodb-buffer-pool-size=128M".into(),
                "--innodb-log-file-size=128M".into(),
                "--innodb-flush-log-at-trx-commit=2".into(),
                "--max-connections=500".into(),
                "--character-set-server=utf8mb4".into(),
                "--collation-server=utf8mb4_general_ci".into(),
                // Galera replicates row events only, and needs interleaved auto-increment
                // locks so that appliers cannot deadlock on them.
                "--binlog-format=ROW".into(),
                "--innodb-autoinc-lock-mode=2".into(),
                "--wsrep-on=ON".into(),
                format!("--wsrep-provider={PROVIDER}"),
                "--wsrep-cluster-name=tidemark-sandbox".into(),
                format!("--wsrep-cluster-address={address}"),
                format!("--wsrep-node-name=node{number}"),
                format!("--wsrep-node-address=127.0.0.1:{gcomm_port}"),
                format!("--wsrep-node-incoming-address=127.0.0.1:{port}"),
                format!(
                    "--wsrep-provider-options=base_port={gcomm_port};\
                     gmcast.listen_addr=tcp://127.0.0.1:{gcomm_port};\
                     ist.recv_addr=127.0.0.1:{ist_port};gcache.size=128M"
                ),
                "--wsrep-sst-method=rsync".into(),
                format!("--wsrep-sst-receive-address=127.0.0.1:{sst_port}"),
            ];
            if root_user {
                args.push("--user=mysql".into());
            }
            if let Some(tz) = &opts.time_zone {
                args.push(format!("--default-time-zone={tz}"));
            }
            args.extend(opts.extra_args.iter().cloned());
            let line = std::iter::once(daemon.display().to_string())
                .chain(args)
                .map(|a| quote(&a))
                .collect::<Vec<_>>()
                .join(" ");
            let bootstrap = dir.join("bootstrap");
            let script = format!(
                "if [ -e {b} ]; then rm -f {b}; exec {line} --wsrep-new-cluster; fi\nexec {line}\n",
                b = quote(&bootstrap.display().to_string()),
            );
            let start = dir.join("start.sh");
            std::fs::write(&start, script).context("writing a node's start script")?;
            if number == 1 {
                std::fs::write(&bootstrap, b"").context("writing the bootstrap flag")?;
            }
            let cmd = ["/bin/sh".to_string(), start.display().to_string()];
            // Node 1 first: the others need a primary component to join.
            let watchdog = watch(&cmd, &dir).context("starting mariadbd")?;
            nodes.push(Node {
                number,
                port,
                gcomm_port,
                ist_port,
                sst_port,
                dir,
                log,
                watchdog,
            });
            if number == 1 {
                // Not yet a `Cluster`: wait on node 1 alone.
                let first = &nodes[0];
                wait_until(&nodes, SYNC_LIMIT, || {
                    first.status().is_ok_and(|s| s.synced_in(1))
                })?;
            }
        }
        let cluster = Cluster {
            nodes,
            root,
            root_watchdog,
        };
        cluster.wait_synced()?;
        Ok(cluster)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`, 0-based (`node(0)` is `node1`).
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// Nodes not held down by [`Cluster::kill`].
    fn up(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| !n.is_down()).collect()
    }

    /// Waits until every node that is up is synced in a primary component of exactly the
    /// nodes that are up.
    pub fn wait_synced(&self) -> Result<()> {
        let up = self.up();
        let size = up.len();
        wait_until(&self.nodes, SYNC_LIMIT, || {
            up.iter()
                .all(|n| n.status().is_ok_and(|s| s.synced_in(size)))
        })
    }

    /// SIGKILLs node `i`'s server (as a crash or a power cut would) and returns once it
    /// has exited; it stays down until [`Cluster::start_again`]. The other nodes notice
    /// only after Galera's suspect timeout (about 5 s); [`Cluster::wait_synced`] waits
    /// for that.
    pub fn kill(&self, i: usize) -> Result<()> {
        let n = &self.nodes[i];
        if n.is_down() {
            bail!("node{} is already down", n.number);
        }
        hold_down(
            &n.dir,
            || signal_watched(&n.dir, "KILL"),
            &format!("Galera node{}", n.number),
        )
    }

    /// Starts node `i` (held down by [`Cluster::kill`]) again on its data directory and
    /// ports; returns once it has rejoined and the whole cluster is synced.
    pub fn start_again(&self, i: usize) -> Result<()> {
        let n = &self.nodes[i];
        release(&n.dir, &format!("Galera node{}", n.number))?;
        self.wait_synced()
    }

    /// [`Cluster::kill`], a pause of `downtime`, then [`Cluster::start_again`].
    pub fn restart(&self, i: usize, downtime: Duration) -> Result<()> {
        self.kill(i)?;
        std::thread::sleep(downtime);
        self.start_again(i)
    }

    /// Sets `read_only` on node `i` only (it is a local setting, not replicated). Note
    /// that MariaDB lets users with `READ_ONLY ADMIN` (root included) write anyway:
    /// test with an ordinary user.
    pub fn set_read_only(&self, i: usize, on: bool) -> Result<()> {
        let n = &self.nodes[i];
        let mut c = n.conn()?;
        c.query_drop(format!(
            "SET GLOBAL read_only = {}",
            if on { "ON" } else { "OFF" }
        ))
        .with_context(|| format!("setting read_only on node{}", n.number))
    }

    /// Runs `sql` on node `i` as root (several statements allowed).
    pub fn sql(&self, i: usize, sql: &str) -> Result<()> {
        let n = &self.nodes[i];
        let mut c = n.conn()?;
        let mut result = c.query_iter(sql)?;
        while let Some(set) = result.iter() {
            for row in set {
                row.with_context(|| format!("on node{}: {sql}", n.number))?;
            }
        }
        Ok(())
    }
}

/// Polls `ok` until it holds or `limit` passes; fails early, with its log, when a node
/// that should be running has exited.
fn wait_until(nodes: &[Node], limit: Duration, ok: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return Ok(());
        }
        // A node whose server exited without being held down is gone for good (its
        // watchdog removed its directory).
        if let Some(dead) = nodes.iter().find(|n| !n.dir.exists()) {
            bail!("Galera node{} exited; {}", dead.number, dead.log_tail());
        }
        if Instant::now() > deadline {
            let states: Vec<String> = nodes
                .iter()
                .map(|n| match n.status() {
                    Ok(s) => format!("node{}: {s:?}", n.number),
                    Err(e) => format!("node{}: {e:#}", n.number),
                })
                .collect();
            let logs: Vec<String> = nodes.iter().map(Node::log_tail).collect();
            bail!(
                "the Galera cluster did not become synced in {} s: {}\n{}",
                limit.as_secs(),
                states.join("; "),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `chown -R mysql:mysql PATH`.
fn chown_mysql(path: &Path) -> Result<()> {
    let out = Command::new("chown")
        .arg("-R")
        .arg("mysql:mysql")
        .arg(path)
        .output()
        .context("running chown")?;
    if !out.status.success() {
        bail!(
            "chown -R mysql:mysql failed (is there a `mysql` user?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `mariadb-install-db` into `dir/data` (with `dir/tmp` as its private tmpdir).
fn install(installer: &Path, dir: &Path, root_user: bool) -> Result<()> {
    let data = dir.join("data");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    if root_user {
        // The bootstrap server runs as `mysql` and writes into its tmpdir.
        chown_mysql(dir)?;
    }
    let run = || {
        let _ = std::fs::remove_dir_all(&data);
        Command::new(installer)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(if root_user {
                "--user=mysql"
            } else {
                "--user=root"
            })
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .env("TMPDIR", &tmp)
            .output()
            .with_context(|| format!("running {}", installer.display()))
    };
    // Installs side by side occasionally fail once; a second try succeeds.
    let mut out = run()?;
    if !out.status.success() {
        out = run()?;
    }
    if !out.status.success() {
        bail!(
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Killing is enough: the data is thrown away. `quit` keeps a held node's
        // watchdog from starting it again.
        for n in &self.nodes {
            let _ = std::fs::write(n.dir.join("quit"), b"");
            terminate(&n.watchdog);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for n in &mut self.nodes {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = n.watchdog.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = n.watchdog.kill();
            let _ = n.watchdog.wait();
        }
        terminate(&self.root_watchdog);
        let _ = self.root_watchdog.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(c: &mut mysql::Conn, q: &str) -> Option<String> {
        c.query_first(q).unwrap_or_else(|e| panic!("{e}\n{q}"))
    }

    /// Waits until `q` on `node` returns `want` (replication to other nodes is
    /// asynchronous after commit).
    fn wait_value(node: &Node, q: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = node
                .conn()
                .ok()
                .and_then(|mut c| c.query_first::<String, _>(q).ok().flatten());
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node{}: {q} gave {got:?}, not {want}",
                node.number
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn forms_replicates_and_takes_a_killed_node_back() {
        let started = Instant::now();
        let cluster = Cluster::start(&ClusterOptions::default()).expect("start the cluster");
        eprintln!("3-node Galera cluster synced in {:?}", started.elapsed());
        for n in cluster.nodes() {
            let s = n.status().unwrap();
            assert!(s.synced_in(3), "node{}: {s:?}", n.number);
        }
        let names: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|n| one(&mut n.conn().unwrap(), "SELECT @@wsrep_node_name").unwrap())
            .collect();
        assert_eq!(names, ["node1", "node2", "node3"]);

        // A write on node 1 is read on node 3.
        cluster
            .sql(
                0,
                "CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY, v VARCHAR(20)); \
                 INSERT INTO g.t VALUES (1, 'from node1')",
            )
            .unwrap();
        wait_value(
            cluster.node(2),
            "SELECT v FROM g.t WHERE id = 1",
            "from node1",
        );

        // read_only is the node's own setting; an ordinary user is refused there only.
        cluster
            .sql(
                0,
                "CREATE USER w@'%' IDENTIFIED BY 'pw'; GRANT ALL ON g.* TO w@'%'",
            )
            .unwrap();
        cluster.set_read_only(1, true).unwrap();
        let user = |n: &Node| {
            mysql::Conn::new(mysql::Opts::from_url(&n.url_for("w", "pw")).unwrap()).unwrap()
        };
        let err = user(cluster.node(1))
            .query_drop("INSERT INTO g.t VALUES (2, 'no')")
            .unwrap_err();
        assert!(
            matches!(&err, mysql::Error::MySqlError(m) if m.code == 1290),
            "{err}"
        );
        user(cluster.node(2))
            .query_drop("INSERT INTO g.t VALUES (2, 'node3')")
            .unwrap();
        cluster.set_read_only(1, false).unwrap();

        // Node 1 (the one that bootstrapped) is killed, misses a write, and rejoins the
        // same cluster rather than founding a new one.
        let state_uuid = |n: &Node| -> String {
            let r: Option<(String, String)> = n
                .conn()
                .unwrap()
                .query_first("SHOW STATUS LIKE 'wsrep_cluster_state_uuid'")
                .unwrap();
            r.unwrap().1
        };
        let before = state_uuid(cluster.node(1));
        cluster.kill(0).unwrap();
        assert!(
            cluster.node(0).conn().is_err(),
            "a killed node accepts connections"
        );
        assert!(cluster.kill(0).is_err(), "killed twice");
        cluster.wait_synced().expect("two nodes go on");
        assert_eq!(cluster.node(1).status().unwrap().cluster_size, 2);
        cluster
            .sql(1, "INSERT INTO g.t VALUES (3, 'while node1 was down')")
            .unwrap();
        let rejoin = Instant::now();
        cluster.start_again(0).expect("node1 rejoins");
        eprintln!("node1 rejoined in {:?}", rejoin.elapsed());
        assert_eq!(
            state_uuid(cluster.node(0)),
            before,
            "node1 founded a new cluster"
        );
        wait_value(
            cluster.node(0),
            "SELECT v FROM g.t WHERE id = 3",
            "while node1 was down",
        );
        wait_value(cluster.node(0), "SELECT COUNT(*) FROM g.t", "3");

        let dir = cluster.dir().to_path_buf();
        drop(cluster);
        assert!(!dir.exists(), "the cluster directory is left behind");
    }
}
