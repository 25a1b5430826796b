//! Spool ingestion throughput (`docs/spool.md` §4): `Begin`+`End` pairs appended to the spool,
//! then applied to SQLite by the ingester in batches, on a temp-dir file. The baseline in the
//! same run is the previous data path: a pre-log and a finalize per call through the writer's
//! group commit, without the spool.
//!
//! `cargo bench -p agent-cli-proxy-storage --bench ingest` (`ACP_BENCH_ROWS` pairs, default
//! 50 000; `ACP_BENCH_REPS`, default 3, best kept). Also reports the append cost per record
//! on the data path's side and the ingesting thread's CPU time per row (from
//! `/proc/thread-self`), which other load on the machine does not inflate. The connection is
//! set up as the daemon's ingester has it, on the tokio build's allocator.

#![allow(clippy::expect_used)] // a benchmark binary: aborting on a setup failure is the point

// The production daemon's allocator (`shell-tokio/src/main.rs`), which its ingesting thread
// runs on; the smol build keeps the system's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::ingest::{IngestConfig, Ingester, applied_seq};
use agent_cli_proxy_storage::spool::{Doorbell, Record, Spool, SpoolConfig};
use agent_cli_proxy_storage::{
    AuditInfo, CostStatus, DbPath, FinalizeRow, Op, PreLogRow, Reply, Store, Terminal, Writer,
    WriterConfig,
};
use futures_lite::future::block_on;

fn main() {
    let rows: usize = env("ACP_BENCH_ROWS", 50_000);
    let reps: usize = env("ACP_BENCH_REPS", 3).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut spool_best, mut writer_best, mut append_best) = (0f64, 0f64, f64::INFINITY);
    let mut cpu_best: Option<Cpu> = None;
    for rep in 0..reps {
        let (rate, append_ns, cpu) = spool_rate(&dir.path().join(format!("s{rep}")), rows);
        let base = writer_rate(&dir.path().join(format!("w{rep}.db")), rows);
        println!(
            "run {rep}: spool ingestion {rate:>8.0} rows/s, writer (pre-log + finalize) {base:>8.0} rows/s"
        );
        spool_best = spool_best.max(rate);
        writer_best = writer_best.max(base);
        append_best = append_best.min(append_ns);
        if let Some(cpu) = cpu {
            cpu_best = Some(match cpu_best {
                Some(best) if best.total() <= cpu.total() => best,
                _ => cpu,
            });
        }
    }
    println!("spool ingestion (Begin+End pairs): {spool_best:>10.0} rows/s (best of {reps})");
    println!("writer group commit (baseline):    {writer_best:>10.0} rows/s (best of {reps})");
    println!("ratio: {:.1}x", spool_best / writer_best);
    println!("append on the data path: {append_best:.0} ns per record");
    if let Some(cpu) = cpu_best {
        println!(
            "ingesting thread CPU: {:.2} µs per row ({:.2} user, {:.2} system; ≈ {:.0} rows/s on a free core)",
            cpu.total() * 1e6 / rows as f64,
            cpu.user * 1e6 / rows as f64,
            cpu.system * 1e6 / rows as f64,
            rows as f64 / cpu.total()
        );
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Rows per second applied, the append cost per record, and the ingester's CPU seconds.
fn spool_rate(dir: &std::path::Path, rows: usize) -> (f64, f64, Option<Cpu>) {
    std::fs::create_dir_all(dir).expect("dir");
    let path = DbPath::File(dir.join("acp.db"));
    let mut store = Store::open(&path).expect("open");
    store.migrate().expect("migrate");
    // As the daemon's ingester opens it (the CHECK lists are not evaluated there).
    let conn = store.into_writer_connection().expect("connection");
    let opened = Spool::open(
        SpoolConfig::in_dir(dir.join("spool")),
        applied_seq(&conn).expect("position"),
        Arc::new(Doorbell::default()),
    )
    .expect("spool");
    let started = Instant::now();
    for _ in 0..rows {
        let id = request_id();
        opened
            .spool
            .append(&Record::Begin(Box::new(prelog(&id))))
            .expect("begin");
        opened
            .spool
            .append(&Record::End {
                request_id: id,
                row: Box::new(finalize()),
            })
            .expect("end");
    }
    let append_ns = started.elapsed().as_nanos() as f64 / (2 * rows) as f64;
    let mut ingester = Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig {
            batch: 4_096,
            max_delay: Duration::from_millis(50),
        },
    );
    let cpu0 = thread_cpu();
    let started = Instant::now();
    ingester.drain(&conn).expect("drain");
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_cpu().zip(cpu0).map(|(b, a)| Cpu {
        user: b.user - a.user,
        system: b.system - a.system,
    });
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n as usize, rows, "every pair applied once");
    (rows as f64 / secs, append_ns, cpu)
}

fn writer_rate(file: &std::path::Path, rows: usize) -> f64 {
    let (writer, join) =
        Writer::spawn(&DbPath::File(file.to_path_buf()), WriterConfig::default()).expect("writer");
    let started = Instant::now();
    // 64 calls in flight, as many concurrent exchanges would have.
    for chunk in (0..rows).collect::<Vec<_>>().chunks(64) {
        let pending: Vec<_> = chunk
            .iter()
            .map(|_| {
                block_on(writer.submit(Op::PreLog(Box::new(prelog(&request_id())))))
                    .expect("submit")
            })
            .collect();
        let ids: Vec<i64> = pending
            .into_iter()
            .map(|p| match block_on(p).expect("prelog") {
                Reply::RowId(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        let done: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let mut row = finalize();
                row.id = id;
                block_on(writer.submit(Op::Finalize(Box::new(row)))).expect("submit")
            })
            .collect();
        for d in done {
            block_on(d).expect("finalize");
        }
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    block_on(writer.shutdown()).expect("shutdown");
    join.join().expect("join");
    rate
}

/// A request id as the daemon makes them (UUID v7, time-ordered), or with
/// `ACP_BENCH_IDS=v4` as the original did (random: each insert lands on a random page of
/// the `request_id` index).
fn request_id() -> String {
    static RANDOM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *RANDOM.get_or_init(|| std::env::var("ACP_BENCH_IDS").is_ok_and(|v| v == "v4")) {
        uuid::Uuid::new_v4().to_string()
    } else {
        uuid::Uuid::now_v7().to_string()
    }
}

fn prelog(id: &str) -> PreLogRow {
    PreLogRow {
        request_id: id.to_owned(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        tool: "claude-code".into(),
        client_id: "claude-code-5f0c2a4e".into(),
        user_agent: Some("claude-cli/2.1.37 (external, cli)".into()),
        path: "/v1/messages".into(),
        streamed: true,
        started_at: "2026-12-07T10:00:00.000Z".into(),
        meta_json: r#"{"method":"POST","originator":null,"session_id":"5f0c2a4e"}"#.into(),
        ..PreLogRow::default()
    }
}

fn finalize() -> FinalizeRow {
    let tokens = TokenColumns {
        prompt_tokens: 1_200,
        completion_tokens: 300,
        total_tokens: 1_500,
        ..TokenColumns::default()
    };
    FinalizeRow {
        id: 0,
        lifecycle_status: Terminal::Completed,
        actual_model: Some("claude-sonnet-4-5".into()),
        actual_provider: Some("anthropic".into()),
        proxy_api_key_id: None,
        streamed: true,
        status: Some(200),
        tokens,
        usage_incomplete: false,
        cost_nanousd: 8_100_000,
        cost_status: CostStatus::Ok,
        error_code: None,
        error_message: None,
        latency_ms: Some(420),
        now: "2026-12-07T10:00:01.000Z".into(),
        meta_json: r#"{"method":"POST","usage_convention":"anthropic","attempts":1}"#.into(),
        audit: AuditInfo {
            model: Some("claude-sonnet-4-5".into()),
            provider: Some("anthropic".into()),
            source: "pricing".into(),
        },
    }
}

/// CPU seconds of a thread, in user space and in the kernel (its WAL and checkpoint writes).
#[derive(Debug, Clone, Copy)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// CPU seconds of the calling thread (Linux), from `/proc/thread-self/stat`.
fn thread_cpu() -> Option<Cpu> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some(Cpu {
        user: ticks(11)? / 100.0,
        system: ticks(12)? / 100.0,
    })
}
