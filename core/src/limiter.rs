//! The per-client rate limit (`datapath.md` §7): one token bucket per `tool` + U+0000 +
//! `client_id`, refilled continuously, bounded in number.
//!
//! Arithmetic is exact integers. Time is in microseconds ([`Instant`]); a token is
//! [`UNITS_PER_TOKEN`] = 60 000 000 units, so the refill of C/60 000 tokens per ms is exactly
//! C units per µs and never drifts.
//!
//! Bounds: buckets are kept in least-recently-used order (a `BTreeMap` keyed by a use
//! counter), so a request costs O(log n) and evicting the least recently used bucket when a
//! 65 537th would be created is O(log n). The idle sweep runs at most once per 60 000 ms and
//! walks that order from the oldest bucket, stopping at the first one idle for less than
//! 600 000 ms; it therefore only touches buckets it drops (plus one). A bucket idle that long
//! is always full (a full refill takes 60 000 ms), but fullness is still checked.
//!
//! An input `now` earlier than one already seen is clamped to the latest one.

use std::collections::BTreeMap;

use crate::time::Instant;

/// Units of one token.
pub const UNITS_PER_TOKEN: u64 = 60_000_000;
/// At most this many buckets exist.
pub const MAX_BUCKETS: usize = 65_536;
/// The sweep runs at most once per this many ms.
pub const SWEEP_INTERVAL_MS: u64 = 60_000;
/// A full bucket idle for at least this many ms is dropped by the sweep.
pub const IDLE_DROP_MS: u64 = 600_000;

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// A token was taken.
    Allowed,
    /// No token: answer E11 with this `retry-after`.
    Limited {
        /// Seconds until a token is available, at least 1.
        retry_after_secs: u64,
    },
}

/// All buckets of the rate limit.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: u64,
    buckets: BTreeMap<String, Bucket>,
    lru: BTreeMap<u64, String>,
    next_seq: u64,
    now: Instant,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Bucket {
    level: u64,
    updated: Instant,
    seq: u64,
}

impl RateLimiter {
    /// A limiter with `RATE_LIMIT_PER_CLIENT_PER_MIN` = `limit_per_min`; 0 disables it.
    pub fn new(limit_per_min: u32) -> Self {
        RateLimiter {
            limit: u64::from(limit_per_min),
            buckets: BTreeMap::new(),
            lru: BTreeMap::new(),
            next_seq: 0,
            now: Instant::ZERO,
            last_sweep: None,
        }
    }

    /// Takes one token from the bucket of `(tool, client_id)` at `now`.
    pub fn check(&mut self, tool: &str, client_id: &str, now: Instant) -> RateDecision {
        if self.limit == 0 {
            return RateDecision::Allowed;
        }
        let now = self.now.max(now);
        self.now = now;
        self.maybe_sweep(now);

        let key = bucket_key(tool, client_id);
        let seq = self.next_seq;
        self.next_seq += 1;
        let capacity = self.capacity();
        let limit = self.limit;
        let bucket = match self.buckets.get_mut(&key) {
            Some(b) => {
                self.lru.remove(&b.seq);
                b.level = refilled(b, now, limit, capacity);
                b.updated = now;
                b.seq = seq;
                b
            }
            None => {
                if self.buckets.len() >= MAX_BUCKETS {
                    self.evict_lru();
                }
                let fresh = Bucket {
                    level: capacity,
                    updated: now,
                    seq,
                };
                self.buckets.entry(key.clone()).or_insert(fresh)
            }
        };
        let decision = if bucket.level >= UNITS_PER_TOKEN {
            bucket.level -= UNITS_PER_TOKEN;
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after_secs: retry_after_secs(bucket.level, limit),
            }
        };
        self.lru.insert(seq, key);
        decision
    }

    /// The configured limit per minute (0: disabled).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Number of buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// True when a bucket for `(tool, client_id)` exists (no side effect).
    pub fn contains(&self, tool: &str, client_id: &str) -> bool {
        self.buckets.contains_key(&bucket_key(tool, client_id))
    }

    fn capacity(&self) -> u64 {
        self.limit.saturating_mul(UNITS_PER_TOKEN)
    }

    fn evict_lru(&mut self) {
        if let Some((_, key)) = self.lru.pop_first() {
            self.buckets.remove(&key);
        }
    }

    fn maybe_sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.millis_since(t) < SWEEP_INTERVAL_MS)
        {
            return;
        }
        self.last_sweep = Some(now);
        let capacity = self.capacity();
        while let Some(entry) = self.lru.first_entry() {
            let Some(bucket) = self.buckets.get(entry.get()) else {
                entry.remove();
                continue;
            };
            let idle = now.millis_since(bucket.updated) >= IDLE_DROP_MS;
            if !idle || refilled(bucket, now, self.limit, capacity) < capacity {
                break;
            }
            let key = entry.remove();
            self.buckets.remove(&key);
        }
    }
}

/// The bucket key: `tool` + U+0000 + `client_id`.
pub fn bucket_key(tool: &str, client_id: &str) -> String {
    let mut key = String::with_capacity(tool.len() + 1 + client_id.len());
    key.push_str(tool);
    key.push('\0');
    key.push_str(client_id);
    key
}

/// `s = max(1, ceil(ceil((1 − tokens) / (C/60000)) / 1000))` with `tokens = level / UNITS`:
/// the wait in ms is `(UNITS − level) / (1000 · C)`, rounded up.
fn retry_after_secs(level: u64, limit: u64) -> u64 {
    let missing = UNITS_PER_TOKEN.saturating_sub(level);
    let per_ms = limit.saturating_mul(1000).max(1);
    let ms = missing.div_ceil(per_ms);
    ms.div_ceil(1000).max(1)
}

fn refilled(b: &Bucket, now: Instant, limit: u64, capacity: u64) -> u64 {
    // A full refill takes 60 s, so longer gaps need not be multiplied (and cannot overflow).
    let elapsed_us = now
        .as_micros()
        .saturating_sub(b.updated.as_micros())
        .min(UNITS_PER_TOKEN);
    b.level
        .saturating_add(elapsed_us.saturating_mul(limit))
        .min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(t: u64) -> Instant {
        Instant::from_millis(t)
    }

    fn limited(secs: u64) -> RateDecision {
        RateDecision::Limited {
            retry_after_secs: secs,
        }
    }

    #[test]
    fn limit_one_right_after_a_request_is_sixty_seconds() {
        let mut l = RateLimiter::new(1);
        assert_eq!(l.check("codex", "codex", ms(1_000)), RateDecision::Allowed);
        assert_eq!(l.check("codex", "codex", ms(1_000)), limited(60));
        assert_eq!(l.check("codex", "codex", ms(1_001)), limited(60));
        assert_eq!(l.check("codex", "codex", ms(59_999)), limited(2));
        assert_eq!(l.check("codex", "codex", ms(60_500)), limited(1));
        assert_eq!(l.check("codex", "codex", ms(61_000)), RateDecision::Allowed);
    }

    #[test]
    fn retry_after_formula_table() {
        // (limit, requests at t=0, time of the probing request ms, expected)
        let cases: &[(u32, u32, u64, RateDecision)] = &[
            (60, 60, 0, limited(1)),
            (2, 2, 0, limited(30)),
            (2, 2, 15_000, limited(15)),
            (2, 2, 29_001, limited(1)),
            (2, 2, 30_000, RateDecision::Allowed),
            (7, 7, 0, limited(9)), // 60 000 / 7 = 8 571.4 ms → 8 572 ms → 9 s
            (1_000_000, 1_000_000, 0, limited(1)),
        ];
        for (limit, burst, at, want) in cases {
            let mut l = RateLimiter::new(*limit);
            for _ in 0..*burst {
                assert_eq!(l.check("t", "c", ms(0)), RateDecision::Allowed);
            }
            assert_eq!(l.check("t", "c", ms(*at)), *want, "limit {limit} at {at}");
        }
    }

    #[test]
    fn buckets_are_per_tool_and_client() {
        let mut l = RateLimiter::new(1);
        assert_eq!(l.check("codex", "codex-a", ms(0)), RateDecision::Allowed);
        assert_eq!(l.check("codex", "codex-b", ms(0)), RateDecision::Allowed);
        assert_eq!(
            l.check("claude-code", "codex-a", ms(0)),
            RateDecision::Allowed
        );
        assert_eq!(bucket_key("a", "b"), "a\u{0}b");
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn disabled_limiter_never_limits_or_allocates() {
        let mut l = RateLimiter::new(0);
        for i in 0..1000 {
            assert_eq!(l.check("t", "c", ms(i)), RateDecision::Allowed);
        }
        assert!(l.is_empty());
    }

    #[test]
    fn stale_time_is_clamped_and_adds_nothing() {
        let mut l = RateLimiter::new(1);
        assert_eq!(l.check("t", "c", ms(120_000)), RateDecision::Allowed);
        assert_eq!(l.check("t", "c", ms(0)), limited(60));
        assert_eq!(l.check("t", "c", ms(179_999)), limited(1));
        assert_eq!(l.check("t", "c", ms(180_000)), RateDecision::Allowed);
    }

    #[test]
    fn sweep_drops_full_idle_buckets_at_most_once_a_minute() {
        let mut l = RateLimiter::new(10);
        l.check("t", "old", ms(0)); // first call also runs the (empty) sweep at t=0
        l.check("t", "recent", ms(30_000));
        // Idle 599 999 ms at the sweep at t=599 999: kept.
        l.check("t", "probe", ms(599_999));
        assert!(l.contains("t", "old"));
        // Idle ≥ 600 000 ms but the last sweep was < 60 000 ms ago: kept.
        l.check("t", "probe", ms(620_000));
        assert!(l.contains("t", "old"));
        // Next sweep: "old" (idle 659 999 ms) dropped, "recent" (idle 629 999 ms) dropped too.
        l.check("t", "probe", ms(659_999));
        assert!(!l.contains("t", "old"));
        assert!(!l.contains("t", "recent"));
        assert!(l.contains("t", "probe"));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn bucket_count_is_bounded_with_lru_eviction() {
        let mut l = RateLimiter::new(5);
        l.check("t", "first", ms(0));
        l.check("t", "second", ms(0));
        // Touch "first" so "second" is the least recently used.
        l.check("t", "first", ms(1));
        for i in 0..(MAX_BUCKETS - 2) {
            l.check("t", &format!("c{i}"), ms(2));
        }
        assert_eq!(l.len(), MAX_BUCKETS);
        l.check("t", "one-more", ms(3));
        assert_eq!(l.len(), MAX_BUCKETS);
        assert!(!l.contains("t", "second"));
        assert!(l.contains("t", "first"));
        // RQ-L8: 100 000 distinct clients keep at most 65 536 buckets.
        for i in 0..100_000 {
            l.check("t", &format!("x{i}"), ms(4));
        }
        assert_eq!(l.len(), MAX_BUCKETS);
        assert_eq!(l.lru.len(), MAX_BUCKETS);
    }

    proptest! {
        /// Over any schedule, allowed requests never exceed the capacity plus what the exact
        /// continuous refill added by then.
        #[test]
        fn allowed_requests_match_exact_refill(
            limit in 1u32..200,
            gaps in proptest::collection::vec(0u64..5_000_000, 1..300),
        ) {
            let mut l = RateLimiter::new(limit);
            let mut t = 0u64;
            let mut allowed = 0u64;
            for gap in gaps {
                t += gap;
                if l.check("t", "c", Instant::from_micros(t)) == RateDecision::Allowed {
                    allowed += 1;
                }
                let refill_tokens = u128::from(t) * u128::from(limit) / u128::from(UNITS_PER_TOKEN);
                prop_assert!(u128::from(allowed) <= u128::from(limit) + refill_tokens);
            }
        }

        #[test]
        fn decisions_agree_with_rational_model(
            limit in 1u32..100,
            gaps in proptest::collection::vec(0u64..3_000_000, 1..200),
        ) {
            let mut l = RateLimiter::new(limit);
            // An independent replay in u128 of the §7 formulas, one token = 60 000 000 units.
            let cap = u128::from(limit) * 60_000_000;
            let mut level = cap;
            let mut t = 0u64;
            for gap in gaps {
                t += gap;
                level = (level + u128::from(gap) * u128::from(limit)).min(cap);
                let want = if level >= 60_000_000 {
                    level -= 60_000_000;
                    RateDecision::Allowed
                } else {
                    let ms = (60_000_000 - level).div_ceil(1000 * u128::from(limit));
                    limited(u64::try_from(ms.div_ceil(1000).max(1)).unwrap())
                };
                prop_assert_eq!(l.check("t", "c", Instant::from_micros(t)), want);
            }
        }
    }
}
