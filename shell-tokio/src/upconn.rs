//! The data-path upstream client: the core's HTTP/1.1 codec (`Target::request_head`,
//! `ResponseDecoder`) over tokio's `TcpStream` with TCP_NODELAY, tokio-rustls (ring) with the
//! platform's root certificates for `https`, and a small idle pool per authority. The same
//! client as the smol build's, on tokio.
//!
//! Why not hyper's client here, when the server side and the control-plane calls
//! (`upstream.rs`) use hyper: memory per open stream. Each hyper client connection
//! preallocates an 8 KiB read buffer, an 8 KiB head buffer and a 32-slot dispatch block of
//! about 9 KiB, whatever the traffic. With thousands of slow SSE streams those untouched
//! allocations became resident over time (the SK-1 soak drifted 11 % over 30 minutes and
//! glibc reported 62 KiB in use per stream). This client keeps one decoder and a buffer that
//! grows to what a read brings, so a stream costs what it carries.
//!
//! Failure classes follow hyper's: name resolution, TCP connect and TLS handshake failures
//! are `Connect` with `written: false`; anything after the connection is up is `Read`
//! (`reset_text`). Choices where the spec is silent are the smol client's:
//! * A pooled connection is checked with a non-blocking `peek` before reuse: EOF, an error
//!   or stray bytes drop it. If writing the request on a reused connection still fails, the
//!   request is written once more on a fresh connection (nothing was processed, as hyper's
//!   pool does for a connection closed under it).
//! * Idle connections live at most 90 s, at most 64 per authority (`cli::pool`).
//! * The TLS configuration (and the platform root store) is loaded on the first `https`
//!   request.
//! * A TLS peer that closes without `close_notify` ends a close-delimited body like a TCP EOF.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use agent_cli_proxy_cli::pool::IdlePool;
use agent_cli_proxy_core::errors::NetworkErrorName;
use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
use agent_cli_proxy_core::http1::{ResponseEvent, ResponseReader, Target, reset_text};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Bytes asked of the socket per read: chunks handed to the exchange stay this small.
const READ_CHUNK: usize = 16 * 1024;
/// Bodies up to this size are written together with the head in one write.
const COALESCE: usize = 64 * 1024;

/// The shared data-path client.
#[derive(Clone, Default)]
pub struct UpClient {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tls: OnceLock<TlsConnector>,
    pool: IdlePool<Io>,
}

/// A plain or TLS connection.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An upstream response being read, on the connection that carries it.
pub struct UpConn {
    io: Io,
    reader: ResponseReader,
    key: String,
    client: UpClient,
}

impl UpClient {
    /// Sends one attempt: connects (or reuses a pooled connection) and writes the whole
    /// request. `Ok` is the connection, ready for the response.
    pub async fn send(self, req: UpstreamRequest) -> Result<UpConn, UpstreamFailure> {
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
            let (mut io, reused) = self.connect(&target).await?;
            match write_request(&mut io, &head, &req.body).await {
                Ok(()) => {
                    return Ok(UpConn {
                        io,
                        reader: ResponseReader::new(&req.method),
                        key: target.key.clone(),
                        client: self.clone(),
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

    /// A live pooled connection to `target`, or a new one. `true` when reused.
    async fn connect(&self, target: &Target) -> Result<(Io, bool), UpstreamFailure> {
        if let Some(io) = self.inner.pool.checkout(&target.key, Io::is_quiet) {
            return Ok((io, true));
        }
        let failure = |name, message: String| UpstreamFailure::Connect {
            name,
            written: false,
            message,
        };
        let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| failure(NetworkErrorName::Dns, format!("dns error: {e}")))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
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
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return Ok((Io::Plain(tcp), false));
        }
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| failure(NetworkErrorName::Tls, format!("invalid server name: {e}")))?;
        let tls = self
            .inner
            .tls
            .get_or_init(|| TlsConnector::from(Arc::new(agent_cli_proxy_cli::tls::client_config())))
            .clone();
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| failure(NetworkErrorName::Tls, format!("tls handshake error: {e}")))?;
        Ok((Io::Tls(Box::new(stream)), false))
    }
}

impl UpConn {
    /// The next response event; errors are the failures the core expects. Cancel-safe: what
    /// was read stays in the connection's buffer.
    pub fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ResponseEvent, UpstreamFailure>> {
        loop {
            if let Some(ev) = self.reader.next_event()? {
                return Poll::Ready(Ok(ev));
            }
            // Through a stack chunk, so an idle stream holds no read buffer of its own.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if read.filled().is_empty() => self.reader.received_eof(),
                Poll::Ready(Ok(())) => self.reader.received(read.filled()),
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

    /// The next response event, awaited.
    pub async fn next_event(&mut self) -> Result<ResponseEvent, UpstreamFailure> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The response was read to its end: the connection goes back to the pool when it can
    /// carry another request, and is closed otherwise.
    pub fn finish(self) {
        if self.reader.is_reusable() {
            self.client.inner.pool.checkin(self.key, self.io);
        }
    }
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }

    /// True when the peer has neither closed nor sent anything unasked. The socket is
    /// non-blocking, so an empty receive queue is `WouldBlock`.
    fn is_quiet(&self) -> bool {
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(self.tcp()).peek(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn write_request(io: &mut Io, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.len() <= COALESCE {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        io.write_all(&all).await?;
    } else {
        io.write_all(head).await?;
        io.write_all(body).await?;
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, Method};
    use tokio::io::AsyncReadExt;

    fn request(url: String) -> UpstreamRequest {
        UpstreamRequest {
            method: Method::POST,
            url,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn connect_failures_are_not_written_and_named() {
        // Port 9 on loopback is closed on any sane test machine.
        let Err(err) = UpClient::default()
            .send(request("http://127.0.0.1:9/v1/messages".to_owned()))
            .await
        else {
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

    #[tokio::test]
    async fn a_finished_response_leaves_its_connection_for_the_next_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/x", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            seen
        });
        let client = UpClient::default();
        for _ in 0..2 {
            let mut conn = client.clone().send(request(url.clone())).await.unwrap();
            let ResponseEvent::Head(head, _) = conn.next_event().await.unwrap() else {
                panic!("no head first");
            };
            assert_eq!(head.status, 200);
            let ResponseEvent::Body(body) = conn.next_event().await.unwrap() else {
                panic!("no body");
            };
            assert_eq!(&body[..], b"ok");
            assert!(matches!(conn.next_event().await, Ok(ResponseEvent::End)));
            conn.finish();
        }
        // Both requests arrived on the one accepted connection, each framed afresh.
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2);
        for text in seen {
            assert!(
                text.starts_with("POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:"),
                "{text}"
            );
            assert!(text.ends_with("content-length: 2\r\n\r\n{}"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_reset_after_the_head_is_a_read_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                .await
                .unwrap();
        });
        let mut conn = UpClient::default().send(request(url)).await.unwrap();
        assert!(matches!(
            conn.next_event().await,
            Ok(ResponseEvent::Head(..))
        ));
        let mut failure = None;
        for _ in 0..3 {
            match conn.next_event().await {
                Ok(ResponseEvent::Body(_)) => continue,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        match failure {
            Some(UpstreamFailure::Read { message }) => {
                assert_eq!(message, "upstream connection reset");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
