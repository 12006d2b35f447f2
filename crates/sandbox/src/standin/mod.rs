//! Stand-ins for engines that cannot run on this machine: MySQL-protocol servers on
//! loopback that imitate the documented behaviour of AnalyticDB for MySQL 3.0
//! ([`adb`]) and of LindormTable's MySQL-compatible SQL ([`lindorm`]), storing their
//! data in a throwaway MariaDB server each manages.
//!
//! They are stand-ins, not the engines: each module doc lists every behaviour it
//! imitates with the public document it comes from, and docs/standins.md says what is
//! not imitated. A test that passes against a stand-in only shows that Tidemark keeps
//! to the documented rules; the contract tests in crates/sandbox/tests/ run the same
//! scenarios against a real instance when one is configured.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let adb = tidemark_sandbox::standin::adb::AdbStandIn::start(&Default::default())?;
//! let url = adb.url(); // mysql://root@127.0.0.1:PORT
//! # Ok(()) }
//! ```

use anyhow::{Context, Result};
use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod adb;
pub(crate) mod adb_binlog;
pub mod lindorm;
pub(crate) mod sql;
pub mod wire;

use wire::{Col, Greeting, Reply, Session, SqlError};

/// What a stand-in plugs into the listener.
pub(crate) trait Engine: Send + Sync + 'static {
    fn greeting(&self) -> Greeting;
    fn open(&self, db: Option<&str>) -> std::result::Result<Box<dyn Session>, SqlError>;
    /// Whether COM_RESET_CONNECTION is served (it is refused with an error otherwise).
    fn allow_reset(&self) -> bool;
}

struct Shared {
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// A listening socket on loopback that serves an [`Engine`]; it can be stopped (every
/// connection is closed, new ones are refused) and started again on the same port.
pub(crate) struct Listener {
    pub port: u16,
    engine: Arc<dyn Engine>,
    shared: Mutex<Option<(Arc<Shared>, JoinHandle<()>)>>,
    next_id: Arc<AtomicU32>,
}

impl Listener {
    pub fn start(engine: Arc<dyn Engine>) -> Result<Listener> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a stand-in's port")?;
        let port = listener.local_addr()?.port();
        let l = Listener {
            port,
            engine,
            shared: Mutex::new(None),
            next_id: Arc::new(AtomicU32::new(1)),
        };
        l.run(listener)?;
        Ok(l)
    }

    fn run(&self, listener: TcpListener) -> Result<()> {
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let engine = self.engine.clone();
        let ids = self.next_id.clone();
        let h = std::thread::spawn(move || accept_loop(listener, s, engine, ids));
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = Some((shared, h));
        Ok(())
    }

    /// Closes the socket and every open connection.
    pub fn stop(&self) {
        let taken = self.shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((shared, h)) = taken {
            shared.stop.store(true, Ordering::SeqCst);
            let _ = h.join();
            for c in shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens again on the same port after [`Listener::stop`].
    pub fn start_again(&self) -> Result<()> {
        if self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            anyhow::bail!("the stand-in on port {} is running", self.port);
        }
        // The port was ours a moment ago; a connection in TIME_WAIT can delay the bind.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("binding port {} again", self.port))
                }
            }
        };
        self.run(listener)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    engine: Arc<dyn Engine>,
    ids: Arc<AtomicU32>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                let _ = sock.set_nonblocking(false);
                if let Ok(c) = sock.try_clone() {
                    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                    // Forget connections that have gone away.
                    conns.retain(|c| c.peer_addr().is_ok());
                    conns.push(c);
                }
                let engine = engine.clone();
                let id = ids.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let greeting = engine.greeting();
                    let open = |db: Option<&str>| engine.open(db);
                    let _ = wire::serve(sock, id, &greeting, &open, engine.allow_reset());
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn my_err(e: mysql::Error) -> SqlError {
    match e {
        mysql::Error::MySqlError(e) => SqlError::new(e.code, &e.state, e.message),
        other => SqlError::new(
            2013,
            "HY000",
            format!("the stand-in lost its storage server: {other}"),
        ),
    }
}

fn col(c: &mysql::Column) -> Col {
    Col {
        schema: c.schema_str().into_owned(),
        table: c.table_str().into_owned(),
        org_table: c.org_table_str().into_owned(),
        name: c.name_str().into_owned(),
        org_name: c.org_name_str().into_owned(),
        charset: c.character_set(),
        length: c.column_length(),
        column_type: c.column_type() as u8,
        flags: c.flags().bits(),
        decimals: c.decimals(),
    }
}

/// Runs `sql` on the storage server and turns every result into a [`Reply`], values as
/// the text protocol carries them.
pub(crate) fn forward(conn: &mut mysql::Conn, sql: &str) -> Vec<Reply> {
    use mysql::prelude::Queryable;
    let mut out = Vec::new();
    let mut r = match conn.query_iter(sql) {
        Ok(r) => r,
        Err(e) => return vec![Reply::Err(my_err(e))],
    };
    while let Some(set) = r.iter() {
        let cols: Vec<Col> = set.columns().as_ref().iter().map(col).collect();
        let affected = set.affected_rows();
        let last_insert_id = set.last_insert_id().unwrap_or(0);
        let info = set.info_str().into_owned();
        let mut rows = Vec::new();
        for row in set {
            match row {
                Ok(row) => rows.push(
                    row.unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql::Value::NULL => None,
                            mysql::Value::Bytes(b) => Some(b),
                            // The text protocol carries bytes only.
                            other => Some(other.as_sql(true).into_bytes()),
                        })
                        .collect(),
                ),
                Err(e) => {
                    out.push(Reply::Err(my_err(e)));
                    return out;
                }
            }
        }
        if cols.is_empty() {
            out.push(Reply::Ok {
                affected,
                last_insert_id,
                info,
            });
        } else {
            out.push(Reply::Rows { cols, rows });
        }
    }
    out
}

/// Answers the variable reads a stand-in must not take from its storage server:
/// `@@socket` names MariaDB's unix socket, and the `mysql` crate, told so, would connect
/// to MariaDB directly, past the stand-in. An empty name keeps it on TCP.
pub(crate) fn own_variable(sql: &str) -> Option<Reply> {
    let compact: String = sql
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    (compact == "select@@socket").then(|| Reply::Rows {
        cols: vec![Col::text("@@socket")],
        rows: vec![vec![Some(Vec::new())]],
    })
}

/// A connection to the storage server for one client session.
pub(crate) fn storage_conn(
    port: u16,
    db: Option<&str>,
) -> std::result::Result<mysql::Conn, SqlError> {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some("root"))
        .db_name(db)
        .init(vec![
            "SET NAMES utf8mb4".to_string(),
            "SET time_zone = '+00:00'".to_string(),
        ]);
    mysql::Conn::new(opts).map_err(my_err)
}
