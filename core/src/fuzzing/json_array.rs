//! Fuzz body of the `json_array_scan` target: the JSON-array stream scanner of Gemini's
//! `:streamGenerateContent` without `alt=sse` (`gemini.md` §2).

use bytes::Bytes;

use super::sse::split_input;
use crate::exchange::relay::{BodyKind, Relay, RelayConfig};
use crate::json_array::{JsonArraySplitter, JsonElement};
use crate::sse::DEFAULT_LINE_CAP;
use crate::usage::{UsageRecord, extract_plain};

const CAP: usize = 64;

type Item = (Option<Vec<u8>>, u64, u64, u64);

fn scan(pieces: &[&[u8]], cap: usize) -> Vec<Item> {
    let mut s = JsonArraySplitter::new(cap);
    let mut out = Vec::new();
    let mut f = |e: &JsonElement<'_>| {
        out.push((e.content.map(<[u8]>::to_vec), e.start, e.end, e.length));
    };
    for p in pieces {
        s.push(p, &mut f);
        assert!(
            s.buffered() <= cap,
            "scanner memory {} over the cap",
            s.buffered()
        );
    }
    s.finish(&mut f);
    out
}

fn relay(pieces: &[&[u8]], cap: usize) -> (Vec<u8>, Option<UsageRecord>, Option<String>, bool) {
    let mut r = Relay::new(
        BodyKind::JsonArray,
        RelayConfig {
            line_cap: cap,
            remove_usage_chunk: false,
        },
    );
    let mut out = Vec::new();
    for p in pieces {
        let o = r.push(Bytes::copy_from_slice(p));
        assert!(!o.terminal_complete, "a JSON array has no terminal");
        out.extend(o.release.concat());
        assert_eq!(r.unreleased_len(), 0, "nothing of a JSON array is held");
    }
    out.extend(r.finish().release.concat());
    let u = r.usage();
    (
        out,
        u.record,
        u.actual_model.map(str::to_owned),
        u.usage_incomplete,
    )
}

/// No panic; chunked scanning reports exactly what whole-input scanning reports, with content
/// equal to the input bytes at the reported offsets, in order and without overlap; memory
/// stays within the cap; the relay is byte-exact, holds nothing and accounts the same in any
/// chunking, and (with the default cap) the same as reading the body whole.
pub fn json_array_scan(data: &[u8]) {
    let (cuts, body) = split_input(data);
    let mut pieces = Vec::new();
    let mut prev = 0;
    for &c in &cuts {
        pieces.push(&body[prev..c]);
        prev = c;
    }
    pieces.push(&body[prev..]);

    let whole = scan(&[body], CAP);
    assert_eq!(
        scan(&pieces, CAP),
        whole,
        "chunked scan differs from whole scan"
    );
    let mut last_end = 0;
    for (content, start, end, length) in &whole {
        assert!(*start >= last_end, "elements overlap");
        assert_eq!(end - start, *length, "length");
        assert!(*end <= body.len() as u64, "element past the input");
        let bytes = &body[*start as usize..*end as usize];
        match content {
            Some(c) => assert_eq!(c.as_slice(), bytes, "content is not the input bytes"),
            None => assert!(*length > CAP as u64, "content withheld under the cap"),
        }
        last_end = *end;
    }

    let a = relay(&[body], CAP);
    assert_eq!(a.0, body, "relay is not byte-exact");
    assert_eq!(relay(&pieces, CAP), a, "relay result depends on chunking");
    let skipped = whole.iter().any(|(c, ..)| c.is_none());
    assert_eq!(
        a.3, skipped,
        "usage_incomplete iff an element was over the cap"
    );

    if body.trim_ascii_start().starts_with(b"[") {
        let streamed = relay(&pieces, DEFAULT_LINE_CAP);
        let plain = extract_plain(body);
        assert_eq!(
            (streamed.1, streamed.2),
            (plain.record, plain.actual_model),
            "streamed accounting differs from the whole body's"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_array_scan_accepts_seed_like_inputs() {
        json_array_scan(b"\x02\x05\x00\x11\x00[{\"usageMetadata\":{\"promptTokenCount\":3}},{\"modelVersion\":\"g\"}]");
        json_array_scan(b"");
        json_array_scan(&[0xFF; 300]);
        json_array_scan(b"\x00[\"\\\"]\",{\"a\":[1,2,{\"b\":\"}\"}]}  , 12 ]");
    }

    #[test]
    fn json_array_scan_holds_its_oracles_on_random_json_like_inputs() {
        let alphabet = b"[]{}\",:\\ \r\n1eu";
        let words: [&[u8]; 4] = [
            b"\"usageMetadata\":{\"promptTokenCount\":7,\"thoughtsTokenCount\":2}",
            b"\"modelVersion\":\"gemini-2.5-pro\"",
            b"\"response\":{",
            b"\"candidatesTokenCount\":3",
        ];
        let mut rng = fastrand::Rng::with_seed(19);
        for _ in 0..500 {
            let mut data = vec![rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..)];
            for _ in 0..rng.usize(0..60) {
                if rng.u8(..) < 40 {
                    data.extend_from_slice(words[rng.usize(..words.len())]);
                } else {
                    data.push(alphabet[rng.usize(..alphabet.len())]);
                }
            }
            json_array_scan(&data);
        }
    }
}
