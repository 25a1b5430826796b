//! CI-17 (RQ-D1, RQ-D3) and its soak form SK-2: `kill -9` the daemon while SSE streams are
//! in flight, at a seeded random instant, restart it on the same database, and check the
//! durability promise with the fake upstream's ledger as the oracle:
//!
//! * `PRAGMA integrity_check` is `ok` and no row is `pending`;
//! * every request the upstream received has exactly one row (matched by `msg_id`);
//! * every client that received the terminal event has a `completed` row with the exact
//!   token counts the upstream reported for it and the exact cost of those tokens.
//!
//! Each stream gets its own usage, event count and pacing from the seed, so a kill lands
//! before the pre-log commit for some streams, mid-stream for others and during or after
//! the finalize of the rest. Set `ACP_TEST_SEED` to replay a run.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::wait_prices_loaded;
use agent_cli_proxy_tests::support::client::SseRequest;
use agent_cli_proxy_tests::support::client::{SseOutcome, print_duration_figure, print_figure};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::ledger::{Ledger, check_rows_against_ledger_from};
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::seed;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;

agent_cli_proxy_tests::child_entry!();

const STREAM: &[u8] = br#"{"model":"claude-sonnet-4-5","stream":true,"messages":[]}"#;
/// Kill instants are drawn from [0, 3 s] after the streams are started.
const KILL_WINDOW_MS: u64 = 3_000;
/// Prices of `claude-sonnet-4-5` in the harness's pricing fixture, in nano-USD per token.
const INPUT_NANOUSD: i64 = 3_000;
const OUTPUT_NANOUSD: i64 = 15_000;
/// RQ-D4: `/health` answers within 3 s of the restart.
const HEALTH_TARGET: Duration = Duration::from_secs(3);

both_shells! {
    /// CI-17: 10 iterations of 100 in-flight streams, each killed at a random instant in
    /// [0, 3 s] and restarted on the same database; RQ-D3 holds after every restart.
    async fn kill9_loop_loses_no_row_and_leaves_none_pending(shell: Shell) {
        kill_loop(shell, "CI-17", 10, 100..=100, &[]).await;
    }

    /// `docs/spool.md` §7: the same loop with one record per ingestion batch and no delay, so
    /// the kill lands while the ingester is applying the spool: nothing lost, nothing applied
    /// twice, nothing pending, `daily_usage` equal to the rows' aggregate.
    async fn kill9_during_ingestion_loses_and_doubles_nothing(shell: Shell) {
        kill_loop(
            shell,
            "SPOOL-KILL",
            4,
            60..=60,
            &[("SPOOL_INGEST_BATCH", "1"), ("SPOOL_INGEST_MAX_DELAY_MS", "1")],
        )
        .await;
    }

    /// SK-2: the same loop for `ACP_KILL_ITERATIONS` (default 1 000) iterations with 50 to
    /// 200 streams in flight each time.
    #[ignore = "soak tier: ACP_KILL_ITERATIONS (default 1000) kill -9 iterations"]
    async fn soak_kill9_loop(shell: Shell) {
        let iterations = std::env::var("ACP_KILL_ITERATIONS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1_000);
        kill_loop(shell, "SK-2", iterations, 50..=200, &[]).await;
    }
}

/// One planned stream: its id, shape and the usage the upstream reports for it.
#[derive(Clone, Debug)]
struct Plan {
    id: String,
    events: u64,
    delay_ms: u64,
    input: i64,
    output: i64,
}

impl Plan {
    fn request(&self, proxy: &ProxyProcess) -> SseRequest {
        let usage = format!(
            r#"{{"input_tokens":{},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{}}}"#,
            self.input, self.output
        );
        SseRequest::post(proxy.addr(), "/v1/messages", STREAM)
            .header("x-request-id", &self.id)
            .header("x-fake-events", &self.events.to_string())
            .header("x-fake-delay-ms", &self.delay_ms.to_string())
            .header("x-fake-usage", &usage)
            .timeout(Duration::from_secs(20))
    }
}

/// Totals over the loop, printed as figures at the end.
#[derive(Default)]
struct Totals {
    streams: usize,
    terminal_seen: usize,
    upstream_requests: usize,
    rows_checked: usize,
    slowest_recovery: Duration,
}

async fn kill_loop(
    shell: Shell,
    id: &str,
    iterations: usize,
    in_flight: RangeInclusive<usize>,
    env: &[(&str, &str)],
) {
    let seed = seed(&format!("{id} {shell}"));
    let mut rng = fastrand::Rng::with_seed(seed);
    let upstream = FakeUpstream::start();
    let url = upstream.url();
    let mut vars = vec![("CLI_PROXY_API_URL", url.as_str())];
    vars.extend_from_slice(env);
    let proxy = ProxyProcess::start(shell, &vars);
    let addr = proxy.addr();
    tokio::task::spawn_blocking(move || wait_prices_loaded(addr, &[]))
        .await
        .expect("join");
    let mut proxy = Some(proxy);
    let mut totals = Totals::default();
    let started = Instant::now();
    for iteration in 0..iterations {
        let n = rng.usize(in_flight.clone());
        let plans: Vec<Plan> = (0..n)
            .map(|i| Plan {
                id: format!("crash-{iteration}-{i}"),
                events: rng.u64(0..=8),
                delay_ms: rng.u64(0..=250),
                input: rng.i64(1..=200_000),
                output: rng.i64(1..=64_000),
            })
            .collect();
        let kill_at = Duration::from_millis(rng.u64(0..=KILL_WINDOW_MS));
        // Earlier iterations' requests were checked after their own restart.
        let ledger_start = upstream.ledger().len();
        let live = proxy.take().expect("proxy");
        let clients: Vec<_> = plans
            .iter()
            .map(|plan| tokio::spawn(plan.request(&live).send()))
            .collect();
        tokio::time::sleep(kill_at).await;
        let mut killed = tokio::task::spawn_blocking(move || {
            let mut live = live;
            live.kill9();
            live
        })
        .await
        .expect("join");
        let mut outcomes: Vec<Option<SseOutcome>> = Vec::with_capacity(n);
        for client in clients {
            outcomes.push(client.await.expect("join").ok());
        }
        let (restarted, recovery) = tokio::task::spawn_blocking(move || {
            killed.restart();
            let recovery = killed.healthy_after().unwrap_or_default();
            wait_prices_loaded(killed.addr(), &[]);
            (killed, recovery)
        })
        .await
        .expect("join");
        killed = restarted;
        totals.slowest_recovery = totals.slowest_recovery.max(recovery);

        let problems = check_iteration(
            &killed,
            upstream.ledger(),
            ledger_start,
            &plans,
            &outcomes,
            &mut totals,
        );
        assert!(
            problems.is_empty(),
            "iteration {iteration} (kill at {kill_at:?}, seed {seed}):\n{}\nlogs:\n{}",
            problems.join("\n"),
            tail(&killed.logs(), 40)
        );
        totals.streams += n;
        proxy = Some(killed);
    }
    let elapsed = started.elapsed();
    assert!(
        totals.terminal_seen < totals.streams,
        "no kill interrupted a stream (seed {seed}): the loop tested nothing"
    );
    println!(
        "{id} {shell}: {iterations} iterations, {} streams, {} saw the terminal event, {} upstream requests, {} rows checked, 0 lost, 0 pending, in {:.1} s",
        totals.streams,
        totals.terminal_seen,
        totals.upstream_requests,
        totals.rows_checked,
        elapsed.as_secs_f64()
    );
    print_figure(
        &format!("{id}-iterations"),
        shell,
        iterations as f64,
        iterations as f64,
    );
    print_figure(&format!("{id}-rows-lost"), shell, 0.0, 0.0);
    print_figure(
        &format!("{id}-rows-checked"),
        shell,
        totals.rows_checked as f64,
        totals.rows_checked as f64,
    );
    let within_gate = print_duration_figure(
        &format!("{id}-recovery-to-health"),
        shell,
        totals.slowest_recovery,
        HEALTH_TARGET,
    );
    // The CI tier gates timings at 10 × their target (shared machines); the soak tier
    // holds RQ-D4 itself.
    let within = if id.starts_with("SK") {
        totals.slowest_recovery <= HEALTH_TARGET
    } else {
        within_gate
    };
    assert!(
        within,
        "restart to /health took {:?}",
        totals.slowest_recovery
    );
}

/// RQ-D3 after one restart: returns every broken invariant.
fn check_iteration(
    proxy: &ProxyProcess,
    ledger: &Ledger,
    ledger_start: usize,
    plans: &[Plan],
    outcomes: &[Option<SseOutcome>],
    totals: &mut Totals,
) -> Vec<String> {
    let mut problems =
        check_rows_against_ledger_from(&proxy.open_db_readonly(), ledger, ledger_start);
    problems.extend(db::aggregate_mismatches(&proxy.db_path()));
    let prefix = plans
        .first()
        .map(|p| {
            p.id.rsplit_once('-')
                .map_or("", |(head, _)| head)
                .to_owned()
        })
        .unwrap_or_default();
    let received = ledger
        .entries_from(ledger_start)
        .iter()
        .filter(|e| {
            e.request_id
                .as_deref()
                .is_some_and(|id| id.rsplit_once('-').is_some_and(|(head, _)| head == prefix))
        })
        .count();
    totals.upstream_requests += received;
    totals.rows_checked += received;
    for (plan, outcome) in plans.iter().zip(outcomes) {
        let Some(outcome) = outcome else {
            continue;
        };
        if !outcome.terminal_seen {
            continue;
        }
        totals.terminal_seen += 1;
        totals.rows_checked += 1;
        let rows = db::rows_by_msg_id(&proxy.db_path(), &plan.id);
        let [row] = rows.as_slice() else {
            problems.push(format!(
                "{}: saw the terminal event but has {} rows",
                plan.id,
                rows.len()
            ));
            continue;
        };
        let cost = plan.input * INPUT_NANOUSD + plan.output * OUTPUT_NANOUSD;
        let want = [
            ("lifecycle_status", serde_json::json!("completed")),
            ("status", serde_json::json!(200)),
            ("prompt_tokens", serde_json::json!(plan.input)),
            ("completion_tokens", serde_json::json!(plan.output)),
            ("total_tokens", serde_json::json!(plan.input + plan.output)),
            ("usage_incomplete", serde_json::json!(0)),
            ("cost_nanousd", serde_json::json!(cost)),
            ("cost_status", serde_json::json!("ok")),
        ];
        for (column, value) in want {
            if row[column] != value {
                problems.push(format!(
                    "{}: {column} = {}, want {value}",
                    plan.id, row[column]
                ));
            }
        }
    }
    problems
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
