//! The client side of one connection: the socket, its read buffer and the core's request
//! decoder, with the timers of `datapath.md` §1 that need the socket (body idle, write
//! stall) and the read-side watch that notices a client going away while its response is
//! pending (`datapath.md` §13.7).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use agent_cli_proxy_cli::daemon::pipeline::{BodyFailure, Respond};
use agent_cli_proxy_cli::scratch::with_read_buffer;
use agent_cli_proxy_core::head::Reply;
use agent_cli_proxy_core::http1::{
    self, BodyFraming, CONTINUE, FramingError, RequestDecoder, RequestEvent, Waiting, encode_reply,
};
use async_io::{Async, Timer};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWriteExt, future};

/// How long [`Client::linger_close`] drains, at most.
const LINGER: Duration = Duration::from_millis(500);
/// How many bytes [`Client::linger_close`] drains, at most.
const LINGER_BYTES: usize = 1_048_576;
/// Bytes read ahead (pipelined requests) while a response is pending; past this the shell
/// stops reading, and so stops noticing EOF, until the response is done.
const READ_AHEAD: usize = 256 * 1024;

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit.
    TooLarge,
    /// No body byte within the body idle time.
    Timeout,
    /// The body's framing is broken (or the client closed mid-body).
    Framing(FramingError),
    /// The socket failed.
    Gone,
}

impl BodyError {
    /// The response for this failure, if one can still be written.
    pub fn reply(self, respond: Respond, limit: u64) -> Option<Reply> {
        let failure = match self {
            BodyError::TooLarge => BodyFailure::TooLarge,
            BodyError::Timeout => BodyFailure::Timeout,
            BodyError::Framing(e) => BodyFailure::Framing(e.reply()),
            BodyError::Gone => return None,
        };
        Some(respond.body_failure(failure, limit))
    }
}

/// Why response bytes could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The socket failed (the client went away).
    Gone,
    /// No byte was accepted for the write-stall time.
    Stalled,
}

/// Whether the connection serves another request after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// The response is complete and the connection stays open.
    Keep,
    /// Close the connection.
    Close,
}

/// One client connection.
pub struct Client {
    stream: Async<TcpStream>,
    /// Bytes read and not yet decoded.
    pub buf: BytesMut,
    /// The request decoder.
    pub decoder: RequestDecoder,
    /// The peer address.
    pub peer: SocketAddr,
    eof: bool,
    continued: bool,
    /// Bytes of a response were written for the current request.
    pub responded: bool,
}

impl Client {
    /// Wraps an accepted socket.
    pub fn new(stream: Async<TcpStream>, peer: SocketAddr, limits: http1::Limits) -> Client {
        Client {
            stream,
            // Empty until the first read: reads land in the thread's scratch buffer and only
            // what arrived is kept, so each of thousands of open streams holds its request's bytes, not
            // a preallocated 16 KiB (SK-1 measured the difference in RSS per stream).
            buf: BytesMut::new(),
            decoder: RequestDecoder::new(limits),
            peer,
            eof: false,
            continued: false,
            responded: false,
        }
    }

    /// Reads once into the buffer; `Ok(0)` is EOF (reported to the decoder).
    pub async fn fill(&mut self) -> io::Result<usize> {
        loop {
            // The thread's read buffer, so an idle connection's task does not carry 16 KiB
            // in its state.
            let read = with_read_buffer(|chunk| match self.stream.get_ref().read(chunk) {
                Ok(n) => {
                    self.take_read(chunk.get(..n).unwrap_or_default());
                    Some(Ok(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Err(e) => Some(Err(e)),
            });
            match read {
                Some(result) => return result,
                None => self.stream.readable().await?,
            }
        }
    }

    /// Watches the read side while a response is pending: bytes that arrive are kept for
    /// the next request; `Ready` once the client closed or the socket failed.
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.eof {
                return Poll::Ready(());
            }
            if self.buf.len() >= READ_AHEAD {
                return Poll::Pending;
            }
            let read = with_read_buffer(|chunk| {
                let polled = Pin::new(&mut &self.stream).poll_read(cx, chunk);
                if let Poll::Ready(Ok(n)) = polled {
                    self.take_read(chunk.get(..n).unwrap_or_default());
                }
                polled
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => {
                    self.eof = true;
                    return Poll::Ready(());
                }
            }
        }
    }

    /// Writes all of `data`, failing when no byte is accepted for `stall`.
    pub async fn write_all(&mut self, mut data: &[u8], stall: Duration) -> Result<(), WriteError> {
        let mut timer = Timer::after(stall);
        while !data.is_empty() {
            let step = future::or(async { Some((&self.stream).write(data).await) }, async {
                (&mut timer).await;
                None
            })
            .await;
            match step {
                None => return Err(WriteError::Stalled),
                Some(Ok(0)) | Some(Err(_)) => return Err(WriteError::Gone),
                Some(Ok(n)) => {
                    data = data.get(n..).unwrap_or_default();
                    timer.set_after(stall);
                }
            }
        }
        Ok(())
    }

    /// Writes a complete core reply; the connection closes after it when the reply says so,
    /// when the request does not allow keep-alive, or when the request body was not read to
    /// its end.
    pub async fn send_reply(&mut self, mut reply: Reply, stall: Duration) -> After {
        if self.decoder.current().is_some() && self.decoder.waiting() != Waiting::Response {
            reply.close = true;
        }
        let out = encode_reply(&reply, self.decoder.current());
        self.responded = true;
        match self.write_all(&out.bytes, stall).await {
            Ok(()) if !out.close => After::Keep,
            _ => After::Close,
        }
    }

    /// The next body event of the current request: a chunk, or `None` at its end. Sends
    /// `100 Continue` first when the client waits for it.
    pub async fn next_body_chunk(&mut self, idle: Duration) -> Result<Option<Bytes>, BodyError> {
        self.send_continue_once(idle).await?;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(RequestEvent::Body(chunk))) => return Ok(Some(chunk)),
                Ok(Some(RequestEvent::End)) => return Ok(None),
                // A head while a body is expected cannot happen: the decoder releases the
                // next head only after the response.
                Ok(Some(RequestEvent::Head(..))) => return Err(BodyError::Gone),
                Ok(None) if self.decoder.waiting() != Waiting::Body => return Ok(None),
                Ok(None) => {}
                Err(e) => return Err(BodyError::Framing(e)),
            }
            match crate::timer::timeout(idle, self.fill()).await {
                None => return Err(BodyError::Timeout),
                Some(Ok(_)) => {}
                Some(Err(_)) => return Err(BodyError::Gone),
            }
        }
    }

    /// Reads the whole body, keeping at most `limit` bytes (`keep` false: dropping them).
    pub async fn read_body(
        &mut self,
        limit: u64,
        keep: bool,
        idle: Duration,
    ) -> Result<Bytes, BodyError> {
        let mut body = BytesMut::new();
        let mut total: u64 = 0;
        while let Some(chunk) = self.next_body_chunk(idle).await? {
            total = total.saturating_add(chunk.len() as u64);
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            if keep {
                body.extend_from_slice(&chunk);
            }
        }
        Ok(body.freeze())
    }

    /// Closes after a response that ends the connection: the write side first, then unread
    /// request bytes are drained for a short while, so the kernel does not answer them with
    /// a reset that could destroy the response before the client reads it (a 413, 414 or
    /// 431 sent while the client is still sending).
    pub async fn linger_close(&mut self) {
        let _ = self.stream.get_ref().shutdown(std::net::Shutdown::Write);
        let drain = async {
            let mut drained = 0usize;
            while drained < LINGER_BYTES {
                self.buf.clear();
                match self.fill().await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = crate::timer::timeout(LINGER, drain).await;
    }

    /// The current response is written: the decoder may release the next request.
    pub fn response_done(&mut self) {
        self.decoder.handle_response_done(false);
        self.continued = false;
        self.responded = false;
    }

    fn take_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            self.eof = true;
            self.decoder.handle_eof();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    async fn send_continue_once(&mut self, stall: Duration) -> Result<(), BodyError> {
        let wants = !self.continued
            && self.decoder.waiting() == Waiting::Body
            && self.buf.is_empty()
            && self.decoder.current().is_some_and(|c| {
                c.expects_continue
                    && !matches!(c.framing, BodyFraming::None | BodyFraming::Length(0))
            });
        if wants {
            self.continued = true;
            self.write_all(CONTINUE, stall)
                .await
                .map_err(|_| BodyError::Gone)?;
        }
        Ok(())
    }
}
