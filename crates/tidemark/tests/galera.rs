//! Cluster destinations against a real 3-node MariaDB Galera cluster (one per test
//! binary, shared): topology detection, a read-only node, a cut and re-pointed cluster
//! endpoint, the write-set size limit (a 200 MB table and a 100 000-row transaction
//! under 1 MB), a whole migration into the cluster (checked on every node and by
//! `tidemark verify` against a node that took no writes), certification conflicts with
//! another node's writer, throttles, and the source heartbeat.
//!
//! Tests run in parallel on the shared cluster, so each keeps node settings it changes
//! to its own node: node 1 takes the migration, node 2 the size limit, node 3 the
//! read-only switch. Each uses its own database names.

mod common;

use common::{checksum, env, spawn, stop, wait_incremental, wait_incremental_within, TaskDir};
use mysql::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tidemark::sink::mysql::cluster::{classify, Failure, Kind, Topology};
use tidemark_sandbox::galera::{Cluster, ClusterOptions, Node};
use tidemark_sandbox::proxy::Proxy;

/// The shared cluster, in the destination's time zone of the shared pair.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let started = Instant::now();
        let c = Cluster::start(&ClusterOptions {
            time_zone: Some("-08:00".into()),
            ..ClusterOptions::default()
        })
        .expect("start a 3-node Galera cluster (are galera-4 and rsync installed?)");
        eprintln!("Galera cluster synced in {:?}", started.elapsed());
        c
    })
}

/// Tests that stop a node or change a node setting the task depends on run alone; the
/// others share the cluster.
static STABLE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    STABLE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    STABLE.write().unwrap_or_else(|e| e.into_inner())
}

fn sql(n: &Node, q: &str) {
    common::run_all(&mut n.conn().expect("node connection"), q)
        .unwrap_or_else(|e| panic!("node{}: {e}\n{q}", n.number));
}

fn one<T: mysql::prelude::FromValue>(n: &Node, q: &str) -> T {
    n.conn()
        .expect("node connection")
        .query_first(q)
        .unwrap_or_else(|e| panic!("node{}: {e}\n{q}", n.number))
        .unwrap_or_else(|| panic!("node{}: no row: {q}", n.number))
}

/// Waits until `q` on `n` returns `want`: other nodes apply a commit shortly after it.
fn wait_value(n: &Node, q: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Option<String> = n
            .conn()
            .ok()
            .and_then(|mut c| c.query_first(q).ok().flatten());
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node{}: {q} gave {got:?}, not {want}",
            n.number
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn server_error(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("{} {}", m.code, m.message),
        other => other.to_string(),
    }
}

#[test]
fn detects_the_galera_cluster_on_every_node() {
    let _shared = shared();
    let c = cluster();
    for n in c.nodes() {
        let t = Topology::detect(&mut n.conn().unwrap()).expect("detect");
        match &t.kind {
            Kind::Galera {
                cluster_size,
                cluster_status,
                osu_method,
                ..
            } => {
                assert_eq!(*cluster_size, 3, "node{}: {t:?}", n.number);
                assert_eq!(cluster_status, "Primary");
                assert_eq!(osu_method, "TOI");
            }
            other => panic!("node{}: detected {other:?}", n.number),
        }
        let rules = t.rules();
        assert!(rules.primary_key_required && rules.innodb_only && rules.ddl_blocks_cluster);
        // Defaults: 2 GB write-sets, no row limit (node 2 may be lowered by another test).
        if n.number != 2 {
            assert_eq!(t.limits.wsrep_max_ws_size, Some(2_147_483_647), "{t:?}");
        }
        assert_eq!(t.limits.wsrep_max_ws_rows, None);
        let report = t.report().join("\n");
        for want in [
            "Galera cluster of 3 node(s), Primary",
            "primary key",
            "TOI",
            "wsrep_sync_wait = 0",
        ] {
            assert!(
                report.contains(want),
                "node{}: {want:?} missing:\n{report}",
                n.number
            );
        }
    }
    let t = Topology::detect(&mut c.node(0).conn().unwrap()).unwrap();
    assert_eq!(t.not_writable(), None, "{t:?}");
    // A lone server is not a cluster.
    let single = Topology::detect(&mut env().dst()).unwrap();
    assert_eq!(single.kind, Kind::Single);
    assert!(single.limits.is_empty() && single.rules() == Default::default());
}

/// Turns node 3's `read_only` off again even when an assertion fails.
struct ReadOnlyGuard;

impl Drop for ReadOnlyGuard {
    fn drop(&mut self) {
        let _ = cluster().set_read_only(2, false);
    }
}

#[test]
fn a_read_only_node_is_reported_and_its_refusal_means_reconnect() {
    let _shared = shared();
    let c = cluster();
    let (n1, n3) = (c.node(0), c.node(2));
    sql(
        n1,
        "CREATE DATABASE g_ro; CREATE TABLE g_ro.t (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE USER g_ro_writer@'%' IDENTIFIED BY 'pw'; GRANT ALL ON g_ro.* TO g_ro_writer@'%';",
    );
    wait_value(
        n3,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'g_ro'",
        "1",
    );
    let _guard = ReadOnlyGuard;
    c.set_read_only(2, true).unwrap();

    let t = Topology::detect(&mut n3.conn().unwrap()).unwrap();
    assert!(t.read_only.read_only, "{t:?}");
    let why = t.not_writable().expect("a read-only node is not writable");
    assert!(
        why.contains("read_only") && why.contains("READ_ONLY ADMIN"),
        "{why}"
    );
    assert!(
        t.report()
            .iter()
            .any(|l| l.starts_with("not writable:") && l.contains("failover")),
        "{:?}",
        t.report()
    );

    let writer = |n: &Node| {
        mysql::Conn::new(mysql::Opts::from_url(&n.url_for("g_ro_writer", "pw")).unwrap())
            .expect("connect as the ordinary user")
    };
    let err = writer(n3)
        .query_drop("INSERT INTO g_ro.t VALUES (1, 'refused')")
        .expect_err("a read-only node took an ordinary user's write");
    assert_eq!(
        classify(&err),
        Failure::NotWritable,
        "{}",
        server_error(&err)
    );
    // The same write on a writable node goes through, and reaches node 3.
    writer(n1)
        .query_drop("INSERT INTO g_ro.t VALUES (1, 'node1')")
        .unwrap();
    wait_value(n3, "SELECT v FROM g_ro.t WHERE id = 1", "node1");
}

#[test]
fn a_cut_endpoint_means_reconnect_and_a_re_pointed_one_reaches_the_new_node() {
    let _shared = shared();
    let c = cluster();
    let endpoint = Proxy::start(&c.node(2).address()).unwrap();
    // Not `prefer_socket`: the driver would switch to node 3's socket behind the proxy.
    let connect = || {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(endpoint.port)
                .user(Some("root"))
                .prefer_socket(false),
        )
    };
    let mut conn = connect().unwrap();
    let name: Option<String> = conn.query_first("SELECT @@wsrep_node_name").unwrap();
    assert_eq!(name.as_deref(), Some("node3"));

    endpoint.cut();
    let err = conn
        .query_drop("SELECT 1")
        .expect_err("a cut connection answered");
    assert_eq!(classify(&err), Failure::NotWritable, "{err:?}");
    let err = connect().expect_err("a cut endpoint accepted a connection");
    assert_eq!(classify(&err), Failure::NotWritable, "{err:?}");

    // The endpoint fails over to node 1.
    endpoint.point_to(&c.node(0).address());
    endpoint.pass();
    let mut conn = connect().unwrap();
    let name: Option<String> = conn.query_first("SELECT @@wsrep_node_name").unwrap();
    assert_eq!(name.as_deref(), Some("node1"));
}

/// Puts node 2's write-set limit back even when an assertion fails.
struct WsSizeGuard(u64);

impl Drop for WsSizeGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = cluster().node(1).conn() {
            let _ = c.query_drop(format!("SET GLOBAL wsrep_max_ws_size = {}", self.0));
        }
    }
}

#[test]
fn a_write_set_over_wsrep_max_ws_size_is_too_large_and_fits_once_split() {
    let _shared = shared();
    let c = cluster();
    let n2 = c.node(1);
    sql(
        n2,
        "CREATE DATABASE g_size; CREATE TABLE g_size.t (id INT PRIMARY KEY, v VARBINARY(2000))",
    );
    let before: u64 = one(n2, "SELECT @@wsrep_max_ws_size");
    let _guard = WsSizeGuard(before);
    sql(n2, "SET GLOBAL wsrep_max_ws_size = 1048576");

    let t = Topology::detect(&mut n2.conn().unwrap()).unwrap();
    assert_eq!(t.limits.wsrep_max_ws_size, Some(1 << 20), "{t:?}");
    assert!(
        t.report()
            .iter()
            .any(|l| l.contains("wsrep_max_ws_size = 1 MiB")),
        "{:?}",
        t.report()
    );

    // 3000 rows of 1000 bytes in one statement: refused as it runs.
    let mut conn = n2.conn().unwrap();
    conn.query_drop("USE g_size").unwrap();
    let err = conn
        .query_drop("INSERT INTO t SELECT seq, REPEAT('x', 1000) FROM seq_1_to_3000")
        .expect_err("a 3 MB write-set went through a 1 MB limit");
    assert_eq!(classify(&err), Failure::TooLarge, "{}", server_error(&err));
    // Two statements under the limit each, over it together: refused at COMMIT.
    conn.query_drop("START TRANSACTION").unwrap();
    for from in [0, 600] {
        conn.query_drop(format!(
            "INSERT INTO t SELECT {from} + seq, REPEAT('y', 1000) FROM seq_1_to_600"
        ))
        .unwrap();
    }
    let err = conn
        .query_drop("COMMIT")
        .expect_err("a 1.2 MB transaction committed under a 1 MB limit");
    assert_eq!(classify(&err), Failure::TooLarge, "{}", server_error(&err));
    let rows: u64 = one(n2, "SELECT COUNT(*) FROM g_size.t");
    assert_eq!(rows, 0, "a refused transaction left rows");

    // Split as the limits say, the same rows go through and reach every node.
    let per = t.limits.rows_per_transaction(1000, 3000);
    assert!(per < 1000, "{per} rows of 1000 bytes per 1 MiB transaction");
    let mut from = 0;
    while from < 3000 {
        let n = per.min(3000 - from);
        conn.query_drop(format!(
            "INSERT INTO t SELECT {from} + seq, REPEAT('x', 1000) FROM seq_1_to_{n}"
        ))
        .unwrap_or_else(|e| panic!("a chunk of {n} rows: {}", server_error(&e)));
        from += n;
    }
    for n in c.nodes() {
        wait_value(n, "SELECT COUNT(*) FROM g_size.t", "3000");
    }
}

/// Random inserts, updates (including key changes) and deletes on the source, in
/// transactions of 1–5 statements, until `ops` statements ran.
fn write_load(db: &str, ops: usize, seed: u64) {
    let mut c = env().src();
    c.query_drop(format!("USE {db}")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut done = 0;
    while done < ops {
        c.query_drop("START TRANSACTION").unwrap();
        for _ in 0..rng.gen_range(1..=5) {
            let id: u32 = rng.gen_range(1..=3000);
            let sql = match rng.gen_range(0..10) {
                0..=3 => format!(
                    "INSERT INTO orders (id, customer, total, note) VALUES ({id}, {}, {}.{:02}, 'n{id}') \
                     ON DUPLICATE KEY UPDATE total = total + 1",
                    rng.gen_range(1..100),
                    rng.gen_range(0..1000),
                    rng.gen_range(0..100)
                ),
                4..=6 => format!(
                    "UPDATE orders SET total = total * 2, note = CONCAT(note, 'u') WHERE id = {id}"
                ),
                7 => format!(
                    "UPDATE IGNORE orders SET id = id + 10000 + {} WHERE id = {id}",
                    rng.gen_range(0..1000)
                ),
                8 => format!("DELETE FROM orders WHERE id = {id}"),
                _ => format!(
                    "INSERT INTO order_lines (order_id, line, qty) VALUES ({id}, {}, 1) \
                     ON DUPLICATE KEY UPDATE qty = qty + 1",
                    rng.gen_range(1..4)
                ),
            };
            c.query_drop(&sql).unwrap();
            done += 1;
        }
        c.query_drop("COMMIT").unwrap();
    }
}

/// Waits until every table has the source's checksum on every node of the cluster.
fn wait_equal_everywhere(
    db: &str,
    dst_db: &str,
    tables: &[&str],
    limit: Duration,
) -> Result<(), String> {
    wait_equal_on(&[0, 1, 2], db, dst_db, tables, limit)
}

/// Waits until every table has the source's checksum on the nodes `on` (0-based).
fn wait_equal_on(
    on: &[usize],
    db: &str,
    dst_db: &str,
    tables: &[&str],
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let mut src = env().src();
        let mut differ = Vec::new();
        for n in on.iter().map(|i| cluster().node(*i)) {
            let mut d = n.conn().map_err(|e| format!("{e:#}"))?;
            for t in tables {
                let (a, b) = (checksum(&mut src, db, t), checksum(&mut d, dst_db, t));
                if a.is_none() || a != b {
                    differ.push(format!("node{} {t}: source {a:?}, node {b:?}", n.number));
                }
            }
        }
        if differ.is_empty() {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(differ.join("; "));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Two keyed tables on the source (Galera needs a primary key on every table).
fn create_shop(db: &str) {
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total DECIMAL(12,2), note VARCHAR(200), KEY (customer));
         CREATE TABLE order_lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line));
         INSERT INTO orders SELECT seq, seq % 97, seq * 1.5, CONCAT('order ', seq) FROM seq_1_to_2000;
         INSERT INTO order_lines SELECT seq, 1, seq % 7 FROM seq_1_to_2000;"
    ));
}

fn endpoint_url(endpoint: &Proxy) -> String {
    format!("mysql://root@127.0.0.1:{}", endpoint.port)
}

#[test]
fn schema_full_and_incremental_into_the_cluster_under_concurrent_writes() {
    let _shared = shared();
    let c = cluster();
    let db = "g_live";
    create_shop(db);
    // The cluster endpoint: writes reach node 1 through it.
    let endpoint = Proxy::start(&c.node(0).address()).unwrap();
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &format!("mysql://root@127.0.0.1:{}", endpoint.port),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [full]\nchunk_rows = 1000\nrows_per_second = 3000\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let writer = std::thread::spawn(move || write_load(db, 3000, 11));
    let mut child = spawn(&t, &[]);
    writer.join().expect("writer");
    // Equal rows can be seen before the task is past post-load; stopped there, it would
    // (rightly) report an interrupted phase.
    wait_incremental(&t, &mut child);
    let equal = wait_equal_everywhere(db, db, &["orders", "order_lines"], Duration::from_secs(120));
    let log = stop(child);
    if let Err(differ) = equal {
        panic!("the cluster never caught up: {differ}\n{log}");
    }
    assert!(
        endpoint.accepted() > 0,
        "the task did not go through the endpoint"
    );
    // Node 3 took none of the task's writes (they went to node 1): `tidemark verify`
    // pointed at it finds both ends equal.
    let v = TaskDir::with_urls(
        &env().pair.source.url(),
        &c.node(2).url(),
        &format!("[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = v.tidemark(&["verify"]);
    let report = common::text(&out);
    assert!(
        out.status.success(),
        "verify against node 3 found differences:\n{report}"
    );
}

/// Starts a killed node again, and waits for the whole cluster, even when an assertion
/// failed.
struct Revive(usize);

impl Drop for Revive {
    fn drop(&mut self) {
        let c = cluster();
        if c.node(self.0).is_down() {
            if let Err(e) = c.start_again(self.0) {
                eprintln!("node{} did not rejoin: {e:#}", self.0 + 1);
            }
        }
    }
}

#[test]
fn the_written_node_killed_mid_stream_the_task_goes_on_through_the_re_pointed_endpoint() {
    let _alone = exclusive();
    let c = cluster();
    let db = "g_kill";
    create_shop(db);
    let endpoint = Proxy::start(&c.node(0).address()).unwrap();
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &endpoint_url(&endpoint),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [incremental]\nbatch_rows = 50\nthreads = 3\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let writer = std::thread::spawn(move || write_load(db, 3000, 12));
    std::thread::sleep(Duration::from_millis(1500));
    let _revive = Revive(0);
    // Node 1 dies mid-stream; the endpoint moves to node 2, as a load balancer's health
    // check would.
    c.kill(0).expect("SIGKILL node 1");
    endpoint.point_to(&c.node(1).address());
    endpoint.reset();
    writer.join().expect("writer");
    let tables = ["orders", "order_lines"];
    let survivors = wait_equal_on(&[1, 2], db, db, &tables, Duration::from_secs(180));
    // Node 1 rejoins and catches up by IST.
    c.start_again(0).expect("node 1 rejoins");
    let all = wait_equal_everywhere(db, db, &tables, Duration::from_secs(60));
    let log = stop(child);
    if let Err(differ) = survivors.and(all) {
        panic!("the cluster differs from the source after the written node died: {differ}\n{log}");
    }
}

/// Turns node 1's `read_only` off again even when an assertion fails.
struct WritableAgain(usize);

impl Drop for WritableAgain {
    fn drop(&mut self) {
        let _ = cluster().set_read_only(self.0, false);
    }
}

#[test]
fn the_written_node_set_read_only_mid_stream_the_task_moves_to_a_writable_node() {
    let _alone = exclusive();
    let c = cluster();
    let db = "g_ro_live";
    create_shop(db);
    // root writes through read_only on MariaDB (READ_ONLY ADMIN): an ordinary user.
    sql(
        c.node(0),
        "CREATE USER IF NOT EXISTS g_mover@'%' IDENTIFIED BY 'pw';
         GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE VIEW,
               SHOW VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE, EXECUTE, EVENT ON *.* TO g_mover@'%';",
    );
    let (n1, n2) = (c.node(0), c.node(1));
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n\
         [destination]\nurl = \"{}\"\nfailover = [\"127.0.0.1:{}\"]\n\
         [migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
         [incremental]\nbatch_rows = 50\n\
         [[objects]]\ndatabase = \"{db}\"\n",
        env().pair.source.url(),
        n1.url_for("g_mover", "pw"),
        n2.port
    ));
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let writer = std::thread::spawn(move || write_load(db, 2000, 13));
    std::thread::sleep(Duration::from_millis(1000));
    let _writable = WritableAgain(0);
    c.set_read_only(0, true).unwrap();
    writer.join().expect("writer");
    let equal = wait_equal_everywhere(db, db, &["orders", "order_lines"], Duration::from_secs(120));
    c.set_read_only(0, false).unwrap();
    let log = stop(child);
    if let Err(differ) = equal {
        panic!("the task did not move off the read-only node: {differ}\n{log}");
    }
}

/// Puts node 1's write-set limit back even when an assertion fails.
struct WsSizeBack(u64);

impl Drop for WsSizeBack {
    fn drop(&mut self) {
        if let Ok(mut c) = cluster().node(0).conn() {
            let _ = c.query_drop(format!("SET GLOBAL wsrep_max_ws_size = {}", self.0));
        }
    }
}

#[test]
fn a_large_source_transaction_is_split_under_wsrep_max_ws_size() {
    let _alone = exclusive();
    let c = cluster();
    let n1 = c.node(0);
    let db = "g_big";
    // 200 000 rows of 1 000 bytes: a 200 MB table, about 200 times the write-set limit,
    // inserted on the source in parts so that the source's binlog cache stays small.
    // Their keys start at 1 000 001, clear of the source transaction's below.
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(1000));"
    ));
    for part in 0..10 {
        env().src_sql(&format!(
            "USE {db}; INSERT INTO t SELECT {} + seq, REPEAT(CHAR(97 + seq % 26), 1000) FROM seq_1_to_20000",
            1_000_000 + part * 20_000
        ));
    }
    let bytes: u64 = env()
        .src()
        .query_first(format!("SELECT SUM(LENGTH(id) + LENGTH(v)) FROM {db}.t"))
        .unwrap()
        .unwrap();
    assert!(bytes >= 200_000_000, "the table has {bytes} bytes");
    let endpoint = Proxy::start(&n1.address()).unwrap();
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &endpoint_url(&endpoint),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let before: u64 = one(n1, "SELECT @@wsrep_max_ws_size");
    let _back = WsSizeBack(before);
    sql(n1, "SET GLOBAL wsrep_max_ws_size = 1048576");
    let copy = Instant::now();
    let mut child = spawn(&t, &[]);
    wait_incremental_within(&t, &mut child, Duration::from_secs(600));
    eprintln!("the 200 MB table was copied in {:?}", copy.elapsed());
    // One source transaction of 100 000 rows, several MB as a write-set.
    env().src_sql(&format!(
        "USE {db}; START TRANSACTION;
         INSERT INTO t SELECT 100000 + seq, REPEAT('n', 60) FROM seq_1_to_100000;
         COMMIT;"
    ));
    let equal = wait_equal_everywhere(db, db, &["t"], Duration::from_secs(180));
    let log = stop(child);
    if let Err(differ) = equal {
        panic!("the large transaction did not arrive: {differ}\n{log}");
    }
}

/// Ends node 3's isolation and waits for the whole cluster; restarts node 3 (it then
/// rejoins by IST) when it does not merge back on its own.
struct Rejoin;

impl Drop for Rejoin {
    fn drop(&mut self) {
        let c = cluster();
        let _ = c.node(2).conn().and_then(|mut n| {
            n.query_drop("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
                .map_err(Into::into)
        });
        if c.wait_synced().is_err() {
            let _ = c.restart(2, Duration::from_millis(100));
        }
    }
}

#[test]
fn a_node_outside_the_primary_component_is_reported_and_its_refusal_means_reconnect() {
    let _alone = exclusive();
    let c = cluster();
    let n3 = c.node(2);
    sql(
        c.node(0),
        "CREATE DATABASE g_np; CREATE TABLE g_np.t (id INT PRIMARY KEY)",
    );
    wait_value(
        n3,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'g_np'",
        "1",
    );
    let _rejoin = Rejoin;
    // Cut node 3 off the group: it is left alone in a non-primary component.
    sql(n3, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
    let deadline = Instant::now() + Duration::from_secs(60);
    while n3
        .status()
        .map(|s| s.cluster_status == "Primary")
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "node 3 stayed in the primary component"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = Topology::detect(&mut n3.conn().unwrap()).expect("detect on a non-primary node");
    let why = t
        .not_writable()
        .expect("a non-primary node is not writable");
    assert!(why.contains("not in the primary component"), "{why}");
    let err = n3
        .conn()
        .unwrap()
        .query_drop("INSERT INTO g_np.t VALUES (1)")
        .expect_err("a non-primary node took a write");
    assert_eq!(
        classify(&err),
        Failure::NotWritable,
        "{}",
        server_error(&err)
    );
    // The rest of the cluster goes on.
    sql(c.node(0), "INSERT INTO g_np.t VALUES (1)");
}

#[test]
fn a_keyless_and_a_myisam_table_fail_the_precheck_naming_them_and_nothing_is_written() {
    let _shared = shared();
    let c = cluster();
    let db = "g_rules";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE keyed (id INT PRIMARY KEY, v INT);
         CREATE TABLE nokey (a INT, b VARCHAR(10));
         CREATE TABLE legacy (id INT PRIMARY KEY, v INT) ENGINE = MyISAM;
         INSERT INTO keyed VALUES (1, 1); INSERT INTO nokey VALUES (1, 'x'); INSERT INTO legacy VALUES (1, 1);"
    ));
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &c.node(0).url(),
        &format!("[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"{db}\"\n"),
    );
    let out = t.tidemark(&["precheck"]);
    let report = common::text(&out);
    assert!(!out.status.success(), "the precheck passed:\n{report}");
    for want in [
        "destination-topology",
        "Galera cluster of 3",
        "destination-table-rules",
        "`g_rules`.`nokey` has no primary key",
        "ADD PRIMARY KEY",
        "`g_rules`.`legacy` uses the MyISAM engine",
        "ENGINE = InnoDB",
        "destination-ddl",
        "Total Order Isolation",
    ] {
        assert!(report.contains(want), "{want:?} missing:\n{report}");
    }
    assert!(
        !report.contains("`g_rules`.`keyed`"),
        "a keyed InnoDB table was named:\n{report}"
    );
    let out = t.tidemark(&["run", "--no-progress"]);
    assert!(
        !out.status.success(),
        "the run went on:\n{}",
        common::text(&out)
    );
    let dbs: u64 = one(
        c.node(0),
        &format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{db}'"),
    );
    assert_eq!(dbs, 0, "something was written on the cluster");
}

#[test]
fn the_written_node_killed_mid_copy_the_task_goes_on_through_the_failover_list() {
    let _alone = exclusive();
    let c = cluster();
    let db = "g_kill_full";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100), n INT);
         INSERT INTO t SELECT seq, CONCAT('row ', seq), seq % 1000 FROM seq_1_to_20000;"
    ));
    let (n1, n2) = (c.node(0), c.node(1));
    let t = TaskDir::raw(&format!(
        "[source]\nurl = \"{}\"\n\
         [destination]\nurl = \"{}\"\nfailover = [\"127.0.0.1:{}\"]\n\
         [migration]\ntypes = [\"schema\", \"full\"]\n\
         [full]\nchunk_rows = 1000\nrows_per_second = 4000\n\
         [[objects]]\ndatabase = \"{db}\"\n",
        env().pair.source.url(),
        n1.url(),
        n2.port
    ));
    let mut child = spawn(&t, &[]);
    // Part of the copy is on the cluster: node 1, the written node, dies.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let copied: Option<u64> = n1.conn().ok().and_then(|mut c| {
            c.query_first(format!("SELECT COUNT(*) FROM {db}.t"))
                .ok()
                .flatten()
        });
        if copied.is_some_and(|n| n >= 2000) {
            break;
        }
        if Instant::now() > deadline || child.try_wait().expect("try_wait").is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for tidemark");
            panic!("the copy never reached node 1:\n{}", common::text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _revive = Revive(0);
    c.kill(0).expect("SIGKILL node 1");
    let out = child.wait_with_output().expect("wait for tidemark");
    let log = common::text(&out);
    assert!(
        out.status.success(),
        "the task failed after the written node died:\n{log}"
    );
    assert!(
        log.contains("failover"),
        "the task did not say it moved to the failover address:\n{log}"
    );
    let survivors = wait_equal_on(&[1, 2], db, db, &["t"], Duration::from_secs(60));
    c.start_again(0).expect("node 1 rejoins");
    let all = wait_equal_everywhere(db, db, &["t"], Duration::from_secs(60));
    if let Err(differ) = survivors.and(all) {
        panic!("the cluster differs from the source after the written node died mid-copy: {differ}\n{log}");
    }
}

/// The certification conflicts node 1 counted so far: its local transactions aborted by
/// a conflicting write-set from another node, or failing certification at commit.
fn conflicts_on(n: &Node) -> u64 {
    let mut c = n.conn().expect("node connection");
    let rows: Vec<(String, String)> = c
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_bf_aborts', 'wsrep_local_cert_failures')",
        )
        .expect("wsrep status");
    rows.iter().filter_map(|(_, v)| v.parse::<u64>().ok()).sum()
}

/// Another client updates, on node 2, the very rows the task is applying changes to on
/// node 1. Galera certifies both nodes' transactions in one order: the task's lose as
/// deadlocks (1213, brute-force aborts or failed certification) and must be retried.
///
/// The final state is well defined because node 2's client only UPDATEs rows that exist
/// (it never inserts or deletes, which would make the task's exact-mode inserts collide)
/// and stops before the source's last transaction, which writes every row: the task
/// applies an update as the row's whole after-image (REPLACE), and Galera orders that
/// after node 2's last commit, so each row ends as the source has it.
#[test]
fn conflicting_writes_on_another_node_are_retried_and_the_final_state_is_exact() {
    let _alone = exclusive();
    let c = cluster();
    let (n1, n2) = (c.node(0), c.node(1));
    let db = "g_conflict";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE hot (id INT PRIMARY KEY, n INT NOT NULL, who VARCHAR(20) NOT NULL);
         INSERT INTO hot SELECT seq, 0, 'source' FROM seq_1_to_10;"
    ));
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &n1.url(),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [incremental]\nbatch_rows = 20\nthreads = 2\n\
             [advanced]\nretry_other_minutes = 5\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let mut child = spawn(&t, &[]);
    wait_incremental(&t, &mut child);
    let conflicts_before = conflicts_on(n1);

    let stop_other = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (stop_other, url) = (stop_other.clone(), n2.url());
        std::thread::spawn(move || {
            let mut c = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(21);
            let mut committed = 0u64;
            while !stop_other.load(std::sync::atomic::Ordering::Relaxed) {
                let id: u32 = rng.gen_range(1..=10);
                // Its own transactions lose conflicts too: those are simply dropped.
                if c.query_drop(format!(
                    "UPDATE g_conflict.hot SET n = n + 1000, who = 'node2' WHERE id = {id}"
                ))
                .is_ok()
                {
                    committed += 1;
                }
            }
            committed
        })
    };
    // The source keeps changing the same rows until node 1 counted conflicts (or 60 s).
    let mut src = env().src();
    src.query_drop(format!("USE {db}")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(22);
    let started = Instant::now();
    let mut txns = 0;
    while txns < 300
        || (conflicts_on(n1) == conflicts_before && started.elapsed() < Duration::from_secs(60))
    {
        src.query_drop("START TRANSACTION").unwrap();
        for _ in 0..3 {
            let id: u32 = rng.gen_range(1..=10);
            src.query_drop(format!(
                "UPDATE hot SET n = n + 1, who = 'source' WHERE id = {id}"
            ))
            .unwrap();
        }
        src.query_drop("COMMIT").unwrap();
        txns += 1;
    }
    stop_other.store(true, std::sync::atomic::Ordering::Relaxed);
    let committed_on_node2 = other.join().expect("node 2's client");
    let conflicts = conflicts_on(n1) - conflicts_before;
    // The last word on every row is the source's.
    src.query_drop("UPDATE hot SET n = n + 1, who = 'source'")
        .unwrap();
    let equal = wait_equal_everywhere(db, db, &["hot"], Duration::from_secs(120));
    let log = stop(child);
    if let Err(differ) = equal {
        panic!("the cluster differs from the source after the conflicts: {differ}\n{log}");
    }
    assert!(committed_on_node2 > 0, "node 2's client never committed");
    assert!(
        conflicts > 0,
        "node 1 counted no certification conflict in {txns} source transactions\n{log}"
    );
    assert!(
        log.contains("applying a batch failed") && log.contains("1213"),
        "the task did not log a retried deadlock (node 1 counted {conflicts} conflicts):\n{log}"
    );
}

/// Rows of `db`.`table` on node 1, or 0 while the table does not exist yet.
fn rows_on_node1(db: &str, table: &str) -> u64 {
    cluster()
        .node(0)
        .conn()
        .ok()
        .and_then(|mut c| {
            c.query_first(format!("SELECT COUNT(*) FROM {db}.{table}"))
                .ok()
                .flatten()
        })
        .unwrap_or(0)
}

/// Samples the rows of `db`.`t` on node 1 until `want`, checking that they never arrive faster than
/// `rate` rows/s after `since` (plus one second of burst and `in_flight` rows written
/// at once); returns when the last sample below `want` and the first at it were taken.
fn watch_rate(
    child: &mut std::process::Child,
    db: &str,
    since: Instant,
    base: u64,
    want: u64,
    rate: u64,
    in_flight: u64,
) -> Duration {
    let mut first_row = None;
    loop {
        let n = rows_on_node1(db, "t").saturating_sub(base);
        let elapsed = since.elapsed();
        if n > 0 && first_row.is_none() {
            first_row = Some(elapsed);
        }
        let allowed = (rate as f64 * (elapsed.as_secs_f64() + 1.0)) as u64 + in_flight;
        assert!(
            n <= allowed,
            "{n} rows on the cluster after {elapsed:?}: faster than {rate} rows/s (at most {allowed})"
        );
        if n >= want {
            return elapsed - first_row.unwrap_or_default();
        }
        if elapsed > Duration::from_secs(180) || child.try_wait().expect("try_wait").is_some() {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("only {n} of {want} rows after {elapsed:?}:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `[full] rows_per_second` and `[incremental] rows_per_second` hold into the cluster
/// (the reference cannot throttle a full migration into PolarDB).
#[test]
fn the_full_copy_and_the_changes_into_the_cluster_are_throttled() {
    let _shared = shared();
    let c = cluster();
    let db = "g_throttle";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50));
         INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_12000;"
    ));
    let t = TaskDir::with_urls(
        &env().pair.source.url(),
        &c.node(0).url(),
        &format!(
            "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n\
             [full]\nchunk_rows = 1000\nthreads = 2\nrows_per_second = 2000\n\
             [incremental]\nbatch_rows = 100\nrows_per_second = 1000\n\
             [[objects]]\ndatabase = \"{db}\"\n"
        ),
    );
    let started = Instant::now();
    let mut child = spawn(&t, &[]);
    // 12 000 rows at 2 000 rows/s: about 6 s, never faster than the rate allows.
    let took = watch_rate(&mut child, db, started, 0, 12_000, 2000, 2000);
    assert!(
        took >= Duration::from_secs(4),
        "12 000 rows copied in {took:?} at 2 000 rows/s"
    );
    wait_incremental(&t, &mut child);
    // 5 000 rows in 50 source transactions, applied at 1 000 rows/s.
    let since = Instant::now();
    for part in 0..50 {
        env().src_sql(&format!(
            "USE {db}; INSERT INTO t SELECT {} + seq, 'change' FROM seq_1_to_100",
            100_000 + part * 100
        ));
    }
    let took = watch_rate(&mut child, db, since, 12_000, 5_000, 1000, 200);
    let log = stop(child);
    assert!(
        took >= Duration::from_secs(3),
        "5 000 row changes applied in {took:?} at 1 000 rows/s\n{log}"
    );
    let equal = wait_equal_everywhere(db, db, &["t"], Duration::from_secs(60));
    if let Err(differ) = equal {
        panic!("{differ}\n{log}");
    }
}

fn incremental_status(t: &TaskDir) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(&t.tidemark(&["status", "--json"]).stdout)
        .map(|v| v["incremental"].clone())
        .unwrap_or_default()
}

fn source_databases() -> Vec<String> {
    common::strings(&mut env().src(), "SHOW DATABASES")
}

/// `[advanced] heartbeat`: off by default, the task writes nothing to the source (its
/// binlog does not move while the task runs) and still reports latency from the source's
/// own commits; on, with `heartbeat_database = "dts"` as the reference names it, the row
/// appears in `dts`.`heartbeat` on the source, its transactions keep the applied
/// position and latency fresh on a quiet source, and `dts` is not migrated.
#[test]
fn the_heartbeat_is_off_by_default_and_writes_into_its_database_when_on() {
    let _alone = exclusive();
    let c = cluster();
    let db = "g_hb";
    env().src_sql(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);"
    ));
    let task = |extra: &str, rename: &str| {
        TaskDir::with_urls(
            &env().pair.source.url(),
            &c.node(0).url(),
            &format!(
                "[migration]\ntypes = [\"schema\", \"full\", \"incremental\"]\n{extra}\
                 [[objects]]\ndatabase = \"{db}\"\nrename = \"{rename}\"\n"
            ),
        )
    };
    let binlog_at = || -> Vec<mysql::Value> {
        common::rows(&mut env().src(), "SHOW MASTER STATUS")
            .into_iter()
            .next()
            .expect("the source logs binlogs")
            .into_iter()
            .take(2)
            .collect()
    };

    // Off (the default).
    let off = task("", "g_hb_off");
    let mut child = spawn(&off, &[]);
    wait_incremental(&off, &mut child);
    let before = binlog_at();
    // Watching for something not to happen takes time: 4 s, four heartbeat periods.
    std::thread::sleep(Duration::from_secs(4));
    let after = binlog_at();
    env().src_sql(&format!("INSERT INTO {db}.t VALUES (2)"));
    wait_value(c.node(0), "SELECT COUNT(*) FROM g_hb_off.t", "2");
    let status = incremental_status(&off);
    let log = stop(child);
    assert_eq!(
        before, after,
        "the source's binlog moved with the heartbeat off\n{log}"
    );
    assert!(
        status["transactions"].as_u64().unwrap_or(0) >= 1
            && status["latency_seconds"].as_f64().is_some_and(|l| l < 60.0),
        "no latency from the source's own commit: {status}"
    );
    let dbs = source_databases();
    assert!(
        !dbs.iter().any(|d| d == "tidemark_heartbeat" || d == "dts"),
        "the heartbeat's database was created with the heartbeat off: {dbs:?}"
    );

    // On, in `dts`.
    let on = task(
        "[advanced]\nheartbeat = true\nheartbeat_database = \"dts\"\n",
        "g_hb_on",
    );
    let mut child = spawn(&on, &[]);
    wait_incremental(&on, &mut child);
    let first = incremental_status(&on)["transactions"]
        .as_u64()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = incremental_status(&on);
        if s["transactions"].as_u64().unwrap_or(0) >= first + 3 {
            break s;
        }
        if Instant::now() > deadline {
            let log = stop(child);
            panic!("no heartbeat transactions reached the task on a quiet source: {s}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let row: Option<(String, i64)> = env()
        .src()
        .query_first("SELECT task, TIMESTAMPDIFF(SECOND, ts, UTC_TIMESTAMP(6)) FROM dts.heartbeat")
        .unwrap();
    let log = stop(child);
    let latency = status["latency_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        latency < 3.0,
        "latency {latency} on a quiet source with heartbeats: {status}\n{log}"
    );
    match row {
        Some((task, age)) => assert!(
            task == "task" && age < 5,
            "the heartbeat row is ({task}, {age} s old)"
        ),
        None => panic!("no heartbeat row in `dts`.`heartbeat` on the source\n{log}"),
    }
    assert!(
        !source_databases().iter().any(|d| d == "tidemark_heartbeat"),
        "the default heartbeat database was used"
    );
    let migrated: u64 = one(
        c.node(0),
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'dts'",
    );
    assert_eq!(migrated, 0, "the heartbeat database was migrated");
}
