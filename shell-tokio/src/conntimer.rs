//! The connection timers of `datapath.md` §1 that hyper cannot express: hyper has one header
//! read timer, armed whenever it waits for a head, so an idle kept-alive connection would be
//! closed after the header read timeout instead of the keep-alive idle time. This module
//! keeps both, as the smol shell does (`shell-smol/src/conn.rs`):
//! * a new connection that sends nothing, or a head that stops part-way: the header read
//!   timeout (from the connection's start, or from the head's first byte);
//! * no new request after a response: the keep-alive idle time.
//!
//! A request counts as served from the moment hyper hands it to the service until hyper
//! drops its response body (the whole response was written, or the connection failed).
//! Either timer firing closes the connection silently.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::body::{Cut, RespBody};

/// One connection's timer state, shared by its socket, its requests and its watchdog.
pub struct ConnClock {
    state: Mutex<State>,
    changed: Notify,
    header_read: Duration,
    keep_alive: Duration,
}

struct State {
    serving: usize,
    idle_since: Instant,
    after_response: bool,
    head_started: Option<Instant>,
}

impl ConnClock {
    /// A clock for a connection accepted now.
    pub fn new(header_read: Duration, keep_alive: Duration) -> Arc<ConnClock> {
        Arc::new(ConnClock {
            state: Mutex::new(State {
                serving: 0,
                idle_since: Instant::now(),
                after_response: false,
                head_started: None,
            }),
            changed: Notify::new(),
            header_read,
            keep_alive,
        })
    }

    /// A request reached the service; the returned guard ends it when dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        let mut s = self.lock();
        s.serving += 1;
        s.head_started = None;
        drop(s);
        self.changed.notify_one();
        Serving(Arc::clone(self))
    }

    /// Completes when the connection must be closed.
    pub async fn expired(&self) {
        loop {
            let deadline = {
                let s = self.lock();
                (s.serving == 0).then(|| match s.head_started {
                    Some(at) => at + self.header_read,
                    None if s.after_response => s.idle_since + self.keep_alive,
                    None => s.idle_since + self.header_read,
                })
            };
            match deadline {
                Some(at) if at <= Instant::now() => return,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                        _ = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    fn read_bytes(&self) {
        let mut s = self.lock();
        if s.serving == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request being served; dropping it starts the keep-alive idle time.
pub struct Serving(Arc<ConnClock>);

impl Drop for Serving {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.serving = s.serving.saturating_sub(1);
        s.idle_since = Instant::now();
        s.after_response = true;
        drop(s);
        self.0.changed.notify_one();
    }
}

/// The client socket, telling the clock when bytes arrive.
pub struct Watched<S> {
    inner: S,
    clock: Arc<ConnClock>,
}

impl<S> Watched<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, clock: Arc<ConnClock>) -> Self {
        Watched { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read_bytes();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request counted as served until hyper drops it.
pub struct Tracked {
    inner: RespBody,
    _serving: Serving,
}

impl Tracked {
    /// `inner`, holding `serving`.
    pub fn new(inner: RespBody, serving: Serving) -> Self {
        Tracked {
            inner,
            _serving: serving,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
