//! Worked examples W1–W6 of `accounting.md` §7, the status table of §5.4 and the cost
//! properties of §8.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::pricing::{Aliases, Overrides, PriceTable, Rates, Tier};
use crate::usage::Convention;

/// The price table of §7, as a models.dev document.
const EXAMPLE_DOC: &str = r#"{
  "anthropic": {"id": "anthropic", "models": {"claude-sonnet-4-5": {"id": "claude-sonnet-4-5",
    "cost": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
             "context_over_200k": {"input": 6, "output": 22.5, "cache_read": 0.6, "cache_write": 7.5}}}}},
  "openai": {"id": "openai", "models": {"gpt-5": {"id": "gpt-5",
    "cost": {"input": 1.25, "output": 10, "cache_read": 0.125}}}}
}"#;

fn pricer() -> Pricer {
    let table = PriceTable::from_models_dev(EXAMPLE_DOC.as_bytes()).unwrap();
    Pricer::new(Arc::new(table), Overrides::builtin(), Aliases::builtin())
}

fn anthropic(input: u64, cache_read: u64, cw5: u64, cw1h: u64, output: u64) -> UsageRecord {
    UsageRecord {
        convention: Convention::Anthropic,
        input_uncached: input,
        cache_read,
        cache_write_5m: cw5,
        cache_write_1h: cw1h,
        output,
        reasoning: 0,
    }
}

fn openai(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> UsageRecord {
    UsageRecord {
        convention: Convention::OpenAi,
        input_uncached: prompt.saturating_sub(cached),
        cache_read: cached,
        cache_write_5m: 0,
        cache_write_1h: 0,
        output: completion,
        reasoning,
    }
}

fn run(usage: &UsageRecord, model: &str, actual: Option<&str>, provider: &str) -> Costed {
    cost(
        &pricer(),
        &CostInput {
            usage,
            model,
            actual_model: actual,
            provider,
            actual_provider: None,
        },
    )
}

fn assert_ok(c: &Costed, nanousd: u64, matched: MatchSource, priced_model: &str) {
    assert_eq!(c.cost_nanousd, nanousd);
    assert_eq!(c.status, CostStatus::Ok);
    assert_eq!(c.source, AuditSource::Pricing);
    assert_eq!(c.matched, Some(matched));
    assert_eq!(c.priced_model, priced_model);
    assert_eq!(c.guard_reason, None);
}

#[test]
fn w1_anthropic_json_no_cache() {
    let p = pricer();
    let hit = p
        .lookup_row(
            Some("claude-sonnet-4-5"),
            "claude-sonnet-4-5",
            "anthropic",
            None,
        )
        .unwrap();
    assert_eq!(hit.key, "anthropic/claude-sonnet-4-5");
    let c = run(
        &anthropic(1000, 0, 0, 0, 500),
        "claude-sonnet-4-5",
        Some("claude-sonnet-4-5"),
        "anthropic",
    );
    assert_ok(&c, 10_500_000, MatchSource::Exact, "claude-sonnet-4-5");
    assert_eq!(nanousd_to_usd(c.cost_nanousd), 0.0105);
}

#[test]
fn w2_cache_read_and_5m_write_priced_via_fuzzy_match() {
    let p = pricer();
    let actual = "claude-sonnet-4-5-20250929";
    assert!(
        p.lookup(actual, &["anthropic"])
            .is_some_and(|m| m.key == "claude-sonnet-4-5" && m.source == MatchSource::Fuzzy)
    );
    let c = run(
        &anthropic(2000, 50_000, 10_000, 0, 812),
        "claude-sonnet-4-5",
        Some(actual),
        "anthropic",
    );
    assert_ok(&c, 70_680_000, MatchSource::Fuzzy, actual);
    // A summing extractor would have produced input 4 000 and output 1 113.
    let summed = run(
        &anthropic(4000, 50_000, 10_000, 0, 1113),
        "claude-sonnet-4-5",
        Some(actual),
        "anthropic",
    );
    assert_ne!(summed.cost_nanousd, 70_680_000);
}

#[test]
fn w2b_disconnect_after_first_event_costs_known_usage() {
    let c = run(
        &anthropic(2000, 50_000, 10_000, 0, 1),
        "claude-sonnet-4-5",
        Some("claude-sonnet-4-5-20250929"),
        "anthropic",
    );
    assert_ok(
        &c,
        58_515_000,
        MatchSource::Fuzzy,
        "claude-sonnet-4-5-20250929",
    );
}

#[test]
fn w3_one_hour_write_costs_twice_the_input_price() {
    let split = run(
        &anthropic(500, 0, 10_000, 20_000, 1000),
        "claude-sonnet-4-5",
        None,
        "anthropic",
    );
    assert_ok(&split, 174_000_000, MatchSource::Exact, "claude-sonnet-4-5");
    let unsplit = run(
        &anthropic(500, 0, 30_000, 0, 1000),
        "claude-sonnet-4-5",
        None,
        "anthropic",
    );
    assert_eq!(unsplit.cost_nanousd, 129_000_000);
}

#[test]
fn w4a_prompt_above_tier_size_uses_tier_rates_for_the_whole_request() {
    let c = run(
        &anthropic(150_000, 40_000, 20_000, 0, 2000),
        "claude-sonnet-4-5",
        None,
        "anthropic",
    );
    assert_ok(&c, 1_119_000_000, MatchSource::Exact, "claude-sonnet-4-5");
}

#[test]
fn w4b_prompt_equal_to_tier_size_uses_base_rates() {
    let c = run(
        &anthropic(140_000, 40_000, 20_000, 0, 2000),
        "claude-sonnet-4-5",
        None,
        "anthropic",
    );
    assert_ok(&c, 537_000_000, MatchSource::Exact, "claude-sonnet-4-5");
}

#[test]
fn w5_chat_actual_model_misses_then_requested_model_hits_exact() {
    let p = pricer();
    assert!(p.lookup("gpt-5-2025-08-07", &["openai"]).is_none());
    let hit = p
        .lookup_row(Some("gpt-5-2025-08-07"), "gpt-5", "openai", None)
        .unwrap();
    assert_eq!((hit.key, hit.source), ("openai/gpt-5", MatchSource::Exact));
    let c = run(
        &openai(12_000, 8000, 1500, 1024),
        "gpt-5",
        Some("gpt-5-2025-08-07"),
        "openai",
    );
    assert_ok(&c, 21_000_000, MatchSource::Exact, "gpt-5");
}

#[test]
fn w6_responses_reasoning_is_not_priced_separately() {
    let c = run(
        &openai(30_000, 20_000, 4000, 3000),
        "gpt-5",
        Some("gpt-5"),
        "openai",
    );
    assert_ok(&c, 55_000_000, MatchSource::Exact, "gpt-5");
    assert_eq!(nanousd_to_usd(c.cost_nanousd), 0.055);
}

#[test]
fn half_a_nanodollar_rounds_up() {
    // §5.3: 3 tokens at 0.0375 $/M = 112 500 pUSD = 112.5 nUSD → 113.
    let usage = anthropic(3, 0, 0, 0, 0);
    assert_eq!(cost_nanousd(&usage, &Price::simple(37_500, 0)), Some(113));
    assert_eq!(
        cost_nanousd(&anthropic(1, 0, 0, 0, 0), &Price::simple(499, 0)),
        Some(0)
    );
    assert_eq!(
        cost_nanousd(&anthropic(1, 0, 0, 0, 0), &Price::simple(500, 0)),
        Some(1)
    );
}

#[test]
fn defaults_cache_read_input_5m_write_five_quarters_1h_write_double() {
    let price = Price::simple(7, 0);
    assert_eq!(
        cost_quarter_pusd(&anthropic(0, 3, 0, 0, 0), &price),
        Some(4 * 3 * 7)
    );
    // Pcw = 7 × 5/4 = 8.75 pUSD/token stays exact in quarters: 2 tokens = 17.5 pUSD.
    assert_eq!(
        cost_quarter_pusd(&anthropic(0, 0, 2, 0, 0), &price),
        Some(70)
    );
    assert_eq!(
        cost_quarter_pusd(&anthropic(0, 0, 0, 3, 0), &price),
        Some(8 * 3 * 7)
    );
}

#[test]
fn tier_without_cache_prices_defaults_to_its_own_input() {
    let price = Price {
        base: Rates {
            input: 1,
            output: 1,
            cache_read: Some(1),
            cache_write: Some(1),
        },
        reasoning: None,
        tiers: vec![Tier {
            size: 10,
            rates: Rates {
                input: 100,
                output: 1,
                cache_read: None,
                cache_write: None,
            },
        }],
    };
    // T = 11 > 10: cache read at 100, 5m write at 125, 1h write at 200.
    let q = cost_quarter_pusd(&anthropic(0, 5, 4, 2, 0), &price);
    assert_eq!(q, Some(4 * 5 * 100 + 5 * 4 * 100 + 8 * 2 * 100));
}

#[test]
fn unknown_model_names_are_unsupported_without_actual_model() {
    for model in ["", "  ", "unknown", " Unknown ", "UNDEFINED"] {
        let c = run(&anthropic(10, 0, 0, 0, 10), model, None, "anthropic");
        assert_eq!(c.status, CostStatus::Unsupported, "{model:?}");
        assert_eq!(
            (c.cost_nanousd, c.source),
            (0, AuditSource::UnsupportedModel)
        );
        assert_eq!(c.source.as_str(), "unsupported_model");
    }
    let c = run(
        &anthropic(10, 0, 0, 0, 10),
        "unknown",
        Some("claude-sonnet-4-5"),
        "anthropic",
    );
    assert_eq!(c.status, CostStatus::Ok);
}

#[test]
fn a_missing_price_is_pending_from_pricing() {
    let c = run(
        &anthropic(10, 0, 0, 0, 10),
        "mystery",
        Some("mystery-2"),
        "acme",
    );
    assert_eq!(c.status, CostStatus::Pending);
    assert_eq!(
        (c.cost_nanousd, c.source, c.matched),
        (0, AuditSource::Pricing, None)
    );
    assert_eq!(c.priced_model, "mystery-2");
}

#[test]
fn overflow_and_zero_are_guarded_pending() {
    let big = UsageRecord {
        convention: Convention::Anthropic,
        input_uncached: u64::MAX,
        cache_read: u64::MAX,
        cache_write_5m: u64::MAX,
        cache_write_1h: u64::MAX,
        output: u64::MAX,
        reasoning: u64::MAX,
    };
    let c = run(&big, "claude-sonnet-4-5", None, "anthropic");
    assert_eq!(
        (c.cost_nanousd, c.status, c.source, c.guard_reason),
        (0, CostStatus::Pending, AuditSource::Guard, Some("overflow"))
    );
    let zero = run(
        &UsageRecord::empty(Convention::Anthropic),
        "gpt-5",
        None,
        "openai",
    );
    assert_eq!(
        (
            zero.cost_nanousd,
            zero.status,
            zero.source,
            zero.guard_reason
        ),
        (0, CostStatus::Pending, AuditSource::Guard, Some("zero"))
    );
    assert_eq!(zero.source.as_str(), "guard");
}

#[test]
fn audit_is_written_when_cost_or_status_changes_or_none_exists() {
    let c = run(
        &anthropic(1000, 0, 0, 0, 500),
        "claude-sonnet-4-5",
        None,
        "anthropic",
    );
    assert!(needs_audit(CostStatus::Unresolved, None, &c));
    assert!(needs_audit(CostStatus::Pending, Some(10_500_000), &c));
    assert!(needs_audit(CostStatus::Ok, Some(1), &c));
    assert!(!needs_audit(CostStatus::Ok, Some(10_500_000), &c));
    let miss = run(&anthropic(1, 0, 0, 0, 1), "mystery", None, "acme");
    assert!(!needs_audit(CostStatus::Pending, Some(0), &miss));
}

#[test]
fn statuses_round_trip_their_column_values() {
    for s in [
        CostStatus::Unresolved,
        CostStatus::Ok,
        CostStatus::Pending,
        CostStatus::Unsupported,
    ] {
        assert_eq!(CostStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(CostStatus::parse("OK"), None);
}

fn arb_rate() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..100_000_000, any::<u64>()]
}

fn arb_rates() -> impl Strategy<Value = Rates> {
    (
        arb_rate(),
        arb_rate(),
        proptest::option::of(arb_rate()),
        proptest::option::of(arb_rate()),
    )
        .prop_map(|(input, output, cache_read, cache_write)| Rates {
            input,
            output,
            cache_read,
            cache_write,
        })
}

fn arb_price() -> impl Strategy<Value = Price> {
    (
        arb_rates(),
        proptest::collection::vec((any::<u64>(), arb_rates()), 0..3),
    )
        .prop_map(|(base, tiers)| Price {
            base,
            reasoning: None,
            tiers: tiers
                .into_iter()
                .map(|(size, rates)| Tier { size, rates })
                .collect(),
        })
}

fn arb_count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..10_000_000, any::<u64>()]
}

fn arb_usage() -> impl Strategy<Value = UsageRecord> {
    (
        any::<bool>(),
        [
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
            arb_count(),
        ],
    )
        .prop_map(|(anthropic, [a, b, c, d, e, f])| UsageRecord {
            convention: if anthropic {
                Convention::Anthropic
            } else {
                Convention::OpenAi
            },
            input_uncached: a,
            cache_read: b,
            cache_write_5m: c,
            cache_write_1h: d,
            output: e,
            reasoning: f,
        })
}

fn single(price: Price) -> Pricer {
    Pricer::new(
        Arc::new(PriceTable::from_entries([("the-model".to_string(), price)])),
        Overrides::none(),
        Aliases::none(),
    )
}

proptest! {
    #[test]
    fn convention_agreement(prompt in 0u64..1 << 40, cached_frac in 0u64..=100, completion in 0u64..1 << 40, price in arb_price()) {
        let cached = prompt / 100 * cached_frac;
        let rates = price.rates_for(u128::from(prompt));
        let openai_form = (u128::from(prompt - cached) * u128::from(rates.input)
            + u128::from(cached) * u128::from(rates.cache_read.unwrap_or(rates.input))
            + u128::from(completion) * u128::from(rates.output)) * 4;
        let normalized = openai(prompt, cached, completion, 0);
        prop_assert_eq!(cost_quarter_pusd(&normalized, &price), Some(openai_form));
        let as_anthropic = UsageRecord { convention: Convention::Anthropic, ..normalized };
        prop_assert_eq!(cost_quarter_pusd(&as_anthropic, &price), Some(openai_form));
    }

    #[test]
    fn monotonic_within_one_rate_set(base in arb_rates(), usage in arb_usage(), field in 0usize..6, extra in arb_count()) {
        let price = Price { base, reasoning: None, tiers: Vec::new() };
        let mut raised = usage;
        let slot = match field {
            0 => &mut raised.input_uncached,
            1 => &mut raised.cache_read,
            2 => &mut raised.cache_write_5m,
            3 => &mut raised.cache_write_1h,
            4 => &mut raised.output,
            _ => &mut raised.reasoning,
        };
        *slot = slot.saturating_add(extra);
        if let (Some(before), Some(after)) = (cost_quarter_pusd(&usage, &price), cost_quarter_pusd(&raised, &price)) {
            prop_assert!(after >= before);
        }
        if cost_quarter_pusd(&usage, &price).is_none() {
            prop_assert!(cost_quarter_pusd(&raised, &price).is_none());
        }
    }

    #[test]
    fn empty_record_costs_zero_and_is_pending(price in arb_price(), anthropic in any::<bool>()) {
        let convention = if anthropic { Convention::Anthropic } else { Convention::OpenAi };
        let usage = UsageRecord::empty(convention);
        let c = cost(&single(price), &CostInput { usage: &usage, model: "the-model", actual_model: None, provider: "p", actual_provider: None });
        prop_assert_eq!(c.cost_nanousd, 0);
        prop_assert_eq!(c.status, CostStatus::Pending);
    }

    #[test]
    fn any_counts_and_prices_give_a_result_and_ok_iff_positive(price in arb_price(), usage in arb_usage()) {
        let c = cost(&single(price.clone()), &CostInput { usage: &usage, model: "the-model", actual_model: Some("x"), provider: "p", actual_provider: Some("q") });
        prop_assert_eq!(c.status == CostStatus::Ok, c.cost_nanousd > 0);
        prop_assert_ne!(c.status, CostStatus::Unresolved);
        match c.source {
            AuditSource::Guard => prop_assert!(c.guard_reason.is_some() && c.cost_nanousd == 0),
            AuditSource::Pricing => prop_assert!(c.guard_reason.is_none()),
            AuditSource::UnsupportedModel => prop_assert!(false, "model is known"),
        }
        prop_assert_eq!(c.cost_nanousd, cost_nanousd(&usage, &price).unwrap_or(0));
    }
}

/// The `google` entry of W7 (`accounting.md` §7), as models.dev writes Gemini 2.5 Pro.
const GEMINI_DOC: &str = r#"{
  "google": {"id": "google", "models": {"gemini-2.5-pro": {"id": "gemini-2.5-pro",
    "cost": {"input": 1.25, "output": 10, "cache_read": 0.31,
             "tiers": [{"tier": {"type": "context", "size": 200000}, "input": 2.5, "output": 15, "cache_read": 0.625}]}}}}
}"#;

fn gemini_cost(usage: &UsageRecord) -> Costed {
    let table = PriceTable::from_models_dev(GEMINI_DOC.as_bytes()).unwrap();
    let p = Pricer::new(Arc::new(table), Overrides::builtin(), Aliases::builtin());
    cost(
        &p,
        &CostInput {
            usage,
            model: "gemini-2.5-pro",
            actual_model: Some("gemini-2.5-pro"),
            provider: "google",
            actual_provider: Some("google"),
        },
    )
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays a committed fixture file; reading it is the test's IO, not the core's"
)]
fn w7_gemini_stream_cached_input_thoughts_and_tool_prompt() {
    // The golden stream itself, so the example, the fixture and the cost cannot drift apart.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/gemini/w7_array.json");
    let extracted = crate::usage::extract_plain(&std::fs::read(fixture).unwrap());
    let r = extracted.record.unwrap();
    assert_eq!(r, openai(12_500, 8000, 1500, 1200));
    let c = gemini_cost(&r);
    // 4 500 × 1 250 000 + 8 000 × 310 000 + 1 500 × 10 000 000 = 23 105 000 000 pUSD.
    assert_ok(&c, 23_105_000, MatchSource::Exact, "gemini-2.5-pro");
    // A summing merge would count 305 + 1 200 output tokens: it must not give this cost.
    assert_ne!(
        gemini_cost(&openai(12_500, 8000, 1505, 1200)).cost_nanousd,
        23_105_000
    );
}

#[test]
fn w7b_gemini_above_200k_uses_the_tier_for_the_whole_request() {
    // prompt 250 000 (100 000 cached), candidates 1 000, thoughts 500: T = 250 000 > 200 000.
    let c = gemini_cost(&openai(250_000, 100_000, 1500, 500));
    // 150 000 × 2 500 000 + 100 000 × 625 000 + 1 500 × 15 000 000 = 460 000 000 000 pUSD.
    assert_ok(&c, 460_000_000, MatchSource::Exact, "gemini-2.5-pro");
    // Exactly 200 000 stays on the base rates.
    let c = gemini_cost(&openai(200_000, 100_000, 1500, 500));
    // 100 000 × 1 250 000 + 100 000 × 310 000 + 1 500 × 10 000 000 = 171 000 000 000 pUSD.
    assert_ok(&c, 171_000_000, MatchSource::Exact, "gemini-2.5-pro");
}
