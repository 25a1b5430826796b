//! The usage record: one per request, normalized at parse time (`accounting.md` §3), and its
//! extraction from response bodies (`accounting.md` §2).
//!
//! Per-API extraction lives in the submodules; this module owns the record every later step
//! (cost, row columns) consumes, the accumulating [`UsageState`] fed event by event, and
//! [`extract_plain`] for whole JSON bodies.
//!
//! Choices where the spec is silent:
//! * Events are detected one by one, so a hostile stream could mix APIs; the record comes from
//!   the API of the last event that carried usage, each API keeping its own state.
//! * A usage object whose fields are all absent or invalid still counts as usage found (all
//!   zero); a usage value that is not an object (or `null`) counts as absent.
//! * A JSON object with a duplicate key the accounting reads is unreadable and ignored.
//! * Ollama: a `done: true` object needs at least one of `prompt_eval_count`, `eval_count` to
//!   count as usage (the same condition as the plain-body detection).
//! * For a plain body of no detected format the actual model is still the top-level `model`.

mod anthropic;
pub mod detect;
mod gemini;
mod lenient;
mod ollama;
mod openai;
mod responses;

use anthropic::{AnthropicUsage, MessageJson};
use detect::{Prefilter, Probe};
use gemini::GeminiUsage;
use lenient::object;
use openai::OpenAiCounts;
use responses::ResponseJson;

/// How the API counted prompt tokens: does its prompt figure include cache reads?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convention {
    /// Anthropic: `input_tokens` excludes cache reads and writes.
    Anthropic,
    /// OpenAI (Chat, Responses, Ollama): the prompt count includes cached tokens.
    OpenAi,
}

impl Convention {
    /// The `meta_json.usage_convention` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Convention::Anthropic => "anthropic",
            Convention::OpenAi => "openai",
        }
    }
}

/// Normalized token counts of one request (`accounting.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageRecord {
    /// Counting convention of the API that reported it.
    pub convention: Convention,
    /// Input tokens neither read from nor written to the cache.
    pub input_uncached: u64,
    /// Input tokens read from the cache.
    pub cache_read: u64,
    /// Input tokens written to the cache with the 5-minute TTL.
    pub cache_write_5m: u64,
    /// Input tokens written to the cache with the 1-hour TTL.
    pub cache_write_1h: u64,
    /// Output tokens, including reasoning/thinking.
    pub output: u64,
    /// Reasoning tokens, informational only (already inside `output`).
    pub reasoning: u64,
}

impl UsageRecord {
    /// An all-zero record of the given convention.
    pub const fn empty(convention: Convention) -> Self {
        UsageRecord {
            convention,
            input_uncached: 0,
            cache_read: 0,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: 0,
            reasoning: 0,
        }
    }

    /// The row's token columns for this record (`accounting.md` §3 column table). Sums
    /// saturate: a hostile upstream cannot make them wrap.
    pub fn columns(&self) -> TokenColumns {
        match self.convention {
            Convention::Anthropic => {
                let cache_creation = self.cache_write_5m.saturating_add(self.cache_write_1h);
                TokenColumns {
                    prompt_tokens: self.input_uncached,
                    completion_tokens: self.output,
                    cache_read_tokens: self.cache_read,
                    cache_creation_tokens: cache_creation,
                    cache_write_1h_tokens: self.cache_write_1h,
                    reasoning_tokens: 0,
                    total_tokens: self
                        .input_uncached
                        .saturating_add(self.cache_read)
                        .saturating_add(cache_creation)
                        .saturating_add(self.output),
                }
            }
            Convention::OpenAi => {
                let prompt = self.input_uncached.saturating_add(self.cache_read);
                TokenColumns {
                    prompt_tokens: prompt,
                    completion_tokens: self.output,
                    cache_read_tokens: self.cache_read,
                    cache_creation_tokens: 0,
                    cache_write_1h_tokens: 0,
                    reasoning_tokens: self.reasoning,
                    total_tokens: prompt.saturating_add(self.output),
                }
            }
        }
    }

    /// Rebuilds a record from a row's token columns, the inverse of [`UsageRecord::columns`]
    /// (used by boot recovery, shutdown finalize and backfill to re-cost a row).
    pub fn from_columns(convention: Convention, c: &TokenColumns) -> Self {
        match convention {
            Convention::Anthropic => {
                let one_hour = c.cache_write_1h_tokens.min(c.cache_creation_tokens);
                UsageRecord {
                    convention,
                    input_uncached: c.prompt_tokens,
                    cache_read: c.cache_read_tokens,
                    cache_write_5m: c.cache_creation_tokens - one_hour,
                    cache_write_1h: one_hour,
                    output: c.completion_tokens,
                    reasoning: c.reasoning_tokens,
                }
            }
            Convention::OpenAi => UsageRecord {
                convention,
                input_uncached: c.prompt_tokens.saturating_sub(c.cache_read_tokens),
                cache_read: c.cache_read_tokens.min(c.prompt_tokens),
                cache_write_5m: 0,
                cache_write_1h: 0,
                output: c.completion_tokens,
                reasoning: c.reasoning_tokens,
            },
        }
    }
}

/// The token columns of a `request_logs` row, each API's own notion of "prompt".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TokenColumns {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
    /// `cache_read_tokens`.
    pub cache_read_tokens: u64,
    /// `cache_creation_tokens` (5-minute plus 1-hour writes).
    pub cache_creation_tokens: u64,
    /// `cache_write_1h_tokens`.
    pub cache_write_1h_tokens: u64,
    /// `reasoning_tokens`.
    pub reasoning_tokens: u64,
    /// `total_tokens`: every token processed.
    pub total_tokens: u64,
}

/// The API a usage report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Chat Completions.
    Chat,
    /// OpenAI Responses.
    Responses,
    /// NDJSON / Ollama.
    Ollama,
    /// Gemini `generateContent` / `streamGenerateContent` (`gemini.md` §4).
    Gemini,
}

/// What a plain JSON body yields (`accounting.md` §2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    /// The usage record, when the body carried usage.
    pub record: Option<UsageRecord>,
    /// The actual model: the body's non-empty top-level `model`.
    pub actual_model: Option<String>,
    /// The detected API, if any.
    pub api: Option<Api>,
}

/// Extracts usage and the actual model from a whole JSON response body. Anything that is not a
/// JSON object yields nothing; invalid UTF-8 is replaced first.
pub fn extract_plain(body: &[u8]) -> Extracted {
    if body.trim_ascii_start().starts_with(b"[") {
        return extract_json_array(body);
    }
    let text = String::from_utf8_lossy(body);
    let Some(p) = lenient::object_str::<Probe<'_>>(&text) else {
        return Extracted::default();
    };
    let api = detect::plain_api(&p);
    let gemini_model = match api {
        Some(Api::Gemini) => gemini::chunk(&p).and_then(|c| c.model_version),
        _ => None,
    };
    let actual_model = non_empty(gemini_model.as_deref())
        .or(non_empty(p.model.get()))
        .map(str::to_owned);
    let record = match api {
        Some(Api::Anthropic) => {
            let mut a = AnthropicUsage::default();
            a.merge(p.usage).then(|| a.record())
        }
        Some(Api::Chat) => openai::chat_counts(p.usage).map(|c| c.record()),
        Some(Api::Responses) => responses::responses_counts(p.usage).map(|c| c.record()),
        Some(Api::Ollama) => ollama::ollama_counts(&p).map(|c| c.record()),
        Some(Api::Gemini) => {
            let mut g = GeminiUsage::default();
            gemini::chunk(&p)
                .is_some_and(|c| g.merge(c.usage))
                .then(|| g.record())
        }
        None => None,
    };
    Extracted {
        record,
        actual_model,
        api,
    }
}

/// A whole body that is a JSON array (a Gemini stream read as one plain body): its elements
/// are accounted one by one, as the streamed relay would.
fn extract_json_array(body: &[u8]) -> Extracted {
    let mut state = UsageState::new();
    let mut splitter = crate::json_array::JsonArraySplitter::new(body.len().max(1));
    splitter.push(body, |e| {
        if let Some(c) = e.content {
            state.observe_json_element(c);
        }
    });
    splitter.finish(|e| {
        if let Some(c) = e.content {
            state.observe_json_element(c);
        }
    });
    Extracted {
        record: state.record(),
        actual_model: state.actual_model().map(str::to_owned),
        api: state.api(),
    }
}

/// Usage accumulated over the events of one streamed response.
#[derive(Debug, Clone)]
pub struct UsageState {
    api: Option<Api>,
    anthropic: AnthropicUsage,
    openai: OpenAiCounts,
    gemini: GeminiUsage,
    model: Option<String>,
    prefilter: Prefilter,
}

impl Default for UsageState {
    fn default() -> Self {
        UsageState::new()
    }
}

impl UsageState {
    /// An empty state: no usage, no model.
    pub fn new() -> Self {
        UsageState {
            api: None,
            anthropic: AnthropicUsage::default(),
            openai: OpenAiCounts::default(),
            gemini: GeminiUsage::default(),
            model: None,
            prefilter: Prefilter::new(),
        }
    }

    /// The current record, once any usage was seen.
    pub fn record(&self) -> Option<UsageRecord> {
        Some(match self.api? {
            Api::Anthropic => self.anthropic.record(),
            Api::Chat | Api::Responses | Api::Ollama => self.openai.record(),
            Api::Gemini => self.gemini.record(),
        })
    }

    /// The last non-empty model string seen.
    pub fn actual_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The API of the last event that carried usage.
    pub fn api(&self) -> Option<Api> {
        self.api
    }

    /// Whether any usage was seen.
    pub fn has_usage(&self) -> bool {
        self.api.is_some()
    }

    /// Accounts one SSE event: `name` is its `event:` value, `data` its joined data bytes.
    /// Data that is not a JSON object (including `[DONE]`) carries nothing.
    pub fn observe_sse_event(&mut self, name: Option<&[u8]>, data: &[u8]) {
        if !self.prefilter.sse_event(data) {
            return;
        }
        let text = String::from_utf8_lossy(data);
        let Some(p) = lenient::object_str::<Probe<'_>>(&text) else {
            return;
        };
        let name = name.map(String::from_utf8_lossy);
        let ty = p.ty.get().or(name.as_deref());
        match detect::sse_api(&p, ty) {
            Some(Api::Anthropic) => self.anthropic_event(&p, ty),
            Some(Api::Responses) => self.responses_event(&p, ty),
            Some(Api::Chat) => {
                self.set_model(p.model.get());
                if let Some(c) = openai::chat_counts(p.usage) {
                    self.replace_openai(Api::Chat, c);
                }
            }
            Some(Api::Gemini) => self.gemini_chunk(&p),
            Some(Api::Ollama) | None => {}
        }
    }

    /// Accounts one element of a streamed JSON array (`gemini.md` §2). Elements that carry no
    /// Gemini usage or model carry nothing.
    pub fn observe_json_element(&mut self, element: &[u8]) {
        if !self.prefilter.sse_event(element) {
            return;
        }
        let text = String::from_utf8_lossy(element);
        if let Some(p) = lenient::object_str::<Probe<'_>>(&text) {
            self.gemini_chunk(&p);
        }
    }

    /// A Gemini chunk: cumulative usage merged field by field, the actual model from the
    /// latest `modelVersion`.
    fn gemini_chunk(&mut self, p: &Probe<'_>) {
        let Some(c) = gemini::chunk(p) else { return };
        self.set_model(c.model_version.as_deref());
        if self.gemini.merge(c.usage) {
            self.api = Some(Api::Gemini);
        }
    }

    /// Accounts one NDJSON line (trailing CR already stripped); returns whether it is the
    /// terminal object (`"done": true`).
    pub fn observe_ndjson_line(&mut self, line: &[u8]) -> bool {
        if !self.prefilter.ndjson_line(line) {
            return false;
        }
        let text = String::from_utf8_lossy(line);
        let Some(p) = lenient::object_str::<Probe<'_>>(&text) else {
            return false;
        };
        self.set_model(p.model.get());
        if let Some(c) = ollama::ollama_counts(&p) {
            self.replace_openai(Api::Ollama, c);
        }
        p.done.0 == Some(true)
    }

    /// Whether an SSE data line (of an event without an `event:` line) is terminal by its
    /// JSON `type`. `[DONE]` is checked by the caller.
    pub fn data_line_is_terminal(&self, value: &[u8]) -> bool {
        self.prefilter.terminal_data(value)
            && detect::data_type_is_terminal(&String::from_utf8_lossy(value))
    }

    /// Whether an SSE data line is the Chat usage-only chunk (`choices` empty, `usage` not
    /// null), for usage-chunk removal.
    pub fn data_line_is_usage_chunk(&self, value: &[u8]) -> bool {
        self.prefilter.usage_chunk(value) && detect::is_usage_chunk(&String::from_utf8_lossy(value))
    }

    fn anthropic_event(&mut self, p: &Probe<'_>, ty: Option<&str>) {
        if ty == Some("message_start") {
            let Some(m) = object::<MessageJson<'_>>(p.message) else {
                return;
            };
            self.set_model(m.model.get());
            if self.anthropic.merge(m.usage) {
                self.api = Some(Api::Anthropic);
            }
        } else if self.anthropic.merge(p.usage) {
            self.api = Some(Api::Anthropic);
        }
    }

    fn responses_event(&mut self, p: &Probe<'_>, ty: Option<&str>) {
        let Some(ty) = ty else { return };
        if !responses::MODEL_EVENTS.contains(&ty) {
            return;
        }
        let Some(r) = object::<ResponseJson<'_>>(p.response) else {
            return;
        };
        self.set_model(r.model.get());
        if responses::TERMINAL_EVENTS.contains(&ty)
            && let Some(c) = responses::responses_counts(r.usage)
        {
            self.replace_openai(Api::Responses, c);
        }
    }

    fn replace_openai(&mut self, api: Api, counts: OpenAiCounts) {
        self.openai = counts;
        self.api = Some(api);
    }

    fn set_model(&mut self, model: Option<&str>) {
        if let Some(m) = non_empty(model)
            && self.model.as_deref() != Some(m)
        {
            self.model = Some(m.to_owned());
        }
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_columns_count_cache_in_total() {
        let r = UsageRecord {
            convention: Convention::Anthropic,
            input_uncached: 2000,
            cache_read: 50_000,
            cache_write_5m: 10_000,
            cache_write_1h: 0,
            output: 812,
            reasoning: 0,
        };
        let c = r.columns();
        assert_eq!(c.total_tokens, 62_812);
        assert_eq!(c.cache_creation_tokens, 10_000);
        assert_eq!(UsageRecord::from_columns(Convention::Anthropic, &c), r);
    }

    #[test]
    fn openai_columns_keep_prompt_including_cache() {
        let r = UsageRecord {
            convention: Convention::OpenAi,
            input_uncached: 4000,
            cache_read: 8000,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: 1500,
            reasoning: 1024,
        };
        let c = r.columns();
        assert_eq!(
            (c.prompt_tokens, c.total_tokens, c.reasoning_tokens),
            (12_000, 13_500, 1024)
        );
        assert_eq!(UsageRecord::from_columns(Convention::OpenAi, &c), r);
    }
}

#[cfg(test)]
mod extract_tests;
#[cfg(test)]
mod gemini_tests;
