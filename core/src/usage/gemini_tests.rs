//! Gemini extraction (`gemini.md` §4) and the extraction part of worked example W7
//! (`accounting.md` §7).

use proptest::prelude::*;

use super::*;

/// W7's chunks: running totals, the thoughts and tool-use prompt appearing only later.
pub(crate) const W7_CHUNK1: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":12000,"cachedContentTokenCount":8000,"candidatesTokenCount":5,"totalTokenCount":12005},"modelVersion":"gemini-2.5-pro"}"#;
pub(crate) const W7_CHUNK2: &str = r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12000,"cachedContentTokenCount":8000,"candidatesTokenCount":300,"thoughtsTokenCount":1200,"toolUsePromptTokenCount":500,"totalTokenCount":14000},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#;

fn w7_record() -> UsageRecord {
    UsageRecord {
        convention: Convention::OpenAi,
        input_uncached: 4500,
        cache_read: 8000,
        cache_write_5m: 0,
        cache_write_1h: 0,
        output: 1500,
        reasoning: 1200,
    }
}

fn check_w7_columns(r: UsageRecord) {
    let c = r.columns();
    assert_eq!(
        (
            c.prompt_tokens,
            c.cache_read_tokens,
            c.cache_creation_tokens,
            c.completion_tokens,
            c.reasoning_tokens,
            c.total_tokens
        ),
        (12_500, 8000, 0, 1500, 1200, 14_000)
    );
}

#[test]
fn w7_sse_chunks_merge_cumulatively_never_sum() {
    let mut s = UsageState::new();
    s.observe_sse_event(None, W7_CHUNK1.as_bytes());
    assert_eq!(
        s.record().map(|r| (r.input_uncached, r.output)),
        Some((4000, 5))
    );
    s.observe_sse_event(None, W7_CHUNK2.as_bytes());
    assert_eq!(s.api(), Some(Api::Gemini));
    assert_eq!(s.record(), Some(w7_record()));
    assert_eq!(s.actual_model(), Some("gemini-2.5-pro"));
    check_w7_columns(w7_record());
}

#[test]
fn w7_json_array_elements_and_v1internal_wrapping_give_the_same_record() {
    let mut a = UsageState::new();
    a.observe_json_element(W7_CHUNK1.as_bytes());
    a.observe_json_element(W7_CHUNK2.as_bytes());
    assert_eq!(a.record(), Some(w7_record()));

    let mut w = UsageState::new();
    for c in [W7_CHUNK1, W7_CHUNK2] {
        let wrapped = format!(r#"{{"response":{c},"traceId":"t"}}"#);
        w.observe_sse_event(None, wrapped.as_bytes());
    }
    assert_eq!(w.record(), Some(w7_record()));
    assert_eq!(w.actual_model(), Some("gemini-2.5-pro"));

    let body = format!("[{W7_CHUNK1},\r\n{W7_CHUNK2}]");
    let e = extract_plain(body.as_bytes());
    assert_eq!(e.record, Some(w7_record()));
    assert_eq!(e.api, Some(Api::Gemini));
    assert_eq!(e.actual_model.as_deref(), Some("gemini-2.5-pro"));
}

#[test]
fn plain_generate_content_and_wrapped_plain_body() {
    let e = extract_plain(W7_CHUNK2.as_bytes());
    assert_eq!(e.api, Some(Api::Gemini));
    assert_eq!(
        e.record.map(|r| (r.input_uncached, r.cache_read, r.output)),
        Some((4500, 8000, 1500))
    );
    assert_eq!(e.actual_model.as_deref(), Some("gemini-2.5-pro"));
    let wrapped = format!(r#"{{"response":{W7_CHUNK2}}}"#);
    let e = extract_plain(wrapped.as_bytes());
    assert_eq!(e.record, Some(w7_record()));
    // countTokens answers `totalTokens`, no usageMetadata: no usage.
    let e = extract_plain(
        br#"{"totalTokens":31,"promptTokensDetails":[{"modality":"TEXT","tokenCount":31}]}"#,
    );
    assert_eq!((e.record, e.api), (None, None));
}

#[test]
fn hostile_gemini_counts_are_absent_and_cached_above_prompt_saturates() {
    let mut s = UsageState::new();
    s.observe_sse_event(
        None,
        br#"{"usageMetadata":{"promptTokenCount":-1,"cachedContentTokenCount":"5","candidatesTokenCount":1.5,"thoughtsTokenCount":18446744073709551616}}"#,
    );
    assert_eq!(s.record(), Some(UsageRecord::empty(Convention::OpenAi)));
    s.observe_sse_event(
        None,
        br#"{"usageMetadata":{"promptTokenCount":10,"cachedContentTokenCount":50}}"#,
    );
    let r = s.record().unwrap();
    assert_eq!((r.input_uncached, r.cache_read), (0, 50));
    // A chunk that is not Gemini (no usageMetadata, no modelVersion) changes nothing.
    s.observe_json_element(br#"{"candidates":[{"content":{"parts":[{"text":"usage model"}]}}]}"#);
    assert_eq!(s.record(), Some(r));
}

fn gemini_chunk() -> impl Strategy<Value = String> {
    let field = |name: &'static str| {
        proptest::option::of(0u64..100_000).prop_map(move |v| v.map(|v| format!(r#""{name}":{v}"#)))
    };
    (
        field("promptTokenCount"),
        field("cachedContentTokenCount"),
        field("candidatesTokenCount"),
        field("thoughtsTokenCount"),
        field("toolUsePromptTokenCount"),
        any::<bool>(),
    )
        .prop_map(|(a, b, c, d, e, wrap)| {
            let fields: Vec<String> = [a, b, c, d, e].into_iter().flatten().collect();
            let chunk = format!(
                r#"{{"usageMetadata":{{{}}},"modelVersion":"gemini-x"}}"#,
                fields.join(",")
            );
            if wrap {
                format!(r#"{{"response":{chunk}}}"#)
            } else {
                chunk
            }
        })
}

proptest! {
    /// Cumulative merge (`gemini.md` §4): repeating any chunk changes nothing, and the record
    /// equals the latest value of each field.
    #[test]
    fn repeating_a_gemini_chunk_changes_nothing(
        chunks in proptest::collection::vec(gemini_chunk(), 1..8),
        repeat in any::<prop::sample::Index>(),
    ) {
        let mut once = UsageState::new();
        let mut twice = UsageState::new();
        let r = repeat.index(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            once.observe_json_element(c.as_bytes());
            twice.observe_json_element(c.as_bytes());
            if i == r {
                twice.observe_json_element(c.as_bytes());
            }
        }
        prop_assert_eq!(once.record(), twice.record());

        let latest = |name: &str| {
            chunks.iter().rev().find_map(|c| {
                let at = c.find(&format!("\"{name}\":"))? + name.len() + 3;
                let digits: String = c[at..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok()
            }).unwrap_or(0)
        };
        let prompt = latest("promptTokenCount") + latest("toolUsePromptTokenCount");
        let cached = latest("cachedContentTokenCount");
        let want = UsageRecord {
            convention: Convention::OpenAi,
            input_uncached: prompt.saturating_sub(cached),
            cache_read: cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: latest("candidatesTokenCount") + latest("thoughtsTokenCount"),
            reasoning: latest("thoughtsTokenCount"),
        };
        prop_assert_eq!(once.record(), Some(want));
    }
}
