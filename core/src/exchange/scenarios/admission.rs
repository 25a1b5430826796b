//! `Core` admission: rows 6–9 (`check_proxy_head`) and rows 11–16 (`start`) of
//! `datapath.md` §2.

use super::*;
use crate::exchange::ExchangeEvent;
use crate::exchange::MetricEvent;
use crate::head::RequestHead;
use crate::proxy::{Core, KeyLookup, ManagedKey, StartAction};
use crate::time::Instant;

fn proxy_head(pairs: &[(&str, &str)]) -> RequestHead {
    RequestHead::new(http::Method::POST, "/v1/messages", sim::headers(pairs))
}

fn status_of(r: Result<u64, crate::head::Reply>) -> u16 {
    r.expect_err("rejected").status.as_u16()
}

fn valid_key(allowed: &[&str]) -> KeyLookup {
    KeyLookup::Valid(ManagedKey {
        id: 9,
        allowed_providers: allowed.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn start_reply(core: &mut Core, req: crate::proxy::InboundRequest) -> Option<crate::head::Reply> {
    match core.start(req, Instant::from_millis(5), sim::WALL).action {
        StartAction::Reply(r) => Some(r),
        StartAction::Exchange(_) => None,
    }
}

#[test]
fn bad_origin_without_keys_is_403_bad_origin() {
    let core = sim::core(&[]);
    let head = proxy_head(&[("origin", "http://evil.example")]);
    let err = core
        .check_proxy_head(&head, &KeyLookup::NoCredential)
        .expect_err("rejected");
    assert_eq!(err.status.as_u16(), 403);
    assert_eq!(
        &err.body[..],
        br#"{"error":"Forbidden","code":"BAD_ORIGIN"}"#
    );
    let local = proxy_head(&[("origin", "http://localhost:5173")]);
    assert!(
        core.check_proxy_head(&local, &KeyLookup::NoCredential)
            .is_ok()
    );
}

#[test]
fn keys_required_answers_401_without_a_valid_key_and_skips_the_origin_check() {
    let core = sim::core(&[("PROXY_REQUIRE_API_KEY", "true")]);
    let head = proxy_head(&[("origin", "http://evil.example")]);
    assert_eq!(
        status_of(core.check_proxy_head(&head, &KeyLookup::NoCredential)),
        401
    );
    assert_eq!(
        status_of(core.check_proxy_head(&head, &KeyLookup::Unknown)),
        401
    );
    assert!(core.check_proxy_head(&head, &valid_key(&[])).is_ok());
}

#[test]
fn request_content_encoding_other_than_identity_is_415() {
    let core = sim::core(&[]);
    let gz = proxy_head(&[("content-encoding", "gzip")]);
    assert_eq!(
        status_of(core.check_proxy_head(&gz, &KeyLookup::NoCredential)),
        415
    );
    let id = proxy_head(&[("content-encoding", "Identity")]);
    assert!(core.check_proxy_head(&id, &KeyLookup::NoCredential).is_ok());
}

#[test]
fn declared_body_over_the_limit_is_413_and_the_limit_is_returned() {
    let core = sim::core(&[("MAX_REQUEST_BODY_BYTES", "1000")]);
    let big = proxy_head(&[("content-length", "1001")]);
    let err = core
        .check_proxy_head(&big, &KeyLookup::NoCredential)
        .expect_err("413");
    assert_eq!(err.status.as_u16(), 413);
    assert_eq!(
        &err.body[..],
        br#"{"error":"request body exceeds 1000 bytes","limit":1000}"#
    );
    let ok = proxy_head(&[("content-length", "1000")]);
    assert_eq!(
        core.check_proxy_head(&ok, &KeyLookup::NoCredential),
        Ok(1000)
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let mut core = sim::core(&[("RATE_LIMIT_PER_CLIENT_PER_MIN", "1")]);
    let first = start_reply(&mut core, sim::request("GET", "/v1/models", &[], ""));
    assert!(first.is_none(), "the first request passes");
    let start = core.start(
        sim::request("GET", "/v1/models", &[], ""),
        Instant::from_millis(6),
        sim::WALL,
    );
    let StartAction::Reply(reply) = start.action else {
        panic!("rate limited");
    };
    assert_eq!(reply.status.as_u16(), 429);
    assert_eq!(
        reply.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"60"[..])
    );
    assert_eq!(
        reply.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    assert!(
        start
            .events
            .iter()
            .any(|e| matches!(e, ExchangeEvent::Metric(MetricEvent::RateLimited)))
    );
}

#[test]
fn unknown_provider_selector_is_400() {
    let mut core = sim::core(&[]);
    let req = sim::request(
        "POST",
        "/v1/messages",
        &[("x-provider", "nope"), ("content-type", "application/json")],
        r#"{"model":"claude-sonnet-4-5"}"#,
    );
    let reply = start_reply(&mut core, req).expect("rejected before the pre-log");
    assert_eq!(reply.status.as_u16(), 400);
    assert_eq!(
        &reply.body[..],
        br#"{"error":"unknown provider: nope","code":"UNKNOWN_PROVIDER"}"#
    );
}

#[test]
fn key_restriction_refuses_a_non_llm_call_at_once_but_not_models() {
    let mut core = sim::core(&[]);
    let mut req = sim::request(
        "POST",
        "/v1/embeddings",
        &[("authorization", "Bearer k1")],
        "{}",
    );
    req.key = valid_key(&["anthropic"]);
    let start = core.start(req, Instant::from_millis(1), sim::WALL);
    assert_eq!(start.touch_key.as_ref().map(|(id, _)| *id), Some(9));
    let StartAction::Reply(reply) = start.action else {
        panic!("refused");
    };
    assert_eq!(reply.status.as_u16(), 403);

    let mut models = sim::request("GET", "/v1/models", &[("authorization", "Bearer k1")], "");
    models.key = valid_key(&["anthropic"]);
    assert!(
        start_reply(&mut core, models).is_none(),
        "/v1/models is exempt"
    );
}

#[test]
fn managed_key_header_is_not_forwarded_upstream() {
    let mut req = messages_plain();
    req.head
        .headers
        .insert("x-api-key", "managed-secret".parse().expect("value"));
    req.key = valid_key(&[]);
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(script(json_head(200), &[W1_BODY], true));
    s.run();
    s.check_invariants();
    let sent = s
        .trace
        .iter()
        .find_map(|(_, r)| match r {
            Rec::Upstream(crate::exchange::UpstreamOp::Send { request, .. }) => {
                Some(request.headers.clone())
            }
            _ => None,
        })
        .expect("sent");
    assert!(sent.get("x-api-key").is_none());
    assert_eq!(s.finalize().proxy_api_key_id, Some(9));
}

#[test]
fn refusals_carry_the_security_headers_with_hsts_only_on_a_trusted_https_request() {
    let hsts = |r: &crate::head::Reply| r.headers.contains_key("strict-transport-security");
    let framed = |r: &crate::head::Reply| {
        r.headers
            .get("x-frame-options")
            .is_some_and(|v| v == "DENY")
    };
    let https = [
        ("x-forwarded-proto", "https"),
        ("origin", "http://evil.example"),
    ];

    let trusted = sim::core(&[("TRUST_PROXY_HEADERS", "true")]);
    let refused = trusted
        .check_proxy_head(&proxy_head(&https), &KeyLookup::NoCredential)
        .expect_err("bad origin");
    assert!(framed(&refused) && hsts(&refused));
    // Forwarded headers are not trusted by default: the baseline headers, no HSTS.
    let plain = sim::core(&[]);
    let refused = plain
        .check_proxy_head(&proxy_head(&https), &KeyLookup::NoCredential)
        .expect_err("bad origin");
    assert!(framed(&refused) && !hsts(&refused));

    let mut trusted = sim::core(&[("TRUST_PROXY_HEADERS", "true")]);
    let req = sim::request(
        "POST",
        "/v1/messages",
        &[
            ("x-forwarded-proto", "https"),
            ("x-provider", "nope"),
            ("content-type", "application/json"),
        ],
        r#"{"model":"claude-sonnet-4-5"}"#,
    );
    let reply = start_reply(&mut trusted, req).expect("rejected before the pre-log");
    assert_eq!(reply.status.as_u16(), 400);
    assert!(framed(&reply) && hsts(&reply));
}
