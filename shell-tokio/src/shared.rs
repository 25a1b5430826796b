//! The state every task of the tokio daemon shares. A leaf module: everything else imports
//! it, it imports none of them but the client.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::Daemon;
use agent_cli_proxy_cli::daemon::ready::ReadyState;
use agent_cli_proxy_cli::upstream::UpstreamClient;
use tokio::sync::{Notify, watch};

use crate::upstream::TokioNet;

pub use agent_cli_proxy_core::limits::Limits;

/// State shared by every task of the daemon.
pub struct Shared {
    /// The runtime-agnostic daemon state.
    pub daemon: Daemon,
    /// The upstream client, for proxied calls and, as `HttpGet` and `ReadyIo`, the control
    /// plane.
    pub upstream: Arc<UpstreamClient<TokioNet>>,
    /// Limits.
    pub limits: Limits,
    /// Requests being handled.
    pub in_flight: AtomicUsize,
    /// Signalled whenever a request ends.
    pub drained: Notify,
    /// Set to true to abort every live exchange (shutdown step 3).
    pub abort_exchanges: watch::Sender<bool>,
    /// `/ready` memo and loop health.
    pub ready: ReadyState,
    /// The tokio instant of the core's time zero.
    pub origin: tokio::time::Instant,
}

impl AsRef<Daemon> for Shared {
    fn as_ref(&self) -> &Daemon {
        &self.daemon
    }
}

impl Shared {
    /// The tokio instant of a core instant.
    pub fn tokio_instant(&self, t: agent_cli_proxy_core::time::Instant) -> tokio::time::Instant {
        self.origin + Duration::from_micros(t.as_micros())
    }
}
