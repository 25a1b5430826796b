//! Format detection (`accounting.md` §2.5), terminal recognition (`datapath.md` §13.4) and the
//! prefilter that decides which events need a JSON parse at all.
//!
//! The prefilter is safe because every key and type name the accounting reads is plain ASCII
//! letters, digits, `_` and `.`: in JSON text such a string appears either literally or with at
//! least one `\u` escape (the other escapes cannot produce those characters, and replacing
//! invalid UTF-8 only produces U+FFFD). So an event whose bytes contain none of the needles and
//! no `\u` cannot carry usage, a model or a terminal type.

use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Api;
use super::lenient::{Count, Flag, Text, object};

/// Terminal event names of the event-stream APIs.
pub const SSE_TERMINAL_NAMES: [&str; 4] = [
    "message_stop",
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Whether an `event:` value (or a data `type`) names a terminal event.
pub fn is_terminal_name(name: &[u8]) -> bool {
    SSE_TERMINAL_NAMES.iter().any(|t| t.as_bytes() == name)
}

/// The top-level fields any detection rule reads.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Probe<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Text<'a>,
    #[serde(borrow)]
    pub object: Text<'a>,
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
    #[serde(borrow)]
    pub message: Option<&'a RawValue>,
    #[serde(borrow)]
    pub response: Option<&'a RawValue>,
    #[serde(borrow)]
    pub choices: Option<&'a RawValue>,
    pub done: Flag,
    pub prompt_eval_count: Count,
    pub eval_count: Count,
    #[serde(rename = "usageMetadata", borrow)]
    pub usage_metadata: Option<&'a RawValue>,
    #[serde(rename = "modelVersion", borrow)]
    pub model_version: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UsageKeys<'a> {
    prompt_tokens: Count,
    input_tokens: Count,
    #[serde(borrow)]
    input_tokens_details: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChunkJson<'a> {
    #[serde(borrow)]
    choices: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

/// Plain JSON body detection, first match wins.
pub(crate) fn plain_api(p: &Probe<'_>) -> Option<Api> {
    if p.object.get() == Some("response") {
        return Some(Api::Responses);
    }
    if p.ty.get() == Some("message") {
        return Some(Api::Anthropic);
    }
    let keys = object::<UsageKeys<'_>>(p.usage).unwrap_or_default();
    if keys.prompt_tokens.is_number {
        return Some(Api::Chat);
    }
    if keys.input_tokens.is_number {
        return Some(match keys.input_tokens_details {
            Some(_) => Api::Responses,
            None => Api::Anthropic,
        });
    }
    if p.done.0 == Some(true) && (p.prompt_eval_count.is_number || p.eval_count.is_number) {
        return Some(Api::Ollama);
    }
    if super::gemini::chunk(p).is_some_and(|c| c.usage.is_some()) {
        return Some(Api::Gemini);
    }
    None
}

/// Per-event detection; `ty` is the data's `type`, or the `event:` name when the data has
/// none.
pub(crate) fn sse_api(p: &Probe<'_>, ty: Option<&str>) -> Option<Api> {
    if matches!(ty, Some("message_start" | "message_delta")) {
        return Some(Api::Anthropic);
    }
    if ty.is_some_and(|t| t.starts_with("response.")) {
        return Some(Api::Responses);
    }
    if p.choices.is_some_and(is_array) || p.object.get() == Some("chat.completion.chunk") {
        return Some(Api::Chat);
    }
    let keys = object::<UsageKeys<'_>>(p.usage).unwrap_or_default();
    if p.choices.is_none() && keys.prompt_tokens.is_number {
        return Some(Api::Chat);
    }
    if super::gemini::chunk(p).is_some() {
        return Some(Api::Gemini);
    }
    None
}

/// Whether a single data line is the Chat usage-only chunk: `choices` is an empty array and
/// `usage` is present and not null.
pub(crate) fn is_usage_chunk(text: &str) -> bool {
    let Some(c) = super::lenient::object_str::<ChunkJson<'_>>(text) else {
        return false;
    };
    let empty_choices = c.choices.is_some_and(|raw| {
        let s = raw.get().trim();
        s.strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .is_some_and(|inner| inner.trim().is_empty())
    });
    empty_choices && c.usage.is_some()
}

/// The data line's JSON `type`, when it names a terminal event.
pub(crate) fn data_type_is_terminal(text: &str) -> bool {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        ty: Text<'a>,
    }
    super::lenient::object_str::<TypeOnly<'_>>(text)
        .and_then(|t| t.ty.get().map(|s| is_terminal_name(s.as_bytes())))
        .unwrap_or(false)
}

fn is_array(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('[')
}

/// Substring prefilters, built once per stream.
#[derive(Debug, Clone)]
pub(crate) struct Prefilter {
    usage: Finder<'static>,
    model: Finder<'static>,
    escape: Finder<'static>,
    done: Finder<'static>,
    choices: Finder<'static>,
    message_stop: Finder<'static>,
    response: Finder<'static>,
}

impl Prefilter {
    pub(crate) fn new() -> Self {
        Prefilter {
            usage: Finder::new(b"usage"),
            model: Finder::new(b"model"),
            escape: Finder::new(b"\\u"),
            done: Finder::new(b"done"),
            choices: Finder::new(b"choices"),
            message_stop: Finder::new(b"message_stop"),
            response: Finder::new(b"response."),
        }
    }

    /// Whether an SSE event's data may carry usage or a model.
    pub(crate) fn sse_event(&self, data: &[u8]) -> bool {
        self.usage.find(data).is_some()
            || self.model.find(data).is_some()
            || self.escape.find(data).is_some()
    }

    /// Whether an NDJSON line may carry `done`, counts or a model.
    pub(crate) fn ndjson_line(&self, line: &[u8]) -> bool {
        self.done.find(line).is_some()
            || self.model.find(line).is_some()
            || self.escape.find(line).is_some()
    }

    /// Whether a data line may have a terminal `type`.
    pub(crate) fn terminal_data(&self, data: &[u8]) -> bool {
        self.message_stop.find(data).is_some()
            || self.response.find(data).is_some()
            || self.escape.find(data).is_some()
    }

    /// Whether a data line may be the Chat usage-only chunk.
    pub(crate) fn usage_chunk(&self, data: &[u8]) -> bool {
        (self.choices.find(data).is_some() && self.usage.find(data).is_some())
            || self.escape.find(data).is_some()
    }
}
