//! Operator price overrides and model aliases (`accounting.md` §4.3) and the validation of
//! `PRICING_OVERRIDES_JSON` / `PRICING_ALIASES_JSON` (`control.md` §5.4).
//!
//! Both parsers return every issue as `(path, message)` pairs so configuration validation can
//! collect them. Where the spec is silent: an optional rate written as `null` counts as
//! absent; an alias target must be non-empty after trimming; a repeated JSON key keeps its
//! first position with the last value.

use super::decimal::parse_usd_per_million;
use super::json::{self, Node};
use super::models_dev::{Mode, PriceIssue, read_price};
use super::{Price, Rates, normalize};

const OVERRIDES_VAR: &str = "PRICING_OVERRIDES_JSON";
const ALIASES_VAR: &str = "PRICING_ALIASES_JSON";

/// One validation issue: `(path, message)`, e.g.
/// `("PRICING_OVERRIDES_JSON.gpt-5", "must be a pricing object")`.
pub type Issue = (String, String);

/// Operator prices by model key, in document order. They win over the table at lookup time
/// and are never written to the cache file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    entries: Vec<Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    key: String,
    normalized: String,
    price: Price,
}

impl Overrides {
    /// No overrides at all.
    pub fn none() -> Self {
        Overrides::default()
    }

    /// The built-in overrides of §4.3.
    pub fn builtin() -> Self {
        const BUILTIN: [(&str, &str, &str, &str); 6] = [
            ("gpt-5.4", "2.5", "15", "0.25"),
            ("gpt-5.4-mini", "0.75", "4.5", "0.075"),
            ("gpt-5.4-mini-2026-03-17", "0.75", "4.5", "0.075"),
            ("kimi-for-coding", "0.4", "2.5", "0.4"),
            ("kimi-k2", "0.4", "2.5", "0.4"),
            ("kimi-k2.6", "0.95", "4", "0.16"),
        ];
        let usd = |text| parse_usd_per_million(text).unwrap_or(0);
        Overrides::from_prices(BUILTIN.iter().map(|(model, input, output, cache_read)| {
            let price = Price {
                base: Rates {
                    input: usd(input),
                    output: usd(output),
                    cache_read: Some(usd(cache_read)),
                    cache_write: None,
                },
                reasoning: None,
                tiers: Vec::new(),
            };
            (model.to_string(), price)
        }))
    }

    /// Overrides from `(model key, price)` pairs in priority order.
    pub fn from_prices<I: IntoIterator<Item = (String, Price)>>(prices: I) -> Self {
        let entries = prices
            .into_iter()
            .map(|(key, price)| Override {
                normalized: normalize(&key),
                key,
                price,
            })
            .collect();
        Overrides { entries }
    }

    /// The first override whose normalized key equals `normalized_key`.
    pub fn get_normalized(&self, normalized_key: &str) -> Option<(&str, &Price)> {
        self.entries
            .iter()
            .find(|o| o.normalized == normalized_key)
            .map(|o| (o.key.as_str(), &o.price))
    }

    /// Every `(key, price)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Price)> + '_ {
        self.entries.iter().map(|o| (o.key.as_str(), &o.price))
    }

    /// Number of overrides.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Model-prefix aliases: a model whose normalized form equals or starts with a normalized
/// prefix is priced as the target (longest prefix wins, the earlier one on equal length).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Aliases {
    /// (normalized prefix, prefix as written, target).
    entries: Vec<(String, String, String)>,
}

impl Aliases {
    /// No aliases at all.
    pub fn none() -> Self {
        Aliases::default()
    }

    /// The built-in aliases of §4.3.
    pub fn builtin() -> Self {
        Aliases::from_pairs(
            [
                ("kimi-for-coding", "kimi-k2"),
                ("gpt-5.4-mini", "gpt-5.4-mini"),
                ("gpt-5.4", "gpt-5.4"),
            ]
            .map(|(p, t)| (p.to_string(), t.to_string())),
        )
    }

    /// Aliases from `(prefix, target)` pairs.
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let entries = pairs
            .into_iter()
            .map(|(prefix, target)| (normalize(&prefix), prefix, target))
            .collect();
        Aliases { entries }
    }

    /// The target for `model`, if an alias applies.
    pub fn target(&self, model: &str) -> Option<&str> {
        let norm = normalize(model);
        let mut best: Option<&(String, String, String)> = None;
        for entry in &self.entries {
            if norm.starts_with(entry.0.as_str()) && best.is_none_or(|b| entry.0.len() > b.0.len())
            {
                best = Some(entry);
            }
        }
        best.map(|(_, _, target)| target.as_str())
    }

    /// Every `(prefix, target)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|(_, p, t)| (p.as_str(), t.as_str()))
    }
}

/// Parses `PRICING_OVERRIDES_JSON`. Blank text gives the built-ins; otherwise the object
/// replaces them. Every issue is returned, with the messages of `control.md` §5.4.
pub fn parse_overrides_json(text: &str) -> Result<Overrides, Vec<Issue>> {
    if text.trim().is_empty() {
        return Ok(Overrides::builtin());
    }
    let members = top_level_object(text, OVERRIDES_VAR)?;
    let mut issues = Vec::new();
    let mut prices = Vec::with_capacity(members.len());
    for (model, raw) in members {
        let path = format!("{OVERRIDES_VAR}.{model}");
        let Some(fields) = json::object(raw) else {
            issues.push((path, "must be a pricing object".to_string()));
            continue;
        };
        match read_price(&fields, Mode::Strict) {
            Ok(price) => prices.push((model, price)),
            Err(found) => issues.extend(found.into_iter().map(|i| override_issue(&path, i))),
        }
    }
    if issues.is_empty() {
        Ok(Overrides::from_prices(prices))
    } else {
        Err(issues)
    }
}

/// Parses `PRICING_ALIASES_JSON`. Blank text gives the built-ins; otherwise the object
/// replaces them.
pub fn parse_aliases_json(text: &str) -> Result<Aliases, Vec<Issue>> {
    if text.trim().is_empty() {
        return Ok(Aliases::builtin());
    }
    let members = top_level_object(text, ALIASES_VAR)?;
    let mut issues = Vec::new();
    let mut pairs = Vec::with_capacity(members.len());
    for (prefix, raw) in members {
        match json::classify(raw) {
            Ok(Node::String(target)) if !target.trim().is_empty() => pairs.push((prefix, target)),
            _ => issues.push((
                format!("{ALIASES_VAR}.{prefix}"),
                "must be a non-empty string".to_string(),
            )),
        }
    }
    if issues.is_empty() {
        Ok(Aliases::from_pairs(pairs))
    } else {
        Err(issues)
    }
}

fn top_level_object<'a>(
    text: &'a str,
    var: &str,
) -> Result<Vec<(String, &'a serde_json::value::RawValue)>, Vec<Issue>> {
    let raw = json::parse_document(text)
        .map_err(|e| vec![(var.to_string(), format!("must be valid JSON: {e}"))])?;
    json::object(raw).ok_or_else(|| vec![(var.to_string(), "must be a JSON object".to_string())])
}

fn override_issue(path: &str, issue: PriceIssue) -> Issue {
    match issue {
        PriceIssue::InputOutput => (
            path.to_string(),
            "must include non-negative numeric input and output".to_string(),
        ),
        PriceIssue::Field(field) => (
            format!("{path}.{field}"),
            "must be a non-negative finite number".to_string(),
        ),
        PriceIssue::Tiers => (
            format!("{path}.tiers"),
            "must be an array of context tiers".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Tier;

    fn issues(r: Result<impl std::fmt::Debug, Vec<Issue>>) -> Vec<(String, String)> {
        r.unwrap_err()
    }

    #[test]
    fn builtin_overrides_are_exactly_the_spec_table() {
        let builtin = Overrides::builtin();
        let view: Vec<(&str, u64, u64, Option<u64>)> = builtin
            .iter()
            .map(|(k, p)| (k, p.base.input, p.base.output, p.base.cache_read))
            .collect();
        assert_eq!(
            view,
            [
                ("gpt-5.4", 2_500_000, 15_000_000, Some(250_000)),
                ("gpt-5.4-mini", 750_000, 4_500_000, Some(75_000)),
                ("gpt-5.4-mini-2026-03-17", 750_000, 4_500_000, Some(75_000)),
                ("kimi-for-coding", 400_000, 2_500_000, Some(400_000)),
                ("kimi-k2", 400_000, 2_500_000, Some(400_000)),
                ("kimi-k2.6", 950_000, 4_000_000, Some(160_000)),
            ]
        );
    }

    #[test]
    fn builtin_aliases_use_the_longest_prefix() {
        let a = Aliases::builtin();
        assert_eq!(a.target("kimi-for-coding"), Some("kimi-k2"));
        assert_eq!(a.target("Kimi_For_Coding-preview"), Some("kimi-k2"));
        assert_eq!(a.target("gpt-5.4-mini-2026-09-01"), Some("gpt-5.4-mini"));
        assert_eq!(a.target("gpt-5.4-pro"), Some("gpt-5.4"));
        assert_eq!(a.target("gpt-5"), None);
        assert_eq!(a.iter().count(), 3);
    }

    #[test]
    fn blank_text_gives_builtins_and_a_set_value_replaces_them() {
        assert_eq!(parse_overrides_json("  \n"), Ok(Overrides::builtin()));
        assert_eq!(parse_aliases_json(""), Ok(Aliases::builtin()));
        assert!(parse_overrides_json("{}").unwrap().is_empty());
        assert_eq!(parse_aliases_json("{}").unwrap().iter().count(), 0);
    }

    #[test]
    fn overrides_parse_every_field_and_tiers() {
        let o = parse_overrides_json(
            r#"{"My_Model": {"input": 1, "output": 2.5, "cache_read": null, "cache_write": 1.25e0,
                "reasoning": 3, "tiers": [{"tier": {"type": "context", "size": 100000}, "input": 2, "output": 5}]}}"#,
        )
        .unwrap();
        let (key, price) = o.get_normalized("my-model").unwrap();
        assert_eq!(key, "My_Model");
        assert_eq!(
            price.base,
            Rates {
                input: 1_000_000,
                output: 2_500_000,
                cache_read: None,
                cache_write: Some(1_250_000)
            }
        );
        assert_eq!(price.reasoning, Some(3_000_000));
        assert_eq!(
            price.tiers,
            [Tier {
                size: 100_000,
                rates: Rates {
                    input: 2_000_000,
                    output: 5_000_000,
                    cache_read: None,
                    cache_write: None
                }
            }]
        );
    }

    #[test]
    fn invalid_json_and_non_objects_use_the_spec_messages() {
        let [(path, message)] = issues(parse_overrides_json("{nope")).try_into().unwrap();
        assert_eq!(path, "PRICING_OVERRIDES_JSON");
        assert!(message.starts_with("must be valid JSON: "), "{message}");
        assert_eq!(
            issues(parse_aliases_json("[1]")),
            [(
                "PRICING_ALIASES_JSON".into(),
                "must be a JSON object".into()
            )]
        );
    }

    #[test]
    fn every_override_issue_is_reported_with_its_path() {
        let found = issues(parse_overrides_json(
            r#"{"a": 5, "b": {"input": -1, "output": 2}, "c": {"output": 2},
                "d": {"input": 1, "output": 2, "cache_read": "x", "reasoning": -2, "tiers": {}},
                "e": {"input": 1, "output": 2, "tiers": [{"tier": {"type": "images", "size": 1}, "input": 1, "output": 1}]},
                "ok": {"input": 1, "output": 1}}"#,
        ));
        let must = |p: &str, m: &str| (p.to_string(), m.to_string());
        assert_eq!(
            found,
            [
                must("PRICING_OVERRIDES_JSON.a", "must be a pricing object"),
                must(
                    "PRICING_OVERRIDES_JSON.b",
                    "must include non-negative numeric input and output"
                ),
                must(
                    "PRICING_OVERRIDES_JSON.c",
                    "must include non-negative numeric input and output"
                ),
                must(
                    "PRICING_OVERRIDES_JSON.d.cache_read",
                    "must be a non-negative finite number"
                ),
                must(
                    "PRICING_OVERRIDES_JSON.d.reasoning",
                    "must be a non-negative finite number"
                ),
                must(
                    "PRICING_OVERRIDES_JSON.d.tiers",
                    "must be an array of context tiers"
                ),
                must(
                    "PRICING_OVERRIDES_JSON.e.tiers",
                    "must be an array of context tiers"
                ),
            ]
        );
    }

    #[test]
    fn alias_targets_must_be_non_empty_strings() {
        let found = issues(parse_aliases_json(
            r#"{"x": "y", "a": "", "b": 3, "c": "  "}"#,
        ));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "PRICING_ALIASES_JSON.a",
                "PRICING_ALIASES_JSON.b",
                "PRICING_ALIASES_JSON.c"
            ]
        );
        assert!(found.iter().all(|(_, m)| m == "must be a non-empty string"));
        let ok = parse_aliases_json(r#"{"claude": "claude-sonnet-4-5"}"#).unwrap();
        assert_eq!(ok.target("claude-opus"), Some("claude-sonnet-4-5"));
    }
}
