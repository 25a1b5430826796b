//! A deterministic simulation of one exchange driven exactly as a shell drives it
//! (`style.md` §7): after every input it drains `poll_storage`, `poll_upstream`,
//! `poll_downstream`, `poll_event` in that order, records everything, answers storage
//! operations, feeds scripted upstream heads, chunks, ends and errors, and jumps virtual time
//! to `min(next scripted input, poll_timeout)`. No sleeps, no sockets, a fixed seed.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::{
    Downstream, Exchange, ExchangeEvent, FinalizeRow, MetricEvent, StorageFailure, StorageOp,
    UpstreamFailure, UpstreamOp,
};
use crate::breaker::OutcomeClass;
use crate::head::{Reply, RequestHead, ResponseHead};
use crate::proxy::{Core, InboundRequest, KeyLookup, StartAction};
use crate::time::{Instant, UnixMillis};

/// Wall time of the simulated start (2025-01-02T03:04:05.006Z).
pub(crate) const WALL: UnixMillis = UnixMillis(1_735_787_045_006);

/// A `Core` from a small environment map (plus `HOME` and `CLI_PROXY_API_URL`) and the
/// price table of `accounting.md` §7.
pub(crate) fn core(env: &[(&str, &str)]) -> Core {
    crate::fuzzing::exchange::core_from_env(env).expect("valid env")
}

/// Headers from pairs.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    map
}

/// An inbound request from loopback with no credential.
pub(crate) fn request(
    method: &str,
    target: &str,
    pairs: &[(&str, &str)],
    body: &str,
) -> InboundRequest {
    InboundRequest {
        head: RequestHead::new(
            Method::from_bytes(method.as_bytes()).expect("method"),
            target,
            headers(pairs),
        ),
        body: Bytes::copy_from_slice(body.as_bytes()),
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        request_id: "req-1".to_owned(),
        key: KeyLookup::NoCredential,
    }
}

/// A response head.
pub(crate) fn head(status: u16, pairs: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status: StatusCode::from_u16(status).expect("status"),
        headers: headers(pairs),
    }
}

/// One scripted upstream input.
#[derive(Debug, Clone)]
pub(crate) enum Up {
    /// `handle_upstream_written`.
    Written,
    /// `handle_upstream_head`.
    Head(ResponseHead),
    /// `handle_upstream_body`.
    Body(Bytes),
    /// `handle_upstream_end`.
    End,
    /// `handle_upstream_error`.
    Error(UpstreamFailure),
}

/// Body bytes.
pub(crate) fn body(text: &str) -> Up {
    Up::Body(Bytes::copy_from_slice(text.as_bytes()))
}

/// Any input the simulation feeds.
#[derive(Debug, Clone)]
pub(crate) enum Feed {
    /// An upstream input of the attempt with this number.
    Up(u32, Up),
    /// The reply to the pre-log.
    Prelog,
    /// The reply to a finalize or its fallback.
    Finalized,
    /// `handle_client_gone`.
    ClientGone,
    /// `handle_client_stalled`.
    Stalled,
    /// `handle_shutdown`.
    Shutdown,
    /// `handle_timeout` at a scripted time (an early or repeated call).
    Timeout,
    /// Any input with an older `now` than the last one (clamped by the exchange).
    StaleTimeout,
}

/// An event as recorded (the permit itself goes back to the core).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ev {
    /// `ExchangeEvent::Outcome`.
    Outcome(OutcomeClass),
    /// A log event name.
    Log(&'static str),
    /// A metric.
    Metric(MetricEvent),
    /// `Finished`.
    Finished,
}

/// One recorded step.
#[derive(Debug, Clone)]
pub(crate) enum Rec {
    /// An input was fed (its name).
    In(&'static str),
    /// A storage operation.
    Storage(StorageOp),
    /// An upstream operation.
    Upstream(UpstreamOp),
    /// A client output.
    Down(Downstream),
    /// An event.
    Event(Ev),
}

/// The simulation.
pub(crate) struct Sim {
    pub core: Core,
    pub ex: Option<Box<Exchange>>,
    /// The reply of `Core::start`, when it answered at once.
    pub reply: Option<Reply>,
    pub now: Instant,
    pub trace: Vec<(u64, Rec)>,
    pub had_permit: bool,
    /// Reply to the pre-log.
    pub prelog: Result<i64, StorageFailure>,
    /// Replies to finalize operations, in order (then `Ok`).
    pub finalize_replies: VecDeque<Result<(), StorageFailure>>,
    /// Storage round trip in ms.
    pub storage_ms: u64,
    attempts: VecDeque<Vec<(u64, Up)>>,
    upcoming: Vec<(Instant, u64, Feed)>,
    seq: u64,
}

impl Sim {
    /// Starts an exchange with `Core::start` at virtual time 0.
    pub fn start(mut core: Core, req: InboundRequest) -> Sim {
        let now = Instant::ZERO;
        let start = core.start(req, now, WALL);
        let (ex, reply) = match start.action {
            StartAction::Reply(r) => (None, Some(r)),
            StartAction::Exchange(ex) => (Some(ex), None),
        };
        let had_permit = ex.as_ref().is_some_and(|e| e.holds_permit());
        let mut sim = Sim {
            core,
            ex,
            reply,
            now,
            trace: Vec::new(),
            had_permit,
            prelog: Ok(41),
            finalize_replies: VecDeque::new(),
            storage_ms: 1,
            attempts: VecDeque::new(),
            upcoming: Vec::new(),
            seq: 0,
        };
        for ev in start.events {
            sim.record_event(ev);
        }
        sim
    }

    /// Scripts the next upstream attempt: inputs at ms after its `Send`.
    pub fn attempt(&mut self, steps: Vec<(u64, Up)>) -> &mut Self {
        self.attempts.push_back(steps);
        self
    }

    /// Schedules `feed` at absolute virtual time `ms`.
    pub fn at(&mut self, ms: u64, feed: Feed) -> &mut Self {
        self.schedule(Instant::from_millis(ms), feed);
        self
    }

    /// Drives the exchange until it finishes or nothing more can happen.
    pub fn run(&mut self) -> &mut Self {
        self.drain();
        for _ in 0..100_000 {
            let Some(ex) = &self.ex else {
                break;
            };
            if ex.is_finished() {
                break;
            }
            let deadline = ex.poll_timeout().map(|(t, _)| t);
            let next = self
                .upcoming
                .iter()
                .enumerate()
                .min_by_key(|(_, (t, seq, _))| (*t, *seq))
                .map(|(i, (t, _, _))| (i, *t));
            match (deadline, next) {
                (Some(d), Some((_, t))) if d <= t => self.fire_timeout(d),
                (Some(d), None) => self.fire_timeout(d),
                (_, Some((i, t))) => {
                    let (_, _, feed) = self.upcoming.remove(i);
                    self.now = self.now.max(t);
                    self.feed(feed);
                }
                (None, None) => break,
            }
            self.drain();
        }
        self
    }

    // ----- reading the record -----

    /// Every client output, in order.
    pub fn downs(&self) -> Vec<Downstream> {
        self.trace
            .iter()
            .filter_map(|(_, r)| match r {
                Rec::Down(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// The bytes the client received.
    pub fn client_bytes(&self) -> String {
        let mut out = Vec::new();
        for d in self.downs() {
            if let Downstream::Body(b) = d {
                out.extend_from_slice(&b);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The client's reply (error responses).
    pub fn client_reply(&self) -> Option<Reply> {
        self.downs().into_iter().find_map(|d| match d {
            Downstream::Reply(r) => Some(r),
            _ => None,
        })
    }

    /// Every storage operation.
    pub fn storage(&self) -> Vec<StorageOp> {
        self.trace
            .iter()
            .filter_map(|(_, r)| match r {
                Rec::Storage(op) => Some(op.clone()),
                _ => None,
            })
            .collect()
    }

    /// The one finalize (asserts there is exactly one).
    pub fn finalize(&self) -> FinalizeRow {
        let rows: Vec<FinalizeRow> = self
            .storage()
            .into_iter()
            .filter_map(|op| match op {
                StorageOp::Finalize(row) => Some(*row),
                _ => None,
            })
            .collect();
        assert_eq!(rows.len(), 1, "exactly one finalize: {rows:?}");
        rows.into_iter().next().expect("one row")
    }

    /// Times (ms) of every `Send`.
    pub fn sends(&self) -> Vec<u64> {
        self.trace
            .iter()
            .filter_map(|(t, r)| matches!(r, Rec::Upstream(UpstreamOp::Send { .. })).then_some(*t))
            .collect()
    }

    /// Number of `Cancel` operations.
    pub fn cancels(&self) -> usize {
        self.trace
            .iter()
            .filter(|(_, r)| matches!(r, Rec::Upstream(UpstreamOp::Cancel)))
            .count()
    }

    /// Every recorded event.
    pub fn events(&self) -> Vec<Ev> {
        self.trace
            .iter()
            .filter_map(|(_, r)| match r {
                Rec::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The breaker classes reported.
    pub fn outcomes(&self) -> Vec<OutcomeClass> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Outcome(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Whether a log event of that name was emitted.
    pub fn logged(&self, name: &str) -> bool {
        self.events()
            .iter()
            .any(|e| matches!(e, Ev::Log(n) if *n == name))
    }

    /// Index in the trace of the first record matching `f`.
    pub fn position(&self, f: impl Fn(&Rec) -> bool) -> Option<usize> {
        self.trace.iter().position(|(_, r)| f(r))
    }

    /// Index of the first input named `name`.
    pub fn input_at(&self, name: &str) -> Option<usize> {
        self.position(|r| matches!(r, Rec::In(n) if *n == name))
    }

    /// The invariants every scenario must keep: `Finished` exactly once and last; at most
    /// one finalize; the permit returned exactly once when the exchange held one; the end of
    /// the client output of a row only after a finalize reply.
    pub fn check_invariants(&self) {
        if self.ex.is_none() {
            assert!(self.reply.is_some(), "no exchange means an immediate reply");
            return;
        }
        let finished: Vec<usize> = self
            .trace
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| matches!(r, Rec::Event(Ev::Finished)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(finished.len(), 1, "Finished exactly once");
        let after = self
            .trace
            .get(finished[0] + 1..)
            .unwrap_or_default()
            .iter()
            .filter(|(_, r)| !matches!(r, Rec::In(_)))
            .count();
        assert_eq!(after, 0, "nothing after Finished");
        let finalizes = self
            .storage()
            .iter()
            .filter(|op| matches!(op, StorageOp::Finalize(_)))
            .count();
        assert!(finalizes <= 1, "at most one finalize");
        let expected = usize::from(self.had_permit);
        assert_eq!(self.outcomes().len(), expected, "permit returned once");
        if finalizes == 1 {
            let first_reply = self.input_at("finalized").expect("a finalize reply");
            let finalize_at = self
                .position(|r| matches!(r, Rec::Storage(StorageOp::Finalize(_))))
                .expect("finalize");
            assert!(finalize_at < first_reply, "the reply follows the finalize");
            for (i, (_, r)) in self.trace.iter().enumerate() {
                if let Rec::Down(Downstream::End | Downstream::Reply(_)) = r {
                    assert!(i > first_reply, "a row's output ends after its commit");
                }
            }
        }
    }

    // ----- driving -----

    fn schedule(&mut self, at: Instant, feed: Feed) {
        self.seq += 1;
        self.upcoming.push((at, self.seq, feed));
    }

    fn fire_timeout(&mut self, deadline: Instant) {
        self.now = self.now.max(deadline);
        self.feed(Feed::Timeout);
    }

    fn feed(&mut self, feed: Feed) {
        let now = self.now;
        let Some(ex) = self.ex.as_mut() else {
            return;
        };
        let name = match feed {
            Feed::Up(n, Up::Written) => {
                ex.handle_upstream_written(n, now);
                "written"
            }
            Feed::Up(n, Up::Head(h)) => {
                ex.handle_upstream_head(n, h, now);
                "head"
            }
            Feed::Up(n, Up::Body(b)) => {
                ex.handle_upstream_body(n, b, now);
                "body"
            }
            Feed::Up(n, Up::End) => {
                ex.handle_upstream_end(n, now);
                "end"
            }
            Feed::Up(n, Up::Error(f)) => {
                ex.handle_upstream_error(n, f, now);
                "error"
            }
            Feed::Prelog => {
                ex.handle_prelog(self.prelog.clone(), now);
                "prelog"
            }
            Feed::Finalized => {
                let res = self.finalize_replies.pop_front().unwrap_or(Ok(()));
                ex.handle_finalized(res, now);
                "finalized"
            }
            Feed::ClientGone => {
                ex.handle_client_gone(now);
                "client_gone"
            }
            Feed::Stalled => {
                ex.handle_client_stalled(now);
                "stalled"
            }
            Feed::Shutdown => {
                ex.handle_shutdown(now);
                "shutdown"
            }
            Feed::Timeout => {
                ex.handle_timeout(now);
                "timeout"
            }
            Feed::StaleTimeout => {
                ex.handle_timeout(Instant::ZERO);
                "stale_timeout"
            }
        };
        self.record(Rec::In(name));
    }

    /// Drains in the contract's order, answering storage and starting scripted attempts.
    fn drain(&mut self) {
        let Some(mut ex) = self.ex.take() else {
            return;
        };
        while let Some(op) = ex.poll_storage() {
            match &op {
                StorageOp::PreLog(_) => {
                    self.schedule(self.now.plus_millis(self.storage_ms), Feed::Prelog);
                }
                StorageOp::Finalize(_) | StorageOp::FinalizeFallback { .. } => {
                    self.schedule(self.now.plus_millis(self.storage_ms), Feed::Finalized);
                }
                StorageOp::CheckpointUsage { .. } => {}
            }
            self.record(Rec::Storage(op));
        }
        while let Some(op) = ex.poll_upstream() {
            match &op {
                UpstreamOp::Send { attempt, .. } => {
                    let steps = self.attempts.pop_front().unwrap_or_default();
                    for (ms, up) in steps {
                        self.schedule(self.now.plus_millis(ms), Feed::Up(*attempt, up));
                    }
                }
                UpstreamOp::Cancel => {
                    self.upcoming.retain(|(_, _, f)| !matches!(f, Feed::Up(..)));
                }
            }
            self.record(Rec::Upstream(op));
        }
        while let Some(d) = ex.poll_downstream() {
            self.record(Rec::Down(d));
        }
        while let Some(ev) = ex.poll_event() {
            self.record_event(ev);
        }
        // Draining a later queue never refills an earlier one.
        assert!(ex.poll_storage().is_none(), "storage refilled by the drain");
        assert!(
            ex.poll_upstream().is_none(),
            "upstream refilled by the drain"
        );
        assert!(
            ex.poll_downstream().is_none(),
            "downstream refilled by the drain"
        );
        self.ex = Some(ex);
    }

    fn record_event(&mut self, ev: ExchangeEvent) {
        let ev = match ev {
            ExchangeEvent::Outcome { permit, class } => {
                self.core.handle_outcome(permit, class, self.now);
                Ev::Outcome(class)
            }
            ExchangeEvent::Log(l) => Ev::Log(l.event),
            ExchangeEvent::Metric(m) => Ev::Metric(m),
            ExchangeEvent::Finished => Ev::Finished,
        };
        self.record(Rec::Event(ev));
    }

    fn record(&mut self, rec: Rec) {
        self.trace.push((self.now.as_micros() / 1000, rec));
    }
}
