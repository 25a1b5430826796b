//! Prices from models.dev, overrides, aliases and lookup (`accounting.md` §4).
//!
//! * [`decimal`]: `$/M` texts ↔ integer pUSD per token, never through `f64`.
//! * [`PriceTable`]: built from a models.dev `api.json` ([`PriceTable::from_models_dev`]) or
//!   from the cache file ([`cache_file`]); keys in document order, a normalized index, and the
//!   fuzzy candidates precomputed.
//! * [`overrides`]: [`Overrides`] and [`Aliases`], their built-ins and the validation of
//!   `PRICING_OVERRIDES_JSON` / `PRICING_ALIASES_JSON` (`control.md` §5.4).
//! * [`Pricer`]: table + overrides + aliases, cheap to clone; [`Pricer::lookup`] runs the
//!   steps of §4.4 and reports the [`MatchSource`].
//! * [`refresh`]: the pure decisions of `refresh(force)` (§4.5).
//! * [`snapshot`]: the prices compiled into the binary and [`PriceSource`], which prices are
//!   in force.
//!
//! Choices where the spec is silent (each also noted where it is implemented):
//! * A repeated JSON key replaces the earlier value in its first position (`JSON.parse`).
//! * `tiers` entries without numeric non-negative `input`/`output` or without a whole-number
//!   `tier.size` are ignored like non-`context` ones; `context_over_200k` is used when no
//!   usable tier came from `tiers`.
//! * The normalized index points at the *slot* of the first key with that normalization; a
//!   later write to that key's value is seen through the index.
//! * Empty keys (missing `id`/`name`) and empty provider ids are skipped.

pub mod cache_file;
pub mod decimal;
mod json;
mod lookup;
mod models_dev;
pub mod overrides;
pub mod refresh;
pub mod snapshot;
mod table;

pub use lookup::{MatchSource, PriceMatch, Pricer};
pub use overrides::{Aliases, Overrides};
pub use snapshot::PriceSource;
pub use table::PriceTable;

use thiserror::Error;

/// One set of rates in pUSD per token. Missing cache prices take their defaults at cost time
/// (`accounting.md` §5.1): cache read = input, cache write = input × 5/4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rates {
    /// Uncached input.
    pub input: u64,
    /// Output (reasoning included).
    pub output: u64,
    /// Cache read, when the source gives one.
    pub cache_read: Option<u64>,
    /// 5-minute cache write, when the source gives one.
    pub cache_write: Option<u64>,
}

/// A long-context tier: its rates apply to the whole request when the prompt exceeds `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tier {
    /// Prompt size in tokens that must be strictly exceeded.
    pub size: u64,
    /// The tier's rates.
    pub rates: Rates,
}

/// The price of one model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Price {
    /// Base rates.
    pub base: Rates,
    /// Reasoning rate: loaded and reported, never used (output already includes reasoning).
    pub reasoning: Option<u64>,
    /// Long-context tiers, in source order.
    pub tiers: Vec<Tier>,
}

impl Price {
    /// A price with only input and output rates (pUSD per token).
    pub fn simple(input: u64, output: u64) -> Self {
        Price {
            base: Rates {
                input,
                output,
                cache_read: None,
                cache_write: None,
            },
            reasoning: None,
            tiers: Vec::new(),
        }
    }

    /// The rates that apply to a request whose prompt totals `prompt_tokens`: the tier with
    /// the largest `size` strictly below it (the first one on equal sizes), else the base.
    pub fn rates_for(&self, prompt_tokens: u128) -> &Rates {
        let mut best: Option<&Tier> = None;
        for tier in &self.tiers {
            if u128::from(tier.size) < prompt_tokens && best.is_none_or(|b| tier.size > b.size) {
                best = Some(tier);
            }
        }
        best.map_or(&self.base, |t| &t.rates)
    }

    /// Whether the fuzzy step may pick this price (input or output non-zero).
    pub fn is_priced(&self) -> bool {
        self.base.input != 0 || self.base.output != 0
    }
}

/// Why a pricing document could not be loaded at all. Individual bad models are skipped, not
/// errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PricingError {
    /// The bytes are not UTF-8.
    #[error("pricing document is not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// The text is not JSON (or nests too deeply).
    #[error("pricing document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A part of the document has the wrong JSON type.
    #[error("pricing document: {what} must be {expected}")]
    Shape {
        /// Which part, e.g. `document` or `data`.
        what: &'static str,
        /// The expected JSON type.
        expected: &'static str,
    },
}

/// Normalized form of a model or key (`accounting.md` §4.2): trimmed, ASCII lower-case,
/// every run of `_` or whitespace replaced by one `-`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.trim().chars() {
        if c == '_' || c.is_whitespace() {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_trims_lowercases_and_collapses_runs() {
        assert_eq!(normalize("  Claude_Sonnet 4.5 "), "claude-sonnet-4.5");
        assert_eq!(normalize("a_ _\tb"), "a-b");
        assert_eq!(normalize("GPT-5"), "gpt-5");
        assert_eq!(normalize("Ünïcode_X"), "Ünïcode-x");
    }

    #[test]
    fn tiers_pick_the_largest_size_strictly_exceeded() {
        let rates = |input| Rates {
            input,
            ..Rates::default()
        };
        let price = Price {
            base: rates(1),
            reasoning: None,
            tiers: vec![
                Tier {
                    size: 200_000,
                    rates: rates(2),
                },
                Tier {
                    size: 100_000,
                    rates: rates(3),
                },
                Tier {
                    size: 200_000,
                    rates: rates(4),
                },
            ],
        };
        assert_eq!(price.rates_for(100_000).input, 1);
        assert_eq!(price.rates_for(100_001).input, 3);
        assert_eq!(price.rates_for(200_000).input, 3);
        assert_eq!(price.rates_for(200_001).input, 2);
    }
}
