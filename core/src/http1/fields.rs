//! Header fields shared by both directions: conversion from httparse, and the framing
//! fields (`Content-Length`, `Transfer-Encoding`, `Connection`) read with the strict rules
//! of the module docs.

use http::HeaderMap;
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};

use super::{FramingError, Version};

/// The framing-relevant facts of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// The agreed `Content-Length`, if any.
    pub(crate) content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` is present (the only coding accepted).
    pub(crate) chunked: bool,
    /// The connection must close after this message.
    pub(crate) close: bool,
}

/// Copies httparse's fields into a `HeaderMap`, refusing CR, LF and NUL in values.
pub(crate) fn to_header_map(raw: &[httparse::Header<'_>]) -> Result<HeaderMap, FramingError> {
    let mut map = HeaderMap::with_capacity(raw.len());
    for field in raw {
        if field.value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(FramingError::ForbiddenByteInValue {
                name: field.name.to_owned(),
            });
        }
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| FramingError::InvalidToken("header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| FramingError::InvalidToken("header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Reads the framing fields of a head with a body that may be framed.
pub(crate) fn framing_fields(
    headers: &HeaderMap,
    version: Version,
) -> Result<FramingFields, FramingError> {
    let content_length = content_length(headers)?;
    let chunked = transfer_encoding_is_chunked(headers)?;
    if chunked && version == Version::Http10 {
        return Err(FramingError::UnsupportedTransferEncoding);
    }
    let (close_token, keep_alive_token) = connection_tokens(headers);
    let close = close_token
        || (version == Version::Http10 && !keep_alive_token)
        || (chunked && content_length.is_some());
    Ok(FramingFields {
        content_length,
        chunked,
        close,
    })
}

/// Whether `Connection` asks to close, and whether it asks to keep alive.
pub(crate) fn connection_tokens(headers: &HeaderMap) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for token in list_elements(headers, &CONNECTION) {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

/// The single value every `Content-Length` element agrees on; invalid or differing values
/// are refused because a front proxy might have picked another one (request smuggling).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, FramingError> {
    let mut agreed: Option<u64> = None;
    for value in headers.get_all(&CONTENT_LENGTH) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = trim_ows(element);
            let n = parse_decimal(element).ok_or(FramingError::InvalidContentLength)?;
            match agreed {
                Some(first) if first != n => {
                    return Err(FramingError::ConflictingContentLength { first, second: n });
                }
                _ => agreed = Some(n),
            }
        }
    }
    Ok(agreed)
}

/// True when `Transfer-Encoding` is present and is exactly `chunked`; any other coding
/// list is refused (see the module docs for why `gzip, chunked` is refused too).
fn transfer_encoding_is_chunked(headers: &HeaderMap) -> Result<bool, FramingError> {
    if !headers.contains_key(&TRANSFER_ENCODING) {
        return Ok(false);
    }
    let mut codings = list_elements(headers, &TRANSFER_ENCODING);
    match (codings.next(), codings.next()) {
        (Some(only), None) if only.eq_ignore_ascii_case(b"chunked") => Ok(true),
        _ => Err(FramingError::UnsupportedTransferEncoding),
    }
}

/// The non-empty, OWS-trimmed elements of a comma-separated list field, over all its lines.
fn list_elements<'a>(
    headers: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `1*DIGIT` as a `u64`; `None` when empty, not all digits, or too large.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}
