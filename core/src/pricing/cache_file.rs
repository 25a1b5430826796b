//! The pricing cache file (`accounting.md` §4.5) and the `$/M` rendering of a price for
//! `/admin/pricing` (`control.md` §6.5).
//!
//! File shape: `{"fetchedAt": <epoch ms>, "source": "<PRICING_URL>", "data": [[key, price], …]}`
//! with `price = {input, output, cache_read?, cache_write?, reasoning?, tiers?: [{size, input,
//! output, cache_read?, cache_write?}]}` in `$/M`. Prices are written with at most 6
//! fractional digits by [`format_usd_per_million`], the exact inverse of the parser, so every
//! price reloads to the same pUSD integer. The JSON is written by hand so a number's text is
//! exactly that rendering (serde_json would go through `f64`).
//!
//! Reading is lenient where the spec is silent: a missing or non-integer `fetchedAt` loads as
//! 0 (so the file counts as stale but still serves as a fallback), `source` and `tiers` may be
//! absent (files written by the original), a `context_over_200k` object is honoured when
//! there are no tiers, and malformed entries are skipped. Only a document that is not JSON, not
//! an object, or whose `data` is not an array is an error.

use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::decimal::{PUSD_PER_USD_PER_MILLION, format_usd_per_million, parse_whole};
use super::json::{self, Node, member, number, object};
use super::lookup::PriceMatch;
use super::models_dev::{rate, read_rates};
use super::{Price, PriceTable, PricingError, Rates, Tier};
use crate::time::UnixMillis;

/// A loaded cache file.
#[derive(Debug, Clone)]
pub struct CacheFile {
    /// When the prices were fetched (0 when the file does not say).
    pub fetched_at: UnixMillis,
    /// The `PRICING_URL` they came from (absent in files written by the original).
    pub source: Option<String>,
    /// The prices.
    pub table: PriceTable,
}

/// Renders `table` as the cache file's bytes. Overrides are not part of the table and so are
/// never written.
pub fn to_cache_file(table: &PriceTable, fetched_at: UnixMillis, source: &str) -> Vec<u8> {
    let mut out = String::with_capacity(64 + table.len() * 96);
    out.push_str("{\"fetchedAt\":");
    out.push_str(&fetched_at.0.to_string());
    out.push_str(",\"source\":");
    write_string(&mut out, source);
    out.push_str(",\"data\":[");
    for (i, (key, price)) in table.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        write_string(&mut out, key);
        out.push(',');
        write_price(&mut out, price);
        out.push(']');
    }
    out.push_str("]}");
    out.into_bytes()
}

/// Parses a cache file written by this product or by the original.
pub fn from_cache_file(bytes: &[u8]) -> Result<CacheFile, PricingError> {
    let text = std::str::from_utf8(bytes)?;
    let members = object(json::parse_document(text)?).ok_or(PricingError::Shape {
        what: "cache file",
        expected: "an object",
    })?;
    let fetched_at = member(&members, "fetchedAt")
        .and_then(number)
        .and_then(|n| parse_whole(n).ok())
        .unwrap_or(0);
    let source = match member(&members, "source").map(json::classify) {
        Some(Ok(Node::String(s))) => Some(s),
        _ => None,
    };
    let shape_error = PricingError::Shape {
        what: "data",
        expected: "an array",
    };
    let Some(data) = member(&members, "data") else {
        return Err(shape_error);
    };
    let Node::Array(items) = json::classify(data)? else {
        return Err(shape_error);
    };
    let entries = items.into_iter().filter_map(read_entry);
    Ok(CacheFile {
        fetched_at: UnixMillis(fetched_at),
        source,
        table: PriceTable::from_entries(entries),
    })
}

/// The `pricing` object of `/admin/pricing`: `{input, output, cache_read?, cache_write?,
/// reasoning?, tiers?}` in `$/M`, tiers as `{size, input, output, cache_read?, cache_write?}`.
/// Whole-dollar rates are JSON integers; others are the nearest `f64` of the exact decimal,
/// which prints as that decimal for every rate of up to 15 significant digits. This view is
/// for display; the cache file keeps exact texts.
pub fn price_to_json(price: &Price) -> Value {
    let mut obj = rates_to_json(&price.base);
    if let Some(reasoning) = price.reasoning {
        obj.insert("reasoning".into(), usd_per_million_value(reasoning));
    }
    if !price.tiers.is_empty() {
        let tiers = price
            .tiers
            .iter()
            .map(|tier| {
                let mut t = Map::new();
                t.insert("size".into(), Value::from(tier.size));
                t.extend(rates_to_json(&tier.rates));
                Value::Object(t)
            })
            .collect();
        obj.insert("tiers".into(), Value::Array(tiers));
    }
    Value::Object(obj)
}

/// The `match` object of `/admin/pricing`: `{key, source, pricing}`, or `null` on a miss.
pub fn match_to_json(found: Option<&PriceMatch<'_>>) -> Value {
    let Some(found) = found else {
        return Value::Null;
    };
    let mut obj = Map::new();
    obj.insert("key".into(), Value::from(found.key));
    obj.insert("source".into(), Value::from(found.source.as_str()));
    obj.insert("pricing".into(), price_to_json(found.price));
    Value::Object(obj)
}

/// One rate in `$/M` as a JSON number (see [`price_to_json`]).
pub fn usd_per_million_value(pusd_per_token: u64) -> Value {
    if pusd_per_token.is_multiple_of(PUSD_PER_USD_PER_MILLION) {
        return Value::from(pusd_per_token / PUSD_PER_USD_PER_MILLION);
    }
    format_usd_per_million(pusd_per_token)
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn rates_to_json(rates: &Rates) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("input".into(), usd_per_million_value(rates.input));
    obj.insert("output".into(), usd_per_million_value(rates.output));
    if let Some(v) = rates.cache_read {
        obj.insert("cache_read".into(), usd_per_million_value(v));
    }
    if let Some(v) = rates.cache_write {
        obj.insert("cache_write".into(), usd_per_million_value(v));
    }
    obj
}

fn write_price(out: &mut String, price: &Price) {
    out.push('{');
    write_rates(out, &price.base);
    if let Some(v) = price.reasoning {
        write_field(out, "reasoning", v);
    }
    if !price.tiers.is_empty() {
        out.push_str(",\"tiers\":[");
        for (i, tier) in price.tiers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"size\":");
            out.push_str(&tier.size.to_string());
            out.push(',');
            write_rates(out, &tier.rates);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
}

fn write_rates(out: &mut String, rates: &Rates) {
    out.push_str("\"input\":");
    out.push_str(&format_usd_per_million(rates.input));
    write_field(out, "output", rates.output);
    if let Some(v) = rates.cache_read {
        write_field(out, "cache_read", v);
    }
    if let Some(v) = rates.cache_write {
        write_field(out, "cache_write", v);
    }
}

fn write_field(out: &mut String, name: &str, pusd_per_token: u64) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
    out.push_str(&format_usd_per_million(pusd_per_token));
}

/// Writes `s` as a JSON string literal.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn read_entry(raw: &RawValue) -> Option<(String, Price)> {
    let Ok(Node::Array(pair)) = json::classify(raw) else {
        return None;
    };
    let [key, price] = pair.as_slice() else {
        return None;
    };
    let Ok(Node::String(key)) = json::classify(key) else {
        return None;
    };
    Some((key, read_cached_price(&object(price)?)?))
}

fn read_cached_price(members: &[(String, &RawValue)]) -> Option<Price> {
    let base = read_rates(members)?;
    let mut tiers: Vec<Tier> = match member(members, "tiers").map(json::classify) {
        Some(Ok(Node::Array(items))) => items.into_iter().filter_map(read_cached_tier).collect(),
        _ => Vec::new(),
    };
    if tiers.is_empty()
        && let Some(rates) = member(members, "context_over_200k")
            .and_then(object)
            .and_then(|m| read_rates(&m))
    {
        tiers.push(Tier {
            size: 200_000,
            rates,
        });
    }
    Some(Price {
        base,
        reasoning: member(members, "reasoning").and_then(rate),
        tiers,
    })
}

fn read_cached_tier(raw: &RawValue) -> Option<Tier> {
    let members = object(raw)?;
    let size = parse_whole(member(&members, "size").and_then(number)?).ok()?;
    Some(Tier {
        size,
        rates: read_rates(&members)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> PriceTable {
        PriceTable::from_entries([
            (
                "anthropic/claude-sonnet-4-5".to_string(),
                Price {
                    base: Rates {
                        input: 3_000_000,
                        output: 15_000_000,
                        cache_read: Some(300_000),
                        cache_write: Some(3_750_000),
                    },
                    reasoning: None,
                    tiers: vec![Tier {
                        size: 200_000,
                        rates: Rates {
                            input: 6_000_000,
                            output: 22_500_000,
                            cache_read: Some(600_000),
                            cache_write: None,
                        },
                    }],
                },
            ),
            (
                "odd \"key\"\n\u{1}/é".to_string(),
                Price {
                    reasoning: Some(37_500),
                    ..Price::simple(1, u64::MAX)
                },
            ),
        ])
    }

    fn entries(t: &PriceTable) -> Vec<(String, Price)> {
        t.iter().map(|(k, p)| (k.to_string(), p.clone())).collect()
    }

    #[test]
    fn writes_the_documented_shape_in_dollars_per_million() {
        let bytes = to_cache_file(
            &sample(),
            UnixMillis(1_700_000_000_000),
            "https://models.dev/api.json",
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            r#"{"fetchedAt":1700000000000,"source":"https://models.dev/api.json","data":[["anthropic/claude-sonnet-4-5",{"input":3,"output":15,"cache_read":0.3,"cache_write":3.75,"tiers":[{"size":200000,"input":6,"output":22.5,"cache_read":0.6}]}],"#
        ), "{text}");
        assert!(
            text.contains(
                r#"{"input":0.000001,"output":18446744073709.551615,"reasoning":0.0375}"#
            ),
            "{text}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"][1][0], "odd \"key\"\n\u{1}/é");
    }

    #[test]
    fn round_trip_keeps_keys_order_and_exact_prices() {
        let table = sample();
        let file =
            from_cache_file(&to_cache_file(&table, UnixMillis(42), "file:///x.json")).unwrap();
        assert_eq!(file.fetched_at, UnixMillis(42));
        assert_eq!(file.source.as_deref(), Some("file:///x.json"));
        assert_eq!(entries(&file.table), entries(&table));
    }

    #[test]
    fn files_of_the_original_load_without_source_and_tiers() {
        let original = br#"{"fetchedAt":1699999999999,"data":[
            ["gpt-5",{"input":1.25,"output":10,"cache_read":0.125}],
            ["bad",{"input":"x","output":1}],
            ["also bad"],
            ["claude",{"input":3,"output":15,"context_over_200k":{"input":6,"output":22.5}}]]}"#;
        let file = from_cache_file(original).unwrap();
        assert_eq!(file.fetched_at, UnixMillis(1_699_999_999_999));
        assert_eq!(file.source, None);
        let keys: Vec<&str> = file.table.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["gpt-5", "claude"]);
        let gpt = file.table.get("gpt-5").unwrap();
        assert_eq!(gpt.base.cache_read, Some(125_000));
        assert!(gpt.tiers.is_empty());
        assert_eq!(file.table.get("claude").unwrap().tiers[0].size, 200_000);
    }

    #[test]
    fn broken_files_are_errors() {
        assert!(matches!(
            from_cache_file(b"nope"),
            Err(PricingError::Json(_))
        ));
        assert!(matches!(
            from_cache_file(b"[]"),
            Err(PricingError::Shape { .. })
        ));
        assert!(matches!(
            from_cache_file(br#"{"fetchedAt":1,"data":{}}"#),
            Err(PricingError::Shape { what: "data", .. })
        ));
        let no_time = from_cache_file(br#"{"data":[]}"#).unwrap();
        assert_eq!(no_time.fetched_at, UnixMillis(0));
    }

    #[test]
    fn admin_rendering_uses_dollars_per_million() {
        let table = sample();
        let price = table.get("anthropic/claude-sonnet-4-5").unwrap();
        assert_eq!(
            price_to_json(price),
            serde_json::json!({"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
                "tiers": [{"size": 200000, "input": 6, "output": 22.5, "cache_read": 0.6}]})
        );
        assert_eq!(
            serde_json::to_string(&usd_per_million_value(37_500)).unwrap(),
            "0.0375"
        );
        assert_eq!(match_to_json(None), Value::Null);
    }

    proptest! {
        #[test]
        fn every_price_reloads_to_the_same_integer(
            rates in proptest::collection::vec((any::<u64>(), any::<u64>(), proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>())), 1..4),
            reasoning in proptest::option::of(any::<u64>()),
            size in any::<u64>(),
        ) {
            let to_rates = |(input, output, cache_read, cache_write)| Rates { input, output, cache_read, cache_write };
            let mut all = rates.into_iter().map(to_rates);
            let base = all.next().unwrap_or_default();
            let price = Price {
                base,
                reasoning,
                tiers: all.map(|rates| Tier { size, rates }).collect(),
            };
            let table = PriceTable::from_entries([("k".to_string(), price)]);
            let file = from_cache_file(&to_cache_file(&table, UnixMillis(1), "s")).unwrap();
            prop_assert_eq!(entries(&file.table), entries(&table));
        }
    }
}
