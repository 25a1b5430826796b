//! Circuit breakers, one per provider id (`datapath.md` §12.3), and their admin snapshot
//! (`control.md` §6.8).
//!
//! An exchange asks [`BreakerSet::admit`] once before its first attempt and reports exactly
//! one [`OutcomeClass`] when it ends by handing its [`Permit`] back to
//! [`BreakerSet::handle_outcome`]. The permit is neither `Clone` nor `Copy`, so it cannot be
//! reported twice.
//!
//! Choices where the spec is silent:
//! * The probe is identified by a number stored in its permit. A reset, or a success reported
//!   by another exchange, closes the breaker and forgets the probe; the old probe's outcome
//!   then counts as an ordinary outcome, so it can never free the slot of a later probe.
//! * A failure reported while the breaker is open, or half-open by an exchange that is not
//!   the probe, changes nothing: the breaker already reflects failure and the open window is
//!   not extended by stragglers. A success always closes (§12.3 "Success: → closed").
//! * Eviction may remove a closed breaker while an exchange admitted by it is still running;
//!   its later failure is counted on a fresh breaker, its success or neutral outcome is
//!   dropped (a fresh breaker would be in exactly that state).
//! * An input `now` earlier than one already seen is clamped to the latest one.

#[cfg(any(test, feature = "_fuzzing"))]
pub mod model;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::time::{Instant, UnixMillis};

/// Eviction runs at most once per this many ms, on admission.
pub const EVICTION_INTERVAL_MS: u64 = 60_000;

/// The three breaker variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// `UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES` (default 5).
    pub open_after_failures: u32,
    /// `UPSTREAM_CIRCUIT_BREAKER_HALF_OPEN_AFTER_MS` (default 30 000).
    pub half_open_after_ms: u64,
    /// `UPSTREAM_CIRCUIT_BREAKER_EVICT_AFTER_MS` (default 300 000).
    pub evict_after_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            open_after_failures: 5,
            half_open_after_ms: 30_000,
            evict_after_ms: 300_000,
        }
    }
}

/// A breaker state as reported by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum BreakerState {
    /// Requests flow.
    #[serde(rename = "closed")]
    Closed,
    /// Requests are rejected until the half-open window.
    #[serde(rename = "open")]
    Open,
    /// One probe request is let through.
    #[serde(rename = "half-open")]
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// How an exchange ended, for its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    /// Final 5xx (not the short-circuit 503), connection error, upstream timeout.
    Failure,
    /// 429, short-circuit 503, client disconnect, shutdown abort.
    Neutral,
    /// Anything else.
    Success,
}

/// The right to one upstream exchange; handed back exactly once with its outcome.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be returned through BreakerSet::handle_outcome"]
pub struct Permit {
    provider_id: String,
    probe: Option<u64>,
}

impl Permit {
    /// The breaker this permit belongs to.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    /// True when this exchange is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

/// An admission refused by an open breaker (answered with E15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The `retry-after` seconds: time left in the open window (at least 1), or 1 while a
    /// probe is in flight.
    pub retry_after_secs: u64,
}

/// One breaker as the admin API shows it (`control.md` §6.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSnapshot {
    /// The provider id.
    pub provider_id: String,
    /// The state at read time (an open breaker past its window reads half-open).
    pub state: BreakerState,
    /// Consecutive failures counted.
    pub failures: u32,
    /// When it opened, epoch ms; 0 when it has no open time.
    pub opened_at: u64,
    /// Last creation, outcome or reset, epoch ms.
    pub last_activity: u64,
}

/// Every provider's breaker.
#[derive(Debug, Clone)]
pub struct BreakerSet {
    config: BreakerConfig,
    breakers: BTreeMap<String, Breaker>,
    now: Instant,
    last_eviction: Option<Instant>,
    next_probe: u64,
}

#[derive(Debug, Clone)]
struct Breaker {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    last_activity: Instant,
    probe: Option<u64>,
}

impl Breaker {
    fn new(now: Instant) -> Self {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
            last_activity: now,
            probe: None,
        }
    }

    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.opened_at = None;
        self.probe = None;
    }
}

impl BreakerSet {
    /// An empty set.
    pub fn new(config: BreakerConfig) -> Self {
        BreakerSet {
            config,
            breakers: BTreeMap::new(),
            now: Instant::ZERO,
            last_eviction: None,
            next_probe: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Asks the breaker of `provider_id` (created closed if missing) to admit one exchange.
    pub fn admit(&mut self, provider_id: &str, now: Instant) -> Result<Permit, Rejected> {
        let now = self.clamp(now);
        self.maybe_evict(now);
        let window = self.config.half_open_after_ms;
        let breaker = self
            .breakers
            .entry(provider_id.to_owned())
            .or_insert_with(|| Breaker::new(now));
        if breaker.state == BreakerState::Open {
            let opened = breaker.opened_at.unwrap_or(Instant::ZERO);
            let reopens = opened.plus_millis(window);
            if now < reopens {
                let left_us = reopens.as_micros() - now.as_micros();
                return Err(Rejected {
                    retry_after_secs: left_us.div_ceil(1_000_000).max(1),
                });
            }
            breaker.state = BreakerState::HalfOpen;
        }
        let probe = match breaker.state {
            BreakerState::Closed => None,
            BreakerState::HalfOpen | BreakerState::Open => {
                if breaker.probe.is_some() {
                    return Err(Rejected {
                        retry_after_secs: 1,
                    });
                }
                self.next_probe += 1;
                breaker.probe = Some(self.next_probe);
                breaker.probe
            }
        };
        Ok(Permit {
            provider_id: provider_id.to_owned(),
            probe,
        })
    }

    /// Reports how the exchange holding `permit` ended. The probe slot is released whatever
    /// the outcome.
    pub fn handle_outcome(&mut self, permit: Permit, outcome: OutcomeClass, now: Instant) {
        let now = self.clamp(now);
        let threshold = self.config.open_after_failures.max(1);
        let breaker = match self.breakers.get_mut(&permit.provider_id) {
            Some(b) => b,
            None if outcome == OutcomeClass::Failure => self
                .breakers
                .entry(permit.provider_id)
                .or_insert_with(|| Breaker::new(now)),
            None => return,
        };
        let is_probe = permit.probe.is_some() && breaker.probe == permit.probe;
        if is_probe {
            breaker.probe = None;
        }
        breaker.last_activity = now;
        match outcome {
            OutcomeClass::Success => breaker.close(),
            OutcomeClass::Failure if is_probe => {
                breaker.state = BreakerState::Open;
                breaker.opened_at = Some(now);
                breaker.failures = threshold;
            }
            OutcomeClass::Failure if breaker.state == BreakerState::Closed => {
                breaker.failures = breaker.failures.saturating_add(1);
                if breaker.failures >= threshold {
                    breaker.state = BreakerState::Open;
                    breaker.opened_at = Some(now);
                }
            }
            OutcomeClass::Failure | OutcomeClass::Neutral => {}
        }
    }

    /// Admin reset: closed, no failures, no open time, probe slot cleared. False when the
    /// breaker does not exist.
    pub fn reset(&mut self, provider_id: &str, now: Instant) -> bool {
        let now = self.clamp(now);
        let Some(breaker) = self.breakers.get_mut(provider_id) else {
            return false;
        };
        breaker.close();
        breaker.last_activity = now;
        true
    }

    /// The snapshot of one breaker, times in epoch ms derived from `wall_now`.
    pub fn get(
        &self,
        provider_id: &str,
        now: Instant,
        wall_now: UnixMillis,
    ) -> Option<BreakerSnapshot> {
        let breaker = self.breakers.get(provider_id)?;
        Some(self.render(provider_id, breaker, now.max(self.now), wall_now))
    }

    /// Every breaker, sorted by provider id.
    pub fn snapshot(&self, now: Instant, wall_now: UnixMillis) -> Vec<BreakerSnapshot> {
        let now = now.max(self.now);
        self.breakers
            .iter()
            .map(|(id, b)| self.render(id, b, now, wall_now))
            .collect()
    }

    /// Number of breakers held.
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// True when no breaker exists.
    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn maybe_evict(&mut self, now: Instant) {
        if self
            .last_eviction
            .is_some_and(|t| now.millis_since(t) < EVICTION_INTERVAL_MS)
        {
            return;
        }
        self.last_eviction = Some(now);
        let idle = self.config.evict_after_ms;
        self.breakers.retain(|_, b| {
            let evictable = b.state == BreakerState::Closed
                && b.failures == 0
                && now.millis_since(b.last_activity) >= idle;
            !evictable
        });
    }

    fn render(&self, id: &str, b: &Breaker, now: Instant, wall_now: UnixMillis) -> BreakerSnapshot {
        let epoch = |t: Instant| wall_now.0.saturating_sub(now.millis_since(t));
        let state = match (b.state, b.opened_at) {
            (BreakerState::Open, Some(at))
                if now >= at.plus_millis(self.config.half_open_after_ms) =>
            {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        };
        BreakerSnapshot {
            provider_id: id.to_owned(),
            state,
            failures: b.failures,
            opened_at: b.opened_at.map_or(0, epoch),
            last_activity: epoch(b.last_activity),
        }
    }
}

#[cfg(test)]
mod tests;
