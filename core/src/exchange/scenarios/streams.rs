//! Successful relays: SSE with the terminal hold, plain JSON, usage-chunk removal,
//! Responses, streams without a terminal, non-LLM pass-through, and the driving contract.

use super::*;
use crate::exchange::StorageOp;
use crate::exchange::sim::Ev;
use crate::exchange::{MetricEvent, UpstreamOp};

#[test]
fn happy_sse_stream_holds_the_terminal_until_the_commit_and_costs_w2() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();

    assert_eq!(
        s.client_bytes(),
        W2.concat(),
        "every byte reaches the client"
    );
    let finalized = s.input_at("finalized").expect("finalize reply");
    let terminal = body_with(&s, "message_stop").expect("terminal released");
    assert!(terminal > finalized, "terminal event only after the commit");
    assert!(body_with(&s, "message_start").expect("first event") < finalized);
    let end = s
        .position(|r| matches!(r, Rec::Down(Downstream::End)))
        .expect("end");
    assert!(end > finalized && end > s.input_at("end").expect("upstream end"));
    assert!(matches!(
        s.downs()[0],
        Downstream::Head {
            content_length: None,
            ..
        }
    ));

    let row = s.finalize();
    assert_eq!(row.cost_nanousd, 70_680_000);
    assert_eq!(
        (row.lifecycle_status.as_str(), row.status),
        ("completed", 200)
    );
    assert_eq!(
        row.actual_model.as_deref(),
        Some("claude-sonnet-4-5-20250929")
    );
    assert_eq!(row.columns.prompt_tokens, 2_000);
    assert_eq!(row.columns.cache_read_tokens, 50_000);
    assert_eq!(row.columns.cache_creation_tokens, 10_000);
    assert_eq!(row.columns.completion_tokens, 812);
    assert_eq!(row.columns.total_tokens, 62_812);
    assert!(row.streamed && !row.usage_incomplete && !row.lifecycle_status.incomplete());
    let checkpoints = s
        .storage()
        .iter()
        .filter(|op| matches!(op, StorageOp::CheckpointUsage { .. }))
        .count();
    assert_eq!(checkpoints, 1, "usage checkpointed once, at message_start");
    assert_eq!(s.outcomes(), vec![crate::breaker::OutcomeClass::Success]);
}

#[test]
fn terminal_only_first_chunk_sends_head_with_the_released_bytes() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &[&W2.concat()], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), W2.concat());
    let finalized = s.input_at("finalized").expect("reply");
    assert!(body_with(&s, "message_stop").expect("terminal") > finalized);
    assert!(matches!(s.downs()[0], Downstream::Head { .. }));
}

#[test]
fn plain_json_is_sent_whole_after_the_commit_with_its_length_and_costs_w1() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(script(
        json_head(200),
        &[&W1_BODY[..40], &W1_BODY[40..]],
        true,
    ));
    s.run();
    s.check_invariants();

    let downs = s.downs();
    assert_eq!(downs.len(), 3, "head, body, end: {downs:?}");
    let Downstream::Head { content_length, .. } = &downs[0] else {
        panic!("head first");
    };
    assert_eq!(*content_length, Some(W1_BODY.len() as u64));
    assert_eq!(s.client_bytes(), W1_BODY);
    let finalized = s.input_at("finalized").expect("reply");
    let head_at = s
        .position(|r| matches!(r, Rec::Down(Downstream::Head { .. })))
        .expect("head");
    assert!(head_at > finalized, "nothing before the commit");
    let row = s.finalize();
    assert_eq!(row.cost_nanousd, 10_500_000);
    assert_eq!(row.columns.prompt_tokens, 1_000);
    assert_eq!(row.columns.completion_tokens, 500);
    assert!(!row.streamed);
}

#[test]
fn w5_usage_chunk_is_removed_from_the_client_bytes_but_counted() {
    let events = [
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5-2025-08-07\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5-2025-08-07\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5-2025-08-07\",\"choices\":[],\"usage\":{\"prompt_tokens\":12000,\"completion_tokens\":1500,\"total_tokens\":13500,\"prompt_tokens_details\":{\"cached_tokens\":8000},\"completion_tokens_details\":{\"reasoning_tokens\":1024}}}\n\n",
        "data: [DONE]\n\n",
    ];
    let req = sim::request(
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        r#"{"model":"gpt-5","stream":true,"messages":[]}"#,
    );
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(
        head_with(
            200,
            &[
                ("content-type", "text/event-stream"),
                ("content-length", "999"),
            ],
        ),
        &events,
        true,
    ));
    s.run();
    s.check_invariants();

    let sent = s
        .trace
        .iter()
        .find_map(|(_, r)| match r {
            Rec::Upstream(UpstreamOp::Send { request, .. }) => Some(request.body.clone()),
            _ => None,
        })
        .expect("sent");
    assert!(String::from_utf8_lossy(&sent).contains(r#""include_usage":true"#));
    assert_eq!(s.client_bytes(), [events[0], events[1], events[3]].concat());
    let Downstream::Head {
        headers,
        content_length,
        ..
    } = &s.downs()[0]
    else {
        panic!("head first");
    };
    assert_eq!(*content_length, None);
    assert!(headers.get("content-length").is_none());
    let row = s.finalize();
    assert_eq!(row.cost_nanousd, 21_000_000);
    assert_eq!(row.columns.prompt_tokens, 12_000);
    assert_eq!(row.columns.reasoning_tokens, 1_024);
    assert!(row.meta_json.contains(r#""stream_usage_injected":true"#));
    assert!(row.meta_json.contains(r#""usage_convention":"openai""#));
}

#[test]
fn w6_responses_stream_holds_from_the_event_line() {
    let events = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5\"}}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-5\",\"status\":\"completed\",\"usage\":{\"input_tokens\":30000,\"input_tokens_details\":{\"cached_tokens\":20000},\"output_tokens\":4000,\"output_tokens_details\":{\"reasoning_tokens\":3000},\"total_tokens\":34000}}}\n\n",
    ];
    let req = sim::request(
        "POST",
        "/v1/responses",
        &[("content-type", "application/json")],
        r#"{"model":"gpt-5","stream":true,"input":"hi"}"#,
    );
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(sse_head(), &events, true));
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), events.concat());
    let finalized = s.input_at("finalized").expect("reply");
    assert!(body_with(&s, "event: response.completed").expect("terminal") > finalized);
    let row = s.finalize();
    assert_eq!(row.cost_nanousd, 55_000_000);
    assert_eq!(row.provider, "openai");
    assert_eq!(row.columns.cache_read_tokens, 20_000);
}

#[test]
fn clean_close_without_terminal_is_completed_and_usage_incomplete_without_usage() {
    let chunk = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &[chunk], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), chunk);
    assert_eq!(last_down(&s), Some(Downstream::End));
    let row = s.finalize();
    assert_eq!(row.lifecycle_status.as_str(), "completed");
    assert!(row.usage_incomplete, "no usage on a generation path");
    assert!(
        s.events()
            .contains(&Ev::Metric(MetricEvent::UsageIncomplete))
    );
}

#[test]
fn clean_close_after_usage_without_terminal_keeps_the_usage() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &W2[..3], true));
    s.run();
    s.check_invariants();
    let row = s.finalize();
    assert_eq!(row.lifecycle_status.as_str(), "completed");
    assert_eq!(row.columns.completion_tokens, 812);
    assert!(!row.usage_incomplete);
}

#[test]
fn finalize_failure_applies_the_fallback_then_releases() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.finalize_replies
        .push_back(Err(crate::exchange::StorageFailure {
            message: "disk full".to_owned(),
        }));
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    let fallback = s
        .position(|r| matches!(r, Rec::Storage(StorageOp::FinalizeFallback { .. })))
        .expect("fallback");
    let Some(StorageOp::FinalizeFallback { message, .. }) = s
        .storage()
        .into_iter()
        .find(|op| matches!(op, StorageOp::FinalizeFallback { .. }))
    else {
        panic!("fallback");
    };
    assert_eq!(message, "finalize_failed: disk full");
    let terminal = body_with(&s, "message_stop").expect("released");
    let second_reply = s
        .trace
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Rec::In("finalized")))
        .nth(1)
        .map(|(i, _)| i)
        .expect("second reply");
    assert!(fallback < second_reply && terminal > second_reply);
    assert!(s.logged("lifecycle.finalize_failed"));
    assert_eq!(s.client_bytes(), W2.concat());
}

#[test]
fn finalize_and_fallback_failure_still_release() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    for _ in 0..2 {
        s.finalize_replies
            .push_back(Err(crate::exchange::StorageFailure {
                message: "gone".to_owned(),
            }));
    }
    s.attempt(script(json_head(200), &[W1_BODY], true));
    s.run();
    s.check_invariants();
    assert!(s.logged("lifecycle.finalize_lost"));
    assert_eq!(s.client_bytes(), W1_BODY);
    assert_eq!(last_down(&s), Some(Downstream::End));
}

#[test]
fn non_llm_get_passes_through_without_storage() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(json_head(200), &["{\"data\":", "[]}"], true));
    s.run();
    s.check_invariants();
    assert!(s.storage().is_empty(), "no storage ops at all");
    assert_eq!(s.client_bytes(), "{\"data\":[]}");
    assert!(matches!(s.downs()[0], Downstream::Head { .. }));
    assert_eq!(last_down(&s), Some(Downstream::End));
    assert_eq!(s.sends().len(), 1);
}

#[test]
fn drain_order_puts_storage_before_upstream_before_downstream_before_events() {
    // A header timeout: one input produces a cancel, a finalize, a log and the outcome.
    let mut s = Sim::start(
        sim::core(&[("UPSTREAM_CONNECT_TIMEOUT_MS", "500")]),
        messages_plain(),
    );
    s.attempt(vec![(0, Up::Written)]);
    s.run();
    s.check_invariants();
    let rank = |r: &Rec| match r {
        Rec::In(_) => None,
        Rec::Storage(_) => Some(0),
        Rec::Upstream(_) => Some(1),
        Rec::Down(_) => Some(2),
        Rec::Event(_) => Some(3),
    };
    // Between two inputs, ranks never decrease.
    let mut last = 0;
    for (_, r) in &s.trace {
        match rank(r) {
            None => last = 0,
            Some(k) => {
                assert!(k >= last, "drain order broken at {r:?}");
                last = k;
            }
        }
    }
    let timeout = s.input_at("timeout").expect("timeout fired");
    let finalize = s
        .position(|r| matches!(r, Rec::Storage(StorageOp::Finalize(_))))
        .expect("finalize");
    let cancel = s
        .position(|r| matches!(r, Rec::Upstream(UpstreamOp::Cancel)))
        .expect("cancel");
    assert!(timeout < finalize && finalize < cancel);
}

#[test]
fn handle_timeout_early_late_and_twice_is_harmless() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.at(0, Feed::Timeout)
        .at(5, Feed::Timeout)
        .at(25, Feed::Timeout);
    s.at(25, Feed::Timeout).at(500, Feed::Timeout);
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), W2.concat());
    assert_eq!(s.finalize().cost_nanousd, 70_680_000);
}

#[test]
fn a_stale_now_is_clamped() {
    let mut s = Sim::start(
        sim::core(&[("UPSTREAM_TIMEOUT_MS", "1000")]),
        messages_stream(),
    );
    s.at(15, Feed::StaleTimeout).at(35, Feed::StaleTimeout);
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    let row = s.finalize();
    assert_eq!(row.lifecycle_status.as_str(), "completed");
    assert!(row.latency_ms >= 50, "latency never goes backwards");
}
