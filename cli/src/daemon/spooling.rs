//! The exchange's storage operations on the spool (`docs/spool.md` §2): each is appended with
//! one `write` and answered at once, so no exchange waits for the database. Both shells call
//! [`Daemon::drain_storage`] where they used to queue writer commands and await replies.

use agent_cli_proxy_core::exchange::{Exchange, StorageFailure, StorageOp};
use agent_cli_proxy_core::metrics::SpoolSnapshot;
use agent_cli_proxy_core::ready::SpoolFacts;
use agent_cli_proxy_storage::from_core::op_from_exchange;
use agent_cli_proxy_storage::spool::{Kind, Record};
use agent_cli_proxy_storage::{Op, Reply as StoreReply};

use super::Daemon;

/// Read-your-writes of an admin answer (`docs/spool.md` S6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Milliseconds the oldest record not yet in the database has waited; `None` when the
    /// answer reflects every record spooled before the request.
    pub lag_ms: Option<u64>,
}

impl Daemon {
    /// Steps 1 and 2 of the drain order (`docs/style.md` §3): every storage operation
    /// performed, then the upstream operation that stands. Each one replaces the one before
    /// (a send supersedes the previous attempt, a cancel drops it), so only the last counts.
    pub fn drain_to_upstream(
        &self,
        ex: &mut Exchange,
    ) -> Option<agent_cli_proxy_core::exchange::UpstreamOp> {
        self.drain_storage(ex);
        let mut last = None;
        while let Some(op) = ex.poll_upstream() {
            last = Some(op);
        }
        last
    }

    /// A drive loop's start: an exchange begun after the shutdown signal hears of it at
    /// once. Returns whether the signal has been seen.
    pub fn begin_drive(&self, ex: &mut Exchange, shutdown_fired: bool) -> bool {
        if shutdown_fired {
            ex.handle_shutdown(self.now());
        }
        shutdown_fired
    }

    /// Hands every event `ex` has queued to the core, logger and metrics (step 4 of the
    /// drain order, `docs/style.md` §3); true once the exchange reported `Finished`.
    pub fn drain_events(&self, ex: &mut Exchange) -> bool {
        let mut finished = false;
        while let Some(ev) = ex.poll_event() {
            match ev {
                agent_cli_proxy_core::exchange::ExchangeEvent::Finished => finished = true,
                other => self.handle_event(other),
            }
        }
        finished
    }

    /// Performs every storage operation `ex` has queued, feeding each result back before
    /// taking the next (a result may queue more).
    pub fn drain_storage(&self, ex: &mut Exchange) {
        while let Some(op) = ex.poll_storage() {
            // The pre-log row carries its own request id; the later records name the call.
            match op {
                StorageOp::PreLog(row) => {
                    let res = self.spool.append(&Record::Begin(row)).map(|seq| seq as i64);
                    ex.handle_prelog(res.map_err(|e| failure(&e)), self.now());
                }
                StorageOp::CheckpointUsage { columns, .. } => {
                    // Fire-and-forget, as before: boot recovery costs from the last one that
                    // made it, and the finalize carries the full counts anyway.
                    let _ = self.spool.append(&Record::Usage {
                        request_id: ex.request_id().to_owned(),
                        tokens: columns,
                    });
                }
                op @ StorageOp::Finalize(_) => {
                    let Op::Finalize(row) = op_from_exchange(op) else {
                        continue;
                    };
                    let request_id = ex.request_id().to_owned();
                    let res = self.spool.append(&Record::End { request_id, row });
                    ex.handle_finalized(res.map(|_| ()).map_err(|e| failure(&e)), self.now());
                }
                StorageOp::FinalizeFallback { message, at, .. } => {
                    let res = self.spool.append(&Record::Fallback {
                        request_id: ex.request_id().to_owned(),
                        message,
                        now: at,
                    });
                    ex.handle_finalized(res.map(|_| ()).map_err(|e| failure(&e)), self.now());
                }
            }
        }
    }

    /// The spool's figures for `/metrics`.
    pub fn spool_snapshot(&self) -> SpoolSnapshot {
        let stats = self.spool.stats();
        let (batch_buckets, batch_count, batch_sum) = self.ingest.histogram();
        SpoolSnapshot {
            bytes: stats.bytes(),
            records: [Kind::Begin, Kind::Usage, Kind::End, Kind::Fallback]
                .map(|k| (k.label(), stats.records(k))),
            ingest_lag_ms: self.ingest.lag_ms(),
            ingest_failures: self.ingest.failures(),
            batch_buckets,
            batch_count,
            batch_sum,
        }
    }

    /// The spool's state for `/ready`.
    pub fn spool_facts(&self) -> SpoolFacts {
        let stats = self.spool.stats();
        SpoolFacts {
            bytes: stats.bytes(),
            lag_ms: self.ingest.lag_ms(),
            refusing: stats.refusing(),
        }
    }

    /// Applies every spooled record before an admin answer or `/metrics` (blocking: call it
    /// where the shell runs blocking work). Bounded by the writer: a refused batch answers at
    /// once with the lag.
    pub fn flush_spool(&self) -> Flushed {
        match futures_lite::future::block_on(self.writer.send(Op::SpoolFlush)) {
            Ok(StoreReply::Flushed { behind: 0, .. }) => Flushed { lag_ms: None },
            Ok(StoreReply::Flushed { lag_ms, .. }) => Flushed {
                lag_ms: Some(lag_ms),
            },
            _ => Flushed {
                lag_ms: Some(self.ingest.lag_ms()),
            },
        }
    }
}

fn failure(e: &impl std::fmt::Display) -> StorageFailure {
    StorageFailure {
        message: e.to_string(),
    }
}
