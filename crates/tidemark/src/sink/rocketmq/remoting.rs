//! RocketMQ's remoting protocol over TCP: frames, commands, request signing, and a
//! connection that carries many requests at once.
//!
//! A frame is `u32 length | u32 (serialization << 24 | header length) | header | body`,
//! big-endian; the header is JSON (`code`, `opaque`, `flag`, `remark`, `extFields`).
//! Responses carry the request's `opaque`, so a connection can have many requests in
//! flight: a reader thread hands each response to whoever waits for it.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use crossbeam_channel::{bounded, Receiver, Sender};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Request codes used here.
pub mod code {
    pub const PULL_MESSAGE: i32 = 11;
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    pub const GET_MAX_OFFSET: i32 = 30;
    pub const HEART_BEAT: i32 = 34;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const SEND_MESSAGE_V2: i32 = 310;
    pub const SEND_BATCH_MESSAGE: i32 = 320;
}

/// Response codes with a meaning of their own.
pub mod status {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const MESSAGE_ILLEGAL: i32 = 13;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;
    pub const NO_PERMISSION: i32 = 16;
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
}

const RESPONSE_FLAG: i32 = 1;
/// Frames larger than this are refused rather than allocated.
const MAX_FRAME: usize = 64 << 20;

/// One request or response.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    pub code: i32,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub version: i32,
    #[serde(default)]
    pub opaque: i32,
    #[serde(default)]
    pub flag: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ext_fields: BTreeMap<String, String>,
    /// Required by the server on every request.
    #[serde(default = "json_rpc", rename = "serializeTypeCurrentRPC")]
    pub serialize_type: String,
    #[serde(skip)]
    pub body: Vec<u8>,
}

fn json_rpc() -> String {
    "JSON".into()
}

/// Servers write `"extFields": null` when there are none; other values may be numbers.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let m: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl Command {
    pub fn request(code: i32, fields: &[(&str, String)]) -> Command {
        Command {
            code,
            language: "RUST".into(),
            version: 453, // V4_9_4: the header forms every 4.x and 5.x broker accepts
            serialize_type: json_rpc(),
            ext_fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Command::default()
        }
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.ext_fields.get(name).map(String::as_str)
    }

    /// The response's remark, or its code when it has none.
    pub fn describe(&self) -> String {
        match self.remark.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("{r} (code {})", self.code),
            None => format!("code {}", self.code),
        }
    }
}

/// ACL credentials: requests are signed with HMAC-SHA1 of their fields and body.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.access_key)
    }
}

impl Credentials {
    /// Adds `AccessKey` and `Signature`: base64(HMAC-SHA1(secret, values of every field
    /// in key order, then the body)), as RocketMQ's ACL expects.
    fn sign(&self, cmd: &mut Command) -> Result<()> {
        cmd.ext_fields
            .insert("AccessKey".into(), self.access_key.clone());
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(self.secret_key.as_bytes())
            .map_err(|_| anyhow!("the RocketMQ secret key cannot be used for signing"))?;
        for v in cmd.ext_fields.values() {
            mac.update(v.as_bytes());
        }
        mac.update(&cmd.body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        cmd.ext_fields.insert("Signature".into(), sig);
        Ok(())
    }
}

fn encode(cmd: &Command) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(cmd)?;
    let total = 4 + header.len() + cmd.body.len();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes()); // serialization 0: JSON
    out.extend_from_slice(&header);
    out.extend_from_slice(&cmd.body);
    Ok(out)
}

fn read_frame(r: &mut impl Read) -> Result<Command> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let total = u32::from_be_bytes(len) as usize;
    if !(4..=MAX_FRAME).contains(&total) {
        bail!("a frame of {total} bytes: not a RocketMQ server, or a damaged stream");
    }
    let mut frame = vec![0u8; total];
    r.read_exact(&mut frame)?;
    let word = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let (kind, hlen) = (word >> 24, (word & 0x00ff_ffff) as usize);
    if 4 + hlen > total {
        bail!("a frame whose header is longer than the frame");
    }
    let header = &frame[4..4 + hlen];
    let mut cmd = match kind {
        0 => serde_json::from_slice::<Command>(header)
            .or_else(|_| serde_json::from_slice::<Command>(&relaxed_json(header)))
            .context("a response header that is not valid JSON")?,
        1 => decode_binary_header(header)?,
        k => bail!("a response with unknown serialization {k}"),
    };
    cmd.body = frame[4 + hlen..].to_vec();
    Ok(cmd)
}

/// Java servers (fastjson) may write map keys as bare integers: `{0:"a"}`. Quote them.
pub fn relaxed_json(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut in_str = false;
    let mut escaped = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            out.push(c);
            i += 1;
            continue;
        }
        if (c == b'{' || c == b',') && i + 1 < text.len() {
            out.push(c);
            let mut j = i + 1;
            while j < text.len() && text[j].is_ascii_whitespace() {
                j += 1;
            }
            let start = j;
            while j < text.len() && (text[j].is_ascii_digit() || text[j] == b'-') {
                j += 1;
            }
            let mut k = j;
            while k < text.len() && text[k].is_ascii_whitespace() {
                k += 1;
            }
            if j > start && k < text.len() && text[k] == b':' {
                out.push(b'"');
                out.extend_from_slice(&text[start..j]);
                out.push(b'"');
                i = j;
                continue;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// RocketMQ's own binary header form (serialization 1).
fn decode_binary_header(h: &[u8]) -> Result<Command> {
    let mut p = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = h
            .get(p..p + n)
            .ok_or_else(|| anyhow!("a truncated binary response header"))?;
        p += n;
        Ok(s)
    };
    let code = i16::from_be_bytes(take(2)?.try_into()?) as i32;
    let _language = take(1)?;
    let version = i16::from_be_bytes(take(2)?.try_into()?) as i32;
    let opaque = i32::from_be_bytes(take(4)?.try_into()?);
    let flag = i32::from_be_bytes(take(4)?.try_into()?);
    let rlen = i32::from_be_bytes(take(4)?.try_into()?).max(0) as usize;
    let remark = (rlen > 0).then(|| take(rlen).map(|b| String::from_utf8_lossy(b).into_owned()));
    let remark = remark.transpose()?;
    let elen = i32::from_be_bytes(take(4)?.try_into()?).max(0) as usize;
    let ext = take(elen)?.to_vec();
    let mut ext_fields = BTreeMap::new();
    let mut q = 0usize;
    while q + 2 <= ext.len() {
        let kl = u16::from_be_bytes([ext[q], ext[q + 1]]) as usize;
        q += 2;
        let k = ext
            .get(q..q + kl)
            .ok_or_else(|| anyhow!("a truncated header field"))?;
        q += kl;
        let vl_bytes = ext
            .get(q..q + 4)
            .ok_or_else(|| anyhow!("a truncated header field"))?;
        let vl = u32::from_be_bytes(vl_bytes.try_into()?) as usize;
        q += 4;
        let v = ext
            .get(q..q + vl)
            .ok_or_else(|| anyhow!("a truncated header field"))?;
        q += vl;
        ext_fields.insert(
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        );
    }
    Ok(Command {
        code,
        language: String::new(),
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        serialize_type: "ROCKETMQ".into(),
        body: Vec::new(),
    })
}

type Waiters = Arc<Mutex<HashMap<i32, Sender<Result<Command>>>>>;

/// One TCP connection to a name server or broker.
pub struct Connection {
    pub addr: String,
    writer: Mutex<BufWriter<TcpStream>>,
    waiters: Waiters,
    next: AtomicI32,
    closed: Arc<AtomicBool>,
    credentials: Option<Credentials>,
}

impl Connection {
    pub fn open(
        addr: &str,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Result<Connection> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        // A send into a path that takes nothing fails instead of blocking every queue;
        // answers are awaited with the same timeout (`wait`), and keepalive finds a
        // vanished host on an idle connection.
        stream.set_write_timeout(Some(timeout))?;
        socket2::SockRef::from(&stream).set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(30))
                .with_interval(Duration::from_secs(10)),
        )?;
        let reader = stream.try_clone()?;
        let waiters: Waiters = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        {
            let (waiters, closed) = (waiters.clone(), closed.clone());
            let addr = addr.to_string();
            std::thread::Builder::new()
                .name("rocketmq-reader".into())
                .spawn(move || read_loop(reader, &addr, &waiters, &closed))?;
        }
        Ok(Connection {
            addr: addr.to_string(),
            writer: Mutex::new(BufWriter::with_capacity(256 << 10, stream)),
            waiters,
            next: AtomicI32::new(1),
            closed,
            credentials,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Sends a request; the answer arrives on the returned channel.
    pub fn send(&self, mut cmd: Command) -> Result<Receiver<Result<Command>>> {
        if self.is_closed() {
            bail!("the connection to {} is closed", self.addr);
        }
        cmd.opaque = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.credentials {
            c.sign(&mut cmd)?;
        }
        let frame = encode(&cmd)?;
        let (tx, rx) = bounded(1);
        lock(&self.waiters).insert(cmd.opaque, tx);
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let written = w.write_all(&frame).and_then(|_| w.flush());
        if let Err(e) = written {
            lock(&self.waiters).remove(&cmd.opaque);
            self.closed.store(true, Ordering::Relaxed);
            let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
            return Err(anyhow!(e).context(format!("sending to {}", self.addr)));
        }
        Ok(rx)
    }

    /// Sends a request and waits for its answer.
    pub fn call(&self, cmd: Command, timeout: Duration) -> Result<Command> {
        let rx = self.send(cmd)?;
        wait(&rx, timeout, &self.addr)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Waits for an answer from `send`.
pub fn wait(rx: &Receiver<Result<Command>>, timeout: Duration, addr: &str) -> Result<Command> {
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            bail!("{addr} did not answer within {} s", timeout.as_secs())
        }
        Err(_) => bail!("the connection to {addr} was lost"),
    }
}

/// A lock that outlives a panic elsewhere (the maps it guards stay consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_loop(stream: TcpStream, addr: &str, waiters: &Waiters, closed: &AtomicBool) {
    let mut r = BufReader::with_capacity(256 << 10, stream);
    let why = loop {
        match read_frame(&mut r) {
            Ok(cmd) if cmd.flag & RESPONSE_FLAG != 0 => {
                if let Some(tx) = lock(waiters).remove(&cmd.opaque) {
                    let _ = tx.send(Ok(cmd));
                }
            }
            // Requests from the server (e.g. "check transaction state") are not ours.
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    closed.store(true, Ordering::Relaxed);
    for (_, tx) in lock(waiters).drain() {
        let _ = tx.send(Err(anyhow!("the connection to {addr} was lost ({why})")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_integer_keys_are_quoted() {
        let fixed = relaxed_json(br#"{"brokerAddrs":{0:"127.0.0.1:10911", 1 :"x"},"s":"{0:1}"}"#);
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["brokerAddrs"]["0"], "127.0.0.1:10911");
        assert_eq!(v["s"], "{0:1}");
    }

    #[test]
    fn frames_round_trip() {
        let mut c = Command::request(code::SEND_MESSAGE_V2, &[("b", "topic".into())]);
        c.body = b"hello".to_vec();
        c.flag = RESPONSE_FLAG;
        let bytes = encode(&c).unwrap();
        let back = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(back.code, 310);
        assert_eq!(back.field("b"), Some("topic"));
        assert_eq!(back.body, b"hello");
    }

    #[test]
    fn signature_matches_the_java_client() {
        // HMAC-SHA1("secret", "AKvalue" + body) in the order of the sorted keys.
        let creds = Credentials {
            access_key: "AK".into(),
            secret_key: "secret".into(),
        };
        let mut c = Command::request(code::SEND_MESSAGE_V2, &[("b", "value".into())]);
        creds.sign(&mut c).unwrap();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"secret").unwrap();
        mac.update(b"AKvalue");
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(c.field("Signature"), Some(want.as_str()));
    }
}
