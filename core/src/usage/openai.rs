//! OpenAI-convention counts (Chat, Responses, Ollama) and Chat Completions usage
//! (`accounting.md` §2.2): a non-null usage object replaces the whole state.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient::{Count, object};
use super::{Convention, UsageRecord};

/// Counts in the OpenAI convention: the prompt includes cached tokens, the completion
/// includes reasoning. Absent fields count as 0 in the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OpenAiCounts {
    pub prompt: Option<u64>,
    pub cached: Option<u64>,
    pub completion: Option<u64>,
    pub reasoning: Option<u64>,
}

impl OpenAiCounts {
    /// Normalizes to a record (`accounting.md` §3): `input_uncached = prompt − cached`
    /// saturating at 0, `cache_read = cached`.
    pub(crate) fn record(&self) -> UsageRecord {
        let prompt = self.prompt.unwrap_or(0);
        let cached = self.cached.unwrap_or(0);
        UsageRecord {
            convention: Convention::OpenAi,
            input_uncached: prompt.saturating_sub(cached),
            cache_read: cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: self.completion.unwrap_or(0),
            reasoning: self.reasoning.unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatUsageJson<'a> {
    prompt_tokens: Count,
    completion_tokens: Count,
    #[serde(borrow)]
    prompt_tokens_details: Option<&'a RawValue>,
    #[serde(borrow)]
    completion_tokens_details: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct CachedJson {
    pub cached_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ReasoningJson {
    pub reasoning_tokens: Count,
}

/// Chat counts of a `usage` value; `None` when it is not an object.
pub(crate) fn chat_counts(usage: Option<&RawValue>) -> Option<OpenAiCounts> {
    let u: ChatUsageJson<'_> = object(usage)?;
    Some(OpenAiCounts {
        prompt: u.prompt_tokens.value,
        cached: object::<CachedJson>(u.prompt_tokens_details).and_then(|d| d.cached_tokens.value),
        completion: u.completion_tokens.value,
        reasoning: object::<ReasoningJson>(u.completion_tokens_details)
            .and_then(|d| d.reasoning_tokens.value),
    })
}
