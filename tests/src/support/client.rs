//! Clients of the black-box suites: a one-shot [`request`], the SSE client [`SseRequest`],
//! the raw-socket [`RawConn`] for framing cases, the [`SlowReader`], and latency recording
//! with [`Latency`] and [`print_figure`].
//!
//! Every client speaks HTTP/1.1 over its own TCP socket (no HTTP library), so what the test
//! sees is exactly what the proxy wrote. A source address from `127.0.0.0/8` can be chosen
//! for distinct peers.

mod figures;
mod parse;
mod sse;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub use self::figures::{Latency, print_duration_figure, print_figure};
pub use self::sse::{BodyEnd, SseEvent, SseOutcome, SseRequest};

/// How long the one-shot helpers wait for a whole response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request with `connection: close` and reads the whole response (30 s limit).
///
/// `host` and `content-length` are added unless given in `headers`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let wire = build_request(addr, method, path, headers, body);
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&wire).await?;
        let mut buf = Vec::new();
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut tmp).await?;
            buf.extend_from_slice(&tmp[..n]);
            if let Some(response) = complete(&buf, method, n == 0)? {
                return Ok(response);
            }
        }
    };
    tokio::time::timeout(DEFAULT_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no complete response in time"))?
}

/// Blocking form of [`request`] for tests without a runtime (and for use inside
/// `spawn_blocking`).
pub fn request_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_blocking_timeout(addr, method, path, headers, body, DEFAULT_TIMEOUT)
}

/// [`request_blocking`] with a limit for the connect and for each read.
pub fn request_blocking_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let wire = build_request(addr, method, path, headers, body);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(&wire)?;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut tmp)?;
        buf.extend_from_slice(&tmp[..n]);
        if let Some(response) = complete(&buf, method, n == 0)? {
            return Ok(response);
        }
    }
}

/// The full wire bytes of a simple request (also useful to start a [`RawConn`] case).
pub fn build_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has("content-length") && !has("transfer-encoding") && (!body.is_empty() || method != "GET")
    {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    if !has("connection") {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body);
    wire
}

/// A raw TCP connection for framing cases: send arbitrary bytes, read what comes back.
pub struct RawConn {
    stream: TcpStream,
    started: Instant,
}

/// What a [`RawConn`] read.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    /// Every byte received, unparsed.
    pub bytes: Vec<u8>,
    /// The peer closed the connection (FIN or RST) before the timeout.
    pub closed: bool,
    /// The close was a reset (the read failed rather than returning end of file).
    pub reset: bool,
    /// Time from connecting to the close (or the timeout).
    pub elapsed: Duration,
}

impl RawResponse {
    /// The status of every complete response in `bytes`, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses().iter().map(|r| r.status).collect()
    }

    /// Every complete response in `bytes`, in order (a close-delimited last body is complete
    /// only when the peer closed).
    pub fn responses(&self) -> Vec<Response> {
        parse::parse_all(&self.bytes, self.closed)
    }
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<RawConn> {
        RawConn::connect_from(addr, None).await
    }

    /// Connects to `addr` from source address `source` (e.g. `127.0.0.2`), port chosen by
    /// the kernel.
    pub async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<RawConn> {
        let stream = connect(addr, source, None).await?;
        Ok(RawConn {
            stream,
            started: Instant::now(),
        })
    }

    /// Writes `bytes` in one write.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads until the peer closes or `timeout` passes.
    pub async fn read_until_close(mut self, timeout: Duration) -> RawResponse {
        let mut out = RawResponse::default();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    out.closed = true;
                    break;
                }
                Ok(Ok(n)) => out.bytes.extend_from_slice(&tmp[..n]),
                Ok(Err(_)) => {
                    out.closed = true;
                    out.reset = true;
                    break;
                }
            }
        }
        out.elapsed = self.started.elapsed();
        out
    }

    /// Reads whatever arrives within `window` without waiting for a close.
    pub async fn read_for(&mut self, window: Duration) -> io::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + window;
        let mut bytes = Vec::new();
        let mut tmp = vec![0u8; 64 * 1024];
        while let Ok(res) = tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
            let n = res?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&tmp[..n]);
        }
        Ok(bytes)
    }
}

/// Connects, sends `bytes`, and reads until the peer closes or `timeout` passes.
pub async fn raw_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<RawResponse> {
    let mut conn = RawConn::connect(addr).await?;
    conn.send(bytes).await?;
    Ok(conn.read_until_close(timeout).await)
}

/// A client with a small receive buffer that sends a request and then does not read, so the
/// proxy's writes stall (RQ-F9).
pub struct SlowReader {
    conn: RawConn,
}

impl SlowReader {
    /// Connects with `SO_RCVBUF = recv_buffer` (set before connecting, so the window is
    /// small from the start; the kernel may round it up) and sends `request`.
    pub async fn start(
        addr: SocketAddr,
        recv_buffer: u32,
        request: &[u8],
    ) -> io::Result<SlowReader> {
        let mut stream = connect(addr, None, Some(recv_buffer)).await?;
        stream.write_all(request).await?;
        Ok(SlowReader {
            conn: RawConn {
                stream,
                started: Instant::now(),
            },
        })
    }

    /// Starts reading at last: drains until the peer closes or `timeout` passes.
    pub async fn drain(self, timeout: Duration) -> RawResponse {
        self.conn.read_until_close(timeout).await
    }
}

/// Connects with an optional source address and receive-buffer size.
pub(crate) async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    recv_buffer: Option<u32>,
) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn complete(buf: &[u8], method: &str, eof: bool) -> io::Result<Option<Response>> {
    let head_request = method.eq_ignore_ascii_case("HEAD");
    match parse::parse_response(buf, head_request, eof) {
        Ok(Some((response, _))) => Ok(Some(response)),
        Ok(None) if eof => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection closed after {} bytes of an incomplete response",
                buf.len()
            ),
        )),
        Ok(None) => Ok(None),
        Err(message) => Err(io::Error::new(io::ErrorKind::InvalidData, message)),
    }
}
