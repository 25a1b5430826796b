//! Loading a models.dev `api.json` document (`accounting.md` §4.1) and reading one price
//! object, shared with the overrides and the cache file.
//!
//! Where the spec is silent: a `tiers` entry without numeric non-negative `input`/`output` or
//! a whole-number `tier.size` is ignored like a non-`context` one, and `context_over_200k` is
//! used whenever no usable tier came from `tiers` (absent, empty, or all ignored).

use serde_json::value::RawValue;

use super::decimal::{parse_usd_per_million, parse_whole};
use super::json::{self, is_null, member, number, object};
use super::table::Builder;
use super::{Price, PriceTable, PricingError, Rates, Tier, normalize};

/// Size of the tier built from `context_over_200k`.
const CONTEXT_OVER_200K: u64 = 200_000;

impl PriceTable {
    /// Builds the table from a models.dev document: for each provider key `P` and model id
    /// `M` with numeric `cost.input` and `cost.output`, the price goes under `M`, `P/M`, the
    /// model's `id` and `name`, each verbatim and normalized (§4.2). Malformed providers and
    /// models are skipped; only a document that is not a JSON object is an error.
    pub fn from_models_dev(bytes: &[u8]) -> Result<PriceTable, PricingError> {
        let text = std::str::from_utf8(bytes)?;
        let providers = object(json::parse_document(text)?).ok_or(PricingError::Shape {
            what: "document",
            expected: "an object",
        })?;
        let mut builder = Builder::default();
        for (provider, provider_raw) in &providers {
            let Some(models) = object(provider_raw)
                .and_then(|p| member(&p, "models"))
                .and_then(object)
            else {
                continue;
            };
            for (model_id, model_raw) in &models {
                add_model(&mut builder, provider, model_id, model_raw);
            }
        }
        Ok(builder.finish())
    }
}

fn add_model(builder: &mut Builder, provider: &str, model_id: &str, raw: &RawValue) {
    let Some(model) = object(raw) else {
        return;
    };
    let Some(cost) = member(&model, "cost").and_then(object) else {
        return;
    };
    let Ok(price) = read_price(&cost, Mode::Lenient) else {
        return;
    };
    let index = builder.add_price(price);
    let string = |name| match member(&model, name).map(json::classify) {
        Some(Ok(json::Node::String(s))) => s,
        _ => String::new(),
    };
    let keys = [
        model_id.to_string(),
        format!("{provider}/{model_id}"),
        string("id"),
        string("name"),
    ];
    for key in keys {
        let norm = normalize(&key);
        builder.bind(key, index);
        builder.bind(norm, index);
    }
}

/// How [`read_price`] treats bad optional parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// models.dev and cache file: drop bad optional fields and bad tiers.
    Lenient,
    /// Operator overrides: report every bad part.
    Strict,
}

/// A problem found by [`read_price`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PriceIssue {
    /// `input` or `output` missing, not a number, negative or too large.
    InputOutput,
    /// An optional rate is not a non-negative number in range.
    Field(&'static str),
    /// `tiers` is not an array of valid context tiers (strict mode only).
    Tiers,
}

/// The optional rate fields of a price object.
const OPTIONAL: [&str; 3] = ["cache_read", "cache_write", "reasoning"];

/// Reads `{input, output, cache_read?, cache_write?, reasoning?, tiers?, context_over_200k?}`
/// with the models.dev tier shape. In strict mode `null` optional fields count as absent and
/// every issue is returned; in lenient mode only [`PriceIssue::InputOutput`] is.
pub(super) fn read_price(
    members: &[(String, &RawValue)],
    mode: Mode,
) -> Result<Price, Vec<PriceIssue>> {
    let mut issues = Vec::new();
    let required = |name| member(members, name).and_then(rate);
    let (input, output) = match (required("input"), required("output")) {
        (Some(input), Some(output)) => (input, output),
        _ => {
            issues.push(PriceIssue::InputOutput);
            (0, 0)
        }
    };
    let mut optional = [None; 3];
    for (slot, name) in optional.iter_mut().zip(OPTIONAL) {
        match member(members, name) {
            None => {}
            Some(raw) if mode == Mode::Strict && is_null(raw) => {}
            Some(raw) => match rate(raw) {
                Some(v) => *slot = Some(v),
                None if mode == Mode::Strict => issues.push(PriceIssue::Field(name)),
                None => {}
            },
        }
    }
    let mut tiers = match member(members, "tiers") {
        None => Vec::new(),
        Some(raw) if is_null(raw) => Vec::new(),
        Some(raw) => match (read_tiers(raw, mode), mode) {
            (Some(tiers), _) => tiers,
            (None, Mode::Strict) => {
                issues.push(PriceIssue::Tiers);
                Vec::new()
            }
            (None, Mode::Lenient) => Vec::new(),
        },
    };
    if tiers.is_empty()
        && let Some(rates) = member(members, "context_over_200k")
            .and_then(object)
            .and_then(|m| read_rates(&m))
    {
        tiers.push(Tier {
            size: CONTEXT_OVER_200K,
            rates,
        });
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let [cache_read, cache_write, reasoning] = optional;
    Ok(Price {
        base: Rates {
            input,
            output,
            cache_read,
            cache_write,
        },
        reasoning,
        tiers,
    })
}

/// A `$/M` JSON number as pUSD per token.
pub(super) fn rate(raw: &RawValue) -> Option<u64> {
    parse_usd_per_million(number(raw)?).ok()
}

/// Tiers of type `context`. Lenient: other entries are skipped. Strict: any entry that is not
/// a valid context tier fails the whole array.
fn read_tiers(raw: &RawValue, mode: Mode) -> Option<Vec<Tier>> {
    let Ok(json::Node::Array(items)) = json::classify(raw) else {
        return None;
    };
    let mut tiers = Vec::with_capacity(items.len());
    for item in items {
        match read_tier(item) {
            Some(tier) => tiers.push(tier),
            None if mode == Mode::Strict => return None,
            None => {}
        }
    }
    Some(tiers)
}

fn read_tier(raw: &RawValue) -> Option<Tier> {
    let members = object(raw)?;
    let tier = member(&members, "tier").and_then(object)?;
    let kind = member(&tier, "type").map(json::classify);
    if !matches!(kind, Some(Ok(json::Node::String(ref s))) if s == "context") {
        return None;
    }
    let size = parse_whole(member(&tier, "size").and_then(number)?).ok()?;
    Some(Tier {
        size,
        rates: read_rates(&members)?,
    })
}

/// `{input, output, cache_read?, cache_write?}`; bad optional rates are dropped.
pub(super) fn read_rates(members: &[(String, &RawValue)]) -> Option<Rates> {
    Some(Rates {
        input: member(members, "input").and_then(rate)?,
        output: member(members, "output").and_then(rate)?,
        cache_read: member(members, "cache_read").and_then(rate),
        cache_write: member(members, "cache_write").and_then(rate),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "anthropic": {"id": "anthropic", "name": "Anthropic", "models": {
        "claude-sonnet-4-5": {"id": "claude-sonnet-4-5", "name": "Claude Sonnet 4.5",
          "cost": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
                   "context_over_200k": {"input": 6, "output": 22.5, "cache_read": 0.6, "cache_write": 7.5}}},
        "no-cost": {"id": "no-cost"},
        "string-cost": {"cost": {"input": "3", "output": 15}},
        "neg": {"cost": {"input": -1, "output": 15}},
        "bad-optional": {"cost": {"input": 1, "output": 2, "cache_read": -0.5, "reasoning": "x", "cache_write": 2.5}}
      }},
      "openrouter": {"models": {
        "anthropic/claude-sonnet-4.5": {"id": "anthropic/claude-sonnet-4.5", "name": "Sonnet_4.5 Router",
          "cost": {"input": 3.0, "output": 15, "reasoning": 1e1,
                   "tiers": [{"tier": {"type": "context", "size": 128000}, "input": 4, "output": 20},
                             {"tier": {"type": "images", "size": 1}, "input": 9, "output": 9},
                             {"tier": {"type": "context", "size": 1.5}, "input": 9, "output": 9}],
                   "context_over_200k": {"input": 100, "output": 100}}}
      }},
      "broken": {"models": []},
      "worse": 7
    }"#;

    fn load() -> PriceTable {
        PriceTable::from_models_dev(DOC.as_bytes()).unwrap()
    }

    #[test]
    fn keys_are_model_provider_slash_model_id_and_name_verbatim_and_normalized() {
        let t = load();
        let keys: Vec<&str> = t.iter().map(|(k, _)| k).take(4).collect();
        assert_eq!(
            keys,
            [
                "claude-sonnet-4-5",
                "anthropic/claude-sonnet-4-5",
                "Claude Sonnet 4.5",
                "claude-sonnet-4.5"
            ]
        );
        for key in [
            "openrouter/anthropic/claude-sonnet-4.5",
            "anthropic/claude-sonnet-4.5",
            "Sonnet_4.5 Router",
            "sonnet-4.5-router",
        ] {
            assert_eq!(t.get(key).map(|p| p.base.input), Some(3_000_000), "{key}");
        }
    }

    #[test]
    fn models_without_numeric_input_and_output_are_skipped() {
        let t = load();
        for key in ["no-cost", "string-cost", "neg", "anthropic/neg"] {
            assert!(t.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn optional_fields_are_kept_only_when_numeric_and_non_negative() {
        let t = load();
        let p = t.get("bad-optional").unwrap();
        assert_eq!(p.base.cache_read, None);
        assert_eq!(p.reasoning, None);
        assert_eq!(p.base.cache_write, Some(2_500_000));
        let sonnet = t.get("claude-sonnet-4-5").unwrap();
        assert_eq!(
            sonnet.base,
            Rates {
                input: 3_000_000,
                output: 15_000_000,
                cache_read: Some(300_000),
                cache_write: Some(3_750_000)
            }
        );
    }

    #[test]
    fn context_over_200k_becomes_a_tier_only_without_tiers() {
        let t = load();
        let sonnet = t.get("claude-sonnet-4-5").unwrap();
        assert_eq!(
            sonnet.tiers,
            [Tier {
                size: 200_000,
                rates: Rates {
                    input: 6_000_000,
                    output: 22_500_000,
                    cache_read: Some(600_000),
                    cache_write: Some(7_500_000)
                }
            }]
        );
        let routed = t.get("anthropic/claude-sonnet-4.5").unwrap();
        assert_eq!(routed.reasoning, Some(10_000_000));
        assert_eq!(
            routed.tiers,
            [Tier {
                size: 128_000,
                rates: Rates {
                    input: 4_000_000,
                    output: 20_000_000,
                    cache_read: None,
                    cache_write: None
                }
            }]
        );
    }

    #[test]
    fn non_object_documents_are_errors() {
        assert!(matches!(
            PriceTable::from_models_dev(b"[]"),
            Err(PricingError::Shape { .. })
        ));
        assert!(matches!(
            PriceTable::from_models_dev(b"{"),
            Err(PricingError::Json(_))
        ));
        assert!(matches!(
            PriceTable::from_models_dev(b"\xff"),
            Err(PricingError::Utf8(_))
        ));
        assert!(PriceTable::from_models_dev(b" {} ").unwrap().is_empty());
    }
}
