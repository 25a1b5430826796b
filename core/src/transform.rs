//! Preparing the upstream request (`datapath.md` §10–§11): URL, headers and the built-in body
//! transforms, in one function.
//!
//! The built-in transforms are the only ones, and they use only the request header and body
//! hooks, so they are written as plain steps here rather than a registry of hooks; the relay
//! stays byte-exact by default. A registry belongs here once a transform needs a response or
//! stream-line hook.
//!
//! Body edits (model prefix strip, `stripProviderField`, usage injection) are surgical
//! ([`crate::json_edit`]). They are attempted only when one of them could apply to this
//! provider and path; an empty body is left alone silently. A non-empty body whose content
//! type is not `application/json` or `text/*` (missing counts as "not"), or that is not a JSON
//! object, is forwarded unchanged with a [`BodyTransformSkipped`] for the caller to log.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};

use crate::config::Config;
use crate::head::RequestHead;
use crate::headers::{
    ManagedKeyHeader, UpstreamHeaderError, UpstreamHeaderParams, upstream_request_headers,
};
use crate::json_edit::{self, ObjectIndex};
use crate::provider::{Provider, upstream_url};
use crate::secret::Secret;

/// The path on which usage injection applies.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";

/// The configuration bits the upstream request depends on.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSettings<'a> {
    /// `CLI_PROXY_API_URL`.
    pub cli_proxy_api_url: &'a str,
    /// `CLI_PROXY_API_KEY`.
    pub cli_proxy_api_key: &'a Secret,
    /// `STREAM_USAGE_INJECT`.
    pub stream_usage_inject: bool,
}

impl<'a> UpstreamSettings<'a> {
    /// The settings of a validated configuration.
    pub fn from_config(config: &'a Config) -> Self {
        UpstreamSettings {
            cli_proxy_api_url: &config.cli_proxy_api_url,
            cli_proxy_api_key: &config.cli_proxy_api_key,
            stream_usage_inject: config.stream_usage_inject,
        }
    }
}

/// One request to prepare.
#[derive(Debug, Clone, Copy)]
pub struct TransformInput<'a> {
    /// The client's request head.
    pub head: &'a RequestHead,
    /// The client's buffered body.
    pub body: &'a Bytes,
    /// The resolved provider.
    pub provider: &'a Provider,
    /// The header that carried a resolved managed key, if any.
    pub managed_key_header: Option<ManagedKeyHeader>,
    /// Configuration bits.
    pub settings: UpstreamSettings<'a>,
}

/// Why a wanted body edit was skipped (log warn `provider body transform failed, forwarding
/// original body` with `path`, `request_id`, `provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTransformSkipped {
    /// The content type is not `application/json` or `text/*`.
    ContentType,
    /// The body is not a JSON object.
    NotJsonObject,
}

impl BodyTransformSkipped {
    /// The log message.
    pub const MESSAGE: &'static str = "provider body transform failed, forwarding original body";
}

/// The upstream request, ready to send.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// Absolute upstream URL (§9.4).
    pub url: String,
    /// Upstream headers (§10), `content-length` included when there is a body to frame.
    pub headers: http::HeaderMap,
    /// The body to send: the client's `Bytes` itself when nothing was edited.
    pub body: Bytes,
    /// A transform changed the body.
    pub body_changed: bool,
    /// `stream_options.include_usage` was injected; the response side removes the usage-only
    /// chunk (§13.4).
    pub usage_injected: bool,
    /// A wanted body edit was skipped.
    pub skipped: Option<BodyTransformSkipped>,
}

/// Prepares the upstream request. Fails only when a header value cannot be built (O19).
pub fn prepare_upstream(
    input: &TransformInput<'_>,
) -> Result<PreparedRequest, UpstreamHeaderError> {
    let head = input.head;
    let provider = input.provider;
    let edits = edit_body(input);
    let body_changed = edits.new_body.is_some();
    let body = match edits.new_body {
        Some(bytes) => Bytes::from(bytes),
        None => input.body.clone(),
    };
    let had_framing =
        head.headers.contains_key(CONTENT_LENGTH) || head.headers.contains_key(TRANSFER_ENCODING);
    let content_length = (had_framing || !body.is_empty()).then_some(body.len() as u64);
    let headers = upstream_request_headers(
        &head.headers,
        &UpstreamHeaderParams {
            provider,
            managed_key_header: input.managed_key_header,
            cli_proxy_api_url: input.settings.cli_proxy_api_url,
            cli_proxy_api_key: input.settings.cli_proxy_api_key,
            body_changed,
            content_length,
        },
    )?;
    Ok(PreparedRequest {
        url: upstream_url(provider, &head.path, head.query.as_deref()),
        headers,
        body,
        body_changed,
        usage_injected: edits.usage_injected,
        skipped: edits.skipped,
    })
}

#[derive(Default)]
struct BodyEdits {
    new_body: Option<Vec<u8>>,
    usage_injected: bool,
    skipped: Option<BodyTransformSkipped>,
}

fn edit_body(input: &TransformInput<'_>) -> BodyEdits {
    let provider = input.provider;
    let path = input.head.path.as_str();
    let model_prefix = match provider.id.as_str() {
        "anthropic" => Some("anthropic/"),
        "openai" => Some("openai/"),
        _ => None,
    };
    let inject = path == CHAT_COMPLETIONS_PATH && input.settings.stream_usage_inject;
    let wanted = model_prefix.is_some() || provider.strip_provider_field || inject;
    let body: &[u8] = input.body;
    if !wanted || body.is_empty() {
        return BodyEdits::default();
    }
    if !editable_content_type(input.head) {
        return skipped(BodyTransformSkipped::ContentType);
    }
    if ObjectIndex::parse(body).is_err() {
        return skipped(BodyTransformSkipped::NotJsonObject);
    }
    // The body is a valid object from here on, and every edit keeps it one, so the edit
    // functions cannot fail; an error would leave the body as it was.
    let mut current: Option<Vec<u8>> = None;
    let mut usage_injected = false;
    let now =
        |current: &Option<Vec<u8>>| -> Vec<u8> { current.clone().unwrap_or_else(|| body.to_vec()) };
    if let Some(prefix) = model_prefix {
        let buf = now(&current);
        if let Ok(Some(model)) = json_edit::get_str(&buf, "model")
            && let Some(rest) = strip_prefix_ignore_case(&model, prefix)
            && let Ok(raw) = serde_json::to_string(rest)
            && let Ok(edited) = json_edit::set_member(&buf, "model", &raw)
        {
            current = Some(edited);
        }
    }
    if provider.strip_provider_field
        && let Ok(Some(edited)) = json_edit::remove_member(&now(&current), "provider")
    {
        current = Some(edited);
    }
    if inject {
        let buf = now(&current);
        let streaming = matches!(json_edit::get_raw(&buf, "stream"), Ok(Some(b"true")));
        if streaming && let Ok(Some(edited)) = json_edit::set_include_usage(&buf) {
            current = Some(edited);
            usage_injected = true;
        }
    }
    BodyEdits {
        new_body: current,
        usage_injected,
        skipped: None,
    }
}

fn skipped(why: BodyTransformSkipped) -> BodyEdits {
    BodyEdits {
        skipped: Some(why),
        ..BodyEdits::default()
    }
}

fn editable_content_type(head: &RequestHead) -> bool {
    let Some(ct) = head.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.starts_with("text/")
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.as_bytes().get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| text.get(prefix.len()..))
        .flatten()
}

#[cfg(test)]
mod tests;
