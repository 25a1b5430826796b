use super::*;

fn at(ms: u64) -> Instant {
    Instant::from_duration(Duration::from_millis(ms))
}

fn drain() -> Drain {
    Drain::new(
        at(0),
        Duration::from_millis(10_000),
        Duration::from_millis(15_000),
    )
}

fn event(step: &DrainStep) -> Option<(&'static str, Vec<(&'static str, serde_json::Value)>)> {
    match step {
        DrainStep::Log(r) => Some((r.event, r.fields.clone())),
        _ => None,
    }
}

#[test]
fn signals_map_to_the_documented_exit_codes() {
    assert_eq!((Signal::Int.name(), Signal::Int.exit_code()), ("SIGINT", 0));
    assert_eq!(
        (Signal::Term.name(), Signal::Term.exit_code()),
        ("SIGTERM", 143)
    );
    assert_eq!(
        (Signal::Hup.name(), Signal::Hup.exit_code()),
        ("SIGHUP", 129)
    );
}

#[test]
fn an_idle_daemon_logs_the_drain_and_is_done_at_once() {
    let mut d = drain();
    let step = d.step(at(3), 0, 0);
    assert_eq!(
        event(&step),
        Some((
            "shutdown.drain",
            vec![("pending_requests", json!(0)), ("elapsed_ms", json!(3))]
        ))
    );
    assert_eq!(d.step(at(3), 0, 0), DrainStep::Done);
    assert_eq!(d.step(at(4), 0, 0), DrainStep::Done, "done stays done");
}

#[test]
fn requests_that_end_during_the_drain_need_no_abort() {
    let mut d = drain();
    assert_eq!(d.step(at(0), 2, 2), DrainStep::Wait(at(25)));
    assert_eq!(d.step(at(25), 1, 2), DrainStep::Wait(at(50)));
    let step = d.step(at(40), 0, 1);
    assert_eq!(event(&step).map(|e| e.0), Some("shutdown.drain"));
    // One idle keep-alive connection left: it gets the grace period, then is cut.
    assert_eq!(d.step(at(40), 0, 1), DrainStep::Wait(at(45)));
    assert_eq!(d.step(at(45), 0, 0), DrainStep::CloseConnections);
    assert_eq!(d.step(at(45), 0, 0), DrainStep::Done);
}

#[test]
fn a_request_still_running_at_the_drain_limit_is_aborted_then_cut_at_the_hard_stop() {
    let mut d = drain();
    assert_eq!(d.step(at(9_990), 1, 1), DrainStep::Wait(at(10_000)));
    let step = d.step(at(10_000), 1, 1);
    assert_eq!(
        event(&step),
        Some((
            "shutdown.drain",
            vec![
                ("pending_requests", json!(1)),
                ("elapsed_ms", json!(10_000))
            ]
        ))
    );
    assert_eq!(d.step(at(10_000), 1, 1), DrainStep::AbortExchanges);
    assert_eq!(d.step(at(10_000), 1, 1), DrainStep::Wait(at(10_025)));
    assert_eq!(d.step(at(14_990), 1, 1), DrainStep::Wait(at(15_000)));
    let step = d.step(at(15_000), 1, 1);
    assert_eq!(
        event(&step),
        Some(("shutdown.hard_kill", vec![("remaining", json!(1))]))
    );
    assert_eq!(d.step(at(15_000), 1, 1), DrainStep::Wait(at(15_005)));
    assert_eq!(d.step(at(15_100), 1, 1), DrainStep::CloseConnections);
    assert_eq!(d.step(at(15_100), 1, 1), DrainStep::Done);
}

#[test]
fn an_aborted_exchange_that_finalizes_in_time_ends_without_a_hard_kill() {
    let mut d = drain();
    assert!(matches!(d.step(at(10_000), 1, 1), DrainStep::Log(_)));
    assert_eq!(d.step(at(10_000), 1, 1), DrainStep::AbortExchanges);
    assert_eq!(d.step(at(10_010), 0, 0), DrainStep::Done);
}
