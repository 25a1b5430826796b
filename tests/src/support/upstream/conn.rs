//! Connection IO of the fake upstream: reading requests (httparse heads, content-length and
//! chunked bodies) and writing responses in exact pieces, while watching for the peer
//! closing.

use std::io;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest request head accepted; anything bigger is a harness misuse, answered by closing.
const MAX_HEAD: usize = 1 << 20;
/// Largest request body accepted (the proxy's default limit is 25 000 000 bytes).
const MAX_BODY: usize = 256 << 20;
const MAX_HEADERS: usize = 256;

/// A request read off the wire.
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` requests default to closing the connection.
    pub http10: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn wants_close(&self) -> bool {
        let close = self
            .header_all("connection")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        close || self.http10
    }
}

/// Both halves of one accepted connection plus bytes read but not yet consumed.
pub(crate) struct Conn {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    buf: Vec<u8>,
    eof: bool,
    /// Split every write into pieces of at most this many bytes (`x-fake-chunk`).
    pub piece: Option<usize>,
}

/// What ended a wait on the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The time passed.
    Elapsed,
    /// The peer closed or reset the connection.
    PeerClosed,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        // Separate writes must leave as separate segments for `x-fake-chunk` to mean anything.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Conn {
            read,
            write,
            buf: Vec::new(),
            eof: false,
            piece: None,
        }
    }

    /// Reads the next request; `Ok(None)` when the peer closed before sending a byte of it.
    pub async fn read_request(&mut self) -> io::Result<Option<Request>> {
        let (head, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("request head too large"));
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        self.buf.drain(..head_len);
        let chunked = head
            .headers
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .flat_map(|(_, v)| v.split(','))
            .next_back()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            self.read_chunked().await?
        } else {
            let length = match head.header("content-length") {
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| invalid("bad content-length"))?,
                None => 0,
            };
            if length > MAX_BODY {
                return Err(invalid("request body too large"));
            }
            self.read_exact_body(length).await?
        };
        Ok(Some(Request { body, ..head }))
    }

    /// Reads more bytes into the buffer; 0 means the peer closed its side.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut tmp = [0u8; 16 * 1024];
        let n = self.read.read(&mut tmp).await?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Waits `duration`, noticing a peer close meanwhile. Bytes that arrive (a pipelined
    /// request) are kept for the next `read_request`.
    pub async fn wait(&mut self, duration: Duration) -> Waited {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            if self.eof {
                // The peer half-closed; it may still read, so keep time as scripted.
                tokio::time::sleep_until(deadline).await;
                return Waited::Elapsed;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Waited::Elapsed,
                res = self.fill() => match res {
                    Ok(0) | Err(_) => return Waited::PeerClosed,
                    Ok(_) => {}
                },
            }
        }
    }

    /// Waits until the peer closes the connection (a stall); never returns otherwise.
    pub async fn wait_for_close(&mut self) {
        loop {
            match self.fill().await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Writes `bytes`, in pieces of `self.piece` bytes when set.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.piece {
            Some(size) if size > 0 => {
                for piece in bytes.chunks(size) {
                    self.write.write_all(piece).await?;
                    self.write.flush().await?;
                    // Give the segment a chance to leave before the next one is queued.
                    tokio::task::yield_now().await;
                }
                Ok(())
            }
            _ => self.write.write_all(bytes).await,
        }
    }

    /// Closes with RST: zero linger, then close without a prior FIN.
    pub fn reset(self) {
        if let Ok(stream) = self.read.reunite(self.write) {
            let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    }

    /// Closes cleanly (FIN after all written bytes).
    pub async fn close(mut self) {
        let _ = self.write.shutdown().await;
    }

    async fn read_exact_body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < length {
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..length).collect())
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailer section: header lines until an empty one.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("request body too large"));
            }
            body.extend(self.read_exact_body(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }

    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return String::from_utf8(line).map_err(|_| invalid("non-UTF-8 chunk line"));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// Parses a complete request head at the start of `buf`; `None` when more bytes are needed.
fn parse_head(buf: &[u8]) -> io::Result<Option<(Request, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req
        .parse(buf)
        .map_err(|e| invalid(&format!("bad request head: {e}")))?;
    let httparse::Status::Complete(len) = status else {
        return Ok(None);
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let request = Request {
        method: req.method.unwrap_or("GET").to_owned(),
        target: req.path.unwrap_or("/").to_owned(),
        http10: req.version == Some(0),
        headers,
        body: Vec::new(),
    };
    Ok(Some((request, len)))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}
