//! The upstream HTTP client on smol: the shared policy (`agent_cli_proxy_cli::upstream`:
//! framing, pool, failure classes, retry) over `Async<TcpStream>` with TCP_NODELAY and rustls
//! (ring) through futures-rustls with the platform's root certificates for `https`;
//! responses are read with the core's `ResponseReader`. Redirects are never followed on the
//! data path (the core turns a 3xx into E20); the pricing fetch follows at most 5.
//!
//! Choices where the spec is silent: the TLS configuration (and the platform root store) is
//! loaded on the first `https` request, which keeps an `http`-only daemon's memory small; a
//! TLS peer that closes without `close_notify` ends a close-delimited body like a TCP EOF.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::correlator::Hop;
use agent_cli_proxy_cli::upstream::{Sent, UpstreamClient, UpstreamIo};
use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
use agent_cli_proxy_core::head::ResponseHead;
use agent_cli_proxy_core::http1::{ResponseEvent, ResponseReader, failure_text, reset_text};
use async_io::Async;
use bytes::Bytes;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncWriteExt, future};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use http::header::LOCATION;
use http::{HeaderMap, Method};
use rustls::pki_types::ServerName;

/// Bytes asked of the socket per read: chunks handed to the exchange stay this small.
const READ_CHUNK: usize = 16 * 1024;

/// The shared upstream client.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<UpstreamClient<SmolNet>>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}

/// async-io's sockets and futures-rustls for the shared client.
#[derive(Default)]
pub struct SmolNet {
    tls: OnceLock<TlsConnector>,
}

/// A plain or TLS connection.
pub enum Io {
    /// `http`.
    Plain(Async<TcpStream>),
    /// `https`.
    Tls(Box<TlsStream<Async<TcpStream>>>),
}

impl UpstreamIo for SmolNet {
    type Tcp = Async<TcpStream>;
    type Conn = Io;

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let host = host.to_owned();
        blocking::unblock(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        })
        .await
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        let tcp = Async::<TcpStream>::connect(addr).await?;
        let _ = tcp.get_ref().set_nodelay(true);
        Ok(tcp)
    }

    fn plain(&self, tcp: Async<TcpStream>) -> Io {
        Io::Plain(tcp)
    }

    async fn tls(&self, name: ServerName<'static>, tcp: Async<TcpStream>) -> io::Result<Io> {
        let tls = self
            .tls
            .get_or_init(|| TlsConnector::from(Arc::new(agent_cli_proxy_cli::tls::client_config())))
            .clone();
        Ok(Io::Tls(Box::new(tls.connect(name, tcp).await?)))
    }

    fn is_quiet(conn: &Io) -> bool {
        conn.is_quiet()
    }

    async fn write_all(conn: &mut Io, bytes: &[u8]) -> io::Result<()> {
        conn.write_all(bytes).await?;
        conn.flush().await
    }
}

/// An upstream response being read, on the connection that carries it.
pub struct UpConn {
    io: Io,
    reader: ResponseReader,
    key: String,
    client: Upstream,
}

impl Upstream {
    /// An empty client; TLS is set up on first use.
    pub fn new() -> Upstream {
        Upstream {
            inner: Arc::new(UpstreamClient::new(SmolNet::default())),
        }
    }

    /// Sends one attempt: connects (or reuses a pooled connection) and writes the whole
    /// request. `Ok` is the connection, ready for the response.
    pub async fn send(self, req: UpstreamRequest) -> Result<UpConn, UpstreamFailure> {
        let Sent { conn, reader, key } = self.inner.send(req).await?;
        Ok(UpConn {
            io: conn,
            reader,
            key,
            client: self,
        })
    }

    /// A bodiless probe (`/ready`'s `HEAD <url>/health`, `doctor`): the status or the error.
    pub async fn probe(&self, method: Method, url: &str) -> Result<u16, String> {
        let (_, head) = self.head_of(method, url).await?;
        Ok(head.status.as_u16())
    }

    /// `GET url` with `headers`, reading the whole answer (at most `max` bytes): the
    /// correlator's and the quota probes' calls.
    pub async fn get_all(
        &self,
        url: &str,
        headers: HeaderMap,
        max: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let (mut conn, head) = self.head_with(Method::GET, url, headers).await?;
        let mut body = Vec::new();
        loop {
            match future::poll_fn(|cx| conn.poll_event(cx)).await {
                Ok(ResponseEvent::Body(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err("length limit exceeded".to_owned());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(ResponseEvent::End) => {
                    conn.finish();
                    return Ok((head.status.as_u16(), body));
                }
                Ok(ResponseEvent::Head(..)) => {}
                Err(f) => return Err(failure_text(f)),
            }
        }
    }

    /// Sends a bodiless request and reads the response head.
    async fn head_of(&self, method: Method, url: &str) -> Result<(UpConn, ResponseHead), String> {
        self.head_with(method, url, HeaderMap::new()).await
    }

    async fn head_with(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<(UpConn, ResponseHead), String> {
        let req = UpstreamRequest {
            method,
            url: url.to_owned(),
            headers,
            body: Bytes::new(),
        };
        let mut conn = self.clone().send(req).await.map_err(failure_text)?;
        loop {
            match future::poll_fn(|cx| conn.poll_event(cx)).await {
                Ok(ResponseEvent::Head(head, _)) => return Ok((conn, head)),
                Ok(_) => continue,
                Err(f) => return Err(failure_text(f)),
            }
        }
    }
}

impl UpConn {
    /// The next response event; errors are the failures the core expects.
    pub fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ResponseEvent, UpstreamFailure>> {
        loop {
            if let Some(ev) = self.reader.next_event()? {
                return Poll::Ready(Ok(ev));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match Pin::new(&mut self.io).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => self.reader.received_eof(),
                Poll::Ready(Ok(n)) => self.reader.received(chunk.get(..n).unwrap_or_default()),
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

    /// The response was read to its end: the connection goes back to the pool when it can
    /// carry another request, and is closed otherwise.
    pub fn finish(self) {
        self.client.inner.finish(self.key, self.io, &self.reader);
    }
}

impl Io {
    fn tcp(&self) -> &Async<TcpStream> {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }

    /// True when the peer has neither closed nor sent anything unasked.
    fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp().get_ref().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Largest management or quota answer read (the legacy usage snapshot can be large).
const MAX_LOOP_BODY: usize = 33_554_432;

impl agent_cli_proxy_cli::daemon::correlator::HttpGet for Upstream {
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'_, Result<(u16, Vec<u8>), String>>
    {
        let mut map = HeaderMap::new();
        let mut bad = None;
        for (name, value) in headers {
            match (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                http::header::HeaderValue::from_str(value),
            ) {
                (Ok(n), Ok(v)) => {
                    map.append(n, v);
                }
                _ => bad = Some(format!("invalid header {name}")),
            }
        }
        let url = url.to_owned();
        Box::pin(async move {
            if let Some(e) = bad {
                return Err(e);
            }
            crate::timer::timeout(timeout, self.get_all(&url, map, MAX_LOOP_BODY))
                .await
                .ok_or_else(|| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: Duration,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'_, Result<Hop, String>> {
        let url = url.to_owned();
        Box::pin(async move {
            let call = async {
                let (mut conn, head) = self.head_of(Method::GET, &url).await?;
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
                let mut body = Vec::new();
                loop {
                    match future::poll_fn(|cx| conn.poll_event(cx)).await {
                        Ok(ResponseEvent::Body(chunk)) => {
                            if body.len() + chunk.len() > max {
                                return Err("length limit exceeded".to_owned());
                            }
                            body.extend_from_slice(&chunk);
                        }
                        Ok(ResponseEvent::End) => {
                            conn.finish();
                            return Ok(Hop::Body(body));
                        }
                        Ok(ResponseEvent::Head(..)) => {}
                        Err(f) => return Err(failure_text(f)),
                    }
                }
            };
            crate::timer::timeout(timeout, call)
                .await
                .ok_or_else(|| format!("timed out after {}ms", timeout.as_millis()))?
        })
    }

    fn run_blocking(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> agent_cli_proxy_cli::daemon::correlator::BoxFuture<'static, ()> {
        Box::pin(blocking::unblock(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_core::errors::NetworkErrorName;

    #[test]
    fn connect_failures_are_not_written_and_named() {
        // Port 9 on loopback is closed on any sane test machine.
        let up = Upstream::new();
        let req = UpstreamRequest {
            method: Method::POST,
            url: "http://127.0.0.1:9/v1/messages".to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        };
        let Err(err) = async_io::block_on(up.send(req)) else {
            panic!("connected to a closed port");
        };
        match err {
            UpstreamFailure::Connect { name, written, .. } => {
                assert_eq!(name, NetworkErrorName::Connect);
                assert!(!written);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
