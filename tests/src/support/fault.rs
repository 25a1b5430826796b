//! [`FaultProxy`]: a TCP proxy between the proxy under test and the fake upstream (or
//! between a client and the proxy) that injects transport faults.
//!
//! Options ([`FaultOptions`]) apply to both directions, with byte counts kept per
//! direction; they are read when a connection is accepted, so [`FaultProxy::set_options`]
//! affects new connections only.
//!
//! | Option | Effect |
//! |---|---|
//! | `latency` | every piece of data waits this long before it is written on |
//! | `bandwidth` | bytes per second per direction (pause after each write) |
//! | `slicer` | every write is split into pieces of 1..=n bytes, sizes from a seeded RNG |
//! | `limit_data` | after this many bytes in one direction, both connections close (FIN) |
//! | `timeout` | this long after accept, forwarding stops in both directions; the sockets stay open (bytes are read and dropped) until a peer closes |
//! | `reset_peer` | this long after accept, both connections close with RST |
//! | `slow_close` | a close (FIN) seen on one side reaches the other side this much later |

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::support::server_runtime;

/// Faults applied to each connection. The default forwards unchanged.
#[derive(Clone, Debug, Default)]
pub struct FaultOptions {
    /// Delay added before each piece of data is written on.
    pub latency: Duration,
    /// Bytes per second per direction; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Split writes into pieces of 1..=n bytes.
    pub slicer: Option<usize>,
    /// Close both connections after this many bytes in one direction.
    pub limit_data: Option<u64>,
    /// Stop forwarding this long after accept (a black hole; connections stay open).
    pub timeout: Option<Duration>,
    /// Reset both connections this long after accept.
    pub reset_peer: Option<Duration>,
    /// Delay between a FIN on one side and its propagation to the other.
    pub slow_close: Option<Duration>,
    /// Seed of the slicer's RNG (mixed with the connection number and direction).
    pub seed: u64,
}

/// A running fault proxy. Dropping it stops it and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

struct Shared {
    target: SocketAddr,
    options: Mutex<FaultOptions>,
    connections: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl FaultProxy {
    /// Starts on an ephemeral port of `127.0.0.1`, forwarding to `target`; panics (failing
    /// the test) when it cannot listen.
    pub fn start(target: SocketAddr, options: FaultOptions) -> FaultProxy {
        match FaultProxy::try_start(target, options) {
            Ok(proxy) => proxy,
            Err(err) => panic!("fault proxy failed to start: {err}"),
        }
    }

    /// Fallible form of [`FaultProxy::start`].
    pub fn try_start(target: SocketAddr, options: FaultOptions) -> io::Result<FaultProxy> {
        let runtime = server_runtime("fault-proxy")?;
        // Bound with std so that starting works inside another runtime too (no block_on).
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            options: Mutex::new(options),
            connections: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the options for connections accepted from now on.
    pub fn set_options(&self, options: FaultOptions) {
        *self
            .shared
            .options
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the accepting side to the target.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the target back to the accepting side.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let options = shared
            .options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio::spawn(relay(client, id, options, shared.clone()));
    }
}

/// How a connection pair is being torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Run,
    Close,
    Reset,
}

#[derive(Clone, Copy)]
enum Dir {
    Up,
    Down,
}

async fn relay(client: TcpStream, id: u64, options: FaultOptions, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.target).await else {
        // Target refused: the accepting side sees a reset, like a refused connect.
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    // A zero timeout black-holes from the first byte, without racing the timer task.
    let blackhole = Arc::new(AtomicBool::new(options.timeout == Some(Duration::ZERO)));
    let mut timers = Vec::new();
    if let Some(after) = options.timeout {
        let blackhole = blackhole.clone();
        timers.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            blackhole.store(true, Ordering::SeqCst);
        }));
    }
    if let Some(after) = options.reset_peer {
        let stop_tx = stop_tx.clone();
        timers.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = stop_tx.send(Stop::Reset);
        }));
    }
    let pump = |read, write, dir| Pump {
        read,
        write,
        dir,
        options: options.clone(),
        rng: fastrand::Rng::with_seed(options.seed ^ id.rotate_left(17) ^ dir as u64),
        stop_rx: stop_rx.clone(),
        stop_tx: stop_tx.clone(),
        blackhole: blackhole.clone(),
        shared: shared.clone(),
    };
    let up = pump(client_read, server_write, Dir::Up);
    let down = pump(server_read, client_write, Dir::Down);
    let ((client_read, server_write), (server_read, client_write)) =
        tokio::join!(up.run(), down.run());
    for timer in timers {
        timer.abort();
    }
    if *stop_rx.borrow() == Stop::Reset {
        for (read, write) in [(client_read, client_write), (server_read, server_write)] {
            if let Ok(stream) = read.reunite(write) {
                let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

struct Pump {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    dir: Dir,
    options: FaultOptions,
    rng: fastrand::Rng,
    stop_rx: watch::Receiver<Stop>,
    stop_tx: watch::Sender<Stop>,
    blackhole: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Pump {
    /// Forwards until end of file, an error or a stop; returns the halves so the caller can
    /// reset them.
    async fn run(mut self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent: u64 = 0;
        loop {
            let read = tokio::select! {
                _ = self.stop_rx.changed() => break,
                read = self.read.read(&mut buf) => read,
            };
            let n = match read {
                Ok(0) if self.blackhole.load(Ordering::SeqCst) => {
                    // A black hole swallows the close too; the other side stays open until
                    // its own peer closes.
                    break;
                }
                Ok(0) => {
                    if let Some(delay) = self.options.slow_close {
                        self.sleep(delay).await;
                    }
                    let _ = self.write.shutdown().await;
                    break;
                }
                Ok(n) => n,
                Err(err) => {
                    let stop = if err.kind() == io::ErrorKind::ConnectionReset {
                        Stop::Reset
                    } else {
                        Stop::Close
                    };
                    let _ = self.stop_tx.send(stop);
                    break;
                }
            };
            if self.blackhole.load(Ordering::SeqCst) {
                continue;
            }
            let mut take = n;
            if let Some(limit) = self.options.limit_data {
                take = take.min(usize::try_from(limit.saturating_sub(sent)).unwrap_or(usize::MAX));
            }
            if !self.options.latency.is_zero() && !self.sleep(self.options.latency).await {
                break;
            }
            if !self.forward(&buf[..take]).await {
                break;
            }
            sent += take as u64;
            if self.options.limit_data.is_some_and(|limit| sent >= limit) {
                let _ = self.stop_tx.send(Stop::Close);
                break;
            }
        }
        (self.read, self.write)
    }

    /// Writes `data` in slices; false when stopped or the write failed.
    async fn forward(&mut self, data: &[u8]) -> bool {
        let mut at = 0;
        while at < data.len() {
            let size = match self.options.slicer {
                Some(max) if max > 0 => self.rng.usize(1..=max),
                _ => data.len(),
            };
            let piece = &data[at..(at + size).min(data.len())];
            let written = tokio::select! {
                _ = self.stop_rx.changed() => return false,
                res = self.write.write_all(piece) => res,
            };
            if written.is_err() {
                let _ = self.stop_tx.send(Stop::Close);
                return false;
            }
            at += piece.len();
            let counter = match self.dir {
                Dir::Up => &self.shared.bytes_up,
                Dir::Down => &self.shared.bytes_down,
            };
            counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
            if let Some(rate) = self.options.bandwidth.filter(|r| *r > 0) {
                let pause = Duration::from_secs_f64(piece.len() as f64 / rate as f64);
                if !self.sleep(pause).await {
                    return false;
                }
            } else if self.options.slicer.is_some() {
                // Let each slice leave as its own segment.
                tokio::task::yield_now().await;
            }
        }
        true
    }

    /// Sleeps unless stopped first; false when stopped.
    async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stop_rx.changed() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}
