//! The listener, the connection tasks and the shutdown sequence (`control.md` §9), on tokio
//! and hyper.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::Daemon;
use agent_cli_proxy_cli::daemon::ready::ReadyState;
use agent_cli_proxy_cli::upstream::UpstreamClient;
use agent_cli_proxy_core::shutdown::{Drain, DrainStep, Signal};
use agent_cli_proxy_core::time::Instant as CoreInstant;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::body::Cut;
use crate::conntimer::{ConnClock, Tracked, Watched};
use crate::loops::Loops;
use crate::shared::{Limits, Shared};
use crate::upstream::TokioNet;

/// Binds, serves until a signal, then runs the shutdown sequence. Returns the exit code.
pub async fn run(daemon: Daemon, limits: Limits) -> ExitCode {
    let (host, port) = daemon.bind_address();
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => return daemon.bind_failed(&e),
    };
    let origin = tokio::time::Instant::from_std(daemon.clock_origin());
    let (abort_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        daemon,
        upstream: UpstreamClient::new(TokioNet),
        limits,
        in_flight: AtomicUsize::new(0),
        drained: Notify::new(),
        abort_exchanges: abort_tx,
        ready: ReadyState::default(),
        origin,
    });
    let loops = Loops::start(&shared);
    let signal = install_signals();
    shared.daemon.log_running();
    let (stop_conns_tx, stop_conns) = watch::channel(false);
    let mut conns = JoinSet::new();
    let signal = accept_loop(&shared, &listener, &mut conns, &stop_conns, signal).await;
    drop(listener);
    let started = std::time::Instant::now();
    let began = shared.daemon.log_shutdown_started(signal);
    let _ = stop_conns_tx.send(true);
    drain(&shared, &mut conns, began).await;
    loops.stop(&shared, started).await;
    let s = Arc::clone(&shared);
    let _ = tokio::task::spawn_blocking(move || s.daemon.shutdown_storage()).await;
    shared.daemon.shutdown_complete(signal, began)
}

async fn accept_loop(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    conns: &mut JoinSet<()>,
    stop_conns: &watch::Receiver<bool>,
    mut signal: tokio::sync::mpsc::Receiver<Signal>,
) -> Signal {
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            sig = signal.recv() => return sig.unwrap_or(Signal::Term),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(Arc::clone(shared), stream, peer, stop_conns.clone()));
                }
                Err(_) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    // No header read timeout in hyper: `ConnClock` keeps it, and the keep-alive idle time
    // hyper has no timer for.
    let clock = ConnClock::new(
        shared.limits.header_read_timeout,
        shared.limits.keep_alive_idle,
    );
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_headers(shared.limits.max_headers)
        .max_buf_size(shared.limits.max_header_block.max(8192))
        .keep_alive(true);
    let svc_shared = Arc::clone(&shared);
    let svc_clock = Arc::clone(&clock);
    let service = service_fn(move |req| {
        let serving = svc_clock.serving();
        let handled = crate::service::handle(Arc::clone(&svc_shared), peer, req);
        async move {
            let resp = handled.await?;
            Ok::<_, Cut>(resp.map(|body| Tracked::new(body, serving)))
        }
    });
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&clock)));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = clock.expired() => return,
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Steps 2–4 of the shutdown, as the core's [`Drain`] directs.
async fn drain(shared: &Arc<Shared>, conns: &mut JoinSet<()>, began: CoreInstant) {
    let d = &shared.daemon;
    let mut plan = Drain::new(began, shared.limits.drain, shared.limits.hard_stop);
    loop {
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        match plan.step(d.now(), in_flight, conns.len()) {
            DrainStep::Log(record) => d.logger.record(&record),
            DrainStep::AbortExchanges => {
                let _ = shared.abort_exchanges.send(true);
            }
            DrainStep::Wait(until) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(shared.tokio_instant(until)) => {}
                    _ = shared.drained.notified() => {}
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            DrainStep::CloseConnections => conns.abort_all(),
            DrainStep::Done => return,
        }
    }
}

fn install_signals() -> tokio::sync::mpsc::Receiver<Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let kinds = [
        (SignalKind::interrupt(), Signal::Int),
        (SignalKind::terminate(), Signal::Term),
        (SignalKind::hangup(), Signal::Hup),
    ];
    for (kind, sig) in kinds {
        if let Ok(mut stream) = signal(kind) {
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(sig).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    rx
}
