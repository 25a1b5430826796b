//! The response script of one request, read from its `x-fake-*` headers.

use std::time::Duration;

use serde_json::Value;

use super::conn::Request;
use crate::support::ledger::{Api, Kind};

/// Where the response stops making progress until the peer closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stall {
    BeforeHead,
    BeforeBody,
    /// After this many events were written.
    AfterEvents(usize),
}

/// Body framing of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length,
    Chunked,
    Close,
}

/// Everything the headers of a request ask for. Unparsable values are reported as
/// violations and ignored, so a typo shows in the ledger instead of silently passing.
pub(crate) struct Script {
    pub api: Api,
    pub fixture: Option<String>,
    pub status: Option<u16>,
    pub kind: Option<Kind>,
    pub model: Option<String>,
    pub usage: Option<Value>,
    pub events: usize,
    pub delay: Duration,
    pub stall: Option<Stall>,
    pub reset_after: Option<usize>,
    pub redirect: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    pub retry_after: Option<String>,
    pub content_length: Option<u64>,
    pub piece: Option<usize>,
    pub pad: usize,
    pub framing: Option<Framing>,
    /// `x-fake-fail-first: <status>[:<n>]`: the first `n` (default 1) requests carrying the
    /// same `x-request-id` get `status` instead (a failure that a retry gets past).
    pub fail_first: Option<(u16, usize)>,
    pub expect_headers: Vec<String>,
    pub forbid_headers: Vec<String>,
    pub violations: Vec<String>,
}

/// Content events generated when `x-fake-events` is absent.
const DEFAULT_EVENTS: usize = 3;

impl Script {
    pub fn from_request(req: &Request) -> Script {
        let path = req.target.split('?').next().unwrap_or("");
        let mut script = Script {
            api: api_of(path),
            fixture: req.header("x-fake-fixture").map(|v| v.trim().to_owned()),
            status: None,
            kind: None,
            model: req.header("x-fake-model").map(|v| v.trim().to_owned()),
            usage: None,
            events: DEFAULT_EVENTS,
            delay: Duration::ZERO,
            stall: None,
            reset_after: None,
            redirect: req.header("x-fake-redirect").map(|v| v.trim().to_owned()),
            extra_headers: Vec::new(),
            retry_after: req
                .header("x-fake-retry-after")
                .map(|v| v.trim().to_owned()),
            content_length: None,
            piece: None,
            pad: 0,
            framing: None,
            fail_first: None,
            expect_headers: split_names(req.header_all("x-fake-expect-header")),
            forbid_headers: split_names(req.header_all("x-fake-forbid-header")),
            violations: Vec::new(),
        };
        script.status = script.number(req, "x-fake-status");
        script.events = script
            .number(req, "x-fake-events")
            .unwrap_or(DEFAULT_EVENTS);
        script.delay = Duration::from_millis(script.number(req, "x-fake-delay-ms").unwrap_or(0));
        script.reset_after = script.number(req, "x-fake-reset-after");
        script.content_length = script.number(req, "x-fake-content-length");
        script.piece = script.number(req, "x-fake-chunk");
        script.pad = script.number(req, "x-fake-pad").unwrap_or(0);
        if let Some(kind) = req.header("x-fake-kind") {
            script.kind = match kind.trim() {
                "json" => Some(Kind::Json),
                "sse" => Some(Kind::Sse),
                "ndjson" => Some(Kind::Ndjson),
                other => script.violation(format!("x-fake-kind: unknown kind {other:?}")),
            };
        }
        if let Some(framing) = req.header("x-fake-framing") {
            script.framing = match framing.trim() {
                "length" => Some(Framing::Length),
                "chunked" => Some(Framing::Chunked),
                "close" => Some(Framing::Close),
                other => script.violation(format!("x-fake-framing: unknown framing {other:?}")),
            };
        }
        if let Some(fail) = req.header("x-fake-fail-first") {
            script.fail_first = parse_fail_first(fail.trim())
                .or_else(|| script.violation(format!("x-fake-fail-first: bad value {fail:?}")));
        }
        if let Some(stall) = req.header("x-fake-stall") {
            script.stall = parse_stall(stall.trim())
                .or_else(|| script.violation(format!("x-fake-stall: bad value {stall:?}")));
        }
        if let Some(usage) = req.header("x-fake-usage") {
            script.usage = serde_json::from_str::<Value>(usage)
                .ok()
                .filter(Value::is_object)
                .or_else(|| script.violation(format!("x-fake-usage: not a JSON object: {usage}")));
        }
        for line in req.header_all("x-fake-header") {
            match line.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => script
                    .extra_headers
                    .push((name.trim().to_owned(), value.trim().to_owned())),
                _ => {
                    script.violation::<()>(format!("x-fake-header: not `name: value`: {line}"));
                }
            }
        }
        for name in script.expect_headers.clone() {
            if req.header(&name).is_none() {
                script.violation::<()>(format!("expected header {name} is missing"));
            }
        }
        for name in script.forbid_headers.clone() {
            if req.header(&name).is_some() {
                script.violation::<()>(format!("forbidden header {name} is present"));
            }
        }
        script
    }

    /// Checks the server-wide header rules too.
    pub fn check_headers(&mut self, req: &Request, expect: &[String], forbid: &[String]) {
        for name in expect {
            if req.header(name).is_none() {
                self.violation::<()>(format!("expected header {name} is missing"));
            }
        }
        for name in forbid {
            if req.header(name).is_some() {
                self.violation::<()>(format!("forbidden header {name} is present"));
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, req: &Request, name: &str) -> Option<T> {
        let value = req.header(name)?;
        value
            .trim()
            .parse()
            .ok()
            .or_else(|| self.violation(format!("{name}: not a number: {value:?}")))
    }

    fn violation<T>(&mut self, message: String) -> Option<T> {
        self.violations.push(message);
        None
    }
}

/// The API a request path selects.
pub(crate) fn api_of(path: &str) -> Api {
    match path {
        "/v1/messages" => Api::Anthropic,
        "/v1/chat/completions" => Api::Chat,
        "/v1/responses" => Api::Responses,
        "/api/chat" | "/api/generate" => Api::Ollama,
        "/health" => Api::Health,
        _ => Api::Other,
    }
}

fn parse_stall(value: &str) -> Option<Stall> {
    match value {
        "before-head" => Some(Stall::BeforeHead),
        "before-body" => Some(Stall::BeforeBody),
        _ => value
            .strip_prefix("after-events:")
            .and_then(|n| n.trim().parse().ok())
            .map(Stall::AfterEvents),
    }
}

/// `<status>` or `<status>:<n>`.
fn parse_fail_first(value: &str) -> Option<(u16, usize)> {
    let (status, n) = value.split_once(':').unwrap_or((value, "1"));
    Some((status.trim().parse().ok()?, n.trim().parse().ok()?))
}

fn split_names<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}
