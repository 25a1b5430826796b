//! Body readers for the three framings, shared by the request and response decoders.

use bytes::{Bytes, BytesMut};

use super::FramingError;
use super::chunked::{ChunkEvent, ChunkedDecoder};

/// What a body reader produced.
#[derive(Debug)]
pub(crate) enum BodyEvent {
    /// Body bytes.
    Data(Bytes),
    /// The body is complete.
    End,
}

/// Reads one body.
#[derive(Debug)]
pub(crate) enum BodyReader {
    /// This many bytes left.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// Everything until EOF.
    UntilEof,
    /// `End` was reported.
    Ended,
}

impl BodyReader {
    /// The next body event; `eof` says the peer closed, so no more bytes will arrive.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<BodyEvent>, FramingError> {
        let event = match self {
            BodyReader::Length(0) => Some(BodyEvent::End),
            BodyReader::Length(left) => {
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                if take == 0 {
                    return if eof {
                        Err(FramingError::UnexpectedEof)
                    } else {
                        Ok(None)
                    };
                }
                *left -= take as u64;
                Some(BodyEvent::Data(buf.split_to(take).freeze()))
            }
            BodyReader::Chunked(decoder) => match decoder.decode(buf)? {
                Some(ChunkEvent::Data(data)) => Some(BodyEvent::Data(data)),
                Some(ChunkEvent::End) => Some(BodyEvent::End),
                None if eof => return Err(FramingError::UnexpectedEof),
                None => None,
            },
            BodyReader::UntilEof if !buf.is_empty() => Some(BodyEvent::Data(buf.split().freeze())),
            BodyReader::UntilEof if eof => Some(BodyEvent::End),
            BodyReader::UntilEof | BodyReader::Ended => None,
        };
        if matches!(event, Some(BodyEvent::End)) {
            *self = BodyReader::Ended;
        }
        Ok(event)
    }
}
