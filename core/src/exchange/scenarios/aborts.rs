//! Client disconnects, write stalls and shutdown, before and after the head, and while the
//! pre-log is in flight.

use super::*;
use crate::breaker::OutcomeClass;

/// Index of the first input named `name`, and no client output after it.
fn silent_after(s: &Sim, name: &str) {
    let at = s.input_at(name).expect("input fed");
    let later = s
        .trace
        .iter()
        .skip(at)
        .filter(|(_, r)| matches!(r, Rec::Down(_)))
        .count();
    assert_eq!(later, 0, "no client output after {name}");
}

#[test]
fn client_abort_before_head_is_aborted_not_error() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(vec![(0, Up::Written), (500, sse_head())]);
    s.at(100, Feed::ClientGone);
    s.run();
    s.check_invariants();
    assert_eq!(s.cancels(), 1, "upstream cancelled");
    silent_after(&s, "client_gone");
    assert!(s.downs().is_empty());
    let row = s.finalize();
    assert_eq!(
        (row.lifecycle_status.as_str(), row.status),
        ("aborted", 499)
    );
    assert_eq!(row.error_message.as_deref(), Some("request aborted"));
    assert!(row.usage_incomplete);
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn client_abort_mid_stream_costs_w2b() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &W2, true));
    s.at(25, Feed::ClientGone);
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), W2[0]);
    silent_after(&s, "client_gone");
    assert_eq!(s.cancels(), 1);
    let row = s.finalize();
    assert_eq!(
        (row.lifecycle_status.as_str(), row.status),
        ("aborted", 499)
    );
    assert_eq!(row.error_code, Some("aborted"));
    assert_eq!(row.error_message.as_deref(), Some("client aborted stream"));
    assert_eq!(row.cost_nanousd, 58_515_000);
    assert_eq!(row.cost_status.as_str(), "ok");
    assert!(row.usage_incomplete);
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn client_gone_while_the_finalize_is_in_flight_stops_reading_and_finishes() {
    let extra = "event: ping\ndata: {}\n\n";
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.storage_ms = 50;
    let mut steps = script(sse_head(), &W2, false);
    steps.push((60, body(extra)));
    steps.push((500, Up::End));
    s.attempt(steps);
    // Send at 50 ms, terminal at 100 ms, finalize reply at 150 ms.
    s.at(120, Feed::ClientGone);
    s.run();
    s.check_invariants();
    assert_eq!(
        s.cancels(),
        1,
        "no reason to keep reading for a gone client"
    );
    let row = s.finalize();
    assert_eq!(
        row.lifecycle_status.as_str(),
        "completed",
        "the row was decided at the terminal"
    );
    silent_after(&s, "client_gone");
}

#[test]
fn client_gone_during_the_prelog_finalizes_o11_and_sends_nothing_upstream() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.storage_ms = 100;
    s.at(50, Feed::ClientGone);
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    assert!(s.sends().is_empty());
    assert_eq!(
        s.finalize().error_message.as_deref(),
        Some("request aborted")
    );
}

#[test]
fn shutdown_during_the_prelog_finalizes_o13_and_sends_nothing_upstream() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.storage_ms = 100;
    s.at(50, Feed::Shutdown);
    s.attempt(script(sse_head(), &W2, true));
    s.run();
    s.check_invariants();
    assert!(
        s.sends().is_empty(),
        "shutdown is not forgotten by the pre-log"
    );
    assert_eq!(s.finalize().error_message.as_deref(), Some("shutdown"));
    assert_eq!(last_down(&s), Some(Downstream::Abort));
}

#[test]
fn shutdown_mid_stream_is_o13_with_a_cut() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &W2, true));
    s.at(35, Feed::Shutdown);
    s.run();
    s.check_invariants();
    assert_eq!(s.client_bytes(), W2[..2].concat());
    assert_eq!(last_down(&s), Some(Downstream::Abort));
    assert_eq!(s.cancels(), 1);
    let row = s.finalize();
    assert_eq!(
        (row.lifecycle_status.as_str(), row.status),
        ("aborted", 499)
    );
    assert_eq!(row.error_message.as_deref(), Some("shutdown"));
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}

#[test]
fn shutdown_after_the_terminal_releases_it_then_cuts() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.storage_ms = 20;
    let mut steps = script(sse_head(), &W2, false);
    steps.push((500, Up::End));
    s.attempt(steps);
    // Send at 20 ms, terminal at 70 ms, finalize reply at 90 ms.
    s.at(80, Feed::Shutdown);
    s.run();
    s.check_invariants();
    assert_eq!(
        s.client_bytes(),
        W2.concat(),
        "the client gets the terminal it paid for"
    );
    assert_eq!(last_down(&s), Some(Downstream::Abort));
    assert_eq!(s.finalize().lifecycle_status.as_str(), "completed");
}

#[test]
fn write_stall_cuts_at_once_and_is_o12() {
    let mut s = Sim::start(sim::core(&[]), messages_stream());
    s.attempt(script(sse_head(), &W2, true));
    s.at(25, Feed::Stalled);
    s.run();
    s.check_invariants();
    let stalled = s.input_at("stalled").expect("stall");
    let abort = s
        .position(|r| matches!(r, Rec::Down(Downstream::Abort)))
        .expect("abort emitted");
    assert!(abort < stalled + 8, "cut in the drain of the stall");
    assert_eq!(last_down(&s), Some(Downstream::Abort));
    let row = s.finalize();
    assert_eq!(row.error_message.as_deref(), Some("client write stalled"));
    assert_eq!(row.status, 499);
}

#[test]
fn non_llm_client_abort_returns_the_permit_neutral() {
    let req = sim::request("GET", "/v1/models", &[], "");
    let mut s = Sim::start(sim::core(&[]), req);
    s.attempt(vec![(100, json_head(200))]);
    s.at(50, Feed::ClientGone);
    s.run();
    s.check_invariants();
    assert_eq!(s.cancels(), 1);
    assert_eq!(s.outcomes(), vec![OutcomeClass::Neutral]);
}
