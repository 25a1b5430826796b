//! Gemini usage (`gemini.md` §4): `usageMetadata` of a `GenerateContentResponse`, or of the
//! same object under a top-level `response` key (`/v1internal`, Code Assist mode).
//!
//! Every chunk of a stream repeats the running totals, so each field keeps the latest value
//! it was given (never a sum), like the Anthropic merge of `accounting.md` §2.1.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::detect::Probe;
use super::lenient::{Count, Text, object};
use super::{Convention, UsageRecord};

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct UsageMetadataJson {
    prompt_token_count: Count,
    cached_content_token_count: Count,
    candidates_token_count: Count,
    thoughts_token_count: Count,
    tool_use_prompt_token_count: Count,
}

/// The wrapped form: `{"response": {"usageMetadata": …, "modelVersion": …}}`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ResponseJson<'a> {
    #[serde(borrow)]
    pub usage_metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    pub model_version: Text<'a>,
}

/// The Gemini part of one JSON value: its `usageMetadata` and `modelVersion`, read from the
/// top level or, when the top level has neither, from the `response` wrapper.
pub(crate) struct Chunk<'a> {
    pub usage: Option<&'a RawValue>,
    pub model_version: Option<String>,
}

/// The Gemini part of a parsed value, when it has one.
pub(crate) fn chunk<'a>(p: &Probe<'a>) -> Option<Chunk<'a>> {
    if p.usage_metadata.is_some() || p.model_version.get().is_some() {
        return Some(Chunk {
            usage: p.usage_metadata,
            model_version: p.model_version.get().map(str::to_owned),
        });
    }
    let r = object::<ResponseJson<'a>>(p.response)?;
    (r.usage_metadata.is_some() || r.model_version.get().is_some()).then(|| Chunk {
        usage: r.usage_metadata,
        model_version: r.model_version.get().map(str::to_owned),
    })
}

/// The merged Gemini counts; absent fields count as 0 in the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GeminiUsage {
    prompt: Option<u64>,
    cached: Option<u64>,
    candidates: Option<u64>,
    thoughts: Option<u64>,
    tool_use_prompt: Option<u64>,
}

impl GeminiUsage {
    /// Merges one `usageMetadata` value field by field; returns whether it was an object
    /// (usage found, even with every field absent).
    pub(crate) fn merge(&mut self, usage: Option<&RawValue>) -> bool {
        let Some(u) = object::<UsageMetadataJson>(usage) else {
            return false;
        };
        let keep = |slot: &mut Option<u64>, c: Count| {
            if let Some(v) = c.value {
                *slot = Some(v);
            }
        };
        keep(&mut self.prompt, u.prompt_token_count);
        keep(&mut self.cached, u.cached_content_token_count);
        keep(&mut self.candidates, u.candidates_token_count);
        keep(&mut self.thoughts, u.thoughts_token_count);
        keep(&mut self.tool_use_prompt, u.tool_use_prompt_token_count);
        true
    }

    /// Normalizes to a record in the OpenAI convention (`gemini.md` §4): the prompt (with the
    /// tool-use prompt) includes the cached input; the output includes the thoughts.
    pub(crate) fn record(&self) -> UsageRecord {
        let prompt = self
            .prompt
            .unwrap_or(0)
            .saturating_add(self.tool_use_prompt.unwrap_or(0));
        let cached = self.cached.unwrap_or(0);
        let thoughts = self.thoughts.unwrap_or(0);
        UsageRecord {
            convention: Convention::OpenAi,
            input_uncached: prompt.saturating_sub(cached),
            cache_read: cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: self.candidates.unwrap_or(0).saturating_add(thoughts),
            reasoning: thoughts,
        }
    }
}
