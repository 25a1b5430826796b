//! Fuzz bodies of the `pricing` module's targets.

use std::sync::Arc;

use crate::cost::{CostInput, CostStatus, cost};
use crate::pricing::cache_file::{from_cache_file, to_cache_file};
use crate::pricing::decimal::{format_usd_per_million, parse_usd_per_million};
use crate::pricing::overrides::{parse_aliases_json, parse_overrides_json};
use crate::pricing::{Price, PriceTable, Pricer};
use crate::time::UnixMillis;
use crate::usage::{Convention, UsageRecord};

/// Fuzz body of `pricing_load`: the input is tried as a models.dev document, a cache file,
/// override and alias JSON and a bare price text. Oracles: nothing panics; every parsed
/// price survives the cache file unchanged; a price text re-renders to the same integer;
/// costing any loaded key keeps `ok ⇔ cost > 0`.
pub fn pricing_load(data: &[u8]) {
    if let Ok(table) = PriceTable::from_models_dev(data) {
        check_round_trip(&table);
        check_costing(&table);
    }
    if let Ok(file) = from_cache_file(data) {
        check_round_trip(&file.table);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(overrides) = parse_overrides_json(text) {
        check_round_trip(&PriceTable::from_entries(
            overrides.iter().map(|(k, p)| (k.to_string(), p.clone())),
        ));
    }
    let _ = parse_aliases_json(text);
    if let Ok(pusd) = parse_usd_per_million(text.trim()) {
        assert_eq!(
            parse_usd_per_million(&format_usd_per_million(pusd)),
            Ok(pusd),
            "price text {text:?} does not re-render"
        );
    }
}

fn check_round_trip(table: &PriceTable) {
    let bytes = to_cache_file(table, UnixMillis(1), "fuzz");
    let reloaded = match from_cache_file(&bytes) {
        Ok(file) => file.table,
        Err(e) => panic!("cache file of a loaded table does not parse: {e}"),
    };
    let before: Vec<(&str, &Price)> = table.iter().collect();
    let after: Vec<(&str, &Price)> = reloaded.iter().collect();
    assert_eq!(before, after, "prices changed through the cache file");
}

fn check_costing(table: &PriceTable) {
    let pricer = Pricer::new(
        Arc::new(table.clone()),
        crate::pricing::Overrides::builtin(),
        crate::pricing::Aliases::builtin(),
    );
    let usage = UsageRecord {
        convention: Convention::Anthropic,
        input_uncached: 1000,
        cache_read: 300_000,
        cache_write_5m: 7,
        cache_write_1h: 11,
        output: u64::MAX / 3,
        reasoning: 0,
    };
    for (key, _) in table.iter().take(64) {
        let costed = cost(
            &pricer,
            &CostInput {
                usage: &usage,
                model: key,
                actual_model: Some(key),
                provider: "fuzz",
                actual_provider: None,
            },
        );
        assert_eq!(costed.status == CostStatus::Ok, costed.cost_nanousd > 0);
    }
}
