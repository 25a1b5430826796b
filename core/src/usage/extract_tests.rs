//! Extraction rules of `accounting.md` §2, hostile inputs, and the extraction parts of the
//! worked examples W2, W2b, W5, W6.

use proptest::prelude::*;

use super::*;

fn sse(state: &mut UsageState, name: Option<&str>, data: &str) {
    state.observe_sse_event(name.map(str::as_bytes), data.as_bytes());
}

const W2_START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"usage":{"input_tokens":2000,"cache_read_input_tokens":50000,"cache_creation_input_tokens":10000,"output_tokens":1}}}"#;
const W2_DELTA1: &str =
    r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":300}}"#;
const W2_DELTA2: &str = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":2000,"cache_read_input_tokens":50000,"cache_creation_input_tokens":10000,"output_tokens":812}}"#;

fn anthropic(input: u64, read: u64, w5: u64, w1: u64, out: u64) -> UsageRecord {
    UsageRecord {
        convention: Convention::Anthropic,
        input_uncached: input,
        cache_read: read,
        cache_write_5m: w5,
        cache_write_1h: w1,
        output: out,
        reasoning: 0,
    }
}

fn openai(uncached: u64, cached: u64, out: u64, reasoning: u64) -> UsageRecord {
    UsageRecord {
        convention: Convention::OpenAi,
        input_uncached: uncached,
        cache_read: cached,
        cache_write_5m: 0,
        cache_write_1h: 0,
        output: out,
        reasoning,
    }
}

#[test]
fn w2_cumulative_deltas_replace_never_sum() {
    let mut s = UsageState::new();
    sse(&mut s, Some("message_start"), W2_START);
    sse(&mut s, Some("message_delta"), W2_DELTA1);
    sse(&mut s, Some("message_delta"), W2_DELTA2);
    sse(&mut s, Some("message_stop"), r#"{"type":"message_stop"}"#);
    let r = s.record().unwrap();
    assert_eq!(r, anthropic(2000, 50_000, 10_000, 0, 812));
    let c = r.columns();
    assert_eq!(
        (
            c.prompt_tokens,
            c.cache_read_tokens,
            c.cache_creation_tokens,
            c.completion_tokens,
            c.total_tokens
        ),
        (2000, 50_000, 10_000, 812, 62_812)
    );
    assert_eq!(s.actual_model(), Some("claude-sonnet-4-5-20250929"));
}

#[test]
fn w2b_after_the_first_event_the_record_has_output_1() {
    let mut s = UsageState::new();
    sse(&mut s, Some("message_start"), W2_START);
    assert_eq!(s.record(), Some(anthropic(2000, 50_000, 10_000, 0, 1)));
}

#[test]
fn w3_cache_creation_object_splits_the_write() {
    let body = br#"{"type":"message","model":"claude-sonnet-4-5","usage":{"input_tokens":500,"cache_read_input_tokens":0,"cache_creation_input_tokens":30000,"cache_creation":{"ephemeral_5m_input_tokens":10000,"ephemeral_1h_input_tokens":20000},"output_tokens":1000}}"#;
    let e = extract_plain(body);
    let r = e.record.unwrap();
    assert_eq!(r, anthropic(500, 0, 10_000, 20_000, 1000));
    assert_eq!(
        (
            r.columns().cache_creation_tokens,
            r.columns().cache_write_1h_tokens,
            r.columns().total_tokens
        ),
        (30_000, 20_000, 31_500)
    );
}

#[test]
fn later_total_without_object_undoes_the_split() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        None,
        r#"{"type":"message_delta","usage":{"cache_creation_input_tokens":30000,"cache_creation":{"ephemeral_1h_input_tokens":20000}}}"#,
    );
    assert_eq!(s.record().unwrap().cache_write_5m, 0);
    assert_eq!(s.record().unwrap().cache_write_1h, 20_000);
    sse(
        &mut s,
        None,
        r#"{"type":"message_delta","usage":{"cache_creation_input_tokens":30000}}"#,
    );
    assert_eq!(
        (
            s.record().unwrap().cache_write_5m,
            s.record().unwrap().cache_write_1h
        ),
        (30_000, 0)
    );
    // A delta without cache information keeps the last decision.
    sse(
        &mut s,
        None,
        r#"{"type":"message_delta","usage":{"output_tokens":5}}"#,
    );
    assert_eq!(s.record().unwrap().cache_write_5m, 30_000);
}

#[test]
fn w5_chat_usage_chunk_replaces_and_null_is_ignored() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        None,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-5-2025-08-07","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
    );
    assert!(!s.has_usage());
    sse(
        &mut s,
        None,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"gpt-5-2025-08-07","choices":[],"usage":{"prompt_tokens":12000,"completion_tokens":1500,"total_tokens":13500,"prompt_tokens_details":{"cached_tokens":8000},"completion_tokens_details":{"reasoning_tokens":1024}}}"#,
    );
    sse(&mut s, None, "[DONE]");
    let r = s.record().unwrap();
    assert_eq!(r, openai(4000, 8000, 1500, 1024));
    let c = r.columns();
    assert_eq!(
        (
            c.prompt_tokens,
            c.cache_read_tokens,
            c.completion_tokens,
            c.reasoning_tokens,
            c.total_tokens
        ),
        (12_000, 8000, 1500, 1024, 13_500)
    );
    assert_eq!(s.actual_model(), Some("gpt-5-2025-08-07"));
    assert_eq!(s.api(), Some(Api::Chat));
}

#[test]
fn chat_usage_object_replaces_the_whole_state() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#,
    );
    sse(
        &mut s,
        None,
        r#"{"choices":[],"usage":{"prompt_tokens":20}}"#,
    );
    assert_eq!(s.record(), Some(openai(20, 0, 0, 0)));
}

#[test]
fn w6_responses_terminal_usage_and_model() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        Some("response.created"),
        r#"{"type":"response.created","response":{"id":"resp_1","object":"response","model":"gpt-5","status":"in_progress","usage":null}}"#,
    );
    sse(
        &mut s,
        Some("response.output_text.delta"),
        r#"{"type":"response.output_text.delta","delta":"hi"}"#,
    );
    assert!(!s.has_usage());
    sse(
        &mut s,
        Some("response.completed"),
        r#"{"type":"response.completed","response":{"id":"resp_1","object":"response","model":"gpt-5","status":"completed","usage":{"input_tokens":30000,"input_tokens_details":{"cached_tokens":20000},"output_tokens":4000,"output_tokens_details":{"reasoning_tokens":3000},"total_tokens":34000}}}"#,
    );
    let r = s.record().unwrap();
    assert_eq!(r, openai(10_000, 20_000, 4000, 3000));
    let c = r.columns();
    assert_eq!(
        (c.prompt_tokens, c.total_tokens, c.reasoning_tokens),
        (30_000, 34_000, 3000)
    );
    assert_eq!(s.actual_model(), Some("gpt-5"));
}

#[test]
fn responses_type_may_come_from_the_event_line() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        Some("response.completed"),
        r#"{"response":{"model":"gpt-5","usage":{"input_tokens":3,"output_tokens":4}}}"#,
    );
    assert_eq!(s.record(), Some(openai(3, 0, 4, 0)));
}

#[test]
fn hostile_counts_are_absent() {
    for (value, expected) in [
        ("null", 7),
        ("-1", 7),
        ("9223372036854775808", 7),
        ("18446744073709551616", 7),
        ("1.5", 7),
        ("\"12\"", 7),
        ("[1]", 7),
        ("{\"a\":1}", 7),
        ("true", 7),
        ("9223372036854775807", 9_223_372_036_854_775_807),
        ("0", 0),
    ] {
        let mut s = UsageState::new();
        sse(
            &mut s,
            None,
            r#"{"type":"message_delta","usage":{"output_tokens":7}}"#,
        );
        sse(
            &mut s,
            None,
            &format!(r#"{{"type":"message_delta","usage":{{"output_tokens":{value}}}}}"#),
        );
        assert_eq!(s.record().unwrap().output, expected, "value {value}");
    }
}

#[test]
fn missing_usage_fields_are_zero_and_non_object_usage_is_absent() {
    let e = extract_plain(br#"{"type":"message","model":"m","usage":{}}"#);
    assert_eq!(e.record, Some(anthropic(0, 0, 0, 0, 0)));
    let e = extract_plain(br#"{"type":"message","model":"m","usage":[1,2]}"#);
    assert_eq!(e.record, None);
    assert_eq!(e.actual_model.as_deref(), Some("m"));
    let e = extract_plain(br#"{"type":"message","model":"","usage":null}"#);
    assert_eq!((e.record, e.actual_model), (None, None));
}

#[test]
fn plain_detection_order() {
    let cases: [(&[u8], Option<Api>, Option<UsageRecord>); 8] = [
        (br#"{"object":"response","model":"gpt-5","usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":2},"output_tokens":1}}"#, Some(Api::Responses), Some(openai(3, 2, 1, 0))),
        (br#"{"type":"message","usage":{"input_tokens":5,"output_tokens":1}}"#, Some(Api::Anthropic), Some(anthropic(5, 0, 0, 0, 1))),
        (br#"{"usage":{"prompt_tokens":5,"completion_tokens":1}}"#, Some(Api::Chat), Some(openai(5, 0, 1, 0))),
        (br#"{"usage":{"input_tokens":5,"input_tokens_details":{},"output_tokens":1}}"#, Some(Api::Responses), Some(openai(5, 0, 1, 0))),
        (br#"{"usage":{"input_tokens":5,"output_tokens":1}}"#, Some(Api::Anthropic), Some(anthropic(5, 0, 0, 0, 1))),
        (br#"{"model":"llama3","done":true,"prompt_eval_count":26,"eval_count":290}"#, Some(Api::Ollama), Some(openai(26, 0, 290, 0))),
        (br#"{"input_tokens":42}"#, None, None),
        (b"not json", None, None),
    ];
    for (body, api, record) in cases {
        let e = extract_plain(body);
        assert_eq!(
            (e.api, e.record),
            (api, record),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn ndjson_done_line_carries_usage_and_is_terminal() {
    let mut s = UsageState::new();
    assert!(
        !s.observe_ndjson_line(br#"{"model":"llama3","message":{"content":"hi"},"done":false}"#)
    );
    assert!(!s.has_usage());
    assert!(s.observe_ndjson_line(
        br#"{"model":"llama3:8b","done":true,"prompt_eval_count":26,"eval_count":290}"#
    ));
    assert_eq!(s.record(), Some(openai(26, 0, 290, 0)));
    assert_eq!(s.actual_model(), Some("llama3:8b"));
}

#[test]
fn escaped_keys_pass_the_prefilter() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        None,
        r#"{"type":"message_delta","\u0075sage":{"output_tokens":9}}"#,
    );
    assert_eq!(s.record().unwrap().output, 9);
}

#[test]
fn events_without_usage_or_model_are_not_parsed_and_change_nothing() {
    let mut s = UsageState::new();
    sse(
        &mut s,
        Some("content_block_delta"),
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
    );
    sse(&mut s, None, "[DONE]");
    sse(&mut s, None, "{broken");
    assert_eq!((s.record(), s.actual_model()), (None, None));
}

fn anthropic_usage_event() -> impl Strategy<Value = String> {
    let field = |name: &'static str| {
        proptest::option::of(0u64..100_000).prop_map(move |v| v.map(|v| format!(r#""{name}":{v}"#)))
    };
    (
        field("input_tokens"),
        field("cache_read_input_tokens"),
        field("cache_creation_input_tokens"),
        field("output_tokens"),
        proptest::option::of((0u64..1000, 0u64..1000)),
    )
        .prop_map(|(a, b, c, d, split)| {
            let mut parts: Vec<String> = [a, b, c, d].into_iter().flatten().collect();
            if let Some((x, y)) = split {
                parts.push(format!(
                    r#""cache_creation":{{"ephemeral_5m_input_tokens":{x},"ephemeral_1h_input_tokens":{y}}}"#
                ));
            }
            format!(r#"{{"type":"message_delta","usage":{{{}}}}}"#, parts.join(","))
        })
}

fn chat_usage_chunk() -> impl Strategy<Value = String> {
    (0u64..100_000, 0u64..100_000, 0u64..100_000).prop_map(|(p, c, k)| {
        format!(r#"{{"choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"prompt_tokens_details":{{"cached_tokens":{k}}}}}}}"#)
    })
}

proptest! {
    #[test]
    fn repeating_an_anthropic_usage_event_changes_nothing(
        events in proptest::collection::vec(anthropic_usage_event(), 1..8),
        dup in any::<prop::sample::Index>(),
    ) {
        let mut once = UsageState::new();
        let mut twice = UsageState::new();
        let d = dup.index(events.len());
        for (i, e) in events.iter().enumerate() {
            sse(&mut once, None, e);
            sse(&mut twice, None, e);
            if i == d {
                sse(&mut twice, None, e);
            }
        }
        prop_assert_eq!(once.record(), twice.record());
    }

    #[test]
    fn repeating_a_chat_usage_chunk_changes_nothing(
        events in proptest::collection::vec(chat_usage_chunk(), 1..6),
        dup in any::<prop::sample::Index>(),
    ) {
        let mut once = UsageState::new();
        let mut twice = UsageState::new();
        let d = dup.index(events.len());
        for (i, e) in events.iter().enumerate() {
            sse(&mut once, None, e);
            sse(&mut twice, None, e);
            if i == d {
                sse(&mut twice, None, e);
            }
        }
        prop_assert_eq!(once.record(), twice.record());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut s = UsageState::new();
        s.observe_sse_event(None, &data);
        s.observe_ndjson_line(&data);
        let _ = extract_plain(&data);
    }
}
