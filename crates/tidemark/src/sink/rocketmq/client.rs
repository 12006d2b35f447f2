//! A RocketMQ client over [`remoting`](super::remoting): topic routes from the name
//! servers, a producer that sends ordered batches per queue and waits for every
//! acknowledgement, a pull consumer (tests, `tidemark topic tail`), and topic creation.

use super::remoting::{code, lock, status, Command, Connection, Credentials};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, Select};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connect, send and acknowledgement timeout unless set otherwise
/// ([`Client::set_timeout`]: the task's `network_timeout_seconds`).
const TIMEOUT: Duration = Duration::from_secs(10);
/// A batch request carries at most this many body bytes (the broker's default message
/// limit is 4 MiB for a whole batch).
const BATCH_BYTES: usize = 1 << 20;
const BATCH_MESSAGES: usize = 512;

/// One message to send.
#[derive(Clone, Debug, Default)]
pub struct Message {
    pub body: Vec<u8>,
    /// `KEYS`: looked up with "query by key" in the console and tools.
    pub keys: String,
    pub tags: String,
    /// User properties (e.g. the source position).
    pub properties: Vec<(&'static str, String)>,
}

impl Message {
    fn properties_text(&self) -> String {
        let mut s = String::new();
        let mut put = |k: &str, v: &str| {
            s.push_str(k);
            s.push('\u{1}');
            s.push_str(v);
            s.push('\u{2}');
        };
        if !self.keys.is_empty() {
            put("KEYS", &self.keys);
        }
        if !self.tags.is_empty() {
            put("TAGS", &self.tags);
        }
        put("WAIT", "true");
        for (k, v) in &self.properties {
            put(k, v);
        }
        s
    }

    /// The message as an entry of a batch body.
    fn encode_into(&self, out: &mut Vec<u8>) {
        let props = self.properties_text();
        let size = 4 + 4 + 4 + 4 + 4 + self.body.len() + 2 + props.len();
        out.extend_from_slice(&(size as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // magic code
        out.extend_from_slice(&(crc32fast::hash(&self.body) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // flag
        out.extend_from_slice(&(self.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&(props.len() as u16).to_be_bytes());
        out.extend_from_slice(props.as_bytes());
    }
}

/// A topic's writable queues, in a fixed order (broker name, then queue id).
#[derive(Clone, Debug)]
pub struct Route {
    pub queues: Vec<QueueRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueRef {
    pub broker: String,
    pub addr: String,
    pub queue_id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteData {
    #[serde(default)]
    queue_datas: Vec<QueueData>,
    #[serde(default)]
    broker_datas: Vec<BrokerData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueData {
    broker_name: String,
    write_queue_nums: u32,
    #[serde(default)]
    read_queue_nums: u32,
    perm: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrokerData {
    broker_name: String,
    broker_addrs: HashMap<String, String>,
}

const PERM_WRITE: u32 = 2;
const PERM_READ: u32 = 4;

/// Connections and routes shared by producers, consumers and admin calls.
pub struct Client {
    name_servers: Vec<String>,
    credentials: Option<Credentials>,
    brokers: Mutex<HashMap<String, Arc<Connection>>>,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    /// Read queues per topic (consumers).
    read_routes: Mutex<HashMap<String, Arc<Route>>>,
    timeout: Duration,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Client {
    pub fn new(name_servers: Vec<String>, credentials: Option<Credentials>) -> Client {
        Client {
            name_servers,
            credentials,
            brokers: Mutex::default(),
            routes: Mutex::default(),
            read_routes: Mutex::default(),
            timeout: TIMEOUT,
        }
    }

    /// How long connecting, sending and each acknowledgement may take before the
    /// connection counts as lost.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Asks the name servers (in turn) for a topic's route.
    fn fetch_route(&self, topic: &str) -> Result<RouteData> {
        let mut last = None;
        for ns in &self.name_servers {
            let conn = match Connection::open(ns, self.credentials.clone(), self.timeout) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(anyhow!("name server {ns}: {e:#}"));
                    continue;
                }
            };
            let req = Command::request(code::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.into())]);
            let resp = match conn.call(req, self.timeout) {
                Ok(r) => r,
                Err(e) => {
                    last = Some(anyhow!("name server {ns}: {e:#}"));
                    continue;
                }
            };
            match resp.code {
                status::SUCCESS => {
                    let fixed = super::remoting::relaxed_json(&resp.body);
                    return serde_json::from_slice(&fixed)
                        .with_context(|| format!("name server {ns}: an unreadable route for topic {topic}"));
                }
                status::TOPIC_NOT_EXIST => bail!(
                    "topic {topic:?} does not exist on the RocketMQ cluster (name server {ns}): create it (e.g. `mqadmin updateTopic -t {topic} -c <cluster>`, as an ordered topic), or fix `destination.topic`, `destination.ddl_topic` or `[[destination.topics]]`"
                ),
                _ => {
                    last = Some(anyhow!(
                        "name server {ns} refused the route lookup of {topic:?}: {}",
                        resp.describe()
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no name server is configured")))
    }

    fn build_route(&self, topic: &str, perm: u32) -> Result<Route> {
        let data = self.fetch_route(topic)?;
        let mut queues = Vec::new();
        for q in &data.queue_datas {
            if q.perm & perm == 0 {
                continue;
            }
            let Some(b) = data
                .broker_datas
                .iter()
                .find(|b| b.broker_name == q.broker_name)
            else {
                continue;
            };
            // The master is broker id 0.
            let Some(addr) = b.broker_addrs.get("0") else {
                continue;
            };
            let n = if perm == PERM_WRITE {
                q.write_queue_nums
            } else {
                q.read_queue_nums
            };
            for id in 0..n {
                queues.push(QueueRef {
                    broker: q.broker_name.clone(),
                    addr: addr.clone(),
                    queue_id: id,
                });
            }
        }
        queues.sort();
        if queues.is_empty() {
            bail!(
                "topic {topic:?} has no {} queue on a reachable master broker: check the topic's permissions and that its broker is running",
                if perm == PERM_WRITE { "writable" } else { "readable" }
            );
        }
        Ok(Route { queues })
    }

    /// The writable queues of a topic (cached; `refresh` asks the name servers again).
    pub fn route(&self, topic: &str, refresh: bool) -> Result<Arc<Route>> {
        self.cached_route(&self.routes, topic, PERM_WRITE, refresh)
    }

    /// The readable queues of a topic (cached).
    pub fn read_route(&self, topic: &str) -> Result<Arc<Route>> {
        self.cached_route(&self.read_routes, topic, PERM_READ, false)
    }

    fn cached_route(
        &self,
        cache: &Mutex<HashMap<String, Arc<Route>>>,
        topic: &str,
        perm: u32,
        refresh: bool,
    ) -> Result<Arc<Route>> {
        if !refresh {
            if let Some(r) = lock(cache).get(topic) {
                return Ok(r.clone());
            }
        }
        let r = Arc::new(self.build_route(topic, perm)?);
        lock(cache).insert(topic.to_string(), r.clone());
        Ok(r)
    }

    /// A (shared) connection to a broker, opened again after a failure.
    pub fn broker(&self, addr: &str) -> Result<Arc<Connection>> {
        let mut b = lock(&self.brokers);
        if let Some(c) = b.get(addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(
            Connection::open(addr, self.credentials.clone(), self.timeout)
                .with_context(|| format!("broker {addr}"))?,
        );
        b.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Forgets routes and broker connections (after a broker went away).
    pub fn reset(&self) {
        lock(&self.routes).clear();
        lock(&self.read_routes).clear();
        for (_, c) in lock(&self.brokers).drain() {
            c.close();
        }
    }

    /// Registers the producer group with every broker of `topic`. The broker checks the
    /// credentials here, so a wrong key fails before any message is sent.
    pub fn hello(&self, topic: &str, group: &str) -> Result<()> {
        let route = self.route(topic, false)?;
        let mut addrs: Vec<&str> = route.queues.iter().map(|q| q.addr.as_str()).collect();
        addrs.dedup();
        let body = serde_json::json!({
            "clientID": client_id(),
            "producerDataSet": [{"groupName": group}],
            "consumerDataSet": [],
        });
        for addr in addrs {
            let conn = self.broker(addr)?;
            let mut req = Command::request(code::HEART_BEAT, &[]);
            req.body = serde_json::to_vec(&body)?;
            let resp = conn.call(req, self.timeout)?;
            if resp.code != status::SUCCESS {
                bail!("broker {addr} refused the producer: {}", explain(&resp));
            }
        }
        Ok(())
    }

    /// Creates (or updates) a topic on one broker, which registers it with the name
    /// servers (tests and benchmarks; production topics are created by operators).
    pub fn create_topic(&self, broker_addr: &str, topic: &str, queues: u32) -> Result<()> {
        let conn = self.broker(broker_addr)?;
        let req = Command::request(
            code::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", topic.into()),
                ("defaultTopic", "TBW102".into()),
                ("readQueueNums", queues.to_string()),
                ("writeQueueNums", queues.to_string()),
                ("perm", "6".into()),
                ("topicFilterType", "SINGLE_TAG".into()),
                ("topicSysFlag", "0".into()),
                ("order", "false".into()),
            ],
        );
        let resp = conn.call(req, self.timeout)?;
        if resp.code != status::SUCCESS {
            bail!(
                "broker {broker_addr} refused to create topic {topic}: {}",
                explain(&resp)
            );
        }
        Ok(())
    }

    /// The next offset to be written in a queue.
    pub fn max_offset(&self, topic: &str, q: &QueueRef) -> Result<u64> {
        let conn = self.broker(&q.addr)?;
        let req = Command::request(
            code::GET_MAX_OFFSET,
            &[("topic", topic.into()), ("queueId", q.queue_id.to_string())],
        );
        let resp = conn.call(req, self.timeout)?;
        if resp.code != status::SUCCESS {
            bail!(
                "broker {} refused GET_MAX_OFFSET: {}",
                q.addr,
                explain(&resp)
            );
        }
        resp.field("offset")
            .and_then(|o| o.parse().ok())
            .ok_or_else(|| {
                anyhow!(
                    "broker {} answered GET_MAX_OFFSET without an offset",
                    q.addr
                )
            })
    }

    /// Reads up to `max` messages of a queue from `offset`; returns them and the next
    /// offset.
    pub fn pull(
        &self,
        topic: &str,
        group: &str,
        q: &QueueRef,
        offset: u64,
        max: u32,
    ) -> Result<(Vec<Pulled>, u64)> {
        let conn = self.broker(&q.addr)?;
        let req = Command::request(
            code::PULL_MESSAGE,
            &[
                ("consumerGroup", group.into()),
                ("topic", topic.into()),
                ("queueId", q.queue_id.to_string()),
                ("queueOffset", offset.to_string()),
                ("maxMsgNums", max.to_string()),
                ("sysFlag", "4".into()), // subscription given in the request
                ("commitOffset", "0".into()),
                ("suspendTimeoutMillis", "0".into()),
                ("subscription", "*".into()),
                ("subVersion", "0".into()),
                ("expressionType", "TAG".into()),
            ],
        );
        let resp = conn.call(req, self.timeout)?;
        let next = resp
            .field("nextBeginOffset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(offset);
        match resp.code {
            status::SUCCESS => Ok((decode_stored(&resp.body)?, next)),
            status::PULL_NOT_FOUND | status::PULL_RETRY_IMMEDIATELY => Ok((Vec::new(), offset)),
            status::PULL_OFFSET_MOVED => Ok((Vec::new(), next)),
            _ => bail!(
                "broker {} refused a pull from {topic}: {}",
                q.addr,
                explain(&resp)
            ),
        }
    }
}

fn client_id() -> String {
    format!("tidemark@{}", std::process::id())
}

fn send_header(
    topic: &str,
    group: &str,
    q: &QueueRef,
    props: &str,
    batch: bool,
) -> Vec<(&'static str, String)> {
    vec![
        ("a", group.to_string()),
        ("b", topic.to_string()),
        ("c", "TBW102".into()),
        ("d", "4".into()),
        ("e", q.queue_id.to_string()),
        ("f", "0".into()),
        ("g", now_ms().to_string()),
        ("h", "0".into()),
        ("i", props.to_string()),
        ("j", "0".into()),
        ("k", "false".into()),
        ("m", batch.to_string()),
        ("n", q.broker.clone()),
    ]
}

/// A broker's refusal in operator terms.
pub fn explain(resp: &Command) -> String {
    let hint = match resp.code {
        status::NO_PERMISSION => {
            ": check `access_key`/`secret_key` and the account's permissions on the topic"
        }
        status::MESSAGE_ILLEGAL => {
            ": the message is larger than the broker accepts (maxMessageSize) or malformed"
        }
        status::TOPIC_NOT_EXIST => ": create the topic first",
        _ => "",
    };
    let remark = resp.describe();
    let lower = remark.to_ascii_lowercase();
    let auth = if hint.is_empty()
        && (lower.contains("signature") || lower.contains("accesskey") || lower.contains("auth"))
    {
        ": check `access_key` and `secret_key`"
    } else {
        ""
    };
    format!("{remark}{hint}{auth}")
}

/// Whether a refusal may pass (the broker was busy, flushing, restarting).
fn retryable(resp: &Command) -> bool {
    matches!(
        resp.code,
        status::SYSTEM_ERROR
            | status::SYSTEM_BUSY
            | status::FLUSH_DISK_TIMEOUT
            | status::SLAVE_NOT_AVAILABLE
            | 14
            | 215
    )
}

/// A message read back from a queue.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub queue_id: u32,
    pub queue_offset: u64,
    pub store_ms: u64,
    pub topic: String,
    pub body: Vec<u8>,
    pub properties: BTreeMap<String, String>,
}

/// Decodes the stored-message layout of a pull response body.
pub fn decode_stored(mut b: &[u8]) -> Result<Vec<Pulled>> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let size = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if size < 4 || size > b.len() {
            bail!(
                "a stored message of {size} bytes in a pull response of {}",
                b.len()
            );
        }
        out.push(decode_one(&b[..size])?);
        b = &b[size..];
    }
    Ok(out)
}

fn decode_one(m: &[u8]) -> Result<Pulled> {
    let mut p = 4usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = m
            .get(p..p + n)
            .ok_or_else(|| anyhow!("a truncated stored message"))?;
        p += n;
        Ok(s)
    };
    let int = |s: &[u8]| i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let long = |s: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&s[..8]);
        i64::from_be_bytes(a)
    };
    let magic = int(take(4)?) as u32;
    let _body_crc = take(4)?;
    let queue_id = int(take(4)?) as u32;
    let _flag = take(4)?;
    let queue_offset = long(take(8)?) as u64;
    let _physical = take(8)?;
    let sys_flag = int(take(4)?);
    let _born = take(8)?;
    take(if sys_flag & (1 << 4) != 0 { 20 } else { 8 })?;
    let store_ms = long(take(8)?) as u64;
    take(if sys_flag & (1 << 5) != 0 { 20 } else { 8 })?;
    let _reconsume = take(4)?;
    let _prepared = take(8)?;
    let body_len = int(take(4)?).max(0) as usize;
    let mut body = take(body_len)?.to_vec();
    if sys_flag & 1 != 0 {
        let mut d = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&body[..]), &mut d)
            .context("a compressed message body")?;
        body = d;
    }
    let topic_len = if magic == 0xdaa3_20a8 {
        let s = take(2)?;
        u16::from_be_bytes([s[0], s[1]]) as usize
    } else {
        take(1)?[0] as usize
    };
    let topic = String::from_utf8_lossy(take(topic_len)?).into_owned();
    let plen_bytes = take(2)?;
    let plen = u16::from_be_bytes([plen_bytes[0], plen_bytes[1]]) as usize;
    let props = String::from_utf8_lossy(take(plen)?).into_owned();
    let properties = props
        .split('\u{2}')
        .filter_map(|kv| kv.split_once('\u{1}'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Pulled {
        queue_id,
        queue_offset,
        store_ms,
        topic,
        body,
        properties,
    })
}

/// Messages waiting to be sent, in order per (topic, queue).
#[derive(Default)]
pub struct Outbox {
    pub queues: BTreeMap<(String, QueueRef), VecDeque<Message>>,
    pub messages: usize,
    pub bytes: usize,
}

impl Outbox {
    pub fn push(&mut self, topic: &str, q: &QueueRef, m: Message) {
        self.messages += 1;
        self.bytes += m.body.len();
        self.queues
            .entry((topic.to_string(), q.clone()))
            .or_default()
            .push_back(m);
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// Sends an outbox: per queue one batch in flight at a time (so a queue keeps the
/// outbox's order even across retries), all queues in parallel; returns once the broker
/// has acknowledged every message. A lost broker or a busy answer is retried, with the
/// route looked up again, until `retry_window` has passed since the first failure.
/// `pace(messages, bytes)` is called before each new batch (a rate limit waits there).
pub fn send_all(
    client: &Client,
    group: &str,
    outbox: &mut Outbox,
    retry_window: Duration,
    pace: &dyn Fn(u64, u64),
) -> Result<()> {
    struct InFlight {
        key: (String, QueueRef),
        batch: Vec<Message>,
        rx: Receiver<Result<Command>>,
        addr: String,
    }
    let mut first_failure: Option<Instant> = None;
    // Between attempts: from 0.5 s, growing to 5 s while the broker stays away.
    let backoff = |since: Instant| {
        let waited = since.elapsed().as_secs_f64();
        Duration::from_secs_f64((0.5 + waited / 2.0).min(5.0))
    };
    let mut inflight: Vec<InFlight> = Vec::new();
    let mut ready: VecDeque<(String, QueueRef)> = outbox.queues.keys().cloned().collect();
    let take_batch = |outbox: &mut Outbox, key: &(String, QueueRef)| -> Vec<Message> {
        let Some(q) = outbox.queues.get_mut(key) else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(m) = q.front() {
            if !batch.is_empty()
                && (bytes + m.body.len() > BATCH_BYTES || batch.len() >= BATCH_MESSAGES)
            {
                break;
            }
            bytes += m.body.len();
            if let Some(m) = q.pop_front() {
                batch.push(m);
            }
        }
        batch
    };
    let mut retry: Vec<((String, QueueRef), Vec<Message>)> = Vec::new();
    let mut retrying = None;
    loop {
        // For `status`: from the first failure until a batch is acknowledged again.
        match (first_failure.is_some(), retrying.is_some()) {
            (true, false) => {
                retrying = Some(crate::retrying::begin("resending messages to RocketMQ"))
            }
            (false, true) => retrying = None,
            _ => {}
        }
        // Start what can start: retried batches first, then each idle queue's next batch.
        let mut starts: Vec<((String, QueueRef), Vec<Message>)> = std::mem::take(&mut retry);
        while let Some(key) = ready.pop_front() {
            let batch = take_batch(outbox, &key);
            if !batch.is_empty() {
                pace(
                    batch.len() as u64,
                    batch.iter().map(|m| m.body.len() as u64).sum(),
                );
                starts.push((key, batch));
            }
        }
        let mut start_failed: Option<anyhow::Error> = None;
        for (key, batch) in starts {
            match start_batch(client, group, &key, &batch) {
                Ok((rx, addr)) => inflight.push(InFlight {
                    key,
                    batch,
                    rx,
                    addr,
                }),
                Err(e) => {
                    let since = *first_failure.get_or_insert_with(Instant::now);
                    if since.elapsed() > retry_window {
                        return Err(e.context(format!(
                            "RocketMQ kept failing for {} s (`retry_connection_minutes`)",
                            since.elapsed().as_secs()
                        )));
                    }
                    start_failed.get_or_insert(e);
                    retry.push((key, batch));
                }
            }
        }
        // One pause per round, however many queues could not start.
        if let (Some(e), Some(since)) = (start_failed.take(), first_failure) {
            tracing::warn!("rocketmq: {e:#}; retrying");
            std::thread::sleep(backoff(since));
            client.reset();
        }
        if inflight.is_empty() {
            if retry.is_empty() {
                break;
            }
            continue;
        }
        let picked = {
            let mut sel = Select::new();
            for f in &inflight {
                sel.recv(&f.rx);
            }
            sel.select_timeout(client.timeout).ok().map(|op| {
                let i = op.index();
                (i, op.recv(&inflight[i].rx))
            })
        };
        let Some((i, result)) = picked else {
            // No answer at all: treat every request in flight as lost.
            let addrs: Vec<String> = inflight.iter().map(|f| f.addr.clone()).collect();
            tracing::warn!(
                "rocketmq: no acknowledgement from {addrs:?} within {} s (`advanced.network_timeout_seconds`); sending again",
                client.timeout.as_secs()
            );
            first_failure.get_or_insert_with(Instant::now);
            client.reset();
            for f in inflight.drain(..) {
                retry.push((f.key, f.batch));
            }
            continue;
        };
        let f = inflight.swap_remove(i);
        let outcome = match result {
            Ok(Ok(resp)) if resp.code == status::SUCCESS => Ok(()),
            Ok(Ok(resp)) if retryable(&resp) => Err((
                true,
                anyhow!("broker {} is busy: {}", f.addr, resp.describe()),
            )),
            Ok(Ok(resp)) => Err((
                false,
                anyhow!(
                    "broker {} refused messages to {}: {}",
                    f.addr,
                    f.key.0,
                    explain(&resp)
                ),
            )),
            Ok(Err(e)) => Err((true, e)),
            Err(_) => Err((true, anyhow!("the connection to {} was lost", f.addr))),
        };
        match outcome {
            Ok(()) => {
                outbox.messages -= f.batch.len();
                outbox.bytes -= f.batch.iter().map(|m| m.body.len()).sum::<usize>();
                first_failure = None;
                ready.push_back(f.key);
            }
            Err((false, e)) => return Err(e),
            Err((true, e)) => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                if since.elapsed() > retry_window {
                    return Err(e.context(format!(
                        "RocketMQ kept failing for {} s (`retry_connection_minutes`)",
                        since.elapsed().as_secs()
                    )));
                }
                tracing::warn!("rocketmq: {e:#}; sending the batch again");
                std::thread::sleep(backoff(since));
                client.reset();
                retry.push((f.key, f.batch));
            }
        }
    }
    outbox.queues.clear();
    outbox.messages = 0;
    outbox.bytes = 0;
    Ok(())
}

/// Sends one batch to its queue's broker (looked up again: the queue may have moved).
fn start_batch(
    client: &Client,
    group: &str,
    key: &(String, QueueRef),
    batch: &[Message],
) -> Result<(Receiver<Result<Command>>, String)> {
    let (topic, q) = key;
    let route = client.route(topic, false)?;
    let current = route
        .queues
        .iter()
        .find(|r| r.broker == q.broker && r.queue_id == q.queue_id)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "queue {} of {topic} on {} is no longer in the route",
                q.queue_id,
                q.broker
            )
        })?;
    let conn = client.broker(&current.addr)?;
    let req = if batch.len() == 1 {
        let mut r = Command::request(
            code::SEND_MESSAGE_V2,
            &send_header(topic, group, &current, &batch[0].properties_text(), false),
        );
        r.body = batch[0].body.clone();
        r
    } else {
        let mut body = Vec::with_capacity(batch.iter().map(|m| m.body.len() + 128).sum());
        for m in batch {
            m.encode_into(&mut body);
        }
        let mut r = Command::request(
            code::SEND_BATCH_MESSAGE,
            &send_header(topic, group, &current, "", true),
        );
        r.body = body;
        r
    };
    let rx = conn.send(req)?;
    Ok((rx, current.addr.clone()))
}
