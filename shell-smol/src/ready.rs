//! `GET /ready` on smol: the shared runner (`agent_cli_proxy_cli::daemon::ready`) with the
//! `blocking` pool, async-io's timer and this shell's control-plane client.

use std::future::Future;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::pipeline::Ready;
use agent_cli_proxy_cli::daemon::ready::ReadyIo;
use agent_cli_proxy_core::head::Reply;

use crate::shared::Shared;
use crate::timer::timeout;

/// Answers `/ready`.
pub async fn handle(shared: &Shared, ready: Ready) -> Reply {
    ready
        .answer(&shared.ready, &shared.daemon, &SmolReady(shared))
        .await
}

struct SmolReady<'a>(&'a Shared);

impl ReadyIo for SmolReady<'_> {
    async fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Some(blocking::unblock(f).await)
    }

    fn timeout<F>(&self, limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        timeout(limit, f)
    }

    fn probe_upstream(&self, url: &str) -> impl Future<Output = Result<u16, String>> + Send {
        self.0.upstream.0.probe(http::Method::HEAD, url)
    }
}
