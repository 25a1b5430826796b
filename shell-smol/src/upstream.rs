//! The upstream client on smol: the shared client (`agent_cli_proxy_cli::upstream`: framing,
//! pool, failure classes, retry, response reading) over `Async<TcpStream>` with TCP_NODELAY
//! and rustls (ring) through futures-rustls with the platform's root certificates for
//! `https`. It serves the data path and the control plane (probes, document fetch, the
//! correlator's and quota probes' calls) alike.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_cli::daemon::correlator::{BoxFuture, Hop, HttpGet};
use agent_cli_proxy_cli::upstream::{Stream, UpstreamClient, UpstreamIo, header_map};
use async_io::Async;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::pki_types::ServerName;

/// The shared client, for the data path and, as [`HttpGet`], the control plane.
#[derive(Clone)]
pub struct Upstream(pub Arc<UpstreamClient<SmolNet>>);

impl Upstream {
    /// A client with an empty pool; TLS is set up on first use.
    pub fn new() -> Upstream {
        Upstream(UpstreamClient::new(SmolNet))
    }
}

/// async-io's sockets and futures-rustls for the shared client.
pub struct SmolNet;

impl UpstreamIo for SmolNet {
    type Tcp = Async<TcpStream>;
    type Tls = TlsStream<Async<TcpStream>>;

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

    async fn tls(&self, name: ServerName<'static>, tcp: Async<TcpStream>) -> io::Result<Self::Tls> {
        let tls = TlsConnector::from(agent_cli_proxy_cli::tls::shared());
        tls.connect(name, tcp).await
    }

    fn is_quiet(conn: &Stream<Self::Tcp, Self::Tls>) -> bool {
        let tcp = match conn {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        };
        let mut probe = [0u8; 1];
        matches!(tcp.get_ref().peek(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Largest management or quota answer read (the legacy usage snapshot can be large).
const MAX_LOOP_BODY: usize = 33_554_432;

/// The control plane's calls, bounded by async-io's timer.
impl HttpGet for Upstream {
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>> {
        let headers = header_map(headers);
        let url = url.to_owned();
        Box::pin(async move {
            let call = async { self.0.get_all(&url, headers?, MAX_LOOP_BODY).await };
            bounded(timeout, call).await
        })
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>> {
        let url = url.to_owned();
        Box::pin(async move { bounded(timeout, self.0.get_hop(&url, max)).await })
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        Box::pin(blocking::unblock(job))
    }
}

/// `call`, or the timeout's error after `limit`.
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    crate::timer::timeout(limit, call)
        .await
        .ok_or_else(|| format!("timed out after {}ms", limit.as_millis()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_core::errors::NetworkErrorName;
    use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    #[test]
    fn connect_failures_are_not_written_and_named() {
        // Port 9 on loopback is closed on any sane test machine.
        let req = UpstreamRequest {
            method: Method::POST,
            url: "http://127.0.0.1:9/v1/messages".to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        };
        let Err(err) = async_io::block_on(Upstream::new().0.send(req)) else {
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
