//! agent-cli-proxy on smol + async-io: the lightweight build.
//!
//! The same daemon as `shell-tokio`, without tokio and hyper: the client side of every
//! connection is framed by the core's sans-IO HTTP/1.1 codec (`agent_cli_proxy_core::http1`)
//! over `async_io::Async<TcpStream>`, with this shell's own timers for the limits of
//! `datapath.md` §1, and the upstream client uses the same codec, with a small idle pool
//! and rustls (ring) through futures-rustls for `https`. Everything runtime-agnostic is
//! shared with the tokio build (`agent_cli_proxy_cli::daemon`), and every decision is the
//! core's: the shell moves bytes, sleeps until deadlines and talks to storage.
//!
//! Runtime: one `async_executor::Executor` run by the calling thread plus
//! `available_parallelism − 1` worker threads (each drives the async-io reactor when it is
//! idle); blocking reads (SQLite readers, files, DNS) run on the `blocking` pool.

mod conn;
mod downstream;
mod drive;
mod latch;
mod loops;
mod proxy;
mod server;
mod shared;
mod timer;
mod upstream;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use agent_cli_proxy_cli::RuntimeShell;
use agent_cli_proxy_cli::daemon::{Daemon, seed};
use async_executor::Executor;

pub use shared::Limits;

/// Runs the daemon with the given environment and limits until a signal (SIGTERM, SIGINT,
/// SIGHUP), then the shutdown sequence; returns the exit code.
pub fn serve_with(env: BTreeMap<String, String>, limits: Limits) -> ExitCode {
    let Ok(daemon) = Daemon::prepare(&env, seed()) else {
        return ExitCode::from(1);
    };
    let ex = Arc::new(Executor::new());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let threads = match spawn_workers(&ex, &stop_rx) {
        Ok(t) => t,
        Err(e) => return daemon.runtime_failed(&e),
    };
    let code = async_io::block_on(ex.run(server::run(daemon, limits, Arc::clone(&ex))));
    drop(stop_tx);
    for t in threads {
        let _ = t.join();
    }
    code
}

/// This build's binary and build names.
const NAMES: (&str, &str) = ("agent-cli-proxy-smol", "smol");

/// The shared CLI on this runtime with these listener limits: the binary's `main` passes
/// the defaults; the black-box tests shorten them so time-dependent cases run in seconds.
pub fn main_with_limits(args: impl IntoIterator<Item = OsString>, limits: Limits) -> ExitCode {
    RuntimeShell::new(serve_with, limits, NAMES, upstream::SmolNet).run(args)
}

/// `available_parallelism − 1` threads that run the executor (the caller's thread is the
/// last one) until `stop` closes.
fn spawn_workers(
    ex: &Arc<Executor<'static>>,
    stop: &async_channel::Receiver<()>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1);
    let mut threads = Vec::with_capacity(workers);
    for _ in 0..workers {
        let ex = Arc::clone(ex);
        let stop = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("acp-worker".to_owned())
            .spawn(move || {
                let _ = async_io::block_on(ex.run(async move { stop.recv().await }));
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The threads already started stop once `stop` closes (dropped by the caller).
                return Err(e);
            }
        }
    }
    Ok(threads)
}
