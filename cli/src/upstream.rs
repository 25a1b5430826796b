//! The data-path upstream client's policy, shared by both shells: request framing by the
//! core's codec (`Target::request_head`), the idle pool, address fallback, failure classes
//! and the retry of a write that failed on a reused connection. A shell supplies the socket
//! work through [`UpstreamIo`] and reads responses with the core's `ResponseReader`.
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

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use agent_cli_proxy_core::errors::NetworkErrorName;
use agent_cli_proxy_core::exchange::{UpstreamFailure, UpstreamRequest};
use agent_cli_proxy_core::http1::{ResponseReader, Target, reset_text};
use rustls::pki_types::ServerName;

use crate::pool::IdlePool;

/// Bodies up to this size are written together with the head in one write.
pub const COALESCE: usize = 64 * 1024;

/// The socket work of an upstream connection, on the shell's runtime.
pub trait UpstreamIo: Send + Sync + 'static {
    /// A connected TCP stream (TCP_NODELAY set).
    type Tcp: Send;
    /// A plain or TLS connection that carries requests.
    type Conn: Send + 'static;

    /// The addresses of `host:port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;

    /// A TCP connection to `addr`, with TCP_NODELAY.
    fn connect_tcp(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// `tcp` as a plain `http` connection.
    fn plain(&self, tcp: Self::Tcp) -> Self::Conn;

    /// The TLS handshake for `name` over `tcp` (platform roots, `crate::tls`).
    fn tls(
        &self,
        name: ServerName<'static>,
        tcp: Self::Tcp,
    ) -> impl Future<Output = io::Result<Self::Conn>> + Send;

    /// True when the peer has neither closed nor sent anything unasked.
    fn is_quiet(conn: &Self::Conn) -> bool;

    /// Writes all of `bytes`, then flushes.
    fn write_all(
        conn: &mut Self::Conn,
        bytes: &[u8],
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// A request written on a connection, ready for its response.
pub struct Sent<C> {
    /// The connection.
    pub conn: C,
    /// The decoder of the response to this request.
    pub reader: ResponseReader,
    /// The pool key, for [`UpstreamClient::finish`].
    pub key: String,
}

/// The shared client: the shell's IO plus an idle pool.
pub struct UpstreamClient<I: UpstreamIo> {
    io: I,
    pool: IdlePool<I::Conn>,
}

impl<I: UpstreamIo> UpstreamClient<I> {
    /// A client over `io` with an empty pool.
    pub fn new(io: I) -> Self {
        UpstreamClient {
            io,
            pool: IdlePool::default(),
        }
    }

    /// Sends one attempt: connects (or reuses a pooled connection) and writes the whole
    /// request.
    pub async fn send(&self, req: UpstreamRequest) -> Result<Sent<I::Conn>, UpstreamFailure> {
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
            match write_request::<I>(&mut conn, &head, &req.body).await {
                Ok(()) => {
                    return Ok(Sent {
                        conn,
                        reader: ResponseReader::new(&req.method),
                        key: target.key.clone(),
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

    /// The response on `conn` was read to its end: the connection goes back to the pool
    /// when it can carry another request, and is closed otherwise.
    pub fn finish(&self, key: String, conn: I::Conn, reader: &ResponseReader) {
        if reader.is_reusable() {
            self.pool.checkin(key, conn);
        }
    }

    /// A live pooled connection to `target`, or a new one. `true` when reused.
    async fn connect(&self, target: &Target) -> Result<(I::Conn, bool), UpstreamFailure> {
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
            return Ok((self.io.plain(tcp), false));
        }
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| failure(NetworkErrorName::Tls, format!("invalid server name: {e}")))?;
        let conn = self
            .io
            .tls(name, tcp)
            .await
            .map_err(|e| failure(NetworkErrorName::Tls, format!("tls handshake error: {e}")))?;
        Ok((conn, false))
    }
}

async fn write_request<I: UpstreamIo>(
    conn: &mut I::Conn,
    head: &[u8],
    body: &[u8],
) -> io::Result<()> {
    if body.len() <= COALESCE {
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        I::write_all(conn, &all).await
    } else {
        I::write_all(conn, head).await?;
        I::write_all(conn, body).await
    }
}
