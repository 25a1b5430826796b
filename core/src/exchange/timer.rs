//! The exchange's timers as a small table of deadlines; the next wakeup is the minimum.

use crate::time::Instant;

use super::ExchangeLimits;

/// What a deadline is for (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeTimer {
    /// `UPSTREAM_CONNECT_TIMEOUT_MS`: attempt start → response head.
    Header,
    /// `UPSTREAM_TIMEOUT_MS` or the first-byte timeout.
    Total,
    /// Backoff before the next attempt.
    Backoff,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    pub header: Option<Instant>,
    pub total: Option<Instant>,
    pub backoff: Option<Instant>,
}

impl Timers {
    pub fn arm_attempt(&mut self, now: Instant, limits: &ExchangeLimits, first_byte: bool) {
        self.header =
            (limits.connect_timeout_ms > 0).then(|| now.plus_millis(limits.connect_timeout_ms));
        let total_ms = if first_byte && limits.first_byte_timeout_ms > 0 {
            limits.first_byte_timeout_ms
        } else {
            limits.total_timeout_ms
        };
        self.total = (total_ms > 0).then(|| now.plus_millis(total_ms));
    }

    pub fn clear_attempt(&mut self) {
        self.header = None;
        self.total = None;
    }

    pub fn next(&self) -> Option<(Instant, ExchangeTimer)> {
        [
            self.header.map(|t| (t, ExchangeTimer::Header)),
            self.total.map(|t| (t, ExchangeTimer::Total)),
            self.backoff.map(|t| (t, ExchangeTimer::Backoff)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }
}
