//! Quota snapshots (`control.md` §8.5): auth files, the probe request per account type, the
//! probe answers as windows, snapshot rows and the `AccountQuotaReport` JSON. Pure: the
//! shell lists and reads the auth directory, performs the probes, inserts the rows and
//! reads the local usage windows.
//!
//! Choices where the spec is silent:
//!
//! * A `disabled` account is not probed: its report says status `disabled`,
//!   `unavailable: true`, no windows (probing an account the router does not use would only
//!   spend its quota and risk its token).
//! * An unsupported type is reported with `unavailable: false` (nothing says it cannot be
//!   used, only that its quota is unknown).
//! * Claude and Kimi report `limit_reached` (unavailable) when a window is at 100 %, else
//!   `active`, like Codex; a non-2xx answer from them is status `error` with
//!   `error.message` from the body when there is one, else `HTTP <status>`.
//! * Kimi is asked at its second URL when the first answers non-2xx or not at all.
//! * The report's `windows` are the snapshot rows without `timestamp`, `provider`,
//!   `account` and `raw_json`.

mod parse;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::{Value, json};

use crate::secret::Secret;
use crate::time::UnixMillis;

pub use parse::{normalize_pct, normalize_reset, window_type_from_seconds};

/// Probe types `/admin/quotas/probes` lists.
pub const PROBES: [&str; 3] = ["claude", "codex", "kimi"];
/// Claude's usage endpoint.
pub const CLAUDE_URL: &str = "https://api.anthropic.com/api/oauth/usage";
/// Codex's usage endpoint.
pub const CODEX_URL: &str = "https://chatgpt.com/backend-api/wham/usage";
/// Kimi's usage endpoint.
pub const KIMI_URL: &str = "https://api.kimi.com/coding/v1/usages";
/// Kimi's fallback usage endpoint.
pub const KIMI_FALLBACK_URL: &str = "https://api.moonshot.ai/v1/usages";

/// Why an auth file was skipped (warn `failed to read auth file`, with `name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFileError {
    /// The file is not valid JSON.
    #[error("auth file {name} is not valid JSON: {reason}")]
    NotJson {
        /// File name.
        name: String,
        /// The parser's message (never the contents).
        reason: String,
    },
    /// The file is JSON but not an object.
    #[error("auth file {name} is not a JSON object")]
    NotObject {
        /// File name.
        name: String,
    },
}

/// The fields of one CLIProxyAPI auth file. The token is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFile {
    /// File name (for logs).
    pub name: String,
    /// `type` (`claude`, `codex`, `kimi`, …), trimmed; empty when absent.
    pub kind: String,
    /// `email`.
    pub email: Option<String>,
    /// `access_token`.
    pub access_token: Option<Secret>,
    /// `account_id` (Codex's `ChatGPT-Account-Id`).
    pub account_id: Option<String>,
    /// `disabled` is literally `true`.
    pub disabled: bool,
}

impl AuthFile {
    /// Parses an auth file's bytes.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<AuthFile, AuthFileError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| AuthFileError::NotJson {
            name: name.to_owned(),
            reason: format!("line {} column {}", e.line(), e.column()),
        })?;
        let Value::Object(o) = value else {
            return Err(AuthFileError::NotObject {
                name: name.to_owned(),
            });
        };
        let text = |k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(AuthFile {
            name: name.to_owned(),
            kind: text("type").unwrap_or_default(),
            email: text("email"),
            access_token: text("access_token").map(Secret::new),
            account_id: text("account_id"),
            disabled: matches!(o.get("disabled"), Some(Value::Bool(true))),
        })
    }

    /// The `provider` of its snapshots and report: the type, or `unknown`.
    pub fn provider(&self) -> String {
        if self.kind.is_empty() {
            "unknown".to_owned()
        } else {
            self.kind.clone()
        }
    }

    /// The account: `email` or `claude` / `codex` for those types, `kimi` for Kimi, else the
    /// email or the file name.
    pub fn account(&self) -> String {
        match self.kind.as_str() {
            "kimi" => "kimi".to_owned(),
            "claude" | "codex" => self.email.clone().unwrap_or_else(|| self.kind.clone()),
            _ => self.email.clone().unwrap_or_else(|| self.name.clone()),
        }
    }

    /// The `request_logs.provider` of its local usage windows: `anthropic` for Claude,
    /// `openai` for Codex, `kimi` for Kimi, else the type.
    pub fn local_provider(&self) -> String {
        match self.kind.as_str() {
            "claude" => "anthropic".to_owned(),
            "codex" => "openai".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// One probe call. Header values are [`Secret`]s so a `Debug` print never shows a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// `GET` URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(&'static str, Secret)>,
    /// Breaker id, `quota:<hostname>`.
    pub breaker_id: String,
}

/// What a refresh does for one account.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbePlan {
    /// Call these in order until one answers 2xx; parse the last answer.
    Probe(Vec<ProbeRequest>),
    /// No call: the report is known (unsupported type, missing token, disabled).
    Known(AccountQuota),
}

/// A probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// An HTTP answer.
    Http {
        /// Status.
        status: u16,
        /// Body (never logged).
        body: Vec<u8>,
    },
    /// No answer (connection error, timeout, open breaker).
    Failed(String),
}

impl ProbeAnswer {
    /// True for a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeAnswer::Http { status, .. } if (200..300).contains(status))
    }
}

/// One quota window.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaWindow {
    /// `5h`, `week`, `week_sonnet`, `7d`, `exhausted`, …
    pub quota_type: String,
    /// The model the window applies to, when the API says.
    pub model: Option<String>,
    /// Used percentage 0..100.
    pub used_pct: Option<f64>,
    /// Reset time, ISO.
    pub resets_at: Option<String>,
    /// The window as the API sent it.
    pub raw: Value,
}

/// An account's quota state after a refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountQuota {
    /// Provider (the auth file type).
    pub provider: String,
    /// Account.
    pub account: String,
    /// `active`, `limit_reached`, `error`, `unsupported`, `disabled` or the API's error type.
    pub status: String,
    /// The account cannot serve requests now.
    pub unavailable: bool,
    /// The auth file is disabled.
    pub disabled: bool,
    /// Subscription plan, when the API says.
    pub plan: Option<String>,
    /// Error message.
    pub error: Option<String>,
    /// Windows.
    pub windows: Vec<QuotaWindow>,
}

/// One `quota_snapshots` row (`control.md` §2.2); the shell converts it to the storage
/// command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRow {
    /// Refresh time, ISO.
    pub timestamp: String,
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Window type.
    pub quota_type: String,
    /// Model.
    pub model: Option<String>,
    /// Used percentage.
    pub used_pct: Option<f64>,
    /// `max(0, 100 − used)`.
    pub remaining: Option<f64>,
    /// `remaining` with 2 decimals and `%`.
    pub remaining_raw: Option<String>,
    /// Reset time, ISO.
    pub resets_at: Option<String>,
    /// The window's JSON text.
    pub raw_json: Option<String>,
}

/// What to call for `auth` (`version` goes into `user-agent: agent-cli-proxy/<version>`).
pub fn plan(auth: &AuthFile, version: &str) -> ProbePlan {
    let known = |status: &str, unavailable: bool, error: Option<&str>| {
        ProbePlan::Known(AccountQuota {
            provider: auth.provider(),
            account: auth.account(),
            status: status.to_owned(),
            unavailable,
            disabled: auth.disabled,
            plan: None,
            error: error.map(str::to_owned),
            windows: Vec::new(),
        })
    };
    if !matches!(auth.kind.as_str(), "claude" | "codex" | "kimi") {
        return known(
            "unsupported",
            false,
            Some("quota endpoint is not known for this provider"),
        );
    }
    if auth.disabled {
        return known("disabled", true, Some("auth file is disabled"));
    }
    let Some(token) = &auth.access_token else {
        return known("error", true, Some("missing access_token"));
    };
    let ua = Secret::new(format!("agent-cli-proxy/{version}"));
    let bearer = Secret::new(format!("Bearer {}", token.expose()));
    let request = |url: &str, extra: Vec<(&'static str, Secret)>| {
        let mut headers = vec![
            ("user-agent", ua.clone()),
            ("authorization", bearer.clone()),
        ];
        headers.extend(extra);
        ProbeRequest {
            url: url.to_owned(),
            headers,
            breaker_id: format!("quota:{}", host_of(url)),
        }
    };
    ProbePlan::Probe(match auth.kind.as_str() {
        "claude" => vec![request(
            CLAUDE_URL,
            vec![
                ("anthropic-version", Secret::new("2023-06-01")),
                ("anthropic-beta", Secret::new("oauth-2025-04-20")),
            ],
        )],
        "codex" => vec![request(
            CODEX_URL,
            auth.account_id
                .iter()
                .map(|id| ("chatgpt-account-id", Secret::new(id.clone())))
                .collect(),
        )],
        _ => vec![
            request(KIMI_URL, Vec::new()),
            request(KIMI_FALLBACK_URL, Vec::new()),
        ],
    })
}

/// Turns the answer of the last probe call into the account's quota.
pub fn parse_answer(auth: &AuthFile, answer: &ProbeAnswer) -> AccountQuota {
    let mut q = AccountQuota {
        provider: auth.provider(),
        account: auth.account(),
        status: "error".to_owned(),
        unavailable: true,
        disabled: auth.disabled,
        plan: None,
        error: None,
        windows: Vec::new(),
    };
    let (status, body) = match answer {
        ProbeAnswer::Failed(message) => {
            q.error = Some(message.clone());
            return q;
        }
        ProbeAnswer::Http { status, body } => (*status, body),
    };
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match auth.kind.as_str() {
        "codex" => parse::codex(&mut q, status, &json),
        "claude" => parse::claude(&mut q, status, &json),
        _ => parse::kimi(&mut q, status, &json),
    }
    q
}

impl AccountQuota {
    /// The snapshot rows of this account at `timestamp` (one per window).
    pub fn snapshot_rows(&self, timestamp: &str) -> Vec<SnapshotRow> {
        self.windows
            .iter()
            .map(|w| {
                let remaining = w.used_pct.map(|u| (100.0 - u).max(0.0));
                SnapshotRow {
                    timestamp: timestamp.to_owned(),
                    provider: self.provider.clone(),
                    account: self.account.clone(),
                    quota_type: w.quota_type.clone(),
                    model: w.model.clone(),
                    used_pct: w.used_pct,
                    remaining,
                    remaining_raw: remaining.map(|r| format!("{r:.2}%")),
                    resets_at: w.resets_at.clone(),
                    raw_json: Some(w.raw.to_string()),
                }
            })
            .collect()
    }

    /// The AccountQuotaReport: `{provider, account, status, unavailable, disabled, plan?,
    /// refreshed_at, error?, windows, local_usage: {five_hour, seven_day}}`.
    pub fn report_json(&self, refreshed_at: &str, five_hour: Value, seven_day: Value) -> Value {
        let windows: Vec<Value> = self
            .snapshot_rows(refreshed_at)
            .into_iter()
            .map(|r| {
                json!({
                    "quota_type": r.quota_type,
                    "model": r.model,
                    "used_pct": r.used_pct,
                    "remaining": r.remaining,
                    "remaining_raw": r.remaining_raw,
                    "resets_at": r.resets_at,
                })
            })
            .collect();
        let mut out = serde_json::Map::new();
        out.insert("provider".into(), json!(self.provider));
        out.insert("account".into(), json!(self.account));
        out.insert("status".into(), json!(self.status));
        out.insert("unavailable".into(), json!(self.unavailable));
        out.insert("disabled".into(), json!(self.disabled));
        if let Some(plan) = &self.plan {
            out.insert("plan".into(), json!(plan));
        }
        out.insert("refreshed_at".into(), json!(refreshed_at));
        if let Some(error) = &self.error {
            out.insert("error".into(), json!(error));
        }
        out.insert("windows".into(), Value::Array(windows));
        out.insert(
            "local_usage".into(),
            json!({"five_hour": five_hour, "seven_day": seven_day}),
        );
        Value::Object(out)
    }
}

/// Start of the report's local windows: `(now − 5 h, now − 7 d)`, ISO.
pub fn local_windows(now: UnixMillis) -> (String, String) {
    (
        UnixMillis(now.0.saturating_sub(5 * 3_600_000)).to_iso(),
        UnixMillis(now.0.saturating_sub(7 * 86_400_000)).to_iso(),
    )
}

/// `true` for an auth directory entry the refresh reads (`*.json`).
pub fn is_auth_file_name(name: &str) -> bool {
    name.len() > 5 && name.to_ascii_lowercase().ends_with(".json")
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.split(':').next().unwrap_or(host)
}
