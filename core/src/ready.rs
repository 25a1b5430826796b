//! `/ready` (`control.md` §7): the four checks' results, their aggregation and JSON, the
//! timeout and deadline outputs, and the memo/single-flight state machine.
//!
//! The shell runs the checks concurrently, each under [`CheckName::timeout_ms`] and all
//! under [`READY_DEADLINE_MS`], turns each outcome into a [`CheckResult`] with the
//! constructors here, and asks a [`ReadyCache`] whether to serve, start or join a run.
//!
//! Choices where the spec is silent: `responseTime` (ms) is present on the database,
//! pricing and upstream checks, and on timed-out and deadline results; the supervisor check,
//! which only reads memory, has none. The supervisor check lists `loops` and `loopHealth`
//! whatever its status, adds `failedLoops` and an `output` only when failing, and has no
//! `output` when warning. The pricing age comes from the in-memory `fetchedAt`, else the
//! file's modification time; with neither it reports "not loaded". A run still marked
//! running [`ABANDONED_RUN_MS`] after it started is treated as lost (its task died) and a new
//! run is started, so callers can never wait forever.

use http::StatusCode;
use serde::Serialize;

use crate::head::Reply;
use crate::supervisor::{LoopHealth, LoopState, LoopStatus};
use crate::time::{Instant, UnixMillis};

/// Deadline of a whole readiness run.
pub const READY_DEADLINE_MS: u64 = 1_500;
/// How long a completed result is reused.
pub const READY_MEMO_MS: u64 = 3_000;
/// Age after which a run that never completed is considered lost.
pub const ABANDONED_RUN_MS: u64 = READY_DEADLINE_MS + 1_000;

/// A check or overall status; ordered `pass < warn < fail` so the worst is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy.
    Pass,
    /// Degraded but serving.
    Warn,
    /// Not ready.
    Fail,
}

impl Status {
    /// What a supervised loop contributes to the supervisor check: a standby loop (another
    /// replica runs it) is healthy.
    pub fn of_loop(status: LoopStatus) -> Status {
        match status {
            LoopStatus::Pass | LoopStatus::Standby => Status::Pass,
            LoopStatus::Warn => Status::Warn,
            LoopStatus::Fail => Status::Fail,
        }
    }

    /// `pass`, `warn` or `fail` (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// The four checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckName {
    /// `SELECT 1` on a reader.
    Database,
    /// Price cache presence and age.
    Pricing,
    /// `HEAD <CLI_PROXY_API_URL>/health`.
    Upstream,
    /// Background-loop health.
    Supervisor,
}

impl CheckName {
    /// Every check, in report order.
    pub const ALL: [CheckName; 4] = [
        CheckName::Database,
        CheckName::Pricing,
        CheckName::Upstream,
        CheckName::Supervisor,
    ];

    /// The key in `checks`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Database => "database",
            CheckName::Pricing => "pricing",
            CheckName::Upstream => "upstream",
            CheckName::Supervisor => "supervisor",
        }
    }

    /// The check's own timeout: 1 000 ms for upstream, 300 ms for the others.
    pub fn timeout_ms(self) -> u64 {
        match self {
            CheckName::Upstream => 1_000,
            CheckName::Database | CheckName::Pricing | CheckName::Supervisor => 300,
        }
    }
}

/// The outcome of `SELECT 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseProbe {
    /// A row came back.
    Row,
    /// The query returned no row.
    NoRow,
    /// The query failed with this message.
    Error(String),
}

/// What the shell knows about the price cache when the pricing check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingFacts {
    /// `PRICING_CACHE_PATH`.
    pub cache_path: String,
    /// The cache file exists.
    pub file_exists: bool,
    /// A price table is loaded in memory.
    pub loaded: bool,
    /// In-memory `fetchedAt`.
    pub fetched_at: Option<UnixMillis>,
    /// The file's modification time.
    pub file_modified: Option<UnixMillis>,
}

/// A `loops`-failure entry: `{name, failed: true, consecutiveFailures}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedLoop {
    /// Loop name.
    pub name: String,
    /// Always `true`.
    pub failed: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

/// One check's result as rendered under `checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// The check's status.
    pub status: Status,
    /// Human-readable detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Price cache age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// How long the check took, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<u64>,
    /// Enabled loop names, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loops: Option<Vec<String>>,
    /// Per-loop health, sorted by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_health: Option<Vec<LoopHealth>>,
    /// Disabled loops, sorted by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_loops: Option<Vec<FailedLoop>>,
    /// Spool bytes held (spool check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Ingestion lag, ms (spool check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
}

/// What the daemon knows about its spool when `/ready` runs (`docs/spool.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolFacts {
    /// Bytes held in segments.
    pub bytes: u64,
    /// How long the oldest unapplied record has waited, ms.
    pub lag_ms: u64,
    /// The last `Begin` was refused.
    pub refusing: bool,
}

/// Ingestion lag above which the spool check warns.
pub const SPOOL_WARN_LAG_MS: u64 = 5_000;
/// Spool size above which the spool check warns: 64 MiB.
pub const SPOOL_WARN_BYTES: u64 = 64 * 1_048_576;

impl CheckResult {
    fn new(status: Status, output: Option<String>, response_time: Option<u64>) -> CheckResult {
        CheckResult {
            status,
            output,
            age_ms: None,
            response_time,
            loops: None,
            loop_health: None,
            failed_loops: None,
            bytes: None,
            lag_ms: None,
        }
    }

    /// The spool check: `fail` while a `Begin` would be refused, `warn` when ingestion lags
    /// more than 5 s or the spool holds more than 64 MiB.
    pub fn spool(facts: SpoolFacts) -> CheckResult {
        let (status, output) = if facts.refusing {
            (Status::Fail, Some("spool refuses new records".to_owned()))
        } else if facts.lag_ms > SPOOL_WARN_LAG_MS {
            (
                Status::Warn,
                Some(format!("ingestion lags {} ms", facts.lag_ms)),
            )
        } else if facts.bytes > SPOOL_WARN_BYTES {
            (
                Status::Warn,
                Some(format!("spool holds {} bytes", facts.bytes)),
            )
        } else {
            (Status::Pass, None)
        };
        let mut result = CheckResult::new(status, output, None);
        result.bytes = Some(facts.bytes);
        result.lag_ms = Some(facts.lag_ms);
        result
    }

    /// The database check from the `SELECT 1` outcome.
    pub fn database(probe: DatabaseProbe, response_time_ms: u64) -> CheckResult {
        let (status, output) = match probe {
            DatabaseProbe::Row => (Status::Pass, None),
            DatabaseProbe::NoRow => (Status::Fail, Some("SELECT 1 returned no row".to_owned())),
            DatabaseProbe::Error(message) => (Status::Fail, Some(message)),
        };
        CheckResult::new(status, output, Some(response_time_ms))
    }

    /// A database check of a server the spool stands in for (PostgreSQL, `docs/replicas.md`
    /// §3): the replica keeps serving while it is away, so a failure there degrades
    /// readiness to `warn` instead of taking every replica out of a load balancer at once.
    pub fn covered_by_spool(mut self) -> CheckResult {
        if self.status == Status::Fail {
            self.status = Status::Warn;
            self.output = Some(format!(
                "database unavailable, calls are kept in the spool: {}",
                self.output.as_deref().unwrap_or("no answer")
            ));
        }
        self
    }

    /// The pricing check: the file must exist, a table be loaded, and its age be below
    /// `max_age_ms` (`READY_PRICING_MAX_AGE_MS`).
    pub fn pricing(
        facts: &PricingFacts,
        now: UnixMillis,
        max_age_ms: u64,
        response_time_ms: u64,
    ) -> CheckResult {
        let fail =
            |output: String| CheckResult::new(Status::Fail, Some(output), Some(response_time_ms));
        if !facts.file_exists {
            return fail(format!("pricing cache missing at {}", facts.cache_path));
        }
        let Some(at) = facts
            .fetched_at
            .or(facts.file_modified)
            .filter(|_| facts.loaded)
        else {
            return fail("pricing cache not loaded".to_owned());
        };
        let age = now.0.saturating_sub(at.0);
        let mut result = if age < max_age_ms {
            CheckResult::new(Status::Pass, None, Some(response_time_ms))
        } else {
            fail(format!("pricing cache older than {max_age_ms}ms"))
        };
        result.age_ms = Some(age);
        result
    }

    /// The upstream check from the probe's status code or error message: any status below
    /// 500 passes (404 included).
    pub fn upstream(probe: Result<u16, String>, response_time_ms: u64) -> CheckResult {
        let (status, output) = match probe {
            Ok(code) if code < 500 => (Status::Pass, format!("HTTP {code}")),
            Ok(code) => (Status::Fail, format!("HTTP {code}")),
            Err(message) => (Status::Fail, message),
        };
        CheckResult::new(status, Some(output), Some(response_time_ms))
    }

    /// The upstream check in direct mode: there is no router to probe, and the vendors are
    /// not probed (their health URLs differ and a probe would need a key), so it passes and
    /// says why.
    pub fn upstream_direct() -> CheckResult {
        CheckResult::new(
            Status::Pass,
            Some("no router (direct mode): not probed".to_owned()),
            Some(0),
        )
    }

    /// The supervisor check over the enabled loops.
    pub fn supervisor(loops: &[LoopState], now: Instant) -> CheckResult {
        let mut sorted: Vec<&LoopState> = loops.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let health: Vec<LoopHealth> = sorted.iter().map(|l| l.health(now)).collect();
        let failed: Vec<FailedLoop> = sorted
            .iter()
            .filter(|l| l.disabled)
            .map(|l| FailedLoop {
                name: l.name.clone(),
                failed: true,
                consecutive_failures: l.consecutive_failures,
            })
            .collect();
        let status = health
            .iter()
            .map(|h| Status::of_loop(h.status))
            .max()
            .unwrap_or(Status::Pass);
        let mut result = CheckResult::new(status, None, None);
        result.loops = Some(sorted.iter().map(|l| l.name.clone()).collect());
        result.loop_health = Some(health);
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|f| f.name.as_str()).collect();
            result.output = Some(format!("failed loops: {}", names.join(", ")));
            result.failed_loops = Some(failed);
        }
        result
    }

    /// A check that did not finish within its own timeout.
    pub fn timed_out(name: CheckName) -> CheckResult {
        let ms = name.timeout_ms();
        CheckResult::new(
            Status::Fail,
            Some(format!("{} check timed out after {ms}ms", name.as_str())),
            Some(ms),
        )
    }

    /// Every check's result once the whole run passed [`READY_DEADLINE_MS`].
    pub fn deadline_exceeded() -> CheckResult {
        CheckResult::new(
            Status::Fail,
            Some(format!(
                "readiness deadline exceeded after {READY_DEADLINE_MS}ms"
            )),
            Some(READY_DEADLINE_MS),
        )
    }
}

/// A complete readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyReport {
    /// `database` check.
    pub database: CheckResult,
    /// `pricing` check.
    pub pricing: CheckResult,
    /// `upstream` check.
    pub upstream: CheckResult,
    /// `supervisor` check.
    pub supervisor: CheckResult,
    /// `spool` check.
    pub spool: CheckResult,
}

impl ReadyReport {
    /// The report of a run that missed the deadline: every check fails.
    pub fn deadline_exceeded() -> ReadyReport {
        ReadyReport {
            database: CheckResult::deadline_exceeded(),
            pricing: CheckResult::deadline_exceeded(),
            upstream: CheckResult::deadline_exceeded(),
            supervisor: CheckResult::deadline_exceeded(),
            spool: CheckResult::deadline_exceeded(),
        }
    }

    /// `fail` if any check fails, else `warn` if any warns, else `pass`.
    pub fn status(&self) -> Status {
        [
            &self.database,
            &self.pricing,
            &self.upstream,
            &self.supervisor,
            &self.spool,
        ]
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
    }

    /// `{"status": S, "checks": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "status": self.status(), "checks": self })
    }

    /// The `/ready` reply: 503 when failing, else 200; `cache-control: no-store`.
    pub fn reply(&self) -> Reply {
        let status = match self.status() {
            Status::Fail => StatusCode::SERVICE_UNAVAILABLE,
            Status::Pass | Status::Warn => StatusCode::OK,
        };
        Reply::json_value(status, &self.to_json()).no_store()
    }
}

/// Identifies one readiness run, so a late completion of a superseded run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunId(u64);

/// What a `/ready` caller should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyDecision {
    /// Answer with this fresh result (log `ready.cache_hit`).
    Cached(Box<ReadyReport>),
    /// Run the checks now and call [`ReadyCache::complete`] with this id.
    Start(RunId),
    /// A run is in flight: wait for its completion and answer with its report.
    Join(RunId),
}

#[derive(Debug, Clone, Default)]
enum CacheState {
    #[default]
    Empty,
    Running {
        run: RunId,
        started: Instant,
    },
    Done {
        report: Box<ReadyReport>,
        completed: Instant,
    },
}

/// The 3 000 ms memo and single-flight of `/ready`.
#[derive(Debug, Clone, Default)]
pub struct ReadyCache {
    state: CacheState,
    next_run: u64,
}

impl ReadyCache {
    /// An empty cache.
    pub fn new() -> ReadyCache {
        ReadyCache::default()
    }

    /// Decides for a caller arriving at `now`: serve a result completed less than 3 000 ms
    /// ago, join the run in flight, or start a new run (which is then in flight).
    pub fn decide(&mut self, now: Instant) -> ReadyDecision {
        match &self.state {
            CacheState::Done { report, completed }
                if now.millis_since(*completed) < READY_MEMO_MS =>
            {
                return ReadyDecision::Cached(report.clone());
            }
            CacheState::Running { run, started }
                if now.millis_since(*started) < ABANDONED_RUN_MS =>
            {
                return ReadyDecision::Join(*run);
            }
            _ => {}
        }
        let run = RunId(self.next_run);
        self.next_run = self.next_run.wrapping_add(1);
        self.state = CacheState::Running { run, started: now };
        ReadyDecision::Start(run)
    }

    /// Stores the result of `run`, completed at `now`. Returns `false` (and stores nothing)
    /// if `run` is not the run in flight.
    pub fn complete(&mut self, run: RunId, report: ReadyReport, now: Instant) -> bool {
        match self.state {
            CacheState::Running { run: current, .. } if current == run => {
                self.state = CacheState::Done {
                    report: Box::new(report),
                    completed: now,
                };
                true
            }
            _ => false,
        }
    }

    /// The last completed report, fresh or not (for joiners woken by the completion).
    pub fn last_report(&self) -> Option<&ReadyReport> {
        match &self.state {
            CacheState::Done { report, .. } => Some(report),
            CacheState::Empty | CacheState::Running { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn passing() -> ReadyReport {
        ReadyReport {
            database: CheckResult::database(DatabaseProbe::Row, 2),
            pricing: CheckResult::pricing(&facts(), UnixMillis(10_000), 86_400_000, 1),
            upstream: CheckResult::upstream(Ok(404), 12),
            supervisor: CheckResult::supervisor(&[], Instant::ZERO),
            spool: CheckResult::spool(SpoolFacts::default()),
        }
    }

    fn facts() -> PricingFacts {
        PricingFacts {
            cache_path: "/data/prices.json".to_owned(),
            file_exists: true,
            loaded: true,
            fetched_at: Some(UnixMillis(4_000)),
            file_modified: Some(UnixMillis(1_000)),
        }
    }

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn all_pass_renders_the_documented_shape() {
        let reply = passing().reply();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(
            body(&reply),
            json!({"status":"pass","checks":{
                "database":{"status":"pass","responseTime":2},
                "pricing":{"status":"pass","ageMs":6000,"responseTime":1},
                "upstream":{"status":"pass","output":"HTTP 404","responseTime":12},
                "supervisor":{"status":"pass","loops":[],"loopHealth":[]},
                "spool":{"status":"pass","bytes":0,"lagMs":0},
            }})
        );
        // Key order on the wire follows the spec.
        let text = std::str::from_utf8(&reply.body).unwrap();
        assert!(text.starts_with(r#"{"status":"pass","checks":{"database":"#));
        assert!(text.contains(r#""pricing":{"status":"pass","ageMs":6000,"responseTime":1}"#));
    }

    #[test]
    fn aggregation_is_the_worst_check_and_fail_is_503() {
        let mut r = passing();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut failing = LoopState::new("correlator", 1_000);
        failing.handle_failure("down", Instant::from_millis(1), &mut rng);
        r.supervisor = CheckResult::supervisor(&[failing], Instant::from_millis(2));
        assert_eq!(r.status(), Status::Warn);
        assert_eq!(r.reply().status, StatusCode::OK);
        assert_eq!(body(&r.reply())["status"], "warn");

        r.upstream = CheckResult::upstream(Ok(502), 40);
        assert_eq!(r.status(), Status::Fail);
        let reply = r.reply();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body(&reply)["checks"]["upstream"],
            json!({"status":"fail","output":"HTTP 502","responseTime":40})
        );
    }

    #[test]
    fn check_failure_outputs() {
        let db = CheckResult::database(DatabaseProbe::NoRow, 3);
        assert_eq!(db.output.as_deref(), Some("SELECT 1 returned no row"));
        let db = CheckResult::database(DatabaseProbe::Error("disk I/O error".into()), 3);
        assert_eq!(
            (db.status, db.output.as_deref()),
            (Status::Fail, Some("disk I/O error"))
        );
        // PostgreSQL away: the spool takes the calls, so the replica only warns.
        let pg = CheckResult::database(DatabaseProbe::Error("connection refused".into()), 3)
            .covered_by_spool();
        assert_eq!(pg.status, Status::Warn);
        assert_eq!(
            pg.output.as_deref(),
            Some("database unavailable, calls are kept in the spool: connection refused")
        );
        let timed_out = CheckResult::timed_out(CheckName::Database).covered_by_spool();
        assert_eq!(timed_out.status, Status::Warn);
        let fine = CheckResult::database(DatabaseProbe::Row, 1).covered_by_spool();
        assert_eq!((fine.status, fine.output), (Status::Pass, None));
        let up = CheckResult::upstream(Err("connection refused".into()), 5);
        assert_eq!(
            (up.status, up.output.as_deref()),
            (Status::Fail, Some("connection refused"))
        );
        assert_eq!(CheckResult::upstream(Ok(499), 5).status, Status::Pass);
        assert_eq!(CheckResult::upstream(Ok(500), 5).status, Status::Fail);
    }

    #[test]
    fn pricing_decision() {
        let now = UnixMillis(100_000);
        let missing = PricingFacts {
            file_exists: false,
            ..facts()
        };
        assert_eq!(
            CheckResult::pricing(&missing, now, 50_000, 1)
                .output
                .as_deref(),
            Some("pricing cache missing at /data/prices.json")
        );
        let unloaded = PricingFacts {
            loaded: false,
            ..facts()
        };
        assert_eq!(
            CheckResult::pricing(&unloaded, now, 50_000, 1)
                .output
                .as_deref(),
            Some("pricing cache not loaded")
        );
        // In-memory fetchedAt wins over the file time.
        let ok = CheckResult::pricing(&facts(), now, 96_001, 1);
        assert_eq!((ok.status, ok.age_ms), (Status::Pass, Some(96_000)));
        // The age must be strictly below the maximum.
        let old = CheckResult::pricing(&facts(), now, 96_000, 1);
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            json!({"status":"fail","output":"pricing cache older than 96000ms","ageMs":96000,"responseTime":1})
        );
        let file_only = PricingFacts {
            fetched_at: None,
            ..facts()
        };
        assert_eq!(
            CheckResult::pricing(&file_only, now, 1_000_000, 1).age_ms,
            Some(99_000)
        );
        let future = PricingFacts {
            fetched_at: Some(UnixMillis(200_000)),
            ..facts()
        };
        assert_eq!(CheckResult::pricing(&future, now, 1, 1).age_ms, Some(0));
    }

    #[test]
    fn supervisor_lists_sorted_loops_and_failed_ones() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut b = LoopState::new("quota-refresh", 1_000);
        let mut a = LoopState::new("cost-backfill", 1_000);
        let c = LoopState::new("correlator", 1_000);
        for i in 0..100 {
            b.handle_failure("x", Instant::from_millis(i), &mut rng);
            a.handle_failure("y", Instant::from_millis(i), &mut rng);
        }
        let check = CheckResult::supervisor(&[b, c, a], Instant::from_millis(1_099));
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            serde_json::to_value(&check).unwrap(),
            json!({
                "status":"fail",
                "output":"failed loops: cost-backfill, quota-refresh",
                "loops":["correlator","cost-backfill","quota-refresh"],
                "loopHealth":[
                    {"name":"correlator","consecutiveFailures":0,"status":"pass"},
                    {"name":"cost-backfill","consecutiveFailures":100,"status":"fail","lastErrorAgeMs":1000},
                    {"name":"quota-refresh","consecutiveFailures":100,"status":"fail","lastErrorAgeMs":1000},
                ],
                "failedLoops":[
                    {"name":"cost-backfill","failed":true,"consecutiveFailures":100},
                    {"name":"quota-refresh","failed":true,"consecutiveFailures":100},
                ],
            })
        );
    }

    #[test]
    fn timeouts_and_deadline() {
        let t = CheckResult::timed_out(CheckName::Upstream);
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"status":"fail","output":"upstream check timed out after 1000ms","responseTime":1000})
        );
        assert_eq!(
            CheckResult::timed_out(CheckName::Database)
                .output
                .as_deref(),
            Some("database check timed out after 300ms")
        );
        let reply = ReadyReport::deadline_exceeded().reply();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        let b = body(&reply);
        for name in CheckName::ALL {
            assert_eq!(
                b["checks"][name.as_str()],
                json!({"status":"fail","output":"readiness deadline exceeded after 1500ms","responseTime":1500})
            );
        }
    }

    #[test]
    fn memo_serves_for_3000ms_and_concurrent_callers_join() {
        let mut cache = ReadyCache::new();
        let t0 = Instant::from_millis(10_000);
        let ReadyDecision::Start(run) = cache.decide(t0) else {
            panic!("first caller starts");
        };
        assert_eq!(cache.decide(t0.plus_millis(100)), ReadyDecision::Join(run));
        assert!(cache.last_report().is_none());
        assert!(cache.complete(run, passing(), t0.plus_millis(200)));
        assert_eq!(cache.last_report(), Some(&passing()));
        assert_eq!(
            cache.decide(t0.plus_millis(3_199)),
            ReadyDecision::Cached(Box::new(passing()))
        );
        let ReadyDecision::Start(second) = cache.decide(t0.plus_millis(3_200)) else {
            panic!("stale after 3000 ms");
        };
        assert_ne!(second, run);
        // A late completion of the superseded run is ignored.
        assert!(!cache.complete(run, ReadyReport::deadline_exceeded(), t0.plus_millis(3_300)));
        assert_eq!(
            cache.decide(t0.plus_millis(3_300)),
            ReadyDecision::Join(second)
        );
    }

    #[test]
    fn abandoned_run_is_replaced() {
        let mut cache = ReadyCache::new();
        let ReadyDecision::Start(run) = cache.decide(Instant::ZERO) else {
            panic!("start");
        };
        assert_eq!(
            cache.decide(Instant::from_millis(ABANDONED_RUN_MS - 1)),
            ReadyDecision::Join(run)
        );
        let ReadyDecision::Start(next) = cache.decide(Instant::from_millis(ABANDONED_RUN_MS))
        else {
            panic!("a lost run must not block callers forever");
        };
        assert_ne!(next, run);
        // A clock that goes backwards never panics and still joins.
        assert_eq!(cache.decide(Instant::ZERO), ReadyDecision::Join(next));
    }

    #[test]
    fn the_spool_check_warns_on_lag_or_size_and_fails_while_refusing() {
        let ok = CheckResult::spool(SpoolFacts {
            bytes: SPOOL_WARN_BYTES,
            lag_ms: SPOOL_WARN_LAG_MS,
            refusing: false,
        });
        assert_eq!(ok.status, Status::Pass);
        let lag = CheckResult::spool(SpoolFacts {
            lag_ms: SPOOL_WARN_LAG_MS + 1,
            ..SpoolFacts::default()
        });
        assert_eq!(lag.status, Status::Warn);
        let big = CheckResult::spool(SpoolFacts {
            bytes: SPOOL_WARN_BYTES + 1,
            ..SpoolFacts::default()
        });
        assert_eq!(big.status, Status::Warn);
        let refusing = CheckResult::spool(SpoolFacts {
            refusing: true,
            ..SpoolFacts::default()
        });
        assert_eq!(refusing.status, Status::Fail);
        let mut r = passing();
        r.spool = refusing;
        assert_eq!(r.reply().status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
