//! Direct mode: calls go straight to the vendors instead of through a CLIProxyAPI router.
//!
//! `init` (direct choice) writes [`direct_document`]: an `anthropic` provider for
//! `/v1/messages` and `/v1/messages/count_tokens` and an `openai` provider for
//! `/v1/chat/completions` and `/v1/responses`, both with `auth = preserve`, so each tool keeps
//! sending its own key and the proxy stores none.
//!
//! `CLI_PROXY_API_URL` may then be left unset ([`routes_directly`]: the providers document
//! replaces both built-ins `anthropic` and `openai`, the defaults of the generation paths).
//! Without it, what would have gone to the router is refused before any row or upstream
//! request (`proxy::Core::start`):
//! * a path no provider lists (e.g. `GET /v1/models`, `/api/chat`, `/v1/embeddings`): 404
//!   `NO_ROUTE`;
//! * a request that resolves to a built-in the document did not replace (`xai`, `kimi`,
//!   `zai`, `minimax`: a `grok-`, `kimi`/`k2`, `glm` or `minimax` model on
//!   `/v1/chat/completions`): 502 `NO_UPSTREAM`.
//!
//! [`routing_table`] is the one table `providers show` and `doctor` print.

use serde_json::{Value, json};

use super::{ProviderOrigin, Providers};

/// Anthropic's API base URL.
pub const ANTHROPIC_URL: &str = "https://api.anthropic.com";
/// OpenAI's API base URL.
pub const OPENAI_URL: &str = "https://api.openai.com";

/// The routes a direct-mode document covers, with the provider id serving each.
pub const DIRECT_ROUTES: [(&str, &str); 4] = [
    ("/v1/messages", "anthropic"),
    ("/v1/messages/count_tokens", "anthropic"),
    ("/v1/chat/completions", "openai"),
    ("/v1/responses", "openai"),
];

/// The providers document `init` writes for direct mode.
pub fn direct_document(anthropic_url: &str, openai_url: &str) -> Value {
    let paths = |id: &str| -> Vec<&str> {
        DIRECT_ROUTES
            .iter()
            .filter(|(_, p)| *p == id)
            .map(|(path, _)| *path)
            .collect()
    };
    json!({
        "providers": [
            {
                "id": "anthropic",
                "type": "anthropic",
                "paths": paths("anthropic"),
                "upstreamBaseUrl": anthropic_url,
                "auth": "preserve"
            },
            {
                "id": "openai",
                "type": "openai-compatible",
                "paths": paths("openai"),
                "upstreamBaseUrl": openai_url,
                "auth": "preserve"
            }
        ]
    })
}

/// Whether a providers document lets `serve` run without `CLI_PROXY_API_URL`: it has entries
/// with ids `anthropic` and `openai` that each name an `upstreamBaseUrl`. (Whether those
/// entries are otherwise valid is the document validation's business.)
pub fn routes_directly(doc: &Value) -> bool {
    let Some(entries) = doc.get("providers").and_then(Value::as_array) else {
        return false;
    };
    ["anthropic", "openai"].iter().all(|id| {
        entries.iter().any(|e| {
            e.get("id").and_then(Value::as_str) == Some(id)
                && e.get("upstreamBaseUrl")
                    .and_then(Value::as_str)
                    .is_some_and(|u| !u.trim().is_empty())
        })
    })
}

/// One line of the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLine {
    /// Request path, or `(other paths)` for everything no provider lists.
    pub path: String,
    /// Provider id, or `-` for the catch-all.
    pub provider: String,
    /// Model prefixes that select this provider on a shared path (empty: the default).
    pub models: Vec<String>,
    /// Where the call goes: a base URL, or what the client gets when there is none.
    pub upstream: String,
    /// `preserve` (the client's own key), `bearer (env NAME)`, ….
    pub auth: String,
}

/// Every path a provider lists (in list order, providers in list order), then the catch-all
/// line for paths no provider lists.
pub fn routing_table(providers: &Providers) -> Vec<RouteLine> {
    let router = providers.cli_proxy_api_url();
    let upstream_of = |base: &str, refused: &str| {
        if base.is_empty() {
            refused.to_owned()
        } else if base == router {
            format!("{base} (router)")
        } else {
            base.to_owned()
        }
    };
    let mut lines = Vec::new();
    for p in providers.list() {
        if p.origin == ProviderOrigin::Synthesized {
            continue;
        }
        for path in &p.paths {
            let auth = match (&p.auth.env, p.auth.mode) {
                _ if p.upstream_base_url.is_empty() => "-".to_owned(),
                (Some(env), mode) => format!("{} (env {env})", mode.as_str()),
                (None, super::AuthMode::Preserve) if p.upstream_base_url == router => {
                    "router key (CLI_PROXY_API_KEY)".to_owned()
                }
                (None, super::AuthMode::Preserve) => "preserve (client's own key)".to_owned(),
                (None, mode) => mode.as_str().to_owned(),
            };
            lines.push(RouteLine {
                path: path.clone(),
                provider: p.id.clone(),
                models: p.models.clone(),
                upstream: upstream_of(&p.upstream_base_url, "none: 502 NO_UPSTREAM"),
                auth,
            });
        }
    }
    lines.push(RouteLine {
        path: "(other paths)".to_owned(),
        provider: "-".to_owned(),
        models: Vec::new(),
        upstream: upstream_of(router, "none: 404 NO_ROUTE"),
        auth: if router.is_empty() {
            "-".to_owned()
        } else {
            "router key (CLI_PROXY_API_KEY)".to_owned()
        },
    });
    lines
}

/// The table as JSON (`providers show --json`, `doctor --json`).
pub fn routing_json(lines: &[RouteLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "path": l.path,
                    "provider": l.provider,
                    "models": l.models,
                    "upstream": l.upstream,
                    "auth": l.auth,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ProviderSource, validate_document};
    use std::collections::BTreeMap;

    fn direct_providers() -> Providers {
        let doc = direct_document("http://127.0.0.1:1", "http://127.0.0.1:2");
        let checked = validate_document(&doc, &BTreeMap::new());
        assert_eq!(checked.issues, vec![]);
        Providers::merged(
            "",
            checked.providers,
            ProviderSource::File { path: "p".into() },
        )
    }

    #[test]
    fn direct_document_validates_and_routes_directly() {
        let doc = direct_document(ANTHROPIC_URL, OPENAI_URL);
        assert!(routes_directly(&doc));
        let checked = validate_document(&doc, &BTreeMap::new());
        assert_eq!(checked.issues, vec![]);
        for p in &checked.providers {
            assert_eq!(p.auth.mode, super::super::AuthMode::Preserve);
            assert!(p.auth.token.is_none());
            assert_eq!(p.upstream_path, None, "request path kept");
        }
        assert!(!routes_directly(
            &json!({"providers": [doc["providers"][0]]})
        ));
        assert!(!routes_directly(&json!({})));
    }

    #[test]
    fn each_direct_route_resolves_to_its_vendor() {
        let providers = direct_providers();
        for (path, id) in DIRECT_ROUTES {
            let r = providers.resolve(path, Some("any-model"), None).unwrap();
            assert_eq!(r.provider.id, id, "{path}");
            assert!(!r.provider.upstream_base_url.is_empty());
        }
        // What only the router could serve has no upstream.
        let grok = providers
            .resolve("/v1/chat/completions", Some("grok-4"), None)
            .unwrap();
        assert_eq!(grok.provider.id, "xai");
        assert!(grok.provider.upstream_base_url.is_empty());
        let models = providers.resolve("/v1/models", None, None).unwrap();
        assert_eq!(models.provider.origin, ProviderOrigin::Synthesized);
        assert!(models.provider.upstream_base_url.is_empty());
    }

    #[test]
    fn routing_table_names_each_route_and_the_refusals() {
        let lines = routing_table(&direct_providers());
        let find = |path: &str, provider: &str| {
            lines
                .iter()
                .find(|l| l.path == path && l.provider == provider)
                .unwrap_or_else(|| panic!("{path} {provider}: {lines:?}"))
        };
        assert_eq!(
            find("/v1/messages", "anthropic").upstream,
            "http://127.0.0.1:1"
        );
        assert_eq!(
            find("/v1/responses", "openai").auth,
            "preserve (client's own key)"
        );
        assert_eq!(
            find("/v1/chat/completions", "xai").upstream,
            "none: 502 NO_UPSTREAM"
        );
        assert_eq!(find("/v1/chat/completions", "xai").auth, "-");
        assert_eq!(find("(other paths)", "-").upstream, "none: 404 NO_ROUTE");
        let routed = routing_table(&Providers::built_in("http://r:8317"));
        assert_eq!(routed[0].upstream, "http://r:8317 (router)");
        assert_eq!(routed[0].auth, "router key (CLI_PROXY_API_KEY)");
    }
}
