//! Surgical edits on a JSON object body (`datapath.md` §11).
//!
//! The proxy must forward the client's body byte for byte except for the one top-level member
//! a transform changes, so re-serializing through `serde_json::Value` is not an option: it
//! would reorder nothing (with `preserve_order`) but it would still rewrite whitespace, number
//! text (`1.0` → `1.0` but `1E2` → `100.0`) and escapes. Instead a small tokenizer of our own
//! validates the whole body against the JSON grammar (RFC 8259, UTF-8) and records the byte
//! spans of each top-level member; edits then splice bytes at those spans.
//!
//! Choices where JSON is loose:
//! * Duplicate keys: reads take the last occurrence (as `serde_json` does); removal removes
//!   every occurrence; replacing sets every occurrence, so any reader sees the new value.
//! * The grammar is checked, not the meaning: lone surrogate escapes and numbers too large for
//!   an `f64` are valid JSON text and are accepted (and kept untouched).
//! * Nesting is walked with an explicit stack, so deep input cannot overflow the call stack.
//! * Removing a member also removes one neighbouring comma and the whitespace between the
//!   member and that neighbour; every other byte stays.

mod scan;

use thiserror::Error;

pub use scan::Span;

/// Why a body could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JsonEditError {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The body is not valid JSON; `offset` is the byte where parsing stopped.
    #[error("body is not valid JSON (at byte {offset})")]
    Invalid {
        /// Byte offset of the first offending byte (or the end of input).
        offset: usize,
    },
    /// The body is valid JSON but its top level is not an object.
    #[error("body is not a JSON object")]
    NotAnObject,
}

/// One top-level member of an object: where its key and value are in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The decoded key (escapes resolved; a lone surrogate becomes U+FFFD).
    pub key: String,
    /// The key token including its quotes.
    pub key_span: Span,
    /// The value token (a whole nested value for objects and arrays).
    pub value_span: Span,
}

/// A validated JSON object body with the spans of its top-level members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIndex {
    /// Offset of the opening `{`.
    pub open: usize,
    /// Offset of the closing `}`.
    pub close: usize,
    /// Members in document order (duplicates included).
    pub members: Vec<Member>,
}

impl ObjectIndex {
    /// Validates `body` as a JSON document whose top level is an object and indexes it.
    pub fn parse(body: &[u8]) -> Result<ObjectIndex, JsonEditError> {
        let _ = std::str::from_utf8(body).map_err(|_| JsonEditError::NotUtf8)?;
        scan::index_object(body, 0, body.len(), true)
    }

    /// The last member named `key`.
    pub fn get(&self, key: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.key == key)
    }
}

/// The top-level string member `key` of a JSON object body, decoded; `None` when the member
/// is absent or not a string.
pub fn get_str(body: &[u8], key: &str) -> Result<Option<String>, JsonEditError> {
    let index = ObjectIndex::parse(body)?;
    Ok(index.get(key).and_then(|m| {
        let raw = &body[m.value_span.start..m.value_span.end];
        (raw.first() == Some(&b'"')).then(|| scan::decode_string(raw))
    }))
}

/// The raw JSON text of the top-level member `key` (last occurrence), if present.
pub fn get_raw<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a [u8]>, JsonEditError> {
    let index = ObjectIndex::parse(body)?;
    Ok(index
        .get(key)
        .map(|m| &body[m.value_span.start..m.value_span.end]))
}

/// Removes every top-level member named `key`. `Ok(None)` when there was none (the caller
/// keeps its original bytes).
pub fn remove_member(body: &[u8], key: &str) -> Result<Option<Vec<u8>>, JsonEditError> {
    let index = ObjectIndex::parse(body)?;
    Ok(remove_in(body, &index, key))
}

/// Sets the top-level member `key` to `raw_value` (JSON text, inserted verbatim). Existing
/// occurrences get the new value in place; a missing member is appended as the last member.
/// `raw_value` must itself be valid JSON; it is checked so the result stays valid.
pub fn set_member(body: &[u8], key: &str, raw_value: &str) -> Result<Vec<u8>, JsonEditError> {
    scan::check_value(raw_value.as_bytes())?;
    let index = ObjectIndex::parse(body)?;
    Ok(set_in(body, &index, key, raw_value))
}

/// Sets `stream_options.include_usage` to `true` (`datapath.md` §11). An object
/// `stream_options` keeps its other members; a missing or non-object one becomes
/// `{"include_usage":true}`. `Ok(None)` when the value is already `true`.
pub fn set_include_usage(body: &[u8]) -> Result<Option<Vec<u8>>, JsonEditError> {
    let index = ObjectIndex::parse(body)?;
    let Some(opts) = index.get("stream_options") else {
        return Ok(Some(set_in(
            body,
            &index,
            "stream_options",
            r#"{"include_usage":true}"#,
        )));
    };
    let (start, end) = (opts.value_span.start, opts.value_span.end);
    if body[start] != b'{' {
        return Ok(Some(set_in(
            body,
            &index,
            "stream_options",
            r#"{"include_usage":true}"#,
        )));
    }
    // The nested object was validated with the body; index it in place so the spans are
    // offsets into `body`.
    let inner = scan::index_object(body, start, end, false)?;
    if let Some(current) = inner.get("include_usage")
        && &body[current.value_span.start..current.value_span.end] == b"true"
    {
        return Ok(None);
    }
    Ok(Some(set_in(body, &inner, "include_usage", "true")))
}

/// True when `body` is a JSON object whose top-level `stream_options.include_usage` is `true`.
pub fn include_usage_is_true(body: &[u8]) -> bool {
    let Ok(index) = ObjectIndex::parse(body) else {
        return false;
    };
    let Some(opts) = index.get("stream_options") else {
        return false;
    };
    let (start, end) = (opts.value_span.start, opts.value_span.end);
    if body[start] != b'{' {
        return false;
    }
    let Ok(inner) = scan::index_object(body, start, end, false) else {
        return false;
    };
    inner
        .get("include_usage")
        .is_some_and(|m| &body[m.value_span.start..m.value_span.end] == b"true")
}

fn remove_in(body: &[u8], index: &ObjectIndex, key: &str) -> Option<Vec<u8>> {
    let doomed: Vec<usize> = (0..index.members.len())
        .filter(|&i| index.members[i].key == key)
        .collect();
    if doomed.is_empty() {
        return None;
    }
    // Cut ranges computed on the original spans, then applied back to front.
    let mut cuts: Vec<(usize, usize)> = Vec::with_capacity(doomed.len());
    let mut kept_before: Option<usize> = None; // last kept member before the current one
    let mut i = 0;
    while i < index.members.len() {
        if index.members[i].key != key {
            kept_before = Some(i);
            i += 1;
            continue;
        }
        // A run of doomed members [i, j).
        let mut j = i;
        while j < index.members.len() && index.members[j].key == key {
            j += 1;
        }
        let run_start = index.members[i].key_span.start;
        let run_end = index.members[j - 1].value_span.end;
        let range = if j < index.members.len() {
            // Followed by a kept member: remove up to that member's key.
            (run_start, index.members[j].key_span.start)
        } else if let Some(prev) = kept_before {
            // Last run with a kept member before it: remove from the end of that member.
            (index.members[prev].value_span.end, run_end)
        } else {
            (run_start, run_end)
        };
        cuts.push(range);
        i = j;
    }
    let mut out = body.to_vec();
    for (start, end) in cuts.into_iter().rev() {
        out.drain(start..end);
    }
    Some(out)
}

fn set_in(body: &[u8], index: &ObjectIndex, key: &str, raw_value: &str) -> Vec<u8> {
    let targets: Vec<&Member> = index.members.iter().filter(|m| m.key == key).collect();
    let mut out = Vec::with_capacity(body.len() + raw_value.len() + key.len() + 4);
    if targets.is_empty() {
        let at = index
            .members
            .last()
            .map_or(index.open + 1, |m| m.value_span.end);
        out.extend_from_slice(&body[..at]);
        if !index.members.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(encode_key(key).as_bytes());
        out.push(b':');
        out.extend_from_slice(raw_value.as_bytes());
        out.extend_from_slice(&body[at..]);
        return out;
    }
    let mut pos = 0;
    for m in targets {
        out.extend_from_slice(&body[pos..m.value_span.start]);
        out.extend_from_slice(raw_value.as_bytes());
        pos = m.value_span.end;
    }
    out.extend_from_slice(&body[pos..]);
    out
}

fn encode_key(key: &str) -> String {
    // Serializing a &str cannot fail; the fallback keeps this total anyway.
    serde_json::to_string(key).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests;
