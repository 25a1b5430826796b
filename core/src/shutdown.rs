//! The shutdown sequence (`control.md` §9): which signal maps to which exit code, and the
//! drain of steps 2–4 as a state machine the shells run with their own timers.
//!
//! The shell stops accepting, then calls [`Drain::step`] with the time, the requests in
//! flight and the connections still open, performs what it gets back, and calls again (after
//! a [`DrainStep::Wait`]: once the instant passes or a request ends, whichever is first)
//! until [`DrainStep::Done`]. Steps 5–8 (loops, storage) follow in the shell and the CLI.
//!
//! Choices where the spec is silent: idle keep-alive connections, told to close when the
//! drain starts, get [`CUT_GRACE_MS`] to do so before every connection left is cut; the
//! `shutdown.hard_kill` warning is logged only when a request was still in flight.

use std::time::Duration;

use serde_json::json;

use crate::exchange::{Level, LogRecord};
use crate::time::Instant;

/// How often the drain re-checks the requests in flight when no request ends.
pub const DRAIN_TICK_MS: u64 = 25;
/// How long idle connections get to close before the rest are cut.
pub const CUT_GRACE_MS: u64 = 100;
/// How often the cut grace re-checks the open connections.
const CUT_TICK_MS: u64 = 5;

/// The signals that start a shutdown (§9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT.
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP.
    Hup,
}

impl Signal {
    /// The `signal` field of `shutdown.signal`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    /// The exit code of `serve` (§9.3).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 0,
            Signal::Term => 143,
            Signal::Hup => 129,
        }
    }
}

/// What the shell does next during the drain.
#[derive(Debug, PartialEq)]
pub enum DrainStep {
    /// Log this record.
    Log(LogRecord),
    /// Abort every live exchange with reason `shutdown` (outcome O13).
    AbortExchanges,
    /// Sleep until this instant, or until a request ends.
    Wait(Instant),
    /// Close every connection still open, now.
    CloseConnections,
    /// The drain is over: stop the loops next.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Draining,
    Abort,
    Aborting,
    Ending,
    Cutting { until: Instant },
    Closed,
}

/// Steps 2–4 of `control.md` §9.2.
#[derive(Debug, Clone)]
pub struct Drain {
    started: Instant,
    drain_until: Instant,
    hard_until: Instant,
    phase: Phase,
}

impl Drain {
    /// A drain that started at `started` (when the signal arrived), aborting live exchanges
    /// after `drain` and cutting connections after `hard_stop`.
    pub fn new(started: Instant, drain: Duration, hard_stop: Duration) -> Drain {
        Drain {
            started,
            drain_until: started + drain,
            hard_until: started + hard_stop,
            phase: Phase::Draining,
        }
    }

    /// The next thing to do, given the requests in flight and the connections still open.
    pub fn step(&mut self, now: Instant, in_flight: usize, open_connections: usize) -> DrainStep {
        loop {
            match self.phase {
                Phase::Draining => {
                    if in_flight > 0 && now < self.drain_until {
                        return DrainStep::Wait(tick(now, DRAIN_TICK_MS, self.drain_until));
                    }
                    self.phase = if in_flight > 0 {
                        Phase::Abort
                    } else {
                        Phase::Ending
                    };
                    return DrainStep::Log(LogRecord {
                        level: Level::Info,
                        event: "shutdown.drain",
                        msg: "drain finished",
                        fields: vec![
                            ("pending_requests", json!(in_flight)),
                            ("elapsed_ms", json!(now.millis_since(self.started))),
                        ],
                    });
                }
                Phase::Abort => {
                    self.phase = Phase::Aborting;
                    return DrainStep::AbortExchanges;
                }
                Phase::Aborting => {
                    if in_flight > 0 && now < self.hard_until {
                        return DrainStep::Wait(tick(now, DRAIN_TICK_MS, self.hard_until));
                    }
                    self.phase = Phase::Ending;
                }
                Phase::Ending => {
                    if in_flight == 0 && open_connections == 0 {
                        self.phase = Phase::Closed;
                        continue;
                    }
                    self.phase = Phase::Cutting {
                        until: now + Duration::from_millis(CUT_GRACE_MS),
                    };
                    if in_flight > 0 {
                        return DrainStep::Log(LogRecord {
                            level: Level::Warn,
                            event: "shutdown.hard_kill",
                            msg: "closing remaining connections",
                            fields: vec![("remaining", json!(in_flight))],
                        });
                    }
                }
                Phase::Cutting { until } => {
                    if open_connections > 0 && now < until {
                        return DrainStep::Wait(tick(now, CUT_TICK_MS, until));
                    }
                    self.phase = Phase::Closed;
                    return DrainStep::CloseConnections;
                }
                Phase::Closed => return DrainStep::Done,
            }
        }
    }
}

fn tick(now: Instant, ms: u64, limit: Instant) -> Instant {
    (now + Duration::from_millis(ms)).min(limit)
}

#[cfg(test)]
mod tests;
