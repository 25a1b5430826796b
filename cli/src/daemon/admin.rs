//! `/admin/*` answers (`control.md` §6), shared by both shells and run on a blocking thread:
//! the core validates the request, the readers and the writer answer it, the core's state
//! answers breakers, providers, pricing and configuration.

use agent_cli_proxy_core::admin::{self, AdminRequest, DayOrRange, SeriesBy};
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::head::{Reply, RequestHead};
use agent_cli_proxy_core::pricing::cache_file::match_to_json;
use agent_cli_proxy_storage::queries::{LogFilter, SeriesDimension, TrendFilter};
use agent_cli_proxy_storage::{NewApiKey, Op, Reply as StoreReply, StorageError};
use serde_json::json;

use super::Daemon;

/// Answers one admin request from `peer` (blocking: call it on the shell's blocking pool).
pub fn answer(d: &Daemon, head: &RequestHead, body: &[u8], peer: std::net::IpAddr) -> Reply {
    if let Some(reply) = super::session::answer(d, head, body, peer) {
        return reply;
    }
    let wall = d.wall();
    let req = match admin::parse(&head.method, &head.path, head.query.as_deref(), body, wall) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // Read-your-writes (`docs/spool.md` S6): every record spooled before this request is in
    // the database before it is read.
    let flushed = d.flush_spool();
    match run(d, req) {
        Ok(mut reply) => {
            if let Some(lag) = flushed.lag_ms {
                reply
                    .headers
                    .insert("x-acp-ingest-lag-ms", http::HeaderValue::from(lag));
            }
            reply
        }
        Err(e) => {
            d.logger.event(
                Level::Error,
                "admin.request_failed",
                "admin request failed",
                vec![
                    ("path", json!(head.path)),
                    ("method", json!(head.method.as_str())),
                    ("err", json!(e.to_string())),
                ],
            );
            admin::internal_error()
        }
    }
}

fn run(d: &Daemon, req: AdminRequest) -> Result<Reply, StorageError> {
    let r = &d.readers;
    Ok(match req {
        AdminRequest::UsageToday { date } => admin::ok(&r.with(|s| s.usage_today(&date))?),
        AdminRequest::UsageRange(range) => {
            admin::ok(&r.with(|s| s.usage_range(&range.from, &range.to))?)
        }
        AdminRequest::UsageModels(DayOrRange::Day(day)) => {
            admin::ok(&r.with(|s| s.usage_models_day(&day))?)
        }
        AdminRequest::UsageModels(DayOrRange::Range(range)) => {
            admin::ok(&r.with(|s| s.usage_models_range(&range.from, &range.to))?)
        }
        AdminRequest::UsageProviders(DayOrRange::Day(day)) => {
            admin::ok(&r.with(|s| s.usage_providers(&day, &day))?)
        }
        AdminRequest::UsageProviders(DayOrRange::Range(range)) => {
            admin::ok(&r.with(|s| s.usage_providers(&range.from, &range.to))?)
        }
        AdminRequest::UsageAccounts { day } => admin::ok(&r.with(|s| s.usage_accounts_day(&day))?),
        AdminRequest::UsageAccountsRange(range) => {
            admin::ok(&r.with(|s| s.usage_accounts_range(&range.from, &range.to))?)
        }
        AdminRequest::UsageAccountsSummary(range) => {
            admin::ok(&r.with(|s| s.usage_accounts_summary(&range.from, &range.to))?)
        }
        AdminRequest::UsageTrend {
            span,
            provider,
            model,
            tool,
        } => {
            let filter = TrendFilter {
                provider,
                model,
                tool,
            };
            admin::ok(&r.with(|s| s.usage_trend(&span, &filter))?)
        }
        AdminRequest::UsageSummary(range) => {
            admin::ok(&r.with(|s| s.usage_summary(&range.from, &range.to))?)
        }
        AdminRequest::UsageSeries { range, by } => {
            let dim = match by {
                SeriesBy::Tool => SeriesDimension::Tool,
                SeriesBy::Model => SeriesDimension::Model,
                SeriesBy::Provider => SeriesDimension::Provider,
                SeriesBy::Client => SeriesDimension::Client,
                SeriesBy::Account => SeriesDimension::Account,
            };
            let keys = r.with(|s| s.usage_series(&range.from, &range.to, dim))?;
            admin::ok(&json!({
                "from": range.from,
                "to": range.to,
                "by": by.as_str(),
                "keys": keys,
            }))
        }
        AdminRequest::Stats => admin::ok(&r.with(|s| s.stats())?),
        AdminRequest::Logs(q) => {
            let filter = LogFilter {
                tool: q.tool,
                client_id: q.client_id,
                model: q.model,
                provider: q.provider,
                status_min: q.status_min,
                status_max: q.status_max,
                lifecycle_status: q.lifecycle_status.map(|l| l.as_str().to_owned()),
                search: q.search,
            };
            admin::ok(&r.with(|s| s.logs(&filter, q.limit, q.offset))?)
        }
        AdminRequest::Log { id } => match r.with(|s| s.log_by_id(id))? {
            Some(row) => admin::ok(&row),
            None => admin::not_found(),
        },
        AdminRequest::LogCostAudit { id } => match r.with(|s| s.cost_audit(id))? {
            Some(rows) => admin::ok(&rows),
            None => admin::not_found(),
        },
        AdminRequest::Quotas => {
            let days = u64::from(d.config.quota_snapshot_retention_days);
            let since = agent_cli_proxy_core::time::UnixMillis(
                d.wall().0.saturating_sub(days.saturating_mul(86_400_000)),
            )
            .to_iso();
            admin::ok(&json!({"snapshots": r.with(|s| s.quotas_latest(&since))?}))
        }
        AdminRequest::QuotasRefresh => match d.quota.refresh_blocking(d) {
            Ok(report) => admin::ok(&report.to_json()),
            Err(e) => {
                d.logger.event(
                    Level::Error,
                    "quota.refresh_failed",
                    "quota refresh failed",
                    vec![("err", json!(e.to_string()))],
                );
                admin::internal_error()
            }
        },
        AdminRequest::QuotaProbes => admin::ok(&json!({"probes": ["claude", "codex", "kimi"]})),
        AdminRequest::QuotaHistory {
            span,
            provider,
            account,
        } => {
            admin::ok(&r.with(|s| s.quota_history(&span, provider.as_deref(), account.as_deref()))?)
        }
        AdminRequest::Providers => admin::ok(&d.config.providers.admin_json()),
        AdminRequest::Pricing { model, provider } => pricing(d, model, provider),
        AdminRequest::Config => admin::ok(&d.config.admin_json()),
        AdminRequest::ApiKeys => admin::ok(&json!({"apiKeys": r.with(|s| s.api_keys())?})),
        AdminRequest::ApiKeyCreate(create) => {
            let mut bytes = [0u8; 32];
            if getrandom::fill(&mut bytes).is_err() {
                return Ok(admin::internal_error());
            }
            let material = admin::ApiKeyMaterial::from_random(bytes);
            let op = Op::CreateApiKey(NewApiKey {
                key: material.key.clone(),
                name: create.name.clone(),
                allowed_accounts: create.allowed_accounts,
                allowed_providers: create.allowed_providers,
            });
            match block(d, op)? {
                StoreReply::ApiKeyCreated(k) => admin::created(&json!({
                    "id": k.id,
                    "key": material.key.expose(),
                    "keyPrefix": k.key_prefix,
                    "name": create.name,
                    "createdAt": k.created_at,
                    "allowedAccounts": k.allowed_accounts,
                    "allowedProviders": k.allowed_providers,
                })),
                _ => admin::internal_error(),
            }
        }
        AdminRequest::ApiKeyPatch { id, patch } => {
            let op = Op::UpdateApiKey {
                id,
                allowed_accounts: patch.allowed_accounts,
                allowed_providers: patch.allowed_providers,
            };
            match block(d, op)? {
                StoreReply::Changed(true) => admin::ok(&json!({"ok": true})),
                _ => admin::not_found(),
            }
        }
        AdminRequest::ApiKeyRevoke { id } => {
            let op = Op::RevokeApiKey {
                id,
                now: d.wall().to_sqlite_datetime(),
            };
            match block(d, op)? {
                StoreReply::Revoked(Some(at)) => admin::ok(&json!({"revokedAt": at})),
                _ => admin::not_found(),
            }
        }
        AdminRequest::ApiKeyUsage { id } => match r.with(|s| s.api_key_usage(id))? {
            Some(u) => admin::ok(&u),
            None => admin::not_found(),
        },
        AdminRequest::Breakers => {
            let (now, wall) = (d.now(), d.wall());
            let snapshot = d.core().breakers_mut().snapshot(now, wall);
            admin::ok(&json!({"breakers": snapshot}))
        }
        AdminRequest::Breaker { provider_id } => {
            let (now, wall) = (d.now(), d.wall());
            match d.core().breakers_mut().get(&provider_id, now, wall) {
                Some(b) => admin::ok(&b),
                None => admin::breaker_not_found(),
            }
        }
        AdminRequest::BreakerReset { provider_id } => {
            let now = d.now();
            if d.core().breakers_mut().reset(&provider_id, now) {
                d.logger.event(
                    Level::Info,
                    "upstream.breaker_reset",
                    "circuit breaker reset",
                    vec![("providerId", json!(provider_id))],
                );
                admin::ok(&json!({"ok": true, "providerId": provider_id}))
            } else {
                admin::breaker_not_found()
            }
        }
    })
}

fn block(d: &Daemon, op: Op) -> Result<StoreReply, StorageError> {
    futures_lite::future::block_on(d.writer.send(op))
}

fn pricing(d: &Daemon, model: Option<String>, provider: Option<String>) -> Reply {
    let pricer = d.core().pricer().clone();
    let matched = model.as_deref().and_then(|m| {
        let providers: Vec<&str> = provider.as_deref().into_iter().collect();
        pricer.lookup(m, &providers)
    });
    let fetched_at = d.pricing.fetched_at();
    let age = fetched_at.map(|f| d.wall().0.saturating_sub(f.0));
    admin::ok(&json!({
        "model": model,
        "provider": provider,
        "match": if model.is_some() { match_to_json(matched.as_ref()) } else { serde_json::Value::Null },
        "loaded": !pricer.table().is_empty() || fetched_at.is_some(),
        "fetchedAt": fetched_at.map(|f| f.0),
        "ageMs": age,
        "cachePath": d.config.pricing_cache_path,
        "url": d.config.pricing_url,
        "source": d.pricing.source().describe(fetched_at),
    }))
}
