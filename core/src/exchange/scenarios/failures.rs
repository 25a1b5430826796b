//! Upstream failures, timeouts, retries, refusals after the pre-log, and storage failures.

use super::*;
use crate::breaker::OutcomeClass;
use crate::exchange::{StorageFailure, StorageOp, UpstreamOp};
use crate::proxy::{KeyLookup, ManagedKey};

#[test]
fn first_byte_timeout_after_the_head_answers_e18_and_cancels() {
    let core = sim::core(&[("UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS", "1000")]);
    let mut s = Sim::start(core, messages_stream());
    s.attempt(vec![(0, Up::Written), (10, sse_head())]);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 504);
    assert_eq!(reply_body(&s), r#"{"error":"Upstream timeout"}"#);
    assert_eq!(s.cancels(), 1, "upstream cancelled");
    let timeout_ms = s
        .trace
        .iter()
        .find(|(_, r)| matches!(r, Rec::In("timeout")))
        .map(|(t, _)| *t)
        .expect("timeout");
    assert_eq!(timeout_ms, 1001, "attempt start (1 ms) + 1000 ms");
    let row = s.finalize();
    assert_eq!(
        (row.status, row.error_code),
        (504, Some("upstream_timeout"))
    );
    assert_eq!(row.error_message.as_deref(), Some("upstream_body_timeout"));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Failure]);
    assert!(
        !s.downs()
            .iter()
            .any(|d| matches!(d, Downstream::Head { .. }))
    );
}

#[test]
fn header_timeout_before_the_head_answers_e17_connect() {
    let core = sim::core(&[("UPSTREAM_CONNECT_TIMEOUT_MS", "500")]);
    let mut s = Sim::start(core, messages_plain());
    s.attempt(vec![(0, Up::Written)]);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 504);
    assert!(reply_body(&s).contains(r#""timeoutKind":"connect""#));
    assert_eq!(s.sends().len(), 1, "a timeout is not retried");
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (504, Some("upstream_error")));
    assert!(row.error_message.as_deref().is_some_and(|m| {
        m.starts_with("upstream HTTP 504: {\"error\":{\"code\":\"aborted-due-to-timeout\"")
    }));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Failure]);
}

#[test]
fn total_timeout_before_the_head_is_e17_total() {
    let core = sim::core(&[("UPSTREAM_TIMEOUT_MS", "700")]);
    let mut s = Sim::start(core, messages_plain());
    s.attempt(vec![(0, Up::Written)]);
    s.run();
    s.check_invariants();
    assert!(reply_body(&s).contains(r#""timeoutKind":"total""#));
    assert_eq!(s.finalize().status, 504);
}

#[test]
fn total_timeout_while_reading_a_plain_body_is_o8() {
    let core = sim::core(&[("UPSTREAM_TIMEOUT_MS", "700")]);
    let mut s = Sim::start(core, messages_plain());
    s.attempt(vec![
        (0, Up::Written),
        (10, json_head(200)),
        (20, body("{\"partial")),
    ]);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 504);
    assert_eq!(s.cancels(), 1);
    assert_eq!(s.finalize().error_code, Some("upstream_timeout"));
}

#[test]
fn connect_refused_post_is_tried_three_times_with_backoff_then_e16() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    for _ in 0..3 {
        s.attempt(vec![(5, refused())]);
    }
    s.run();
    s.check_invariants();
    let sends = s.sends();
    assert_eq!(sends.len(), 3);
    let gap1 = sends[1] - sends[0] - 5;
    let gap2 = sends[2] - sends[1] - 5;
    assert!((200..300).contains(&gap1), "first backoff {gap1}");
    assert!((400..500).contains(&gap2), "second backoff {gap2}");
    assert_eq!(reply_status(&s), 503);
    let body = reply_body(&s);
    assert!(body.contains(r#""code":"network""#) && body.contains("ConnectError"));
    assert!(body.contains(r#""retryable":true"#));
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (503, Some("upstream_error")));
    assert!(row.meta_json.contains(r#""attempts":3"#));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Failure]);
}

#[test]
fn get_503_is_retried_and_the_second_answer_relayed() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(
        json_head(503),
        &["{\"error\":\"overloaded\"}"],
        true,
    ));
    s.attempt(script(json_head(200), &["{\"data\":[]}"], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.sends().len(), 2);
    assert_eq!(s.client_bytes(), "{\"data\":[]}");
    let heads: Vec<_> = s
        .downs()
        .into_iter()
        .filter_map(|d| match d {
            Downstream::Head { status, .. } => Some(status.as_u16()),
            _ => None,
        })
        .collect();
    assert_eq!(heads, vec![200], "the client sees one clean response");
    assert_eq!(s.outcomes(), vec![OutcomeClass::Success]);
}

/// A shell that still delivers a failed attempt's inputs after the retry was sent: they
/// carry the old attempt's number and are ignored, so the client gets the new answer and
/// none of the old one's bytes.
#[test]
fn a_stale_attempts_late_response_is_not_taken_for_the_retry() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(vec![
        (5, refused()),
        (350, json_head(200)),
        (360, body("stale")),
        (370, Up::End),
    ]);
    s.attempt(vec![
        (0, Up::Written),
        (400, json_head(200)),
        (410, body("fresh")),
        (420, Up::End),
    ]);
    s.run();
    s.check_invariants();
    let sends = s.sends();
    assert_eq!(sends.len(), 2);
    assert!(
        sends[1] < 350,
        "the retry is in flight when the stale head comes: {sends:?}"
    );
    assert_eq!(s.client_bytes(), "fresh");
    assert_eq!(s.outcomes(), vec![OutcomeClass::Success]);
}

#[test]
fn get_503_with_retry_after_waits_at_least_that_long() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(vec![
        (10, head_with(503, &[("retry-after", "1")])),
        (20, Up::End),
    ]);
    s.attempt(script(json_head(200), &["{}"], true));
    s.run();
    let sends = s.sends();
    assert!(
        sends[1] - sends[0] >= 1_020,
        "waited {} ms",
        sends[1] - sends[0]
    );
}

#[test]
fn short_circuit_503_is_relayed_once_and_breaker_neutral() {
    let sc = r#"{"error":{"code":"short-circuit","status":503,"providerId":"x"}}"#;
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(json_head(503), &[&sc[..10], &sc[10..]], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.sends().len(), 1, "never retried");
    assert_eq!(s.client_bytes(), sc);
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
    assert!(s.logged("upstream.passthrough_short_circuit"));
}

#[test]
fn short_circuit_503_on_an_llm_post_is_an_o2_row_and_neutral() {
    let sc = r#"{"error":{"code":"short-circuit","status":503}}"#;
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(script(json_head(503), &[sc], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), sc);
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (503, Some("upstream_error")));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn plain_503_on_the_last_attempt_is_a_breaker_failure() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(script(json_head(503), &["{\"error\":\"busy\"}"], true));
    s.run();
    s.check_invariants();
    assert_eq!(s.sends().len(), 1, "POST is not retried on a status");
    assert_eq!(s.outcomes(), vec![OutcomeClass::Failure]);
    assert_eq!(
        s.finalize().error_message.as_deref(),
        Some(r#"upstream HTTP 503: {"error":"busy"}"#)
    );
}

#[test]
fn status_429_is_relayed_with_its_headers_not_retried_and_neutral() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(
        head_with(
            429,
            &[("content-type", "application/json"), ("retry-after", "7")],
        ),
        &["{\"error\":\"slow down\"}"],
        true,
    ));
    s.run();
    s.check_invariants();
    assert_eq!(s.sends().len(), 1);
    let Downstream::Head {
        status, headers, ..
    } = &s.downs()[0]
    else {
        panic!("head");
    };
    assert_eq!(status.as_u16(), 429);
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"7"[..])
    );
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn redirect_is_not_followed_e20_o4() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(vec![
        (0, Up::Written),
        (10, head_with(302, &[("location", "http://127.0.0.1:9/x")])),
    ]);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 502);
    assert_eq!(
        reply_body(&s),
        r#"{"error":"Upstream redirect not followed"}"#
    );
    assert_eq!(s.cancels(), 1);
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (502, Some("bad_gateway")));
    assert_eq!(
        row.error_message.as_deref(),
        Some("upstream redirect 302 not followed")
    );
}

#[test]
fn plain_llm_body_over_50_mib_by_content_length_is_e19_o5() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(vec![
        (0, Up::Written),
        (
            10,
            head_with(
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-length", "52428801"),
                ],
            ),
        ),
    ]);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 502);
    assert!(reply_body(&s).contains("upstream response too large"));
    assert_eq!(s.cancels(), 1);
    assert_eq!(s.finalize().error_code, Some("response_too_large"));
    assert!(s.logged("passthrough.response_body_too_large"));
}

#[test]
fn plain_llm_body_over_50_mib_while_streaming_is_e19_o5() {
    let mib = Bytes::from(vec![b' '; 1 << 20]);
    let mut steps = vec![(0, Up::Written), (10, json_head(200))];
    for i in 0..51 {
        steps.push((20 + i, Up::Body(mib.clone())));
    }
    steps.push((100, Up::End));
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(steps);
    s.run();
    s.check_invariants();
    assert_eq!(reply_status(&s), 502);
    assert_eq!(s.cancels(), 1);
    let row = s.finalize();
    assert_eq!(
        row.error_message.as_deref(),
        Some("upstream response body exceeded 50MB limit")
    );
}

#[test]
fn upstream_reset_mid_stream_is_o10_with_usage_seen_and_a_cut() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    let mut steps = script(sse_head(), &W2[..2], false);
    steps.push((40, reset()));
    s.attempt(steps);
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), W2[..2].concat());
    assert_eq!(last_down(&s), Some(Downstream::Abort), "body cut, no End");
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (200, Some("stream_error")));
    assert_eq!(
        row.error_message.as_deref(),
        Some("upstream connection reset")
    );
    assert_eq!(row.columns.completion_tokens, 300);
    assert_eq!(row.columns.prompt_tokens, 2_000);
    assert!(row.usage_incomplete);
    assert_eq!(s.outcomes(), vec![OutcomeClass::Failure]);
}

#[test]
fn prelog_failure_answers_e13_and_sends_nothing_upstream() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.prelog = Err(StorageFailure {
        message: "readonly".to_owned(),
    });
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    assert!(s.sends().is_empty(), "no upstream request");
    assert_eq!(reply_status(&s), 503);
    assert!(reply_body(&s).contains("ACCOUNTING_UNAVAILABLE"));
    assert!(
        !s.storage()
            .iter()
            .any(|op| matches!(op, StorageOp::Finalize(_)))
    );
    assert!(s.logged("lifecycle.prelog_failed"));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn breaker_open_llm_call_is_prelogged_then_finalized_o9_e15() {
    let env = [
        ("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", "1"),
        ("UPSTREAM_MAX_RETRIES", "0"),
    ];
    let mut first = Sim::start(sim::core(&env), messages_plain());
    first.attempt(vec![(5, refused())]);
    first.run();
    assert_eq!(first.outcomes(), vec![OutcomeClass::Failure]);

    let mut s = Sim::start(first.core, messages_stream());
    s.run();
    s.check_invariants();
    assert!(s.sends().is_empty());
    assert!(matches!(s.storage()[0], StorageOp::PreLog(_)));
    let reply = s.client_reply().expect("E15");
    assert_eq!(reply.status.as_u16(), 503);
    assert!(reply.headers.get("retry-after").is_some());
    assert!(reply_body(&s).contains(r#""cause":"circuit breaker open""#));
    let row = s.finalize();
    assert_eq!((row.status, row.error_code), (503, Some("upstream_error")));
    assert!(s.logged("upstream.breaker_reject"));
}

#[test]
fn provider_not_allowed_for_the_key_is_o14_e14() {
    let mut req = messages_plain();
    req.head
        .headers
        .insert("authorization", "Bearer k1".parse().expect("value"));
    req.key = KeyLookup::Valid(ManagedKey {
        id: 3,
        allowed_providers: vec!["openai".to_owned()],
    });
    let mut s = Sim::start(sim::core(&[]), req);
    s.run();
    s.check_invariants();
    assert!(s.sends().is_empty());
    assert_eq!(reply_status(&s), 403);
    assert_eq!(
        reply_body(&s),
        r#"{"error":"provider not allowed for this API key"}"#
    );
    let row = s.finalize();
    assert_eq!(
        (row.status, row.error_code),
        (403, Some("provider_not_allowed"))
    );
    assert_eq!(row.proxy_api_key_id, Some(3));
}

#[test]
fn cancel_precedes_the_client_reply_in_one_drain() {
    let mut s = Sim::start(sim::core(&[]), messages_plain());
    s.attempt(vec![(0, Up::Written), (10, head_with(301, &[]))]);
    s.run();
    let cancel = s
        .position(|r| matches!(r, Rec::Upstream(UpstreamOp::Cancel)))
        .expect("cancel");
    let reply = s
        .position(|r| matches!(r, Rec::Down(Downstream::Reply(_))))
        .expect("reply");
    assert!(cancel < reply);
}

#[test]
fn relayed_heads_carry_the_security_headers_and_hsts_only_when_secure() {
    let relayed = |env: &[(&str, &str)]| {
        let req = sim::request("GET", "/v1/models", &[("x-forwarded-proto", "https")], "");
        let mut s = Sim::start(sim::core(env), req);
        s.attempt(script(
            head_with(
                200,
                &[
                    ("content-type", "application/json"),
                    ("strict-transport-security", "max-age=1"),
                ],
            ),
            &["{}"],
            true,
        ));
        s.run();
        s.check_invariants();
        let Downstream::Head { headers, .. } = &s.downs()[0] else {
            panic!("head");
        };
        headers.clone()
    };
    let secure = relayed(&[("TRUST_PROXY_HEADERS", "true")]);
    assert_eq!(
        secure.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    assert_eq!(
        secure
            .get("strict-transport-security")
            .map(|v| v.as_bytes()),
        Some(crate::gate::HSTS_VALUE.as_bytes())
    );
    // Untrusted forwarded headers: not secure, and the upstream's own HSTS is dropped.
    let plain = relayed(&[]);
    assert_eq!(
        plain.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    assert!(plain.get("strict-transport-security").is_none());
}
