use proptest::prelude::*;

use super::*;
use crate::usage::{Convention, UsageRecord};

/// What a client would receive, split at the finalize point.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    before_commit: Vec<u8>,
    after_commit: Vec<u8>,
    terminal_offset: Option<u64>,
    record: Option<UsageRecord>,
    model: Option<String>,
    incomplete: bool,
    events: Vec<RelayEvent>,
}

fn cat(out: &mut Vec<u8>, pieces: Vec<Bytes>) {
    for p in pieces {
        out.extend_from_slice(&p);
    }
}

fn run(kind: BodyKind, cfg: RelayConfig, chunks: &[&[u8]]) -> Run {
    let mut relay = Relay::new(kind, cfg);
    let mut before = Vec::new();
    let mut events = Vec::new();
    for c in chunks {
        let out = relay.push(Bytes::copy_from_slice(c));
        cat(&mut before, out.release);
        while let Some(e) = relay.poll_event() {
            events.push(e);
        }
    }
    cat(&mut before, relay.finish().release);
    while let Some(e) = relay.poll_event() {
        events.push(e);
    }
    let mut after = Vec::new();
    cat(&mut after, relay.release_held());
    let u = relay.usage();
    Run {
        before_commit: before,
        after_commit: after,
        terminal_offset: relay.terminal_offset(),
        record: u.record,
        model: u.actual_model.map(str::to_owned),
        incomplete: u.usage_incomplete,
        events,
    }
}

fn sse_cfg(remove: bool) -> RelayConfig {
    RelayConfig {
        line_cap: DEFAULT_LINE_CAP,
        remove_usage_chunk: remove,
    }
}

const W2: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":50000,\"cache_creation_input_tokens\":10000,\"output_tokens\":1}}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":300}}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":50000,\"cache_creation_input_tokens\":10000,\"output_tokens\":812}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

const W5_CHUNK1: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5-2025-08-07\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
const W5_USAGE: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5-2025-08-07\",\"choices\":[],\"usage\":{\"prompt_tokens\":12000,\"completion_tokens\":1500,\"total_tokens\":13500,\"prompt_tokens_details\":{\"cached_tokens\":8000},\"completion_tokens_details\":{\"reasoning_tokens\":1024}}}\n\n";
const W5_DONE: &str = "data: [DONE]\n\n";

const W6: &str = "event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-5\",\"status\":\"in_progress\",\"usage\":null}}\n\
\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\
\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-5\",\"status\":\"completed\",\"usage\":{\"input_tokens\":30000,\"input_tokens_details\":{\"cached_tokens\":20000},\"output_tokens\":4000,\"output_tokens_details\":{\"reasoning_tokens\":3000},\"total_tokens\":34000}}}\n\
\n";

fn w5() -> String {
    format!("{W5_CHUNK1}{W5_USAGE}{W5_DONE}")
}

#[test]
fn w2_holds_from_the_message_stop_line_and_records_the_final_usage() {
    let r = run(BodyKind::Sse, sse_cfg(false), &[W2.as_bytes()]);
    let stop = W2.find("event: message_stop").unwrap();
    assert_eq!(r.terminal_offset, Some(stop as u64));
    assert_eq!(r.before_commit, W2.as_bytes()[..stop]);
    assert_eq!(r.after_commit, W2.as_bytes()[stop..]);
    let rec = r.record.unwrap();
    assert_eq!(
        (
            rec.input_uncached,
            rec.cache_read,
            rec.cache_write_5m,
            rec.output
        ),
        (2000, 50_000, 10_000, 812)
    );
    assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    // The checkpoint fires once, at message_start, with output 1.
    let first: Vec<_> = r
        .events
        .iter()
        .filter(|e| matches!(e, RelayEvent::FirstUsage { .. }))
        .collect();
    assert_eq!(first.len(), 1);
    assert!(matches!(first[0], RelayEvent::FirstUsage { record } if record.output == 1));
}

#[test]
fn terminal_completes_at_the_blank_line_not_before() {
    let stop = W2.find("event: message_stop").unwrap();
    let blank = W2.len() - 1;
    let mut relay = Relay::new(BodyKind::Sse, sse_cfg(false));
    let out = relay.push(Bytes::copy_from_slice(&W2.as_bytes()[..blank]));
    assert!(relay.saw_terminal());
    assert!(!out.terminal_complete);
    assert_eq!(out.release.iter().map(Bytes::len).sum::<usize>(), stop);
    let out = relay.push(Bytes::copy_from_slice(&W2.as_bytes()[blank..]));
    assert!(out.terminal_complete && relay.terminal_complete());
    assert!(out.release.is_empty());
    // Later bytes stay held until the commit.
    assert!(
        relay
            .push(Bytes::from_static(b": trailing\n"))
            .release
            .is_empty()
    );
    let held: Vec<u8> = relay.release_held().concat();
    assert_eq!(held, [&W2.as_bytes()[stop..], b": trailing\n"].concat());
    assert_eq!(
        relay.push(Bytes::from_static(b"x")).release,
        vec![Bytes::from_static(b"x")]
    );
}

#[test]
fn terminal_line_begun_in_an_earlier_chunk_holds_from_the_chunk_start() {
    let stop = W2.find("event: message_stop").unwrap();
    let split = stop + 8;
    let r = run(
        BodyKind::Sse,
        sse_cfg(false),
        &[&W2.as_bytes()[..split], &W2.as_bytes()[split..]],
    );
    assert_eq!(r.before_commit, W2.as_bytes()[..split]);
    assert_eq!(r.after_commit, W2.as_bytes()[split..]);
}

#[test]
fn w5_removal_drops_only_the_usage_chunk_and_still_accounts_it() {
    let input = w5();
    let r = run(BodyKind::Sse, sse_cfg(true), &[input.as_bytes()]);
    assert_eq!(r.before_commit, W5_CHUNK1.as_bytes());
    assert_eq!(r.after_commit, W5_DONE.as_bytes());
    let rec = r.record.unwrap();
    assert_eq!(
        (
            rec.convention,
            rec.input_uncached,
            rec.cache_read,
            rec.output,
            rec.reasoning
        ),
        (Convention::OpenAi, 4000, 8000, 1500, 1024)
    );
    assert_eq!(
        r.terminal_offset,
        Some((W5_CHUNK1.len() + W5_USAGE.len()) as u64)
    );
}

#[test]
fn w5_without_removal_is_byte_exact_and_done_completes_at_its_line_end() {
    let input = w5();
    let mut relay = Relay::new(BodyKind::Sse, sse_cfg(false));
    let done_line_end = input.len() - 1;
    let out = relay.push(Bytes::copy_from_slice(&input.as_bytes()[..done_line_end]));
    assert!(out.terminal_complete);
    let before = out.release.concat();
    assert_eq!(before, [W5_CHUNK1, W5_USAGE].concat().as_bytes());
    let r = run(BodyKind::Sse, sse_cfg(false), &[input.as_bytes()]);
    assert_eq!([r.before_commit, r.after_commit].concat(), input.as_bytes());
}

#[test]
fn removal_takes_the_lf_of_a_crlf_split_across_chunks() {
    let input = w5().replace('\n', "\r\n");
    let usage_end = input.find("data: [DONE]").unwrap();
    // Split between the CR and LF of the blank line that ends the usage chunk.
    let cut = usage_end - 1;
    let r = run(
        BodyKind::Sse,
        sse_cfg(true),
        &[&input.as_bytes()[..cut], &input.as_bytes()[cut..]],
    );
    let expected = format!("{W5_CHUNK1}{W5_DONE}").replace('\n', "\r\n");
    assert_eq!(
        [r.before_commit, r.after_commit].concat(),
        expected.as_bytes()
    );
}

#[test]
fn removal_waits_for_the_line_end_and_keeps_a_usage_chunk_not_ended_by_a_blank_line() {
    let input = format!("{}: note\n\n{W5_DONE}", W5_USAGE.trim_end());
    let mut relay = Relay::new(BodyKind::Sse, sse_cfg(true));
    let out = relay.push(Bytes::copy_from_slice(b"data: {\"choi"));
    assert!(out.release.is_empty());
    assert_eq!(relay.unreleased_len(), 12);
    let r = run(BodyKind::Sse, sse_cfg(true), &[input.as_bytes()]);
    assert_eq!([r.before_commit, r.after_commit].concat(), input.as_bytes());
}

#[test]
fn usage_chunk_removal_needs_an_event_of_one_data_line() {
    let input = format!("id: 1\n{W5_USAGE}{W5_DONE}");
    let r = run(BodyKind::Sse, sse_cfg(true), &[input.as_bytes()]);
    assert_eq!([r.before_commit, r.after_commit].concat(), input.as_bytes());
    assert!(r.record.is_some());
}

#[test]
fn w6_event_line_starts_the_hold() {
    let r = run(BodyKind::Sse, sse_cfg(false), &[W6.as_bytes()]);
    let at = W6.find("event: response.completed").unwrap();
    assert_eq!(r.before_commit, W6.as_bytes()[..at]);
    let rec = r.record.unwrap();
    assert_eq!(
        (
            rec.input_uncached,
            rec.cache_read,
            rec.output,
            rec.reasoning
        ),
        (10_000, 20_000, 4000, 3000)
    );
    assert_eq!(r.model.as_deref(), Some("gpt-5"));
    assert!(
        !r.events
            .iter()
            .any(|e| matches!(e, RelayEvent::FirstUsage { .. }))
    );
}

#[test]
fn data_type_without_event_line_is_terminal() {
    let input = "data: {\"type\":\"message_stop\"}\n\n";
    let r = run(
        BodyKind::Sse,
        sse_cfg(false),
        &[b"data: {}\n\n", input.as_bytes()],
    );
    assert_eq!(r.terminal_offset, Some(10));
    assert_eq!(r.before_commit, b"data: {}\n\n");
}

#[test]
fn held_line_over_the_cap_is_released_as_it_arrives_except_its_terminator() {
    let cfg = RelayConfig {
        line_cap: 64,
        remove_usage_chunk: false,
    };
    let mut relay = Relay::new(BodyKind::Sse, cfg);
    let head = b"event: response.completed\ndata: ";
    assert!(relay.push(Bytes::from_static(head)).release.is_empty());
    let big = Bytes::from(vec![b'x'; 100]);
    let out = relay.push(big.clone());
    assert_eq!(out.release.concat(), [&head[..], &big[..]].concat());
    let out = relay.push(Bytes::from_static(b"yy\n\n"));
    assert_eq!(out.release.concat(), b"yy");
    assert!(out.terminal_complete);
    assert_eq!(relay.release_held().concat(), b"\n\n");
    assert!(relay.usage_incomplete());
    assert!(matches!(
        relay.poll_event(),
        Some(RelayEvent::LineTooLong { length: 108 })
    ));
}

#[test]
fn stream_ending_without_terminal_releases_everything_and_keeps_usage_seen() {
    let cut = W2.find("event: message_delta").unwrap();
    let r = run(BodyKind::Sse, sse_cfg(false), &[&W2.as_bytes()[..cut]]);
    assert_eq!(r.before_commit, W2.as_bytes()[..cut]);
    assert!(r.after_commit.is_empty());
    assert_eq!(r.terminal_offset, None);
    assert_eq!(r.record.unwrap().output, 1);
}

#[test]
fn over_long_line_is_forwarded_and_later_events_still_count() {
    let cfg = RelayConfig {
        line_cap: 32,
        remove_usage_chunk: false,
    };
    let input = format!("data: {}\n\n{}", "z".repeat(100), W5_USAGE);
    let r = run(BodyKind::Sse, cfg, &[input.as_bytes()]);
    assert_eq!(r.before_commit, input.as_bytes());
    assert!(r.incomplete);
    assert!(r.events.contains(&RelayEvent::LineTooLong { length: 106 }));
    assert!(
        r.record.is_none(),
        "the usage line is itself over the 32-byte cap"
    );
}

#[test]
fn ndjson_done_line_is_held_and_completes_at_its_end() {
    let a = "{\"model\":\"llama3\",\"message\":{\"content\":\"hi\"},\"done\":false}\n";
    let b = "{\"model\":\"llama3\",\"done\":true,\"prompt_eval_count\":26,\"eval_count\":290}\n";
    let mut relay = Relay::new(BodyKind::Ndjson, RelayConfig::default());
    let out = relay.push(Bytes::from(format!("{a}{b}")));
    assert_eq!(out.release.concat(), a.as_bytes());
    assert!(out.terminal_complete);
    assert_eq!(relay.release_held().concat(), b.as_bytes());
    let rec = relay.usage().record.unwrap();
    assert_eq!((rec.input_uncached, rec.output), (26, 290));
}

#[test]
fn body_kind_from_content_type() {
    assert_eq!(
        BodyKind::from_content_type(Some("text/event-stream; charset=utf-8")),
        BodyKind::Sse
    );
    assert_eq!(
        BodyKind::from_content_type(Some("Text/Event-Stream")),
        BodyKind::Sse
    );
    assert_eq!(
        BodyKind::from_content_type(Some("application/x-ndjson")),
        BodyKind::Ndjson
    );
    assert_eq!(
        BodyKind::from_content_type(Some("application/NDJSON; charset=utf-8")),
        BodyKind::Ndjson
    );
    assert_eq!(
        BodyKind::from_content_type(Some("application/ndjson-seq")),
        BodyKind::Plain
    );
    assert_eq!(
        BodyKind::from_content_type(Some("application/json")),
        BodyKind::Plain
    );
    assert_eq!(BodyKind::from_content_type(None), BodyKind::Plain);
}

#[test]
fn plain_relay_passes_through() {
    let r = run(
        BodyKind::Plain,
        RelayConfig::default(),
        &[b"{\"a\":1}", b"xyz"],
    );
    assert_eq!(r.before_commit, b"{\"a\":1}xyz");
}

fn split(data: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts {
        out.push(data[prev..c].to_vec());
        prev = c;
    }
    out.push(data[prev..].to_vec());
    out
}

fn stream_case() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        Just((W2.to_owned(), false)),
        Just((w5(), true)),
        Just((w5(), false)),
        Just((W6.to_owned(), false)),
    ]
}

fn ending(s: &str, e: usize) -> String {
    match e {
        0 => s.to_owned(),
        1 => s.replace('\n', "\r\n"),
        _ => s.replace('\n', "\r"),
    }
}

proptest! {
    #[test]
    fn chunking_never_changes_accounting_or_bytes(
        (stream, remove) in stream_case(),
        e in 0usize..3,
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let input = ending(&stream, e);
        let whole = run(BodyKind::Sse, sse_cfg(remove), &[input.as_bytes()]);
        let chunks = split(input.as_bytes(), &points);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let parts = run(BodyKind::Sse, sse_cfg(remove), &refs);
        prop_assert_eq!(&whole.record, &parts.record);
        prop_assert_eq!(&whole.model, &parts.model);
        prop_assert_eq!(whole.terminal_offset, parts.terminal_offset);
        prop_assert_eq!(
            [&whole.before_commit[..], &whole.after_commit[..]].concat(),
            [&parts.before_commit[..], &parts.after_commit[..]].concat()
        );
        // The hold starts exactly at the terminal line, or at the start of the chunk that
        // completed it when the line began earlier.
        if !remove {
            let t = usize::try_from(parts.terminal_offset.unwrap()).unwrap();
            let term_end = t + input.as_bytes()[t..].iter().position(|&b| b == b'\n' || b == b'\r').unwrap();
            let mut start = 0;
            let mut chunk_start = 0;
            for c in &chunks {
                if term_end >= start && term_end < start + c.len() {
                    chunk_start = start;
                }
                start += c.len();
            }
            prop_assert_eq!(parts.before_commit.len(), t.max(chunk_start));
        }
    }

    #[test]
    fn line_endings_never_change_accounting((stream, remove) in stream_case(), e in 1usize..3) {
        let lf = run(BodyKind::Sse, sse_cfg(remove), &[stream.as_bytes()]);
        let other = run(BodyKind::Sse, sse_cfg(remove), &[ending(&stream, e).as_bytes()]);
        prop_assert_eq!(lf.record, other.record);
        prop_assert_eq!(lf.model, other.model);
    }

    #[test]
    fn buffered_bytes_stay_within_cap_plus_chunk(
        data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'd'), any::<u8>()], 0..400),
        points in proptest::collection::vec(any::<usize>(), 0..10),
        remove in any::<bool>(),
    ) {
        let cap = 32;
        let cfg = RelayConfig { line_cap: cap, remove_usage_chunk: remove };
        let mut relay = Relay::new(BodyKind::Sse, cfg);
        let mut released = Vec::new();
        for c in split(&data, &points) {
            let len = c.len() as u64;
            cat(&mut released, relay.push(Bytes::from(c)).release);
            prop_assert!(relay.scanner_buffered() <= 3 * cap);
            if !relay.saw_terminal() {
                // Before any hold: a partial line (≤ cap) and a candidate line plus its
                // blank line wait at most.
                prop_assert!(relay.unreleased_len() <= 2 * (cap as u64 + 2) + len);
            }
        }
        cat(&mut released, relay.finish().release);
        cat(&mut released, relay.release_held());
        if !remove {
            prop_assert_eq!(released, data);
        }
    }
}

#[test]
fn removal_works_in_every_framing() {
    for e in 0..3 {
        let input = ending(&w5(), e);
        let expected = ending(&format!("{W5_CHUNK1}{W5_DONE}"), e);
        for chunk in [input.len(), 1] {
            let chunks: Vec<&[u8]> = input.as_bytes().chunks(chunk).collect();
            let r = run(BodyKind::Sse, sse_cfg(true), &chunks);
            assert_eq!(
                [r.before_commit, r.after_commit].concat(),
                expected.as_bytes(),
                "framing {e}, chunk {chunk}"
            );
        }
    }
}
