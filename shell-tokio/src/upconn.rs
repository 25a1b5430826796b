//! The data-path upstream client on tokio: the shared policy
//! (`agent_cli_proxy_cli::upstream`: framing, pool, failure classes, retry) over tokio's
//! `TcpStream` with TCP_NODELAY and tokio-rustls (ring) with the platform's root
//! certificates for `https`; responses are read with the core's `ResponseReader`.
//!
//! Why not hyper's client here, when the server side and the control-plane calls
//! (`upstream.rs`) use hyper: memory per open stream. Each hyper client connection
//! preallocates an 8 KiB read buffer, an 8 KiB head buffer and a 32-slot dispatch block of
//! about 9 KiB, whatever the traffic. With thousands of slow SSE streams those untouched
//! allocations became resident over time (the SK-1 soak drifted 11 % over 30 minutes and
//! glibc reported 62 KiB in use per stream). This client keeps one decoder and a buffer that
//! grows to what a read brings, so a stream costs what it carries.
//!
//! Choices where the spec is silent: the TLS configuration (and the platform root store) is
//! loaded on the first `https` request; a TLS peer that closes without `close_notify` ends a
//! close-delimited body like a TCP EOF.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use agent_cli_proxy_cli::upstream::{Sent, UpstreamClient, UpstreamIo};
use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
use agent_cli_proxy_core::http1::{ResponseEvent, ResponseReader, reset_text};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Bytes asked of the socket per read: chunks handed to the exchange stay this small.
const READ_CHUNK: usize = 16 * 1024;

/// The shared data-path client.
#[derive(Clone)]
pub struct UpClient {
    inner: Arc<UpstreamClient<TokioNet>>,
}

impl Default for UpClient {
    fn default() -> Self {
        UpClient {
            inner: Arc::new(UpstreamClient::new(TokioNet::default())),
        }
    }
}

/// Tokio's sockets and TLS for the shared client.
#[derive(Default)]
pub struct TokioNet {
    tls: OnceLock<TlsConnector>,
}

/// A plain or TLS connection.
pub enum Io {
    /// `http`.
    Plain(TcpStream),
    /// `https`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamIo for TokioNet {
    type Tcp = TcpStream;
    type Conn = Io;

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    fn plain(&self, tcp: TcpStream) -> Io {
        Io::Plain(tcp)
    }

    async fn tls(&self, name: ServerName<'static>, tcp: TcpStream) -> io::Result<Io> {
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
    client: UpClient,
}

impl UpClient {
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
        self.client.inner.finish(self.key, self.io, &self.reader);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use agent_cli_proxy_core::errors::NetworkErrorName;
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
