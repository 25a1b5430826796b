//! `GET /ready` on tokio: the shared runner (`agent_cli_proxy_cli::daemon::ready`) with this
//! runtime's blocking pool, timer and control-plane client.

use std::future::Future;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::pipeline::Ready;
use agent_cli_proxy_cli::daemon::ready::ReadyIo;
use agent_cli_proxy_core::head::Reply;

use crate::shared::Shared;

/// Answers `/ready`.
pub async fn handle(shared: &Shared, ready: Ready) -> Reply {
    ready
        .answer(&shared.ready, &shared.daemon, &TokioReady(shared))
        .await
}

struct TokioReady<'a>(&'a Shared);

impl ReadyIo for TokioReady<'_> {
    async fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.ok()
    }

    async fn timeout<F>(&self, limit: Duration, f: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        tokio::time::timeout(limit, f).await.ok()
    }

    fn probe_upstream(&self, url: &str) -> impl Future<Output = Result<u16, String>> + Send {
        self.0.upstream.probe(http::Method::HEAD, url)
    }
}
