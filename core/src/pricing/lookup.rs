//! Price lookup (`accounting.md` §4.4): override, exact, normalized, alias, fuzzy; first hit
//! wins; the actual model first, then the requested one.

use std::sync::Arc;

use super::{Aliases, Overrides, Price, PriceTable, normalize};

/// Which lookup step found the price (the `source` of `/admin/pricing`'s `match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchSource {
    /// Step 0: an operator override.
    Override,
    /// Step 1: a verbatim table key.
    Exact,
    /// Step 2: the normalized index.
    Normalized,
    /// Step 3: steps 0–2 with the alias target.
    Alias,
    /// Step 4: the longest contained table key.
    Fuzzy,
}

impl MatchSource {
    /// The tag as written in `/admin/pricing`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchSource::Override => "override",
            MatchSource::Exact => "exact",
            MatchSource::Normalized => "normalized",
            MatchSource::Alias => "alias",
            MatchSource::Fuzzy => "fuzzy",
        }
    }
}

/// A successful lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceMatch<'a> {
    /// The key that matched: the override key as written, else the table key.
    pub key: &'a str,
    /// The step that matched.
    pub source: MatchSource,
    /// The price found.
    pub price: &'a Price,
    /// The model name that was priced (the actual or the requested model).
    pub model: &'a str,
}

/// Table, overrides and aliases together. Cloning is three reference-count increments, so
/// the shells can hand a snapshot to each request and swap the table at refresh with
/// [`Pricer::with_table`].
#[derive(Debug, Clone, Default)]
pub struct Pricer {
    table: Arc<PriceTable>,
    overrides: Arc<Overrides>,
    aliases: Arc<Aliases>,
}

impl Pricer {
    /// Bundles a table with the configured overrides and aliases.
    pub fn new(table: Arc<PriceTable>, overrides: Overrides, aliases: Aliases) -> Self {
        Pricer {
            table,
            overrides: Arc::new(overrides),
            aliases: Arc::new(aliases),
        }
    }

    /// The same overrides and aliases over another table.
    pub fn with_table(&self, table: Arc<PriceTable>) -> Self {
        Pricer {
            table,
            overrides: Arc::clone(&self.overrides),
            aliases: Arc::clone(&self.aliases),
        }
    }

    /// The current table.
    pub fn table(&self) -> &Arc<PriceTable> {
        &self.table
    }

    /// The overrides in effect.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// The aliases in effect.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Prices a row: `actual_model` when non-blank, then the requested `model` if that
    /// missed; with the row's `provider`, then `actual_provider` when it differs.
    pub fn lookup_row<'a>(
        &'a self,
        actual_model: Option<&'a str>,
        model: &'a str,
        provider: &str,
        actual_provider: Option<&str>,
    ) -> Option<PriceMatch<'a>> {
        let mut providers: Vec<&str> = Vec::with_capacity(2);
        for p in [Some(provider), actual_provider].into_iter().flatten() {
            if !p.is_empty() && !providers.contains(&p) {
                providers.push(p);
            }
        }
        let actual = actual_model.filter(|m| !m.trim().is_empty());
        if let Some(hit) = actual.and_then(|m| self.lookup(m, &providers)) {
            return Some(hit);
        }
        if actual == Some(model) {
            return None;
        }
        self.lookup(model, &providers)
    }

    /// Runs steps 0–4 for one model and up to two provider ids (empty ids are skipped).
    pub fn lookup<'a>(&'a self, model: &'a str, providers: &[&str]) -> Option<PriceMatch<'a>> {
        if model.trim().is_empty() {
            return None;
        }
        let hit = |(key, price), source| PriceMatch {
            key,
            source,
            price,
            model,
        };
        if let Some((found, source)) = self.direct(model, providers) {
            return Some(hit(found, source));
        }
        if let Some(target) = self.aliases.target(model)
            && let Some((found, _)) = self.direct(target, providers)
        {
            return Some(hit(found, MatchSource::Alias));
        }
        let found = self.table.fuzzy(&normalize(model))?;
        Some(hit(found, MatchSource::Fuzzy))
    }

    /// Steps 0–2. The exact keys are tried before the normalized ones are built: nearly
    /// every call is an exact hit on a table without overrides, which then costs no
    /// normalization and no allocation but the one key buffer.
    fn direct(&self, model: &str, providers: &[&str]) -> Option<((&str, &Price), MatchSource)> {
        let providers = providers.iter().filter(|p| !p.is_empty());
        let normalized_keys = || -> Vec<String> {
            let norm = normalize(model);
            providers
                .clone()
                .map(|p| format!("{}/{norm}", normalize(p)))
                .chain([norm.clone()])
                .collect()
        };
        let mut normalized: Option<Vec<String>> = None;
        if !self.overrides.is_empty() {
            let keys = normalized.insert(normalized_keys());
            if let Some(found) = keys.iter().find_map(|k| self.overrides.get_normalized(k)) {
                return Some((found, MatchSource::Override));
            }
        }
        let mut key = String::with_capacity(model.len() + 32);
        for p in providers.clone() {
            key.clear();
            key.push_str(p);
            key.push('/');
            key.push_str(model);
            if let Some(found) = self.table.get_entry(&key) {
                return Some((found, MatchSource::Exact));
            }
        }
        if let Some(found) = self.table.get_entry(model) {
            return Some((found, MatchSource::Exact));
        }
        let keys = normalized.get_or_insert_with(normalized_keys);
        let found = keys.iter().find_map(|k| self.table.get_normalized(k))?;
        Some((found, MatchSource::Normalized))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&str]) -> Arc<PriceTable> {
        Arc::new(PriceTable::from_entries(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), Price::simple(i as u64 + 1, 1))),
        ))
    }

    fn tag(m: Option<PriceMatch<'_>>) -> Option<(&str, &'static str, &str)> {
        m.map(|m| (m.key, m.source.as_str(), m.model))
    }

    #[test]
    fn section_4_4_fuzzy_example_takes_the_longest_key() {
        let p = Pricer::new(
            table(&["sonnet-4", "claude-sonnet-4"]),
            Overrides::none(),
            Aliases::none(),
        );
        assert_eq!(
            tag(p.lookup_row(Some("claude-sonnet-4-20250514"), "x", "anthropic", None)),
            Some(("claude-sonnet-4", "fuzzy", "claude-sonnet-4-20250514"))
        );
    }

    #[test]
    fn section_4_4_short_key_misses_then_requested_model_hits_exact() {
        let p = Pricer::new(table(&["openai/gpt-5"]), Overrides::none(), Aliases::none());
        assert_eq!(tag(p.lookup("gpt-5-2025-08-07", &["openai"])), None);
        assert_eq!(
            tag(p.lookup_row(Some("gpt-5-2025-08-07"), "gpt-5", "openai", None)),
            Some(("openai/gpt-5", "exact", "gpt-5"))
        );
    }

    #[test]
    fn overrides_win_over_exact_keys_with_provider_then_bare() {
        let overrides = Overrides::from_prices([
            ("Bare_Model".to_string(), Price::simple(7, 7)),
            ("acme/bare-model".to_string(), Price::simple(8, 8)),
        ]);
        let p = Pricer::new(table(&["bare-model"]), overrides, Aliases::none());
        assert_eq!(
            tag(p.lookup("bare_model", &["other", "ACME"])),
            Some(("acme/bare-model", "override", "bare_model"))
        );
        assert_eq!(
            tag(p.lookup("bare-model", &["other"])),
            Some(("Bare_Model", "override", "bare-model"))
        );
    }

    #[test]
    fn exact_tries_each_provider_before_the_bare_model_then_normalized() {
        let p = Pricer::new(
            table(&["m-one", "b/m-one", "Vendor/Big_Model"]),
            Overrides::none(),
            Aliases::none(),
        );
        assert_eq!(
            tag(p.lookup("m-one", &["a", "b"])),
            Some(("b/m-one", "exact", "m-one"))
        );
        assert_eq!(
            tag(p.lookup("M_ONE", &["a"])),
            Some(("m-one", "normalized", "M_ONE"))
        );
        assert_eq!(
            tag(p.lookup("big model", &["vendor"])),
            Some(("Vendor/Big_Model", "normalized", "big model"))
        );
    }

    #[test]
    fn aliases_run_steps_zero_to_two_with_the_target() {
        let p = Pricer::new(table(&["kimi-k2"]), Overrides::none(), Aliases::builtin());
        assert_eq!(
            tag(p.lookup("kimi-for-coding", &["kimi"])),
            Some(("kimi-k2", "alias", "kimi-for-coding"))
        );
        let with_overrides = Pricer::new(table(&[]), Overrides::builtin(), Aliases::builtin());
        let hit = with_overrides
            .lookup("gpt-5.4-mini-2026-09-09", &[])
            .unwrap();
        assert_eq!((hit.key, hit.source), ("gpt-5.4-mini", MatchSource::Alias));
        assert_eq!(hit.price.base.input, 750_000);
        assert_eq!(
            tag(with_overrides.lookup("gpt-5.4", &[])),
            Some(("gpt-5.4", "override", "gpt-5.4"))
        );
    }

    #[test]
    fn blank_actual_model_uses_the_requested_model_and_misses_are_none() {
        let p = Pricer::new(table(&["gpt-4o"]), Overrides::none(), Aliases::none());
        assert_eq!(
            tag(p.lookup_row(Some("  "), "gpt-4o", "openai", Some("openai"))),
            Some(("gpt-4o", "exact", "gpt-4o"))
        );
        assert_eq!(tag(p.lookup_row(None, "mystery", "openai", None)), None);
        assert_eq!(tag(p.lookup_row(None, "", "openai", None)), None);
    }

    #[test]
    fn with_table_keeps_overrides_and_aliases() {
        let p = Pricer::new(
            table(&["a-model"]),
            Overrides::builtin(),
            Aliases::builtin(),
        );
        let q = p.with_table(table(&["b-model"]));
        assert!(q.lookup("a-model", &[]).is_none());
        assert!(q.lookup("b-model", &[]).is_some());
        assert_eq!(q.overrides(), p.overrides());
        assert_eq!(q.aliases(), p.aliases());
    }
}
