//! PostgreSQL spool ingestion throughput (`docs/replicas.md` §3, issue #14): `Begin`+`End`
//! pairs appended to a replica's spool, then applied by [`PgIngester::drain`] at the default
//! `SPOOL_INGEST_BATCH`, against a throw-away local server (the tests' harness). The SQLite
//! figure to compare with comes from `cargo bench -p agent-cli-proxy-storage --bench ingest`
//! run next to this one.
//!
//! `cargo bench -p agent-cli-proxy-storage-pg --bench ingest` (`ACP_BENCH_ROWS` pairs,
//! default 50 000; `ACP_BENCH_REPS`, default 3, best kept; `ACP_BENCH_BATCH`, default 4096).
//! The harness starts the server with `fsync` off; with one transaction per batch the commit
//! is a small part of a batch either way, the round trips are what is measured.

#![allow(clippy::expect_used)] // a benchmark binary: aborting on a setup failure is the point

#[path = "../../tests/src/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Instant;

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, Terminal};
use agent_cli_proxy_storage::spool::{Doorbell, Record, SpoolConfig};
use agent_cli_proxy_storage_pg::{PgIngester, PgStore};

/// `SPOOL_INGEST_BATCH`'s default.
const DEFAULT_BATCH: usize = 4_096;

fn main() {
    let rows: usize = env("ACP_BENCH_ROWS", 50_000);
    let reps: usize = env("ACP_BENCH_REPS", 3).max(1);
    let batch: usize = env("ACP_BENCH_BATCH", DEFAULT_BATCH).max(1);
    let server = pg::TestPg::start();
    let mut best = 0f64;
    for rep in 0..reps {
        // A fresh database per run, so no run pays for the previous one's rows.
        let url = server.create_database(&format!("bench_{rep}"));
        let rate = pg_rate(&url, rows, batch);
        println!("run {rep}: PostgreSQL ingestion {rate:>8.0} pairs/s");
        best = best.max(rate);
    }
    println!(
        "PostgreSQL spool ingestion (Begin+End pairs, batch {batch}): {best:>10.0} pairs/s (best of {reps})"
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pairs per second applied from a spool holding `rows` of them.
fn pg_rate(url: &str, rows: usize, batch: usize) -> f64 {
    let mut store = PgStore::connect(url).expect("connect");
    store.migrate().expect("migrate");
    let dir = tempfile::tempdir().expect("tempdir");
    let opened = PgIngester::open(
        &mut store,
        "bench",
        SpoolConfig::in_dir(dir.path()),
        batch,
        Arc::new(Doorbell::default()),
    )
    .expect("open");
    let mut ingester = opened.ingester;
    for i in 0..rows {
        let id = format!("req-{i:08}");
        ingester
            .spool()
            .append(&Record::Begin(Box::new(prelog(&id, i))))
            .expect("begin");
        ingester
            .spool()
            .append(&Record::End {
                request_id: id,
                row: Box::new(finalize(i)),
            })
            .expect("end");
    }
    let started = Instant::now();
    let applied = ingester
        .drain(&mut store, "2026-12-07T12:00:00.000Z")
        .expect("drain");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied as usize, 2 * rows);
    let n: i64 = store
        .client()
        .query_one(
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(n as usize, rows, "every pair applied once");
    rows as f64 / secs
}

/// A pre-log as the data path writes it; a few models and clients so `daily_usage` has
/// several buckets, as on a real replica.
fn prelog(id: &str, i: usize) -> PreLogRow {
    PreLogRow {
        request_id: id.to_owned(),
        provider: "anthropic".into(),
        model: ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"][i % 3].into(),
        tool: "claude-code".into(),
        client_id: format!("claude-code-{:08x}", i % 17),
        agent: Some("builder".into()),
        user_agent: Some("claude-cli/2.1.37 (external, cli)".into()),
        source_ip: Some("127.0.0.1".into()),
        msg_id: None,
        path: "/v1/messages".into(),
        streamed: true,
        proxy_api_key_id: None,
        started_at: "2026-12-07T10:00:00.000Z".into(),
        meta_json: PreLogRow::meta("POST", Some("cli"), Some("5f0c2a4e")),
    }
}

fn finalize(i: usize) -> FinalizeRow {
    let prompt = 1_000 + (i % 500) as u64;
    let tokens = TokenColumns {
        prompt_tokens: prompt,
        completion_tokens: 300,
        cache_read_tokens: 2_000,
        cache_creation_tokens: 100,
        total_tokens: prompt + 2_400,
        ..TokenColumns::default()
    };
    FinalizeRow {
        id: 0,
        lifecycle_status: Terminal::Completed,
        actual_model: Some("claude-sonnet-4-5-20250929".into()),
        actual_provider: Some("anthropic".into()),
        proxy_api_key_id: None,
        streamed: true,
        status: Some(200),
        tokens,
        usage_incomplete: false,
        cost_nanousd: 8_100_000 + i as u64,
        cost_status: CostStatus::Ok,
        error_code: None,
        error_message: None,
        latency_ms: Some(420),
        now: "2026-12-07T10:00:01.000Z".into(),
        meta_json: r#"{"method":"POST","originator":"cli","session_id":"5f0c2a4e","usage_convention":"anthropic","attempts":1}"#.into(),
        audit: AuditInfo {
            model: Some("claude-sonnet-4-5".into()),
            provider: Some("anthropic".into()),
            source: "pricing".into(),
        },
    }
}
