//! The response body handed to hyper: a complete buffer, or a bounded channel the drive loop
//! feeds (pull-driven: when the client stops reading, the channel fills and the drive loop
//! stops reading the upstream).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A frame or the instruction to cut the response (the connection closes without the
/// end-of-body marker).
///
/// Plain `Bytes`, not a `Frame`: tokio's channel preallocates a block of 32 slots per
/// channel, and a `Frame` (which can carry trailers, a `HeaderMap`) is three times the size
/// of `Bytes`. With thousands of open streams that block is a visible part of each stream's
/// memory (SK-1); the body never sends trailers.
pub type Item = Result<Bytes, Cut>;

/// The error that makes hyper abort a response mid-body.
#[derive(Debug)]
pub struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response cut")
    }
}

impl std::error::Error for Cut {}

/// Frames in flight between the drive loop and hyper: 4 × the upstream chunk size keeps
/// the buffered bytes per stream near the 64 KiB of `datapath.md` §13.4.
pub const CHANNEL_FRAMES: usize = 4;

/// A response body.
pub enum RespBody {
    /// A complete body.
    Full(Option<Bytes>),
    /// Frames from the drive loop.
    Channel(mpsc::Receiver<Item>),
}

impl RespBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> RespBody {
        RespBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// A streamed body and its sender.
    pub fn channel() -> (mpsc::Sender<Item>, RespBody) {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        (tx, RespBody::Channel(rx))
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match self.get_mut() {
            RespBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Channel(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|res| res.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RespBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Channel(_) => SizeHint::default(),
        }
    }
}
