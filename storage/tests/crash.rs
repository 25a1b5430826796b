//! Crash safety (issue 3, "done when"): a child process writes pending rows and finalizes them
//! through the writer thread in a loop, reporting every committed finalize on stdout after
//! its reply; the parent SIGKILLs it at seeded random points, reopens, runs boot recovery and
//! checks that no row is pending, every reported row is intact (exact columns), the database
//! passes `integrity_check`, and `daily_usage` equals the aggregate of non-pending rows.
//!
//! The child is this test binary re-executed with `ACP_STORAGE_CHILD=1`, running only
//! `child_writer_loop` (which returns at once in a normal run). `ACP_CRASH_SEED` replays a
//! seed; the seed in use is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::{
    AuditInfo, CostStatus, DbPath, FinalizeRow, Op, PendingReply, Reply, Store, Terminal, Writer,
    WriterConfig,
};
use futures_lite::future::block_on;
use helpers::*;

const CHILD_ENV: &str = "ACP_STORAGE_CHILD";
const DB_ENV: &str = "ACP_STORAGE_DB";
const ITERATIONS: usize = 24;
/// Rows pre-logged and finalized per round of the child (in flight together, so the writer
/// commits them in groups).
const ROUND: usize = 16;
/// A child left running by a dead parent stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
const REPORT: &str = "FINALIZED ";

/// The child: returns at once unless selected by the parent.
#[test]
fn child_writer_loop() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("1") {
        return;
    }
    let db = std::env::var(DB_ENV).expect("ACP_STORAGE_DB");
    let path = DbPath::File(db.into());
    let (handle, _join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let started = Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        let prelogs: Vec<PendingReply> = (0..ROUND)
            .map(|_| {
                seq += 1;
                let row = prelog_row(seq);
                block_on(handle.submit(Op::PreLog(Box::new(row)))).unwrap()
            })
            .collect();
        let ids: Vec<i64> = prelogs
            .into_iter()
            .map(|p| match block_on(p).unwrap() {
                Reply::RowId(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        for &id in &ids {
            // Fire-and-forget, as the data path does; a full queue may drop it.
            let _ = handle.try_send(Op::CheckpointUsage {
                id,
                tokens: checkpoint_tokens(id),
            });
        }
        let finals: Vec<(i64, PendingReply)> = ids
            .iter()
            .map(|&id| {
                let op = Op::Finalize(Box::new(expected_finalize(id)));
                (id, block_on(handle.submit(op)).unwrap())
            })
            .collect();
        for (id, pending) in finals {
            if block_on(pending).unwrap() == Reply::Finalized(true) {
                // One write of a short line: a pipe write under PIPE_BUF is atomic, so the
                // parent never sees a torn id.
                let line = format!("{REPORT}{id}\n");
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).unwrap();
                out.flush().unwrap();
            }
        }
    }
}

#[test]
fn sigkill_at_random_points_loses_no_finalized_row() {
    let seed = std::env::var("ACP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed: {seed} (replay with ACP_CRASH_SEED={seed})");
    let mut rng = SplitMix(seed);
    let (_dir, path) = temp_db();
    let db_file = path.file().unwrap().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut reported: Vec<i64> = Vec::new();
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args([
                "child_writer_loop",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env(DB_ENV, &db_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || read_reports(stdout));
        // Kill points spread over start-up (open, migrate) and the write loop.
        let delay = 5 + rng.next() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let ids = reader.join().unwrap();

        let mut store = migrated(&path);
        let Reply::Count(recovered) = store
            .execute(Op::BootRecovery {
                now: "2026-05-10T00:00:00.000Z".into(),
                recoster: flat(3),
            })
            .unwrap()
        else {
            panic!("boot recovery reply");
        };
        let ctx = format!("seed {seed}, iteration {iteration}, delay {delay} ms");
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
            ),
            0,
            "{ctx}"
        );
        assert_eq!(store.integrity_check().unwrap(), "ok", "{ctx}");
        for &id in &ids {
            assert_intact(&store, id, &ctx);
        }
        assert_aggregate(&store);
        reported.extend(&ids);
        println!(
            "iteration {iteration}: killed after {delay} ms, {} finalized reported, {recovered} recovered",
            ids.len()
        );
    }
    // Later children and recoveries must not have touched earlier rows.
    let store = migrated(&path);
    for &id in &reported {
        assert_intact(&store, id, &format!("seed {seed}, final check"));
    }
    assert!(
        !reported.is_empty(),
        "seed {seed}: no child ever finalized a row; the kill points missed the write loop"
    );
}

fn read_reports(stdout: std::process::ChildStdout) -> Vec<i64> {
    let mut reader = BufReader::new(stdout);
    let mut ids = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Only complete lines count; the harness's own output is ignored.
        let Some(text) = line.strip_suffix(b"\n") else {
            break;
        };
        if let Some(id) = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.strip_prefix(REPORT))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids
}

const PROVIDERS: [(&str, &str); 3] = [
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-5"),
    ("anthropic", "claude-haiku"),
];

/// The pre-logged row of the child's `seq`-th request; its provider, model and day follow
/// from `seq`, which the parent reads back from `request_id`.
fn prelog_row(seq: u64) -> agent_cli_proxy_storage::PreLogRow {
    let (provider, model) = PROVIDERS[(seq % 3) as usize];
    let day = 4 + seq % 2;
    let mut row = prelog(
        provider,
        model,
        &format!("2026-05-0{day}T10:00:{:02}.000Z", seq % 60),
    );
    row.request_id = format!("crash-{seq}-{}", std::process::id());
    row
}

fn checkpoint_tokens(id: i64) -> TokenColumns {
    tokens(id as u64 % 100 + 1, 0)
}

/// The finalize of row `id`: every column a function of the id, so the parent can rebuild it.
fn expected_finalize(id: i64) -> FinalizeRow {
    let n = id as u64;
    let t = TokenColumns {
        prompt_tokens: 1_000 + n,
        completion_tokens: 200 + n % 50,
        cache_read_tokens: n % 7,
        cache_creation_tokens: n % 11,
        cache_write_1h_tokens: n % 5 % (n % 11 + 1),
        reasoning_tokens: n % 3,
        total_tokens: 1_200 + n + n % 50 + n % 7 + n % 11,
    };
    let lifecycle = [Terminal::Completed, Terminal::Error, Terminal::Aborted][(n % 3) as usize];
    let cost = 13 * t.total_tokens;
    FinalizeRow {
        id,
        lifecycle_status: lifecycle,
        actual_model: Some(format!("actual-{}", n % 4)),
        actual_provider: Some("anthropic".into()),
        proxy_api_key_id: None,
        streamed: n.is_multiple_of(2),
        status: Some(if lifecycle == Terminal::Completed {
            200
        } else {
            499
        }),
        tokens: t,
        usage_incomplete: lifecycle != Terminal::Completed,
        cost_nanousd: cost,
        cost_status: CostStatus::Ok,
        error_code: (lifecycle != Terminal::Completed).then(|| "aborted".to_owned()),
        error_message: (lifecycle != Terminal::Completed).then(|| format!("err {id}")),
        latency_ms: Some(id % 1000),
        now: format!("2026-05-06T00:00:{:02}.000Z", n % 60),
        meta_json: format!(
            r#"{{"method":"POST","usage_convention":"anthropic","attempts":{},"stream_usage_injected":false}}"#,
            n % 3 + 1
        ),
        audit: AuditInfo {
            model: Some("priced".into()),
            provider: Some("anthropic".into()),
            source: "pricing".into(),
        },
    }
}

fn assert_intact(store: &Store, id: i64, ctx: &str) {
    let f = expected_finalize(id);
    let row = store
        .log_by_id(id)
        .unwrap()
        .unwrap_or_else(|| panic!("{ctx}: reported row {id} is missing"));
    let seq: u64 = row
        .request_id
        .as_deref()
        .and_then(|r| r.split('-').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ctx}: row {id} request_id {:?}", row.request_id));
    let pre = prelog_row(seq);
    let t = &f.tokens;
    let got = (
        (
            row.provider.as_str(),
            row.model.as_str(),
            row.started_at.as_str(),
        ),
        (
            row.lifecycle_status.as_str(),
            row.status,
            row.incomplete,
            row.usage_incomplete,
        ),
        (
            row.actual_model.as_deref(),
            row.actual_provider.as_deref(),
            row.streamed,
        ),
        (
            row.prompt_tokens,
            row.completion_tokens,
            row.cache_read_tokens,
            row.cache_creation_tokens,
            row.cache_write_1h_tokens,
            row.reasoning_tokens,
            row.total_tokens,
        ),
        (row.cost_nanousd, row.cost_usd, row.cost_status.as_str()),
        (
            row.error_code.as_deref(),
            row.error_message.as_deref(),
            row.latency_ms,
        ),
        (row.finished_at.as_deref(), row.finalized_at.as_deref()),
        row.meta_json.as_deref(),
    );
    let cost = f.cost_nanousd as i64;
    let want = (
        (
            pre.provider.as_str(),
            pre.model.as_str(),
            pre.started_at.as_str(),
        ),
        (
            f.lifecycle_status.as_str(),
            f.status,
            i64::from(f.lifecycle_status != Terminal::Completed),
            i64::from(f.usage_incomplete),
        ),
        (
            f.actual_model.as_deref(),
            f.actual_provider.as_deref(),
            i64::from(f.streamed),
        ),
        (
            Some(t.prompt_tokens as i64),
            Some(t.completion_tokens as i64),
            Some(t.cache_read_tokens as i64),
            Some(t.cache_creation_tokens as i64),
            t.cache_write_1h_tokens as i64,
            Some(t.reasoning_tokens as i64),
            Some(t.total_tokens as i64),
        ),
        (cost, Some(cost as f64 / 1e9), "ok"),
        (
            f.error_code.as_deref(),
            f.error_message.as_deref(),
            f.latency_ms,
        ),
        (Some(f.now.as_str()), Some(f.now.as_str())),
        Some(f.meta_json.as_str()),
    );
    assert_eq!(got, want, "{ctx}: row {id}");
    let audits = store.cost_audit(id).unwrap().unwrap();
    assert_eq!(audits.len(), 1, "{ctx}: audits of row {id}");
    assert_eq!(
        audits[0].cost_nanousd,
        Some(cost),
        "{ctx}: audit of row {id}"
    );
}

/// SplitMix64: a tiny seeded generator, so a failing run can be replayed from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
