use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const URL: &str = "http://127.0.0.1:8317";

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn entry(extra: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "id": "local",
        "type": "openai-compatible",
        "paths": ["/v1/chat/completions"],
        "upstreamBaseUrl": "http://localhost:11434",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn check(entry: serde_json::Value) -> ProviderDocument {
    validate_document(&json!({ "providers": [entry] }), &no_env())
}

fn issue_strings(doc: &ProviderDocument) -> Vec<String> {
    doc.issues.iter().map(ToString::to_string).collect()
}

fn merged(custom: serde_json::Value) -> Providers {
    let doc = validate_document(&custom, &no_env());
    assert!(doc.issues.is_empty(), "{:?}", doc.issues);
    Providers::merged(URL, doc.providers, ProviderSource::Inline)
}

#[test]
fn built_ins_in_list_order() {
    let p = Providers::built_in(URL);
    let ids: Vec<&str> = p.list().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "anthropic",
            "xai",
            "kimi",
            "zai",
            "minimax",
            "openai",
            "google"
        ]
    );
    let anthropic = &p.list()[0];
    assert_eq!(anthropic.kind, ProviderType::Anthropic);
    assert_eq!(anthropic.paths, ["/v1/messages"]);
    assert_eq!(anthropic.upstream_base_url, URL);
    assert_eq!(anthropic.auth.mode, AuthMode::Preserve);
    assert_eq!(p.get("kimi").unwrap().models, ["kimi", "k2p", "k2-"]);
    assert!(p.get("openai").unwrap().models.is_empty());
}

#[test]
fn every_schema_issue_has_its_path_and_message() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"id": null}),
            "providers[0].id must be a non-empty string",
        ),
        (
            json!({"id": "  "}),
            "providers[0].id must be a non-empty string",
        ),
        (
            json!({"id": 7}),
            "providers[0].id must be a non-empty string",
        ),
        (
            json!({"type": "google"}),
            "providers[0].type must be one of openai-compatible, anthropic, gemini",
        ),
        (
            json!({"type": null}),
            "providers[0].type must be one of openai-compatible, anthropic, gemini",
        ),
        (
            json!({"paths": []}),
            "providers[0].paths must be a non-empty string array",
        ),
        (
            json!({"paths": [""]}),
            "providers[0].paths must be a non-empty string array",
        ),
        (
            json!({"paths": "/v1/x"}),
            "providers[0].paths must be a non-empty string array",
        ),
        (
            json!({"paths": null}),
            "providers[0].paths must be a non-empty string array",
        ),
        (
            json!({"upstreamBaseUrl": null}),
            "providers[0].upstreamBaseUrl must be a parseable http(s) URL",
        ),
        (
            json!({"upstreamBaseUrl": "not a url"}),
            "providers[0].upstreamBaseUrl must be a parseable http(s) URL",
        ),
        (
            json!({"upstreamBaseUrl": "ws://h"}),
            "providers[0].upstreamBaseUrl must be an http(s) URL",
        ),
        (
            json!({"upstreamBaseUrl": "https://u:p@h"}),
            "providers[0].upstreamBaseUrl must not contain credentials, query or fragment",
        ),
        (
            json!({"upstreamBaseUrl": "https://h/?a=1"}),
            "providers[0].upstreamBaseUrl must not contain credentials, query or fragment",
        ),
        (
            json!({"upstreamBaseUrl": "https://h/#x"}),
            "providers[0].upstreamBaseUrl must not contain credentials, query or fragment",
        ),
        (
            json!({"upstreamPath": ""}),
            "providers[0].upstreamPath must be a non-empty string",
        ),
        (
            json!({"upstreamPath": 1}),
            "providers[0].upstreamPath must be a non-empty string",
        ),
        (
            json!({"models": [""]}),
            "providers[0].models must be a non-empty string array",
        ),
        (
            json!({"models": "glm"}),
            "providers[0].models must be a non-empty string array",
        ),
        (
            json!({"headers": []}),
            "providers[0].headers must be an object of header strings",
        ),
        (
            json!({"headers": {"x-a": 1}}),
            "providers[0].headers must be an object of header strings",
        ),
        (
            json!({"headers": {"": "v"}}),
            "providers[0].headers must be an object of header strings",
        ),
        (
            json!({"headers": {"x-a": "v\r\nx: y"}}),
            "providers[0].headers must be an object of header strings",
        ),
        (
            json!({"headers": {"x-a": "nul\u{0}"}}),
            "providers[0].headers must be an object of header strings",
        ),
        (
            json!({"auth": "oauth"}),
            "providers[0].auth is not supported",
        ),
        (json!({"auth": 1}), "providers[0].auth is not supported"),
        (
            json!({"auth": {"type": "oauth"}}),
            "providers[0].auth.type is not supported",
        ),
        (
            json!({"auth": {"env": "X"}}),
            "providers[0].auth.type is not supported",
        ),
        (
            json!({"auth": {"type": "bearer", "scope": "x"}}),
            "providers[0].auth.scope is not supported",
        ),
        (
            json!({"auth": {"type": "bearer", "env": ""}}),
            "providers[0].auth.env must be a non-empty string",
        ),
        (
            json!({"auth": {"type": "bearer", "value": 5}}),
            "providers[0].auth.value must be a non-empty string",
        ),
        (
            json!({"auth": {"type": "bearer", "value": "a\nb"}}),
            "providers[0].auth.value must be a valid header value",
        ),
        (
            json!({"auth": {"type": "bearer", "value": "v", "header": "bad header"}}),
            "providers[0].auth.header must be a valid header name",
        ),
        (
            json!({"stripProviderField": "yes"}),
            "providers[0].stripProviderField must be a boolean",
        ),
    ];
    for (extra, want) in cases {
        let doc = check(entry(extra.clone()));
        assert_eq!(issue_strings(&doc), vec![want.to_owned()], "{extra}");
        assert!(doc.providers.is_empty());
    }
    let doc = validate_document(&json!({"providers": [1, {}]}), &no_env());
    let got = issue_strings(&doc);
    assert_eq!(got[0], "providers[0] must be an object");
    assert_eq!(got[1], "providers[1].id must be a non-empty string");
    assert_eq!(got.len(), 5, "{got:?}");
    for doc in [json!([]), json!({"providers": {}}), json!({})] {
        assert_eq!(
            issue_strings(&validate_document(&doc, &no_env())),
            vec!["providers must be an array"]
        );
    }
}

#[test]
fn valid_entry_is_fully_typed() {
    let mut env = BTreeMap::new();
    env.insert("GLM_API_KEY".to_owned(), "  glm-token  ".to_owned());
    let doc = validate_document(
        &json!({"providers": [{
            "id": " glm ", "type": "openai-compatible", "paths": ["/v1/chat/completions"],
            "upstreamBaseUrl": "https://open.bigmodel.cn/api/paas/v4/", "upstreamPath": "chat/completions",
            "models": ["glm"], "headers": {"X-Team": "a", "User-Agent": "ua/1"},
            "auth": {"type": "bearer", "env": "GLM_API_KEY", "header": "X-Auth"},
            "stripProviderField": true, "ignoredField": 1
        }]}),
        &env,
    );
    assert!(doc.issues.is_empty() && doc.warnings.is_empty(), "{doc:?}");
    let p = &doc.providers[0];
    assert_eq!(p.id, "glm");
    assert_eq!(p.upstream_base_url, "https://open.bigmodel.cn/api/paas/v4");
    assert_eq!(p.upstream_path.as_deref(), Some("chat/completions"));
    assert_eq!(
        p.headers,
        [
            ("x-team".to_owned(), "a".to_owned()),
            ("user-agent".to_owned(), "ua/1".to_owned())
        ]
    );
    assert_eq!(p.auth.mode, AuthMode::Bearer);
    assert_eq!(p.auth.header.as_deref(), Some("x-auth"));
    assert_eq!(p.auth.token.as_ref().map(Secret::expose), Some("glm-token"));
    assert!(p.strip_provider_field);
    assert_eq!(p.origin, ProviderOrigin::Custom);
    // `value` wins over `env`.
    let doc = validate_document(
        &json!({"providers": [entry(json!({"auth": {"type": "x-api-key", "env": "GLM_API_KEY", "value": "v1"}}))]}),
        &env,
    );
    assert_eq!(
        doc.providers[0].auth.token.as_ref().map(Secret::expose),
        Some("v1")
    );
}

#[test]
fn warnings_for_unreachable_paths_noop_auth_and_unset_env() {
    let doc = check(entry(json!({
        "paths": ["/v1/chat/completions", "/chat", "/api/x"],
        "auth": {"type": "bearer"},
    })));
    assert!(doc.issues.is_empty());
    let w: Vec<String> = doc.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "providers[0].paths[1] does not start with /v1/, /api/, /v1beta/ or /v1internal and is unreachable",
            "providers[0].auth bearer auth has neither env nor value and has no effect",
        ]
    );
    let doc = check(entry(
        json!({"auth": {"type": "x-api-key", "env": "MISSING_KEY"}}),
    ));
    assert_eq!(
        doc.warnings[0].to_string(),
        "providers[0].auth.env names an unset or empty environment variable MISSING_KEY"
    );
    assert_eq!(doc.providers[0].auth.token, None);
    assert!(check(entry(json!({"auth": "x-api-key"}))).warnings.len() == 1);
    assert!(check(entry(json!({"auth": "none"}))).warnings.is_empty());
}

#[test]
fn merge_replaces_in_place_and_appends_in_document_order() {
    let p = merged(json!({"providers": [
        entry(json!({"id": "b-new"})),
        entry(json!({"id": "xai", "upstreamBaseUrl": "https://api.x.ai"})),
        entry(json!({"id": "a-new"})),
    ]}));
    let ids: Vec<&str> = p.list().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "anthropic",
            "xai",
            "kimi",
            "zai",
            "minimax",
            "openai",
            "google",
            "b-new",
            "a-new"
        ]
    );
    assert_eq!(p.get("xai").unwrap().upstream_base_url, "https://api.x.ai");
    assert_eq!(p.get("xai").unwrap().origin, ProviderOrigin::Custom);
    assert_eq!(p.custom_count(), 3);
}

fn resolve_id(p: &Providers, path: &str, model: Option<&str>) -> String {
    p.resolve(path, model, None).unwrap().provider.id.clone()
}

#[test]
fn resolution_without_selector() {
    let p = Providers::built_in(URL);
    let chat = "/v1/chat/completions";
    assert_eq!(
        resolve_id(&p, "/v1/messages", Some("claude-sonnet-4-5")),
        "anthropic"
    );
    assert_eq!(resolve_id(&p, chat, Some("grok-4")), "xai");
    assert_eq!(resolve_id(&p, chat, Some("Kimi-K2")), "kimi");
    assert_eq!(resolve_id(&p, chat, Some("k2-turbo")), "kimi");
    assert_eq!(
        resolve_id(&p, chat, Some("GLM-4.6")),
        "zai",
        "glm resolves to zai on chat"
    );
    assert_eq!(resolve_id(&p, chat, Some("minimax-m2")), "minimax");
    assert_eq!(
        resolve_id(&p, chat, Some("gpt-5")),
        "openai",
        "first candidate without models"
    );
    assert_eq!(resolve_id(&p, chat, None), "openai");
    assert_eq!(resolve_id(&p, chat, Some("")), "openai");
}

#[test]
fn resolution_tie_rules() {
    // A custom provider beats a built-in on an equally long prefix, and the longer prefix
    // wins regardless of origin.
    let p = merged(json!({"providers": [
        entry(json!({"id": "mine", "models": ["glm"]})),
        entry(json!({"id": "longer", "models": ["glm-4"]})),
        entry(json!({"id": "later", "models": ["glm-4"]})),
    ]}));
    let chat = "/v1/chat/completions";
    assert_eq!(resolve_id(&p, chat, Some("glm-3")), "mine");
    assert_eq!(
        resolve_id(&p, chat, Some("GLM-4.6")),
        "longer",
        "list order among equals"
    );
    // Without a models-free candidate, the first candidate wins.
    let q = merged(json!({"providers": [
        entry(json!({"id": "p1", "paths": ["/v1/embeddings"], "models": ["a"]})),
        entry(json!({"id": "p2", "paths": ["/v1/embeddings"], "models": ["b"]})),
    ]}));
    assert_eq!(resolve_id(&q, "/v1/embeddings", Some("zzz")), "p1");
    assert_eq!(resolve_id(&q, "/v1/embeddings", Some("b-1")), "p2");
    // A models-free custom candidate after built-ins: the first models-free one is openai.
    assert_eq!(resolve_id(&p, chat, Some("llama3")), "openai");
}

#[test]
fn selector_rules() {
    let p = merged(json!({"providers": [entry(json!({"id": "local"}))]}));
    let r = p
        .resolve("/v1/chat/completions", Some("claude-x"), Some("local"))
        .unwrap();
    assert_eq!(r.provider.id, "local");
    let err = p.resolve("/v1/messages", None, Some("local")).unwrap_err();
    assert_eq!(err.to_string(), "unknown provider: local");
    assert_eq!(err.reply().status, http::StatusCode::BAD_REQUEST);
    let long = "z".repeat(150);
    let err = p.resolve("/v1/messages", None, Some(&long)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("unknown provider: {}", "z".repeat(100))
    );
    // No fallback for an explicit selector, even on an unlisted path.
    assert!(
        p.resolve("/v1/responses", Some("gpt-5"), Some("openai"))
            .is_err()
    );
    // Empty selector counts as absent.
    assert_eq!(
        p.resolve("/v1/messages", None, Some(""))
            .unwrap()
            .provider
            .id,
        "anthropic"
    );
}

#[test]
fn synthesized_provider_and_ids() {
    let p = merged(json!({"providers": [
        entry(json!({"id": "local", "models": ["llama", "claude-local"]})),
    ]}));
    let cases: &[(Option<&str>, &str)] = &[
        (None, "generic"),
        (Some(""), "generic"),
        (Some("mystery-model"), "generic"),
        (Some("claude-opus-4"), "anthropic"),
        (Some("gpt-5-codex"), "openai"),
        (Some("o1-mini"), "openai"),
        (Some("o3"), "openai"),
        (Some("o4-mini"), "openai"),
        (Some("ChatGPT-4o"), "openai"),
        (Some("grok-4"), "xai"),
        (Some("kimi-k2"), "kimi"),
        (Some("k2-0905"), "kimi"),
        (Some("glm-4.6"), "glm"),
        (Some("minimax-m2"), "minimax"),
        (Some("llama3.1"), "local"),
        (Some("claude-local-7b"), "local"),
        (Some("XAI/grok-4"), "xai"),
        (Some("local/anything"), "local"),
        (Some("openai/gpt-5"), "openai"),
        (Some("unknown/claude-x"), "generic"),
        (Some("/claude"), "generic"),
    ];
    for (model, want) in cases {
        let r = p.resolve("/v1/responses", *model, None).unwrap();
        assert_eq!(r.provider.id, *want, "{model:?}");
        assert_eq!(r.provider.origin, ProviderOrigin::Synthesized);
        assert_eq!(r.provider.upstream_base_url, URL);
        assert_eq!(r.provider.upstream_path.as_deref(), Some("/v1/responses"));
        assert_eq!(r.provider.auth.mode, AuthMode::Preserve);
        let kind = if *want == "anthropic" {
            ProviderType::Anthropic
        } else {
            ProviderType::OpenAiCompatible
        };
        assert_eq!(r.provider.kind, kind);
    }
    // The fixed list wins on equal prefixes: a provider claiming "grok" does not take it.
    let q = merged(
        json!({"providers": [entry(json!({"id": "mine", "models": ["grok", "grok-4-mine"]}))]}),
    );
    assert_eq!(q.model_provider_id(Some("grok-3")), "xai");
    assert_eq!(q.model_provider_id(Some("grok-4-mine-x")), "mine");
    for path in ["/v1/models", "/api/tags", "/v1/messages/count_tokens"] {
        assert_eq!(p.resolve(path, None, None).unwrap().provider.id, "generic");
    }
}

#[test]
fn actual_provider_from_response_model() {
    let p = Providers::built_in(URL);
    assert_eq!(p.actual_provider(Some("glm-4.6"), "zai"), "glm");
    assert_eq!(p.actual_provider(Some("claude-3"), "openai"), "anthropic");
    assert_eq!(p.actual_provider(None, "zai"), "zai");
    assert_eq!(p.actual_provider(Some(""), "zai"), "zai");
    assert_eq!(p.actual_provider(Some("weird"), "zai"), "generic");
}

#[test]
fn upstream_url_rules() {
    let p = Providers::built_in(URL);
    let anthropic = p.get("anthropic").unwrap();
    assert_eq!(
        upstream_url(anthropic, "/v1/messages", Some("beta=true")),
        "http://127.0.0.1:8317/v1/messages?beta=true"
    );
    assert_eq!(
        upstream_url(anthropic, "/v1/messages", Some("")),
        "http://127.0.0.1:8317/v1/messages?"
    );
    let custom = merged(
        json!({"providers": [entry(json!({"upstreamBaseUrl": "https://h/base/", "upstreamPath": "v4/chat"}))]}),
    );
    let local = custom.get("local").unwrap();
    assert_eq!(
        upstream_url(local, "/v1/chat/completions", None),
        "https://h/base/v4/chat"
    );
    let synth = custom
        .resolve("/v1/responses", None, None)
        .unwrap()
        .provider;
    assert_eq!(
        upstream_url(&synth, "/v1/responses", Some("a=1&b")),
        "http://127.0.0.1:8317/v1/responses?a=1&b"
    );
}

#[test]
fn admin_rendering() {
    assert_eq!(
        Providers::built_in(URL).admin_json()["source"],
        json!({"kind": "built-in"})
    );
    let doc = validate_document(
        &json!({"providers": [entry(json!({"auth": {"type": "bearer", "value": "sk-zz-hidden"}}))]}),
        &no_env(),
    );
    let p = Providers::merged(
        URL,
        doc.providers,
        ProviderSource::File {
            path: "/etc/p.json".into(),
        },
    );
    let v = p.admin_json();
    assert!(!v.to_string().contains("sk-zz-hidden"));
    assert_eq!(v["source"], json!({"kind": "file", "path": "/etc/p.json"}));
    assert_eq!(
        v["providers"][0],
        json!({"id": "anthropic", "type": "anthropic", "paths": ["/v1/messages"], "models": [], "hasCustomUpstream": false})
    );
    assert_eq!(
        v["providers"][7],
        json!({"id": "local", "type": "openai-compatible", "paths": ["/v1/chat/completions"], "models": [], "hasCustomUpstream": true})
    );
    let inline = Providers::merged(URL, Vec::new(), ProviderSource::Inline);
    assert_eq!(
        inline.admin_json()["source"],
        json!({"kind": "PROVIDERS_JSON"})
    );
}

#[test]
fn gemini_paths_resolve_to_google_by_prefix_and_custom_gemini_providers_use_prefixes() {
    let p = Providers::built_in(URL);
    let stream = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    assert_eq!(resolve_id(&p, stream, Some("gemini-2.5-flash")), "google");
    assert_eq!(
        resolve_id(&p, "/v1internal:generateContent", None),
        "google"
    );
    assert_eq!(resolve_id(&p, "/v1beta/models", None), "google");
    let google = p.resolve(stream, None, None).unwrap().provider;
    assert_eq!(
        google.upstream_path, None,
        "the path is forwarded unchanged"
    );
    assert_eq!(google.kind, ProviderType::Gemini);
    assert_eq!(
        upstream_url(&google, stream, Some("alt=sse")),
        format!("{URL}{stream}?alt=sse")
    );
    // The selector needs the provider to serve the path, prefixes included.
    assert_eq!(
        p.resolve(stream, None, Some("google")).unwrap().provider.id,
        "google"
    );
    assert!(p.resolve("/v1/messages", None, Some("google")).is_err());
    // A response model `gemini-…` names `google` as the actual provider.
    assert_eq!(
        p.actual_provider(Some("gemini-2.5-pro"), "google"),
        "google"
    );

    // Only gemini-type providers get prefix matching, and only for entries ending in `/` or `:`.
    let custom = merged(json!({"providers": [
        entry(json!({"id": "vertex", "type": "gemini", "paths": ["/v1beta/models/", "/v1beta/exact"], "models": ["gemini"]})),
        entry(json!({"id": "oai", "paths": ["/v1beta/"]})),
    ]}));
    // Reachable without a selector through its model prefix, as every custom provider.
    assert_eq!(
        resolve_id(&custom, stream, Some("gemini-2.5-flash")),
        "vertex"
    );
    assert_eq!(resolve_id(&custom, stream, None), "google");
    assert_eq!(
        resolve_id(&custom, "/v1beta/exact", Some("gemini-x")),
        "vertex"
    );
    assert_eq!(
        resolve_id(&custom, "/v1beta/exact/more", Some("gemini-x")),
        "google"
    );
    assert_eq!(resolve_id(&custom, "/v1beta/", None), "google");
}
