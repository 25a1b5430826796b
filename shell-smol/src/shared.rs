//! The state every task of the smol daemon shares. A leaf module: everything else imports
//! it, it imports none of them but the latch and the client.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::Daemon;
use agent_cli_proxy_cli::daemon::ready::ReadyState;
use agent_cli_proxy_cli::upstream::UpstreamClient;
use async_executor::Executor;

use crate::latch::Latch;
use crate::upstream::SmolNet;

pub use agent_cli_proxy_core::limits::Limits;

/// State shared by every task of the daemon.
pub struct Shared {
    /// The runtime-agnostic daemon state.
    pub daemon: Daemon,
    /// The upstream client, for proxied calls and, as `HttpGet` and `ReadyIo`, the control
    /// plane.
    pub upstream: Arc<UpstreamClient<SmolNet>>,
    /// Limits.
    pub limits: Limits,
    /// Requests being handled.
    pub in_flight: AtomicUsize,
    /// Open client connections.
    pub conns: AtomicUsize,
    /// Shutdown step 1: idle connections close, busy ones close after their response.
    pub stop_conns: Latch,
    /// Shutdown step 3: abort every live exchange.
    pub abort_exchanges: Latch,
    /// Shutdown step 4: close every connection now.
    pub kill_conns: Latch,
    /// `/ready` memo and loop health.
    pub ready: ReadyState,
    /// The executor, for spawning.
    pub ex: Arc<Executor<'static>>,
    /// The standard instant of the core's time zero.
    pub origin: std::time::Instant,
}

impl AsRef<Daemon> for Shared {
    fn as_ref(&self) -> &Daemon {
        &self.daemon
    }
}

impl Shared {
    /// The standard instant of a core instant.
    pub fn instant(&self, t: agent_cli_proxy_core::time::Instant) -> std::time::Instant {
        self.origin + Duration::from_micros(t.as_micros())
    }
}
