//! OpenAI Responses usage (`accounting.md` §2.3): the `usage` of the response object, in the
//! JSON body or in the terminal stream event.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient::{Count, Text, object};
use super::openai::{CachedJson, OpenAiCounts, ReasoningJson};

/// Event types whose `response.model` names the actual model.
pub(crate) const MODEL_EVENTS: [&str; 5] = [
    "response.created",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Terminal event types, whose `response.usage` is the usage.
pub(crate) const TERMINAL_EVENTS: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// The fields of a response object the accounting reads.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ResponseJson<'a> {
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponsesUsageJson<'a> {
    input_tokens: Count,
    output_tokens: Count,
    #[serde(borrow)]
    input_tokens_details: Option<&'a RawValue>,
    #[serde(borrow)]
    output_tokens_details: Option<&'a RawValue>,
}

/// Responses counts of a `usage` value; `None` when it is not an object.
pub(crate) fn responses_counts(usage: Option<&RawValue>) -> Option<OpenAiCounts> {
    let u: ResponsesUsageJson<'_> = object(usage)?;
    Some(OpenAiCounts {
        prompt: u.input_tokens.value,
        cached: object::<CachedJson>(u.input_tokens_details).and_then(|d| d.cached_tokens.value),
        completion: u.output_tokens.value,
        reasoning: object::<ReasoningJson>(u.output_tokens_details)
            .and_then(|d| d.reasoning_tokens.value),
    })
}
