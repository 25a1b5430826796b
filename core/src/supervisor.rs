//! Background-loop scheduling maths (`control.md` §8.1): jitter, failure backoff, disabling,
//! first-run delays, and the per-loop health entries of `/ready` (§7).
//!
//! The shell owns the timers and runs the ticks; after each tick it feeds the outcome to the
//! loop's [`LoopState`] and sleeps for the delay it gets back. Randomness comes from a
//! seeded `fastrand::Rng` the shell passes in, so a fixed seed reproduces a schedule.
//!
//! Choices where the spec is silent: the regular interval after a success is jittered with
//! the same rule as a backoff (so loops started together drift apart); first-run delays are
//! not jittered; `consecutiveFailures` in the backoff formula is the count including the
//! failure just recorded (the first failure waits `2 · interval`, capped at 60 000 ms).

use serde::Serialize;

use crate::time::Instant;

/// Cap of the failure backoff before jitter.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// Consecutive failures after which a loop is disabled.
pub const DISABLE_AFTER_FAILURES: u32 = 100;
/// Delay before the correlator's first run.
pub const CORRELATOR_FIRST_RUN_MS: u64 = 5_000;
/// Interval of `quota-retention`.
pub const QUOTA_RETENTION_INTERVAL_MS: u64 = 86_400_000;
/// How long stopping waits for a running tick.
pub const STOP_TIMEOUT_MS: u64 = 2_000;

/// The background loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoopKind {
    /// `pricing-refresh`, every `PRICING_REFRESH_INTERVAL_MS`.
    PricingRefresh,
    /// `cost-backfill`, every `COST_BACKFILL_INTERVAL_MS`.
    CostBackfill,
    /// `correlator`, every `CLIPROXY_CORRELATION_INTERVAL_MS` (needs `CLIPROXY_MGMT_KEY`).
    Correlator,
    /// `quota-refresh`, every `QUOTA_REFRESH_INTERVAL_MS` (needs usable auth files).
    QuotaRefresh,
    /// `quota-retention`, daily.
    QuotaRetention,
}

impl LoopKind {
    /// Every loop, in the order of the §8.1 table.
    pub const ALL: [LoopKind; 5] = [
        LoopKind::PricingRefresh,
        LoopKind::CostBackfill,
        LoopKind::Correlator,
        LoopKind::QuotaRefresh,
        LoopKind::QuotaRetention,
    ];

    /// The loop's name in logs and `/ready`.
    pub fn name(self) -> &'static str {
        match self {
            LoopKind::PricingRefresh => "pricing-refresh",
            LoopKind::CostBackfill => "cost-backfill",
            LoopKind::Correlator => "correlator",
            LoopKind::QuotaRefresh => "quota-refresh",
            LoopKind::QuotaRetention => "quota-retention",
        }
    }

    /// Delay from start to the first run: one interval for `pricing-refresh` (the cache was
    /// just loaded at startup), 5 000 ms for the correlator, immediately for the others.
    pub fn first_run_delay_ms(self, interval_ms: u64) -> u64 {
        match self {
            LoopKind::PricingRefresh => interval_ms,
            LoopKind::Correlator => CORRELATOR_FIRST_RUN_MS,
            LoopKind::CostBackfill | LoopKind::QuotaRefresh | LoopKind::QuotaRetention => 0,
        }
    }
}

/// Why `quota-refresh` is not started (`quota.refresh_skipped`, `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaRefreshSkip {
    /// `CLIPROXY_AUTH_DIR` is not set.
    MissingAuthDir,
    /// The directory cannot be read.
    AuthDirUnreadable,
    /// The directory holds no `*.json` file.
    NoAuthFiles,
}

impl QuotaRefreshSkip {
    /// The `reason` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaRefreshSkip::MissingAuthDir => "missing_auth_dir",
            QuotaRefreshSkip::AuthDirUnreadable => "auth_dir_unreadable",
            QuotaRefreshSkip::NoAuthFiles => "no_auth_files",
        }
    }
}

/// The last error of a loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopError {
    /// When the failing tick ended.
    pub at: Instant,
    /// The error message (already redacted by the caller).
    pub message: String,
}

/// One loop's scheduling and health state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopState {
    /// Loop name.
    pub name: String,
    /// Regular interval.
    pub interval_ms: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Failures since start.
    pub total_failures: u64,
    /// Stopped after [`DISABLE_AFTER_FAILURES`] consecutive failures; stays listed.
    pub disabled: bool,
    /// When the last successful tick ended.
    pub last_success: Option<Instant>,
    /// The last failure.
    pub last_error: Option<LoopError>,
    /// The last tick was skipped because another replica holds the loop
    /// (`docs/replicas.md` §5).
    pub standby: bool,
}

/// What the shell does after a failed tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Sleep `delay_ms` and retry; log `loop.error` with `attempt` and `next_delay_ms`.
    Retry {
        /// The consecutive-failure count, including this one.
        attempt: u32,
        /// The jittered backoff.
        delay_ms: u64,
    },
    /// Stop the loop; log `loop.disabled` with `total_failures`.
    Disabled {
        /// Failures since start.
        total_failures: u64,
    },
}

impl LoopState {
    /// A fresh loop.
    pub fn new(name: impl Into<String>, interval_ms: u64) -> LoopState {
        LoopState {
            name: name.into(),
            interval_ms,
            consecutive_failures: 0,
            total_failures: 0,
            disabled: false,
            last_success: None,
            last_error: None,
            standby: false,
        }
    }

    /// Records a tick skipped because another replica holds the loop; returns the jittered
    /// delay to the next claim. Not a failure: the loop is healthy, just elsewhere.
    pub fn handle_standby(&mut self, rng: &mut fastrand::Rng) -> u64 {
        self.consecutive_failures = 0;
        self.standby = true;
        jitter(self.interval_ms, rng)
    }

    /// Records a successful tick; returns the jittered delay to the next one.
    pub fn handle_success(&mut self, now: Instant, rng: &mut fastrand::Rng) -> u64 {
        self.consecutive_failures = 0;
        self.standby = false;
        self.last_success = Some(now);
        jitter(self.interval_ms, rng)
    }

    /// Records a failed tick; returns the backoff, or that the loop is now disabled. A
    /// disabled loop stays disabled.
    pub fn handle_failure(
        &mut self,
        message: impl Into<String>,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> AfterFailure {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.standby = false;
        self.total_failures = self.total_failures.saturating_add(1);
        self.last_error = Some(LoopError {
            at: now,
            message: message.into(),
        });
        if self.disabled || self.consecutive_failures >= DISABLE_AFTER_FAILURES {
            self.disabled = true;
            return AfterFailure::Disabled {
                total_failures: self.total_failures,
            };
        }
        AfterFailure::Retry {
            attempt: self.consecutive_failures,
            delay_ms: backoff_ms(self.interval_ms, self.consecutive_failures, rng),
        }
    }

    /// The `/ready` `loopHealth` entry of this loop at `now`.
    pub fn health(&self, now: Instant) -> LoopHealth {
        let status = if self.disabled {
            LoopStatus::Fail
        } else if self.consecutive_failures > 0 {
            LoopStatus::Warn
        } else if self.standby {
            LoopStatus::Standby
        } else {
            LoopStatus::Pass
        };
        LoopHealth {
            name: self.name.clone(),
            consecutive_failures: self.consecutive_failures,
            status,
            last_success_age_ms: self.last_success.map(|at| now.millis_since(at)),
            last_error_age_ms: self.last_error.as_ref().map(|e| now.millis_since(e.at)),
        }
    }
}

/// A `loopHealth` entry: `{name, consecutiveFailures, status, lastSuccessAgeMs?,
/// lastErrorAgeMs?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopHealth {
    /// Loop name.
    pub name: String,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// `fail` if disabled, `warn` if failing, `standby` if held by another replica, else
    /// `pass`.
    pub status: LoopStatus,
    /// Milliseconds since the last success, once there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_age_ms: Option<u64>,
    /// Milliseconds since the last error, once there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_age_ms: Option<u64>,
}

/// A loop's entry status in `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopStatus {
    /// Ran its last tick, or has not run yet.
    Pass,
    /// Failing, retried with backoff.
    Warn,
    /// Disabled after repeated failures.
    Fail,
    /// Another replica holds the loop (`docs/replicas.md` §5): healthy, not running here.
    Standby,
}

/// `round(d + u·d·0.1)` with `u` uniform in [−1, 1], floored at 0.
pub fn jitter(d_ms: u64, rng: &mut fastrand::Rng) -> u64 {
    let u = rng.f64() * 2.0 - 1.0;
    let d = d_ms as f64;
    // `as` saturates for out-of-range floats, and the floor keeps it non-negative.
    (d + u * d * 0.1).round().max(0.0) as u64
}

/// `jitter(min(interval · 2^consecutive_failures, 60 000))`, saturating.
pub fn backoff_ms(interval_ms: u64, consecutive_failures: u32, rng: &mut fastrand::Rng) -> u64 {
    let factor = 1u64.checked_shl(consecutive_failures).unwrap_or(u64::MAX);
    jitter(interval_ms.saturating_mul(factor).min(MAX_BACKOFF_MS), rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_with_a_fixed_seed() {
        let mut rng = fastrand::Rng::with_seed(7);
        let samples: Vec<u64> = (0..2_000).map(|_| jitter(10_000, &mut rng)).collect();
        assert!(samples.iter().all(|&d| (9_000..=11_000).contains(&d)));
        // The generator actually spreads the values over both halves of the window.
        assert!(samples.iter().any(|&d| d < 9_500));
        assert!(samples.iter().any(|&d| d > 10_500));
        assert_eq!(jitter(0, &mut rng), 0);
        assert!(jitter(u64::MAX, &mut rng) >= u64::MAX / 10 * 9);
        // Same seed, same schedule.
        let mut a = fastrand::Rng::with_seed(42);
        let mut b = fastrand::Rng::with_seed(42);
        assert_eq!(jitter(60_000, &mut a), jitter(60_000, &mut b));
    }

    #[test]
    fn backoff_doubles_then_caps_at_60s() {
        let mut rng = fastrand::Rng::with_seed(1);
        let cases: [(u64, u32, u64); 6] = [
            (1_000, 1, 2_000),
            (1_000, 3, 8_000),
            (1_000, 5, 32_000),
            (1_000, 6, 60_000),
            (86_400_000, 1, 60_000),
            (1_000, 99, 60_000),
        ];
        for (interval, failures, base) in cases {
            for _ in 0..200 {
                let d = backoff_ms(interval, failures, &mut rng);
                assert!(
                    d >= base - base / 10 && d <= base + base / 10,
                    "{interval} {failures} → {d}"
                );
            }
        }
        assert!(backoff_ms(u64::MAX, u32::MAX, &mut rng) <= 66_000);
    }

    #[test]
    fn loop_disables_after_100_consecutive_failures_and_recovers_counts_on_success() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = LoopState::new("cost-backfill", 30_000);
        for i in 1..100u32 {
            let AfterFailure::Retry { attempt, delay_ms } =
                s.handle_failure("boom", Instant::from_millis(u64::from(i)), &mut rng)
            else {
                panic!("disabled too early at {i}");
            };
            assert_eq!(attempt, i);
            assert!((54_000..=66_000).contains(&delay_ms));
        }
        assert_eq!(s.health(Instant::from_millis(100)).status, LoopStatus::Warn);
        let after = s.handle_failure("boom", Instant::from_millis(100), &mut rng);
        assert_eq!(
            after,
            AfterFailure::Disabled {
                total_failures: 100
            }
        );
        assert!(s.disabled);
        assert_eq!(s.health(Instant::from_millis(100)).status, LoopStatus::Fail);

        let mut t = LoopState::new("correlator", 10_000);
        t.handle_failure("x", Instant::from_millis(5), &mut rng);
        let next = t.handle_success(Instant::from_millis(9), &mut rng);
        assert!((9_000..=11_000).contains(&next));
        assert_eq!((t.consecutive_failures, t.total_failures), (0, 1));
        assert_eq!(t.health(Instant::from_millis(10)).status, LoopStatus::Pass);
    }

    #[test]
    fn first_runs_follow_the_table() {
        let delays: Vec<(&str, u64)> = LoopKind::ALL
            .iter()
            .map(|k| (k.name(), k.first_run_delay_ms(60_000)))
            .collect();
        assert_eq!(
            delays,
            [
                ("pricing-refresh", 60_000),
                ("cost-backfill", 0),
                ("correlator", 5_000),
                ("quota-refresh", 0),
                ("quota-retention", 0),
            ]
        );
        assert_eq!(
            QuotaRefreshSkip::AuthDirUnreadable.as_str(),
            "auth_dir_unreadable"
        );
    }

    #[test]
    fn health_renders_ages_only_once_known() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut s = LoopState::new("quota-refresh", 1_000);
        let fresh = serde_json::to_value(s.health(Instant::from_millis(50))).unwrap();
        assert_eq!(
            fresh,
            serde_json::json!({"name":"quota-refresh","consecutiveFailures":0,"status":"pass"})
        );
        s.handle_success(Instant::from_millis(100), &mut rng);
        s.handle_failure("e", Instant::from_millis(400), &mut rng);
        let h = serde_json::to_value(s.health(Instant::from_millis(1_000))).unwrap();
        assert_eq!(
            h,
            serde_json::json!({"name":"quota-refresh","consecutiveFailures":1,"status":"warn",
                "lastSuccessAgeMs":900,"lastErrorAgeMs":600})
        );
    }

    #[test]
    fn a_loop_held_by_another_replica_is_standby_and_healthy_until_it_runs_here() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut a = LoopState::new("correlator", 1_000);
        let delay = a.handle_standby(&mut rng);
        assert!((900..=1_100).contains(&delay), "{delay}");
        let now = Instant::from_millis(5_000);
        assert_eq!(a.health(now).status, LoopStatus::Standby);
        let mut b = LoopState::new("quota-refresh", 1_000);
        b.handle_success(now, &mut rng);
        let check = crate::ready::CheckResult::supervisor(&[a.clone(), b], now);
        assert_eq!(
            check.status,
            crate::ready::Status::Pass,
            "standby is not a failure"
        );
        assert_eq!(
            serde_json::to_value(a.health(now)).unwrap()["status"],
            "standby"
        );
        // Taking the loop over ends the standby; so does a failed claim.
        a.handle_success(now, &mut rng);
        assert_eq!(a.health(now).status, LoopStatus::Pass);
        a.handle_standby(&mut rng);
        a.handle_failure("loop lock: connection refused", now, &mut rng);
        assert_eq!(a.health(now).status, LoopStatus::Warn);
    }
}
