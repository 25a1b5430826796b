//! HTTP/1.1 response parsing for the clients: heads through httparse, bodies by
//! content-length, chunked coding (strict CRLF) or connection close.

use super::Response;

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes.
    Close,
}

/// A parsed response head.
pub(crate) struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub framing: BodyFraming,
    pub len: usize,
}

/// Parses a response head at the start of `buf`; `Ok(None)` when incomplete.
pub(crate) fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = res.parse(buf).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let status = res.code.unwrap_or(0);
    let headers: Vec<(String, String)> = res
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let chunked = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .next_back()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad content-length {v:?}"))
        })
        .transpose()?;
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        BodyFraming::Empty
    } else if chunked {
        BodyFraming::Chunked
    } else if let Some(length) = length {
        BodyFraming::Length(length)
    } else {
        BodyFraming::Close
    };
    Ok(Some(Head {
        status,
        headers,
        framing,
        len,
    }))
}

/// Parses one whole response at the start of `buf`. `eof` says the connection closed after
/// `buf`, which completes a close-delimited body. Returns the response and the bytes used,
/// `Ok(None)` when more bytes are needed.
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    eof: bool,
) -> Result<Option<(Response, usize)>, String> {
    let Some(head) = parse_head(buf, head_request)? else {
        return Ok(None);
    };
    let rest = &buf[head.len..];
    let (body, used) = match head.framing {
        BodyFraming::Empty => (Vec::new(), 0),
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).map_err(|_| "content-length too large".to_owned())?;
            if rest.len() < n {
                return Ok(None);
            }
            (rest[..n].to_vec(), n)
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = Vec::new();
            let used = decoder.feed(rest, &mut body)?;
            if !decoder.is_done() {
                return Ok(None);
            }
            (body, used)
        }
        BodyFraming::Close => {
            if !eof {
                return Ok(None);
            }
            (rest.to_vec(), rest.len())
        }
    };
    let response = Response {
        status: head.status,
        headers: head.headers,
        body,
    };
    Ok(Some((response, head.len + used)))
}

/// Incremental decoder of the chunked transfer coding.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

impl ChunkedDecoder {
    /// Decodes from `input` into `out`; returns how many input bytes were consumed, which is
    /// less than `input.len()` only once the body is complete.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            match self.state {
                State::Data(remaining) => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::Size | State::DataEnd | State::Trailer => {
                    let byte = input[i];
                    i += 1;
                    self.line.push(byte);
                    if byte == b'\n' {
                        let line = std::mem::take(&mut self.line);
                        self.end_line(&line)?;
                    } else if self.line.len() > 8192 {
                        return Err("chunk line too long".into());
                    }
                }
                State::Done => {}
            }
        }
        Ok(i)
    }

    /// The terminating zero-size chunk and its trailer were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn end_line(&mut self, line: &[u8]) -> Result<(), String> {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err("chunk line not ended by CRLF".into());
        };
        self.state = match self.state {
            State::Size => {
                let text = String::from_utf8_lossy(text);
                let size_text = text.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                if size == 0 {
                    State::Trailer
                } else {
                    State::Data(size)
                }
            }
            State::DataEnd if text.is_empty() => State::Size,
            State::DataEnd => return Err("chunk data not followed by CRLF".into()),
            State::Trailer if text.is_empty() => State::Done,
            State::Trailer => State::Trailer,
            State::Data(_) | State::Done => self.state,
        };
        Ok(())
    }
}

/// Every complete response in `buf`, in order, stopping at the first incomplete or
/// unparsable one. `eof` completes a final close-delimited body.
pub(crate) fn parse_all(buf: &[u8], eof: bool) -> Vec<Response> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match parse_response(&buf[at..], false, eof) {
            Ok(Some((response, used))) => {
                out.push(response);
                at += used;
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decoder_gives_the_same_body_at_any_split() {
        let wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
        for split in 0..=wire.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            decoder.feed(&wire[..split], &mut out).expect("first part");
            decoder.feed(&wire[split..], &mut out).expect("second part");
            assert!(decoder.is_done(), "split {split}");
            assert_eq!(out, b"hello world", "split {split}");
        }
    }

    #[test]
    fn chunked_decoder_rejects_bare_lf() {
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.feed(b"5\nhello\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn parse_all_reads_pipelined_responses() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nHTTP/1.1 400 Bad";
        let statuses: Vec<u16> = parse_all(wire, false).iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 404]);
    }
}
