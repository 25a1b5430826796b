//! The daemon's prices: the table in memory, its cache file (`accounting.md` §4.5) and the
//! recoster storage uses for boot recovery, shutdown finalize and backfill.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::pricing::cache_file::{from_cache_file, to_cache_file};
use agent_cli_proxy_core::pricing::snapshot::snapshot_table;
use agent_cli_proxy_core::pricing::{PriceSource, PriceTable, Pricer};
use agent_cli_proxy_core::time::UnixMillis;
use agent_cli_proxy_storage::{CoreRecoster, SharedPricer, SharedRecoster};
use serde_json::json;

use super::Logger;

struct Loaded {
    table: Arc<PriceTable>,
    fetched_at: Option<UnixMillis>,
    source: PriceSource,
}

/// Prices in memory and where they come from.
pub struct PricingState {
    loaded: Mutex<Loaded>,
    cache_path: PathBuf,
}

impl PricingState {
    /// Loads the cache file synchronously (step 6 of startup); a missing or unreadable file
    /// falls back to the snapshot compiled into the binary (without a `fetchedAt`, so the
    /// startup refresh still fetches and replaces it when the network allows).
    pub fn load(config: &Config, logger: &Logger) -> PricingState {
        let cache_path = PathBuf::from(&config.pricing_cache_path);
        let loaded = match std::fs::read(&cache_path) {
            Ok(bytes) => match from_cache_file(&bytes) {
                Ok(file) => Loaded {
                    table: Arc::new(file.table),
                    fetched_at: Some(file.fetched_at),
                    source: PriceSource::CacheFile,
                },
                Err(e) => {
                    logger.event(
                        Level::Warn,
                        "pricing.cache_invalid",
                        "pricing cache file could not be parsed",
                        vec![
                            ("path", json!(cache_path.display().to_string())),
                            ("err", json!(e.to_string())),
                        ],
                    );
                    snapshot(logger)
                }
            },
            Err(_) => snapshot(logger),
        };
        PricingState {
            loaded: Mutex::new(loaded),
            cache_path,
        }
    }

    /// The current table.
    pub fn table(&self) -> Arc<PriceTable> {
        Arc::clone(&self.lock().table)
    }

    /// When the current table was fetched.
    pub fn fetched_at(&self) -> Option<UnixMillis> {
        self.lock().fetched_at
    }

    /// Which prices are in force.
    pub fn source(&self) -> PriceSource {
        self.lock().source
    }

    /// The cache file path.
    pub fn cache_path(&self) -> &Path {
        &self.cache_path
    }

    /// Writes freshly fetched prices to the cache file atomically (temporary file in the
    /// same directory, fsync, rename). Blocking; memory is untouched until [`Self::publish`].
    pub fn write_cache(
        &self,
        table: &PriceTable,
        fetched_at: UnixMillis,
        source: &str,
    ) -> std::io::Result<()> {
        write_atomically(&self.cache_path, &to_cache_file(table, fetched_at, source))
    }

    /// Makes `table` the one `/admin/pricing`, `/ready` and the recoster see. The caller hands
    /// it to the core first, so whoever observes the new prices here can rely on the next
    /// finalized row being priced with them.
    pub fn publish(&self, table: Arc<PriceTable>, fetched_at: UnixMillis) {
        let mut loaded = self.lock();
        loaded.table = table;
        loaded.fetched_at = Some(fetched_at);
        loaded.source = PriceSource::Fetched;
    }

    /// A recoster over the current prices (storage's, over the core's cost rules).
    pub fn recoster(&self, config: &Arc<Config>) -> SharedRecoster {
        let pricer = Pricer::new(
            self.table(),
            config.pricing_overrides.clone(),
            config.pricing_aliases.clone(),
        );
        Arc::new(CoreRecoster::new(
            SharedPricer::new(pricer),
            &config.providers,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn snapshot(logger: &Logger) -> Loaded {
    match snapshot_table() {
        Ok(table) => Loaded {
            table: Arc::new(table),
            fetched_at: None,
            source: PriceSource::Snapshot,
        },
        Err(e) => {
            // Unreachable with the committed snapshot (a core test parses it); kept so a bad
            // regeneration degrades to "cost pending" instead of a failed start.
            logger.event(
                Level::Warn,
                "pricing.snapshot_invalid",
                "built-in pricing snapshot could not be parsed",
                vec![("err", json!(e.to_string()))],
            );
            Loaded {
                table: Arc::new(PriceTable::empty()),
                fetched_at: None,
                source: PriceSource::None,
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per call: the startup refresh and a loop's refresh may install at once, and a
    // shared temporary name lets one rename the other's file away (ENOENT).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = dir
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
