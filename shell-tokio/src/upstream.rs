//! The upstream client on tokio: the shared client (`agent_cli_proxy_cli::upstream`:
//! framing, pool, failure classes, retry, response reading, the control-plane calls) over
//! tokio's `TcpStream` with TCP_NODELAY and tokio-rustls (ring) with the platform's root
//! certificates for `https`, with tokio's timer and blocking pool for the control plane.
//! Tokio's streams reach the shared client, which speaks futures-io, through [`Compat`].
//! It serves the data path and the control plane (probes, document fetch, the correlator's
//! and quota probes' calls) alike.
//!
//! Why not hyper's client, when the server side uses hyper: memory per open stream. Each hyper client connection
//! preallocates an 8 KiB read buffer, an 8 KiB head buffer and a 32-slot dispatch block of
//! about 9 KiB, whatever the traffic. With thousands of slow SSE streams those untouched
//! allocations became resident over time (the SK-1 soak drifted 11 % over 30 minutes and
//! glibc reported 62 KiB in use per stream). The shared client keeps one decoder and a
//! buffer that grows to what a read brings, so a stream costs what it carries.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::correlator::BoxFuture;
use agent_cli_proxy_cli::upstream::control::ControlRuntime;
use agent_cli_proxy_cli::upstream::{Stream, UpstreamIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Tokio's sockets and TLS for the shared client.
#[derive(Clone, Copy)]
pub struct TokioNet;

impl UpstreamIo for TokioNet {
    type Tcp = Compat<TcpStream>;
    type Tls = Compat<TlsStream<TcpStream>>;

    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<Self::Tcp> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok(Compat(tcp))
    }

    async fn tls(&self, name: ServerName<'static>, tcp: Self::Tcp) -> io::Result<Self::Tls> {
        let tls = TlsConnector::from(agent_cli_proxy_cli::tls::shared());
        Ok(Compat(tls.connect(name, tcp.0).await?))
    }

    /// The socket is non-blocking, so an empty receive queue is `WouldBlock`.
    fn is_quiet(conn: &Stream<Self::Tcp, Self::Tls>) -> bool {
        let tcp = match conn {
            Stream::Plain(s) => &s.0,
            Stream::Tls(s) => s.0.get_ref().0,
        };
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(tcp).peek(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
}

impl ControlRuntime for TokioNet {
    // An `async fn`, because `tokio::time::timeout` needs the runtime when called, not only
    // when polled.
    async fn timeout<F>(limit: Duration, f: F) -> Option<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        tokio::time::timeout(limit, f).await.ok()
    }

    fn unblock(job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }

    fn block_on<F: Future>(f: F) -> io::Result<F::Output> {
        Ok(crate::runtime(1)?.block_on(f))
    }
}

/// A tokio stream seen through futures-io's traits.
pub struct Compat<T>(T);

impl<T: AsyncRead + Unpin> futures_lite::AsyncRead for Compat<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut self.get_mut().0).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(read.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> futures_lite::AsyncWrite for Compat<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use agent_cli_proxy_cli::upstream::{UpConn, UpstreamClient, checks};
    use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
    use agent_cli_proxy_core::http1::ResponseEvent;
    use bytes::Bytes;
    use http::{HeaderMap, Method};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        assert_eq!(
            checks::refused_connect(UpstreamClient::new(TokioNet)).await,
            Ok(())
        );
    }

    /// A request sent to a one-shot server that answers `response` in one write.
    async fn answered_once(response: &'static [u8]) -> UpConn<TokioNet> {
        answered(response, None).await
    }

    /// A request sent to a one-shot server that answers `first` in one write, then, once
    /// `later`'s signal comes, its bytes in another.
    async fn answered(
        first: &'static [u8],
        later: Option<(tokio::sync::oneshot::Receiver<()>, &'static [u8])>,
    ) -> UpConn<TokioNet> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(first).await.unwrap();
            if let Some((go, rest)) = later {
                let _ = go.await;
                s.write_all(rest).await.unwrap();
            }
        });
        UpstreamClient::new(TokioNet)
            .send(request(url))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn chunks_read_together_are_handed_over_as_one_and_the_end_follows() {
        // Three SSE events, each its own HTTP chunk, in one write.
        let mut conn = answered_once(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
              transfer-encoding: chunked\r\n\r\n\
              7\r\ndata:a\n\r\n7\r\ndata:b\n\r\n7\r\ndata:c\n\r\n0\r\n\r\n",
        )
        .await;
        assert!(matches!(
            conn.next_event().await,
            Ok(ResponseEvent::Head(..))
        ));
        let mut bodies = Vec::new();
        loop {
            match conn.next_event().await.unwrap() {
                ResponseEvent::Body(b) => bodies.push(b),
                ResponseEvent::End => break,
                ResponseEvent::Head(..) => panic!("a second head"),
            }
        }
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert_eq!(&bodies[0][..], b"data:a\ndata:b\ndata:c\n");
    }

    #[tokio::test]
    async fn the_body_read_with_the_head_is_there_without_another_read() {
        let mut conn = answered_once(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
              transfer-encoding: chunked\r\n\r\n\
              7\r\ndata:a\n\r\n7\r\ndata:b\n\r\n0\r\n\r\n",
        )
        .await;
        assert!(matches!(
            conn.next_event().await,
            Ok(ResponseEvent::Head(..))
        ));
        let Some(Ok(ResponseEvent::Body(body))) = conn.buffered_event() else {
            panic!("the events came with the head");
        };
        assert_eq!(&body[..], b"data:a\ndata:b\n");
        assert!(matches!(
            conn.buffered_event(),
            Some(Ok(ResponseEvent::End))
        ));
    }

    #[tokio::test]
    async fn nothing_is_buffered_when_only_the_head_has_arrived() {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut conn = answered(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Some((go_rx, b"2\r\nab\r\n0\r\n\r\n")),
        )
        .await;
        assert!(matches!(
            conn.next_event().await,
            Ok(ResponseEvent::Head(..))
        ));
        assert!(conn.buffered_event().is_none(), "the body is not sent yet");
        go_tx.send(()).unwrap();
        let Ok(ResponseEvent::Body(body)) = conn.next_event().await else {
            panic!("the body, read once sent");
        };
        assert_eq!(&body[..], b"ab");
    }

    #[tokio::test]
    async fn a_framing_error_after_joined_chunks_comes_after_their_bytes() {
        // Two good chunks, then a chunk size that is not hex.
        let mut conn = answered_once(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              2\r\nab\r\n2\r\ncd\r\nzz\r\n",
        )
        .await;
        assert!(matches!(
            conn.next_event().await,
            Ok(ResponseEvent::Head(..))
        ));
        let Ok(ResponseEvent::Body(body)) = conn.next_event().await else {
            panic!("the good bytes first");
        };
        assert_eq!(&body[..], b"abcd");
        assert!(matches!(
            conn.next_event().await,
            Err(UpstreamFailure::Read { .. })
        ));
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
        let client = UpstreamClient::new(TokioNet);
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
        let mut conn = UpstreamClient::new(TokioNet)
            .send(request(url))
            .await
            .unwrap();
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
