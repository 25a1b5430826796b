//! Fuzz body of `exchange_ops` (`reliability.md` §6): an arbitrary sequence of exchange
//! inputs at arbitrary times, drained in the contract's order after each one.
//!
//! Input layout: byte 0 picks the request (LLM stream, LLM plain, non-LLM GET, Chat stream
//! with usage injection), byte 1 the limits (timeouts, retries); then pairs of bytes
//! `(op, arg)` (see [`Op`]). After the sequence the model settles the exchange (answers the
//! storage, the client leaves) and checks it finishes.
//!
//! Oracle (panics on violation):
//! * no panic inside the exchange;
//! * after a drain in order, every queue is empty (draining never refills an earlier queue);
//! * an LLM call sends nothing upstream before its pre-log committed;
//! * at most one finalize (and one fallback, after it); exactly one once the pre-log
//!   committed and the exchange finished;
//! * a row's output ends (End or a reply) only after the finalize reply, and once an input
//!   has queued the finalize, later inputs move no client output before that reply except
//!   the cut of a write stall;
//! * `Finished` at most once and nothing after it; the breaker permit comes back exactly
//!   once when the exchange held one.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::config::{Config, ExternalInputs};
use crate::errors::NetworkErrorName;
use crate::exchange::{
    Downstream, Exchange, ExchangeEvent, StorageFailure, StorageOp, UpstreamFailure, UpstreamOp,
};
use crate::head::{RequestHead, ResponseHead};
use crate::pricing::PriceTable;
use crate::proxy::{Core, InboundRequest, KeyLookup, StartAction};
use crate::time::{Instant, UnixMillis};

/// The price table of `accounting.md` §7 as a models.dev document.
pub const PRICES: &str = r#"{
  "anthropic": {"id": "anthropic", "models": {"claude-sonnet-4-5": {"id": "claude-sonnet-4-5",
    "cost": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
             "context_over_200k": {"input": 6, "output": 22.5, "cache_read": 0.6, "cache_write": 7.5}}}}},
  "openai": {"id": "openai", "models": {"gpt-5": {"id": "gpt-5",
    "cost": {"input": 1.25, "output": 10, "cache_read": 0.125}}}}
}"#;

/// A `Core` from a small environment map (plus `HOME` and `CLI_PROXY_API_URL`) and the
/// price table of §7; `None` when the map is not a valid configuration.
pub fn core_from_env(env: &[(&str, &str)]) -> Option<Core> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    map.insert("HOME".into(), "/home/sim".into());
    map.insert("CLI_PROXY_API_URL".into(), "http://127.0.0.1:8317".into());
    for (k, v) in env {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let (config, _) = Config::from_env(&map, &ExternalInputs::default()).ok()?;
    let table = PriceTable::from_models_dev(PRICES.as_bytes()).ok()?;
    Some(Core::new(Arc::new(config), Arc::new(table), 7))
}

/// Chunks the upstream body ops pick from: W2 pieces, terminals, the W5 usage chunk, line
/// endings split across chunks, a short-circuit body.
const CHUNKS: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":2000,\"cache_read_input_tokens\":50000,\"cache_creation_input_tokens\":10000,\"output_tokens\":1}}}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":812}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    "event: message_st",
    "op\ndata: {}\r",
    "\n\r\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
    "data: [DONE]\n\n",
    "{\"type\":\"message\",\"usage\":{\"input_tokens\":10,\"output_tokens\":5}}",
    "{\"error\":{\"code\":\"short-circuit\"}}",
    "{\"done\":true,\"prompt_eval_count\":3,\"eval_count\":4}\n",
    ": comment\n",
];

/// The operations, by `op % 16`.
#[derive(Debug, Clone, Copy)]
enum Op {
    PreLogOk,
    PreLogErr,
    Head,
    Body,
    End,
    ConnectErr,
    ReadErr,
    FinalizeOk,
    FinalizeErr,
    ClientGone,
    Stalled,
    Shutdown,
    Timeout,
    TimeoutAtDeadline,
    Written,
    Stale,
}

const OPS: [Op; 16] = [
    Op::PreLogOk,
    Op::PreLogErr,
    Op::Head,
    Op::Body,
    Op::End,
    Op::ConnectErr,
    Op::ReadErr,
    Op::FinalizeOk,
    Op::FinalizeErr,
    Op::ClientGone,
    Op::Stalled,
    Op::Shutdown,
    Op::Timeout,
    Op::TimeoutAtDeadline,
    Op::Written,
    Op::Stale,
];

/// Fuzz body of `exchange_ops`.
pub fn exchange_ops(data: &[u8]) {
    run(data);
}

/// Runs one sequence; returns whether a finalize was committed (for seed sanity checks).
fn run(data: &[u8]) -> bool {
    let kind = data.first().copied().unwrap_or(0);
    let knobs = data.get(1).copied().unwrap_or(0);
    let Some(mut model) = Model::start(kind, knobs) else {
        return false;
    };
    let ops = data.get(2..).unwrap_or_default();
    for pair in ops.chunks(2) {
        let Some(op) = pair.first().and_then(|b| OPS.get(usize::from(b % 16))) else {
            continue;
        };
        let op = *op;
        let arg = pair.get(1).copied().unwrap_or(0);
        model.apply(op, arg);
        if model.finished {
            break;
        }
    }
    let committed_before_settle = model.committed;
    model.settle();
    committed_before_settle
}

struct Model {
    core: Core,
    ex: Box<Exchange>,
    now: Instant,
    is_llm: bool,
    had_permit: bool,
    prelog_result: Option<bool>,
    finalizes: usize,
    fallbacks: usize,
    /// A finalize (or fallback) is waiting for its reply.
    finalize_outstanding: bool,
    /// The reply the exchange releases its held output on has been fed.
    committed: bool,
    outcomes: usize,
    finished: bool,
    /// The number of the attempt sent last.
    attempt: u32,
    /// The finalize was queued by an earlier input than the one being drained.
    finalized_earlier: bool,
}

impl Model {
    fn start(kind: u8, knobs: u8) -> Option<Model> {
        let connect = if knobs & 1 != 0 { "300" } else { "0" };
        let total = if knobs & 2 != 0 { "800" } else { "0" };
        let first = if knobs & 4 != 0 { "500" } else { "0" };
        let retries = ((knobs >> 3) % 3).to_string();
        let mut core = core_from_env(&[
            ("UPSTREAM_CONNECT_TIMEOUT_MS", connect),
            ("UPSTREAM_TIMEOUT_MS", total),
            ("UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS", first),
            ("UPSTREAM_MAX_RETRIES", &retries),
            ("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", "1000"),
        ])?;
        let (method, path, body) = match kind % 4 {
            0 => (
                Method::POST,
                "/v1/messages",
                r#"{"model":"claude-sonnet-4-5","stream":true}"#,
            ),
            1 => (
                Method::POST,
                "/v1/messages",
                r#"{"model":"claude-sonnet-4-5"}"#,
            ),
            2 => (Method::GET, "/v1/models", ""),
            _ => (
                Method::POST,
                "/v1/chat/completions",
                r#"{"model":"gpt-5","stream":true}"#,
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let req = InboundRequest {
            head: RequestHead::new(method, path, headers),
            body: Bytes::from_static(body.as_bytes()),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            request_id: "fuzz".to_owned(),
            key: KeyLookup::NoCredential,
        };
        let start = core.start(req, Instant::ZERO, UnixMillis(1_735_787_045_006));
        let StartAction::Exchange(ex) = start.action else {
            return None;
        };
        let mut model = Model {
            had_permit: ex.holds_permit(),
            is_llm: kind % 4 != 2,
            core,
            ex,
            now: Instant::ZERO,
            prelog_result: None,
            finalizes: 0,
            fallbacks: 0,
            finalize_outstanding: false,
            committed: false,
            outcomes: 0,
            finished: false,
            attempt: 0,
            finalized_earlier: false,
        };
        model.drain();
        Some(model)
    }

    fn apply(&mut self, op: Op, arg: u8) {
        self.finalized_earlier = self.finalizes > 0;
        let step = u64::from(arg) * 10;
        if !matches!(op, Op::Stale) {
            self.now = self.now.plus_millis(step);
        }
        let now = self.now;
        let fail = || StorageFailure {
            message: "fuzz".to_owned(),
        };
        match op {
            Op::PreLogOk => {
                self.prelog_result.get_or_insert(true);
                self.ex.handle_prelog(Ok(1), now);
            }
            Op::PreLogErr => {
                self.prelog_result.get_or_insert(false);
                self.ex.handle_prelog(Err(fail()), now);
            }
            Op::Head => {
                let status = [200, 200, 503, 429, 302, 500, 304, 404][usize::from(arg % 8)];
                let ct = [
                    "text/event-stream",
                    "application/json",
                    "application/x-ndjson",
                ][usize::from(arg / 8 % 3)];
                let mut headers = HeaderMap::new();
                headers.insert("content-type", HeaderValue::from_static(ct));
                if arg & 0x40 != 0 {
                    headers.insert("content-length", HeaderValue::from_static("52428801"));
                }
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                self.ex
                    .handle_upstream_head(self.attempt, ResponseHead { status, headers }, now);
            }
            Op::Body => {
                let chunk = CHUNKS[usize::from(arg) % CHUNKS.len()];
                self.ex.handle_upstream_body(
                    self.attempt,
                    Bytes::from_static(chunk.as_bytes()),
                    now,
                );
            }
            Op::End => self.ex.handle_upstream_end(self.attempt, now),
            Op::ConnectErr => self.ex.handle_upstream_error(
                self.attempt,
                UpstreamFailure::Connect {
                    name: NetworkErrorName::Connect,
                    written: arg & 1 != 0,
                    message: "refused".to_owned(),
                },
                now,
            ),
            Op::ReadErr => self.ex.handle_upstream_error(
                self.attempt,
                UpstreamFailure::Read {
                    message: "reset".to_owned(),
                },
                now,
            ),
            Op::FinalizeOk => self.finalized(Ok(())),
            Op::FinalizeErr => self.finalized(Err(fail())),
            Op::ClientGone => self.ex.handle_client_gone(now),
            Op::Stalled => self.ex.handle_client_stalled(now),
            Op::Shutdown => self.ex.handle_shutdown(now),
            Op::Timeout => self.ex.handle_timeout(now),
            Op::TimeoutAtDeadline => {
                if let Some((t, _)) = self.ex.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.ex.handle_timeout(self.now);
            }
            Op::Written => self.ex.handle_upstream_written(self.attempt, now),
            Op::Stale => self.ex.handle_timeout(Instant::from_micros(
                now.as_micros().saturating_sub(step * 1000),
            )),
        }
        self.drain();
    }

    fn finalized(&mut self, res: Result<(), StorageFailure>) {
        if self.finalize_outstanding {
            self.finalize_outstanding = false;
            // The exchange releases on success, or on any reply to the fallback.
            if res.is_ok() || self.fallbacks > 0 {
                self.committed = true;
            }
        }
        self.ex.handle_finalized(res, self.now);
    }

    /// Answers what is outstanding and lets the client leave; the exchange must finish.
    fn settle(&mut self) {
        if self.finished {
            self.check_end();
            return;
        }
        if self.prelog_result.is_none() {
            self.apply(Op::PreLogOk, 0);
        }
        self.apply(Op::ClientGone, 0);
        for _ in 0..4 {
            if self.finalize_outstanding {
                self.apply(Op::FinalizeOk, 0);
            }
        }
        assert!(
            self.finished,
            "the exchange finishes once everything is answered"
        );
        self.check_end();
    }

    fn check_end(&self) {
        let expected = usize::from(self.had_permit);
        assert_eq!(self.outcomes, expected, "permit returned exactly once");
        if self.is_llm && self.prelog_result == Some(true) {
            assert_eq!(self.finalizes, 1, "exactly one finalize per row");
        } else {
            assert_eq!(self.finalizes, 0, "no finalize without a row");
        }
    }

    fn drain(&mut self) {
        while let Some(op) = self.ex.poll_storage() {
            assert!(!self.finished, "storage op after Finished");
            match op {
                StorageOp::PreLog(_) => assert!(self.is_llm, "pre-log of a non-LLM call"),
                StorageOp::CheckpointUsage { .. } => {}
                StorageOp::Finalize(_) => {
                    self.finalizes += 1;
                    assert_eq!(self.finalizes, 1, "at most one finalize");
                    self.finalize_outstanding = true;
                }
                StorageOp::FinalizeFallback { .. } => {
                    assert_eq!(self.finalizes, 1, "fallback only after a finalize");
                    self.fallbacks += 1;
                    assert_eq!(self.fallbacks, 1, "at most one fallback");
                    self.finalize_outstanding = true;
                }
            }
        }
        while let Some(op) = self.ex.poll_upstream() {
            assert!(!self.finished, "upstream op after Finished");
            if let UpstreamOp::Send { attempt, .. } = op {
                // The fuzzer's upstream inputs go to the attempt sent last.
                self.attempt = attempt;
                assert!(
                    !self.is_llm || self.prelog_result == Some(true),
                    "an LLM call is sent only after its pre-log committed"
                );
            }
        }
        while let Some(d) = self.ex.poll_downstream() {
            assert!(!self.finished, "client output after Finished");
            if self.finalizes == 1 && !self.committed {
                // Bytes and the head released by the input that decided the row precede its
                // finalize; after that only a stall's cut moves before the commit.
                let allowed = match d {
                    Downstream::Abort => true,
                    Downstream::Head { .. } | Downstream::Body(_) => !self.finalized_earlier,
                    Downstream::End | Downstream::Reply(_) => false,
                };
                assert!(allowed, "client output before the commit: {d:?}");
            }
        }
        while let Some(ev) = self.ex.poll_event() {
            assert!(!self.finished, "event after Finished");
            match ev {
                ExchangeEvent::Outcome { permit, class } => {
                    self.outcomes += 1;
                    self.core.handle_outcome(permit, class, self.now);
                }
                ExchangeEvent::Finished => self.finished = true,
                ExchangeEvent::Log(_) | ExchangeEvent::Metric(_) => {}
            }
        }
        assert!(self.ex.poll_storage().is_none(), "drain refilled storage");
        assert!(self.ex.poll_upstream().is_none(), "drain refilled upstream");
        assert!(
            self.ex.poll_downstream().is_none(),
            "drain refilled downstream"
        );
        assert_eq!(self.finished, self.ex.is_finished());
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn corpus_files() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/exchange_ops");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("corpus dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| std::fs::read(p).expect("read"))
            .collect()
    }

    #[test]
    fn seeds_reach_the_commit() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/exchange_ops");
        for name in [
            "happy_sse_hold",
            "plain_finalize_fallback",
            "client_abort_mid_stream",
        ] {
            let data = std::fs::read(format!("{dir}/{name}")).expect("seed");
            assert!(
                run(&data),
                "{name} commits its finalize within the sequence"
            );
        }
    }

    #[test]
    fn corpus_replays_clean() {
        let files = corpus_files();
        assert!(files.len() >= 6, "seed corpus present");
        for data in files {
            exchange_ops(&data);
        }
    }

    /// A longer run for the soak tier: `cargo test -p agent-cli-proxy-core -- --ignored`.
    #[test]
    #[ignore = "soak tier: 50 000 sequences take ~45 s; run with --ignored"]
    fn many_seeded_sequences_keep_the_exchange_invariants() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50_000 {
            let len = rng.usize(0..200);
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            exchange_ops(&data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_input_sequences_keep_the_exchange_invariants(
            data in proptest::collection::vec(any::<u8>(), 0..160)
        ) {
            exchange_ops(&data);
        }
    }
}
