//! CI-4: the breaker's rules as unit tests and as a model-based property test.

use proptest::prelude::*;

use super::model::{self, Op};
use super::*;

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

const WALL: UnixMillis = UnixMillis(1_700_000_000_000);

fn state(set: &BreakerSet, id: &str, now: u64) -> BreakerState {
    set.get(id, ms(now), WALL).unwrap().state
}

fn config() -> BreakerConfig {
    BreakerConfig::default()
}

#[test]
fn opens_exactly_at_threshold_and_rejects_until_the_window() {
    let mut set = BreakerSet::new(config());
    for i in 0..4 {
        let p = set.admit("a", ms(i)).unwrap();
        set.handle_outcome(p, OutcomeClass::Failure, ms(i));
        assert_eq!(state(&set, "a", i), BreakerState::Closed);
    }
    let p = set.admit("a", ms(10)).unwrap();
    assert!(!p.is_probe());
    set.handle_outcome(p, OutcomeClass::Failure, ms(1_000));
    assert_eq!(state(&set, "a", 1_000), BreakerState::Open);
    // retry-after = ceil((openedAt + 30 000 − now) / 1000), at least 1.
    assert_eq!(
        set.admit("a", ms(1_000)),
        Err(Rejected {
            retry_after_secs: 30
        })
    );
    assert_eq!(
        set.admit("a", ms(1_001)),
        Err(Rejected {
            retry_after_secs: 30
        })
    );
    assert_eq!(
        set.admit("a", ms(30_000)),
        Err(Rejected {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        set.admit("a", ms(30_999)),
        Err(Rejected {
            retry_after_secs: 1
        })
    );
    // Other providers are unaffected.
    assert!(set.admit("b", ms(2_000)).is_ok());
    // Past the window the snapshot reads half-open and one probe is admitted.
    assert_eq!(state(&set, "a", 31_000), BreakerState::HalfOpen);
    let probe = set.admit("a", ms(31_000)).unwrap();
    assert!(probe.is_probe());
    assert_eq!(
        set.admit("a", ms(31_001)),
        Err(Rejected {
            retry_after_secs: 1
        })
    );
    set.handle_outcome(probe, OutcomeClass::Success, ms(32_000));
    let snap = set.get("a", ms(32_000), WALL).unwrap();
    assert_eq!(
        (snap.state, snap.failures, snap.opened_at),
        (BreakerState::Closed, 0, 0)
    );
}

#[test]
fn probe_failure_reopens_with_threshold_failures() {
    let cfg = BreakerConfig {
        open_after_failures: 2,
        ..config()
    };
    let mut set = BreakerSet::new(cfg);
    for _ in 0..2 {
        let p = set.admit("a", ms(0)).unwrap();
        set.handle_outcome(p, OutcomeClass::Failure, ms(0));
    }
    let probe = set.admit("a", ms(30_000)).unwrap();
    set.handle_outcome(probe, OutcomeClass::Failure, ms(40_000));
    let snap = set.get("a", ms(40_000), WALL).unwrap();
    assert_eq!(snap.state, BreakerState::Open);
    assert_eq!(snap.failures, 2);
    assert_eq!(snap.opened_at, WALL.0);
    assert_eq!(
        set.admit("a", ms(40_000)),
        Err(Rejected {
            retry_after_secs: 30
        })
    );
}

#[test]
fn neutral_probe_releases_the_slot_and_stays_half_open() {
    let cfg = BreakerConfig {
        open_after_failures: 1,
        ..config()
    };
    let mut set = BreakerSet::new(cfg);
    let p = set.admit("a", ms(0)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(0));
    let probe = set.admit("a", ms(30_000)).unwrap();
    set.handle_outcome(probe, OutcomeClass::Neutral, ms(30_500));
    assert_eq!(state(&set, "a", 30_500), BreakerState::HalfOpen);
    let next = set.admit("a", ms(30_500)).unwrap();
    assert!(next.is_probe(), "the next request becomes the probe");
}

#[test]
fn stale_probe_after_reset_cannot_free_a_new_probe() {
    let cfg = BreakerConfig {
        open_after_failures: 1,
        ..config()
    };
    let mut set = BreakerSet::new(cfg);
    let p = set.admit("a", ms(0)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(0));
    let old_probe = set.admit("a", ms(30_000)).unwrap();
    assert!(set.reset("a", ms(30_001)));
    let p = set.admit("a", ms(30_002)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(30_002));
    let new_probe = set.admit("a", ms(60_002)).unwrap();
    assert!(new_probe.is_probe());
    set.handle_outcome(old_probe, OutcomeClass::Neutral, ms(60_003));
    assert_eq!(
        set.admit("a", ms(60_004)),
        Err(Rejected {
            retry_after_secs: 1
        })
    );
    set.handle_outcome(new_probe, OutcomeClass::Neutral, ms(60_005));
    assert!(set.admit("a", ms(60_006)).unwrap().is_probe());
}

#[test]
fn reset_and_unknown_ids() {
    let mut set = BreakerSet::new(BreakerConfig {
        open_after_failures: 1,
        ..config()
    });
    assert!(!set.reset("nope", ms(0)));
    assert!(set.get("nope", ms(0), WALL).is_none());
    let p = set.admit("a", ms(0)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(5_000));
    assert!(set.reset("a", ms(6_000)));
    let snap = set.get("a", ms(6_000), WALL).unwrap();
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!(
        (snap.failures, snap.opened_at, snap.last_activity),
        (0, 0, WALL.0)
    );
    assert!(set.admit("a", ms(6_000)).is_ok());
}

#[test]
fn eviction_only_of_idle_clean_closed_breakers_at_most_once_a_minute() {
    let cfg = BreakerConfig {
        open_after_failures: 2,
        evict_after_ms: 300_000,
        ..config()
    };
    let mut set = BreakerSet::new(cfg);
    for id in ["clean", "failing", "open"] {
        let p = set.admit(id, ms(0)).unwrap();
        set.handle_outcome(p, OutcomeClass::Success, ms(0));
    }
    let p = set.admit("failing", ms(0)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(0));
    for _ in 0..2 {
        let p = set.admit("open", ms(0)).unwrap();
        set.handle_outcome(p, OutcomeClass::Failure, ms(0));
    }
    // First admission ran the eviction pass at t=0; the next one may run at t ≥ 60 000.
    let _ = set.admit("other", ms(299_999));
    assert_eq!(set.len(), 4);
    let _ = set.admit("other", ms(300_000)); // < 60 000 ms since the pass at 299 999
    assert_eq!(set.len(), 4);
    let _ = set.admit("other", ms(359_999));
    assert!(set.get("clean", ms(359_999), WALL).is_none());
    assert!(set.get("failing", ms(359_999), WALL).is_some());
    assert!(set.get("open", ms(359_999), WALL).is_some());
    assert!(set.get("other", ms(359_999), WALL).is_some());
}

#[test]
fn snapshot_shape_and_order() {
    let mut set = BreakerSet::new(BreakerConfig {
        open_after_failures: 1,
        ..config()
    });
    let p = set.admit("zeta", ms(1_000)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(2_000));
    let _ = set.admit("alpha", ms(3_000));
    let json = serde_json::to_string(&set.snapshot(ms(4_000), UnixMillis(10_000))).unwrap();
    assert_eq!(
        json,
        r#"[{"providerId":"alpha","state":"closed","failures":0,"openedAt":0,"lastActivity":9000},{"providerId":"zeta","state":"open","failures":1,"openedAt":8000,"lastActivity":8000}]"#
    );
    let late = set.snapshot(ms(32_000), UnixMillis(38_000));
    assert_eq!(late[1].state, BreakerState::HalfOpen);
    assert_eq!(late[1].state.as_str(), "half-open");
}

#[test]
fn stale_time_is_clamped() {
    let mut set = BreakerSet::new(BreakerConfig {
        open_after_failures: 1,
        ..config()
    });
    let p = set.admit("a", ms(100_000)).unwrap();
    set.handle_outcome(p, OutcomeClass::Failure, ms(100_000));
    // An older `now` is the latest one: still 30 s left, never a panic or a negative value.
    assert_eq!(
        set.admit("a", ms(0)),
        Err(Rejected {
            retry_after_secs: 30
        })
    );
    let snap = set.get("a", ms(0), WALL).unwrap();
    assert_eq!(snap.opened_at, WALL.0);
}

#[test]
fn late_outcomes_for_an_evicted_breaker() {
    let cfg = BreakerConfig {
        open_after_failures: 1,
        evict_after_ms: 1,
        ..config()
    };
    let mut set = BreakerSet::new(cfg);
    let long = set.admit("a", ms(0)).unwrap();
    let _ = set.admit("b", ms(60_000)); // evicts "a" (closed, clean, idle)
    assert!(set.get("a", ms(60_000), WALL).is_none());
    set.handle_outcome(long, OutcomeClass::Failure, ms(61_000));
    assert_eq!(state(&set, "a", 61_000), BreakerState::Open);
}

#[test]
fn decoded_corpus_style_inputs_agree_with_the_model() {
    for data in [
        &b""[..],
        b"\x00",
        b"\x04\x01\x01\x00\x00\x03\x00\x06\xff",
        b"\x00\x00\x00\x05\x05",
    ] {
        let (cfg, ops) = model::decode(data);
        model::check(cfg, &ops).unwrap();
    }
}

fn op() -> impl Strategy<Value = Op> {
    let class = prop_oneof![
        Just(OutcomeClass::Success),
        Just(OutcomeClass::Failure),
        Just(OutcomeClass::Failure),
        Just(OutcomeClass::Neutral),
    ];
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Admit),
        4 => (any::<u8>(), class).prop_map(|(s, c)| Op::Outcome(s, c)),
        1 => any::<u8>().prop_map(Op::ClientAbort),
        2 => prop_oneof![0u64..2_000_000, 0u64..70_000_000].prop_map(Op::Advance),
        1 => (0u64..40_000_000).prop_map(Op::Stale),
        1 => any::<u8>().prop_map(Op::Reset),
    ]
}

proptest! {
    #[test]
    fn breaker_agrees_with_reference_model(
        threshold in 1u32..5,
        half_open in 1u64..40_000,
        evict in 1u64..200_000,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let cfg = BreakerConfig {
            open_after_failures: threshold,
            half_open_after_ms: half_open,
            evict_after_ms: evict,
        };
        if let Err(e) = model::check(cfg, &ops) {
            prop_assert!(false, "{}", e);
        }
    }
}
