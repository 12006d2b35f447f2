//! A stand-in for LindormTable's MySQL-compatible SQL (the Lindorm wide table engine).
//! **It is not the engine**: a MySQL-protocol server on loopback that accepts the
//! documented subset of Lindorm SQL, enforces its documented limits, and keeps the rows
//! in a throwaway MariaDB server it starts, so they survive a restart of the stand-in
//! ([`LindormStandIn::stop`] / [`LindormStandIn::start_again`]). It exists because no
//! Lindorm server can run here; docs/standins.md says what it does not imitate.
//!
//! Imitated behaviours and their public sources (alibabacloud.com/help/en/lindorm/…,
//! help.aliyun.com/zh/lindorm/…):
//!
//! - Protocol ("Usage notes for application development by using MySQL",
//!   …/user-guide/mysql-protocol-development-instructions): HandshakeV10,
//!   `mysql_native_password`, COM_QUERY, COM_INIT_DB, COM_PING, COM_QUIT;
//!   server-side prepared statements (the documents' JDBC URLs use
//!   `useServerPrepStmts=true`; bound DOUBLE values need no scientific notation);
//!   COM_RESET_CONNECTION and COM_CHANGE_USER are refused with an error, so a pool that
//!   resets connections fails here as it would there.
//! - Types ("Basic data types", …/developer-reference/basic-data-types): BOOLEAN,
//!   TINYINT, SMALLINT, INTEGER, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s) with p 1–38,
//!   VARCHAR, CHAR(n), BINARY(n), VARBINARY, DATE, TIME, TIMESTAMP; "All DOUBLE values in
//!   SQL statements must be expressed in scientific notation", so a DOUBLE column given
//!   `1.5` is refused and `1.5E0` accepted. No BIT, MEDIUMINT, REAL, TEXT types or
//!   DATETIME, no UNSIGNED except BIGINT UNSIGNED, no length on integer types
//!   ("Compatibility comparison between Lindorm SQL and MySQL",
//!   help.aliyun.com/zh/lindorm/user-guide/compatibility-comparison-between-lindorm-sql-and-mysql).
//! - `CREATE TABLE [IF NOT EXISTS] t (col type [NOT NULL], …, PRIMARY KEY(c1 [ASC|DESC],
//!   …)) [WITH (k='v', …)]` ("CREATE TABLE", …/developer-reference/the-create-table);
//!   at most 5 key columns, VARBINARY only as the last key column, a key of at most
//!   2 KB ("Quotas and limits", …/product-overview/quotas-and-limits).
//! - `UPSERT INTO t (cols) VALUES (…), …`; `INSERT` is the same upsert and overwrites
//!   only the columns it names; every key column must be given (compatibility page,
//!   "UPSERT", alibabacloud.com/help/en/doc-detail/216804.html). `REPLACE`, `INSERT …
//!   ON DUPLICATE KEY UPDATE` (only with CONSISTENCY='strong' there), `INSERT IGNORE`
//!   and `INSERT … SELECT` are refused.
//! - `DELETE FROM t WHERE` every key column `=` a value, nothing else (one row per
//!   statement, the default); success is reported for a missing row.
//! - `ALTER TABLE t ADD [COLUMN] name type [, ADD …]`: a name and a type only (no
//!   DEFAULT, NOT NULL or other attributes), never a key column; `DROP TABLE [IF
//!   EXISTS] t`.
//! - No multi-row transactions: BEGIN, START TRANSACTION, COMMIT, ROLLBACK and `SET
//!   autocommit = 0` are refused.
//! - Limits ("Quotas and limits"): at most 2 000 rows and 64 MB per write request, at
//!   most 2 MB of non-key values per row, key at most 2 KB.
//! - Empty VARBINARY/BINARY values are stored as NULL (seed document "Migrate data from
//!   RDS MySQL to Lindorm": "Empty strings of the VARBINARY type are treated as null by
//!   both DTS and Lindorm").
//! - FLOAT is a 4-byte float ("Basic data types"): values are rounded to one and read
//!   back exactly (kept in a DOUBLE: MariaDB's FLOAT prints 6 digits).
//! - Table names keep their case (column names compare case-insensitively here, as in
//!   MariaDB, unlike Lindorm); the default namespace is `default`.
//!
//! Reads (SELECT, SHOW, DESCRIBE) are forwarded to MariaDB; SHOW CREATE TABLE answers
//! the Lindorm definition.

use super::sql::{lit, q, syntax, Tok, P};
use super::wire::{Col, Greeting, Reply, Session, SqlError};
use super::{forward, storage_conn, Engine, Listener};
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use std::sync::Arc;

/// What the handshake, `@@version` and `VERSION()` report (the stand-in's choice).
pub const SERVER_VERSION: &str = "8.0.0-Lindorm-standin";

/// Where the stand-in keeps each table's Lindorm definition: MariaDB's own system
/// schema, which tools reading `information_schema` already leave out, and which
/// clients of the stand-in cannot use.
pub const META_DB: &str = "mysql";

#[derive(Clone, Debug)]
pub struct Options {
    pub user: String,
    pub password: String,
    pub max_rows_per_write: usize,
    pub max_request_bytes: usize,
    pub max_row_value_bytes: usize,
    pub max_key_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            user: "root".into(),
            password: String::new(),
            max_rows_per_write: 2000,
            max_request_bytes: 64 << 20,
            max_row_value_bytes: 2 << 20,
            max_key_bytes: 2048,
        }
    }
}

/// A running Lindorm stand-in.
pub struct LindormStandIn {
    listener: Listener,
    storage: crate::Server,
    opts: Options,
}

impl LindormStandIn {
    pub fn start(opts: &Options) -> Result<LindormStandIn> {
        let storage = crate::Server::start(&crate::Options {
            binlog: false,
            server_id: 91,
            time_zone: Some("+00:00".into()),
            extra_args: vec![
                "--max-allowed-packet=1G".into(),
                format!("--version={SERVER_VERSION}"),
            ],
        })
        .context("starting the Lindorm stand-in's storage server")?;
        let mut c = storage.conn()?;
        c.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS `default`; \
             CREATE TABLE IF NOT EXISTS {m}.`lindorm_standin_tables` (db VARCHAR(255) NOT NULL, \
             name VARCHAR(255) NOT NULL, ddl MEDIUMTEXT NOT NULL, PRIMARY KEY (db, name)) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            m = q(META_DB)
        ))
        .context("creating the Lindorm stand-in's catalog")?;
        let engine = Arc::new(LindormEngine {
            storage_port: storage.port,
            opts: opts.clone(),
        });
        let listener = Listener::start(engine)?;
        Ok(LindormStandIn {
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

    pub fn storage(&self) -> &crate::Server {
        &self.storage
    }

    /// Closes the port and every client connection, as a restarting server does; the
    /// rows are kept.
    pub fn stop(&self) {
        self.listener.stop();
    }

    /// Serves again on the same port after [`LindormStandIn::stop`].
    pub fn start_again(&self) -> Result<()> {
        self.listener.start_again()
    }

    /// Stops the stand-in and its storage server, then starts both again on the same
    /// ports and data: what survives this survived a restart of the engine.
    pub fn restart(&self, downtime: std::time::Duration) -> Result<()> {
        self.stop();
        self.storage.restart(downtime)?;
        self.start_again()
    }
}

struct LindormEngine {
    storage_port: u16,
    opts: Options,
}

impl Engine for LindormEngine {
    fn greeting(&self) -> Greeting {
        Greeting {
            server_version: SERVER_VERSION.into(),
            user: self.opts.user.clone(),
            password: self.opts.password.clone(),
        }
    }

    fn open(&self, db: Option<&str>) -> Result<Box<dyn Session>, SqlError> {
        let db = db.unwrap_or("default");
        if db == META_DB {
            return Err(SqlError::new(
                1049,
                "42000",
                format!("Unknown database '{db}'"),
            ));
        }
        Ok(Box::new(LindormSession {
            conn: storage_conn(self.storage_port, Some(db))?,
            db: db.to_string(),
            opts: self.opts.clone(),
            prepared: false,
        }))
    }

    fn allow_reset(&self) -> bool {
        false
    }
}

struct LindormSession {
    conn: mysql::Conn,
    db: String,
    opts: Options,
    /// Running a prepared statement: its DOUBLE values were bound, not written as
    /// literals, so the scientific-notation rule does not apply to them.
    prepared: bool,
}

fn refused(msg: impl Into<String>) -> SqlError {
    SqlError::new(1105, "HY000", msg)
}

fn not_implemented(what: &str) -> SqlError {
    SqlError::new(
        1235,
        "42000",
        format!("{what} is Lindorm SQL but not implemented by the Lindorm stand-in"),
    )
}

impl Session for LindormSession {
    fn query(&mut self, sql: &str) -> Vec<Reply> {
        if sql.len() > self.opts.max_request_bytes {
            return vec![Reply::Err(refused(format!(
                "request of {} bytes is over Lindorm's limit of {} bytes per write request",
                sql.len(),
                self.opts.max_request_bytes
            )))];
        }
        let stmts = match super::sql::split(sql) {
            Ok(s) => s,
            Err(e) => return vec![Reply::Err(e)],
        };
        let mut out = Vec::new();
        for s in stmts {
            let r = match super::own_variable(s) {
                Some(r) => vec![r],
                None => self.statement(s).unwrap_or_else(|e| vec![Reply::Err(e)]),
            };
            let failed = r.iter().any(|r| matches!(r, Reply::Err(_)));
            out.extend(r);
            if failed {
                break;
            }
        }
        out
    }

    fn execute(&mut self, sql: &str) -> Vec<Reply> {
        self.prepared = true;
        let r = self.query(sql);
        self.prepared = false;
        r
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
                self.db = db.to_string();
                Reply::ok()
            }
            Err(e) => Reply::Err(super::my_err(e)),
        }
    }

    fn reset(&mut self) -> Reply {
        Reply::Err(SqlError::new(
            1047,
            "08S01",
            "Unknown command: COM_RESET_CONNECTION is not supported by LindormTable",
        ))
    }
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    base: String,
    args: String,
    unsigned: bool,
    not_null: bool,
}

impl Column {
    fn render(&self) -> String {
        format!(
            "{} {}{}{}{}",
            q(&self.name),
            self.base,
            self.args,
            if self.unsigned { " UNSIGNED" } else { "" },
            if self.not_null { " NOT NULL" } else { "" }
        )
    }

    fn is_binary(&self) -> bool {
        self.base == "VARBINARY" || self.base == "BINARY"
    }

    /// Storage bytes a key value of this type takes at most, for fixed-size types.
    fn fixed_key_bytes(&self) -> Option<usize> {
        Some(match self.base.as_str() {
            "BOOLEAN" | "TINYINT" => 1,
            "SMALLINT" => 2,
            "INTEGER" | "FLOAT" => 4,
            "BIGINT" | "DOUBLE" | "TIMESTAMP" => 8,
            "DECIMAL" => 17,
            "DATE" | "TIME" => 6,
            _ => return None,
        })
    }

    fn storage(&self, key: Option<usize>) -> String {
        let ty = match (self.base.as_str(), key) {
            ("INTEGER", _) => "INT".to_string(),
            ("BIGINT", _) if self.unsigned => "BIGINT UNSIGNED".into(),
            ("VARCHAR" | "CHAR", Some(bytes)) => format!(
                "VARCHAR({}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                (bytes / 4).max(1)
            ),
            ("VARCHAR" | "CHAR", None) => {
                "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into()
            }
            ("VARBINARY" | "BINARY", Some(bytes)) => format!("VARBINARY({})", bytes.max(1)),
            ("VARBINARY" | "BINARY", None) => "MEDIUMBLOB".into(),
            ("DECIMAL", _) => format!("DECIMAL{}", self.args),
            // Rounded to a float on the way in (`round_float`): exact when read back.
            ("FLOAT", _) => "DOUBLE".into(),
            ("TIME", _) => "TIME(3)".into(),
            // Lindorm's TIMESTAMP is a millisecond instant with no session time zone
            // applied by storage; DATETIME keeps MariaDB from converting or bounding it.
            ("TIMESTAMP", _) => "DATETIME(3)".into(),
            (other, _) => other.to_string(),
        };
        format!(
            "{} {ty}{}",
            q(&self.name),
            if key.is_some() { " NOT NULL" } else { "" }
        )
    }
}

#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
    key: Vec<String>,
    /// `PRIMARY KEY` entries as written (`c DESC`).
    key_spec: Vec<String>,
    with: Option<String>,
}

impl Table {
    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn is_key(&self, name: &str) -> bool {
        self.key.iter().any(|k| k == name)
    }

    fn render(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("  {}", c.render()))
            .collect();
        parts.push(format!("  PRIMARY KEY({})", self.key_spec.join(", ")));
        let mut s = format!("CREATE TABLE {} (\n{}\n)", q(&self.name), parts.join(",\n"));
        if let Some(w) = &self.with {
            s.push_str(&format!(" WITH ({w})"));
        }
        s
    }

    /// Byte budget of each variable-length key column in storage (InnoDB keys hold
    /// 3072 bytes).
    fn key_budget(&self) -> usize {
        let cols: Vec<&Column> = self.key.iter().filter_map(|k| self.column(k)).collect();
        let fixed: usize = cols.iter().filter_map(|c| c.fixed_key_bytes()).sum();
        let var = cols
            .iter()
            .filter(|c| c.fixed_key_bytes().is_none())
            .count();
        3072usize
            .saturating_sub(fixed)
            .checked_div(var)
            .unwrap_or(0)
    }

    fn storage_ddl(&self, db: &str) -> String {
        let budget = self.key_budget();
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.storage(self.is_key(&c.name).then_some(budget)))
            .collect();
        let key: Vec<String> = self.key.iter().map(|k| q(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        format!(
            "CREATE TABLE {}.{} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            q(db),
            q(&self.name),
            parts.join(", ")
        )
    }
}

fn column_type(p: &mut P, name: &str) -> Result<Column, SqlError> {
    let base = match p.peek() {
        Some(Tok::Word(w)) => w.to_ascii_uppercase(),
        _ => return Err(p.unexpected(&format!("the type of column `{name}`"))),
    };
    p.i += 1;
    let why = match base.as_str() {
        "BIT" => Some("BIT is not a Lindorm type: use BOOLEAN or BIGINT"),
        "MEDIUMINT" => Some("MEDIUMINT is not a Lindorm type: use INTEGER"),
        "INT" => Some("use INTEGER: Lindorm's four-byte integer type is INTEGER"),
        "REAL" => Some("REAL is not a Lindorm type: use DOUBLE"),
        "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" => {
            Some("Lindorm has no TEXT types: use VARCHAR")
        }
        "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            Some("Lindorm has no BLOB types: use VARBINARY")
        }
        "DATETIME" => Some("Lindorm has no DATETIME: use TIMESTAMP"),
        "ENUM" | "SET" | "JSON" | "YEAR" => Some("not a Lindorm type: use VARCHAR or SMALLINT"),
        _ => None,
    };
    if let Some(why) = why {
        return Err(refused(format!("column `{name}` of type {base}: {why}")));
    }
    const TYPES: &[&str] = &[
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
        "VARCHAR",
        "CHAR",
        "BINARY",
        "VARBINARY",
        "DATE",
        "TIME",
        "TIMESTAMP",
    ];
    if !TYPES.contains(&base.as_str()) {
        return Err(refused(format!(
            "column `{name}`: unknown Lindorm type {base}"
        )));
    }
    let from = p.prev_end();
    let mut args = String::new();
    if p.is_sym("(") {
        p.parens_raw()?;
        args = p.src[from..p.prev_end()].trim().to_string();
        if ["BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT"].contains(&base.as_str()) {
            return Err(refused(format!(
                "column `{name}`: Lindorm's integer types take no length ({base}{args})"
            )));
        }
    }
    if base == "DECIMAL" {
        let inner = args.trim_start_matches('(').trim_end_matches(')');
        let nums: Vec<Option<u32>> = inner.split(',').map(|x| x.trim().parse().ok()).collect();
        match nums.as_slice() {
            [Some(p), Some(s)] if (1..=38).contains(p) && s <= p => {}
            [Some(p)] if (1..=38).contains(p) => {}
            _ => {
                return Err(refused(format!(
                    "column `{name}`: DECIMAL{args} is out of range: Lindorm's DECIMAL(p, s) \
                     takes p from 1 to 38 and s from 0 to p"
                )))
            }
        }
    }
    let unsigned = p.eat_kw("UNSIGNED");
    if unsigned && base != "BIGINT" {
        return Err(refused(format!(
            "column `{name}`: Lindorm has no {base} UNSIGNED (BIGINT UNSIGNED is the only \
             unsigned type)"
        )));
    }
    Ok(Column {
        name: name.to_string(),
        base,
        args,
        unsigned,
        not_null: false,
    })
}

fn parse_create(s: &str) -> Result<(Table, bool), SqlError> {
    let mut p = P::new(s)?;
    p.expect_kw("CREATE")?;
    p.expect_kw("TABLE")?;
    let if_not_exists = p.eat_kws(&["IF", "NOT", "EXISTS"]);
    let (_, name) = p.table_ref()?;
    if name.is_empty() || name.len() > 255 {
        return Err(refused("table names are 1 to 255 characters"));
    }
    p.expect_sym("(")?;
    let mut columns: Vec<Column> = Vec::new();
    let mut key_spec = Vec::new();
    let mut key = Vec::new();
    loop {
        if p.eat_kws(&["PRIMARY", "KEY"]) {
            p.expect_sym("(")?;
            loop {
                let k = p.ident()?;
                let order = if p.eat_kw("ASC") {
                    " ASC"
                } else if p.eat_kw("DESC") {
                    " DESC"
                } else {
                    ""
                };
                key_spec.push(format!("{}{order}", q(&k)));
                key.push(k);
                if !p.eat_sym(",") {
                    break;
                }
            }
            p.expect_sym(")")?;
        } else {
            let n = p.ident()?;
            let mut c = column_type(&mut p, &n)?;
            if p.eat_kws(&["NOT", "NULL"]) {
                c.not_null = true;
            } else {
                p.eat_kw("NULL");
            }
            if !(p.is_sym(",") || p.is_sym(")")) {
                return Err(syntax(format!(
                    "column `{n}`: {} is not Lindorm SQL: a column is `name type [NOT NULL]`",
                    p.near()
                )));
            }
            if columns.iter().any(|x| x.name == c.name) {
                return Err(SqlError::new(
                    1060,
                    "42S21",
                    format!("Duplicate column name '{n}'"),
                ));
            }
            columns.push(c);
        }
        if !p.eat_sym(",") {
            break;
        }
    }
    p.expect_sym(")")?;
    let with = if p.eat_kw("WITH") {
        Some(p.parens_raw()?)
    } else {
        None
    };
    if !p.done() {
        return Err(p.unexpected("WITH (...) or the end of CREATE TABLE"));
    }
    if key.is_empty() {
        return Err(refused(format!("table `{name}` needs a PRIMARY KEY")));
    }
    if key.len() > 5 {
        return Err(refused(format!(
            "the primary key of `{name}` has {} columns: Lindorm allows at most 5",
            key.len()
        )));
    }
    for (i, k) in key.iter().enumerate() {
        let c = columns.iter().find(|c| &c.name == k).ok_or_else(|| {
            SqlError::new(
                1072,
                "42000",
                format!("Key column '{k}' doesn't exist in table"),
            )
        })?;
        if c.base == "VARBINARY" && i + 1 != key.len() {
            return Err(refused(format!(
                "key column `{k}` is VARBINARY: VARBINARY can only be the last key column"
            )));
        }
    }
    Ok((
        Table {
            name,
            columns,
            key,
            key_spec,
            with,
        },
        if_not_exists,
    ))
}

/// One value of an UPSERT or DELETE.
struct Val {
    /// The literal as MariaDB should get it.
    sql: String,
    /// Bytes the value occupies (strings by their UTF-8 length).
    bytes: usize,
    /// Text of a number literal.
    number: Option<String>,
    empty: bool,
    null: bool,
}

fn value(p: &mut P) -> Result<Val, SqlError> {
    let v = match p.peek().cloned() {
        Some(Tok::Str { text, .. }) => {
            p.i += 1;
            Val {
                sql: lit(&text),
                bytes: text.len(),
                number: None,
                empty: text.is_empty(),
                null: false,
            }
        }
        Some(Tok::Num(n)) => {
            p.i += 1;
            Val {
                sql: n.clone(),
                bytes: if n.starts_with("0x") {
                    (n.len() - 2) / 2
                } else {
                    8
                },
                empty: n == "0x",
                number: (!n.starts_with("0x")).then_some(n),
                null: false,
            }
        }
        Some(Tok::Sym(m)) if m == "-" => {
            p.i += 1;
            let n = p.number()?;
            Val {
                sql: format!("-{n}"),
                bytes: 8,
                number: Some(n),
                empty: false,
                null: false,
            }
        }
        Some(Tok::Word(w)) => {
            let up = w.to_ascii_uppercase();
            let next_is_str = matches!(p.peek_at(1), Some(Tok::Str { .. }));
            if (up == "X") && next_is_str {
                p.i += 1;
                let hex = p.string()?;
                Val {
                    sql: format!("X{}", lit(&hex)),
                    bytes: hex.len() / 2,
                    number: None,
                    empty: hex.is_empty(),
                    null: false,
                }
            } else if ["DATE", "TIME", "TIMESTAMP"].contains(&up.as_str()) && next_is_str {
                p.i += 1;
                let t = p.string()?;
                Val {
                    sql: lit(&t),
                    bytes: 8,
                    number: None,
                    empty: false,
                    null: false,
                }
            } else if ["NULL", "TRUE", "FALSE"].contains(&up.as_str()) {
                p.i += 1;
                Val {
                    sql: up.clone(),
                    bytes: if up == "NULL" { 0 } else { 1 },
                    number: None,
                    empty: false,
                    null: up == "NULL",
                }
            } else {
                return Err(not_implemented(&format!(
                    "A value that is not a literal ({})",
                    p.near()
                )));
            }
        }
        _ => return Err(p.unexpected("a value")),
    };
    Ok(v)
}

/// A FLOAT column keeps a 4-byte float: the literal is rounded to the nearest one, and
/// stored (in a DOUBLE) as that float's shortest decimal, so it reads back exactly
/// (MariaDB's own FLOAT would print only 6 digits).
fn round_float(c: &Column, v: &mut Val) {
    if c.base == "FLOAT" && v.number.is_some() {
        if let Ok(f) = v.sql.parse::<f32>() {
            if f.is_finite() {
                v.sql = format!("{f:e}");
            }
        }
    }
}

/// Refuses a DOUBLE column's value not in scientific notation.
fn check_double(c: &Column, v: &Val) -> Result<(), SqlError> {
    if c.base == "DOUBLE" {
        if let Some(n) = &v.number {
            if !n.contains(['e', 'E']) {
                return Err(refused(format!(
                    "column `{}` is DOUBLE: DOUBLE values must be written in scientific \
                     notation (e.g. {n}E0), not {n}",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

impl LindormSession {
    fn statement(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let p = P::new(s)?;
        let kw = match p.peek() {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            _ => return Err(syntax(format!("not Lindorm SQL: {}", p.near()))),
        };
        match kw.as_str() {
            "CREATE" if p.is_kw_at(1, "TABLE") => self.create_table(s),
            "CREATE" | "DROP" if p.is_kw_at(1, "DATABASE") || p.is_kw_at(1, "SCHEMA") => {
                Ok(forward(&mut self.conn, s))
            }
            "DROP" if p.is_kw_at(1, "TABLE") => self.drop_table(p),
            "ALTER" if p.is_kw_at(1, "TABLE") => self.alter_table(p),
            "UPSERT" | "INSERT" => self.upsert(p),
            "DELETE" => self.delete(p),
            "REPLACE" => Err(syntax(
                "REPLACE is not Lindorm SQL: use UPSERT INTO (every write is an upsert)",
            )),
            "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" => Err(refused(format!(
                "{kw}: LindormTable has no multi-statement transactions; each write is \
                 applied on its own"
            ))),
            "SET" => {
                let compact: String = s
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if compact.contains("autocommit=0") || compact.contains("autocommit=off") {
                    return Err(refused(
                        "SET autocommit = 0: LindormTable has no multi-statement transactions",
                    ));
                }
                Ok(forward(&mut self.conn, s))
            }
            "USE" => {
                let mut p = p;
                p.i += 1;
                let db = p.ident()?;
                Ok(vec![self.init_db(&db)])
            }
            "SHOW" if p.is_kw_at(1, "CREATE") && p.is_kw_at(2, "TABLE") => {
                let mut p = p;
                p.i += 3;
                let (db, name) = p.table_ref()?;
                let db = db.unwrap_or_else(|| self.db.clone());
                let t = self.load(&db, &name)?;
                Ok(vec![Reply::Rows {
                    cols: vec![Col::text("Table"), Col::text("Create Table")],
                    rows: vec![vec![
                        Some(t.name.clone().into_bytes()),
                        Some(t.render().into_bytes()),
                    ]],
                }])
            }
            "SHOW" => {
                let mut r = forward(&mut self.conn, s);
                for reply in &mut r {
                    if let Reply::Rows { rows, .. } = reply {
                        rows.retain(|row| row.first() != Some(&Some(META_DB.as_bytes().to_vec())));
                    }
                }
                Ok(r)
            }
            "SELECT" | "DESCRIBE" | "DESC" | "EXPLAIN" => Ok(forward(&mut self.conn, s)),
            "UPDATE" => Err(not_implemented("UPDATE")),
            other => Err(syntax(format!("{other} is not Lindorm SQL supported here"))),
        }
    }

    fn load(&mut self, db: &str, name: &str) -> Result<Table, SqlError> {
        let ddl: Option<String> = self
            .conn
            .query_first(format!(
                "SELECT ddl FROM {}.`lindorm_standin_tables` WHERE db = {} AND name = {}",
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
        self.conn
            .query_drop(format!(
                "REPLACE INTO {}.`lindorm_standin_tables` (db, name, ddl) VALUES ({}, {}, {})",
                q(META_DB),
                lit(db),
                lit(&t.name),
                lit(&t.render())
            ))
            .map_err(super::my_err)
    }

    fn table_of(&mut self, p: &mut P) -> Result<(String, Table), SqlError> {
        let (db, name) = p.table_ref()?;
        let db = db.unwrap_or_else(|| self.db.clone());
        let t = self.load(&db, &name)?;
        Ok((db, t))
    }

    fn create_table(&mut self, s: &str) -> Result<Vec<Reply>, SqlError> {
        let (t, if_not_exists) = parse_create(s)?;
        let mut p = P::new(s)?;
        p.i += 2;
        p.eat_kws(&["IF", "NOT", "EXISTS"]);
        let (db, _) = p.table_ref()?;
        let db = db.unwrap_or_else(|| self.db.clone());
        let r = forward(&mut self.conn, &t.storage_ddl(&db));
        if let Some(Reply::Err(e)) = r.first() {
            if e.code == 1050 && if_not_exists {
                return Ok(vec![Reply::ok()]);
            }
            return Ok(r);
        }
        self.save(&db, &t)?;
        Ok(r)
    }

    fn drop_table(&mut self, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 2;
        let if_exists = p.eat_kws(&["IF", "EXISTS"]);
        let (db, name) = p.table_ref()?;
        if !p.done() {
            return Err(p.unexpected("the end of DROP TABLE"));
        }
        let db = db.unwrap_or_else(|| self.db.clone());
        let r = forward(
            &mut self.conn,
            &format!(
                "DROP TABLE {}{}.{}",
                if if_exists { "IF EXISTS " } else { "" },
                q(&db),
                q(&name)
            ),
        );
        if !r.iter().any(|r| matches!(r, Reply::Err(_))) {
            self.conn
                .query_drop(format!(
                    "DELETE FROM {}.`lindorm_standin_tables` WHERE db = {} AND name = {}",
                    q(META_DB),
                    lit(&db),
                    lit(&name)
                ))
                .map_err(super::my_err)?;
        }
        Ok(r)
    }

    fn alter_table(&mut self, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 2;
        let (db, mut t) = self.table_of(&mut p)?;
        let mut clauses = Vec::new();
        loop {
            if p.is_kw("DROP") {
                return Err(not_implemented(
                    "ALTER TABLE ... DROP COLUMN (LindormTable 2.6.6+)",
                ));
            }
            if !p.eat_kw("ADD") {
                return Err(syntax(format!(
                    "ALTER TABLE near {}: Lindorm's ALTER TABLE adds columns (ADD [COLUMN] name type)",
                    p.near()
                )));
            }
            p.eat_kw("COLUMN");
            if p.is_kw("PRIMARY") || p.is_kw("INDEX") || p.is_kw("KEY") {
                return Err(refused("ALTER TABLE ... ADD adds non-key columns only"));
            }
            let n = p.ident()?;
            let c = column_type(&mut p, &n)?;
            if !(p.done() || p.is_sym(",")) {
                return Err(refused(format!(
                    "ALTER TABLE ... ADD COLUMN `{n}`: {} is not allowed; Lindorm takes a name \
                     and a type only (no DEFAULT, NOT NULL, COMMENT or position)",
                    p.near()
                )));
            }
            if t.column(&n).is_some() {
                return Err(SqlError::new(
                    1060,
                    "42S21",
                    format!("Duplicate column name '{n}'"),
                ));
            }
            clauses.push(format!("ADD COLUMN {}", c.storage(None)));
            t.columns.push(c);
            if !p.eat_sym(",") {
                break;
            }
        }
        let r = forward(
            &mut self.conn,
            &format!(
                "ALTER TABLE {}.{} {}",
                q(&db),
                q(&t.name),
                clauses.join(", ")
            ),
        );
        if r.iter().any(|r| matches!(r, Reply::Err(_))) {
            return Ok(r);
        }
        self.save(&db, &t)?;
        Ok(vec![Reply::ok()])
    }

    fn upsert(&mut self, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 1;
        if matches!(p.peek(), Some(Tok::Hint(_))) {
            return Err(not_implemented("Hints (/*+ _l_ts_ */ and others)"));
        }
        if p.is_kw("IGNORE") {
            return Err(syntax(
                "INSERT IGNORE is not supported here: UPSERT never fails on duplicates",
            ));
        }
        p.expect_kw("INTO")?;
        let (db, t) = self.table_of(&mut p)?;
        let cols: Vec<String> = if p.is_sym("(") {
            p.name_list()?
        } else {
            t.columns.iter().map(|c| c.name.clone()).collect()
        };
        let mut defs = Vec::new();
        for c in &cols {
            let d = t.column(c).ok_or_else(|| {
                SqlError::new(
                    1054,
                    "42S22",
                    format!("Unknown column '{c}' in table '{}'", t.name),
                )
            })?;
            defs.push(d.clone());
        }
        for k in &t.key {
            if !cols.contains(k) {
                return Err(refused(format!(
                    "the primary key column `{k}` of `{}` is missing: UPSERT must give every key column",
                    t.name
                )));
            }
        }
        if p.is_kw("SELECT") {
            return Err(not_implemented("UPSERT ... SELECT"));
        }
        if !(p.eat_kw("VALUES") || p.eat_kw("VALUE")) {
            return Err(p.unexpected("VALUES"));
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        loop {
            p.expect_sym("(")?;
            let mut row = Vec::new();
            let (mut key_bytes, mut value_bytes) = (0usize, 0usize);
            let mut key_text = Vec::new();
            for (i, c) in defs.iter().enumerate() {
                if i > 0 {
                    p.expect_sym(",")?;
                }
                let mut v = value(&mut p)?;
                if !self.prepared {
                    check_double(c, &v)?;
                }
                round_float(c, &mut v);
                if t.is_key(&c.name) {
                    if v.null {
                        return Err(refused(format!("key column `{}` cannot be NULL", c.name)));
                    }
                    key_bytes += v.bytes;
                    key_text.push(v.sql.clone());
                    row.push(v.sql);
                } else {
                    value_bytes += v.bytes;
                    // Lindorm stores an empty VARBINARY as NULL.
                    row.push(if c.is_binary() && v.empty {
                        "NULL".into()
                    } else {
                        v.sql
                    });
                }
            }
            p.expect_sym(")")?;
            if key_bytes > self.opts.max_key_bytes {
                return Err(refused(format!(
                    "the key ({}) of a row for `{}` is {key_bytes} bytes: Lindorm keys are at most {} bytes",
                    key_text.join(", "),
                    t.name,
                    self.opts.max_key_bytes
                )));
            }
            if value_bytes > self.opts.max_row_value_bytes {
                return Err(refused(format!(
                    "the row with key ({}) for `{}` has {value_bytes} bytes of non-key values: \
                     Lindorm allows at most {} bytes per row",
                    key_text.join(", "),
                    t.name,
                    self.opts.max_row_value_bytes
                )));
            }
            rows.push(row);
            if rows.len() > self.opts.max_rows_per_write {
                return Err(refused(format!(
                    "a write request holds more than {} rows: Lindorm allows at most {} rows per \
                     write request",
                    self.opts.max_rows_per_write, self.opts.max_rows_per_write
                )));
            }
            if !p.eat_sym(",") {
                break;
            }
        }
        if p.is_kw("ON") {
            return Err(syntax(
                "INSERT ... ON DUPLICATE KEY UPDATE is not supported here (Lindorm allows it \
                 only on tables with CONSISTENCY='strong'): UPSERT overwrites the named columns",
            ));
        }
        if !p.done() {
            return Err(p.unexpected("`,` or the end of UPSERT"));
        }
        let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
        let values: Vec<String> = rows.iter().map(|r| format!("({})", r.join(", "))).collect();
        let updates: Vec<String> = cols
            .iter()
            .filter(|c| !t.is_key(c))
            .map(|c| format!("{} = VALUES({})", q(c), q(c)))
            .collect();
        let updates = if updates.is_empty() {
            format!("{} = {}", q(&t.key[0]), q(&t.key[0]))
        } else {
            updates.join(", ")
        };
        let n = rows.len() as u64;
        let r = forward(
            &mut self.conn,
            &format!(
                "INSERT INTO {}.{} ({}) VALUES {} ON DUPLICATE KEY UPDATE {updates}",
                q(&db),
                q(&t.name),
                list.join(", "),
                values.join(", ")
            ),
        );
        Ok(r.into_iter()
            .map(|r| match r {
                Reply::Ok { .. } => Reply::Ok {
                    affected: n,
                    last_insert_id: 0,
                    info: String::new(),
                },
                other => other,
            })
            .collect())
    }

    fn delete(&mut self, mut p: P) -> Result<Vec<Reply>, SqlError> {
        p.i += 1;
        p.expect_kw("FROM")?;
        let (db, t) = self.table_of(&mut p)?;
        let rule = || {
            refused(format!(
                "DELETE must name every key column of `{}` with `=` and nothing else \
                 (WHERE {}): one row per statement",
                t.name,
                t.key
                    .iter()
                    .map(|k| format!("{} = ?", q(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ))
        };
        if !p.eat_kw("WHERE") {
            return Err(rule());
        }
        let mut conds: Vec<(String, String)> = Vec::new();
        loop {
            let c = p.ident().map_err(|_| rule())?;
            if !p.eat_sym("=") {
                return Err(rule());
            }
            let def = t.column(&c).cloned().ok_or_else(rule)?;
            let mut v = value(&mut p)?;
            if !self.prepared {
                check_double(&def, &v)?;
            }
            round_float(&def, &mut v);
            if !t.is_key(&c) || conds.iter().any(|(x, _)| x == &c) {
                return Err(rule());
            }
            conds.push((c, v.sql));
            if !p.eat_kw("AND") {
                break;
            }
        }
        if !p.done() || conds.len() != t.key.len() {
            return Err(rule());
        }
        let wh: Vec<String> = conds
            .iter()
            .map(|(c, v)| format!("{} = {v}", q(c)))
            .collect();
        Ok(forward(
            &mut self.conn,
            &format!(
                "DELETE FROM {}.{} WHERE {}",
                q(&db),
                q(&t.name),
                wh.join(" AND ")
            ),
        ))
    }
}
