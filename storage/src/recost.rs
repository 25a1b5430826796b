//! [`CoreRecoster`]: the [`Recoster`] of the daemon and the CLI, over the core's pricer and
//! cost function (`accounting.md` §3, §5).
//!
//! A row is rebuilt into a [`UsageRecord`] from its token columns with the convention of
//! `meta_json.usage_convention`; rows without it (written by the original) use the row
//! provider's type: provider id `anthropic`, or any anthropic-type provider of the configured
//! [`Providers`], → Anthropic; everything else → OpenAI.
//!
//! The prices live in a [`SharedPricer`], a small `Arc<RwLock<Arc<Pricer>>>` so the pricing
//! refresh can swap the table while recosters (and in-flight backfill chunks) hold the handle:
//! a re-cost takes a snapshot under the read lock and prices without holding it.
//!
//! Where the spec is silent: the audit's `provider` is the row's `provider` column (the first
//! provider the lookup tries), and its `model` is the model that was priced.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use agent_cli_proxy_core::cost::{self, CostInput};
use agent_cli_proxy_core::pricing::Pricer;
use agent_cli_proxy_core::provider::{ProviderType, Providers};
use agent_cli_proxy_core::usage::{Convention, UsageRecord};

use crate::op::{AuditInfo, CostStatus, RecostResult, RecostRow, Recoster};

/// The current prices, replaceable at refresh. Clones share the same slot.
#[derive(Debug, Clone, Default)]
pub struct SharedPricer {
    slot: Arc<RwLock<Arc<Pricer>>>,
}

impl SharedPricer {
    /// A slot holding `pricer`.
    pub fn new(pricer: Pricer) -> SharedPricer {
        SharedPricer {
            slot: Arc::new(RwLock::new(Arc::new(pricer))),
        }
    }

    /// The prices in effect now.
    pub fn load(&self) -> Arc<Pricer> {
        // A panic while holding the lock cannot leave a half-written Arc behind, so a
        // poisoned lock still holds a valid pricer.
        Arc::clone(&self.slot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the prices; later re-costs use `pricer`.
    pub fn store(&self, pricer: Pricer) {
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pricer);
    }
}

/// Re-costs rows with the core's pricer.
#[derive(Debug, Clone)]
pub struct CoreRecoster {
    pricer: SharedPricer,
    anthropic_providers: BTreeSet<String>,
}

impl CoreRecoster {
    /// A recoster over `pricer`; `providers` decides the convention of rows without
    /// `meta_json.usage_convention`.
    pub fn new(pricer: SharedPricer, providers: &Providers) -> CoreRecoster {
        let anthropic_providers = providers
            .list()
            .iter()
            .filter(|p| p.kind == ProviderType::Anthropic)
            .map(|p| p.id.clone())
            .collect();
        CoreRecoster {
            pricer,
            anthropic_providers,
        }
    }

    /// The price slot (the daemon stores refreshed prices through it).
    pub fn pricer(&self) -> &SharedPricer {
        &self.pricer
    }

    /// The convention a row is re-costed with.
    pub fn convention(&self, row: &RecostRow) -> Convention {
        row.usage_convention.unwrap_or_else(|| {
            if row.provider == "anthropic" || self.anthropic_providers.contains(&row.provider) {
                Convention::Anthropic
            } else {
                Convention::OpenAi
            }
        })
    }
}

impl Recoster for CoreRecoster {
    fn recost(&self, row: &RecostRow) -> RecostResult {
        let usage = UsageRecord::from_columns(self.convention(row), &row.tokens);
        let pricer = self.pricer.load();
        let costed = cost::cost(
            &pricer,
            &CostInput {
                usage: &usage,
                model: &row.model,
                actual_model: row.actual_model.as_deref(),
                provider: &row.provider,
                actual_provider: row.actual_provider.as_deref(),
            },
        );
        RecostResult {
            cost_nanousd: costed.cost_nanousd,
            cost_status: status(costed.status),
            audit: AuditInfo {
                model: Some(costed.priced_model),
                provider: Some(row.provider.clone()),
                source: costed.source.as_str().to_owned(),
            },
        }
    }
}

fn status(s: cost::CostStatus) -> CostStatus {
    match s {
        cost::CostStatus::Ok => CostStatus::Ok,
        cost::CostStatus::Pending => CostStatus::Pending,
        cost::CostStatus::Unsupported => CostStatus::Unsupported,
        // The core never returns it from a cost; a re-costed row must leave `unresolved`.
        cost::CostStatus::Unresolved => CostStatus::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_core::pricing::{Aliases, Overrides, Price, PriceTable, Rates, Tier};
    use agent_cli_proxy_core::provider::Provider;
    use agent_cli_proxy_core::usage::TokenColumns;

    /// The price table of `accounting.md` §7.
    fn section_7_pricer() -> Pricer {
        let sonnet = Price {
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
                    cache_write: Some(7_500_000),
                },
            }],
        };
        let gpt5 = Price {
            base: Rates {
                input: 1_250_000,
                output: 10_000_000,
                cache_read: Some(125_000),
                cache_write: None,
            },
            reasoning: None,
            tiers: Vec::new(),
        };
        let table = PriceTable::from_entries([
            ("anthropic/claude-sonnet-4-5".to_owned(), sonnet.clone()),
            ("claude-sonnet-4-5".to_owned(), sonnet),
            ("openai/gpt-5".to_owned(), gpt5.clone()),
            ("gpt-5".to_owned(), gpt5),
        ]);
        Pricer::new(Arc::new(table), Overrides::none(), Aliases::none())
    }

    fn recoster(providers: &Providers) -> CoreRecoster {
        CoreRecoster::new(SharedPricer::new(section_7_pricer()), providers)
    }

    fn row(provider: &str, model: &str, tokens: TokenColumns) -> RecostRow {
        RecostRow {
            id: 1,
            provider: provider.to_owned(),
            model: model.to_owned(),
            actual_model: None,
            actual_provider: None,
            tokens,
            usage_convention: Some(Convention::Anthropic),
        }
    }

    /// W1's columns: prompt 1 000, completion 500, total 1 500.
    fn w1() -> TokenColumns {
        TokenColumns {
            prompt_tokens: 1_000,
            completion_tokens: 500,
            total_tokens: 1_500,
            ..TokenColumns::default()
        }
    }

    /// W3's columns: prompt 500, cache_creation 30 000 of which 20 000 1-hour, output 1 000.
    fn w3() -> TokenColumns {
        TokenColumns {
            prompt_tokens: 500,
            completion_tokens: 1_000,
            cache_creation_tokens: 30_000,
            cache_write_1h_tokens: 20_000,
            total_tokens: 31_500,
            ..TokenColumns::default()
        }
    }

    #[test]
    fn w1_recosted_from_columns() {
        let r = recoster(&Providers::built_in("http://127.0.0.1:8317"));
        let got = r.recost(&row("anthropic", "claude-sonnet-4-5", w1()));
        assert_eq!(got.cost_nanousd, 10_500_000);
        assert_eq!(got.cost_status, CostStatus::Ok);
        assert_eq!(
            got.audit,
            AuditInfo {
                model: Some("claude-sonnet-4-5".into()),
                provider: Some("anthropic".into()),
                source: "pricing".into(),
            }
        );
    }

    #[test]
    fn w3_recosted_from_columns_keeps_the_one_hour_split() {
        let r = recoster(&Providers::built_in("http://127.0.0.1:8317"));
        let got = r.recost(&row("anthropic", "claude-sonnet-4-5", w3()));
        assert_eq!(got.cost_nanousd, 174_000_000);
        assert_eq!(got.cost_status, CostStatus::Ok);
    }

    #[test]
    fn missing_convention_falls_back_to_the_provider_type() {
        let custom = Provider {
            id: "my-claude".into(),
            kind: ProviderType::Anthropic,
            ..Providers::built_in("http://x").list()[0].as_ref().clone()
        };
        let providers = Providers::merged(
            "http://127.0.0.1:8317",
            vec![custom],
            agent_cli_proxy_core::provider::ProviderSource::Inline,
        );
        let r = recoster(&providers);
        for provider in ["anthropic", "my-claude"] {
            let mut w3_row = row(provider, "claude-sonnet-4-5", w3());
            w3_row.usage_convention = None;
            assert_eq!(r.convention(&w3_row), Convention::Anthropic, "{provider}");
            assert_eq!(r.recost(&w3_row).cost_nanousd, 174_000_000, "{provider}");
        }
        // An OpenAI-type provider reads the same columns the OpenAI way: no cache writes,
        // so only input 500 and output 1 000 are priced.
        let mut openai_row = row("openai", "claude-sonnet-4-5", w3());
        openai_row.usage_convention = None;
        assert_eq!(r.convention(&openai_row), Convention::OpenAi);
        assert_eq!(
            r.recost(&openai_row).cost_nanousd,
            (500 * 3_000_000 + 1_000 * 15_000_000) / 1_000
        );
    }

    #[test]
    fn unpriced_and_unknown_models_are_pending_and_unsupported() {
        let r = recoster(&Providers::built_in("http://127.0.0.1:8317"));
        let miss = r.recost(&row("anthropic", "no-such-model", w1()));
        assert_eq!(
            (miss.cost_nanousd, miss.cost_status),
            (0, CostStatus::Pending)
        );
        assert_eq!(miss.audit.source, "pricing");
        let unknown = r.recost(&row("anthropic", "unknown", w1()));
        assert_eq!(unknown.cost_status, CostStatus::Unsupported);
        assert_eq!(unknown.audit.source, "unsupported_model");
        let zero = r.recost(&row(
            "anthropic",
            "claude-sonnet-4-5",
            TokenColumns::default(),
        ));
        assert_eq!(
            (zero.cost_status, zero.audit.source.as_str()),
            (CostStatus::Pending, "guard")
        );
    }

    #[test]
    fn actual_model_and_provider_take_part_in_the_lookup() {
        let r = recoster(&Providers::built_in("http://127.0.0.1:8317"));
        let mut w = row("anthropic", "sonnet", w1());
        w.actual_model = Some("claude-sonnet-4-5-20250929".into());
        let got = r.recost(&w);
        assert_eq!(got.cost_nanousd, 10_500_000);
        assert_eq!(
            got.audit.model.as_deref(),
            Some("claude-sonnet-4-5-20250929")
        );
    }

    #[test]
    fn swapped_prices_apply_to_later_recosts() {
        let r = recoster(&Providers::built_in("http://127.0.0.1:8317"));
        let held = r.clone();
        let before = r.recost(&row("anthropic", "claude-sonnet-4-5", w1()));
        let doubled = PriceTable::from_entries([(
            "claude-sonnet-4-5".to_owned(),
            Price::simple(6_000_000, 30_000_000),
        )]);
        r.pricer().store(Pricer::new(
            Arc::new(doubled),
            Overrides::none(),
            Aliases::none(),
        ));
        let after = held.recost(&row("anthropic", "claude-sonnet-4-5", w1()));
        assert_eq!(after.cost_nanousd, 2 * before.cost_nanousd);
    }
}
