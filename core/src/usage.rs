//! The usage record: one per request, normalized at parse time (`accounting.md` §3).
//!
//! Per-API extraction lives in the submodules; this module owns the record every later step
//! (cost, row columns) consumes.

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
