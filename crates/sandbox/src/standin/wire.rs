//! The server side of the MySQL client/server protocol, the small subset the stand-ins
//! need: HandshakeV10 with `mysql_native_password`, COM_QUERY (text resultsets, several
//! results for a multi-statement query), COM_INIT_DB, COM_PING, COM_QUIT, prepared
//! statements (COM_STMT_PREPARE/EXECUTE/CLOSE/RESET: the parameters are written into
//! the text as literals and the statement runs as a query) and, when the engine allows
//! it, COM_RESET_CONNECTION; replication commands (COM_REGISTER_SLAVE, COM_BINLOG_DUMP)
//! when the session serves them, the connection then becoming an event stream.
//! Everything else (COM_CHANGE_USER, COM_STMT_SEND_LONG_DATA,
//! …) gets an ERR packet naming the command.
//!
//! Sources: the MySQL protocol documentation (dev.mysql.com/doc/internals/en/ and
//! dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basics.html): packet framing
//! with 3-byte length and sequence id, payloads of 16 MB - 1 split over several packets,
//! the handshake, OK/ERR/EOF packets and the text resultset.
//!
//! Written here rather than taken from `opensrv-mysql` because that crate is async
//! (tokio) while the workspace is synchronous, and the stand-ins need to refuse commands
//! (COM_RESET_CONNECTION for Lindorm) at a level such a library hides.

use anyhow::{bail, Context, Result};
use sha1::{Digest, Sha1};
use std::io::{Read, Write};
use std::net::TcpStream;

const MAX_CHUNK: usize = 0xFF_FFFF;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_FOUND_ROWS: u32 = 0x2;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_STATEMENTS: u32 = 0x1_0000;
const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_CONNECT_ATTRS: u32 = 0x10_0000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x20_0000;

const SERVER_CAPS: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC;

const STATUS_AUTOCOMMIT: u16 = 0x2;
const STATUS_MORE_RESULTS: u16 = 0x8;

pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_PING: u8 = 0x0e;
pub const COM_RESET_CONNECTION: u8 = 0x1f;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1a;

/// An error as the client sees it: MySQL error number, SQLSTATE and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl SqlError {
    pub fn new(code: u16, state: &str, message: impl Into<String>) -> SqlError {
        SqlError {
            code,
            state: state.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, self.state, self.message)
    }
}

/// A column definition of a text resultset.
#[derive(Clone, Debug)]
pub struct Col {
    pub schema: String,
    pub table: String,
    pub org_table: String,
    pub name: String,
    pub org_name: String,
    pub charset: u16,
    pub length: u32,
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
}

impl Col {
    /// A VARCHAR column with no table, as `SHOW` statements answer.
    pub fn text(name: &str) -> Col {
        Col {
            schema: String::new(),
            table: String::new(),
            org_table: String::new(),
            name: name.to_string(),
            org_name: name.to_string(),
            charset: 45,
            length: 1024,
            column_type: 0xfd,
            flags: 0,
            decimals: 0,
        }
    }
}

/// The answer to one statement.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok {
        affected: u64,
        last_insert_id: u64,
        info: String,
    },
    Rows {
        cols: Vec<Col>,
        rows: Vec<Vec<Option<Vec<u8>>>>,
    },
    Err(SqlError),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Ok {
            affected: 0,
            last_insert_id: 0,
            info: String::new(),
        }
    }
}

/// What a connection does with commands; one per client connection.
pub trait Session: Send {
    /// Runs the text of one COM_QUERY. The replies are sent in order; an `Err` ends them.
    fn query(&mut self, sql: &str) -> Vec<Reply>;
    /// Runs a prepared statement, its parameters already written in as literals.
    fn execute(&mut self, sql: &str) -> Vec<Reply> {
        self.query(sql)
    }
    fn init_db(&mut self, db: &str) -> Reply;
    /// COM_RESET_CONNECTION.
    fn reset(&mut self) -> Reply;
    /// Replication commands (COM_REGISTER_SLAVE, COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID);
    /// `None` answers "Unknown command".
    fn replication(&mut self, _cmd: u8, _body: &[u8]) -> Option<Replication> {
        None
    }
}

pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_REGISTER_SLAVE: u8 = 0x15;
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;

/// The answer to a replication command.
pub enum Replication {
    Reply(Reply),
    /// The connection becomes a binlog stream: each item is one event (sent as `0x00` +
    /// event bytes), an error ends it with an ERR packet, the end with an EOF packet.
    /// The connection closes after the stream.
    Stream(Box<dyn BinlogFeed>),
}

/// The events of a binlog stream, and a way to stop it from another thread (the stream
/// usually blocks waiting for the next event when the client goes away).
pub trait BinlogFeed: Send {
    fn next_event(&mut self) -> Option<std::result::Result<Vec<u8>, SqlError>>;
    fn canceller(&self) -> Box<dyn FnOnce() + Send>;
}

/// Sends the events of `feed` until it ends or the client goes away. A second thread
/// watches the socket: a replica sends nothing while streaming, so any packet
/// (COM_QUIT) or a closed socket means the client is gone and the feed is cancelled.
fn stream(s: &TcpStream, w: &mut Writer, mut feed: Box<dyn BinlogFeed>) -> Result<()> {
    let mut watch = s.try_clone()?;
    let cancel = feed.canceller();
    let watcher = std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = watch.read(&mut b);
        cancel();
    });
    let _ = w.flush();
    loop {
        match feed.next_event() {
            Some(Ok(ev)) => {
                let mut p = Vec::with_capacity(ev.len() + 1);
                p.push(0);
                p.extend_from_slice(&ev);
                w.packet(&p);
                if w.flush().is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                w.packet(&err_packet(&e));
                let _ = w.flush();
                break;
            }
            None => {
                w.packet(&eof_packet(STATUS_AUTOCOMMIT));
                let _ = w.flush();
                break;
            }
        }
    }
    drop(feed);
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = watcher.join();
    Ok(())
}

/// What the engine says in its handshake and how it checks logins.
pub struct Greeting {
    pub server_version: String,
    pub user: String,
    pub password: String,
}

fn read_chunk(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    let len = head[0] as usize | (head[1] as usize) << 8 | (head[2] as usize) << 16;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)?;
    Ok((head[3], buf))
}

/// Reads one logical packet (reassembling payloads split at 16 MB - 1).
fn read_packet(s: &mut TcpStream, seq: &mut u8) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (id, chunk) = read_chunk(s)?;
        *seq = id.wrapping_add(1);
        let last = chunk.len() < MAX_CHUNK;
        out.extend_from_slice(&chunk);
        if last {
            return Ok(out);
        }
    }
}

struct Writer<'a> {
    s: &'a mut TcpStream,
    seq: u8,
    buf: Vec<u8>,
}

impl Writer<'_> {
    fn packet(&mut self, payload: &[u8]) {
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_CHUNK);
            self.buf
                .extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, self.seq]);
            self.buf.extend_from_slice(&rest[..n]);
            self.seq = self.seq.wrapping_add(1);
            rest = &rest[n..];
            if n < MAX_CHUNK {
                break;
            }
        }
        if self.buf.len() > 1 << 20 {
            let _ = self.flush();
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.s.write_all(&self.buf)?;
        self.buf.clear();
        self.s.flush()
    }
}

fn lenenc_int(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v < 1 << 16 {
        out.push(0xfc);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v < 1 << 24 {
        out.push(0xfd);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn ok_packet(affected: u64, last_insert_id: u64, status: u16, info: &str) -> Vec<u8> {
    let mut p = vec![0u8];
    lenenc_int(&mut p, affected);
    lenenc_int(&mut p, last_insert_id);
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    // Documented as string<EOF>, but servers send (and clients parse) string<lenenc>.
    if !info.is_empty() {
        lenenc_str(&mut p, info.as_bytes());
    }
    p
}

fn err_packet(e: &SqlError) -> Vec<u8> {
    let mut p = vec![0xffu8];
    p.extend_from_slice(&e.code.to_le_bytes());
    p.push(b'#');
    let mut state = e.state.as_bytes().to_vec();
    state.resize(5, b'0');
    p.extend_from_slice(&state);
    p.extend_from_slice(e.message.as_bytes());
    p
}

fn eof_packet(status: u16) -> Vec<u8> {
    let mut p = vec![0xfeu8];
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&status.to_le_bytes());
    p
}

fn col_packet(c: &Col) -> Vec<u8> {
    let mut p = Vec::new();
    lenenc_str(&mut p, b"def");
    lenenc_str(&mut p, c.schema.as_bytes());
    lenenc_str(&mut p, c.table.as_bytes());
    lenenc_str(&mut p, c.org_table.as_bytes());
    lenenc_str(&mut p, c.name.as_bytes());
    lenenc_str(&mut p, c.org_name.as_bytes());
    p.push(0x0c);
    p.extend_from_slice(&c.charset.to_le_bytes());
    p.extend_from_slice(&c.length.to_le_bytes());
    p.push(c.column_type);
    p.extend_from_slice(&c.flags.to_le_bytes());
    p.push(c.decimals);
    p.extend_from_slice(&[0, 0]);
    p
}

fn write_reply(w: &mut Writer, r: &Reply, more: bool) {
    write_reply_as(w, r, more, false)
}

/// `binary`: the rows of a COM_STMT_EXECUTE. Every column is then declared a string
/// (MYSQL_TYPE_VAR_STRING), whose binary encoding is the text protocol's, so the values
/// reach the client exactly as a text query would deliver them.
fn write_reply_as(w: &mut Writer, r: &Reply, more: bool, binary: bool) {
    let status = STATUS_AUTOCOMMIT | if more { STATUS_MORE_RESULTS } else { 0 };
    match r {
        Reply::Ok {
            affected,
            last_insert_id,
            info,
        } => w.packet(&ok_packet(*affected, *last_insert_id, status, info)),
        Reply::Err(e) => w.packet(&err_packet(e)),
        Reply::Rows { cols, rows } => {
            let mut p = Vec::new();
            lenenc_int(&mut p, cols.len() as u64);
            w.packet(&p);
            for c in cols {
                if binary {
                    let mut c = c.clone();
                    c.column_type = 0xfd;
                    w.packet(&col_packet(&c));
                } else {
                    w.packet(&col_packet(c));
                }
            }
            w.packet(&eof_packet(STATUS_AUTOCOMMIT));
            for row in rows {
                let mut p = Vec::new();
                if binary {
                    p.push(0);
                    let mut bitmap = vec![0u8; (row.len() + 7 + 2) / 8];
                    for (i, v) in row.iter().enumerate() {
                        if v.is_none() {
                            bitmap[(i + 2) / 8] |= 1 << ((i + 2) % 8);
                        }
                    }
                    p.extend_from_slice(&bitmap);
                    for b in row.iter().flatten() {
                        lenenc_str(&mut p, b);
                    }
                } else {
                    for v in row {
                        match v {
                            Some(b) => lenenc_str(&mut p, b),
                            None => p.push(0xfb),
                        }
                    }
                }
                w.packet(&p);
            }
            w.packet(&eof_packet(status));
        }
    }
}

/// Printable scramble bytes: the client treats the scramble as a NUL-terminated string.
fn scramble(conn_id: u32) -> [u8; 20] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 20];
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(conn_id);
    let mut x = h.finish();
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = 33 + (x % 90) as u8;
    }
    out
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`, what a client sends for
/// `mysql_native_password`.
fn native_token(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(password.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

fn cstr(buf: &[u8], pos: &mut usize) -> Result<Vec<u8>> {
    let rest = buf.get(*pos..).context("handshake response too short")?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .context("unterminated string in handshake response")?;
    *pos += end + 1;
    Ok(rest[..end].to_vec())
}

fn lenenc_at(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let first = *buf.get(*pos).context("handshake response too short")?;
    *pos += 1;
    let n = match first {
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        x => return Ok(x as u64),
    };
    let bytes = buf
        .get(*pos..*pos + n)
        .context("handshake response too short")?;
    *pos += n;
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    Ok(v)
}

struct Login {
    user: String,
    auth: Vec<u8>,
    db: Option<String>,
}

fn parse_login(p: &[u8]) -> Result<Login> {
    if p.len() < 32 {
        bail!("handshake response of {} bytes", p.len());
    }
    let caps = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    if caps & CLIENT_PROTOCOL_41 == 0 {
        bail!("the client does not speak protocol 4.1");
    }
    let mut pos = 32;
    let user = String::from_utf8_lossy(&cstr(p, &mut pos)?).into_owned();
    let auth = if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        let n = lenenc_at(p, &mut pos)? as usize;
        let a = p.get(pos..pos + n).context("auth data past the end")?;
        pos += n;
        a.to_vec()
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = *p.get(pos).context("auth length missing")? as usize;
        pos += 1;
        let a = p.get(pos..pos + n).context("auth data past the end")?;
        pos += n;
        a.to_vec()
    } else {
        cstr(p, &mut pos)?
    };
    let db = if caps & CLIENT_CONNECT_WITH_DB != 0 && pos < p.len() {
        let d = cstr(p, &mut pos)?;
        (!d.is_empty()).then(|| String::from_utf8_lossy(&d).into_owned())
    } else {
        None
    };
    Ok(Login { user, auth, db })
}

/// Opens the session of a logged-in client, given the database it asked for.
pub type Opener<'a> = &'a dyn Fn(Option<&str>) -> std::result::Result<Box<dyn Session>, SqlError>;

/// Serves one client connection until it quits or the socket closes.
pub fn serve(
    mut s: TcpStream,
    conn_id: u32,
    greeting: &Greeting,
    open: Opener,
    allow_reset: bool,
) -> Result<()> {
    let _ = s.set_nodelay(true);
    let salt = scramble(conn_id);
    let mut hs = vec![10u8];
    hs.extend_from_slice(greeting.server_version.as_bytes());
    hs.push(0);
    hs.extend_from_slice(&conn_id.to_le_bytes());
    hs.extend_from_slice(&salt[..8]);
    hs.push(0);
    hs.extend_from_slice(&(SERVER_CAPS as u16).to_le_bytes());
    hs.push(45);
    hs.extend_from_slice(&STATUS_AUTOCOMMIT.to_le_bytes());
    hs.extend_from_slice(&((SERVER_CAPS >> 16) as u16).to_le_bytes());
    hs.push(21);
    hs.extend_from_slice(&[0u8; 10]);
    hs.extend_from_slice(&salt[8..]);
    hs.push(0);
    hs.extend_from_slice(b"mysql_native_password\0");
    let mut w = Writer {
        s: &mut s.try_clone()?,
        seq: 0,
        buf: Vec::new(),
    };
    w.packet(&hs);
    w.flush()?;
    let mut seq = 0u8;
    let resp = read_packet(&mut s, &mut seq)?;
    w.seq = seq;
    let login = match parse_login(&resp) {
        Ok(l) => l,
        Err(e) => {
            w.packet(&err_packet(&SqlError::new(
                1043,
                "08S01",
                format!("Bad handshake: {e}"),
            )));
            w.flush()?;
            return Ok(());
        }
    };
    let expected = native_token(&greeting.password, &salt);
    if login.user != greeting.user || login.auth != expected {
        w.packet(&err_packet(&SqlError::new(
            1045,
            "28000",
            format!(
                "Access denied for user '{}' (using password: {})",
                login.user,
                if login.auth.is_empty() { "NO" } else { "YES" }
            ),
        )));
        w.flush()?;
        return Ok(());
    }
    let mut session = match open(login.db.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            w.packet(&err_packet(&e));
            w.flush()?;
            return Ok(());
        }
    };
    w.packet(&ok_packet(0, 0, STATUS_AUTOCOMMIT, ""));
    w.flush()?;
    let mut stmts: std::collections::HashMap<u32, Prepared> = Default::default();
    let mut next_stmt = 0u32;
    loop {
        let mut seq = 0u8;
        let p = match read_packet(&mut s, &mut seq) {
            Ok(p) => p,
            Err(_) => return Ok(()),
        };
        w.seq = seq;
        let Some((&cmd, body)) = p.split_first() else {
            continue;
        };
        match cmd {
            COM_QUIT => return Ok(()),
            COM_PING => w.packet(&ok_packet(0, 0, STATUS_AUTOCOMMIT, "")),
            COM_INIT_DB => {
                let r = session.init_db(&String::from_utf8_lossy(body));
                write_reply(&mut w, &r, false);
            }
            COM_QUERY => {
                let sql = String::from_utf8_lossy(body);
                let replies = session.query(&sql);
                let n = replies.len();
                for (i, r) in replies.iter().enumerate() {
                    let is_err = matches!(r, Reply::Err(_));
                    write_reply(&mut w, r, i + 1 < n && !is_err);
                    if is_err {
                        break;
                    }
                }
                if n == 0 {
                    write_reply(&mut w, &Reply::ok(), false);
                }
            }
            COM_STMT_PREPARE => {
                let sql = String::from_utf8_lossy(body).into_owned();
                match placeholders(&sql) {
                    Ok(marks) => {
                        next_stmt += 1;
                        let n = marks.len();
                        let mut p = vec![0u8];
                        p.extend_from_slice(&next_stmt.to_le_bytes());
                        p.extend_from_slice(&0u16.to_le_bytes());
                        p.extend_from_slice(&(n as u16).to_le_bytes());
                        p.push(0);
                        p.extend_from_slice(&0u16.to_le_bytes());
                        w.packet(&p);
                        if n > 0 {
                            for _ in 0..n {
                                w.packet(&col_packet(&Col::text("?")));
                            }
                            w.packet(&eof_packet(STATUS_AUTOCOMMIT));
                        }
                        stmts.insert(
                            next_stmt,
                            Prepared {
                                sql,
                                marks,
                                types: Vec::new(),
                            },
                        );
                    }
                    Err(e) => w.packet(&err_packet(&e)),
                }
            }
            COM_STMT_EXECUTE => {
                let r = match execute_text(body, &mut stmts) {
                    Ok(sql) => {
                        let replies = session.execute(&sql);
                        replies.into_iter().next().unwrap_or_else(Reply::ok)
                    }
                    Err(e) => Reply::Err(e),
                };
                write_reply_as(&mut w, &r, false, true);
            }
            COM_STMT_CLOSE => {
                if let Some(id) = body.get(..4) {
                    stmts.remove(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                }
                // No reply to COM_STMT_CLOSE.
                continue;
            }
            COM_STMT_RESET => w.packet(&ok_packet(0, 0, STATUS_AUTOCOMMIT, "")),
            COM_REGISTER_SLAVE | COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID => {
                match session.replication(cmd, body) {
                    Some(Replication::Reply(r)) => write_reply(&mut w, &r, false),
                    Some(Replication::Stream(feed)) => return stream(&s, &mut w, feed),
                    None => w.packet(&err_packet(&SqlError::new(
                        1047,
                        "08S01",
                        format!("Unknown command: {} ({cmd:#04x})", command_name(cmd)),
                    ))),
                }
            }
            COM_RESET_CONNECTION if allow_reset => {
                let r = session.reset();
                write_reply(&mut w, &r, false);
            }
            other => {
                w.packet(&err_packet(&SqlError::new(
                    1047,
                    "08S01",
                    format!("Unknown command: {} ({other:#04x})", command_name(other)),
                )));
            }
        }
        if w.flush().is_err() {
            return Ok(());
        }
    }
}

/// A prepared statement: its text and where its `?` placeholders are.
struct Prepared {
    sql: String,
    marks: Vec<(usize, usize)>,
    /// Parameter types bound by the last COM_STMT_EXECUTE (type, unsigned).
    types: Vec<(u8, bool)>,
}

fn placeholders(sql: &str) -> std::result::Result<Vec<(usize, usize)>, SqlError> {
    Ok(super::sql::lex(sql)?
        .into_iter()
        .filter(|t| t.tok == super::sql::Tok::Sym("?".into()))
        .map(|t| (t.start, t.end))
        .collect())
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> std::result::Result<&'a [u8], SqlError> {
    let s = b.get(*pos..*pos + n).ok_or_else(|| {
        SqlError::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
    })?;
    *pos += n;
    Ok(s)
}

fn int_le(b: &[u8]) -> u64 {
    b.iter()
        .enumerate()
        .fold(0u64, |v, (i, x)| v | (*x as u64) << (8 * i))
}

/// One bound parameter as a SQL literal.
fn param_literal(
    b: &[u8],
    pos: &mut usize,
    ty: u8,
    unsigned: bool,
) -> std::result::Result<String, SqlError> {
    let signed = |v: u64, bits: u32| -> i64 {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    };
    Ok(match ty {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 | 0x0d => {
            let n = match ty {
                0x01 => 1,
                0x02 | 0x0d => 2,
                0x03 | 0x09 => 4,
                _ => 8,
            };
            let v = int_le(take(b, pos, n)?);
            if unsigned {
                v.to_string()
            } else {
                signed(v, 8 * n as u32).to_string()
            }
        }
        0x04 => {
            let v = f32::from_bits(int_le(take(b, pos, 4)?) as u32);
            format!("{:e}", v as f64)
        }
        0x05 => format!("{:e}", f64::from_bits(int_le(take(b, pos, 8)?))),
        0x06 => "NULL".into(),
        0x07 | 0x0a | 0x0c => {
            let len = take(b, pos, 1)?[0] as usize;
            let d = take(b, pos, len)?;
            let g = |i: usize| d.get(i).copied().unwrap_or(0) as u64;
            let (y, mo, da) = (g(0) | g(1) << 8, g(2), g(3));
            let (h, mi, se) = (g(4), g(5), g(6));
            let us = if len >= 11 { int_le(&d[7..11]) } else { 0 };
            format!("'{y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{se:02}.{us:06}'")
        }
        0x0b => {
            let len = take(b, pos, 1)?[0] as usize;
            let d = take(b, pos, len)?;
            if len == 0 {
                "'00:00:00'".into()
            } else {
                let g = |i: usize| d.get(i).copied().unwrap_or(0) as u64;
                let neg = g(0) == 1;
                let days = int_le(d.get(1..5).unwrap_or(&[]));
                let hours = days * 24 + g(5);
                let us = if len >= 12 { int_le(&d[8..12]) } else { 0 };
                format!(
                    "'{}{hours:02}:{:02}:{:02}.{us:06}'",
                    if neg { "-" } else { "" },
                    g(6),
                    g(7)
                )
            }
        }
        _ => {
            // Strings, decimals, blobs, JSON: length-encoded bytes.
            let first = take(b, pos, 1)?[0];
            let n = match first {
                0xfc => int_le(take(b, pos, 2)?),
                0xfd => int_le(take(b, pos, 3)?),
                0xfe => int_le(take(b, pos, 8)?),
                x => x as u64,
            } as usize;
            let raw = take(b, pos, n)?;
            match std::str::from_utf8(raw) {
                Ok(text) => super::sql::lit(text),
                Err(_) => {
                    let hex: String = raw.iter().map(|x| format!("{x:02X}")).collect();
                    format!("X'{hex}'")
                }
            }
        }
    })
}

/// The text of a COM_STMT_EXECUTE with its parameters written in as literals.
fn execute_text(
    body: &[u8],
    stmts: &mut std::collections::HashMap<u32, Prepared>,
) -> std::result::Result<String, SqlError> {
    let mut pos = 0;
    let id = int_le(take(body, &mut pos, 4)?) as u32;
    let st = stmts.get_mut(&id).ok_or_else(|| {
        SqlError::new(
            1243,
            "HY000",
            format!("Unknown prepared statement handler ({id})"),
        )
    })?;
    take(body, &mut pos, 5)?; // flags, iteration count
    let n = st.marks.len();
    if n == 0 {
        return Ok(st.sql.clone());
    }
    let nulls = take(body, &mut pos, n.div_ceil(8))?.to_vec();
    if take(body, &mut pos, 1)?[0] == 1 {
        st.types = (0..n)
            .map(|_| take(body, &mut pos, 2).map(|t| (t[0], t[1] & 0x80 != 0)))
            .collect::<std::result::Result<_, _>>()?;
    }
    if st.types.len() != n {
        return Err(SqlError::new(
            1210,
            "HY000",
            "parameter types were never sent",
        ));
    }
    let mut out = String::with_capacity(st.sql.len());
    let mut from = 0;
    for (i, &(start, end)) in st.marks.iter().enumerate() {
        out.push_str(&st.sql[from..start]);
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            out.push_str("NULL");
        } else {
            let (ty, unsigned) = st.types[i];
            out.push_str(&param_literal(body, &mut pos, ty, unsigned)?);
        }
        from = end;
    }
    out.push_str(&st.sql[from..]);
    Ok(out)
}

fn command_name(c: u8) -> &'static str {
    match c {
        0x11 => "COM_CHANGE_USER",
        0x1f => "COM_RESET_CONNECTION",
        0x1b => "COM_SET_OPTION",
        0x0d => "COM_DEBUG",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x19 => "COM_STMT_CLOSE",
        0x04 => "COM_FIELD_LIST",
        0x09 => "COM_STATISTICS",
        0x12 => "COM_BINLOG_DUMP",
        0x15 => "COM_REGISTER_SLAVE",
        0x1e => "COM_BINLOG_DUMP_GTID",
        _ => "command",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_token_matches_known_vector() {
        // An empty password sends an empty token; a non-empty one is 20 bytes.
        assert!(native_token("", b"x").is_empty());
        assert_eq!(native_token("secret", &[7u8; 20]).len(), 20);
    }
}
