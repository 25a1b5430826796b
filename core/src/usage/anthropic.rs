//! Anthropic Messages usage (`accounting.md` §2.1).
//!
//! Merge rule: every usage object updates, field by field, the fields it carries (valid counts
//! only); values are never summed. Cache-write split: if the latest object that carried
//! cache-creation information (a valid `cache_creation_input_tokens` or a `cache_creation`
//! object) had a `cache_creation` object, the split is that object's
//! `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` (each 0 if absent from it);
//! otherwise all of `cache_creation_input_tokens` is 5-minute writes.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient::{Count, Text, object};
use super::{Convention, UsageRecord};

/// Merged Anthropic usage state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AnthropicUsage {
    input: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    output: Option<u64>,
    /// `Some((5m, 1h))` when the latest cache-creation information had the object.
    split: Option<(u64, u64)>,
}

/// The fields of a `message` object (JSON body or `message_start`) the accounting reads.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct MessageJson<'a> {
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UsageJson<'a> {
    input_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
    #[serde(borrow)]
    cache_creation: Option<&'a RawValue>,
    output_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CacheCreationJson {
    ephemeral_5m_input_tokens: Count,
    ephemeral_1h_input_tokens: Count,
}

impl AnthropicUsage {
    /// Merges one `usage` value; returns `false` (and changes nothing) when it is not an
    /// object.
    pub(crate) fn merge(&mut self, usage: Option<&RawValue>) -> bool {
        let Some(u) = object::<UsageJson<'_>>(usage) else {
            return false;
        };
        set(&mut self.input, u.input_tokens);
        set(&mut self.cache_read, u.cache_read_input_tokens);
        set(&mut self.output, u.output_tokens);
        let split = object::<CacheCreationJson>(u.cache_creation).map(|c| {
            (
                c.ephemeral_5m_input_tokens.value.unwrap_or(0),
                c.ephemeral_1h_input_tokens.value.unwrap_or(0),
            )
        });
        if split.is_some() {
            self.split = split;
        } else if u.cache_creation_input_tokens.value.is_some() {
            self.split = None;
        }
        set(&mut self.cache_creation, u.cache_creation_input_tokens);
        true
    }

    /// The normalized record (absent fields are 0).
    pub(crate) fn record(&self) -> UsageRecord {
        let (cache_write_5m, cache_write_1h) =
            self.split.unwrap_or((self.cache_creation.unwrap_or(0), 0));
        UsageRecord {
            convention: Convention::Anthropic,
            input_uncached: self.input.unwrap_or(0),
            cache_read: self.cache_read.unwrap_or(0),
            cache_write_5m,
            cache_write_1h,
            output: self.output.unwrap_or(0),
            reasoning: 0,
        }
    }
}

fn set(field: &mut Option<u64>, count: Count) {
    if let Some(v) = count.value {
        *field = Some(v);
    }
}
