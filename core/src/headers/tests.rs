use std::collections::BTreeMap;

use http::HeaderMap;
use serde_json::json;

use super::*;
use crate::provider::{ProviderSource, Providers, validate_document};

const URL: &str = "http://127.0.0.1:8317";

fn client(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn custom(entry: serde_json::Value) -> Provider {
    let mut env = BTreeMap::new();
    env.insert("TOK".to_owned(), " env-token ".to_owned());
    let doc = validate_document(&json!({ "providers": [entry] }), &env);
    assert!(doc.issues.is_empty(), "{:?}", doc.issues);
    let p = Providers::merged(URL, doc.providers, ProviderSource::Inline);
    (*p.list().last().unwrap().clone()).clone()
}

fn entry(extra: serde_json::Value) -> serde_json::Value {
    let mut e = json!({"id": "c", "type": "openai-compatible", "paths": ["/v1/chat/completions"],
        "upstreamBaseUrl": "https://api.example"});
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn build(client: &HeaderMap, provider: &Provider, managed: Option<ManagedKeyHeader>) -> HeaderMap {
    let key = Secret::new("router-key");
    upstream_request_headers(
        client,
        &UpstreamHeaderParams {
            provider,
            managed_key_header: managed,
            cli_proxy_api_url: URL,
            cli_proxy_api_key: &key,
            body_changed: false,
            content_length: None,
        },
    )
    .unwrap()
}

fn anthropic() -> Provider {
    (*Providers::built_in(URL).get("anthropic").unwrap().clone()).clone()
}

#[test]
fn hop_by_hop_and_proxy_private_headers_are_removed() {
    let h = client(&[
        ("connection", "keep-alive, X-Drop-Me"),
        ("x-drop-me", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "x"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("trailer", "x"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic x"),
        ("proxy-authenticate", "x"),
        ("host", "localhost:3100"),
        ("content-length", "10"),
        ("x-proxy-key", "k"),
        ("x-provider", "openai"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("cf-connecting-ip", "1.2.3.4"),
        ("cf-ray", "abc"),
        ("accept-encoding", "gzip, br"),
        ("x-keep", "yes"),
    ]);
    let p = custom(entry(json!({"auth": "none"})));
    assert_eq!(
        pairs(&build(&h, &p, None)),
        [
            ("accept-encoding".to_owned(), "identity".to_owned()),
            ("x-keep".to_owned(), "yes".to_owned()),
        ]
    );
}

#[test]
fn client_cannot_name_a_proxy_added_header_in_connection() {
    let h = client(&[
        (
            "connection",
            "authorization, anthropic-version, accept-encoding, x-team",
        ),
        ("authorization", "Bearer client"),
    ]);
    let p = anthropic();
    let out = build(&h, &p, None);
    assert_eq!(out["authorization"], "Bearer router-key");
    assert_eq!(out["anthropic-version"], "2023-06-01");
    assert_eq!(out["accept-encoding"], "identity");
    let p = custom(entry(json!({"headers": {"x-team": "t1"}})));
    assert_eq!(build(&h, &p, None)["x-team"], "t1");
}

#[test]
fn order_and_repeats_are_preserved() {
    let h = client(&[
        ("x-a", "1"),
        ("accept", "text/event-stream"),
        ("x-a", "2"),
        ("user-agent", "claude-cli/2.0"),
        ("x-b", "3"),
    ]);
    let p = custom(entry(json!({"auth": "none"})));
    let got = pairs(&build(&h, &p, None));
    let want = [
        ("x-a", "1"),
        ("x-a", "2"),
        ("accept", "text/event-stream"),
        ("user-agent", "claude-cli/2.0"),
        ("x-b", "3"),
        ("accept-encoding", "identity"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn managed_key_header_is_removed() {
    let h = client(&[
        ("authorization", "Bearer managed"),
        ("x-api-key", "client-key"),
    ]);
    let p = custom(entry(json!({})));
    let out = build(&h, &p, Some(ManagedKeyHeader::Authorization));
    assert!(out.get("authorization").is_none());
    assert_eq!(out["x-api-key"], "client-key");
    let out = build(&h, &p, Some(ManagedKeyHeader::XApiKey));
    assert_eq!(out["authorization"], "Bearer managed");
    assert!(out.get("x-api-key").is_none());
}

#[test]
fn provider_headers_overwrite_except_user_agent_and_anthropic_beta() {
    let p = custom(entry(json!({"headers": {
        "x-team": "provider", "user-agent": "provider-ua", "anthropic-beta": "provider-beta"}})));
    let h = client(&[
        ("x-team", "client"),
        ("x-team", "client2"),
        ("user-agent", "client-ua"),
        ("anthropic-beta", "client-beta"),
    ]);
    let out = build(&h, &p, None);
    assert_eq!(pairs(&out)[0], ("x-team".into(), "provider".into()));
    assert_eq!(out.get_all("x-team").iter().count(), 1);
    assert_eq!(out["user-agent"], "client-ua");
    assert_eq!(out["anthropic-beta"], "client-beta");
    let out = build(&client(&[]), &p, None);
    assert_eq!(out["user-agent"], "provider-ua");
    assert_eq!(out["anthropic-beta"], "provider-beta");
}

#[test]
fn auth_modes() {
    let h = client(&[
        ("authorization", "Bearer client"),
        ("x-api-key", "client-x"),
    ]);
    // none
    let out = build(&h, &custom(entry(json!({"auth": "none"}))), None);
    assert!(out.get("authorization").is_none() && out.get("x-api-key").is_none());
    // preserve toward CLI_PROXY_API_URL: the router key.
    let out = build(&h, &anthropic(), None);
    assert_eq!(out["authorization"], "Bearer router-key");
    assert_eq!(out["x-api-key"], "client-x");
    assert!(out["authorization"].is_sensitive());
    // preserve toward another base URL: the client's headers untouched.
    let out = build(&h, &custom(entry(json!({}))), None);
    assert_eq!(out["authorization"], "Bearer client");
    assert_eq!(out["x-api-key"], "client-x");
    // bearer with a token (from env, trimmed) and with a custom header.
    let out = build(
        &h,
        &custom(entry(json!({"auth": {"type": "bearer", "env": "TOK"}}))),
        None,
    );
    assert_eq!(out["authorization"], "Bearer env-token");
    assert!(out.get("x-api-key").is_none());
    let out = build(
        &h,
        &custom(entry(
            json!({"auth": {"type": "bearer", "value": "v", "header": "X-Auth"}}),
        )),
        None,
    );
    assert_eq!(out["x-auth"], "Bearer v");
    assert_eq!(
        out["authorization"], "Bearer client",
        "custom header leaves authorization"
    );
    assert!(out.get("x-api-key").is_none());
    // x-api-key with a token.
    let out = build(
        &h,
        &custom(entry(json!({"auth": {"type": "x-api-key", "value": "xv"}}))),
        None,
    );
    assert_eq!(out["x-api-key"], "xv");
    assert!(out.get("authorization").is_none());
    // Without a token: no change.
    for mode in ["bearer", "x-api-key"] {
        let out = build(
            &h,
            &custom(entry(json!({"auth": {"type": mode, "env": "UNSET"}}))),
            None,
        );
        assert_eq!(out["authorization"], "Bearer client");
        assert_eq!(out["x-api-key"], "client-x");
    }
}

#[test]
fn anthropic_version_default_and_body_headers() {
    let out = build(
        &client(&[("anthropic-version", "2024-01-01")]),
        &anthropic(),
        None,
    );
    assert_eq!(out["anthropic-version"], "2024-01-01");
    let out = build(&client(&[]), &custom(entry(json!({}))), None);
    assert!(out.get("anthropic-version").is_none());
    let key = Secret::new("k");
    let p = anthropic();
    let out = upstream_request_headers(
        &client(&[("content-type", "text/plain"), ("content-length", "3")]),
        &UpstreamHeaderParams {
            provider: &p,
            managed_key_header: None,
            cli_proxy_api_url: URL,
            cli_proxy_api_key: &key,
            body_changed: true,
            content_length: Some(42),
        },
    )
    .unwrap();
    assert_eq!(out["content-type"], "application/json");
    assert_eq!(out["content-length"], "42");
}

#[test]
fn invalid_values_are_an_error_not_a_panic() {
    let p = anthropic();
    for bad in ["a\r\nb", "nul\0", "lf\n"] {
        let key = Secret::new(bad);
        let err = upstream_request_headers(
            &HeaderMap::new(),
            &UpstreamHeaderParams {
                provider: &p,
                managed_key_header: None,
                cli_proxy_api_url: URL,
                cli_proxy_api_key: &key,
                body_changed: false,
                content_length: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            UpstreamHeaderError::InvalidValue {
                name: "authorization".into()
            }
        );
        assert!(!err.to_string().contains(bad));
    }
}

#[test]
fn response_filter() {
    let up = client(&[
        ("content-type", "text/event-stream"),
        ("connection", "close, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("te", "x"),
        ("trailer", "x"),
        ("upgrade", "x"),
        ("proxy-authenticate", "x"),
        ("proxy-anything", "x"),
        ("request-id", "req_1"),
        ("x-ratelimit-remaining", "9"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("content-length", "100"),
        ("retry-after", "3"),
    ]);
    let kept = |h: &HeaderMap| pairs(h).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        kept(&response_headers(&up, false)),
        [
            "content-type",
            "request-id",
            "x-ratelimit-remaining",
            "set-cookie",
            "set-cookie",
            "content-length",
            "retry-after"
        ]
    );
    assert_eq!(
        kept(&response_headers(&up, true)),
        [
            "content-type",
            "request-id",
            "x-ratelimit-remaining",
            "set-cookie",
            "set-cookie",
            "retry-after"
        ]
    );
}
