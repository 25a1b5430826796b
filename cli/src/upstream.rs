//! The upstream client, shared by both shells: request framing by the core's codec
//! (`Target::request_head`), the idle pool, address fallback, failure classes, the retry of
//! a write that failed on a reused connection, and reading each response with the core's
//! `ResponseReader`. A shell supplies only its runtime's socket work through [`UpstreamIo`]:
//! resolve, connect, the TLS handshake and a liveness peek, with streams that speak
//! futures-io's `AsyncRead`/`AsyncWrite` (smol's natively, tokio's through a small adapter).
//!
//! Failure classes follow hyper's client: name resolution, TCP connect and TLS handshake
//! failures are `Connect` with `written: false`; anything after the connection is up is
//! `Read` (`agent_cli_proxy_core::http1::reset_text`).
//!
//! Choices where the spec is silent:
//! * A pooled connection is checked with [`UpstreamIo::is_quiet`] (a non-blocking `peek`)
//!   before reuse: EOF, an error or stray bytes drop it. If writing the request on a reused
//!   connection still fails, the request is written once more on a fresh connection
//!   (nothing was processed, as hyper's pool does for a connection closed under it).
//! * Idle connections live at most 90 s, at most 64 per authority ([`crate::pool`]).
//! * Addresses are tried in the resolver's order; the last connect error is reported.
//! * Bodies up to [`COALESCE`] bytes are written together with the head in one write.
//! * Responses are read [`READ_CHUNK`] bytes at a time through one buffer per thread, so
//!   chunks handed to the exchange stay small and an idle stream holds no read buffer of its
//!   own.
//! * A TLS peer that closes without `close_notify` ends a close-delimited body like a TCP
//!   EOF.
//! * Redirects are never followed on the data path (the core turns a 3xx into E20); the
//!   document fetch follows them hop by hop ([`UpstreamClient::get_hop`]).
//!
//! The control plane's calls (probes, management and quota `GET`s, the document fetch) run
//! on the same client ([`control`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agent_cli_proxy_core::errors::NetworkErrorName;
use agent_cli_proxy_core::exchange::{Exchange, UpstreamFailure, UpstreamOp, UpstreamRequest};
use agent_cli_proxy_core::head::ResponseHead;
use agent_cli_proxy_core::http1::{
    ResponseEvent, ResponseReader, Target, failure_text, reset_text,
};
use agent_cli_proxy_core::time::Instant as CoreInstant;
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, Method};
use rustls::pki_types::ServerName;

use crate::daemon::Daemon;
use crate::daemon::correlator::Hop;
use crate::daemon::pipeline::BudgetCharge;
use crate::pool::IdlePool;

pub mod checks;
pub mod control;

/// Bodies up to this size are written together with the head in one write.
pub const COALESCE: usize = 64 * 1024;
/// Bytes asked of the socket per read.
pub use crate::scratch::READ_CHUNK;
/// Largest run of already-read body chunks handed over as one ([`UpConn`]).
pub const JOIN_MAX: usize = 16 * 1024;

/// The socket work of an upstream connection, on the shell's runtime.
pub trait UpstreamIo: Send + Sync + 'static {
    /// A connected TCP stream (TCP_NODELAY set).
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A TLS stream over [`UpstreamIo::Tcp`].
    type Tls: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The addresses of `host:port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;

    /// A TCP connection to `addr`, with TCP_NODELAY.
    fn connect_tcp(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// The TLS handshake for `name` over `tcp` (platform roots, `crate::tls`).
    fn tls(
        &self,
        name: ServerName<'static>,
        tcp: Self::Tcp,
    ) -> impl Future<Output = io::Result<Self::Tls>> + Send;

    /// True when the peer has neither closed nor sent anything unasked.
    fn is_quiet(conn: &Stream<Self::Tcp, Self::Tls>) -> bool;
}

/// A plain (`http`) or TLS (`https`) connection.
pub enum Stream<T, S> {
    /// `http`.
    Plain(T),
    /// `https`.
    Tls(Box<S>),
}

/// The shared client: the shell's IO plus an idle pool. Shared as an `Arc`, which every
/// response being read holds to give its connection back.
pub struct UpstreamClient<I: UpstreamIo> {
    io: I,
    pool: IdlePool<Stream<I::Tcp, I::Tls>>,
}

/// An upstream response being read, on the connection that carries it.
pub struct UpConn<I: UpstreamIo> {
    conn: Stream<I::Tcp, I::Tls>,
    reader: ResponseReader,
    /// The event decoded after a run of body chunks was joined, handed out next.
    pending: Option<Box<Result<ResponseEvent, UpstreamFailure>>>,
    key: String,
    client: Arc<UpstreamClient<I>>,
}

impl<I: UpstreamIo> UpstreamClient<I> {
    /// A client over `io` with an empty pool.
    pub fn new(io: I) -> Arc<Self> {
        Arc::new(UpstreamClient {
            io,
            pool: IdlePool::default(),
        })
    }

    /// Sends one attempt: connects (or reuses a pooled connection) and writes the whole
    /// request. `Ok` is the connection, ready for the response.
    pub async fn send(self: Arc<Self>, req: UpstreamRequest) -> Result<UpConn<I>, UpstreamFailure> {
        let invalid = |m: String| UpstreamFailure::Connect {
            name: NetworkErrorName::Connect,
            written: false,
            message: format!("invalid upstream request: {m}"),
        };
        let target = Target::parse(&req.url).map_err(invalid)?;
        let head = target
            .request_head(&req.method, &req.headers, req.body.len() as u64)
            .map_err(invalid)?;
        let mut retried = false;
        loop {
            let (mut conn, reused) = self.connect(&target).await?;
            match write_request(&mut conn, &head, &req.body).await {
                Ok(()) => {
                    return Ok(UpConn {
                        conn,
                        reader: ResponseReader::new(&req.method),
                        pending: None,
                        key: target.key,
                        client: self,
                    });
                }
                Err(_) if reused && !retried => retried = true,
                Err(e) => {
                    return Err(UpstreamFailure::Read {
                        message: reset_text(&e.to_string()),
                    });
                }
            }
        }
    }

    /// A bodiless probe (`/ready`'s `HEAD <url>/health`, `doctor`): the status or the error.
    pub async fn probe(self: &Arc<Self>, method: Method, url: &str) -> Result<u16, String> {
        let (_, head) = self.head_with(method, url, HeaderMap::new()).await?;
        Ok(head.status.as_u16())
    }

    /// `GET url` with `headers`, reading the whole answer (at most `max` bytes): the
    /// correlator's and the quota probes' calls.
    pub async fn get_all(
        self: &Arc<Self>,
        url: &str,
        headers: HeaderMap,
        max: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let (conn, head) = self.head_with(Method::GET, url, headers).await?;
        let body = conn.read_to_end(max).await?;
        Ok((head.status.as_u16(), body))
    }

    /// One hop of a document fetch (`GET url`): a redirect, a status that is not 2xx, or the
    /// whole body of at most `max` bytes.
    pub async fn get_hop(self: &Arc<Self>, url: &str, max: usize) -> Result<Hop, String> {
        let (conn, head) = self.head_with(Method::GET, url, HeaderMap::new()).await?;
        if head.status.is_redirection() {
            let location = head
                .headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok(Hop::Redirect {
                status: head.status,
                location,
            });
        }
        if !head.status.is_success() {
            return Ok(Hop::Status(head.status));
        }
        Ok(Hop::Body(conn.read_to_end(max).await?))
    }

    /// Sends a bodiless request and reads the response head.
    async fn head_with(
        self: &Arc<Self>,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<(UpConn<I>, ResponseHead), String> {
        let req = UpstreamRequest {
            method,
            url: url.to_owned(),
            headers,
            body: Bytes::new(),
        };
        let mut conn = Arc::clone(self).send(req).await.map_err(failure_text)?;
        loop {
            match conn.next_event().await {
                Ok(ResponseEvent::Head(head, _)) => return Ok((conn, head)),
                Ok(_) => continue,
                Err(f) => return Err(failure_text(f)),
            }
        }
    }

    /// A live pooled connection to `target`, or a new one. `true` when reused.
    async fn connect(
        &self,
        target: &Target,
    ) -> Result<(Stream<I::Tcp, I::Tls>, bool), UpstreamFailure> {
        if let Some(conn) = self.pool.checkout(&target.key, I::is_quiet) {
            return Ok((conn, true));
        }
        let failure = |name, message: String| UpstreamFailure::Connect {
            name,
            written: false,
            message,
        };
        let addrs = self
            .io
            .resolve(&target.host, target.port)
            .await
            .map_err(|e| failure(NetworkErrorName::Dns, format!("dns error: {e}")))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
        let mut tcp = None;
        for addr in addrs {
            match self.io.connect_tcp(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some(tcp) = tcp else {
            return Err(failure(
                NetworkErrorName::Connect,
                format!("tcp connect error: {last}"),
            ));
        };
        if !target.tls {
            return Ok((Stream::Plain(tcp), false));
        }
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| failure(NetworkErrorName::Tls, format!("invalid server name: {e}")))?;
        let conn = self
            .io
            .tls(name, tcp)
            .await
            .map_err(|e| failure(NetworkErrorName::Tls, format!("tls handshake error: {e}")))?;
        Ok((Stream::Tls(Box::new(conn)), false))
    }
}

impl<I: UpstreamIo> UpConn<I> {
    /// The next response event; errors are the failures the core expects. Cancel-safe: what
    /// was read stays in the decoder.
    pub fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ResponseEvent, UpstreamFailure>> {
        loop {
            if let Some(next) = self.buffered_event() {
                return Poll::Ready(next);
            }
            let read = crate::scratch::with_read_buffer(|chunk| {
                match Pin::new(&mut self.conn).poll_read(cx, chunk) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.reader.received(chunk.get(..n).unwrap_or_default());
                        Poll::Ready(Ok(n))
                    }
                    other => other,
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => self.reader.received_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.reader.received_eof();
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(UpstreamFailure::Read {
                        message: reset_text(&e.to_string()),
                    }));
                }
            }
        }
    }

    /// `ev`, or when it is a body chunk, it and the chunks decoded right after it from
    /// bytes already read, as one chunk of at most [`JOIN_MAX`] bytes. A streamed response
    /// frames each event as its own HTTP chunk; handed over one by one, the chunks of one
    /// read cost a turn of the drive loop and a write to the client each (eleven writes per
    /// call where one does). Bytes that arrived together stay together; none waits.
    fn join_bodies(&mut self, ev: ResponseEvent) -> ResponseEvent {
        let ResponseEvent::Body(first) = ev else {
            return ev;
        };
        let mut joined: Option<BytesMut> = None;
        loop {
            let next = match self.reader.next_event() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    self.pending = Some(Box::new(Err(e)));
                    break;
                }
            };
            let size = joined.as_ref().map_or(first.len(), BytesMut::len);
            match next {
                ResponseEvent::Body(more) if size + more.len() <= JOIN_MAX => {
                    joined
                        .get_or_insert_with(|| BytesMut::from(&first[..]))
                        .extend_from_slice(&more);
                }
                other => {
                    self.pending = Some(Box::new(Ok(other)));
                    break;
                }
            }
        }
        ResponseEvent::Body(joined.map_or(first, BytesMut::freeze))
    }

    /// The next response event when the bytes already read hold it; `None` when it needs
    /// another read.
    pub fn buffered_event(&mut self) -> Option<Result<ResponseEvent, UpstreamFailure>> {
        if let Some(next) = self.pending.take() {
            return Some(*next);
        }
        match self.reader.next_event() {
            Ok(Some(ev)) => Some(Ok(self.join_bodies(ev))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// The next response event, awaited.
    pub async fn next_event(&mut self) -> Result<ResponseEvent, UpstreamFailure> {
        future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The response was read to its end: the connection goes back to the pool when it can
    /// carry another request, and is closed otherwise.
    pub fn finish(self) {
        if self.reader.is_reusable() {
            self.client.pool.checkin(self.key, self.conn);
        }
    }

    /// Reads the rest of the body (at most `max` bytes), then [`UpConn::finish`]es.
    async fn read_to_end(mut self, max: usize) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            match self.next_event().await {
                Ok(ResponseEvent::Body(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err("length limit exceeded".to_owned());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(ResponseEvent::End) => {
                    self.finish();
                    return Ok(body);
                }
                Ok(ResponseEvent::Head(..)) => {}
                Err(f) => return Err(failure_text(f)),
            }
        }
    }
}

/// The header map of a control-plane call; a name or value that is not valid HTTP is an
/// error naming the (last) bad header.
pub fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    let mut bad = None;
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                map.append(n, v);
            }
            _ => bad = Some(format!("invalid header {name}")),
        }
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(map),
    }
}

async fn write_request<C: AsyncWrite + Unpin>(
    conn: &mut C,
    head: &[u8],
    body: &[u8],
) -> io::Result<()> {
    if body.len() <= COALESCE {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        write_flushed(conn, &all).await
    } else {
        write_flushed(conn, head).await?;
        write_flushed(conn, body).await
    }
}

async fn write_flushed<C: AsyncWrite + Unpin>(conn: &mut C, bytes: &[u8]) -> io::Result<()> {
    conn.write_all(bytes).await?;
    conn.flush().await
}

impl<T, S> AsyncRead for Stream<T, S>
where
    T: AsyncRead + Unpin,
    S: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T, S> AsyncWrite for Stream<T, S>
where
    T: AsyncWrite + Unpin,
    S: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

type Sending<I> = Pin<Box<dyn Future<Output = Result<UpConn<I>, UpstreamFailure>> + Send>>;

/// The upstream side of one exchange in a shell's drive loop: the attempt being sent, then
/// its response being read. Each outcome is fed to the exchange as the core expects, the
/// connection goes back to the pool at the response's end, and the request body's budget
/// charge is released once a head arrives (the exchange keeps the body only until then).
pub struct Attempt<I: UpstreamIo> {
    state: State<I>,
    /// The number of the attempt in `state` (its `UpstreamOp::Send`), carried by every
    /// input it yields so the exchange can tell a stale one.
    number: u32,
    charge: Option<BudgetCharge>,
}

enum State<I: UpstreamIo> {
    Idle,
    Sending(Sending<I>),
    /// `head` once the response head was fed.
    Reading {
        conn: UpConn<I>,
        head: bool,
    },
}

/// One input from the upstream side, for [`Attempt::feed`].
pub struct AttemptInput<I: UpstreamIo>(u32, Input<I>);

enum Input<I: UpstreamIo> {
    /// Boxed: the connection is several times the size of any other input, and inputs travel
    /// through the shells' select enums.
    Written(Result<Box<UpConn<I>>, UpstreamFailure>),
    Event(Result<ResponseEvent, UpstreamFailure>),
}

impl<I: UpstreamIo> Attempt<I> {
    /// No attempt yet; `charge` is released at the first response head (or when dropped).
    pub fn new(charge: BudgetCharge) -> Self {
        Attempt {
            state: State::Idle,
            number: 0,
            charge: Some(charge),
        }
    }

    /// Steps 1 and 2 of a drive loop's turn (`docs/style.md` §3): the exchange's storage
    /// operations (spooled and answered at once, `docs/spool.md` §2), then its upstream
    /// command.
    pub fn turn(&mut self, daemon: &Daemon, ex: &mut Exchange, client: &Arc<UpstreamClient<I>>) {
        self.command(daemon.drain_to_upstream(ex), client);
    }

    /// Carries out the exchange's upstream command: a new attempt replaces the current one,
    /// a cancel drops it.
    pub fn command(&mut self, op: Option<UpstreamOp>, client: &Arc<UpstreamClient<I>>) {
        match op {
            Some(UpstreamOp::Send { attempt, request }) => {
                self.number = attempt;
                self.state = State::Sending(Box::pin(Arc::clone(client).send(request)));
            }
            Some(UpstreamOp::Cancel) => self.state = State::Idle,
            None => {}
        }
    }

    /// Whether [`Attempt::poll_input`] can yield anything: an attempt is being sent, or a
    /// response is being read and the exchange takes its next event (the head is always
    /// read; body events only when `wants_body`).
    pub fn is_waiting(&self, wants_body: bool) -> bool {
        match &self.state {
            State::Sending(_) => true,
            State::Reading { head, .. } => !*head || wants_body,
            State::Idle => false,
        }
    }

    /// The next upstream input, if [`Attempt::is_waiting`]. Cancel-safe.
    pub fn poll_input(&mut self, cx: &mut Context<'_>, wants_body: bool) -> Poll<AttemptInput<I>> {
        if !self.is_waiting(wants_body) {
            return Poll::Pending;
        }
        match &mut self.state {
            State::Sending(fut) => fut
                .as_mut()
                .poll(cx)
                .map(|r| AttemptInput(self.number, Input::Written(r.map(Box::new)))),
            State::Reading { conn, .. } => conn
                .poll_event(cx)
                .map(|r| AttemptInput(self.number, Input::Event(r))),
            State::Idle => Poll::Pending,
        }
    }

    /// The next upstream input when it is already decoded or decodable from bytes already
    /// read (never a read, never a wait), if [`Attempt::is_waiting`] for it.
    pub fn buffered_input(&mut self, wants_body: bool) -> Option<AttemptInput<I>> {
        if !self.is_waiting(wants_body) {
            return None;
        }
        match &mut self.state {
            State::Reading { conn, .. } => conn
                .buffered_event()
                .map(|r| AttemptInput(self.number, Input::Event(r))),
            State::Sending(_) | State::Idle => None,
        }
    }

    /// Feeds `input` to `ex`.
    pub fn feed(&mut self, ex: &mut Exchange, input: AttemptInput<I>, now: CoreInstant) {
        let AttemptInput(n, input) = input;
        match input {
            Input::Written(Ok(conn)) => {
                self.state = State::Reading {
                    conn: *conn,
                    head: false,
                };
                ex.handle_upstream_written(n, now);
            }
            Input::Written(Err(f)) | Input::Event(Err(f)) => {
                self.state = State::Idle;
                ex.handle_upstream_error(n, f, now);
            }
            Input::Event(Ok(ResponseEvent::Head(head, _))) => {
                if let State::Reading { head: seen, .. } = &mut self.state {
                    *seen = true;
                }
                self.charge.take();
                ex.handle_upstream_head(n, head, now);
            }
            Input::Event(Ok(ResponseEvent::Body(data))) => ex.handle_upstream_body(n, data, now),
            Input::Event(Ok(ResponseEvent::End)) => {
                if let State::Reading { conn, .. } = std::mem::replace(&mut self.state, State::Idle)
                {
                    conn.finish();
                }
                ex.handle_upstream_end(n, now);
            }
        }
    }
}
