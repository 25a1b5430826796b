//! Sustained finalize throughput: group commit through the writer thread versus one
//! transaction per row on a plain connection, in the same run, on a temp-dir file.
//!
//! `cargo bench -p agent-cli-proxy-storage --bench finalize` (rows via `ACP_BENCH_ROWS`,
//! repetitions via `ACP_BENCH_REPS`). Each mode runs `ACP_BENCH_REPS` times (default 3) on a
//! fresh database and reports its best rate, so a burst of load from other processes on a
//! shared machine does not decide the figure; the writer thread's CPU time per row (from
//! `/proc`, Linux only) is reported too, which load does not inflate.

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
    let reps: usize = std::env::var("ACP_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut per_row = 0f64;
    let mut grouped = 0f64;
    let mut writer_cpu = f64::INFINITY;
    for rep in 0..reps {
        let pr = per_row_rate(&dir.path().join(format!("per_row-{rep}.db")), rows);
        let (gr, cpu) = grouped_rate(&dir.path().join(format!("grouped-{rep}.db")), rows);
        println!("run {rep}: per-row {pr:>8.0} rows/s, group commit {gr:>8.0} rows/s");
        per_row = per_row.max(pr);
        grouped = grouped.max(gr);
        if let Some(cpu) = cpu {
            writer_cpu = writer_cpu.min(cpu);
        }
    }

    println!("finalize, one transaction per row: {per_row:>10.0} rows/s (best of {reps})");
    println!("finalize, group commit (writer):   {grouped:>10.0} rows/s (best of {reps})");
    println!("ratio: {:.1}x", grouped / per_row);
    if writer_cpu.is_finite() {
        println!(
            "writer thread CPU: {:.1} µs per finalize (≈ {:.0} rows/s on a free core)",
            writer_cpu * 1e6 / rows as f64,
            rows as f64 / writer_cpu
        );
    }
}

fn per_row_rate(file: &std::path::Path, rows: usize) -> f64 {
    {
        let path = DbPath::File(file.to_path_buf());
        let (mut store, _) = Store::open_and_migrate(&path).expect("open");
        let ids = prelog_all(&mut store, rows);
        let start = Instant::now();
        for id in ids {
            store
                .execute(Op::Finalize(Box::new(finalize(id))))
                .expect("finalize");
        }
        rows as f64 / start.elapsed().as_secs_f64()
    }
}

/// The rate with group commit, and the writer thread's CPU seconds when `/proc` tells.
fn grouped_rate(file: &std::path::Path, rows: usize) -> (f64, Option<f64>) {
    {
        let path = DbPath::File(file.to_path_buf());
        let (mut store, _) = Store::open_and_migrate(&path).expect("open");
        let ids = prelog_all(&mut store, rows);
        let (handle, join) =
            Writer::spawn_with_store(store, WriterConfig::default()).expect("spawn");
        // The thread names itself once running; wait for that before the clock starts.
        let cpu_before = (0..1000).find_map(|_| {
            let cpu = writer_cpu_secs();
            if cpu.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            cpu
        });
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
        let cpu = writer_cpu_secs()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        let stats = handle.stats().clone();
        block_on(handle.shutdown()).expect("shutdown");
        join.join().expect("join");
        println!(
            "group commit: {} commands in {} batches (mean {:.1} per batch)",
            stats.commands(),
            stats.batches(),
            stats.commands() as f64 / stats.batches().max(1) as f64
        );
        (rate, cpu)
    }
}

/// User + system CPU seconds of the `acp-sqlite-writer` thread (Linux `/proc`; the kernel
/// truncates thread names to 15 bytes).
fn writer_cpu_secs() -> Option<f64> {
    const TICKS_PER_SEC: f64 = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != "acp-sqlite-writ" {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime + stime) / TICKS_PER_SEC);
    }
    None
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
