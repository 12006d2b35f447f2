//! A TCP proxy for network failure tests: put it between a client and a server, then
//! freeze the path (connections stay open, nothing is forwarded: a dead host behind a
//! firewall, a stuck load balancer), reset it (every open connection gets a TCP RST),
//! or slow it (each piece of data is held for a delay), and let it pass again.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let proxy = tidemark_sandbox::proxy::Proxy::start("127.0.0.1:3306")?;
//! // connect clients to 127.0.0.1:{proxy.port}
//! proxy.freeze();
//! proxy.pass();
//! # Ok(()) }
//! ```

use anyhow::{Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with the data it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward nothing and read nothing more; connections (old and new) stay open.
    Freeze,
    /// Forward each piece of data after this delay.
    Slow(Duration),
}

/// A running proxy; it stops (and closes every connection) when dropped.
pub struct Proxy {
    /// The local port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    target: String,
    mode: Mutex<Mode>,
    stop: AtomicBool,
    /// Bumped by `reset`: connections opened before the current value are reset.
    generation: AtomicU64,
    open: AtomicUsize,
    accepted: AtomicUsize,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often the pumps look at the mode and the stop flag.
const TICK: Duration = Duration::from_millis(20);

impl Proxy {
    /// Listens on a free local port and forwards every connection to `target`
    /// (`host:port`).
    pub fn start(target: &str) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy's port")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            target: target.to_string(),
            mode: Mutex::new(Mode::Pass),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept_loop(listener, s));
        Ok(Proxy { port, shared })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Stops forwarding; see [`Mode::Freeze`].
    pub fn freeze(&self) {
        self.set_mode(Mode::Freeze);
    }

    /// Forwards again, data held while frozen first.
    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }

    /// See [`Mode::Slow`].
    pub fn slow(&self, delay: Duration) {
        self.set_mode(Mode::Slow(delay));
    }

    /// Resets every open connection (a TCP RST to both ends); new ones are forwarded as
    /// the mode says.
    pub fn reset(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                std::thread::spawn(move || connection(client, s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// One proxied connection: two pumps, until either end closes, a reset or a stop.
fn connection(client: TcpStream, shared: Arc<Shared>) {
    let generation = shared.generation.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(&shared.target) else {
        return;
    };
    shared.open.fetch_add(1, Ordering::SeqCst);
    let ended = Arc::new(AtomicBool::new(false));
    let pumps = [(&client, &server), (&server, &client)].map(|(from, to)| {
        let (from, to) = (from.try_clone(), to.try_clone());
        let (s, ended) = (shared.clone(), ended.clone());
        std::thread::spawn(move || {
            if let (Ok(from), Ok(to)) = (from, to) {
                pump(from, to, &s, generation, &ended);
            }
            ended.store(true, Ordering::SeqCst);
        })
    });
    for p in pumps {
        let _ = p.join();
    }
    if shared.generation.load(Ordering::SeqCst) != generation {
        // Linger 0: closing sends RST instead of FIN.
        for s in [&client, &server] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    } else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: &Shared,
    generation: u64,
    ended: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 << 10];
    let live = || {
        !shared.stop.load(Ordering::SeqCst)
            && !ended.load(Ordering::SeqCst)
            && shared.generation.load(Ordering::SeqCst) == generation
    };
    while live() {
        if shared.mode() == Mode::Freeze {
            std::thread::sleep(TICK);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        // Data read just before a freeze is held until the path passes again.
        loop {
            if !live() {
                return;
            }
            match shared.mode() {
                Mode::Freeze => std::thread::sleep(TICK),
                Mode::Slow(delay) => {
                    std::thread::sleep(delay);
                    break;
                }
                Mode::Pass => break,
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on a free port.
    fn echo() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(c: &mut TcpStream) -> std::io::Result<()> {
        c.write_all(b"ping")?;
        let mut got = [0u8; 4];
        c.read_exact(&mut got)?;
        assert_eq!(&got, b"ping");
        Ok(())
    }

    #[test]
    fn freezes_resets_and_slows() {
        let proxy = Proxy::start(&echo()).unwrap();
        let mut c = TcpStream::connect(proxy.address()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        round_trip(&mut c).unwrap();

        proxy.freeze();
        let frozen = round_trip(&mut c).unwrap_err();
        assert!(
            matches!(frozen.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{frozen}"
        );
        proxy.pass();
        // The held "ping" arrives once the path passes.
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        proxy.slow(Duration::from_millis(200));
        let started = Instant::now();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        round_trip(&mut c).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(400));
        proxy.pass();

        proxy.reset();
        let mut buf = [0u8; 4];
        let reset = c.read(&mut buf).unwrap_err();
        assert_eq!(reset.kind(), ErrorKind::ConnectionReset, "{reset}");
        let mut again = TcpStream::connect(proxy.address()).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        round_trip(&mut again).unwrap();
        assert!(proxy.accepted() >= 2);
    }
}
