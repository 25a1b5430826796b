//! The upstream client on smol: the shared client (`agent_cli_proxy_cli::upstream`: framing,
//! pool, failure classes, retry, response reading, the control-plane calls) over
//! `Async<TcpStream>` with TCP_NODELAY and rustls (ring) through futures-rustls with the
//! platform's root certificates for `https`, with async-io's timer and the `blocking` pool
//! for the control plane. It serves the data path and the control plane (probes, document
//! fetch, the correlator's and quota probes' calls) alike.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::correlator::BoxFuture;
use agent_cli_proxy_cli::upstream::control::ControlRuntime;
use agent_cli_proxy_cli::upstream::{Stream, UpstreamIo};
use async_io::Async;
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::pki_types::ServerName;

/// async-io's sockets and futures-rustls for the shared client.
#[derive(Clone, Copy)]
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

impl ControlRuntime for SmolNet {
    fn timeout<F>(limit: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        crate::timer::timeout(limit, f)
    }

    fn unblock(job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        Box::pin(blocking::unblock(job))
    }

    fn block_on<F: Future>(f: F) -> io::Result<F::Output> {
        Ok(async_io::block_on(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_cli::upstream::{UpstreamClient, checks};

    #[test]
    fn connect_failures_are_not_written_and_named() {
        let checked = async_io::block_on(checks::refused_connect(UpstreamClient::new(SmolNet)));
        assert_eq!(checked, Ok(()));
    }
}
