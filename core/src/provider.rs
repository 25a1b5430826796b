//! Providers (`datapath.md` §9): the built-ins, custom providers from the operator's document,
//! the merged list, request resolution (with synthesized providers for unlisted paths), the
//! row's `actual_provider`, the upstream URL and the `/admin/providers` rendering.
//!
//! Provider definitions are immutable after startup and shared as `Arc<Provider>`, so a
//! resolved provider can outlive the lock around `Core` without copying.
//!
//! Choices where the spec is silent:
//! * An empty selector (`x-provider` trimmed to nothing, or `"provider":""`) counts as absent.
//! * Selector ids and the `<id>/` part of a model are compared ASCII case-insensitively with
//!   provider ids; the provider's own spelling of the id is returned.

pub mod config;
pub mod direct;
mod resolve;

use std::sync::Arc;

use serde_json::{Value, json};
use thiserror::Error;

use crate::head::Reply;
use crate::secret::Secret;

pub use config::{ProviderDocument, validate_document};

/// The API family a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderType {
    /// OpenAI-compatible (`/v1/chat/completions` and friends).
    OpenAiCompatible,
    /// Anthropic Messages; gets the `anthropic-version` default.
    Anthropic,
    /// The Gemini API (`gemini.md` §1): path entries ending with `/` or `:` are prefixes.
    Gemini,
}

impl ProviderType {
    /// The configuration spelling (`openai-compatible`, `anthropic`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::OpenAiCompatible => "openai-compatible",
            ProviderType::Anthropic => "anthropic",
            ProviderType::Gemini => "gemini",
        }
    }
}

/// How the upstream request is authenticated (`datapath.md` §10 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AuthMode {
    /// Remove `authorization` and `x-api-key`.
    None,
    /// Keep the client's auth, or use `CLI_PROXY_API_KEY` toward `CLI_PROXY_API_URL`.
    #[default]
    Preserve,
    /// `Authorization: Bearer <token>` (or the configured header).
    Bearer,
    /// `x-api-key: <token>` (or the configured header).
    XApiKey,
}

impl AuthMode {
    /// Parses the configuration spelling (`none`, `preserve`, `bearer`, `x-api-key`).
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text {
            "none" => Some(AuthMode::None),
            "preserve" => Some(AuthMode::Preserve),
            "bearer" => Some(AuthMode::Bearer),
            "x-api-key" => Some(AuthMode::XApiKey),
            _ => None,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Preserve => "preserve",
            AuthMode::Bearer => "bearer",
            AuthMode::XApiKey => "x-api-key",
        }
    }
}

/// A provider's auth settings, with the token already resolved at configuration time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderAuth {
    /// The mode.
    pub mode: AuthMode,
    /// The name of the environment variable holding the token, as configured.
    pub env: Option<String>,
    /// The header to set instead of `authorization` / `x-api-key` (lower-case).
    pub header: Option<String>,
    /// The token: `value`, else the trimmed, non-empty value of `env`.
    pub token: Option<Secret>,
}

/// Where a provider definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderOrigin {
    /// One of the built-ins of `datapath.md` §9.1.
    BuiltIn,
    /// The operator's document (including an entry that replaced a built-in).
    Custom,
    /// Made up for a request no listed provider serves (§9.3 step 3).
    Synthesized,
}

/// One provider definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Id: the row's `provider` and the circuit-breaker key.
    pub id: String,
    /// API family.
    pub kind: ProviderType,
    /// Request paths served: exact match, or for gemini-type providers a prefix match of the
    /// entries ending with `/` or `:` ([`Provider::serves`]).
    pub paths: Vec<String>,
    /// Base URL, trailing `/` removed.
    pub upstream_base_url: String,
    /// Upstream path replacing the request path, if set.
    pub upstream_path: Option<String>,
    /// Model prefixes (compared ASCII case-insensitively).
    pub models: Vec<String>,
    /// Static headers in document order (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Auth settings.
    pub auth: ProviderAuth,
    /// Remove the top-level `provider` member from request bodies.
    pub strip_provider_field: bool,
    /// Where the definition came from.
    pub origin: ProviderOrigin,
}

impl Provider {
    /// Whether the provider serves a request path (`datapath.md` §9.2, `gemini.md` §1).
    pub fn serves(&self, path: &str) -> bool {
        self.paths.iter().any(|p| {
            p == path
                || (self.kind == ProviderType::Gemini
                    && (p.ends_with('/') || p.ends_with(':'))
                    && path.starts_with(p.as_str()))
        })
    }
}

/// Where the custom provider document came from (`/admin/providers` `source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSource {
    /// No custom document: built-ins only.
    BuiltIn,
    /// `PROVIDERS_JSON`.
    Inline,
    /// The file at `PROVIDERS_CONFIG_PATH`.
    File {
        /// The configured path.
        path: String,
    },
}

/// The result of resolving a request to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The provider (`origin` tells whether it was synthesized).
    pub provider: Arc<Provider>,
}

/// An explicit selector named no provider serving the path (E12).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown provider: {}", cut_id(.id))]
pub struct UnknownProvider {
    /// The selector as sent.
    pub id: String,
}

impl UnknownProvider {
    /// The client response (E12), with the id cut to 100 characters.
    pub fn reply(&self) -> Reply {
        crate::errors::unknown_provider(&self.id)
    }
}

/// The merged provider list: built-ins first, then custom entries in document order, a custom
/// entry with an existing id replacing that definition in its original position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
    source: ProviderSource,
    custom_count: usize,
    cli_proxy_api_url: String,
}

impl Providers {
    /// The built-ins only, all pointing at `cli_proxy_api_url`.
    pub fn built_in(cli_proxy_api_url: &str) -> Providers {
        Providers::merged(cli_proxy_api_url, Vec::new(), ProviderSource::BuiltIn)
    }

    /// The built-ins merged with validated custom entries.
    pub fn merged(cli_proxy_api_url: &str, custom: Vec<Provider>, source: ProviderSource) -> Self {
        let custom_count = custom.len();
        let mut list: Vec<Provider> = built_in_providers(cli_proxy_api_url);
        for entry in custom {
            match list.iter_mut().find(|p| p.id == entry.id) {
                Some(slot) => *slot = entry,
                None => list.push(entry),
            }
        }
        Providers {
            list: list.into_iter().map(Arc::new).collect(),
            source,
            custom_count,
            cli_proxy_api_url: cli_proxy_api_url.to_owned(),
        }
    }

    /// The merged list in order.
    pub fn list(&self) -> &[Arc<Provider>] {
        &self.list
    }

    /// The provider with exactly this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.id == id)
    }

    /// Where the custom document came from.
    pub fn source(&self) -> &ProviderSource {
        &self.source
    }

    /// How many entries the custom document had.
    pub fn custom_count(&self) -> usize {
        self.custom_count
    }

    /// `CLI_PROXY_API_URL` as validated.
    pub fn cli_proxy_api_url(&self) -> &str {
        &self.cli_proxy_api_url
    }

    /// Resolves a request (`datapath.md` §9.3).
    pub fn resolve(
        &self,
        path: &str,
        model: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Resolved, UnknownProvider> {
        resolve::resolve(self, path, model, selector)
    }

    /// The id §9.3 step 3 derives from a model (`generic` when nothing matches).
    pub fn model_provider_id(&self, model: Option<&str>) -> String {
        resolve::model_provider_id(self, model)
    }

    /// The row's `actual_provider`: the id derived from the response's model by the step-3
    /// rules, or `row_provider` when the response reports no model.
    pub fn actual_provider(&self, response_model: Option<&str>, row_provider: &str) -> String {
        match response_model {
            Some(m) if !m.is_empty() => self.model_provider_id(Some(m)),
            _ => row_provider.to_owned(),
        }
    }

    /// The `GET /admin/providers` body (`control.md` §6.5).
    pub fn admin_json(&self) -> Value {
        let providers: Vec<Value> = self
            .list
            .iter()
            .map(|p| {
                json!({
                    "id": p.id,
                    "type": p.kind.as_str(),
                    "paths": p.paths,
                    "models": p.models,
                    "hasCustomUpstream": p.upstream_base_url != self.cli_proxy_api_url,
                })
            })
            .collect();
        let source = match &self.source {
            ProviderSource::BuiltIn => json!({"kind": "built-in"}),
            ProviderSource::Inline => json!({"kind": "PROVIDERS_JSON"}),
            ProviderSource::File { path } => json!({"kind": "file", "path": path}),
        };
        json!({"providers": providers, "source": source})
    }
}

/// The upstream URL (`datapath.md` §9.4): base URL + (`upstreamPath`, else the request path,
/// with a leading `/` added if missing) + the client's query string verbatim.
pub fn upstream_url(provider: &Provider, request_path: &str, query: Option<&str>) -> String {
    let path = provider.upstream_path.as_deref().unwrap_or(request_path);
    let mut url = String::with_capacity(
        provider.upstream_base_url.len() + path.len() + query.map_or(0, |q| q.len() + 1) + 1,
    );
    url.push_str(provider.upstream_base_url.trim_end_matches('/'));
    if !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(path);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The built-in providers of `datapath.md` §9.1, in list order, then `google` (`gemini.md` §1).
pub fn built_in_providers(cli_proxy_api_url: &str) -> Vec<Provider> {
    const MESSAGES: &str = "/v1/messages";
    const CHAT: &str = "/v1/chat/completions";
    let table: [(&str, ProviderType, &str, &[&str]); 6] = [
        ("anthropic", ProviderType::Anthropic, MESSAGES, &[]),
        ("xai", ProviderType::OpenAiCompatible, CHAT, &["grok"]),
        (
            "kimi",
            ProviderType::OpenAiCompatible,
            CHAT,
            &["kimi", "k2p", "k2-"],
        ),
        ("zai", ProviderType::OpenAiCompatible, CHAT, &["glm"]),
        (
            "minimax",
            ProviderType::OpenAiCompatible,
            CHAT,
            &["minimax"],
        ),
        ("openai", ProviderType::OpenAiCompatible, CHAT, &[]),
    ];
    table
        .into_iter()
        .map(|(id, kind, path, models)| Provider {
            id: id.to_owned(),
            kind,
            paths: vec![path.to_owned()],
            upstream_base_url: cli_proxy_api_url.to_owned(),
            upstream_path: Some(path.to_owned()),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            headers: Vec::new(),
            auth: ProviderAuth::default(),
            strip_provider_field: false,
            origin: ProviderOrigin::BuiltIn,
        })
        .chain(std::iter::once(google_provider(cli_proxy_api_url)))
        .collect()
}

/// The built-in `google` provider: every path under `/v1beta/` and `/v1internal:`, forwarded
/// with its path unchanged (the model is part of it).
fn google_provider(cli_proxy_api_url: &str) -> Provider {
    Provider {
        id: "google".to_owned(),
        kind: ProviderType::Gemini,
        paths: vec![
            crate::gemini::V1BETA_PREFIX.to_owned(),
            format!("{}:", crate::gemini::V1INTERNAL_PREFIX),
        ],
        upstream_base_url: cli_proxy_api_url.to_owned(),
        upstream_path: None,
        models: Vec::new(),
        headers: Vec::new(),
        auth: ProviderAuth::default(),
        strip_provider_field: false,
        origin: ProviderOrigin::BuiltIn,
    }
}

fn cut_id(id: &str) -> String {
    id.chars().take(100).collect()
}

#[cfg(test)]
mod tests;
