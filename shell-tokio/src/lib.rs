//! agent-cli-proxy on tokio + hyper: the production daemon.
//!
//! The shell only moves bytes, sleeps until the core's deadlines and talks to storage; every
//! decision is `agent-cli-proxy-core`'s. `main` hands the command line to the shared CLI
//! crate with [`TokioShell`], whose `serve` runs [`serve_with`].

mod body;
mod conntimer;
mod drive;
mod loops;
mod proxy;
mod ready;
mod respond;
mod server;
mod service;
mod shared;
mod upconn;
mod upstream;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use agent_cli_proxy_cli::Shell;
use agent_cli_proxy_cli::daemon::{Daemon, seed};

pub use shared::Limits;

/// The tokio shell for the shared CLI.
#[derive(Default)]
pub struct TokioShell {
    /// Listener limits for `serve` (the defaults of `datapath.md` §1 in production).
    pub limits: Limits,
}

impl Shell for TokioShell {
    fn serve(&self, env: BTreeMap<String, String>) -> ExitCode {
        serve_with(env, self.limits.clone())
    }

    fn probe(&self, method: &str, url: &str, timeout: Duration) -> Result<u16, String> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let rt = runtime(1).map_err(|e| e.to_string())?;
        rt.block_on(async {
            let up = upstream::Upstream::new();
            tokio::time::timeout(timeout, up.probe(method, url))
                .await
                .map_err(|_| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }

    fn binary_name(&self) -> &'static str {
        "agent-cli-proxy"
    }

    fn build_name(&self) -> &'static str {
        "tokio"
    }

    fn fetch(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let rt = runtime(1).map_err(|e| e.to_string())?;
        rt.block_on(async {
            let up = upstream::Upstream::new();
            tokio::time::timeout(
                timeout,
                agent_cli_proxy_cli::daemon::correlator::HttpGet::fetch_document(&up, url),
            )
            .await
            .map_err(|_| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }
}

/// Runs the daemon with the given environment and limits until shutdown.
pub fn serve_with(env: BTreeMap<String, String>, limits: Limits) -> ExitCode {
    let Ok(daemon) = Daemon::prepare(&env, seed()) else {
        return ExitCode::from(1);
    };
    let rt = match runtime(0) {
        Ok(rt) => rt,
        Err(e) => {
            daemon.logger.event(
                agent_cli_proxy_core::exchange::Level::Error,
                "startup.error",
                &format!("cannot start the runtime: {e}"),
                vec![],
            );
            daemon.shutdown_storage();
            daemon.logger.flush();
            return ExitCode::from(1);
        }
    };
    rt.block_on(server::run(daemon, limits))
}

/// The binary's `main`: the shared CLI with this shell.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    agent_cli_proxy_cli::main_with(args, &TokioShell::default())
}

/// The CLI with shortened listener limits: the black-box tests' entry point, so that
/// time-dependent cases (body idle, write stall, header timeout) run in seconds.
pub fn main_with_limits(args: impl IntoIterator<Item = OsString>, limits: Limits) -> ExitCode {
    agent_cli_proxy_cli::main_with(args, &TokioShell { limits })
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().thread_name("acp-worker").build()
}
