//! The listener and connection limits of `datapath.md` §1, one set for both shells. They are
//! constants in production; the test harness shortens the timers through
//! [`Limits::with_overrides`] so time-dependent cases run in seconds.

use std::time::Duration;

use crate::http1;

/// Largest `/admin/*` request body (key names and lists are tiny). Beyond it the answer is
/// 413 and the connection closes, since the rest of the body is never read.
pub const MAX_ADMIN_BODY: u64 = 1_048_576;

/// Listener and connection limits (`datapath.md` §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// First byte of the request line to the end of the headers (also the wait for the
    /// first byte of a new connection's first request).
    pub header_read_timeout: Duration,
    /// Between requests on a kept-alive connection.
    pub keep_alive_idle: Duration,
    /// No request-body byte for this long → 408 (E23).
    pub body_idle: Duration,
    /// Response bytes pending, none accepted by the socket → O12.
    pub write_stall: Duration,
    /// At most this many request headers.
    pub max_headers: usize,
    /// At most this many bytes of request head.
    pub max_header_block: usize,
    /// Longest request target.
    pub max_target: usize,
    /// Drain before aborting live exchanges at shutdown (`control.md` §9).
    pub drain: Duration,
    /// Hard stop of the shutdown drain.
    pub hard_stop: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_millis(30_000),
            keep_alive_idle: Duration::from_millis(120_000),
            body_idle: Duration::from_millis(30_000),
            write_stall: Duration::from_millis(300_000),
            max_headers: http1::MAX_HEADERS,
            max_header_block: http1::MAX_HEADER_BLOCK,
            max_target: http1::MAX_TARGET,
            drain: Duration::from_millis(10_000),
            hard_stop: Duration::from_millis(15_000),
        }
    }
}

impl Limits {
    /// Applies `key=ms` overrides separated by commas (`header_read_timeout_ms`,
    /// `keep_alive_idle_ms`, `body_idle_ms`, `write_stall_ms`, `drain_ms`, `hard_stop_ms`);
    /// unknown keys and bad numbers are ignored. Used by the test harness only.
    pub fn with_overrides(mut self, spec: &str) -> Limits {
        for (key, value) in spec.split(',').filter_map(|kv| kv.split_once('=')) {
            let Ok(ms) = value.trim().parse::<u64>() else {
                continue;
            };
            let d = Duration::from_millis(ms);
            match key.trim() {
                "header_read_timeout_ms" => self.header_read_timeout = d,
                "keep_alive_idle_ms" => self.keep_alive_idle = d,
                "body_idle_ms" => self.body_idle = d,
                "write_stall_ms" => self.write_stall = d,
                "drain_ms" => self.drain = d,
                "hard_stop_ms" => self.hard_stop = d,
                _ => {}
            }
        }
        self
    }

    /// The codec's share of the limits.
    pub fn codec(&self) -> http1::Limits {
        http1::Limits {
            max_headers: self.max_headers,
            max_header_block: self.max_header_block,
            max_target: self.max_target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_values_and_overrides_apply() {
        let d = Limits::default();
        assert_eq!(d.keep_alive_idle, Duration::from_millis(120_000));
        assert_eq!(d.codec(), http1::Limits::default());
        let o = d
            .clone()
            .with_overrides("body_idle_ms=1000, keep_alive_idle_ms=250,bogus=1,drain_ms=x");
        assert_eq!(o.body_idle, Duration::from_millis(1_000));
        assert_eq!(o.keep_alive_idle, Duration::from_millis(250));
        assert_eq!(o.drain, d.drain, "a bad number is ignored");
        assert_eq!(o.header_read_timeout, d.header_read_timeout);
    }
}
