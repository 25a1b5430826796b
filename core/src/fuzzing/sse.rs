//! Fuzz bodies of the `sse` module's targets.

use bytes::Bytes;

use crate::exchange::relay::{BodyKind, Relay, RelayConfig};
use crate::sse::{SseItem, SseScanner};

const CAP: usize = 64;

/// Splits a fuzz input into chunks: the first byte gives the number of split points (mod 8),
/// each taken from the next two bytes; the rest is the stream.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 8).min(rest.len() / 2);
    let (head, body) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = head
        .chunks(2)
        .map(|p| {
            usize::from(u16::from_le_bytes([p[0], p.get(1).copied().unwrap_or(0)]))
                % (body.len() + 1)
        })
        .collect();
    cuts.sort_unstable();
    (cuts, body)
}

/// Fuzz body of `sse_scan`: no panic; chunked scanning reports exactly what whole-input
/// scanning reports; scanner memory stays within three line caps (line, data, name); the relay
/// releases the input byte-exact with the same accounting whatever the chunking.
pub fn sse_scan(data: &[u8]) {
    let (cuts, body) = split_input(data);
    let pieces = pieces(body, &cuts);

    let mut whole = Vec::new();
    let mut s = SseScanner::new(CAP);
    s.push(body, &mut whole);
    s.finish(&mut whole);

    let mut chunked: Vec<SseItem> = Vec::new();
    let mut s = SseScanner::new(CAP);
    for p in &pieces {
        s.push(p, &mut chunked);
        assert!(
            s.buffered() <= 3 * CAP,
            "scanner memory {} over bound",
            s.buffered()
        );
    }
    s.finish(&mut chunked);
    assert_eq!(whole, chunked, "chunked scan differs from whole scan");

    for remove in [false, true] {
        let a = relay_run(&[body], remove);
        let b = relay_run(&pieces, remove);
        assert_eq!(a, b, "relay result depends on chunking (remove = {remove})");
        if !remove {
            assert_eq!(a.0, body, "relay is not byte-exact");
        }
    }
}

fn pieces<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts {
        out.push(&body[prev..c]);
        prev = c;
    }
    out.push(&body[prev..]);
    out
}

type RelayResult = (
    Vec<u8>,
    Option<u64>,
    Option<crate::usage::UsageRecord>,
    Option<String>,
    bool,
);

fn relay_run(pieces: &[&[u8]], remove: bool) -> RelayResult {
    let cfg = RelayConfig {
        line_cap: CAP,
        remove_usage_chunk: remove,
    };
    let mut relay = Relay::new(BodyKind::Sse, cfg);
    let mut out = Vec::new();
    for p in pieces {
        out.extend(relay.push(Bytes::copy_from_slice(p)).release.concat());
    }
    out.extend(relay.finish().release.concat());
    out.extend(relay.release_held().concat());
    let u = relay.usage();
    (
        out,
        relay.terminal_offset(),
        u.record,
        u.actual_model.map(str::to_owned),
        u.usage_incomplete,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_scan_accepts_seed_like_inputs() {
        sse_scan(b"\x02\x05\x00\x11\x00event: message_stop\r\ndata: {}\r\n\r\n");
        sse_scan(b"");
        sse_scan(&[0xFF; 300]);
    }
}
