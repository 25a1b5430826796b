//! Which tool and which instance sent a request (`datapath.md` §6): the inspection of
//! §6.1 ([`inspect()`]), the tool rule table of §6.2 ([`TOOL_RULES`]; adding a tool is one
//! entry), and the instance name and `client_id` of §6.3 ([`identify`]).
//!
//! Header values are read as UTF-8 with replacement, so a non-ASCII `x-agent-name` or
//! session id still names the instance. Credentials never reach `client_id`: the credential
//! is only used as a lookup key into `CLIENT_NAME_MAPPING`, whose values are the operator's.

pub mod inspect;

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::HeaderMap;

use crate::auth::{constant_time_eq, extract_credential};

pub use inspect::{BodyFields, Inspection, body_fields, inspect};

/// One condition of a tool rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    /// The header exists with a non-empty trimmed value.
    Present(&'static str),
    /// The `user-agent` contains this text, ASCII case-insensitively.
    UaContains(&'static str),
    /// The trimmed `user-agent` starts with this text, ASCII case-insensitively.
    UaStartsWith(&'static str),
    /// The header's trimmed value starts with this text, ASCII case-insensitively.
    StartsWith(&'static str, &'static str),
    /// The header's trimmed value equals this text, ASCII case-insensitively.
    Equals(&'static str, &'static str),
}

/// A row of the tool table: the tool matches when any of its conditions holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolRule {
    /// The tool name stored in rows and used in `client_id`.
    pub tool: &'static str,
    /// Conditions, any of which selects the tool.
    pub any_of: &'static [Matcher],
    /// The headers, first present wins, whose first 8 characters name the instance; empty
    /// when the tool sends no session id.
    pub session_headers: &'static [&'static str],
}

/// The tool rules of §6.2 in order; the first match wins, [`UNKNOWN`] otherwise.
pub const TOOL_RULES: &[ToolRule] = &[
    ToolRule {
        tool: "openclaw",
        any_of: &[Matcher::Present("x-agent-name")],
        session_headers: &["x-openclaw-session-id"],
    },
    ToolRule {
        tool: "opencode",
        any_of: &[
            Matcher::Present("x-opencode-session"),
            Matcher::Present("x-initiator"),
            Matcher::UaContains("opencode/"),
        ],
        // OpenCode sends `x-opencode-session` only to its own gateway; with the Anthropic and
        // OpenAI providers its session id travels as `x-session-id`.
        session_headers: &["x-opencode-session", "x-session-id"],
    },
    ToolRule {
        tool: "openclaw",
        any_of: &[
            Matcher::Present("x-openclaw-session-id"),
            Matcher::Equals("originator", "openclaw"),
        ],
        session_headers: &["x-openclaw-session-id"],
    },
    ToolRule {
        tool: "hermes-agent",
        any_of: &[
            Matcher::UaContains("HermesAgent/"),
            Matcher::Present("x-activity-request-id"),
        ],
        session_headers: &["x-activity-request-id"],
    },
    ToolRule {
        tool: "claude-code",
        any_of: &[Matcher::UaContains("claude-cli/")],
        session_headers: &["x-claude-code-session-id"],
    },
    ToolRule {
        tool: "codex",
        // Every Codex front end names itself `codex_*` or `codex-*` (`codex_cli_rs`,
        // `codex_exec`, `codex-tui`, `codex_vscode`, ...), in the user-agent and `originator`.
        any_of: &[
            Matcher::UaStartsWith("codex_"),
            Matcher::UaStartsWith("codex-"),
            Matcher::StartsWith("originator", "codex_"),
            Matcher::StartsWith("originator", "codex-"),
        ],
        session_headers: &["session-id"],
    },
    ToolRule {
        tool: "gemini-cli",
        // `GeminiCLI/`, `GeminiCLI-tui/`, `GeminiCLI-cli-command/`, `GeminiCLI-acp…` (`gemini.md` §3).
        any_of: &[Matcher::UaStartsWith("GeminiCLI")],
        session_headers: &[],
    },
];

/// The rule used when no rule of [`TOOL_RULES`] matches.
pub const UNKNOWN: ToolRule = ToolRule {
    tool: "unknown",
    any_of: &[],
    session_headers: &[],
};

/// Number of Unicode scalar values of a session header kept as the instance name.
pub const SESSION_PREFIX_CHARS: usize = 8;

/// The outcome of identification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tool name.
    pub tool: &'static str,
    /// The instance name, if any.
    pub instance: Option<String>,
    /// `<tool>-<instance>` or `<tool>`.
    pub client_id: String,
}

/// Identifies the tool, the instance and the `client_id` of a request; `mapping` is
/// `CLIENT_NAME_MAPPING` (raw credential → instance name).
pub fn identify(headers: &HeaderMap, mapping: &BTreeMap<String, String>) -> Identity {
    let rule = detect_tool(headers);
    let instance = instance_name(headers, rule, mapping);
    let client_id = client_id(rule.tool, instance.as_deref());
    Identity {
        tool: rule.tool,
        instance,
        client_id,
    }
}

/// The first rule of [`TOOL_RULES`] that matches, else [`UNKNOWN`].
pub fn detect_tool(headers: &HeaderMap) -> &'static ToolRule {
    TOOL_RULES
        .iter()
        .find(|rule| rule.any_of.iter().any(|m| matches(headers, m)))
        .unwrap_or(&UNKNOWN)
}

/// The instance name (§6.3): the mapping of the raw credential, else `x-agent-name`, else the
/// first 8 characters of the tool's session header.
pub fn instance_name(
    headers: &HeaderMap,
    rule: &ToolRule,
    mapping: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(name) = extract_credential(headers).and_then(|c| mapped_name(mapping, c.token)) {
        return Some(name.to_owned());
    }
    if let Some(agent) = header_text(headers, "x-agent-name") {
        return Some(agent.into_owned());
    }
    let session = session_id(headers, rule)?;
    Some(session.chars().take(SESSION_PREFIX_CHARS).collect())
}

/// The tool's whole session id: the first of its session headers that is present.
pub fn session_id<'a>(headers: &'a HeaderMap, rule: &ToolRule) -> Option<Cow<'a, str>> {
    rule.session_headers
        .iter()
        .find_map(|name| header_text(headers, name))
}

/// `<tool>-<instance>`, or `<tool>` without an instance.
pub fn client_id(tool: &str, instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{tool}-{instance}"),
        None => tool.to_owned(),
    }
}

/// The mapping keys are credentials, so they are compared in constant time (RQ-S4), every
/// entry, with no early exit; the mapping is a short operator-written list.
fn mapped_name<'m>(mapping: &'m BTreeMap<String, String>, credential: &str) -> Option<&'m str> {
    mapping.iter().fold(None, |found, (key, name)| {
        let hit = constant_time_eq(key.as_bytes(), credential.as_bytes());
        if hit { Some(name.as_str()) } else { found }
    })
}

/// The trimmed value of `name` decoded as UTF-8 with replacement, `None` when absent or blank.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    let bytes = headers.get(name)?.as_bytes().trim_ascii();
    if bytes.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(bytes))
}

fn matches(headers: &HeaderMap, m: &Matcher) -> bool {
    match *m {
        Matcher::Present(name) => header_text(headers, name).is_some(),
        Matcher::UaContains(needle) => headers
            .get(http::header::USER_AGENT)
            .is_some_and(|ua| contains_ignore_ascii_case(ua.as_bytes(), needle.as_bytes())),
        Matcher::UaStartsWith(prefix) => headers
            .get(http::header::USER_AGENT)
            .is_some_and(|ua| starts_with_ignore_ascii_case(ua.as_bytes(), prefix.as_bytes())),
        Matcher::Equals(name, want) => headers.get(name).is_some_and(|v| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(want.as_bytes())
        }),
        Matcher::StartsWith(name, prefix) => headers
            .get(name)
            .is_some_and(|v| starts_with_ignore_ascii_case(v.as_bytes(), prefix.as_bytes())),
    }
}

fn starts_with_ignore_ascii_case(value: &[u8], prefix: &[u8]) -> bool {
    value
        .trim_ascii()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests;
