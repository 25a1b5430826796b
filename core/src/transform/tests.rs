use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use super::*;
use crate::provider::{ProviderSource, Providers, validate_document};

const URL: &str = "http://127.0.0.1:8317";

fn providers() -> Providers {
    let doc = validate_document(
        &json!({"providers": [{"id": "strip", "type": "openai-compatible",
            "paths": ["/v1/chat/completions"], "upstreamBaseUrl": "https://api.example/",
            "models": ["strip-"], "stripProviderField": true}]}),
        &BTreeMap::new(),
    );
    Providers::merged(URL, doc.providers, ProviderSource::Inline)
}

struct Case<'a> {
    target: &'a str,
    content_type: Option<&'a str>,
    body: &'a str,
    provider: &'a str,
    inject: bool,
}

fn run(case: Case<'_>) -> (PreparedRequest, Bytes) {
    let mut headers = HeaderMap::new();
    if let Some(ct) = case.content_type {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    headers.insert("content-length", HeaderValue::from(case.body.len()));
    let head = RequestHead::new(Method::POST, case.target, headers);
    let body = Bytes::copy_from_slice(case.body.as_bytes());
    let all = providers();
    let provider = all.get(case.provider).unwrap();
    let key = Secret::new("router-key");
    let input = TransformInput {
        head: &head,
        body: &body,
        provider,
        managed_key_header: None,
        settings: UpstreamSettings {
            cli_proxy_api_url: URL,
            cli_proxy_api_key: &key,
            stream_usage_inject: case.inject,
        },
    };
    (prepare_upstream(&input).unwrap(), body)
}

fn text(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn usage_injection_keeps_unknown_fields_and_bytes() {
    let body = r#"{ "model": "gpt-5", "stream": true, "reasoning_effort": "xhigh", "n": 1.50 }"#;
    let (out, _) = run(Case {
        target: "/v1/chat/completions?x=1",
        content_type: Some("application/json; charset=utf-8"),
        body,
        provider: "openai",
        inject: true,
    });
    assert!(out.usage_injected && out.body_changed);
    assert_eq!(
        text(&out.body),
        r#"{ "model": "gpt-5", "stream": true, "reasoning_effort": "xhigh", "n": 1.50,"stream_options":{"include_usage":true} }"#
    );
    assert_eq!(out.url, "http://127.0.0.1:8317/v1/chat/completions?x=1");
    assert_eq!(out.headers["content-type"], "application/json");
    assert_eq!(
        out.headers["content-length"],
        out.body.len().to_string().as_str()
    );
    assert_eq!(out.headers["authorization"], "Bearer router-key");
}

#[test]
fn usage_injection_conditions() {
    let cases: &[(&str, &str, bool, bool)] = &[
        // (path, body, inject flag, injected?)
        ("/v1/chat/completions", r#"{"stream":true}"#, true, true),
        ("/v1/chat/completions", r#"{"stream":true}"#, false, false),
        ("/v1/chat/completions", r#"{"stream":false}"#, true, false),
        ("/v1/chat/completions", r#"{"stream":"true"}"#, true, false),
        ("/v1/chat/completions", r#"{}"#, true, false),
        (
            "/v1/chat/completions",
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            true,
            false,
        ),
        (
            "/v1/chat/completions",
            r#"{"stream":true,"stream_options":{"include_usage":false}}"#,
            true,
            true,
        ),
        ("/v1/responses", r#"{"stream":true}"#, true, false),
    ];
    for (path, body, inject, want) in cases {
        let (out, original) = run(Case {
            target: path,
            content_type: Some("application/json"),
            body,
            provider: "openai",
            inject: *inject,
        });
        assert_eq!(out.usage_injected, *want, "{path} {body} inject={inject}");
        if !want {
            assert_eq!(out.body.as_ptr(), original.as_ptr(), "original Bytes kept");
            assert!(!out.body_changed);
        }
    }
}

#[test]
fn model_prefix_strip_only_for_its_provider() {
    let (out, _) = run(Case {
        target: "/v1/messages",
        content_type: Some("application/json"),
        body: r#"{"model":"Anthropic/claude-sonnet-4-5","max_tokens":1}"#,
        provider: "anthropic",
        inject: true,
    });
    assert_eq!(
        text(&out.body),
        r#"{"model":"claude-sonnet-4-5","max_tokens":1}"#
    );
    assert_eq!(out.headers["anthropic-version"], "2023-06-01");
    let (out, _) = run(Case {
        target: "/v1/chat/completions",
        content_type: Some("application/json"),
        body: r#"{"model":"openai/gpt-5"}"#,
        provider: "openai",
        inject: true,
    });
    assert_eq!(text(&out.body), r#"{"model":"gpt-5"}"#);
    // `anthropic/` on the openai provider is not stripped.
    let (out, _) = run(Case {
        target: "/v1/chat/completions",
        content_type: Some("application/json"),
        body: r#"{"model":"anthropic/claude"}"#,
        provider: "openai",
        inject: true,
    });
    assert!(!out.body_changed);
}

#[test]
fn strip_provider_field() {
    let (out, _) = run(Case {
        target: "/v1/chat/completions",
        content_type: Some("text/plain"),
        body: "{\"provider\": \"strip\",\n \"model\": \"strip-1\"}",
        provider: "strip",
        inject: false,
    });
    assert_eq!(text(&out.body), "{\"model\": \"strip-1\"}");
    assert_eq!(out.url, "https://api.example/v1/chat/completions");
}

#[test]
fn skipped_edits_forward_the_original_body() {
    let cases: &[(Option<&str>, &str, Option<BodyTransformSkipped>)] = &[
        (
            Some("application/x-www-form-urlencoded"),
            r#"{"provider":1}"#,
            Some(BodyTransformSkipped::ContentType),
        ),
        (
            None,
            r#"{"provider":1}"#,
            Some(BodyTransformSkipped::ContentType),
        ),
        (
            Some("application/json"),
            "[1,2]",
            Some(BodyTransformSkipped::NotJsonObject),
        ),
        (
            Some("application/json"),
            "{oops",
            Some(BodyTransformSkipped::NotJsonObject),
        ),
        (Some("application/json"), "", None),
    ];
    for (ct, body, want) in cases {
        let (out, original) = run(Case {
            target: "/v1/chat/completions",
            content_type: *ct,
            body,
            provider: "strip",
            inject: true,
        });
        assert_eq!(out.skipped, *want, "{ct:?} {body}");
        assert_eq!(out.body.as_ptr(), original.as_ptr());
        assert!(!out.body_changed && !out.usage_injected);
        assert_eq!(
            out.headers.get("content-type").map(|v| v.to_str().unwrap()),
            *ct,
            "content type left as the client sent it"
        );
    }
    // A provider with no body transform never reports a skip.
    let (out, _) = run(Case {
        target: "/v1/messages",
        content_type: Some("application/octet-stream"),
        body: "binary",
        provider: "xai",
        inject: true,
    });
    assert_eq!(out.skipped, None);
}
