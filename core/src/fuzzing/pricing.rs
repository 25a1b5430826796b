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

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/pricing_load")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn seed_corpus_replays_and_loads_what_it_should() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pricing_load");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            pricing_load(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
        assert!(replayed >= 10);
        let api = PriceTable::from_models_dev(&corpus("api_small.json")).unwrap();
        assert!(api.get("openrouter/anthropic/claude-sonnet-4.5").is_some());
        assert!(api.get("no-cost").is_none());
        let odd = PriceTable::from_models_dev(&corpus("api_odd_numbers.json")).unwrap();
        let view: Vec<(&str, u64, u64)> = odd
            .iter()
            .filter(|(k, _)| !k.contains('/'))
            .map(|(k, p)| (k, p.base.input, p.base.output))
            .collect();
        assert_eq!(
            view,
            [
                ("a", 2_000_000, 2_000_000),
                ("b", 0, 1),
                ("c", 0, 100_000_000)
            ]
        );
        assert_eq!(odd.get("b").and_then(|p| p.base.cache_read), None);
        assert!(from_cache_file(&corpus("cache_ours.json")).is_ok());
        assert!(from_cache_file(&corpus("cache_original.json")).is_ok());
        assert!(
            parse_overrides_json(std::str::from_utf8(&corpus("overrides.json")).unwrap()).is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn generated_documents_satisfy_the_oracles(
            numbers in proptest::collection::vec("-?[0-9]{1,22}(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,3})?", 4),
            names in proptest::collection::vec("[A-Za-z_ ./-]{0,12}", 2),
        ) {
            let doc = format!(
                r#"{{"{p}": {{"models": {{"{m}": {{"name": "{m} x", "cost": {{"input": {a}, "output": {b}, "cache_read": {c},
                    "tiers": [{{"tier": {{"type": "context", "size": 1000}}, "input": {d}, "output": {a}}}]}}}}}}}}}}"#,
                p = names[0], m = names[1], a = numbers[0], b = numbers[1], c = numbers[2], d = numbers[3],
            );
            pricing_load(doc.as_bytes());
            for n in &numbers {
                pricing_load(n.as_bytes());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            pricing_load(&data);
        }
    }
}
