//! The custom provider document (`datapath.md` §9.2): `{"providers":[ ... ]}` validated into
//! [`Provider`] values, collecting every issue and warning.
//!
//! Issue paths look like `providers[0].upstreamBaseUrl`. No message ever contains a value
//! from the document, so `auth.value` and static header values cannot leak through errors.
//!
//! Choices where the spec is silent:
//! * `type` and `id`, `paths`, `upstreamBaseUrl` are required; `null` is not "absent" for the
//!   optional fields (it gets the field's issue).
//! * `models: []` is accepted and means "no prefixes".
//! * Header names must be valid HTTP field names and values valid field values (no control
//!   characters other than tab), so a request can always be built from them; both give the
//!   field's message. Entries are reported at `providers[i].headers`.
//! * `auth.env`, `auth.value`, `auth.header` that are not non-empty strings get
//!   `must be a non-empty string` at their own path; an unknown mode or key, or an `auth` of
//!   another JSON type, gets `is not supported`. `auth.value` must also be a valid field
//!   value (`must be a valid header value`), checked without echoing it.
//! * An `env` naming a variable that is unset or blank leaves the provider without a token
//!   and warns at `providers[i].auth.env`.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::{AuthMode, Provider, ProviderAuth, ProviderOrigin, ProviderType};
use crate::base_url::{UrlProblem, parse_base_url};
use crate::config_issue::{ConfigIssue, ConfigWarning};
use crate::secret::Secret;

/// The outcome of validating a provider document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderDocument {
    /// Entries without issues, in document order.
    pub providers: Vec<Provider>,
    /// Every issue found (the document is unusable when this is non-empty).
    pub issues: Vec<ConfigIssue>,
    /// Warnings (unreachable paths, no-op auth, unset `env`).
    pub warnings: Vec<ConfigWarning>,
}

/// Validates a parsed document. `env` answers `auth.env` lookups (resolved here, once, so the
/// data path never reads the environment).
pub fn validate_document(doc: &Value, env: &BTreeMap<String, String>) -> ProviderDocument {
    let mut out = ProviderDocument::default();
    let Some(entries) = doc.get("providers").and_then(Value::as_array) else {
        out.issue("providers", "must be an array");
        return out;
    };
    for (i, entry) in entries.iter().enumerate() {
        let base = format!("providers[{i}]");
        let Some(obj) = entry.as_object() else {
            out.issue(&base, "must be an object");
            continue;
        };
        let before = out.issues.len();
        let provider = validate_entry(&base, obj, env, &mut out);
        if out.issues.len() == before
            && let Some(p) = provider
        {
            out.providers.push(p);
        }
    }
    out
}

impl ProviderDocument {
    fn issue(&mut self, path: &str, message: &str) {
        self.issues.push(ConfigIssue::new(path, message));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning::new(path, message));
    }
}

const STRING_ARRAY: &str = "must be a non-empty string array";
const NON_EMPTY: &str = "must be a non-empty string";
const HEADERS: &str = "must be an object of header strings";

fn validate_entry(
    base: &str,
    obj: &Map<String, Value>,
    env: &BTreeMap<String, String>,
    out: &mut ProviderDocument,
) -> Option<Provider> {
    let id = match obj.get("id").and_then(Value::as_str).map(str::trim) {
        Some(id) if !id.is_empty() => Some(id.to_owned()),
        _ => {
            out.issue(&format!("{base}.id"), NON_EMPTY);
            None
        }
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("openai-compatible") => Some(ProviderType::OpenAiCompatible),
        Some("anthropic") => Some(ProviderType::Anthropic),
        Some("gemini") => Some(ProviderType::Gemini),
        _ => {
            out.issue(
                &format!("{base}.type"),
                "must be one of openai-compatible, anthropic, gemini",
            );
            None
        }
    };
    let paths = match obj.get("paths").and_then(string_array) {
        Some(paths) if !paths.is_empty() => {
            for (j, p) in paths.iter().enumerate() {
                if !(p.starts_with("/v1/")
                    || p.starts_with("/api/")
                    || crate::gemini::is_gemini_path(p))
                {
                    out.warn(
                        &format!("{base}.paths[{j}]"),
                        "does not start with /v1/, /api/, /v1beta/ or /v1internal and is unreachable",
                    );
                }
            }
            Some(paths)
        }
        _ => {
            out.issue(&format!("{base}.paths"), STRING_ARRAY);
            None
        }
    };
    let url_path = format!("{base}.upstreamBaseUrl");
    let base_url = match obj
        .get("upstreamBaseUrl")
        .and_then(Value::as_str)
        .map(parse_base_url)
    {
        Some(Ok(url)) => Some(url.normalized),
        Some(Err(UrlProblem::NotHttp)) => {
            out.issue(&url_path, "must be an http(s) URL");
            None
        }
        Some(Err(UrlProblem::CredentialsQueryFragment)) => {
            out.issue(&url_path, "must not contain credentials, query or fragment");
            None
        }
        Some(Err(UrlProblem::Unparseable)) | None => {
            out.issue(&url_path, "must be a parseable http(s) URL");
            None
        }
    };
    let upstream_path = match obj.get("upstreamPath") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            out.issue(&format!("{base}.upstreamPath"), NON_EMPTY);
            None
        }
    };
    let models = match obj.get("models") {
        None => Vec::new(),
        Some(v) => string_array(v).unwrap_or_else(|| {
            out.issue(&format!("{base}.models"), STRING_ARRAY);
            Vec::new()
        }),
    };
    let headers = match obj.get("headers") {
        None => Vec::new(),
        Some(v) => header_map(v).unwrap_or_else(|| {
            out.issue(&format!("{base}.headers"), HEADERS);
            Vec::new()
        }),
    };
    let auth = match obj.get("auth") {
        None => Some(ProviderAuth::default()),
        Some(v) => validate_auth(&format!("{base}.auth"), v, env, out),
    };
    let strip_provider_field = match obj.get("stripProviderField") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            out.issue(&format!("{base}.stripProviderField"), "must be a boolean");
            false
        }
    };
    Some(Provider {
        id: id?,
        kind: kind?,
        paths: paths?,
        upstream_base_url: base_url?,
        upstream_path,
        models,
        headers,
        auth: auth?,
        strip_provider_field,
        origin: ProviderOrigin::Custom,
    })
}

fn validate_auth(
    path: &str,
    v: &Value,
    env: &BTreeMap<String, String>,
    out: &mut ProviderDocument,
) -> Option<ProviderAuth> {
    const UNSUPPORTED: &str = "is not supported";
    let obj = match v {
        Value::String(s) => {
            let Some(mode) = AuthMode::parse(s) else {
                out.issue(path, UNSUPPORTED);
                return None;
            };
            warn_noop(path, mode, out);
            return Some(ProviderAuth {
                mode,
                ..ProviderAuth::default()
            });
        }
        Value::Object(obj) => obj,
        _ => {
            out.issue(path, UNSUPPORTED);
            return None;
        }
    };
    let before = out.issues.len();
    let mode = obj
        .get("type")
        .and_then(Value::as_str)
        .and_then(AuthMode::parse);
    if mode.is_none() {
        out.issue(&format!("{path}.type"), UNSUPPORTED);
    }
    for key in obj.keys() {
        if !matches!(key.as_str(), "type" | "env" | "value" | "header") {
            out.issue(&format!("{path}.{key}"), UNSUPPORTED);
        }
    }
    let text = |key: &str, out: &mut ProviderDocument| match obj.get(key) {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            out.issue(&format!("{path}.{key}"), NON_EMPTY);
            None
        }
    };
    let env_name = text("env", out);
    let value = text("value", out);
    let header = text("header", out);
    if let Some(value) = &value
        && HeaderValue::from_bytes(value.as_bytes()).is_err()
    {
        out.issue(&format!("{path}.value"), "must be a valid header value");
    }
    let header = match header.map(|h| HeaderName::from_bytes(h.as_bytes())) {
        None => None,
        Some(Ok(name)) => Some(name.as_str().to_owned()),
        Some(Err(_)) => {
            out.issue(&format!("{path}.header"), "must be a valid header name");
            None
        }
    };
    let mode = mode?;
    if out.issues.len() != before {
        return None;
    }
    let from_env = env_name.as_ref().and_then(|name| {
        let token = env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if token.is_none() {
            out.warn(
                &format!("{path}.env"),
                format!("names an unset or empty environment variable {name}"),
            );
        }
        token.map(Secret::new)
    });
    if env_name.is_none() && value.is_none() {
        warn_noop(path, mode, out);
    }
    Some(ProviderAuth {
        mode,
        env: env_name,
        header,
        token: value.map(Secret::new).or(from_env),
    })
}

fn warn_noop(path: &str, mode: AuthMode, out: &mut ProviderDocument) {
    if matches!(mode, AuthMode::Bearer | AuthMode::XApiKey) {
        out.warn(
            path,
            format!(
                "{} auth has neither env nor value and has no effect",
                mode.as_str()
            ),
        );
    }
}

fn string_array(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|item| item.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        .collect()
}

fn header_map(v: &Value) -> Option<Vec<(String, String)>> {
    v.as_object()?
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = value.as_str()?;
            HeaderValue::from_bytes(value.as_bytes()).ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}
