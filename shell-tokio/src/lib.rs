//! agent-cli-proxy on tokio + hyper: the production daemon.
//!
//! The shell only moves bytes, sleeps until the core's deadlines and talks to storage; every
//! decision is `agent-cli-proxy-core`'s. `main` hands the command line to the shared CLI
//! crate with this shell's [`RuntimeShell`], whose `serve` runs [`serve_with`].

mod body;
mod conntimer;
mod drive;
mod loops;
mod proxy;
mod respond;
mod server;
mod service;
mod shared;
mod upstream;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;

use agent_cli_proxy_cli::RuntimeShell;
use agent_cli_proxy_cli::daemon::{Daemon, seed};

pub use shared::Limits;

/// Runs the daemon with the given environment and limits until shutdown.
pub fn serve_with(env: BTreeMap<String, String>, limits: Limits) -> ExitCode {
    let Ok(daemon) = Daemon::prepare(&env, seed()) else {
        return ExitCode::from(1);
    };
    let rt = match runtime(0) {
        Ok(rt) => rt,
        Err(e) => return daemon.runtime_failed(&e),
    };
    rt.block_on(server::run(daemon, limits))
}

/// This build's binary and build names.
const NAMES: (&str, &str) = ("agent-cli-proxy", "tokio");

/// The shared CLI on this runtime with these listener limits: the binary's `main` passes
/// the defaults; the black-box tests shorten them so time-dependent cases run in seconds.
pub fn main_with_limits(args: impl IntoIterator<Item = OsString>, limits: Limits) -> ExitCode {
    RuntimeShell::new(serve_with, limits, NAMES, upstream::TokioNet).run(args)
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().thread_name("acp-worker").build()
}
