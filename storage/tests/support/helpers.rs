//! Shared helpers of the storage integration tests (included with `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::{
    AuditInfo, CostStatus, DbPath, FinalizeRow, PreLogRow, RecostResult, RecostRow, Recoster,
    SharedRecoster, Store, Terminal,
};

/// A flat price per total token; `unknown` models are unsupported, unpriced models (and
/// zero-token rows) pending.
pub struct FlatRecoster {
    pub nanos_per_token: u64,
    pub unpriced: Vec<String>,
}

impl Recoster for FlatRecoster {
    fn recost(&self, row: &RecostRow) -> RecostResult {
        let audit = |source: &str| AuditInfo {
            model: Some(row.model.clone()),
            provider: Some(row.provider.clone()),
            source: source.to_owned(),
        };
        if row.model == "unknown" {
            return RecostResult {
                cost_nanousd: 0,
                cost_status: CostStatus::Unsupported,
                audit: audit("unsupported_model"),
            };
        }
        if self.unpriced.contains(&row.model) {
            return RecostResult {
                cost_nanousd: 0,
                cost_status: CostStatus::Pending,
                audit: audit("pricing"),
            };
        }
        let cost = row.tokens.total_tokens * self.nanos_per_token;
        RecostResult {
            cost_nanousd: cost,
            cost_status: if cost > 0 {
                CostStatus::Ok
            } else {
                CostStatus::Pending
            },
            audit: audit(if cost > 0 { "pricing" } else { "guard" }),
        }
    }
}

pub fn flat(nanos_per_token: u64) -> SharedRecoster {
    Arc::new(FlatRecoster {
        nanos_per_token,
        unpriced: Vec::new(),
    })
}

pub fn flat_unpriced(nanos_per_token: u64, unpriced: &[&str]) -> SharedRecoster {
    Arc::new(FlatRecoster {
        nanos_per_token,
        unpriced: unpriced.iter().map(|s| s.to_string()).collect(),
    })
}

pub fn temp_db() -> (tempfile::TempDir, DbPath) {
    let dir = tempfile::tempdir().unwrap();
    let path = DbPath::File(dir.path().join("acp.db"));
    (dir, path)
}

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/db")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

pub fn migrated(path: &DbPath) -> Store {
    Store::open_and_migrate(path).unwrap().0
}

pub fn prelog(provider: &str, model: &str, started_at: &str) -> PreLogRow {
    PreLogRow {
        request_id: format!("req-{started_at}"),
        provider: provider.into(),
        model: model.into(),
        tool: "claude-code".into(),
        client_id: "claude-code".into(),
        path: "/v1/messages".into(),
        streamed: true,
        started_at: started_at.into(),
        meta_json: r#"{"method":"POST","originator":null,"session_id":null}"#.into(),
        ..PreLogRow::default()
    }
}

pub fn tokens(prompt: u64, completion: u64) -> TokenColumns {
    TokenColumns {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        ..TokenColumns::default()
    }
}

/// A completed finalize costed at `nanos_per_token` × total.
pub fn finalize(id: i64, t: TokenColumns, nanos_per_token: u64) -> FinalizeRow {
    let cost = t.total_tokens * nanos_per_token;
    FinalizeRow {
        id,
        lifecycle_status: Terminal::Completed,
        actual_model: Some("actual".into()),
        actual_provider: Some("anthropic".into()),
        proxy_api_key_id: None,
        streamed: true,
        status: Some(200),
        tokens: t,
        usage_incomplete: false,
        cost_nanousd: cost,
        cost_status: if cost > 0 { CostStatus::Ok } else { CostStatus::Pending },
        error_code: None,
        error_message: None,
        latency_ms: Some(42),
        now: "2026-05-04T10:00:01.000Z".into(),
        meta_json: r#"{"method":"POST","usage_convention":"anthropic","attempts":1,"stream_usage_injected":false}"#.into(),
        audit: AuditInfo {
            model: Some("m".into()),
            provider: Some("anthropic".into()),
            source: "pricing".into(),
        },
    }
}

/// `accounting.md` §6.1: `daily_usage` equals the aggregate of non-pending rows, and the
/// cost sums agree.
pub fn assert_aggregate(store: &Store) {
    let conn = store.connection();
    let mismatches: i64 = conn
        .query_row(
            "WITH agg AS (
               SELECT substr(started_at, 1, 10) AS day, provider, model, COUNT(*) AS n,
                 SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c,
                 SUM(cache_creation_tokens) AS cc, SUM(cache_read_tokens) AS cr,
                 SUM(total_tokens) AS t, SUM(cost_nanousd) AS cost
               FROM request_logs WHERE lifecycle_status != 'pending'
               GROUP BY 1, 2, 3)
             SELECT (SELECT COUNT(*) FROM agg a LEFT JOIN daily_usage d
                       ON d.day = a.day AND d.provider = a.provider AND d.model = a.model
                     WHERE d.day IS NULL OR d.request_count != a.n OR d.prompt_tokens != a.p
                       OR d.completion_tokens != a.c OR d.cache_creation_tokens != a.cc
                       OR d.cache_read_tokens != a.cr OR d.total_tokens != a.t
                       OR d.cost_nanousd != a.cost
                       OR abs(d.cost_usd - d.cost_nanousd / 1e9) > 1e-12)
                  + (SELECT COUNT(*) FROM daily_usage d LEFT JOIN agg a
                       ON d.day = a.day AND d.provider = a.provider AND d.model = a.model
                     WHERE a.day IS NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatches, 0, "daily_usage differs from the aggregate");
    let (rows, daily): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COALESCE(SUM(cost_nanousd), 0) FROM request_logs
                     WHERE lifecycle_status != 'pending'),
                    (SELECT COALESCE(SUM(cost_nanousd), 0) FROM daily_usage)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, daily);
    let bad_status: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM request_logs
             WHERE (cost_status = 'ok') != (cost_nanousd > 0)
                OR (cost_status = 'unresolved' AND lifecycle_status != 'pending')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad_status, 0, "status invariant broken");
}

pub fn count(store: &Store, sql: &str) -> i64 {
    store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}
