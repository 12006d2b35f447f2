//! A stand-in for AnalyticDB for MySQL 3.0 (ADB). **It is not the engine**: a
//! MySQL-protocol server on loopback that checks ADB's documented DDL rules, keeps each
//! table's ADB definition, and stores the rows in a throwaway MariaDB server it starts.
//! It exists because no ADB server can run here; see docs/standins.md for what it does
//! not imitate.
//!
//! Imitated behaviours and their public sources (alibabacloud.com/help/en/analyticdb/
//! analyticdb-for-mysql/…, "AnalyticDB for MySQL" documentation):
//!
//! - `CREATE TABLE` grammar: column `type [DEFAULT {constant|CURRENT_TIMESTAMP}]
//!   [AUTO_INCREMENT] [NOT NULL|NULL] [PRIMARY KEY] [COMMENT '…']`; table constraints
//!   `{INDEX|KEY}`, `FULLTEXT`, `PRIMARY KEY`, `CLUSTERED KEY`, `ANN INDEX`,
//!   `[CONSTRAINT s] FOREIGN KEY (c) REFERENCES t (c)`; table options `DISTRIBUTED BY
//!   HASH(cols) | DISTRIBUTED BY BROADCAST`, `PARTITION BY VALUE(col |
//!   DATE_FORMAT(col,'fmt') | FROM_UNIXTIME(col,'fmt')) LIFECYCLE N`, `INDEX_ALL`,
//!   `STORAGE_POLICY`, `BLOCK_SIZE`, `ENGINE='XUANWU'|'XUANWU_V2'`, `RT_ENGINE`,
//!   `TABLE_PROPERTIES`, `COMMENT` ("Use the CREATE TABLE statement to create
//!   partitioned tables and replicated tables", …/developer-reference/create-table).
//!   Anything outside that grammar (UNIQUE, CHECK, `ON UPDATE`, `CHARACTER SET`,
//!   `ENGINE=InnoDB`, `DEFAULT CHARSET`, …) is rejected with a syntax error. The older
//!   spelling `DISTRIBUTE BY` is accepted (huaweicloud DSC "DISTRIBUTE BY" page quotes
//!   ADB DDL written that way); [`Options::spelling`] picks which one `SHOW CREATE TABLE`
//!   prints.
//! - The primary key must contain the distribution key and the partition key; without
//!   a distribution key the primary key is used; without a primary key the engine adds
//!   `__adb_auto_id__` as primary and distribution key ("Table schema design",
//!   …/use-cases/schema-design, and the create-table page).
//! - Foreign keys are informational (not enforced) and single-column only ("Eliminate
//!   redundant JOINs using primary and foreign key constraints",
//!   …/user-guide/primary-and-foreign-key-constraints: "不支持多个列作为外键"); referential
//!   actions (`ON DELETE …`) are not in the grammar and are rejected.
//! - Types ("Basic data types", …/developer-reference/basic-data-types): BOOLEAN,
//!   TINYINT, SMALLINT, INT/INTEGER, BIGINT, FLOAT, DOUBLE, DECIMAL/NUMERIC with
//!   precision 1–38, VARCHAR (length only for syntax compatibility, values up to 16 MB),
//!   BINARY, DATE, TIME ('00:00:00'–'23:59:59'), DATETIME, TIMESTAMP, POINT, JSON,
//!   ARRAY/MAP. UNSIGNED, ZEROFILL, MEDIUMINT, BIT, YEAR, ENUM, SET and other geometry
//!   types are rejected, each with a message naming the ADB type to use; so are the
//!   MySQL names the page maps onto VARCHAR and BINARY (CHAR, TEXT, BLOB, …), which the
//!   stand-in does not take on trust.
//!   AUTO_INCREMENT only on BIGINT; JSON takes no DEFAULT (research notes of issue 12).
//! - `ALTER TABLE` ("ALTER TABLE", …/developer-reference/alter-table): `ADD [COLUMN]
//!   def`, `ADD [COLUMN] (def, …)`, `DROP [COLUMN] c`, `MODIFY [COLUMN] c def`, `RENAME
//!   COLUMN a TO b`, `COMMENT '…'`; primary-key, distribution-key and partition-key
//!   columns can be neither dropped, modified nor renamed ("modify column type is not
//!   supported, col=… is primary key"); clauses outside the grammar (`CHANGE`, `ADD
//!   PRIMARY KEY`, `ALTER COLUMN`, `ENGINE=`, `CONVERT TO`, …) are rejected. Index,
//!   partition and storage-policy clauses of the grammar are answered "not implemented
//!   by the stand-in" (error 1235), never silently accepted.
//! - Per-table binary logs ("Use DTS to subscribe to AnalyticDB for MySQL binary logs",
//!   …/user-guide/use-dts-to-subscribe-to-analyticdb-for-mysql-binary-logs, and
//!   "Subscribe to binary logs by using Flink", help.aliyun.com/zh/analyticdb/
//!   analyticdb-for-mysql/…/flink-subscribes-binlog): enabled per table with the
//!   `CREATE TABLE … BINLOG=true` option or `ALTER TABLE t BINLOG=true` (and off with
//!   `BINLOG=false`); retention `ALTER TABLE t binlog_ttl='…'` in milliseconds (plain
//!   digits) or `Ns`/`Nh`/`Nd`, default 6h, at most 365d, read back with `SHOW CREATE
//!   TABLE`; positions with `SHOW MASTER STATUS FOR t` and `SHOW BINARY LOGS FOR t`;
//!   engine 3.2.1.0 or later (the default [`Options::adb_version`]); XUANWU_V2 tables
//!   cannot enable it on the versions those pages cover, so `BINLOG=true` on an
//!   `ENGINE='XUANWU_V2'` table is refused.
//!   **The stand-in's own assumptions**, because ADB's subscription wire protocol is
//!   not publicly documented: the per-table file names `adb-binlog.<table id>.<storage
//!   binlog file>` (the id is the stand-in catalog's); serving the stream through
//!   MySQL replication (`COM_REGISTER_SLAVE`, then `COM_BINLOG_DUMP` with such a name
//!   and a position; `COM_BINLOG_DUMP_GTID` refused) with MariaDB's events and the
//!   storage server's positions, filtered to the table (see `standin/adb_binlog.rs`);
//!   the error texts and numbers (1236 for a bad dump request, 1235 when BINLOG is off).
//!   Retention is not enforced (nothing expires).
//! - `SHOW CREATE TABLE` answers in ADB's form: `DISTRIBUTED BY HASH(…)` (or
//!   `BROADCAST`), `PARTITION BY VALUE(…) LIFECYCLE N`, `INDEX_ALL='Y'`,
//!   `STORAGE_POLICY='HOT'`, `ENGINE='XUANWU'`, `TABLE_PROPERTIES='{"format":"columnstore"}'`
//!   filled in when not given, as in output of real clusters quoted publicly (research
//!   notes of issue 12), keyless tables with `__adb_auto_id__`.
//! - Writes: `INSERT INTO` keeps the existing row on a primary-key conflict (the source
//!   likens it to `INSERT IGNORE`; values that do not fit stay errors here; "AnalyticDB MySQL数据变更", developer.aliyun.com/article/1222956);
//!   `REPLACE INTO` overwrites the row; `INSERT … ON DUPLICATE KEY UPDATE` takes only
//!   constant assignments (and `VALUES(col)`), no arithmetic or conditional expressions
//!   ("INSERT ON DUPLICATE KEY UPDATE", …/developer-reference/insert-on-duplicate-key-update).
//! - A statement may not exceed 16 MB ("数据变更最佳实践", help.aliyun.com/zh/analyticdb/
//!   analyticdb-for-mysql/use-cases/best-practices-on-data-changes: "写入的总数据量不宜太大,
//!   不超过16MB"). The document states it as advice; the stand-in enforces it
//!   ([`Options::max_statement_bytes`]) so that Tidemark is tested to stay under it.
//! - `SELECT adb_version()` answers the engine version ([`Options::adb_version`], default
//!   3.2.1.0, the minimum for binlog subscription per "Use DTS to subscribe to
//!   AnalyticDB for MySQL binary logs", …/user-guide/use-dts-to-subscribe-to-analyticdb-for-mysql-binary-logs).
//!   `@@version` and `VERSION()` answer [`SERVER_VERSION`], a MySQL 5.7 form chosen by
//!   the stand-in (the documents do not give ADB's).
//! - Wire protocol: MySQL's, with COM_QUERY, COM_INIT_DB, COM_PING, COM_QUIT,
//!   COM_RESET_CONNECTION, server-side prepared statements, COM_REGISTER_SLAVE and
//!   COM_BINLOG_DUMP; `mysql_native_password`
//!   logins.
//!
//! Everything else that is SQL (SELECT, UPDATE, DELETE, SHOW, SET, information_schema)
//! is forwarded to MariaDB, so its answers are MariaDB's (information_schema shows the
//! storage types, e.g. `mediumtext` for a non-key VARCHAR).

use super::adb_binlog::{parse_table_file, table_file, Feed};
use super::sql::{lit, q, syntax, Tok, P};
use super::wire::{
    Col, Greeting, Replication, Reply, Session, SqlError, COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID,
    COM_REGISTER_SLAVE,
};
use super::{forward, storage_conn, Engine, Listener};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::sync::Arc;

/// The database where the stand-in keeps each table's ADB definition: MariaDB's own
/// system schema, which tools reading `information_schema` already leave out, and which
/// clients of the stand-in cannot use.
pub const META_DB: &str = "mysql";

/// How `SHOW CREATE TABLE` spells the distribution clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Spelling {
    /// `DISTRIBUTED BY` (the current documentation).
    #[default]
    Distributed,
    /// `DISTRIBUTE BY` (older clusters' output).
    Distribute,
}

/// What the handshake, `@@version` and `VERSION()` report.
pub const SERVER_VERSION: &str = "5.7.99-AnalyticDB-standin";

#[derive(Clone, Debug)]
pub struct Options {
    pub user: String,
    pub password: String,
    pub max_statement_bytes: usize,
    pub spelling: Spelling,
    /// What `SELECT adb_version()` answers (the documented way to read the engine
    /// version, "Eliminate redundant JOINs…" page), e.g. to test a version precheck.
    pub adb_version: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: "root".into(),
            password: String::new(),
            max_statement_bytes: 16 << 20,
            spelling: Spelling::Distributed,
            adb_version: "3.2.1.0".into(),
        }
    }
}

/// A running ADB stand-in: a loopback MySQL-protocol port in front of a MariaDB server.
pub struct AdbStandIn {
    listener: Listener,
    storage: crate::Server,
    opts: Options,
}

impl AdbStandIn {
    pub fn start(opts: &Options) -> Result<AdbStandIn> {
        let storage = crate::Server::start(&crate::Options {
            // Row images for the per-table binary logs; no checksums, so events the
            // stand-in rewrites (ROTATE, HEARTBEAT) need none.
            binlog: true,
            server_id: 90,
            time_zone: Some("+00:00".into()),
            extra_args: vec![
                // Large enough that the stand-in's own statement limit is what a client
                // meets, not the storage server's.
                "--max-allowed-packet=1G".into(),
                "--explicit-defaults-for-timestamp=ON".into(),
                format!("--version={SERVER_VERSION}"),
                "--binlog-checksum=NONE".into(),
            ],
        })
        .context("starting the ADB stand-in's storage server")?;
        let mut c = storage.conn()?;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {m}.`adb_standin_tables` \
             (db VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL, ddl MEDIUMTEXT NOT NULL, \
             id BIGINT NOT NULL AUTO_INCREMENT, binlog_file VARCHAR(255) NULL, \
             binlog_pos BIGINT NULL, PRIMARY KEY (db, name), UNIQUE KEY (id)) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            m = q(META_DB)
        ))
        .context("creating the ADB stand-in's catalog")?;
        let engine = Arc::new(AdbEngine {
            storage_port: storage.port,
            opts: opts.clone(),
        });
        let listener = Listener::start(engine)?;
        Ok(AdbStandIn {
            listener,
            storage,
            opts: opts.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.port
    }

    /// `mysql://USER[:PASSWORD]@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        if self.opts.password.is_empty() {
            format!("mysql://{}@127.0.0.1:{}", self.opts.user, self.port())
        } else {
            format!(
                "mysql://{}:{}@127.0.0.1:{}",
                self.opts.user,
                self.opts.password,
                self.port()
            )
        }
    }

    /// The MariaDB server holding the rows (for checks that bypass the stand-in).
    pub fn storage(&self) -> &crate::Server {
        &self.storage
    }

    /// Closes the port and every client connection; data is kept.
    pub fn stop(&self) {
        self.listener.stop();
    }

    /// Serves again on the same port after [`AdbStandIn::stop`].
    pub fn start_again(&self) -> Result<()> {
        self.listener.start_again()
    }
}

struct AdbEngine {
    storage_port: u16,
    opts: Options,
}

impl Engine for AdbEngine {
    fn greeting(&self) -> Greeting {
        Greeting {
            // The mysql crate takes a version above 5.7.3 to mean COM_RESET_CONNECTION.
            server_version: SERVER_VERSION.into(),
            user: self.opts.user.clone(),
            password: self.opts.password.clone(),
        }
    }

    fn open(&self, db: Option<&str>) -> Result<Box<dyn Session>, SqlError> {
        if db == Some(META_DB) {
            return Err(SqlError::new(
                1049,
                "42000",
                format!("Unknown database '{META_DB}'"),
            ));
        }
        Ok(Box::new(AdbSession {
            conn: storage_conn(self.storage_port, db)?,
            storage_port: self.storage_port,
            db: db.map(str::to_string),
            opts: self.opts.clone(),
        }))
    }

    fn allow_reset(&self) -> bool {
        true
    }
}

struct AdbSession {
    conn: mysql::Conn,
    storage_port: u16,
    db: Option<String>,
    opts: Options,
}

impl Session for AdbSession {
    fn query(&mut self, sql: &str) -> Vec<Reply> {
        let stmts = match super::sql::split(sql) {
            Ok(s) => s,
            Err(e) => return vec![Reply::Err(e)],
        };
        let mut out = Vec::new();
        for s in stmts {
            let replies = if let Some(r) = super::own_variable(s) {
                vec![r]
            } else if s
                .split_whitespace()
                .collect::<String>()
                .eq_ignore_ascii_case("SELECTadb_version()")
            {
                vec![Reply::Rows {
                    cols: vec![Col::text("adb_version()")],
                    rows: vec![vec![Some(self.opts.adb_version.clone().into_bytes())]],
                }]
            } else if s.len() > self.opts.max_statement_bytes {
                vec![Reply::Err(SqlError::new(
                    1105,
                    "HY000",
                    format!(
                        "statement of {} bytes is over AnalyticDB's limit of {} bytes per \
                         statement: split the batch",
                        s.len(),
                        self.opts.max_statement_bytes
                    ),
                ))]
            } else {
                match self.statement(s) {
                    Ok(r) => r,
                    Err(e) => vec![Reply::Err(e)],
                }
            };
            let failed = replies.iter().any(|r| matches!(r, Reply::Err(_)));
            out.extend(replies);
            if failed {
                break;
            }
        }
        out
    }

    fn init_db(&mut self, db: &str) -> Reply {
        if db == META_DB {
            return Reply::Err(SqlError::new(
                1049,
                "42000",
                format!("Unknown database '{db}'"),
            ));
        }
        match self.conn.select_db(db) {
            Ok(()) => {
                self.db = Some(db.to_string());
                Reply::ok()
            }
            Err(e) => Reply::Err(super::my_err(e)),
        }
    }

    fn reset(&mut self) -> Reply {
        match self.conn.reset() {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::Err(super::my_err(e)),
        }
    }

    fn replication(&mut self, cmd: u8, body: &[u8]) -> Option<Replication> {
        Some(match cmd {
            COM_REGISTER_SLAVE => Replication::Reply(Reply::ok()),
            COM_BINLOG_DUMP => match self.binlog_dump(body) {
                Ok(feed) => Replication::Stream(Box::new(feed)),
                Err(e) => Replication::Reply(Reply::Err(e)),
            },
            COM_BINLOG_DUMP_GTID => Replication::Reply(Reply::Err(SqlError::new(
                1236,
                "HY000",
                "COM_BINLOG_DUMP_GTID is not supported by the stand-in: use file and position \
                 (SHOW MASTER STATUS FOR t)",
            ))),
            _ => return None,
        })
    }
}

fn not_implemented(what: &str) -> SqlError {
    SqlError::new(
        1235,
        "42000",
        format!("{what} is part of AnalyticDB's grammar but not implemented by the ADB stand-in"),
    )
}

fn rejected(msg: impl Into<String>) -> SqlError {
    SqlError::new(1105, "HY000", msg)
}

impl AdbSession {
    fn statement(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let mut p = P::new(s)?;
        while matches!(p.peek(), Some(Tok::Hint(_))) {
            p.i += 1;
        }
        let kw = match p.peek() {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            _ => return Ok(forward(&mut self.conn, s)),
        };
        match kw.as_str() {
            "CREATE" => {
                if p.is_kw_at(1, "TABLE") {
                    self.create_table(s)
                } else if p.is_kw_at(1, "DATABASE") || p.is_kw_at(1, "SCHEMA") {
                    Ok(forward(&mut self.conn, s))
                } else {
                    let what = match p.peek_at(1) {
                        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
                        _ => String::new(),
                    };
                    Err(not_implemented(&format!("CREATE {what}")))
                }
            }
            "ALTER" if p.is_kw_at(1, "TABLE") => self.alter_table(s),
            "ALTER" => Err(not_implemented("ALTER other than ALTER TABLE")),
            "DROP" if p.is_kw_at(1, "TABLE") => self.drop_table(s),
            "DROP" if p.is_kw_at(1, "DATABASE") || p.is_kw_at(1, "SCHEMA") => {
                p.i += 2;
                p.eat_kws(&["IF", "EXISTS"]);
                let db = p.ident()?;
                if db == META_DB {
                    return Err(SqlError::new(
                        1049,
                        "42000",
                        format!("Unknown database '{db}'"),
                    ));
                }
                let r = forward(&mut self.conn, s);
                if !r.iter().any(|r| matches!(r, Reply::Err(_))) {
                    self.meta_exec(&format!(
                        "DELETE FROM {}.`adb_standin_tables` WHERE db = {}",
                        q(META_DB),
                        lit(&db)
                    ))?;
                }
                Ok(r)
            }
            "DROP" => Err(not_implemented("DROP other than DROP TABLE/DATABASE")),
            "SHOW" => self.show(s, p),
            "INSERT" => self.insert(s, p),
            "USE" => {
                p.i += 1;
                let db = p.ident()?;
                Ok(vec![self.init_db(&db)])
            }
            "SELECT" | "WITH" | "REPLACE" | "UPDATE" | "DELETE" | "SET" | "DESC" | "DESCRIBE"
            | "EXPLAIN" | "TRUNCATE" | "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "KILL" => {
                Ok(forward(&mut self.conn, s))
            }
            other => Err(SqlError::new(
                1235,
                "42000",
                format!("{other} statements are not implemented by the ADB stand-in"),
            )),
        }
    }

    fn db_of(&self, db: Option<String>) -> Result<String, SqlError> {
        db.or_else(|| self.db.clone())
            .ok_or_else(|| SqlError::new(1046, "3D000", "No database selected"))
    }

    fn meta_exec(&mut self, sql: &str) -> Result<(), SqlError> {
        self.conn.query_drop(sql).map_err(super::my_err)
    }

    fn load(&mut self, db: &str, name: &str) -> Result<Table, SqlError> {
        let ddl: Option<String> = self
            .conn
            .query_first(format!(
                "SELECT ddl FROM {}.`adb_standin_tables` WHERE db = {} AND name = {}",
                q(META_DB),
                lit(db),
                lit(name)
            ))
            .map_err(super::my_err)?;
        let ddl = ddl.ok_or_else(|| {
            SqlError::new(1146, "42S02", format!("Table '{db}.{name}' doesn't exist"))
        })?;
        parse_create(&ddl).map(|(t, _)| t)
    }

    fn save(&mut self, db: &str, t: &Table) -> Result<(), SqlError> {
        let mut ddl = t.render(Spelling::Distributed);
        // SHOW CREATE TABLE leaves binlog_ttl out while BINLOG is off; the catalog keeps it.
        if let (false, Some(ttl)) = (t.binlog, &t.binlog_ttl) {
            ddl.push_str(&format!(" binlog_ttl={}", lit(ttl)));
        }
        self.meta_exec(&format!(
            // Not REPLACE: that would give the table a new id.
            "INSERT INTO {}.`adb_standin_tables` (db, name, ddl) VALUES ({}, {}, {}) \
             ON DUPLICATE KEY UPDATE ddl = VALUES(ddl)",
            q(META_DB),
            lit(db),
            lit(&t.name),
            lit(&ddl)
        ))
    }

    fn create_table(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let (t, info) = parse_create(s)?;
        let db = self.db_of(info.db.clone())?;
        if db == META_DB {
            return Err(SqlError::new(
                1049,
                "42000",
                format!("Unknown database '{db}'"),
            ));
        }
        if t.binlog {
            check_binlog_engine(&t)?;
        }
        // Taken before the storage DDL so that the table's stream starts with it.
        let start = if t.binlog {
            Some(self.master_status()?)
        } else {
            None
        };
        let r = forward(&mut self.conn, &t.storage_ddl(&db));
        if let Some(Reply::Err(e)) = r.first() {
            if e.code == 1050 && info.if_not_exists {
                return Ok(vec![Reply::ok()]);
            }
            return Ok(r);
        }
        self.save(&db, &t)?;
        if let Some(start) = start {
            self.set_stream_start(&db, &t.name, Some(start))?;
        }
        Ok(r)
    }

    fn drop_table(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let mut p = P::new(s)?;
        p.expect_kw("DROP")?;
        p.expect_kw("TABLE")?;
        let if_exists = p.eat_kws(&["IF", "EXISTS"]);
        let mut tables = vec![p.table_ref()?];
        while p.eat_sym(",") {
            tables.push(p.table_ref()?);
        }
        if !p.done() {
            return Err(p.unexpected("the end of DROP TABLE"));
        }
        let mut names = Vec::new();
        for (db, name) in tables {
            let db = self.db_of(db)?;
            names.push((db, name));
        }
        let list: Vec<String> = names
            .iter()
            .map(|(d, n)| format!("{}.{}", q(d), q(n)))
            .collect();
        let r = forward(
            &mut self.conn,
            &format!(
                "DROP TABLE {}{}",
                if if_exists { "IF EXISTS " } else { "" },
                list.join(", ")
            ),
        );
        if !r.iter().any(|r| matches!(r, Reply::Err(_))) {
            for (d, n) in &names {
                self.meta_exec(&format!(
                    "DELETE FROM {}.`adb_standin_tables` WHERE db = {} AND name = {}",
                    q(META_DB),
                    lit(d),
                    lit(n)
                ))?;
            }
        }
        Ok(r)
    }

    fn show(&mut self, s: &str, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 1;
        if p.eat_kws(&["CREATE", "TABLE"]) {
            let (db, name) = p.table_ref()?;
            let db = self.db_of(db)?;
            let t = self.load(&db, &name)?;
            return Ok(vec![Reply::Rows {
                cols: vec![Col::text("Table"), Col::text("Create Table")],
                rows: vec![vec![
                    Some(t.name.clone().into_bytes()),
                    Some(t.render(self.opts.spelling).into_bytes()),
                ]],
            }]);
        }
        if p.is_kw("MASTER") || p.is_kw("BINARY") {
            return self.show_binlog(p);
        }
        let listing_dbs = p.is_kw("DATABASES") || p.is_kw("SCHEMAS");
        let mut r = forward(&mut self.conn, s);
        if listing_dbs {
            for reply in &mut r {
                if let Reply::Rows { rows, .. } = reply {
                    rows.retain(|row| row.first() != Some(&Some(META_DB.as_bytes().to_vec())));
                }
            }
        }
        Ok(r)
    }

    fn insert(&mut self, s: &str, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 1;
        let after_insert = p.i;
        let ignore = p.is_kw("IGNORE");
        // Find a top-level ON DUPLICATE KEY UPDATE.
        let mut depth = 0i32;
        let mut odku = None;
        while let Some(t) = p.peek() {
            match t {
                Tok::Sym(x) if x == "(" => depth += 1,
                Tok::Sym(x) if x == ")" => depth -= 1,
                Tok::Word(w)
                    if depth == 0
                        && w.eq_ignore_ascii_case("ON")
                        && p.is_kw_at(1, "DUPLICATE")
                        && p.is_kw_at(2, "KEY")
                        && p.is_kw_at(3, "UPDATE") =>
                {
                    odku = Some(p.i + 4);
                    break;
                }
                _ => {}
            }
            p.i += 1;
        }
        if let Some(at) = odku {
            p.i = at;
            loop {
                let col = p.ident()?;
                p.expect_sym("=")?;
                let constant = match p.peek() {
                    Some(Tok::Str { .. }) | Some(Tok::Num(_)) => {
                        p.i += 1;
                        true
                    }
                    Some(Tok::Sym(m)) if m == "-" && matches!(p.peek_at(1), Some(Tok::Num(_))) => {
                        p.i += 2;
                        true
                    }
                    Some(Tok::Word(w))
                        if ["NULL", "TRUE", "FALSE"]
                            .iter()
                            .any(|k| w.eq_ignore_ascii_case(k)) =>
                    {
                        p.i += 1;
                        true
                    }
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("VALUES") => {
                        p.i += 1;
                        p.expect_sym("(")?;
                        p.ident()?;
                        p.expect_sym(")")?;
                        true
                    }
                    _ => false,
                };
                if !constant || !(p.done() || p.is_sym(",")) {
                    return Err(rejected(format!(
                        "INSERT ... ON DUPLICATE KEY UPDATE supports only assignments of \
                         constants or VALUES(col): the assignment to `{col}` is an expression; \
                         use REPLACE INTO for batch updates"
                    )));
                }
                if !p.eat_sym(",") {
                    break;
                }
            }
            return Ok(forward(&mut self.conn, s));
        }
        if ignore {
            return Ok(forward(&mut self.conn, s));
        }
        // ADB's INSERT INTO keeps the stored row on a primary-key conflict. Not INSERT
        // IGNORE: that would also turn bad values into warnings and altered data, which
        // a test must see as errors.
        let mut t = P::new(s)?;
        t.i = after_insert;
        while matches!(t.peek(), Some(Tok::Hint(_))) {
            t.i += 1;
        }
        t.eat_kw("INTO");
        let (db, name) = t.table_ref()?;
        let db = self.db_of(db)?;
        let table = match self.load(&db, &name) {
            Ok(table) => table,
            // Unknown table: let MariaDB say so.
            Err(_) => return Ok(forward(&mut self.conn, s)),
        };
        let key = format!("{}.{}", q(&name), q(&table.primary_key[0]));
        Ok(forward(
            &mut self.conn,
            // A new line, in case the statement ends in a `--` comment.
            &format!("{s}\nON DUPLICATE KEY UPDATE {key} = {key}"),
        ))
    }

    fn alter_table(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let mut p = P::new(s)?;
        p.expect_kw("ALTER")?;
        p.expect_kw("TABLE")?;
        let (db, name) = p.table_ref()?;
        let db = self.db_of(db)?;
        let mut t = self.load(&db, &name)?;
        let was_on = t.binlog;
        let mut clauses = Vec::new();
        loop {
            alter_spec(&mut p, &mut t, &mut clauses)?;
            if !p.eat_sym(",") {
                break;
            }
        }
        if !p.done() {
            return Err(p.unexpected("`,` or the end of ALTER TABLE"));
        }
        if !clauses.is_empty() {
            let r = forward(
                &mut self.conn,
                &format!("ALTER TABLE {}.{} {}", q(&db), q(&name), clauses.join(", ")),
            );
            if r.iter().any(|r| matches!(r, Reply::Err(_))) {
                return Ok(r);
            }
        }
        if t.binlog && !was_on {
            check_binlog_engine(&t)?;
            let start = self.master_status()?;
            self.save(&db, &t)?;
            self.set_stream_start(&db, &t.name, Some(start))?;
        } else {
            self.save(&db, &t)?;
            if was_on && !t.binlog {
                self.set_stream_start(&db, &t.name, None)?;
            }
        }
        Ok(vec![Reply::ok()])
    }

    /// The storage server's current binlog file and position.
    fn master_status(&mut self) -> Result<(String, u64), SqlError> {
        let row: Option<mysql::Row> = self
            .conn
            .query_first("SHOW MASTER STATUS")
            .map_err(super::my_err)?;
        let none = || rejected("the stand-in's storage server has no binary log");
        let row = row.ok_or_else(none)?;
        match (row.get::<String, _>(0), row.get::<u64, _>(1)) {
            (Some(f), Some(p)) => Ok((f, p)),
            _ => Err(none()),
        }
    }

    fn set_stream_start(
        &mut self,
        db: &str,
        name: &str,
        start: Option<(String, u64)>,
    ) -> Result<(), SqlError> {
        let (file, pos) = match start {
            Some((f, p)) => (lit(&f), p.to_string()),
            None => ("NULL".to_string(), "NULL".to_string()),
        };
        self.meta_exec(&format!(
            "UPDATE {}.`adb_standin_tables` SET binlog_file = {file}, binlog_pos = {pos} \
             WHERE db = {} AND name = {}",
            q(META_DB),
            lit(db),
            lit(name)
        ))
    }

    /// Table id and stream start of `db`.`name`, whose BINLOG must be on.
    fn binlog_of(&mut self, db: &str, name: &str) -> Result<(u64, String, u64), SqlError> {
        let row: Option<(u64, Option<String>, Option<u64>)> = self
            .conn
            .query_first(format!(
                "SELECT id, binlog_file, binlog_pos FROM {}.`adb_standin_tables` \
                 WHERE db = {} AND name = {}",
                q(META_DB),
                lit(db),
                lit(name)
            ))
            .map_err(super::my_err)?;
        match row {
            None => Err(SqlError::new(
                1146,
                "42S02",
                format!("Table '{db}.{name}' doesn't exist"),
            )),
            Some((id, Some(f), Some(p))) => Ok((id, f, p)),
            Some(_) => Err(SqlError::new(
                1235,
                "42000",
                format!(
                    "binlog is not enabled for table {db}.{name}: turn it on with ALTER TABLE \
                     {}.{} BINLOG=true",
                    q(db),
                    q(name)
                ),
            )),
        }
    }

    /// `SHOW MASTER STATUS FOR t` / `SHOW BINARY LOGS FOR t`, after `SHOW`.
    fn show_binlog(&mut self, mut p: P) -> Result<Vec<Reply>, SqlError> {
        let master = p.eat_kws(&["MASTER", "STATUS"]);
        if !master && !p.eat_kws(&["BINARY", "LOGS"]) {
            return Err(p.unexpected("MASTER STATUS FOR t or BINARY LOGS FOR t"));
        }
        if !p.eat_kw("FOR") {
            return Err(not_implemented(
                "A binary log of the whole cluster (AnalyticDB's binary logs are per table: \
                 use SHOW MASTER STATUS FOR t / SHOW BINARY LOGS FOR t)",
            ));
        }
        let (db, name) = p.table_ref()?;
        if !p.done() {
            return Err(p.unexpected("the end of the statement"));
        }
        let db = self.db_of(db)?;
        let (id, start_file, _) = self.binlog_of(&db, &name)?;
        if master {
            let (file, pos) = self.master_status()?;
            return Ok(vec![Reply::Rows {
                cols: vec![
                    Col::text("File"),
                    Col::text("Position"),
                    Col::text("Binlog_Do_DB"),
                    Col::text("Binlog_Ignore_DB"),
                ],
                rows: vec![vec![
                    Some(table_file(id, &file).into_bytes()),
                    Some(pos.to_string().into_bytes()),
                    Some(Vec::new()),
                    Some(Vec::new()),
                ]],
            }]);
        }
        let logs: Vec<mysql::Row> = self.conn.query("SHOW BINARY LOGS").map_err(super::my_err)?;
        let mut rows = Vec::new();
        for row in logs {
            let file: Option<String> = row.get(0);
            let size: Option<u64> = row.get(1);
            if let (Some(file), Some(size)) = (file, size) {
                // Storage files are `binlog.NNNNNN`: the names sort as the files do.
                if file >= start_file {
                    rows.push(vec![
                        Some(table_file(id, &file).into_bytes()),
                        Some(size.to_string().into_bytes()),
                    ]);
                }
            }
        }
        Ok(vec![Reply::Rows {
            cols: vec![Col::text("Log_name"), Col::text("File_size")],
            rows,
        }])
    }

    /// COM_BINLOG_DUMP: position u32, flags u16, server id u32, file name.
    fn binlog_dump(&mut self, body: &[u8]) -> Result<Feed, SqlError> {
        let head = body
            .get(..10)
            .ok_or_else(|| SqlError::new(1236, "HY000", "COM_BINLOG_DUMP packet too short"))?;
        let pos = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let flags = u16::from_le_bytes([head[4], head[5]]);
        let file = String::from_utf8_lossy(&body[10..]).into_owned();
        let not_ours = || {
            SqlError::new(
                1236,
                "HY000",
                format!(
                    "'{file}' is not a binary log of a table with BINLOG=true: AnalyticDB's \
                     binary logs are per table; take the file name from SHOW MASTER STATUS \
                     FOR db.t"
                ),
            )
        };
        let (id, storage_file) = parse_table_file(&file).ok_or_else(not_ours)?;
        let row: Option<(String, String, Option<String>, Option<u64>)> = self
            .conn
            .query_first(format!(
                "SELECT db, name, binlog_file, binlog_pos FROM {}.`adb_standin_tables` \
                 WHERE id = {id}",
                q(META_DB)
            ))
            .map_err(super::my_err)?;
        let Some((db, name, Some(start_file), Some(start_pos))) = row else {
            return Err(not_ours());
        };
        let storage_file = storage_file.to_string();
        if (storage_file.as_str(), pos as u64) < (start_file.as_str(), start_pos) {
            return Err(SqlError::new(
                1236,
                "HY000",
                format!(
                    "position {file}:{pos} is before the binary log of table {db}.{name}, \
                     which starts at {}:{start_pos}",
                    table_file(id, &start_file)
                ),
            ));
        }
        Feed::open(self.storage_port, id, &db, &name, &storage_file, pos, flags)
    }
}

/// "XUANWU_V2 tables do not support binary logging" on the engine versions the
/// subscription documents cover.
fn check_binlog_engine(t: &Table) -> Result<(), SqlError> {
    if t.engine.as_deref() == Some("XUANWU_V2") {
        return Err(rejected(format!(
            "table `{}`: tables of the XUANWU_V2 engine do not support the binary log \
             (BINLOG=true); use ENGINE='XUANWU'",
            t.name
        )));
    }
    Ok(())
}

/// A `binlog_ttl` value: plain digits are milliseconds, or `Ns`, `Nh`, `Nd`; at most
/// 365 days. Returned in lower case.
fn parse_ttl(v: &str) -> Result<String, SqlError> {
    let v = v.trim().to_ascii_lowercase();
    let (digits, unit_ms): (&str, u64) = match v.chars().last() {
        Some('s') => (&v[..v.len() - 1], 1_000),
        Some('h') => (&v[..v.len() - 1], 3_600_000),
        Some('d') => (&v[..v.len() - 1], 86_400_000),
        _ => (v.as_str(), 1),
    };
    let bad = || {
        rejected(format!(
            "binlog_ttl='{v}' is not a retention period: write milliseconds ('60000') or a \
             number of seconds, hours or days ('60s', '6h', '7d'), at most 365d"
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if ms == 0 || ms > 365 * 86_400_000 {
        return Err(bad());
    }
    Ok(v)
}

fn parse_bool_option(p: &mut P, what: &str) -> Result<bool, SqlError> {
    let v = option_value(p)?;
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(rejected(format!("{what}={v}: the value is true or false"))),
    }
}

fn alter_spec(p: &mut P, t: &mut Table, clauses: &mut Vec<String>) -> Result<(), SqlError> {
    if p.eat_kw("ADD") {
        for k in [
            "INDEX",
            "KEY",
            "CLUSTERED",
            "FULLTEXT",
            "ANN",
            "CONSTRAINT",
            "FOREIGN",
        ] {
            if p.is_kw(k) {
                return Err(not_implemented(&format!("ALTER TABLE ... ADD {k}")));
            }
        }
        for k in ["PRIMARY", "UNIQUE", "SPATIAL", "PARTITION", "CHECK"] {
            if p.is_kw(k) {
                return Err(syntax(format!(
                    "ALTER TABLE ... ADD {k} is not supported by AnalyticDB for MySQL: its \
                     ALTER TABLE adds columns, indexes and foreign keys only; the primary key \
                     cannot change"
                )));
            }
        }
        p.eat_kw("COLUMN");
        let mut defs = Vec::new();
        if p.eat_sym("(") {
            loop {
                defs.push(column_def(p)?);
                if !p.eat_sym(",") {
                    break;
                }
            }
            p.expect_sym(")")?;
        } else {
            defs.push(column_def(p)?);
        }
        for (c, inline_pk) in defs {
            if inline_pk {
                return Err(rejected(format!(
                    "cannot add primary key column `{}`: the primary key of an AnalyticDB \
                     table cannot change",
                    c.name
                )));
            }
            if t.column(&c.name).is_some() {
                return Err(SqlError::new(
                    1060,
                    "42S21",
                    format!("Duplicate column name '{}'", c.name),
                ));
            }
            check_column(&c)?;
            clauses.push(format!("ADD COLUMN {}", c.storage(t, false)));
            t.columns.push(c);
        }
        return Ok(());
    }
    if p.eat_kw("DROP") {
        for k in [
            "INDEX",
            "KEY",
            "CLUSTERED",
            "FULLTEXT",
            "FOREIGN",
            "PARTITION",
        ] {
            if p.is_kw(k) {
                return Err(not_implemented(&format!("ALTER TABLE ... DROP {k}")));
            }
        }
        if p.is_kw("PRIMARY") {
            return Err(rejected(
                "the primary key of an AnalyticDB table cannot be dropped",
            ));
        }
        p.eat_kw("COLUMN");
        let c = p.ident()?;
        let c = t.column(&c).map(|c| c.name.clone()).ok_or_else(|| {
            SqlError::new(
                1091,
                "42000",
                format!("Can't DROP COLUMN `{c}`; check that it exists"),
            )
        })?;
        t.check_not_key(&c, "drop")?;
        t.columns.retain(|x| x.name != c);
        clauses.push(format!("DROP COLUMN {}", q(&c)));
        return Ok(());
    }
    if p.eat_kw("MODIFY") {
        p.eat_kw("COLUMN");
        let (c, inline_pk) = column_def(p)?;
        let existing = t
            .column(&c.name)
            .map(|x| x.name.clone())
            .ok_or_else(|| SqlError::new(1054, "42S22", format!("Unknown column '{}'", c.name)))?;
        t.check_not_key(&existing, "modify")?;
        if inline_pk {
            return Err(rejected(
                "the primary key of an AnalyticDB table cannot change",
            ));
        }
        check_column(&c)?;
        let c = Column {
            name: existing.clone(),
            ..c
        };
        clauses.push(format!("MODIFY COLUMN {}", c.storage(t, false)));
        if let Some(slot) = t.columns.iter_mut().find(|x| x.name == existing) {
            *slot = c;
        }
        return Ok(());
    }
    if p.is_kw("RENAME") && p.is_kw_at(1, "COLUMN") {
        p.i += 2;
        let from = p.ident()?;
        p.expect_kw("TO")?;
        let to = p.ident()?;
        let existing = t
            .column(&from)
            .map(|x| x.name.clone())
            .ok_or_else(|| SqlError::new(1054, "42S22", format!("Unknown column '{from}'")))?;
        t.check_not_key(&existing, "rename")?;
        if t.column(&to).is_some() {
            return Err(SqlError::new(
                1060,
                "42S21",
                format!("Duplicate column name '{to}'"),
            ));
        }
        clauses.push(format!("RENAME COLUMN {} TO {}", q(&existing), q(&to)));
        if let Some(slot) = t.columns.iter_mut().find(|x| x.name == existing) {
            slot.name = to;
        }
        return Ok(());
    }
    if p.eat_kw("COMMENT") {
        p.eat_sym("=");
        t.comment = Some(p.string()?);
        return Ok(());
    }
    for k in ["RENAME", "INDEX_ALL", "STORAGE_POLICY", "PARTITION"] {
        if p.is_kw(k) {
            return Err(not_implemented(&format!("ALTER TABLE ... {k}")));
        }
    }
    if p.eat_kw("BINLOG") {
        t.binlog = parse_bool_option(p, "BINLOG")?;
        return Ok(());
    }
    if p.eat_kw("BINLOG_TTL") {
        t.binlog_ttl = Some(parse_ttl(&option_value(p)?)?);
        return Ok(());
    }
    if p.is_kw("CHANGE") {
        return Err(syntax(
            "ALTER TABLE ... CHANGE is not supported by AnalyticDB for MySQL: use RENAME \
             COLUMN and MODIFY COLUMN",
        ));
    }
    Err(syntax(format!(
        "ALTER TABLE near {} is not supported by AnalyticDB for MySQL: its ALTER TABLE \
         takes ADD/DROP/MODIFY [COLUMN], RENAME COLUMN, COMMENT, index, partition and \
         storage-policy clauses",
        p.near()
    )))
}

#[derive(Clone, Debug, PartialEq)]
enum Distribution {
    Hash(Vec<String>),
    Broadcast,
}

#[derive(Clone, Debug, PartialEq)]
enum PartitionExpr {
    Column(String),
    DateFormat(String, String),
    FromUnixtime(String, String),
}

impl PartitionExpr {
    fn column(&self) -> &str {
        match self {
            PartitionExpr::Column(c)
            | PartitionExpr::DateFormat(c, _)
            | PartitionExpr::FromUnixtime(c, _) => c,
        }
    }
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    /// The base type in upper case, e.g. `VARCHAR`, `ARRAY`.
    base: String,
    /// What follows the base name: `(10, 2)` or `<INT>`, as written.
    args: String,
    not_null: bool,
    default: Option<String>,
    auto_increment: bool,
    comment: Option<String>,
}

impl Column {
    fn render(&self) -> String {
        let mut s = format!(
            "{} {}{}",
            q(&self.name),
            self.base.to_ascii_lowercase(),
            self.args
        );
        if self.not_null {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = &self.default {
            s.push_str(&format!(" DEFAULT {d}"));
        }
        if self.auto_increment {
            s.push_str(" AUTO_INCREMENT");
        }
        if let Some(c) = &self.comment {
            s.push_str(&format!(" COMMENT {}", lit(c)));
        }
        s
    }

    /// The MariaDB column that stores this ADB column.
    fn storage(&self, t: &Table, in_key: bool) -> String {
        let in_key = in_key || t.primary_key.iter().any(|k| k == &self.name);
        let ty = match self.base.as_str() {
            "BOOLEAN" | "BOOL" => "BOOLEAN".to_string(),
            "TINYINT" | "SMALLINT" | "BIGINT" | "FLOAT" | "DOUBLE" => self.base.clone(),
            "INT" | "INTEGER" => "INT".into(),
            "DECIMAL" | "NUMERIC" => format!("DECIMAL{}", self.args),
            // VARCHAR's declared length is only syntax in ADB: values go up to 16 MB.
            "VARCHAR" if in_key => "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into(),
            "VARCHAR" => "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into(),
            "BINARY" if in_key => "VARBINARY(255)".into(),
            "BINARY" => "MEDIUMBLOB".into(),
            "DATE" => "DATE".into(),
            "TIME" => "TIME(3)".into(),
            "DATETIME" => "DATETIME(3)".into(),
            "TIMESTAMP" => "TIMESTAMP(3)".into(),
            "POINT" => "POINT".into(),
            _ => "JSON".into(),
        };
        let mut s = format!("{} {ty}", q(&self.name));
        if self.not_null || in_key {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = &self.default {
            s.push_str(&format!(" DEFAULT {d}"));
        }
        if self.auto_increment {
            s.push_str(" AUTO_INCREMENT");
        }
        if self.base == "TIME" {
            // ADB's TIME holds one day only.
            s.push_str(&format!(
                " CHECK ({} BETWEEN '00:00:00' AND '23:59:59.999')",
                q(&self.name)
            ));
        }
        s
    }
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Index, clustered-key and foreign-key clauses, as written.
    extra: Vec<String>,
    distribution: Distribution,
    partition: Option<(PartitionExpr, u64)>,
    index_all: Option<String>,
    storage_policy: Option<String>,
    block_size: Option<String>,
    engine: Option<String>,
    rt_engine: Option<String>,
    table_properties: Option<String>,
    comment: Option<String>,
    binlog: bool,
    binlog_ttl: Option<String>,
}

struct CreateInfo {
    db: Option<String>,
    if_not_exists: bool,
}

const AUTO_ID: &str = "__adb_auto_id__";

impl Table {
    fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn check_not_key(&self, c: &str, verb: &str) -> Result<(), SqlError> {
        let what = if self.primary_key.iter().any(|k| k == c) {
            Some("primary key")
        } else if matches!(&self.distribution, Distribution::Hash(d) if d.iter().any(|k| k == c)) {
            Some("distribution key")
        } else if self
            .partition
            .as_ref()
            .is_some_and(|(p, _)| p.column() == c)
        {
            Some("partition key")
        } else {
            None
        };
        match what {
            Some(w) => Err(rejected(format!(
                "{verb} column is not supported, col={c} is {w}: the key columns of an \
                 AnalyticDB table cannot change"
            ))),
            None => Ok(()),
        }
    }

    fn render(&self, spelling: Spelling) -> String {
        let mut lines: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("  {}", c.render()))
            .collect();
        lines.extend(self.extra.iter().map(|e| format!("  {e}")));
        let pk: Vec<String> = self.primary_key.iter().map(|c| q(c)).collect();
        lines.push(format!("  PRIMARY KEY ({})", pk.join(",")));
        let by = match spelling {
            Spelling::Distributed => "DISTRIBUTED BY",
            Spelling::Distribute => "DISTRIBUTE BY",
        };
        let mut s = format!(
            "CREATE TABLE {} (\n{}\n) ",
            q(&self.name),
            lines.join(",\n")
        );
        match &self.distribution {
            Distribution::Hash(cols) => {
                let cols: Vec<String> = cols.iter().map(|c| q(c)).collect();
                s.push_str(&format!("{by} HASH({})", cols.join(",")));
            }
            Distribution::Broadcast => s.push_str(&format!("{by} BROADCAST")),
        }
        if let Some((e, n)) = &self.partition {
            let e = match e {
                PartitionExpr::Column(c) => q(c),
                PartitionExpr::DateFormat(c, f) => format!("DATE_FORMAT({}, {})", q(c), lit(f)),
                PartitionExpr::FromUnixtime(c, f) => {
                    format!("FROM_UNIXTIME({}, {})", q(c), lit(f))
                }
            };
            s.push_str(&format!(" PARTITION BY VALUE({e}) LIFECYCLE {n}"));
        }
        s.push_str(&format!(
            " INDEX_ALL={}",
            lit(self.index_all.as_deref().unwrap_or("Y"))
        ));
        s.push_str(&format!(
            " STORAGE_POLICY={}",
            self.storage_policy.as_deref().unwrap_or("'HOT'")
        ));
        if let Some(b) = &self.block_size {
            s.push_str(&format!(" BLOCK_SIZE={b}"));
        }
        s.push_str(&format!(
            " ENGINE={}",
            lit(self.engine.as_deref().unwrap_or("XUANWU"))
        ));
        if let Some(r) = &self.rt_engine {
            s.push_str(&format!(" RT_ENGINE={}", lit(r)));
        }
        s.push_str(&format!(
            " TABLE_PROPERTIES={}",
            lit(self
                .table_properties
                .as_deref()
                .unwrap_or(r#"{"format":"columnstore"}"#))
        ));
        if self.binlog {
            s.push_str(&format!(
                " BINLOG=true binlog_ttl={}",
                lit(self.binlog_ttl.as_deref().unwrap_or("6h"))
            ));
        }
        if let Some(c) = &self.comment {
            s.push_str(&format!(" COMMENT={}", lit(c)));
        }
        s
    }

    fn storage_ddl(&self, db: &str) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.storage(self, false))
            .collect();
        let pk: Vec<String> = self.primary_key.iter().map(|c| q(c)).collect();
        parts.push(format!("PRIMARY KEY ({})", pk.join(",")));
        // InnoDB wants an AUTO_INCREMENT column to lead some index; ADB does not.
        for c in self.columns.iter().filter(|c| c.auto_increment) {
            if self.primary_key.first() != Some(&c.name) {
                parts.push(format!("KEY ({})", q(&c.name)));
            }
        }
        format!(
            "CREATE TABLE {}.{} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            q(db),
            q(&self.name),
            parts.join(",\n  ")
        )
    }
}

/// Why a MySQL type name is refused, with the ADB type to use instead.
fn unsupported_type(base: &str) -> Option<&'static str> {
    Some(match base {
        "MEDIUMINT" => "MEDIUMINT is not an AnalyticDB type: use INT",
        "BIT" => "BIT is not an AnalyticDB type: use BOOLEAN, BIGINT or VARCHAR",
        "YEAR" => "YEAR is not an AnalyticDB type: use SMALLINT",
        "ENUM" => "ENUM is not an AnalyticDB type: use VARCHAR",
        "SET" => "SET is not an AnalyticDB type: use VARCHAR",
        "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "NCHAR" | "NVARCHAR" => {
            "is not an AnalyticDB type name: use VARCHAR (it holds up to 16 MB)"
        }
        "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            "is not an AnalyticDB type name: use BINARY"
        }
        "GEOMETRY" | "LINESTRING" | "POLYGON" | "MULTIPOINT" | "MULTILINESTRING"
        | "MULTIPOLYGON" | "GEOMETRYCOLLECTION" => {
            "is not an AnalyticDB type: POINT is its only spatial type"
        }
        "REAL" | "SERIAL" => "is not an AnalyticDB type name: use DOUBLE or BIGINT",
        _ => return None,
    })
}

const TYPES: &[&str] = &[
    "BOOLEAN",
    "BOOL",
    "TINYINT",
    "SMALLINT",
    "INT",
    "INTEGER",
    "BIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "NUMERIC",
    "VARCHAR",
    "BINARY",
    "DATE",
    "TIME",
    "DATETIME",
    "TIMESTAMP",
    "POINT",
    "JSON",
    "ARRAY",
    "MAP",
];

/// Parses one column definition; the bool says whether it carried `PRIMARY KEY`.
fn column_def(p: &mut P) -> Result<(Column, bool), SqlError> {
    let name = p.ident()?;
    let base = match p.peek() {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => return Err(p.unexpected(&format!("the type of column `{name}`"))),
    };
    p.i += 1;
    if let Some(why) = unsupported_type(&base) {
        let why = if why.starts_with("is ") {
            format!("{base} {why}")
        } else {
            why.to_string()
        };
        return Err(rejected(format!("column `{name}`: {why}")));
    }
    if !TYPES.contains(&base.as_str()) {
        return Err(rejected(format!(
            "column `{name}`: unknown AnalyticDB type {base}"
        )));
    }
    let args_from = p.prev_end();
    if base == "ARRAY" || base == "MAP" {
        p.expect_sym("<")?;
        let mut depth = 1;
        while depth > 0 {
            match p.peek() {
                Some(Tok::Sym(s)) if s == "<" => depth += 1,
                Some(Tok::Sym(s)) if s == ">" => depth -= 1,
                None => return Err(p.unexpected("`>`")),
                _ => {}
            }
            p.i += 1;
        }
    } else if p.is_sym("(") {
        p.parens_raw()?;
    }
    let args = p.src[args_from..p.prev_end()].trim().to_string();
    let mut c = Column {
        name,
        base,
        args,
        not_null: false,
        default: None,
        auto_increment: false,
        comment: None,
    };
    if c.base == "DECIMAL" || c.base == "NUMERIC" {
        let inner = c.args.trim_start_matches('(').trim_end_matches(')');
        let mut it = inner.split(',').map(|x| x.trim().parse::<u32>());
        let prec = it.next().and_then(|r| r.ok());
        let scale = it.next().and_then(|r| r.ok()).unwrap_or(0);
        if !c.args.is_empty() {
            match prec {
                Some(m) if (1..=38).contains(&m) && scale <= m => {}
                _ => {
                    return Err(rejected(format!(
                        "column `{}`: DECIMAL{} is out of range: AnalyticDB's DECIMAL takes a \
                         precision of 1 to 38 and a scale no larger than the precision",
                        c.name, c.args
                    )))
                }
            }
        }
    }
    let mut pk = false;
    loop {
        if p.eat_kws(&["NOT", "NULL"]) {
            c.not_null = true;
        } else if p.eat_kw("NULL") {
            c.not_null = false;
        } else if p.eat_kw("DEFAULT") {
            let from = p.pos();
            match p.peek() {
                Some(Tok::Str { .. }) | Some(Tok::Num(_)) => p.i += 1,
                Some(Tok::Sym(m)) if m == "-" => {
                    p.i += 1;
                    p.number()?;
                }
                Some(Tok::Word(w))
                    if ["NULL", "TRUE", "FALSE", "CURRENT_TIMESTAMP"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    p.i += 1;
                    if p.is_sym("(") {
                        p.parens_raw()?;
                    }
                }
                _ => {
                    return Err(rejected(format!(
                        "column `{}`: DEFAULT takes a constant or CURRENT_TIMESTAMP in \
                         AnalyticDB, not {}",
                        c.name,
                        p.near()
                    )))
                }
            }
            c.default = Some(p.src[from..p.prev_end()].to_string());
        } else if p.eat_kw("AUTO_INCREMENT") {
            c.auto_increment = true;
        } else if p.eat_kws(&["PRIMARY", "KEY"]) {
            pk = true;
        } else if p.eat_kw("COMMENT") {
            c.comment = Some(p.string()?);
        } else if p.is_kw("UNSIGNED") || p.is_kw("ZEROFILL") {
            return Err(rejected(format!(
                "column `{}`: AnalyticDB has no UNSIGNED or ZEROFILL types: use the next wider \
                 signed type (BIGINT for INT UNSIGNED, DECIMAL(20,0) for BIGINT UNSIGNED)",
                c.name
            )));
        } else if p.done() || p.is_sym(",") || p.is_sym(")") {
            break;
        } else {
            return Err(syntax(format!(
                "column `{}`: {} is not in AnalyticDB's column grammar (type [DEFAULT …] \
                 [AUTO_INCREMENT] [NOT NULL|NULL] [PRIMARY KEY] [COMMENT '…'])",
                c.name,
                p.near()
            )));
        }
    }
    Ok((c, pk))
}

fn check_column(c: &Column) -> Result<(), SqlError> {
    if c.auto_increment && c.base != "BIGINT" {
        return Err(rejected(format!(
            "column `{}`: AUTO_INCREMENT columns must be BIGINT in AnalyticDB",
            c.name
        )));
    }
    if c.base == "JSON" && c.default.is_some() {
        return Err(rejected(format!(
            "column `{}`: a JSON column takes no DEFAULT in AnalyticDB",
            c.name
        )));
    }
    Ok(())
}

fn option_value(p: &mut P) -> Result<String, SqlError> {
    p.eat_sym("=");
    match p.peek() {
        Some(Tok::Str { text, .. }) => {
            let t = text.clone();
            p.i += 1;
            Ok(t)
        }
        Some(Tok::Word(w)) | Some(Tok::Num(w)) => {
            let t = w.clone();
            p.i += 1;
            Ok(t)
        }
        _ => Err(p.unexpected("a value")),
    }
}

fn parse_create(s: &str) -> Result<(Table, CreateInfo), SqlError> {
    let mut p = P::new(s)?;
    p.expect_kw("CREATE")?;
    p.expect_kw("TABLE")?;
    let if_not_exists = p.eat_kws(&["IF", "NOT", "EXISTS"]);
    let (db, name) = p.table_ref()?;
    if name.is_empty() || name.chars().count() > 127 {
        return Err(rejected(format!(
            "table name `{name}`: AnalyticDB table names are 1 to 127 characters"
        )));
    }
    if p.is_kw("LIKE") || p.is_kw("AS") {
        return Err(not_implemented("CREATE TABLE ... LIKE / AS SELECT"));
    }
    p.expect_sym("(")?;
    let mut columns: Vec<Column> = Vec::new();
    let mut pk: Option<Vec<String>> = None;
    let mut inline_pk = Vec::new();
    let mut extra = Vec::new();
    loop {
        let from = p.pos();
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            if !p.is_sym("(") {
                p.ident()?;
            }
            if pk.is_some() {
                return Err(SqlError::new(1068, "42000", "Multiple primary key defined"));
            }
            pk = Some(p.name_list()?);
        } else if p.is_kw("INDEX")
            || p.is_kw("KEY")
            || p.is_kw("FULLTEXT")
            || p.is_kw("CLUSTERED")
            || p.is_kw("ANN")
        {
            p.raw_until(&[]);
            extra.push(p.src[from..p.prev_end()].trim().to_string());
        } else if p.is_kw("CONSTRAINT") || p.is_kw("FOREIGN") {
            if p.eat_kw("CONSTRAINT") && !p.is_kw("FOREIGN") {
                p.ident()?;
            }
            if !p.eat_kws(&["FOREIGN", "KEY"]) {
                return Err(syntax(format!(
                    "CONSTRAINT near {}: AnalyticDB's only named constraint is FOREIGN KEY",
                    p.near()
                )));
            }
            if !p.is_sym("(") {
                p.ident()?;
            }
            let cols = p.name_list()?;
            p.expect_kw("REFERENCES")?;
            p.table_ref()?;
            let refs = p.name_list()?;
            if cols.len() != 1 || refs.len() != 1 {
                return Err(rejected(
                    "AnalyticDB foreign keys take one column: a multi-column FOREIGN KEY is not \
                     supported",
                ));
            }
            if p.is_kw("ON") || p.is_kw("MATCH") {
                return Err(syntax(
                    "foreign-key actions (ON DELETE / ON UPDATE / MATCH) are not in \
                     AnalyticDB's grammar: its foreign keys are informational only",
                ));
            }
            extra.push(p.src[from..p.prev_end()].trim().to_string());
        } else if p.is_kw("UNIQUE") || p.is_kw("CHECK") || p.is_kw("SPATIAL") {
            return Err(syntax(format!(
                "{} is not in AnalyticDB's CREATE TABLE grammar",
                p.near()
            )));
        } else {
            let (c, is_pk) = column_def(&mut p)?;
            check_column(&c)?;
            if columns.iter().any(|x| x.name.eq_ignore_ascii_case(&c.name)) {
                return Err(SqlError::new(
                    1060,
                    "42S21",
                    format!("Duplicate column name '{}'", c.name),
                ));
            }
            if is_pk {
                inline_pk.push(c.name.clone());
            }
            columns.push(c);
        }
        if !p.eat_sym(",") {
            break;
        }
    }
    p.expect_sym(")")?;
    if columns.is_empty() {
        return Err(rejected("a table needs at least one column"));
    }
    let primary_key = match (pk, inline_pk.len()) {
        (Some(_), n) if n > 0 => {
            return Err(SqlError::new(1068, "42000", "Multiple primary key defined"))
        }
        (Some(k), _) => Some(k),
        (None, 0) => None,
        (None, 1) => Some(inline_pk),
        (None, _) => return Err(SqlError::new(1068, "42000", "Multiple primary key defined")),
    };
    let mut t = Table {
        name,
        columns,
        primary_key: Vec::new(),
        extra,
        distribution: Distribution::Broadcast,
        partition: None,
        index_all: None,
        storage_policy: None,
        block_size: None,
        engine: None,
        rt_engine: None,
        table_properties: None,
        comment: None,
        binlog: false,
        binlog_ttl: None,
    };
    let mut distribution = None;
    while !p.done() {
        if p.eat_kws(&["DISTRIBUTED", "BY"]) || p.eat_kws(&["DISTRIBUTE", "BY"]) {
            if p.eat_kw("BROADCAST") {
                distribution = Some(Distribution::Broadcast);
            } else {
                p.expect_kw("HASH")?;
                distribution = Some(Distribution::Hash(p.name_list()?));
            }
        } else if p.eat_kws(&["PARTITION", "BY"]) {
            p.expect_kw("VALUE")?;
            p.expect_sym("(")?;
            let e = if p.is_kw("DATE_FORMAT") || p.is_kw("FROM_UNIXTIME") {
                let date = p.eat_kw("DATE_FORMAT");
                if !date {
                    p.i += 1;
                }
                p.expect_sym("(")?;
                let c = p.ident()?;
                p.expect_sym(",")?;
                let f = p.string()?;
                p.expect_sym(")")?;
                if !["%Y%m%d", "%Y%m", "%Y"].contains(&f.as_str()) {
                    return Err(rejected(format!(
                        "partition format '{f}' is not supported: AnalyticDB takes '%Y%m%d', \
                         '%Y%m' or '%Y'"
                    )));
                }
                if date {
                    PartitionExpr::DateFormat(c, f)
                } else {
                    PartitionExpr::FromUnixtime(c, f)
                }
            } else {
                PartitionExpr::Column(p.ident()?)
            };
            p.expect_sym(")")?;
            if !p.eat_kw("LIFECYCLE") {
                return Err(p.unexpected("LIFECYCLE N after PARTITION BY VALUE(...)"));
            }
            let n = p.number()?;
            let n: u64 = n
                .parse()
                .map_err(|_| rejected(format!("LIFECYCLE {n} is not a whole number")))?;
            t.partition = Some((e, n));
        } else if p.eat_kw("INDEX_ALL") {
            let v = option_value(&mut p)?.to_ascii_uppercase();
            if v != "Y" && v != "N" {
                return Err(rejected(format!(
                    "INDEX_ALL='{v}': the value is 'Y' or 'N'"
                )));
            }
            t.index_all = Some(v);
        } else if p.eat_kw("STORAGE_POLICY") {
            let from = p.pos();
            let v = option_value(&mut p)?.to_ascii_uppercase();
            if !["HOT", "COLD", "MIXED"].contains(&v.as_str()) {
                return Err(rejected(format!(
                    "STORAGE_POLICY='{v}': the value is 'HOT', 'COLD' or 'MIXED'"
                )));
            }
            if p.eat_kw("hot_partition_count") {
                option_value(&mut p)?;
            }
            t.storage_policy = Some(
                p.src[from..p.prev_end()]
                    .trim()
                    .trim_start_matches('=')
                    .trim()
                    .to_string(),
            );
        } else if p.eat_kw("BLOCK_SIZE") {
            t.block_size = Some(option_value(&mut p)?);
        } else if p.eat_kw("ENGINE") {
            let v = option_value(&mut p)?;
            if !["XUANWU", "XUANWU_V2"].contains(&v.to_ascii_uppercase().as_str()) {
                return Err(rejected(format!(
                    "ENGINE='{v}' is not an AnalyticDB engine: the engines are 'XUANWU' and \
                     'XUANWU_V2'"
                )));
            }
            t.engine = Some(v.to_ascii_uppercase());
        } else if p.eat_kw("RT_ENGINE") {
            t.rt_engine = Some(option_value(&mut p)?);
        } else if p.eat_kw("TABLE_PROPERTIES") {
            p.eat_sym("=");
            t.table_properties = Some(p.string()?);
        } else if p.eat_kw("COMMENT") {
            p.eat_sym("=");
            t.comment = Some(p.string()?);
        } else if p.eat_kw("BINLOG") {
            t.binlog = parse_bool_option(&mut p, "BINLOG")?;
        } else if p.eat_kw("BINLOG_TTL") {
            t.binlog_ttl = Some(parse_ttl(&option_value(&mut p)?)?);
        } else if p.is_kw("AS") || p.is_kw("SELECT") {
            return Err(not_implemented("CREATE TABLE ... AS SELECT"));
        } else {
            return Err(syntax(format!(
                "{} is not an AnalyticDB table option (DISTRIBUTED BY, PARTITION BY VALUE, \
                 INDEX_ALL, STORAGE_POLICY, BLOCK_SIZE, ENGINE, TABLE_PROPERTIES, BINLOG, binlog_ttl, \
                 COMMENT)",
                p.near()
            )));
        }
    }
    // Resolve names to the columns' own spelling and check they exist.
    let resolve = |t: &Table, names: &[String], what: &str| -> Result<Vec<String>, SqlError> {
        names
            .iter()
            .map(|n| {
                t.column(n).map(|c| c.name.clone()).ok_or_else(|| {
                    SqlError::new(
                        1072,
                        "42000",
                        format!("Key column '{n}' of the {what} doesn't exist in table"),
                    )
                })
            })
            .collect()
    };
    let primary_key = match primary_key {
        Some(k) => Some(resolve(&t, &k, "primary key")?),
        None => None,
    };
    let distribution = match distribution {
        Some(Distribution::Hash(cols)) => {
            Some(Distribution::Hash(resolve(&t, &cols, "distribution key")?))
        }
        other => other,
    };
    if let Some((e, _)) = &t.partition {
        resolve(&t, &[e.column().to_string()], "partition key")?;
    }
    for c in &t.columns {
        if c.name.eq_ignore_ascii_case(AUTO_ID) && primary_key.is_none() {
            return Err(rejected(format!("the column name {AUTO_ID} is reserved")));
        }
    }
    match primary_key {
        Some(pk) => {
            let dist = distribution.unwrap_or_else(|| Distribution::Hash(pk.clone()));
            if let Distribution::Hash(d) = &dist {
                for c in d {
                    if !pk.contains(c) {
                        return Err(rejected(format!(
                            "the primary key ({}) must contain the distribution key column \
                             `{c}`: add it to the primary key or distribute by primary-key \
                             columns",
                            pk.join(", ")
                        )));
                    }
                }
            }
            if let Some((e, _)) = &t.partition {
                let c = t
                    .column(e.column())
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                if !pk.contains(&c) {
                    return Err(rejected(format!(
                        "the primary key ({}) must contain the partition key column `{c}`",
                        pk.join(", ")
                    )));
                }
            }
            for k in &pk {
                if let Some(c) = t.columns.iter_mut().find(|c| &c.name == k) {
                    c.not_null = true;
                }
            }
            t.primary_key = pk;
            t.distribution = dist;
        }
        None => {
            t.columns.push(Column {
                name: AUTO_ID.into(),
                base: "BIGINT".into(),
                args: String::new(),
                not_null: true,
                default: None,
                auto_increment: true,
                comment: None,
            });
            t.primary_key = vec![AUTO_ID.into()];
            t.distribution =
                distribution.unwrap_or_else(|| Distribution::Hash(vec![AUTO_ID.into()]));
        }
    }
    Ok((t, CreateInfo { db, if_not_exists }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_parses_back_to_itself() {
        let (t, _) = parse_create(
            "CREATE TABLE c (login_time DATETIME NOT NULL, customer_id BIGINT, phone_num \
             BIGINT COMMENT 'p', name VARCHAR(32) DEFAULT 'x', KEY k (name), PRIMARY KEY \
             (login_time, customer_id, phone_num)) DISTRIBUTED BY HASH(customer_id) \
             PARTITION BY VALUE(DATE_FORMAT(login_time, '%Y%m%d')) LIFECYCLE 30 COMMENT 'c'",
        )
        .unwrap();
        let once = t.render(Spelling::Distributed);
        let (again, _) = parse_create(&once).unwrap();
        assert_eq!(again.render(Spelling::Distributed), once);
        assert!(
            once.contains("DISTRIBUTED BY HASH(`customer_id`)"),
            "{once}"
        );
        assert!(
            once.contains("PARTITION BY VALUE(DATE_FORMAT(`login_time`, '%Y%m%d')) LIFECYCLE 30"),
            "{once}"
        );
        let (old, _) = parse_create(&t.render(Spelling::Distribute)).unwrap();
        assert_eq!(old.distribution, t.distribution);
    }

    #[test]
    fn keyless_table_gets_the_auto_id() {
        let (t, _) = parse_create("CREATE TABLE k (a INT)").unwrap();
        assert_eq!(t.primary_key, vec![AUTO_ID.to_string()]);
        assert!(t
            .render(Spelling::Distributed)
            .contains("PRIMARY KEY (`__adb_auto_id__`)"));
    }
}
