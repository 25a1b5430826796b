//! The price table: keys in first-insertion order, a normalized index and fuzzy candidates
//! (`accounting.md` §4.2, §4.4).
//!
//! Prices live once in an arena; keys point at them, so the four-to-eight keys of one model
//! share one [`Price`]. The table is immutable once built: the normalized index and the
//! fuzzy candidate list are computed at the end of loading, when every value is final.

use std::collections::BTreeMap;

use super::{Price, normalize};

/// A loaded price table. Build it with [`PriceTable::from_models_dev`],
/// [`PriceTable::from_entries`] or [`super::cache_file::from_cache_file`].
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Slot → (key, index into `prices`), in first-insertion order.
    keys: Vec<(String, usize)>,
    /// Key → slot.
    positions: BTreeMap<String, usize>,
    /// Normalized key → slot of the first key with that normalization.
    normalized: BTreeMap<String, usize>,
    prices: Vec<Price>,
    /// (normalized key, slot) eligible for the fuzzy step, longest first, then by slot.
    fuzzy: Vec<(String, usize)>,
}

impl PriceTable {
    /// A table with no prices (every lookup misses).
    pub fn empty() -> Self {
        PriceTable::default()
    }

    /// A table from `(key, price)` pairs taken verbatim, in order; a repeated key replaces
    /// the value in its first position. This is how the cache file is loaded.
    pub fn from_entries<I: IntoIterator<Item = (String, Price)>>(entries: I) -> Self {
        let mut builder = Builder::default();
        for (key, price) in entries {
            let index = builder.add_price(price);
            builder.bind(key, index);
        }
        builder.finish()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the table has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The price stored under exactly `key`.
    pub fn get(&self, key: &str) -> Option<&Price> {
        let slot = *self.positions.get(key)?;
        self.slot(slot).map(|(_, price)| price)
    }

    /// The key and price stored under exactly `key`.
    pub fn get_entry(&self, key: &str) -> Option<(&str, &Price)> {
        self.slot(*self.positions.get(key)?)
    }

    /// The first inserted key whose normalization is `normalized_key` (which must already be
    /// normalized), with its price.
    pub fn get_normalized(&self, normalized_key: &str) -> Option<(&str, &Price)> {
        self.slot(*self.normalized.get(normalized_key)?)
    }

    /// Every `(key, price)` in first-insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Price)> + '_ {
        self.keys
            .iter()
            .filter_map(|(key, index)| Some((key.as_str(), self.prices.get(*index)?)))
    }

    /// The fuzzy step: the longest normalized key (no `/`, at least 6 characters, priced
    /// entry) that is a substring of `normalized_model`; the earlier key on equal length.
    pub fn fuzzy(&self, normalized_model: &str) -> Option<(&str, &Price)> {
        let (_, slot) = self
            .fuzzy
            .iter()
            .find(|(key, _)| normalized_model.contains(key.as_str()))?;
        self.slot(*slot)
    }

    fn slot(&self, slot: usize) -> Option<(&str, &Price)> {
        let (key, index) = self.keys.get(slot)?;
        Some((key.as_str(), self.prices.get(*index)?))
    }
}

/// Collects keys and prices; [`Builder::finish`] derives the indexes.
#[derive(Default)]
pub(super) struct Builder {
    keys: Vec<(String, usize)>,
    positions: BTreeMap<String, usize>,
    prices: Vec<Price>,
}

/// Shortest normalized key the fuzzy step may use (`accounting.md` §4.4).
const FUZZY_MIN_CHARS: usize = 6;

impl Builder {
    /// Stores a price and returns its index for [`Builder::bind`].
    pub(super) fn add_price(&mut self, price: Price) -> usize {
        self.prices.push(price);
        self.prices.len() - 1
    }

    /// Points `key` at price `index`: a new key is appended, an existing one keeps its
    /// position and gets the new value. Empty keys are skipped.
    pub(super) fn bind(&mut self, key: String, index: usize) {
        if key.is_empty() {
            return;
        }
        match self.positions.get(&key) {
            Some(&slot) => self.keys[slot].1 = index,
            None => {
                self.positions.insert(key.clone(), self.keys.len());
                self.keys.push((key, index));
            }
        }
    }

    pub(super) fn finish(self) -> PriceTable {
        let mut normalized = BTreeMap::new();
        let mut fuzzy: Vec<(String, usize)> = Vec::new();
        let mut fuzzy_seen = BTreeMap::new();
        for (slot, (key, index)) in self.keys.iter().enumerate() {
            let norm = normalize(key);
            normalized.entry(norm.clone()).or_insert(slot);
            let priced = self.prices.get(*index).is_some_and(Price::is_priced);
            if priced
                && !norm.contains('/')
                && norm.chars().count() >= FUZZY_MIN_CHARS
                && !fuzzy_seen.contains_key(&norm)
            {
                fuzzy_seen.insert(norm.clone(), slot);
                fuzzy.push((norm, slot));
            }
        }
        // Stable sort: equal lengths stay in insertion order, so the earlier key wins ties.
        fuzzy.sort_by_key(|(key, _)| std::cmp::Reverse(key.chars().count()));
        PriceTable {
            keys: self.keys,
            positions: self.positions,
            normalized,
            prices: self.prices,
            fuzzy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, u64)]) -> PriceTable {
        PriceTable::from_entries(
            entries
                .iter()
                .map(|(k, p)| (k.to_string(), Price::simple(*p, *p))),
        )
    }

    #[test]
    fn later_writes_replace_the_value_but_not_the_position() {
        let t = table(&[("a", 1), ("b", 2), ("a", 3)]);
        let view: Vec<(&str, u64)> = t.iter().map(|(k, p)| (k, p.base.input)).collect();
        assert_eq!(view, [("a", 3), ("b", 2)]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn normalized_index_points_at_the_first_inserted_key() {
        let t = table(&[("Claude_Sonnet", 1), ("claude-sonnet", 2)]);
        let (key, price) = t.get_normalized("claude-sonnet").unwrap();
        assert_eq!((key, price.base.input), ("Claude_Sonnet", 1));
        assert!(t.get("claude_sonnet").is_none());
    }

    #[test]
    fn fuzzy_prefers_longest_then_earliest_and_skips_short_slashed_and_free_keys() {
        let t = table(&[
            ("sonnet-4", 1),
            ("claude-sonnet-4", 2),
            ("vendor/claude-sonnet-4-2025", 3),
            ("gpt-5", 4),
            ("claude-sonnet-4-free", 0),
        ]);
        let hit = |m: &str| t.fuzzy(m).map(|(k, p)| (k.to_string(), p.base.input));
        assert_eq!(
            hit("claude-sonnet-4-20250514"),
            Some(("claude-sonnet-4".into(), 2))
        );
        assert_eq!(hit("gpt-5-2025-08-07"), None);
        assert_eq!(
            hit("claude-sonnet-4-free-x"),
            Some(("claude-sonnet-4".into(), 2))
        );
        let tie = table(&[("abcdef", 1), ("bcdefg", 2)]);
        assert_eq!(tie.fuzzy("abcdefg").map(|(k, _)| k), Some("abcdef"));
    }
}
