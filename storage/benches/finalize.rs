//! Sustained finalize throughput: group commit through the writer thread versus one
//! transaction per row on a plain connection, in the same run, on a temp-dir file.
//!
//! `cargo bench -p agent-cli-proxy-storage --bench finalize` (rows via `ACP_BENCH_ROWS`).

#![allow(clippy::expect_used)] // a benchmark binary: aborting on a setup failure is the point

use std::time::Instant;

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::{
    AuditInfo, CostStatus, DbPath, FinalizeRow, Op, PreLogRow, Reply, Store, Terminal, Writer,
    WriterConfig,
};
use futures_lite::future::block_on;

fn main() {
    let rows: usize = std::env::var("ACP_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("tempdir");

    let per_row = {
        let path = DbPath::File(dir.path().join("per_row.db"));
        let (mut store, _) = Store::open_and_migrate(&path).expect("open");
        let ids = prelog_all(&mut store, rows);
        let start = Instant::now();
        for id in ids {
            store
                .execute(Op::Finalize(Box::new(finalize(id))))
                .expect("finalize");
        }
        rows as f64 / start.elapsed().as_secs_f64()
    };

    let grouped = {
        let path = DbPath::File(dir.path().join("grouped.db"));
        let (mut store, _) = Store::open_and_migrate(&path).expect("open");
        let ids = prelog_all(&mut store, rows);
        let (handle, join) =
            Writer::spawn_with_store(store, WriterConfig::default()).expect("spawn");
        let start = Instant::now();
        block_on(async {
            // Keep up to 1 024 commands in flight, like many concurrent exchanges.
            let mut window = std::collections::VecDeque::new();
            for id in ids {
                if window.len() >= 1024 {
                    let p: agent_cli_proxy_storage::PendingReply =
                        window.pop_front().expect("non-empty");
                    assert_eq!(p.await.expect("reply"), Reply::Finalized(true));
                }
                window.push_back(
                    handle
                        .submit(Op::Finalize(Box::new(finalize(id))))
                        .await
                        .expect("submit"),
                );
            }
            for p in window {
                assert_eq!(p.await.expect("reply"), Reply::Finalized(true));
            }
        });
        let rate = rows as f64 / start.elapsed().as_secs_f64();
        let stats = handle.stats().clone();
        block_on(handle.shutdown()).expect("shutdown");
        join.join().expect("join");
        println!(
            "group commit: {} commands in {} batches (mean {:.1} per batch)",
            stats.commands(),
            stats.batches(),
            stats.commands() as f64 / stats.batches().max(1) as f64
        );
        rate
    };

    println!("finalize, one transaction per row: {per_row:>10.0} rows/s");
    println!("finalize, group commit (writer):   {grouped:>10.0} rows/s");
    println!("ratio: {:.1}x", grouped / per_row);
}

fn prelog_all(store: &mut Store, rows: usize) -> Vec<i64> {
    (0..rows)
        .map(|i| {
            let row = PreLogRow {
                request_id: format!("r-{i}"),
                provider: "anthropic".into(),
                model: format!("model-{}", i % 8),
                tool: "claude-code".into(),
                client_id: "claude-code".into(),
                path: "/v1/messages".into(),
                streamed: true,
                started_at: format!("2026-05-0{}T10:00:00.000Z", 1 + i % 7),
                meta_json: r#"{"method":"POST","originator":null,"session_id":null}"#.into(),
                ..PreLogRow::default()
            };
            match store.execute(Op::PreLog(Box::new(row))).expect("prelog") {
                Reply::RowId(id) => id,
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

fn finalize(id: i64) -> FinalizeRow {
    let tokens = TokenColumns {
        prompt_tokens: 2000,
        completion_tokens: 812,
        cache_read_tokens: 50_000,
        cache_creation_tokens: 10_000,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
        total_tokens: 62_812,
    };
    FinalizeRow {
        id,
        lifecycle_status: Terminal::Completed,
        actual_model: Some("claude-sonnet-4".into()),
        actual_provider: Some("anthropic".into()),
        proxy_api_key_id: None,
        streamed: true,
        status: Some(200),
        tokens,
        usage_incomplete: false,
        cost_nanousd: 12_345_678,
        cost_status: CostStatus::Ok,
        error_code: None,
        error_message: None,
        latency_ms: Some(1234),
        now: "2026-05-04T10:00:05.000Z".into(),
        meta_json: r#"{"method":"POST","originator":null,"session_id":null,"usage_convention":"anthropic","attempts":1,"stream_usage_injected":false}"#.into(),
        audit: AuditInfo {
            model: Some("claude-sonnet-4".into()),
            provider: Some("anthropic".into()),
            source: "pricing".into(),
        },
    }
}
