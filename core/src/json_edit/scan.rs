//! The tokenizer behind [`super`]: grammar validation and member spans, without recursion.

use super::{JsonEditError, Member, ObjectIndex};

/// A half-open byte range `start..end` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Indexes the object that starts at the first non-whitespace byte of `body[start..end]`.
/// With `top_level`, whitespace may follow the object up to `end`; otherwise the object must
/// end exactly at `end` (a value span found earlier).
pub(super) fn index_object(
    body: &[u8],
    start: usize,
    end: usize,
    top_level: bool,
) -> Result<ObjectIndex, JsonEditError> {
    let b = &body[..end];
    let open = ws(b, start);
    if b.get(open) != Some(&b'{') {
        // Tell "valid but not an object" apart from "not JSON at all".
        let after = skip_value(b, open).map_err(|offset| JsonEditError::Invalid { offset })?;
        return if ws(b, after) == end {
            Err(JsonEditError::NotAnObject)
        } else {
            Err(JsonEditError::Invalid {
                offset: ws(b, after),
            })
        };
    }
    let invalid = |offset| JsonEditError::Invalid { offset };
    let mut members = Vec::new();
    let mut i = ws(b, open + 1);
    let close;
    if b.get(i) == Some(&b'}') {
        close = i;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return Err(invalid(i));
            }
            let key_end = skip_string(b, i).map_err(invalid)?;
            let key = decode_string(&b[i..key_end]);
            let key_span = Span {
                start: i,
                end: key_end,
            };
            i = ws(b, key_end);
            if b.get(i) != Some(&b':') {
                return Err(invalid(i));
            }
            let value_start = ws(b, i + 1);
            let value_end = skip_value(b, value_start).map_err(invalid)?;
            members.push(Member {
                key,
                key_span,
                value_span: Span {
                    start: value_start,
                    end: value_end,
                },
            });
            i = ws(b, value_end);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    close = i;
                    break;
                }
                _ => return Err(invalid(i)),
            }
        }
    }
    let after = if top_level {
        ws(b, close + 1)
    } else {
        close + 1
    };
    if after != end {
        return Err(invalid(after));
    }
    Ok(ObjectIndex {
        open,
        close,
        members,
    })
}

/// Checks that `text` is exactly one JSON value (surrounding whitespace allowed).
pub(super) fn check_value(text: &[u8]) -> Result<(), JsonEditError> {
    let _ = std::str::from_utf8(text).map_err(|_| JsonEditError::NotUtf8)?;
    let start = ws(text, 0);
    let end = skip_value(text, start).map_err(|offset| JsonEditError::Invalid { offset })?;
    let after = ws(text, end);
    if after != text.len() {
        return Err(JsonEditError::Invalid { offset: after });
    }
    Ok(())
}

/// Decodes a string token (quotes included) already checked by [`skip_string`].
pub(super) fn decode_string(token: &[u8]) -> String {
    let inner = token.get(1..token.len().saturating_sub(1)).unwrap_or(&[]);
    let mut out: Vec<u16> = Vec::new();
    let mut s = String::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] != b'\\' {
            flush_utf16(&mut out, &mut s);
            // Copy the run of plain bytes; token bytes are UTF-8 (checked by the caller).
            let run_end = inner[i..]
                .iter()
                .position(|&c| c == b'\\')
                .map_or(inner.len(), |p| i + p);
            s.push_str(&String::from_utf8_lossy(&inner[i..run_end]));
            i = run_end;
            continue;
        }
        let Some(&esc) = inner.get(i + 1) else { break };
        if esc == b'u' {
            let unit = inner
                .get(i + 2..i + 6)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u16::from_str_radix(h, 16).ok())
                .unwrap_or(0xFFFD);
            out.push(unit);
            i += 6;
            continue;
        }
        flush_utf16(&mut out, &mut s);
        s.push(match esc {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            other => char::from(other),
        });
        i += 2;
    }
    flush_utf16(&mut out, &mut s);
    s
}

fn flush_utf16(units: &mut Vec<u16>, s: &mut String) {
    if units.is_empty() {
        return;
    }
    s.extend(char::decode_utf16(units.drain(..)).map(|r| r.unwrap_or('\u{FFFD}')));
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Object,
    Array,
}

/// Skips one value starting exactly at `i`; returns the offset just past it, or the offset
/// of the first invalid byte.
fn skip_value(b: &[u8], mut i: usize) -> Result<usize, usize> {
    let mut stack: Vec<Open> = Vec::new();
    loop {
        // Expecting a value at `i`.
        i = ws(b, i);
        match b.get(i) {
            Some(b'{') => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(Open::Object);
                    i = skip_key_colon(b, i)?;
                    continue;
                }
            }
            Some(b'[') => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(Open::Array);
                    continue;
                }
            }
            Some(b'"') => i = skip_string(b, i)?,
            Some(b't') => i = skip_literal(b, i, b"true")?,
            Some(b'f') => i = skip_literal(b, i, b"false")?,
            Some(b'n') => i = skip_literal(b, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = skip_number(b, i)?,
            _ => return Err(i),
        }
        // After a complete value: close containers or move to the next element.
        loop {
            let Some(&top) = stack.last() else {
                return Ok(i);
            };
            i = ws(b, i);
            match (top, b.get(i)) {
                (Open::Object, Some(b',')) => {
                    i = skip_key_colon(b, ws(b, i + 1))?;
                    break;
                }
                (Open::Array, Some(b',')) => {
                    i += 1;
                    break;
                }
                (Open::Object, Some(b'}')) | (Open::Array, Some(b']')) => {
                    stack.pop();
                    i += 1;
                }
                _ => return Err(i),
            }
        }
    }
}

fn skip_key_colon(b: &[u8], i: usize) -> Result<usize, usize> {
    if b.get(i) != Some(&b'"') {
        return Err(i);
    }
    let i = ws(b, skip_string(b, i)?);
    if b.get(i) != Some(&b':') {
        return Err(i);
    }
    Ok(i + 1)
}

fn skip_string(b: &[u8], start: usize) -> Result<usize, usize> {
    let mut i = start + 1;
    loop {
        match b.get(i) {
            None => return Err(i),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = b.get(i + 2..i + 6).ok_or(b.len())?;
                    if let Some(p) = hex.iter().position(|c| !c.is_ascii_hexdigit()) {
                        return Err(i + 2 + p);
                    }
                    i += 6;
                }
                _ => return Err(i + 1),
            },
            Some(&c) if c < 0x20 => return Err(i),
            Some(_) => i += 1,
        }
    }
}

fn skip_literal(b: &[u8], i: usize, lit: &[u8]) -> Result<usize, usize> {
    match b.get(i..i + lit.len()) {
        Some(s) if s == lit => Ok(i + lit.len()),
        _ => Err(i),
    }
}

fn skip_number(b: &[u8], mut i: usize) -> Result<usize, usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i + 1),
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        let after = digits(b, i + 1);
        if after == i + 1 {
            return Err(after);
        }
        i = after;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let after = digits(b, i);
        if after == i {
            return Err(after);
        }
        i = after;
    }
    Ok(i)
}

fn digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}
