//! `backfill-costs [--env PATH] [--all] [--limit N]` (`accounting.md` §6.2), run once on a
//! direct connection.
//!
//! The forced pricing refresh of step 1: a `file:///` `PRICING_URL` is read here; an http(s)
//! one goes through [`Shell::fetch`]. A successful fetch replaces the cache file (written
//! atomically, as §4.5 says). When the refresh fails the CLI warns
//! (`cost.backfill_pricing_failed`) and prices from the cache file of any age, else from the
//! snapshot compiled into the binary (overrides still apply).
//!
//! Rows that recorded no token (the call failed before the upstream sent usage) are not
//! candidates (`agent_cli_proxy_storage::backfill::NO_USAGE_SQL`); the command counts them in
//! its output so "pending" is never mistaken for them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::cost::{self, CostInput};
use agent_cli_proxy_core::pricing::cache_file::{from_cache_file, to_cache_file};
use agent_cli_proxy_core::pricing::snapshot::snapshot_table;
use agent_cli_proxy_core::pricing::{PriceTable, Pricer};
use agent_cli_proxy_core::provider::{ProviderType, Providers};
use agent_cli_proxy_core::time::UnixMillis;
use agent_cli_proxy_core::usage::{Convention, UsageRecord};
use agent_cli_proxy_storage::backfill::{DEFAULT_CHUNK_SIZE, NO_USAGE_SQL};
use agent_cli_proxy_storage::{
    AuditInfo, BackfillFlight, BackfillOptions, CostStatus, DbPath, RecostResult, RecostRow,
    Recoster, Store,
};

use crate::args::BackfillArgs;
use crate::{CliError, CmdResult, Shell, env, fsutil, log};

/// How long the pricing fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one backfill and prints its counts.
pub(crate) fn run(
    process: &BTreeMap<String, String>,
    args: BackfillArgs,
    shell: &dyn Shell,
) -> CmdResult {
    let loaded = env::load(process, args.env.as_deref())?;
    let (config, warnings) = env::load_config(&loaded.vars)?;
    env::print_warnings(&warnings);
    if let Some(target) = &config.postgres {
        // The replicas run the backfill themselves, one at a time (`docs/replicas.md` §5);
        // a second writer from the command line would race the holder's chunks.
        return Err(CliError::Runtime(format!(
            "DATABASE_URL names {}: the cost backfill runs in the replicas' cost-backfill \
             loop (COST_BACKFILL_INTERVAL_MS); backfill-costs works on a SQLite database",
            crate::pg::describe(target)
        )));
    }
    let table = refresh_prices(&config, shell);
    let recoster = CliRecoster {
        pricer: Pricer::new(
            Arc::new(table),
            config.pricing_overrides.clone(),
            config.pricing_aliases.clone(),
        ),
        providers: config.providers.clone(),
    };
    let now = log::now_ms();
    let since = (!args.all)
        .then(|| UnixMillis(now.0.saturating_sub(config.cost_backfill_lookback_ms)).to_iso());
    let opts = BackfillOptions {
        since,
        chunk_size: if config.cost_backfill_chunk_size == 0 {
            DEFAULT_CHUNK_SIZE
        } else {
            config.cost_backfill_chunk_size
        },
        limit: args
            .limit
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0),
    };
    let db = &config.db_path;
    crate::spool::apply_leftover(&loaded.vars, db)?;
    let (mut store, _) = Store::open_and_migrate(&DbPath::from_config(db)).map_err(|e| {
        CliError::Runtime(format!("DB_PATH {db}: {}", crate::one_line(&e.to_string())))
    })?;
    let since_for_count = opts.since.clone();
    let counts = store
        .run_backfill(&BackfillFlight::new(), opts, Arc::new(recoster))
        .map_err(|e| {
            CliError::Runtime(format!("DB_PATH {db}: {}", crate::one_line(&e.to_string())))
        })?;
    crate::out_line!(
        "[backfill-costs] scanned={} updated={} ok={} pending={} unsupported={}",
        counts.scanned,
        counts.updated,
        counts.ok,
        counts.pending,
        counts.unsupported
    );
    let no_usage = count_no_usage(&store, since_for_count.as_deref())
        .map_err(|e| CliError::Runtime(format!("DB_PATH {db}: {e}")))?;
    if no_usage > 0 {
        crate::out_line!(
            "[backfill-costs] {no_usage} call(s) without usage left alone: they failed before the upstream answered, so their cost is 0, not pending"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Finalized `pending` rows in the window that recorded no token.
fn count_no_usage(store: &Store, since: Option<&str>) -> Result<i64, String> {
    store
        .connection()
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM request_logs \
                 WHERE lifecycle_status IN ('completed','error','aborted') \
                   AND cost_status IN ('pending','unresolved') \
                   AND (?1 IS NULL OR started_at >= ?1) AND {NO_USAGE_SQL}"
            ),
            [since],
            |r| r.get(0),
        )
        .map_err(|e| crate::one_line(&e.to_string()))
}

/// Costs rows from their columns with the CLI's prices.
struct CliRecoster {
    pricer: Pricer,
    providers: Providers,
}

impl Recoster for CliRecoster {
    fn recost(&self, row: &RecostRow) -> RecostResult {
        let convention = row.usage_convention.unwrap_or_else(|| {
            let anthropic = self
                .providers
                .get(&row.provider)
                .map_or(row.provider == "anthropic", |p| {
                    p.kind == ProviderType::Anthropic
                });
            if anthropic {
                Convention::Anthropic
            } else {
                Convention::OpenAi
            }
        });
        let usage = UsageRecord::from_columns(convention, &row.tokens);
        let costed = cost::cost(
            &self.pricer,
            &CostInput {
                usage: &usage,
                model: &row.model,
                actual_model: row.actual_model.as_deref(),
                provider: &row.provider,
                actual_provider: None,
            },
        );
        let cost_status = match costed.status {
            cost::CostStatus::Ok => CostStatus::Ok,
            cost::CostStatus::Unsupported => CostStatus::Unsupported,
            cost::CostStatus::Pending | cost::CostStatus::Unresolved => CostStatus::Pending,
        };
        RecostResult {
            cost_nanousd: costed.cost_nanousd,
            cost_status,
            audit: AuditInfo {
                model: Some(costed.priced_model),
                provider: Some(row.provider.clone()),
                source: costed.source.as_str().to_owned(),
            },
        }
    }
}

/// The forced refresh of step 1, with the fallbacks of §4.5.
fn refresh_prices(config: &Config, shell: &dyn Shell) -> PriceTable {
    match fetch_prices(&config.pricing_url, shell) {
        Ok(table) => {
            let bytes = to_cache_file(&table, log::now_ms(), &config.pricing_url);
            if let Err(e) =
                fsutil::write_private_atomic(Path::new(&config.pricing_cache_path), &bytes)
            {
                crate::err_line!(
                    "warning: PRICING_CACHE_PATH {} could not be written: {e:#}",
                    config.pricing_cache_path
                );
            }
            table
        }
        Err(err) => {
            crate::err_line!(
                "warning: pricing refresh failed, using cached data (cost.backfill_pricing_failed): {err}"
            );
            std::fs::read(&config.pricing_cache_path)
                .ok()
                .and_then(|bytes| from_cache_file(&bytes).ok())
                .map(|c| c.table)
                .or_else(|| snapshot_table().ok())
                .unwrap_or_else(PriceTable::empty)
        }
    }
}

fn fetch_prices(url: &str, shell: &dyn Shell) -> Result<PriceTable, String> {
    let bytes = match url.strip_prefix("file://") {
        Some(path) => std::fs::read(path).map_err(|e| format!("PRICING_URL {url}: {e}"))?,
        None => shell
            .fetch(url, FETCH_TIMEOUT)
            .map_err(|e| format!("PRICING_URL {url}: {e}"))?,
    };
    PriceTable::from_models_dev(&bytes).map_err(|e| format!("PRICING_URL {url}: {e}"))
}
