//! The pricing snapshot compiled into the binary, and which price source is in force.
//!
//! The snapshot (`snapshot.json`, written by `scripts/update-pricing-snapshot.py` from the
//! LiteLLM price map, converted to the models.dev shape) is the last resort of startup: it is
//! used when there is no readable cache file, so a first start without network still prices
//! the common models exactly. It never has a `fetchedAt`, so the first refresh still fetches
//! `PRICING_URL` and replaces it as soon as the network allows.

use serde_json::{Value, json};

use super::{PriceTable, PricingError};
use crate::time::UnixMillis;

/// The snapshot document: models.dev shape plus a `_snapshot` member with its provenance
/// (skipped by the models.dev parser: it has no `models`).
pub const SNAPSHOT_JSON: &str = include_str!("snapshot.json");

/// Where the snapshot came from and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Registry package and file it was converted from.
    pub source: String,
    /// Licence of the source data.
    pub license: String,
    /// Day it was taken (`YYYY-MM-DD`).
    pub date: String,
}

/// The snapshot's prices.
pub fn snapshot_table() -> Result<PriceTable, PricingError> {
    PriceTable::from_models_dev(SNAPSHOT_JSON.as_bytes())
}

/// The snapshot's provenance (empty strings if the member is missing, which a test forbids).
pub fn snapshot_info() -> SnapshotInfo {
    let meta: Value = serde_json::from_str(SNAPSHOT_JSON)
        .ok()
        .and_then(|v: Value| v.get("_snapshot").cloned())
        .unwrap_or(Value::Null);
    let text = |name: &str| {
        meta.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    SnapshotInfo {
        source: text("source"),
        license: text("license"),
        date: text("date"),
    }
}

/// Which prices are in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// Fetched from `PRICING_URL` by this process.
    Fetched,
    /// Loaded from the cache file at startup.
    CacheFile,
    /// The snapshot compiled into the binary.
    Snapshot,
    /// Nothing could be loaded (only if the snapshot itself failed to parse).
    None,
}

impl PriceSource {
    /// The spelling in `/admin/pricing` and `doctor` (`fetched`, `cache`, `snapshot`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Fetched => "fetched",
            PriceSource::CacheFile => "cache",
            PriceSource::Snapshot => "snapshot",
            PriceSource::None => "none",
        }
    }

    /// The `source` object both shells expose in `/admin/pricing` and `doctor` prints:
    /// the kind and the date of the prices (the snapshot's day, or the fetch time).
    pub fn describe(self, fetched_at: Option<UnixMillis>) -> Value {
        match self {
            PriceSource::Snapshot => {
                let info = snapshot_info();
                json!({
                    "kind": self.as_str(),
                    "date": info.date,
                    "origin": info.source,
                    "license": info.license,
                })
            }
            _ => json!({
                "kind": self.as_str(),
                "date": fetched_at.map(|f| f.to_iso()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{PriceSource, Pricer};
    use std::sync::Arc;

    #[test]
    fn snapshot_parses_and_carries_its_provenance() {
        let table = snapshot_table().unwrap();
        assert!(table.len() > 100, "only {} keys", table.len());
        let info = snapshot_info();
        assert!(info.source.starts_with("pypi:litellm=="), "{info:?}");
        assert_eq!(info.license, "MIT");
        assert_eq!(info.date.len(), 10, "{info:?}");
        assert!(table.get("_snapshot").is_none());
    }

    #[test]
    fn snapshot_keeps_only_the_routed_providers() {
        let doc: Value = serde_json::from_str(SNAPSHOT_JSON).unwrap();
        let mut keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["_snapshot", "anthropic", "google", "openai"]);
    }

    #[test]
    fn snapshot_prices_known_models_exactly() {
        let pricer = Pricer::new(
            Arc::new(snapshot_table().unwrap()),
            Default::default(),
            Default::default(),
        );
        // $3 / $15 per million: 3_000_000 and 15_000_000 pUSD per token.
        let m = pricer.lookup("claude-sonnet-4-5", &["anthropic"]).unwrap();
        assert_eq!(
            (m.price.base.input, m.price.base.output),
            (3_000_000, 15_000_000)
        );
        assert_eq!(m.price.base.cache_read, Some(300_000));
        assert_eq!(m.price.base.cache_write, Some(3_750_000));
        let m = pricer.lookup("gpt-5", &["openai"]).unwrap();
        assert_eq!(
            (m.price.base.input, m.price.base.output),
            (1_250_000, 10_000_000)
        );
        let m = pricer.lookup("gemini-2.5-pro", &["google"]).unwrap();
        assert_eq!(m.price.tiers.len(), 1);
        assert_eq!(m.price.tiers[0].size, 200_000);
    }

    #[test]
    fn source_describes_kind_and_date() {
        let v = PriceSource::Snapshot.describe(None);
        assert_eq!(v["kind"], "snapshot");
        assert_eq!(v["date"], snapshot_info().date);
        let v = PriceSource::Fetched.describe(Some(UnixMillis(86_400_000)));
        assert_eq!(v["kind"], "fetched");
        assert_eq!(v["date"], UnixMillis(86_400_000).to_iso());
        assert_eq!(PriceSource::CacheFile.describe(None)["date"], Value::Null);
    }
}
