//! Chunked transfer coding: a byte-at-a-time decoder for the control bytes (so any split
//! of the input decodes the same, with no line buffer to bound), zero-copy data chunks,
//! and the encoder side.

use bytes::{Buf, Bytes, BytesMut};

use super::{ChunkError, FramingError};

/// The last chunk with an empty trailer section, ending a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest run of chunk-extension bytes accepted on one chunk line.
const MAX_EXTENSION: usize = 4096;

/// What the chunked decoder produced.
#[derive(Debug)]
pub(crate) enum ChunkEvent {
    /// Body bytes.
    Data(Bytes),
    /// The last chunk and its trailer section were consumed.
    End,
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    extension_len: usize,
    trailer_len: usize,
    max_trailer: usize,
    name: TrailerName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits.
    Size(u64),
    /// Whitespace after the digits.
    SizeSpace(u64),
    /// Inside chunk extensions (ignored).
    Extension(u64),
    /// CR seen at the end of the size line.
    SizeLf(u64),
    /// Chunk data left to pass on.
    Data(u64),
    /// Data done, CR expected.
    DataCr,
    /// CR after data seen, LF expected.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerField,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR at the end of a trailer field line seen.
    TrailerLf,
    /// CR of the final empty line seen.
    FinalLf,
    /// `End` has been reported.
    Done,
}

impl ChunkedDecoder {
    /// A decoder whose trailer section may hold at most `max_trailer` bytes.
    pub(crate) fn new(max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            extension_len: 0,
            trailer_len: 0,
            max_trailer,
            name: TrailerName::default(),
        }
    }

    /// Consumes control bytes from the front of `buf` and returns the next data or the end.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<ChunkEvent>, FramingError> {
        let mut used = 0;
        let result = loop {
            if let State::Data(left) = self.state {
                buf.advance(used);
                used = 0;
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                if take == 0 {
                    break Ok(None);
                }
                let rest = left - take as u64;
                self.state = if rest == 0 {
                    State::DataCr
                } else {
                    State::Data(rest)
                };
                break Ok(Some(ChunkEvent::Data(buf.split_to(take).freeze())));
            }
            if self.state == State::Done {
                break Ok(None);
            }
            let Some(&b) = buf.get(used) else {
                break Ok(None);
            };
            used += 1;
            match self.step(b) {
                Ok(true) => break Ok(Some(ChunkEvent::End)),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        };
        buf.advance(used);
        result
    }

    /// Feeds one control byte; `Ok(true)` when it completed the body.
    fn step(&mut self, b: u8) -> Result<bool, FramingError> {
        let chunk = |e| Err(FramingError::Chunk(e));
        if self.in_trailer() {
            self.trailer_len += 1;
            if self.trailer_len > self.max_trailer {
                return Err(FramingError::HeaderBlockTooLarge {
                    len: self.trailer_len,
                    limit: self.max_trailer,
                });
            }
        }
        self.state = match (self.state, b) {
            (State::SizeStart, _) => match hex(b) {
                Some(d) => State::Size(u64::from(d)),
                None => return chunk(ChunkError::BadSize),
            },
            (State::Size(n), _) if hex(b).is_some() => {
                let d = u64::from(hex(b).unwrap_or(0));
                match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                    Some(n) => State::Size(n),
                    None => return chunk(ChunkError::SizeOverflow),
                }
            }
            (State::Size(n) | State::SizeSpace(n), b' ' | b'\t') => State::SizeSpace(n),
            (State::Size(n) | State::SizeSpace(n), b';') => State::Extension(n),
            (State::Size(n) | State::SizeSpace(n) | State::Extension(n), b'\r') => State::SizeLf(n),
            (State::Size(_) | State::SizeSpace(_) | State::Extension(_), b'\n') => {
                return chunk(ChunkError::BareLineEnding);
            }
            (State::Size(_) | State::SizeSpace(_), _) => return chunk(ChunkError::BadSize),
            (State::Extension(n), _) => {
                if is_ctl(b) {
                    return chunk(ChunkError::BadSize);
                }
                self.extension_len += 1;
                if self.extension_len > MAX_EXTENSION {
                    return chunk(ChunkError::ExtensionTooLong);
                }
                State::Extension(n)
            }
            (State::SizeLf(0), b'\n') => State::TrailerStart,
            (State::SizeLf(n), b'\n') => State::Data(n),
            (State::SizeLf(_), _) => return chunk(ChunkError::BareLineEnding),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.extension_len = 0;
                State::SizeStart
            }
            (State::DataCr | State::DataLf, _) => return chunk(ChunkError::MissingDataCrlf),
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::TrailerStart, _) if is_tchar(b) => {
                self.name = TrailerName::default();
                self.name.push(b);
                State::TrailerField
            }
            (State::TrailerStart, b'\n') => return chunk(ChunkError::BareLineEnding),
            (State::TrailerStart, _) => return chunk(ChunkError::BadTrailer),
            (State::TrailerField, b':') => {
                if self.name.is_framing_field() {
                    return chunk(ChunkError::ForbiddenTrailer);
                }
                State::TrailerValue
            }
            (State::TrailerField, _) if is_tchar(b) => {
                self.name.push(b);
                State::TrailerField
            }
            (State::TrailerField, _) => return chunk(ChunkError::BadTrailer),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\n') => return chunk(ChunkError::BareLineEnding),
            (State::TrailerValue, _) if is_ctl(b) => return chunk(ChunkError::BadTrailer),
            (State::TrailerValue, _) => State::TrailerValue,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::FinalLf, b'\n') => {
                self.state = State::Done;
                return Ok(true);
            }
            (State::TrailerLf | State::FinalLf, _) => return chunk(ChunkError::BareLineEnding),
            // Data and Done never reach here: `decode` handles them before stepping.
            (State::Data(_) | State::Done, _) => return chunk(ChunkError::BadSize),
        };
        Ok(false)
    }

    fn in_trailer(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart
                | State::TrailerField
                | State::TrailerValue
                | State::TrailerLf
                | State::FinalLf
        )
    }
}

/// Frames one body chunk; an empty input gives empty output, because an empty chunk on the
/// wire would end the body.
pub fn encode_chunk(data: &[u8]) -> Bytes {
    if data.is_empty() {
        return Bytes::new();
    }
    let size = format!("{:x}\r\n", data.len());
    let mut out = BytesMut::with_capacity(size.len() + data.len() + 2);
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// The lower-cased start of a trailer field name, enough to recognise the framing fields.
#[derive(Debug, Default)]
struct TrailerName {
    bytes: [u8; 18],
    len: usize,
}

impl TrailerName {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b.to_ascii_lowercase();
        }
        self.len = self.len.saturating_add(1);
    }

    fn is_framing_field(&self) -> bool {
        let name = self.bytes.get(..self.len).unwrap_or(&[]);
        name == b"transfer-encoding" || name == b"content-length"
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
