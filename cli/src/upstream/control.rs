//! The control plane on the shared client, for both shells: `/ready`'s upstream probe, the
//! correlator's and quota probes' `GET`s and the pricing document fetch (as [`HttpGet`] and
//! [`ReadyIo`] of `Arc<UpstreamClient<I>>`), and the one-off calls of `doctor` and
//! `backfill-costs`, which run outside the daemon ([`probe_once`], [`fetch_once`]). Besides
//! its sockets, a shell lends only its timer, its blocking pool and a way to block on a
//! future ([`ControlRuntime`]), so every text these calls report is the same in both builds.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::{UpstreamClient, UpstreamIo, header_map};
use crate::daemon::correlator::{BoxFuture, Hop, HttpGet, blocking};
use crate::daemon::ready::ReadyIo;

/// What the control-plane calls need of the shell's runtime besides sockets.
pub trait ControlRuntime: UpstreamIo {
    /// `f`'s output, or `None` once `limit` has passed. Touches the runtime only when first
    /// polled, so it may be built before [`ControlRuntime::block_on`] runs it.
    fn timeout<F>(limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send;

    /// Runs `job` where blocking is allowed; resolves when it has ended (or panicked).
    fn unblock(job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()>;

    /// Runs `f` to its end on the calling thread (commands that start no daemon); an error
    /// when the runtime cannot be started.
    fn block_on<F: Future>(f: F) -> io::Result<F::Output>;
}

/// Largest management or quota answer read (the legacy usage snapshot can be large).
const MAX_LOOP_BODY: usize = 33_554_432;

/// `call`, or the timeout's error after `limit`.
pub async fn bounded<I: ControlRuntime, T: Send>(
    limit: Duration,
    call: impl Future<Output = Result<T, String>> + Send,
) -> Result<T, String> {
    I::timeout(limit, call)
        .await
        .ok_or_else(|| format!("timed out after {}ms", limit.as_millis()))?
}

impl<I: ControlRuntime> HttpGet for Arc<UpstreamClient<I>> {
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>> {
        let headers = header_map(headers);
        let url = url.to_owned();
        Box::pin(async move {
            let call = async { self.get_all(&url, headers?, MAX_LOOP_BODY).await };
            bounded::<I, _>(timeout, call).await
        })
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        I::unblock(job)
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>> {
        let url = url.to_owned();
        Box::pin(async move {
            let hop = UpstreamClient::get_hop(self, &url, max);
            bounded::<I, _>(timeout, hop).await
        })
    }
}

impl<I: ControlRuntime> ReadyIo for Arc<UpstreamClient<I>> {
    async fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        blocking(self, f).await.ok()
    }

    fn timeout<F>(&self, limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        I::timeout(limit, f)
    }

    fn probe_upstream(&self, url: &str) -> impl Future<Output = Result<u16, String>> + Send {
        self.probe(Method::HEAD, url)
    }
}

/// `doctor`'s probe: `method url` on a fresh client, within `timeout`.
pub fn probe_once<I: ControlRuntime>(
    io: I,
    method: &str,
    url: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    // The client lives and dies inside the runtime, which its pooled sockets belong to.
    let call = async move {
        let client = UpstreamClient::new(io);
        bounded::<I, _>(timeout, client.probe(method, url)).await
    };
    I::block_on(call).map_err(|e| e.to_string())?
}

/// `backfill-costs`' forced pricing fetch: the document at `url` on a fresh client, within
/// `timeout`.
pub fn fetch_once<I: ControlRuntime>(
    io: I,
    url: &str,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let call = async move {
        let client = UpstreamClient::new(io);
        bounded::<I, _>(timeout, client.fetch_document(url)).await
    };
    I::block_on(call).map_err(|e| e.to_string())?
}
