//! CI-24: several replicas on one PostgreSQL (`docs/replicas.md` §8), through the real tokio
//! daemon (the smol build has no PostgreSQL backend). Each case starts a throw-away server
//! (`support::pg`), its own database on it, and two replica processes with their own
//! `SPOOL_DIR` and the same `DATABASE_URL`; PostgreSQL is read directly to check the rows.
//!
//! * traffic on both replicas: every row exactly once, served-by replica recorded,
//!   `daily_usage` equal to the rows' aggregate, the admin reads equal on both and equal to
//!   the sum (and the URL's password in no log and no admin answer);
//! * `kill -9` of one replica with streams in flight on both: the other's streams and rows are
//!   untouched (also by the restarted replica's boot recovery), the killed one's spool lands
//!   once and its interrupted calls end `aborted` by its own boot recovery;
//! * a managed key created on one replica works on the other, and its revocation on the other
//!   reaches both within the key cache;
//! * the correlator polls the management API from one replica at a time (the fake tells its
//!   two listeners apart), `/ready` says `standby` on the other, and a `kill -9` of the poller
//!   moves the polling to the other within two ticks;
//! * PostgreSQL stopped for 30 s under steady traffic: no client call fails, `/ready` reports
//!   it, and afterwards every call has exactly one row.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::support::checks::wait_prices_loaded;
use agent_cli_proxy_tests::support::client::{self, SseOutcome, SseRequest, request_blocking};
use agent_cli_proxy_tests::support::mgmt::{FakeManagement, Mode, record};
use agent_cli_proxy_tests::support::pg::TestPg;
use agent_cli_proxy_tests::support::proc::{ProxyProcess, run_child_if_requested};
use agent_cli_proxy_tests::support::shells::{Shell, block_on};
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::Value;
use tempfile::TempDir;

agent_cli_proxy_tests::child_entry!();

/// Prices of `claude-sonnet-4-5` in the harness's pricing fixture, in nano-USD per token.
const SONNET_INPUT_NANOUSD: i64 = 3_000;
const SONNET_OUTPUT_NANOUSD: i64 = 15_000;
/// How long rows may take to reach PostgreSQL once their replica has them in its spool.
const LAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The cases run one after the other: each holds both of the harness's proxy slots (two
/// cases holding one each would wait for each other forever) and a PostgreSQL server, on a
/// 2-core machine.
static ONE_CASE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_case_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CASE_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// One replica: the tokio daemon with `DATABASE_URL` and a spool directory of its own, which
/// outlives restarts (the replica id is kept there).
struct Replica {
    // Dropped first: the process must be gone before its spool directory is removed.
    proxy: ProxyProcess,
    spool: TempDir,
}

impl Replica {
    fn start(database_url: &str, env: &[(&str, &str)]) -> Replica {
        let spool = tempfile::Builder::new()
            .prefix("acp-spool-")
            .tempdir()
            .unwrap();
        let dir = spool.path().display().to_string();
        let mut all = vec![("DATABASE_URL", database_url), ("SPOOL_DIR", dir.as_str())];
        all.extend_from_slice(env);
        let proxy = ProxyProcess::start(Shell::Tokio, &all);
        Replica { proxy, spool }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// `<SPOOL_DIR>/replica-id`, the id its rows carry in `request_logs.replica`.
    fn id(&self) -> String {
        let path = self.spool.path().join("replica-id");
        let id = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; logs:\n{}", path.display(), self.logs()));
        id.trim().to_owned()
    }

    fn logs(&self) -> String {
        tail(&self.proxy.logs(), 60)
    }

    fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let res = request_blocking(self.addr(), "GET", path, headers, b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}; logs:\n{}", self.logs()));
        assert_eq!(res.status, 200, "GET {path}: {}", res.text());
        res.json()
            .unwrap_or_else(|| panic!("GET {path}: not JSON: {}", res.text()))
    }

    /// `/ready` as JSON (its status code says pass/warn versus fail, the body says which).
    fn ready(&self) -> Value {
        let res = request_blocking(self.addr(), "GET", "/ready", &[], b"")
            .unwrap_or_else(|e| panic!("GET /ready: {e}; logs:\n{}", self.logs()));
        res.json()
            .unwrap_or_else(|| panic!("/ready not JSON: {}", res.text()))
    }

    /// The status `/ready` gives loop `name` (`pass`, `warn`, `fail`, `standby`).
    fn loop_status(&self, name: &str) -> Option<String> {
        let ready = self.ready();
        ready["checks"]["supervisor"]["loopHealth"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["status"].as_str())
            .map(str::to_owned)
    }
}

/// A throw-away server and a database of the case's own.
fn server(database: &str) -> (TestPg, String) {
    let pg = TestPg::start();
    let url = pg.create_database(database);
    (pg, url)
}

/// The same URL with a password in it: the server trusts loopback and never asks for it, so
/// the replicas work the same, and the password must then appear in no log and no answer.
fn with_password(url: &str, password: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    )
}

/// Every `request_logs` row whose `msg_id` matches the `LIKE` pattern, as JSON objects keyed by
/// column, oldest first; `Err` while the server cannot be reached.
fn pg_rows(url: &str, msg_id_like: &str) -> Result<Vec<Value>, postgres::Error> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let rows = client.query(
        "SELECT row_to_json(r)::text FROM request_logs r WHERE msg_id LIKE $1 ORDER BY id",
        &[&msg_id_like],
    )?;
    Ok(rows
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect())
}

/// `SELECT COUNT(*) …` (or any single BIGINT) on a fresh connection.
fn pg_count(url: &str, sql: &str) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
    client
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// Rows grouped by `msg_id`.
fn by_msg_id(rows: Vec<Value>) -> BTreeMap<String, Vec<Value>> {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in rows {
        let id = row["msg_id"].as_str().unwrap_or_default().to_owned();
        map.entry(id).or_default().push(row);
    }
    map
}

/// Polls until every id of `ids` has a row and none of the matching rows is pending, then
/// waits 500 ms more and reads again (a second copy of a row would show up by then); panics
/// after [`LAND_TIMEOUT`] with what is missing.
fn wait_landed(url: &str, msg_id_like: &str, ids: &[String]) -> BTreeMap<String, Vec<Value>> {
    let deadline = Instant::now() + LAND_TIMEOUT;
    loop {
        let found = pg_rows(url, msg_id_like).map(by_msg_id).unwrap_or_default();
        let done = ids.iter().all(|id| found.contains_key(id))
            && found
                .values()
                .flatten()
                .all(|r| r["lifecycle_status"] != "pending");
        if done {
            std::thread::sleep(Duration::from_millis(500));
            return pg_rows(url, msg_id_like).map(by_msg_id).unwrap();
        }
        if Instant::now() >= deadline {
            let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
            let pending: Vec<&String> = found
                .iter()
                .filter(|(_, rows)| rows.iter().any(|r| r["lifecycle_status"] == "pending"))
                .map(|(id, _)| id)
                .collect();
            panic!(
                "rows not landed within {LAND_TIMEOUT:?}: missing {missing:?}, pending \
                 {pending:?}; the server's sessions:\n{}",
                sessions(url)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's client sessions (state, what they wait for, their statement), for the
/// message of a case that finds rows missing: a replica stuck on a lock shows here.
fn sessions(url: &str) -> String {
    let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) else {
        return "(server unreachable)".to_owned();
    };
    client
        .query(
            "SELECT json_build_object('pid', pid, 'app', application_name, 'state', state,
               'wait', wait_event_type || ':' || wait_event, 'xact_age',
               (now() - xact_start)::text, 'query', left(query, 160))::text
             FROM pg_stat_activity WHERE backend_type = 'client backend'
               AND pid <> pg_backend_pid()",
            &[],
        )
        .map(|rows| {
            rows.iter()
                .map(|r| r.get::<_, &str>(0).to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|e| format!("(pg_stat_activity: {e})"))
}

/// Where `daily_usage` differs from the aggregate of the finalized rows (`accounting.md`
/// §6.1), in either direction; empty when they agree.
fn aggregate_mismatches(url: &str) -> Vec<String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .query(
            "WITH agg AS (
               SELECT substr(started_at, 1, 10) AS day, provider, model, COUNT(*) AS n,
                 SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c,
                 SUM(total_tokens) AS t, SUM(cost_nanousd) AS cost
               FROM request_logs WHERE lifecycle_status <> 'pending' GROUP BY 1, 2, 3)
             SELECT json_build_object(
               'day', COALESCE(a.day, d.day), 'provider', COALESCE(a.provider, d.provider),
               'model', COALESCE(a.model, d.model), 'rows', a.n, 'daily', d.request_count,
               'rows_tokens', a.t, 'daily_tokens', d.total_tokens,
               'rows_cost', a.cost, 'daily_cost', d.cost_nanousd)::text
             FROM agg a FULL JOIN daily_usage d
               ON d.day = a.day AND d.provider = a.provider AND d.model = a.model
             WHERE a.n IS DISTINCT FROM d.request_count
               OR a.p IS DISTINCT FROM d.prompt_tokens
               OR a.c IS DISTINCT FROM d.completion_tokens
               OR a.t IS DISTINCT FROM d.total_tokens
               OR a.cost IS DISTINCT FROM d.cost_nanousd",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| format!("daily_usage differs from the rows: {}", r.get::<_, &str>(0)))
        .collect()
}

/// One planned call to `/v1/messages`: a JSON call on `claude-haiku-4-5` or an SSE stream on
/// `claude-sonnet-4-5`, with the usage the fake upstream reports for it.
#[derive(Clone, Debug)]
struct Call {
    id: String,
    stream: bool,
    input: i64,
    output: i64,
    /// Content events and the pause before each after the first (a slow stream).
    events: u64,
    delay_ms: u64,
}

impl Call {
    fn new(id: String, stream: bool, input: i64, output: i64) -> Call {
        Call {
            id,
            stream,
            input,
            output,
            events: 3,
            delay_ms: 0,
        }
    }

    fn slow(mut self, events: u64, delay_ms: u64) -> Call {
        self.events = events;
        self.delay_ms = delay_ms;
        self
    }

    fn body(&self) -> &'static [u8] {
        if self.stream {
            br#"{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[]}"#
        } else {
            br#"{"model":"claude-haiku-4-5","max_tokens":16,"messages":[]}"#
        }
    }

    fn usage(&self) -> String {
        format!(
            r#"{{"input_tokens":{},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{}}}"#,
            self.input, self.output
        )
    }

    /// Sends it; `Ok(true)` when the client got the whole answer (status 200 and, for a
    /// stream, the terminal event), `Ok(false)` when it was cut off.
    async fn send(&self, addr: SocketAddr) -> Result<bool, String> {
        let usage = self.usage();
        let events = self.events.to_string();
        let delay = self.delay_ms.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("x-request-id", self.id.as_str()),
            ("x-fake-usage", usage.as_str()),
            ("x-fake-events", events.as_str()),
            ("x-fake-delay-ms", delay.as_str()),
        ];
        if self.stream {
            let mut request = SseRequest::post(addr, "/v1/messages", self.body())
                .timeout(Duration::from_secs(30));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            return match request.send().await {
                Ok(outcome) => Ok(stream_complete(&outcome)),
                Err(_) => Ok(false),
            };
        }
        let res = client::request(addr, "POST", "/v1/messages", &headers, self.body())
            .await
            .map_err(|e| format!("{}: {e}", self.id))?;
        if res.status != 200 {
            return Err(format!("{}: {} {}", self.id, res.status, res.text()));
        }
        let usage = res.json().map(|v| v["usage"].clone()).unwrap_or_default();
        if usage["input_tokens"] != self.input || usage["output_tokens"] != self.output {
            return Err(format!("{}: usage relayed as {usage}", self.id));
        }
        Ok(true)
    }

    /// Checks its one row: final, status 200, the tokens the upstream reported, served by
    /// `replica`; the exact cost for the priced stream model.
    fn check_row(&self, rows: &BTreeMap<String, Vec<Value>>, replica: &str) -> Vec<String> {
        let Some(found) = rows.get(&self.id) else {
            return vec![format!("{}: no row", self.id)];
        };
        let [row] = found.as_slice() else {
            return vec![format!("{}: {} rows instead of 1", self.id, found.len())];
        };
        let mut want = vec![
            ("lifecycle_status", Value::from("completed")),
            ("status", Value::from(200)),
            ("prompt_tokens", Value::from(self.input)),
            ("completion_tokens", Value::from(self.output)),
            ("total_tokens", Value::from(self.input + self.output)),
            ("cost_status", Value::from("ok")),
            ("replica", Value::from(replica)),
        ];
        if self.stream {
            let cost = self.input * SONNET_INPUT_NANOUSD + self.output * SONNET_OUTPUT_NANOUSD;
            want.push(("cost_nanousd", Value::from(cost)));
        }
        want.into_iter()
            .filter(|(column, value)| &row[*column] != value)
            .map(|(column, value)| format!("{}: {column} = {}, want {value}", self.id, row[column]))
            .collect()
    }
}

fn stream_complete(outcome: &SseOutcome) -> bool {
    outcome.status == 200
        && outcome.terminal_seen
        && String::from_utf8_lossy(&outcome.body).contains("message_stop")
}

/// The replica's log events above debug level whose event name contains one of `words`.
fn events_about(replica: &Replica, words: &[&str]) -> String {
    replica
        .proxy
        .log_events()
        .iter()
        .filter(|e| e["level"] != "debug")
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|name| words.iter().any(|w| name.contains(w)))
        })
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sums `field` over the first array in `value` (the answer itself or its first array field).
fn sum_over_array(value: &Value, field: &str) -> i64 {
    let items = value.as_array().or_else(|| {
        value
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_array))
    });
    items
        .map(|a| a.iter().filter_map(|i| i[field].as_i64()).sum())
        .unwrap_or(0)
}

/// a. Calls spread over two replicas (JSON and SSE, concurrently): each has exactly one row,
/// marked with the replica that served it; `daily_usage` equals the rows' aggregate; both
/// replicas answer `/admin/usage/today`, `/admin/usage/models` and `/admin/stats` identically,
/// with the sum of both replicas' calls.
#[test]
fn traffic_on_two_replicas_lands_once_and_both_read_the_sum() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (_pg, url) = server("replicas_traffic");
    let password = "pw-canary-5e1f0c77";
    let secret_url = with_password(&url, password);
    let upstream = FakeUpstream::start();
    let up = upstream.url();
    let env = [("CLI_PROXY_API_URL", up.as_str())];
    let a = Replica::start(&secret_url, &env);
    let b = Replica::start(&secret_url, &env);
    assert_ne!(a.id(), b.id(), "each replica has its own id");
    wait_prices_loaded(a.addr(), &[]);
    wait_prices_loaded(b.addr(), &[]);

    let mut rng = fastrand::Rng::with_seed(24);
    let mut plans: Vec<(usize, Call)> = Vec::new();
    for (r, name) in ["a", "b"].into_iter().enumerate() {
        for i in 0..8 {
            let stream = i % 2 == 0;
            let id = format!("trf-{name}-{i}");
            plans.push((
                r,
                Call::new(id, stream, rng.i64(1..=50_000), rng.i64(1..=8_000)),
            ));
        }
    }
    let addrs = [a.addr(), b.addr()];
    let results = block_on(async {
        let tasks: Vec<_> = plans
            .iter()
            .map(|(r, call)| {
                let (call, addr) = (call.clone(), addrs[*r]);
                tokio::spawn(async move { call.send(addr).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("join"));
        }
        results
    });
    for ((_, call), result) in plans.iter().zip(&results) {
        assert_eq!(result, &Ok(true), "{} did not complete", call.id);
    }

    let ids: Vec<String> = plans.iter().map(|(_, c)| c.id.clone()).collect();
    let rows = wait_landed(&url, "trf-%", &ids);
    let replica_ids = [a.id(), b.id()];
    let problems: Vec<String> = plans
        .iter()
        .flat_map(|(r, call)| call.check_row(&rows, &replica_ids[*r]))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(rows.len(), plans.len(), "no row beyond the calls made");
    assert_eq!(aggregate_mismatches(&url), Vec::<String>::new());
    assert_eq!(
        pg_count(&url, "SELECT COUNT(*) FROM replicas"),
        2,
        "both replicas are registered"
    );

    let calls = plans.len() as i64;
    let tokens: i64 = plans.iter().map(|(_, c)| c.input + c.output).sum();
    for path in ["/admin/usage/today", "/admin/usage/models", "/admin/stats"] {
        let on_a = a.get_json(path, &[]);
        let on_b = b.get_json(path, &[]);
        assert_eq!(on_a, on_b, "{path} differs between the replicas");
    }
    let today = a.get_json("/admin/usage/today", &[]);
    assert_eq!(
        (today["requests"].as_i64(), today["total_tokens"].as_i64()),
        (Some(calls), Some(tokens)),
        "{today}"
    );
    let models = a.get_json("/admin/usage/models", &[]);
    assert_eq!(
        (
            sum_over_array(&models, "request_count"),
            sum_over_array(&models, "total_tokens")
        ),
        (calls, tokens),
        "{models}"
    );
    let stats = a.get_json("/admin/stats", &[]);
    assert_eq!(
        (
            stats["total_requests"].as_i64(),
            stats["total_tokens"].as_i64()
        ),
        (Some(calls), Some(tokens)),
        "{stats}"
    );

    // The password of DATABASE_URL is a secret (`replicas.md` §1).
    for replica in [&a, &b] {
        let config = request_blocking(replica.addr(), "GET", "/admin/config", &[], b"").unwrap();
        assert!(
            !config.text().contains(password),
            "/admin/config: {}",
            config.text()
        );
        assert!(
            !replica.proxy.logs().contains(password),
            "the password is in the logs"
        );
    }
}

/// b. `kill -9` of replica A while both have slow streams in flight; A is restarted on the
/// same `SPOOL_DIR` while B's streams are still running. B's streams end normally with correct
/// rows (A's boot recovery touched none of them); A's finished calls, which were only in its
/// spool when it died, land exactly once; its interrupted streams end `aborted` by its own boot
/// recovery; nothing is left pending and every request the upstream saw has one row.
#[test]
fn kill9_of_one_replica_leaves_the_other_alone_and_recovers_its_own_calls() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (_pg, url) = server("replicas_kill");
    let upstream = FakeUpstream::start();
    let up = upstream.url();
    // A holds its records back for 10 s: what it served before the kill is in its spool only,
    // so the restart must bring it in.
    let a = Replica::start(
        &url,
        &[
            ("CLI_PROXY_API_URL", up.as_str()),
            ("SPOOL_INGEST_MAX_DELAY_MS", "10000"),
        ],
    );
    let b = Replica::start(&url, &[("CLI_PROXY_API_URL", up.as_str())]);
    wait_prices_loaded(a.addr(), &[]);
    wait_prices_loaded(b.addr(), &[]);
    let (a_id, b_id) = (a.id(), b.id());

    let a_done: Vec<Call> = (0..3)
        .map(|i| Call::new(format!("kil-a-done-{i}"), i == 1, 100 + i, 10 + i))
        .collect();
    // A's streams would take 8 s, B's 6 s: A dies at about 1 s and is back before B's end.
    let a_cut: Vec<Call> = (0..4)
        .map(|i| Call::new(format!("kil-a-cut-{i}"), true, 1_000 + i, 200 + i).slow(40, 200))
        .collect();
    let b_streams: Vec<Call> = (0..4)
        .map(|i| Call::new(format!("kil-b-{i}"), true, 2_000 + i, 300 + i).slow(30, 200))
        .collect();

    let a_addr = a.addr();
    let b_addr = b.addr();
    block_on(async {
        for call in &a_done {
            assert_eq!(call.send(a_addr).await, Ok(true), "{}", call.id);
        }
    });
    // Taken out for the kill and the restart, which block (on the blocking pool: B's streams
    // and A's cut ones are read on this runtime meanwhile).
    let mut a_slot = Some(a);
    let (a_cut_results, b_results) = block_on(async {
        let spawn = |calls: &[Call], addr: SocketAddr| -> Vec<_> {
            calls
                .iter()
                .cloned()
                .map(|c| tokio::spawn(async move { c.send(addr).await }))
                .collect()
        };
        let a_tasks = spawn(&a_cut, a_addr);
        let b_tasks = spawn(&b_streams, b_addr);
        let ledger = upstream.ledger();
        let all_sent = ledger
            .wait_until_async(Duration::from_secs(10), |e| {
                e.iter()
                    .filter(|e| {
                        e.request_id
                            .as_deref()
                            .is_some_and(|id| id.starts_with("kil-") && !id.contains("done"))
                    })
                    .count()
                    == 8
            })
            .await;
        assert!(all_sent, "the upstream did not get all eight streams");
        // B's pre-logs reach PostgreSQL within its 50 ms ingest delay: they are pending there
        // when A comes back, which is what A's boot recovery must leave alone.
        let url_b = url.clone();
        let b_pending = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let rows = pg_rows(&url_b, "kil-b-%").unwrap_or_default();
                if rows.len() == 4 && rows.iter().all(|r| r["lifecycle_status"] == "pending") {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .expect("join");
        assert!(b_pending, "B's streams are not pending in PostgreSQL");
        let url_a = url.clone();
        let a_rows = tokio::task::spawn_blocking(move || pg_rows(&url_a, "kil-a-%").unwrap())
            .await
            .expect("join");
        assert_eq!(
            a_rows.len(),
            0,
            "setup: A's rows were meant to be in its spool only"
        );

        let mut killed = a_slot.take().expect("replica A");
        killed = tokio::task::spawn_blocking(move || {
            killed.proxy.kill9();
            killed
        })
        .await
        .expect("join");
        let mut a_results = Vec::new();
        for task in a_tasks {
            a_results.push(task.await.expect("join"));
        }
        a_slot = Some(
            tokio::task::spawn_blocking(move || {
                killed.proxy.restart();
                killed
            })
            .await
            .expect("join"),
        );
        assert!(
            b_tasks.iter().all(|t| !t.is_finished()),
            "B's streams ended before A was back: the case would not test A's boot recovery"
        );
        let mut b_results = Vec::new();
        for task in b_tasks {
            b_results.push(task.await.expect("join"));
        }
        (a_results, b_results)
    });
    let a = a_slot.expect("replica A");

    assert_eq!(a.id(), a_id, "the restart keeps the replica id");
    for (call, result) in a_cut.iter().zip(&a_cut_results) {
        assert_eq!(result, &Ok(false), "{} was not cut by the kill", call.id);
    }
    for (call, result) in b_streams.iter().zip(&b_results) {
        assert_eq!(result, &Ok(true), "{} on B did not complete", call.id);
    }

    let mut ids: Vec<String> = a_done
        .iter()
        .chain(&a_cut)
        .chain(&b_streams)
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    let rows = wait_landed(&url, "kil-%", &ids);
    let mut problems: Vec<String> = a_done
        .iter()
        .flat_map(|c| c.check_row(&rows, &a_id))
        .chain(b_streams.iter().flat_map(|c| c.check_row(&rows, &b_id)))
        .collect();
    for call in &a_cut {
        match rows.get(&call.id).map(Vec::as_slice) {
            Some([row]) => {
                let got = (
                    row["lifecycle_status"].clone(),
                    row["error_message"].clone(),
                    row["replica"].clone(),
                );
                let want = (
                    Value::from("aborted"),
                    Value::from("boot-recovery"),
                    Value::from(a_id.as_str()),
                );
                if got != want {
                    problems.push(format!("{}: {got:?}, want {want:?}", call.id));
                }
            }
            other => problems.push(format!("{}: rows {other:?}", call.id)),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nA's logs:\n{}",
        problems.join("\n"),
        a.logs()
    );
    assert_eq!(rows.len(), ids.len(), "no row beyond the calls made");
    for entry in upstream.ledger().entries() {
        if let Some(id) = entry.request_id.filter(|id| id.starts_with("kil-")) {
            assert_eq!(
                rows.get(&id).map(Vec::len),
                Some(1),
                "{id} reached the upstream"
            );
        }
    }
    assert_eq!(
        pg_count(
            &url,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
        ),
        0
    );
    assert_eq!(aggregate_mismatches(&url), Vec::<String>::new());
}

/// Two replicas that require a proxy key and take `admin_key` for the admin API.
fn keyed_pair(url: &str, upstream: &str, admin_key: &str) -> (Replica, Replica) {
    let env = [
        ("CLI_PROXY_API_URL", upstream),
        ("ADMIN_API_KEY", admin_key),
        ("PROXY_REQUIRE_API_KEY", "true"),
    ];
    (Replica::start(url, &env), Replica::start(url, &env))
}

/// Creates a managed key through `replica`'s admin API; its JSON (`id`, `key`, …).
fn create_key(replica: &Replica, admin_key: &str, name: &str) -> Value {
    let body = serde_json::json!({ "name": name }).to_string();
    let created = request_blocking(
        replica.addr(),
        "POST",
        "/admin/api-keys",
        &[
            ("x-admin-token", admin_key),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    created.json().unwrap()
}

/// c. A managed key created through replica A works on replica B at once (the key lives in
/// the database); revoked through B, it is refused on both within the 1 s key cache, although
/// both had just accepted it.
#[test]
fn a_managed_key_created_on_one_replica_works_and_dies_on_both() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (_pg, url) = server("replicas_keys");
    let upstream = FakeUpstream::start();
    let up = upstream.url();
    let admin_key = "adm-replicas-3c9d2e";
    let (a, b) = keyed_pair(&url, &up, admin_key);
    let admin = [
        ("x-admin-token", admin_key),
        ("content-type", "application/json"),
    ];

    let created = create_key(&a, admin_key, "shared");
    let created_at = Instant::now();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_i64().unwrap();
    let bearer = format!("Bearer {key}");
    let call = |replica: &Replica, msg: &str| {
        request_blocking(
            replica.addr(),
            "POST",
            "/v1/messages",
            &[
                ("content-type", "application/json"),
                ("authorization", bearer.as_str()),
                ("x-request-id", msg),
            ],
            br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#,
        )
        .unwrap()
    };

    let mut attempt = 0;
    let accepted_after = loop {
        let res = call(&b, &format!("key-b-{attempt}"));
        if res.status == 200 {
            break created_at.elapsed();
        }
        assert_eq!(res.status, 401, "{}", res.text());
        assert!(
            created_at.elapsed() < Duration::from_millis(1_500),
            "B still refuses the key 1.5 s after A created it"
        );
        attempt += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        accepted_after <= Duration::from_secs(1),
        "B accepted the key {accepted_after:?} after its creation"
    );
    // Both replicas now hold the key as valid in their caches.
    assert_eq!(call(&a, "key-a-ok").status, 200);
    assert_eq!(call(&b, "key-b-ok").status, 200);
    let rows = wait_landed(
        &url,
        "key-%-ok",
        &["key-a-ok".to_owned(), "key-b-ok".to_owned()],
    );
    for row in rows.values().flatten() {
        assert_eq!(row["proxy_api_key_id"], id, "attributed to the key: {row}");
    }

    let revoked = request_blocking(
        b.addr(),
        "DELETE",
        &format!("/admin/api-keys/{id}"),
        &admin,
        b"",
    )
    .unwrap();
    let revoked_at = Instant::now();
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    for (name, replica) in [("A", &a), ("B", &b)] {
        let refused_after = loop {
            let res = call(replica, &format!("key-revoked-{name}"));
            if res.status == 401 {
                break revoked_at.elapsed();
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(3),
                "{name} still accepts the key 3 s after its revocation"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            refused_after <= Duration::from_millis(1_500),
            "{name} refused the key {refused_after:?} after its revocation"
        );
    }
}

const MGMT_KEY: &str = "mgmt-key-replicas-8b21";
const MODEL: &str = "claude-sonnet-4-5";
const TICK: Duration = Duration::from_millis(500);
/// How long the fake takes to answer a queue poll: two pollers at once would overlap.
const ANSWER: Duration = Duration::from_millis(150);

fn iso_before_now(offset_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    agent_cli_proxy_core::time::UnixMillis(now - offset_ms).to_iso()
}

/// d. The correlator's destructive queue read runs on one replica at a time. Each replica
/// reaches the fake management API through a listener of its own (one queue behind both), so
/// every poll is known to come from one replica: only the lock holder polls, no two polls
/// overlap, the holder's `/ready` shows the loop `pass` and the other's `standby`. After a
/// `kill -9` of the holder the other polls within two ticks, its `/ready` drops `standby`, the
/// queue keeps being drained, and a record popped by it correlates its row once.
#[test]
fn the_correlator_polls_from_one_replica_and_moves_when_it_dies() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (_pg, url) = server("replicas_correlator");
    let mgmt = FakeManagement::start_shared(MGMT_KEY, 2);
    mgmt.queue_mode(Mode::Slow(ANSWER));
    let tick = TICK.as_millis().to_string();
    let start = |listener: usize| {
        let mgmt_url = mgmt.url_of(listener);
        Replica::start(
            &url,
            &[
                ("CLI_PROXY_API_URL", mgmt_url.as_str()),
                ("CLIPROXY_MGMT_KEY", MGMT_KEY),
                ("CLIPROXY_CORRELATION_INTERVAL_MS", tick.as_str()),
            ],
        )
    };
    let mut replicas = [Some(start(0)), Some(start(1))];
    let queue_polls = |listener: usize, from: usize| {
        mgmt.calls()[from..]
            .iter()
            .filter(|c| {
                c.listener == listener && c.target.starts_with("/v0/management/usage-queue")
            })
            .count()
    };
    let wait = |what: &str, timeout: Duration, done: &dyn Fn() -> bool| {
        let began = Instant::now();
        while !done() {
            assert!(began.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
        began.elapsed()
    };

    // The correlator polls only while there are rows to correlate: one proxied call through
    // each replica (the fake answers `/v1/messages`, 11 + 7 tokens).
    for (i, replica) in replicas.iter().flatten().enumerate() {
        let id = format!("cor-{i}");
        let res = request_blocking(
            replica.addr(),
            "POST",
            "/v1/messages",
            &[
                ("content-type", "application/json"),
                ("x-request-id", id.as_str()),
            ],
            br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let rows = wait_landed(&url, "cor-%", &["cor-0".to_owned(), "cor-1".to_owned()]);

    wait("a first queue poll", Duration::from_secs(10), &|| {
        queue_polls(0, 0) + queue_polls(1, 0) > 0
    });
    let holder = if queue_polls(0, 0) > 0 { 0 } else { 1 };
    let other = 1 - holder;
    // Eight ticks or so with records to pop (another model: they match no row and keep both
    // rows candidates, so the polling goes on): every poll comes from the holder.
    for round in 0..4 {
        mgmt.push_queue(&[record(
            &iso_before_now(20_000),
            &format!("r{round}@example.com"),
            "0",
            "gpt-5",
            10,
        )]);
        wait("the records popped", Duration::from_secs(5), &|| {
            mgmt.queue_len() == 0
        });
        std::thread::sleep(TICK);
    }
    let holder_replica = replicas[holder].as_ref().unwrap();
    let other_replica = replicas[other].as_ref().unwrap();
    wait(
        "the holder's correlator passing",
        Duration::from_secs(8),
        &|| holder_replica.loop_status("correlator").as_deref() == Some("pass"),
    );
    wait(
        "standby on the other replica",
        Duration::from_secs(8),
        &|| other_replica.loop_status("correlator").as_deref() == Some("standby"),
    );
    let ready = other_replica.ready();
    assert_eq!(
        ready["checks"]["supervisor"]["status"], "pass",
        "standby is no failure: {ready}"
    );
    assert!(
        queue_polls(holder, 0) >= 4,
        "the holder polled {} times",
        queue_polls(holder, 0)
    );
    assert_eq!(
        queue_polls(other, 0),
        0,
        "the replica without the lock polled the queue"
    );
    assert_eq!(mgmt.max_in_flight(), 1, "two polls at once");

    let calls_before = mgmt.calls().len();
    let mut dead = replicas[holder].take().unwrap();
    dead.proxy.kill9();
    let killed_at = Instant::now();
    wait(
        "the survivor's first poll",
        Duration::from_secs(10),
        &|| queue_polls(other, calls_before) > 0,
    );
    let took_over = killed_at.elapsed();
    println!(
        "FIGURE correlator take-over after kill -9: {} ms (tick {} ms)",
        took_over.as_millis(),
        TICK.as_millis()
    );
    assert!(
        took_over <= 2 * TICK + ANSWER + Duration::from_millis(500),
        "the survivor polled {took_over:?} after the kill: more than two ticks"
    );
    let survivor = replicas[other].as_ref().unwrap();
    wait(
        "the survivor's correlator out of standby",
        Duration::from_secs(8),
        &|| survivor.loop_status("correlator").as_deref() == Some("pass"),
    );
    // The survivor drains the queue and applies what matches: the record of the survivor's
    // own call correlates its row, once.
    let target = format!("cor-{other}");
    let started = rows[&target][0]["started_at"].as_str().unwrap().to_owned();
    let started = agent_cli_proxy_core::correlate::parse_timestamp(&started).unwrap();
    let at = agent_cli_proxy_core::time::UnixMillis(started.0).to_iso();
    mgmt.push_queue(&[record(&at, "after@example.com", "1", MODEL, 18)]);
    wait(
        "the queue drained by the survivor",
        Duration::from_secs(5),
        &|| mgmt.queue_len() == 0,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let correlated = loop {
        let rows = pg_rows(&url, &target).unwrap();
        if rows[0]["cliproxy_account"] == "after@example.com" {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not correlate {target}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(correlated.len(), 1);
    std::thread::sleep(2 * TICK);
    assert_eq!(
        pg_count(
            &url,
            "SELECT COALESCE(SUM(request_count), 0)::BIGINT FROM daily_account_usage \
             WHERE cliproxy_account = 'after@example.com'"
        ),
        1,
        "the record is counted once"
    );
    // Every poll, before and after the hand-over, ended before the next began.
    let mut polls: Vec<_> = mgmt
        .calls()
        .into_iter()
        .filter(|c| c.target.starts_with("/v0/management/usage-queue"))
        .collect();
    polls.sort_by_key(|c| c.arrived);
    for pair in polls.windows(2) {
        // The dead holder's last poll may never have been answered.
        if let Some(done) = pair[0].done {
            assert!(done <= pair[1].arrived, "overlapping polls: {pair:?}");
        }
    }
    assert_eq!(mgmt.max_in_flight(), 1, "two polls at once");
    assert!(
        mgmt.calls()
            .iter()
            .filter(|c| c.target.starts_with("/v0/"))
            .all(|c| c.management_key.as_deref() == Some(MGMT_KEY))
    );
    drop(dead);
}

/// e. PostgreSQL stopped for 30 s while a client with a managed key calls each replica every
/// ~50 ms: no call fails (not even on the key's lookup), `/ready` reports the database
/// problem on both, and once the server is back every successful call has exactly one final
/// row and `daily_usage` equals the aggregate.
#[test]
fn a_database_outage_under_load_fails_no_call_and_loses_no_row() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (pg, url) = server("replicas_outage");
    let upstream = FakeUpstream::start();
    let up = upstream.url();
    let admin_key = "adm-replicas-outage-5e1";
    let (a, b) = keyed_pair(&url, &up, admin_key);
    // The clients hold a managed key: its lookups go to PostgreSQL, which is about to go
    // away, and the calls must still be served.
    let created = create_key(&a, admin_key, "outage");
    let bearer = format!("Bearer {}", created["key"].as_str().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [("a", a.addr()), ("b", b.addr())]
        .into_iter()
        .map(|(name, addr)| {
            let stop = Arc::clone(&stop);
            let bearer = bearer.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("out-{name}-{i}");
                    let res = client::request_blocking_timeout(
                        addr,
                        "POST",
                        "/v1/messages",
                        &[
                            ("content-type", "application/json"),
                            ("authorization", bearer.as_str()),
                            ("x-request-id", id.as_str()),
                        ],
                        br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#,
                        Duration::from_secs(5),
                    );
                    match res {
                        Ok(r) if r.status == 200 => ok.push(id),
                        Ok(r) => failed.push(format!("{id}: {} {}", r.status, r.text())),
                        Err(e) => failed.push(format!("{id}: {e}")),
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                (ok, failed)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    pg.stop();
    let stopped_at = Instant::now();
    // The spool takes the calls, so a replica warns rather than leaving the load balancer:
    // the database check and the spool's lag (over 5 s) both say so.
    let reports = |r: &Replica| {
        let ready = r.ready();
        let checks = &ready["checks"];
        let both = checks["database"]["status"] == "warn" && checks["spool"]["status"] == "warn";
        (both, ready)
    };
    let mut seen = [false, false];
    let mut last = [Value::Null, Value::Null];
    while stopped_at.elapsed() < Duration::from_secs(30) {
        for (i, replica) in [&a, &b].into_iter().enumerate() {
            if !seen[i] {
                (seen[i], last[i]) = reports(replica);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    pg.restart();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for client in clients {
        let (o, f) = client.join().expect("client thread");
        ok.extend(o);
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} calls failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    for (i, replica) in [&a, &b].into_iter().enumerate() {
        assert!(
            seen[i],
            "replica {i}'s /ready never reported the database away and the spool lagging; \
             last during the outage: {}\nits ingestion and spool events:\n{}",
            last[i],
            events_about(replica, &["ingest", "spool", "pg", "replica"])
        );
    }
    println!("FIGURE calls during a 30 s outage: {}", ok.len());

    let rows = wait_landed(&url, "out-%", &ok);
    let problems: Vec<String> = ok
        .iter()
        .filter_map(|id| match rows.get(id).map(Vec::as_slice) {
            Some([row]) if row["lifecycle_status"] == "completed" && row["status"] == 200 => None,
            other => Some(format!("{id}: {other:?}")),
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(rows.len(), ok.len(), "no row beyond the calls made");
    assert_eq!(aggregate_mismatches(&url), Vec::<String>::new());
    for replica in [&a, &b] {
        let began = Instant::now();
        while replica.ready()["checks"]["database"]["status"] != "pass" {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "/ready still reports the database: {}",
                replica.ready()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// f. A replica that never comes back (`docs/replicas.md` §3): its calls still pending when it
/// has been unseen for 10 minutes are ended `replica-lost` by whichever replica holds the
/// retention loop (its first tick runs at start), costed like a boot recovery; the pending call
/// of a replica seen a minute ago is left alone, as are finished rows.
#[test]
fn the_pending_calls_of_a_replica_gone_for_ten_minutes_end_as_replica_lost() {
    run_child_if_requested();
    let _case = one_case_at_a_time();
    let (_pg, url) = server("replicas_lost");
    let upstream = FakeUpstream::start();
    let up = upstream.url();
    let env = [("CLI_PROXY_API_URL", up.as_str())];
    // A first replica creates the schema, then stops (and gives its loop locks up).
    drop(Replica::start(&url, &env));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for (replica, seen_ms, request_id) in [
        ("ghost", 20 * 60_000, "lost-ghost-1"),
        ("napping", 60_000, "lost-napping-1"),
    ] {
        let seen = iso_before_now(seen_ms);
        client
            .execute(
                "INSERT INTO replicas (replica, host, version, started_at, seen_at)
                 VALUES ($1, 'elsewhere', '0.1.0', $2, $2)",
                &[&replica, &seen],
            )
            .unwrap();
        client
            .execute(
                "INSERT INTO request_logs (request_id, msg_id, provider, model, path, started_at,
                   prompt_tokens, completion_tokens, total_tokens, replica)
                 VALUES ($1, $1, 'anthropic', 'claude-sonnet-4-5', '/v1/messages', $2,
                   1000, 100, 1100, $3)",
                &[&request_id, &seen, &replica],
            )
            .unwrap();
    }
    drop(client);
    let survivor = Replica::start(&url, &env);
    let deadline = Instant::now() + Duration::from_secs(15);
    let ended = loop {
        let rows = pg_rows(&url, "lost-%").unwrap();
        let ghost = rows
            .iter()
            .find(|r| r["request_id"] == "lost-ghost-1")
            .cloned();
        if let Some(row) = ghost.filter(|r| r["lifecycle_status"] != "pending") {
            break (row, rows);
        }
        assert!(
            Instant::now() < deadline,
            "the lost replica's call is still pending after 15 s: {rows:?}\n{}",
            survivor.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (ghost, rows) = ended;
    assert_eq!(ghost["lifecycle_status"], "aborted", "{ghost}");
    assert_eq!(ghost["error_message"], "replica-lost", "{ghost}");
    assert_eq!(
        ghost["cost_status"], "ok",
        "costed from its tokens: {ghost}"
    );
    let napping = rows
        .iter()
        .find(|r| r["request_id"] == "lost-napping-1")
        .unwrap();
    assert_eq!(
        napping["lifecycle_status"], "pending",
        "a replica seen a minute ago keeps its calls: {napping}"
    );
    assert!(
        aggregate_mismatches(&url).is_empty(),
        "{:?}",
        aggregate_mismatches(&url)
    );
}
