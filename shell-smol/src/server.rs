//! The listener, the connection tasks and the shutdown sequence (`control.md` §9), on
//! async-io. Mirrors `shell-tokio/src/server.rs`: the same steps, events and exit codes.

use std::net::{SocketAddr, TcpStream};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::Daemon;
use agent_cli_proxy_cli::upstream::UpstreamClient;
use agent_cli_proxy_core::shutdown::{Drain, DrainStep, Signal};
use agent_cli_proxy_core::time::Instant as CoreInstant;
use async_executor::Executor;
use async_io::{Async, Timer};
use async_signal::{Signal as OsSignal, Signals};
use futures_lite::{FutureExt, StreamExt, future};

use crate::latch::Latch;
use crate::loops::Loops;
use crate::shared::{Limits, Shared};
use crate::upstream::SmolNet;
use agent_cli_proxy_cli::daemon::ready::ReadyState;

/// Binds, serves until a signal, then runs the shutdown sequence. Returns the exit code.
pub async fn run(daemon: Daemon, limits: Limits, ex: Arc<Executor<'static>>) -> ExitCode {
    let (host, port) = daemon.bind_address();
    let bound = std::net::TcpListener::bind((host.as_str(), port)).and_then(Async::new);
    let listener = match bound {
        Ok(l) => l,
        Err(e) => return daemon.bind_failed(&e),
    };
    let origin = daemon.clock_origin();
    let shared = Arc::new(Shared {
        daemon,
        upstream: UpstreamClient::new(SmolNet),
        limits,
        in_flight: AtomicUsize::new(0),
        conns: AtomicUsize::new(0),
        stop_conns: Latch::default(),
        abort_exchanges: Latch::default(),
        kill_conns: Latch::default(),
        ready: ReadyState::default(),
        ex,
        origin,
    });
    let loops = Loops::start(&shared);
    let mut stopper = Stopper::install();
    shared.daemon.log_running();
    let signal = accept_loop(&shared, &listener, &mut stopper).await;
    drop(listener);
    let started = std::time::Instant::now();
    let began = shared.daemon.log_shutdown_started(signal);
    shared.stop_conns.fire();
    drain(&shared, began).await;
    loops.stop(&shared, started).await;
    let s = Arc::clone(&shared);
    blocking::unblock(move || s.daemon.shutdown_storage()).await;
    shared.daemon.shutdown_complete(signal, began)
}

/// Where the stop comes from, once installed.
enum Stopper {
    Signals(Signals),
    Never,
}

impl Stopper {
    fn install() -> Stopper {
        match Signals::new([OsSignal::Int, OsSignal::Term, OsSignal::Hup]) {
            Ok(s) => Stopper::Signals(s),
            // Without handlers the default actions apply: the process just dies.
            Err(_) => Stopper::Never,
        }
    }

    async fn next(&mut self) -> Signal {
        match self {
            Stopper::Signals(s) => loop {
                match s.next().await {
                    Some(Ok(OsSignal::Int)) => return Signal::Int,
                    Some(Ok(OsSignal::Hup)) => return Signal::Hup,
                    Some(Ok(OsSignal::Term)) => return Signal::Term,
                    Some(Ok(_)) | Some(Err(_)) => continue,
                    None => return Signal::Term,
                }
            },
            Stopper::Never => future::pending().await,
        }
    }
}

enum Accepted {
    Stop(Signal),
    Conn(std::io::Result<(Async<TcpStream>, SocketAddr)>),
}

async fn accept_loop(
    shared: &Arc<Shared>,
    listener: &Async<std::net::TcpListener>,
    stopper: &mut Stopper,
) -> Signal {
    let mut backoff = Duration::from_millis(5);
    loop {
        let next = future::or(async { Accepted::Stop(stopper.next().await) }, async {
            Accepted::Conn(listener.accept().await)
        })
        .await;
        match next {
            Accepted::Stop(sig) => return sig,
            Accepted::Conn(Ok((stream, peer))) => {
                backoff = Duration::from_millis(5);
                let _ = stream.get_ref().set_nodelay(true);
                spawn_connection(shared, stream, peer);
            }
            Accepted::Conn(Err(_)) => {
                // Out of descriptors or similar: back off instead of spinning.
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, stream: Async<TcpStream>, peer: SocketAddr) {
    let s = Arc::clone(shared);
    s.conns.fetch_add(1, Ordering::AcqRel);
    shared
        .ex
        .spawn(async move {
            let _open = Counted(&s.conns);
            let work =
                AssertUnwindSafe(crate::conn::serve(Arc::clone(&s), stream, peer)).catch_unwind();
            let killed = async {
                s.kill_conns.wait().await;
                Ok(())
            };
            if let Err(panic) = work.or(killed).await {
                s.daemon.report_panic("", &*panic);
            }
        })
        .detach();
}

/// Decrements a counter when dropped.
pub struct Counted<'a>(pub &'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Steps 2–4 of the shutdown, as the core's [`Drain`] directs. Requests are counted, not
/// awaited, so a wait is a plain timer tick.
async fn drain(shared: &Arc<Shared>, began: CoreInstant) {
    let d = &shared.daemon;
    let mut plan = Drain::new(began, shared.limits.drain, shared.limits.hard_stop);
    loop {
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        let open = shared.conns.load(Ordering::Acquire);
        match plan.step(d.now(), in_flight, open) {
            DrainStep::Log(record) => d.logger.record(&record),
            DrainStep::AbortExchanges => shared.abort_exchanges.fire(),
            DrainStep::Wait(until) => {
                Timer::at(shared.instant(until)).await;
            }
            DrainStep::CloseConnections => shared.kill_conns.fire(),
            DrainStep::Done => return,
        }
    }
}
