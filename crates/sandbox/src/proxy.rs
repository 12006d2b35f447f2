//! A TCP proxy for network failure tests: put it between a client and a server, then
//! freeze the path (connections stay open, nothing is forwarded: a dead host behind a
//! firewall, a stuck load balancer), reset it (every open connection gets a TCP RST),
//! slow it (each piece of data is held for a delay), or cut it (every connection, open
//! or new, is reset: a load balancer with no healthy backend), and let it pass again.
//!
//! It also plays a cluster's single endpoint (PolarDB's cluster endpoint, a virtual IP
//! in front of Galera): [`Proxy::point_to`] sends new connections to another server,
//! as such an endpoint does after a failover, while open ones stay where they are.
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
    /// Reset every connection, and each new one as soon as it is accepted.
    Cut,
}

/// A running proxy; it stops (and closes every connection) when dropped.
pub struct Proxy {
    /// The local port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    target: Mutex<String>,
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

    fn target(&self) -> String {
        self.target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
            target: Mutex::new(target.to_string()),
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

    /// Resets every open connection and each new one until [`Proxy::pass`]; see
    /// [`Mode::Cut`].
    pub fn cut(&self) {
        self.set_mode(Mode::Cut);
        self.reset();
    }

    /// Sends new connections to `target` (`host:port`) from now on; open connections
    /// stay with the server they were made to (reset them with [`Proxy::reset`]).
    pub fn point_to(&self, target: &str) {
        *self.shared.target.lock().unwrap_or_else(|e| e.into_inner()) = target.to_string();
    }

    /// Where new connections go.
    pub fn target(&self) -> String {
        self.shared.target()
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
    if shared.mode() == Mode::Cut {
        // Linger 0: closing sends RST instead of FIN.
        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    }
    let generation = shared.generation.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(shared.target()) else {
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
    if shared.generation.load(Ordering::SeqCst) != generation || shared.mode() == Mode::Cut {
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
        match shared.mode() {
            Mode::Cut => return,
            Mode::Freeze => {
                std::thread::sleep(TICK);
                continue;
            }
            _ => {}
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
                Mode::Cut => return,
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

    /// A server that answers every read with its one-byte name.
    fn named(name: u8) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&[name]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn ask(c: &mut TcpStream) -> std::io::Result<u8> {
        c.write_all(b"?")?;
        let mut got = [0u8; 1];
        c.read_exact(&mut got)?;
        Ok(got[0])
    }

    fn connect(proxy: &Proxy) -> TcpStream {
        let c = TcpStream::connect(proxy.address()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    #[test]
    fn re_points_and_cuts() {
        let (a, b) = (named(b'a'), named(b'b'));
        let proxy = Proxy::start(&a).unwrap();
        let mut old = connect(&proxy);
        assert_eq!(ask(&mut old).unwrap(), b'a');

        // New connections go to the new server; the open one stays with the old.
        proxy.point_to(&b);
        assert_eq!(proxy.target(), b);
        let mut new = connect(&proxy);
        assert_eq!(ask(&mut new).unwrap(), b'b');
        assert_eq!(ask(&mut old).unwrap(), b'a');

        // Cut: open connections are reset, and so is every new one until `pass`.
        proxy.cut();
        for c in [&mut old, &mut new] {
            let e = ask(c).unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
                ),
                "{e}"
            );
        }
        let mut refused = connect(&proxy);
        let e = ask(&mut refused).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ),
            "{e}"
        );
        proxy.pass();
        let mut again = connect(&proxy);
        assert_eq!(ask(&mut again).unwrap(), b'b');
        assert_eq!(proxy.open_connections(), 1);
    }
}
