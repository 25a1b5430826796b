//! The row an exchange writes: its pre-log columns (`datapath.md` §14.1) and the finalize
//! columns (§14.3), costed with the prices the exchange was admitted with.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::cost::{self, CostInput};
use crate::outcome::RowEnding;
use crate::pricing::Pricer;
use crate::provider::ProviderType;
use crate::time::UnixMillis;
use crate::usage::{Convention, TokenColumns, UsageRecord};

/// The columns of a pending row, inserted before any upstream byte is written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreLogRow {
    /// `request_id` (UUID v7, time-ordered).
    pub request_id: String,
    /// Resolved provider id.
    pub provider: String,
    /// Requested model, or `unknown`.
    pub model: String,
    /// Detected tool.
    pub tool: String,
    /// `client_id`.
    pub client_id: String,
    /// `x-agent-name`, trimmed.
    pub agent: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// Canonical source address.
    pub source_ip: Option<String>,
    /// `x-msg-id`, `x-message-id` or `x-request-id`.
    pub msg_id: Option<String>,
    /// Request path (no query).
    pub path: String,
    /// The request asked for a stream.
    pub streamed: bool,
    /// Managed key id.
    pub proxy_api_key_id: Option<i64>,
    /// Entry time, ISO-8601 UTC with ms.
    pub started_at: String,
    /// `{"method","originator","session_id"}`.
    pub meta_json: String,
}

impl PreLogRow {
    /// The pre-log `meta_json` object.
    pub fn meta(method: &str, originator: Option<&str>, session_id: Option<&str>) -> String {
        // Serialized straight from a struct: a `json!` map (an index map, a key allocation
        // each) made this one of the larger costs of starting a call. Same bytes.
        #[derive(serde::Serialize)]
        struct Meta<'a> {
            method: &'a str,
            originator: Option<&'a str>,
            session_id: Option<&'a str>,
        }
        serde_json::to_string(&Meta {
            method,
            originator,
            session_id,
        })
        .unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Every column the finalize writes, plus what the writer needs for the audit row and the
/// `daily_usage` upsert in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalizeRow {
    /// Row id.
    pub row_id: i64,
    /// `actual_model`.
    pub actual_model: Option<String>,
    /// `actual_provider`.
    pub actual_provider: Option<String>,
    /// `proxy_api_key_id`.
    pub proxy_api_key_id: Option<i64>,
    /// 1 if the response was SSE or NDJSON.
    pub streamed: bool,
    /// `status`.
    pub status: u16,
    /// Token columns.
    pub columns: TokenColumns,
    /// `usage_incomplete`.
    pub usage_incomplete: bool,
    /// `cost_nanousd`.
    pub cost_nanousd: u64,
    /// `cost_status`.
    pub cost_status: crate::cost::CostStatus,
    /// Audit `model` (the priced model).
    pub audit_model: String,
    /// Audit `source`.
    pub audit_source: &'static str,
    /// `error_code`.
    pub error_code: Option<&'static str>,
    /// `error_message`.
    pub error_message: Option<String>,
    /// `latency_ms` (entry → finalize).
    pub latency_ms: u64,
    /// `finished_at` = `finalized_at`, ISO-8601 UTC.
    pub finished_at: String,
    /// `lifecycle_status`.
    pub lifecycle_status: crate::outcome::Lifecycle,
    /// The complete final `meta_json`.
    pub meta_json: String,
    /// Row `provider` (daily bucket key and audit provider).
    pub provider: String,
    /// Row `model` (daily bucket key).
    pub model: String,
    /// Row `started_at` (its first 10 characters are the daily bucket's day).
    pub started_at: String,
}

pub(crate) struct FinalizeInputs<'a> {
    pub row_id: i64,
    pub prelog: &'a PreLogRow,
    pub ending: &'a RowEnding,
    pub usage: Option<&'a UsageRecord>,
    pub actual_model: Option<&'a str>,
    pub config: &'a Config,
    pub pricer: &'a Pricer,
    pub streamed: bool,
    pub usage_incomplete: bool,
    pub latency_ms: u64,
    pub finished_at: UnixMillis,
    pub attempts: u32,
    pub usage_injected: bool,
}

pub(crate) fn build_finalize(i: FinalizeInputs<'_>) -> FinalizeRow {
    let p = i.prelog;
    let providers = &i.config.providers;
    let actual_provider = providers.actual_provider(i.actual_model, &p.provider);
    let convention = i.usage.map_or_else(
        || provider_convention(i.config, &p.provider),
        |u| u.convention,
    );
    let record = i.usage.copied().unwrap_or(UsageRecord::empty(convention));
    let costed = cost::cost(
        i.pricer,
        &CostInput {
            usage: &record,
            model: &p.model,
            actual_model: i.actual_model,
            provider: &p.provider,
            actual_provider: Some(actual_provider.as_str()),
        },
    );
    FinalizeRow {
        row_id: i.row_id,
        actual_model: i.actual_model.map(str::to_owned),
        actual_provider: Some(actual_provider),
        proxy_api_key_id: p.proxy_api_key_id,
        streamed: i.streamed,
        status: i.ending.status,
        columns: record.columns(),
        usage_incomplete: i.usage_incomplete,
        cost_nanousd: costed.cost_nanousd,
        cost_status: costed.status,
        audit_model: costed.priced_model,
        audit_source: costed.source.as_str(),
        error_code: i.ending.error_code,
        error_message: i.ending.error_message.clone(),
        latency_ms: i.latency_ms,
        finished_at: i.finished_at.to_iso(),
        lifecycle_status: i.ending.lifecycle,
        meta_json: final_meta(&p.meta_json, convention, i.attempts, i.usage_injected),
        provider: p.provider.clone(),
        model: p.model.clone(),
        started_at: p.started_at.clone(),
    }
}

fn final_meta(prelog_meta: &str, convention: Convention, attempts: u32, injected: bool) -> String {
    const ADDED: [&str; 3] = [
        "\"usage_convention\"",
        "\"attempts\"",
        "\"stream_usage_injected\"",
    ];
    // The pre-log meta is our own compact object without these keys: append them to its
    // text instead of parsing it into a map and writing it out again (same bytes; the
    // map's replace-in-place semantics decide only when a key is already there).
    if let Some(head) = prelog_meta.strip_suffix('}')
        && head.starts_with('{')
        && !ADDED.iter().any(|k| head.contains(k))
    {
        let mut out = String::with_capacity(prelog_meta.len() + 80);
        out.push_str(head);
        if head.len() > 1 {
            out.push(',');
        }
        out.push_str("\"usage_convention\":\"");
        out.push_str(convention.as_str());
        out.push_str("\",\"attempts\":");
        out.push_str(&attempts.to_string());
        out.push_str(",\"stream_usage_injected\":");
        out.push_str(if injected { "true" } else { "false" });
        out.push('}');
        return out;
    }
    final_meta_via_map(prelog_meta, convention, attempts, injected)
}

fn final_meta_via_map(
    prelog_meta: &str,
    convention: Convention,
    attempts: u32,
    injected: bool,
) -> String {
    let mut meta: Map<String, Value> = serde_json::from_str(prelog_meta).unwrap_or_default();
    meta.insert("usage_convention".into(), json!(convention.as_str()));
    meta.insert("attempts".into(), json!(attempts));
    meta.insert("stream_usage_injected".into(), json!(injected));
    Value::Object(meta).to_string()
}

/// The convention of a row without usage: that of its provider's API type
/// (`accounting.md` §3).
pub fn provider_convention(config: &Config, provider: &str) -> Convention {
    let anthropic = provider == "anthropic"
        || config
            .providers
            .get(provider)
            .is_some_and(|p| p.kind == ProviderType::Anthropic);
    if anthropic {
        Convention::Anthropic
    } else {
        Convention::OpenAi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn old_meta(method: &str, originator: Option<&str>, session_id: Option<&str>) -> String {
        json!({"method": method, "originator": originator, "session_id": session_id}).to_string()
    }

    proptest! {
        /// The struct-serialized pre-log meta and the appended final meta are byte for byte
        /// what the map round trip gives, for any header values.
        #[test]
        fn meta_text_equals_the_map_round_trip(
            method in "\\PC{0,12}",
            originator in proptest::option::of("\\PC{0,24}"),
            session in proptest::option::of("[\"\\\\a-z0-9\u{0}-\u{1f}é}{,:-]{0,40}"),
            attempts in 0u32..10,
            injected: bool,
            anthropic: bool,
        ) {
            let pre = PreLogRow::meta(&method, originator.as_deref(), session.as_deref());
            prop_assert_eq!(&pre, &old_meta(&method, originator.as_deref(), session.as_deref()));
            let conv = if anthropic { Convention::Anthropic } else { Convention::OpenAi };
            prop_assert_eq!(
                final_meta(&pre, conv, attempts, injected),
                final_meta_via_map(&pre, conv, attempts, injected)
            );
        }
    }

    #[test]
    fn final_meta_of_other_objects_follows_the_map() {
        for pre in ["{}", "{\"attempts\":9}", "not json", "{\"a\":1}"] {
            assert_eq!(
                final_meta(pre, Convention::OpenAi, 2, true),
                final_meta_via_map(pre, Convention::OpenAi, 2, true),
                "{pre}"
            );
        }
        assert_eq!(
            final_meta("{}", Convention::Anthropic, 1, false),
            r#"{"usage_convention":"anthropic","attempts":1,"stream_usage_injected":false}"#
        );
    }
}
