use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const NOW: UnixMillis = UnixMillis(1_777_888_800_000); // 2026-05-04T10:00:00.000Z
const CFG: MatchConfig = MatchConfig {
    window_ms: 30_000,
    lookback_ms: 300_000,
};

fn iso(ms: u64) -> String {
    UnixMillis(ms).to_iso()
}

fn cand(id: i64, model: &str, at: u64, total: i64, latency: Option<i64>) -> Candidate {
    Candidate {
        id,
        model: model.into(),
        actual_model: None,
        started_at: iso(at),
        total_tokens: total,
        latency_ms: latency,
    }
}

fn rec(source: &str, model: &str, at: u64, total: i64, latency: i64) -> UpstreamDetail {
    UpstreamDetail {
        timestamp: iso(at),
        latency_ms: latency,
        source: source.into(),
        auth_index: format!("idx-{source}"),
        model: model.into(),
        tokens: DetailTokens {
            total_tokens: total,
            ..DetailTokens::default()
        },
        ..UpstreamDetail::default()
    }
}

fn pairs(o: &MatchOutcome) -> Vec<(i64, String)> {
    o.assignments
        .iter()
        .map(|a| (a.row_id, a.source.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn timestamps_parse_with_zones_and_fractions() {
    assert_eq!(parse_timestamp("2026-05-04T10:00:00.000Z"), Some(NOW));
    assert_eq!(parse_timestamp("2026-05-04T10:00:00Z"), Some(NOW));
    assert_eq!(parse_timestamp("2026-05-04 10:00:00"), Some(NOW));
    assert_eq!(
        parse_timestamp("2026-05-04T18:00:00.123456789+08:00"),
        Some(UnixMillis(NOW.0 + 123))
    );
    assert_eq!(
        parse_timestamp("2026-05-04T09:30:00.5-00:30"),
        Some(UnixMillis(NOW.0 + 500))
    );
    for bad in [
        "",
        "2026-05-04",
        "2026-13-04T10:00:00Z",
        "2026-05-04T10:00:00.Z",
        "2026-05-04T10:00:00+0800",
        "2026-05-04T25:00:00Z",
        "1969-12-31T23:59:59Z",
        "2026-05-04T10:00:00Zjunk",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn queue_items_follow_the_field_rules() {
    let body = br#"[
        {"timestamp":" 2026-05-04T10:00:00Z ","source":" a@x ","auth_index":7,"model":"m",
         "alias":"al","failed":"true","latency_ms":12.6,
         "tokens":{"input_tokens":1,"output_tokens":2,"total_tokens":3,"cached_tokens":"9"},
         "api_key":"sk-secret"},
        "{\"timestamp\":\"2026-05-04T10:00:01Z\",\"source\":\"b@x\",\"failed\":true}",
        {"source":"no-time"},
        {"timestamp":5},
        "not json",
        42
    ]"#;
    let got = parse_queue(body).expect("array");
    assert_eq!(got.len(), 2);
    let a = &got[0];
    assert_eq!(a.timestamp, "2026-05-04T10:00:00Z");
    assert_eq!(a.source, "a@x");
    assert_eq!(a.auth_index, "", "a non-string becomes empty");
    assert_eq!((a.model.as_str(), a.alias.as_str()), ("m", "al"));
    assert!(!a.failed, "only a literal true counts");
    assert_eq!(a.latency_ms, 13);
    assert_eq!(a.tokens.total_tokens, 3);
    assert_eq!(a.tokens.cached_tokens, 0);
    assert!(!format!("{got:?}").contains("sk-secret"));
    assert!(got[1].failed);
    assert_eq!(got[1].source, "b@x");
    assert_eq!(parse_queue(br#"{"items":[]}"#), None);
    assert_eq!(parse_queue(b"[1,"), None);
}

#[test]
fn legacy_details_take_their_model_key() {
    let body = br#"{"usage":{"apis":{"k1":{"models":{
        "claude-sonnet-4-5":{"details":[
            {"timestamp":"2026-05-04T10:00:00Z","source":"a","auth_index":"1",
             "tokens":{"total_tokens":10}},
            {"no":"timestamp"}]},
        "gpt-5":{"details":"wrong"}}},
        "k2":{"models":{"gpt-5":{"details":[{"timestamp":"2026-05-04T10:00:02Z","model":"x"}]}}}}}}"#;
    let got = parse_legacy(body).expect("object");
    let models: Vec<&str> = got.iter().map(|d| d.model.as_str()).collect();
    assert_eq!(models, vec!["claude-sonnet-4-5", "gpt-5"]);
    assert_eq!(got[0].tokens.total_tokens, 10);
    assert_eq!(parse_legacy(b"{}"), Some(vec![]));
    assert_eq!(parse_legacy(b"[]"), None);
}

fn http(status: u16, body: &str) -> FetchResponse {
    FetchResponse::Http {
        status,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn queue_404_falls_back_to_legacy_then_legacy_404_disables() {
    let mut c = Correlator::new("http://h:8317/", CFG);
    let (ep, url) = c.next_fetch().expect("queue first");
    assert_eq!(ep, Endpoint::Queue);
    assert_eq!(url, "http://h:8317/v0/management/usage-queue?count=500");
    let (step, logs) = c.handle_fetch(ep, http(404, "nope"));
    assert_eq!(
        step,
        FetchStep::Next(
            Endpoint::Legacy,
            "http://h:8317/v0/management/usage".to_owned()
        )
    );
    assert_eq!(
        logs[0].msg,
        "usage queue endpoint unavailable, falling back to legacy usage endpoint"
    );
    assert_eq!(c.next_fetch().map(|f| f.0), Some(Endpoint::Legacy));
    let (step, logs) = c.handle_fetch(Endpoint::Legacy, http(404, ""));
    assert_eq!(step, FetchStep::Nothing);
    assert_eq!(
        logs[0].msg,
        "usage fetch endpoint unavailable, disabling correlation"
    );
    assert_eq!(c.next_fetch(), None);
    assert!(c.fetch_state().disabled());
}

#[test]
fn queue_errors_fall_back_in_the_same_tick_but_keep_the_queue() {
    for response in [
        http(500, "boom"),
        http(401, "{}"),
        http(200, "{not json"),
        http(200, "{\"a\":1}"),
        FetchResponse::Transport("timed out".into()),
    ] {
        let mut c = Correlator::new("http://h", CFG);
        let (step, logs) = c.handle_fetch(Endpoint::Queue, response.clone());
        assert!(
            matches!(step, FetchStep::Next(Endpoint::Legacy, _)),
            "{response:?}"
        );
        assert_eq!(logs.len(), 1);
        assert!(
            !format!("{logs:?}").contains("boom"),
            "bodies are never logged"
        );
        assert_eq!(c.next_fetch().map(|f| f.0), Some(Endpoint::Queue));
        let (step, _) = c.handle_fetch(Endpoint::Legacy, http(502, "x"));
        assert_eq!(
            step,
            FetchStep::Failed("usage fetch failed: HTTP 502".into())
        );
    }
    let mut c = Correlator::new("http://h", CFG);
    let (step, logs) = c.handle_fetch(Endpoint::Queue, http(500, ""));
    assert_eq!(logs[0].fields, vec![("status", serde_json::json!(500))]);
    assert!(matches!(step, FetchStep::Next(..)));
    let (step, _) = c.handle_fetch(Endpoint::Legacy, http(200, "[]"));
    assert!(
        matches!(step, FetchStep::Failed(_)),
        "legacy must be an object"
    );
}

#[test]
fn queue_records_are_held_by_the_correlator_as_soon_as_they_arrive() {
    let mut c = Correlator::new("http://h", CFG);
    let (step, logs) = c.handle_fetch(
        Endpoint::Queue,
        http(
            200,
            r#"[{"timestamp":"2026-05-04T10:00:00Z","source":"a"}]"#,
        ),
    );
    assert!(logs.is_empty());
    assert_eq!(step, FetchStep::Held(1));
    assert_eq!(c.carry.take_unassigned()[0].source, "a");
}

#[test]
fn mixed_workload_with_close_timestamps_matches_each_account_once() {
    let t = NOW.0 - 60_000;
    // Three accounts, one model, requests 200 ms apart; tokens tell them apart.
    let candidates = vec![
        cand(3, "claude-sonnet-4-5", t + 400, 3000, Some(900)),
        cand(2, "claude-sonnet-4-5", t + 200, 2000, Some(800)),
        cand(1, "claude-sonnet-4-5", t, 1000, Some(700)),
    ];
    let details = vec![
        rec("a@x", "claude-sonnet-4-5", t + 30, 1000, 700),
        rec("b@x", "claude-sonnet-4-5", t + 250, 2000, 810),
        rec("c@x", "claude-sonnet-4-5", t + 380, 3000, 880),
        rec("d@x", "gpt-5", t + 200, 2000, 800),
    ];
    let mut c = Correlator::new("http://h", CFG);
    let out = c.match_tick(&candidates, details.clone(), NOW);
    assert_eq!(
        pairs(&out),
        vec![(3, "c@x".into()), (2, "b@x".into()), (1, "a@x".into())]
    );
    assert_eq!(out.assignments[1].auth_index.as_deref(), Some("idx-b@x"));
    // |Δt| 50 + |Δtotal| 0 + |Δlatency| 10 · 0.1 = 51 → 510 tenths.
    assert_eq!(out.assignments[1].score_tenths, 510);
    assert_eq!(
        (out.total, out.unmatched_rows, out.unused_records),
        (3, 0, 1)
    );

    // The legacy endpoint returns the same records again: none is reused.
    let again = vec![cand(4, "claude-sonnet-4-5", t + 10, 1000, None)];
    let out = c.match_tick(&again, details, NOW);
    assert!(out.assignments.is_empty());
    assert_eq!((out.skipped_applied, out.unmatched_rows), (3, 1));
}

#[test]
fn tokens_outweigh_small_time_differences() {
    let t = NOW.0 - 10_000;
    let candidates = vec![cand(1, "m", t, 500, None)];
    // 1 token off costs 100 ms: the record 2 s away with exact tokens wins.
    let details = vec![
        rec("near", "m", t + 50, 530, 0),
        rec("exact", "m", t + 2000, 500, 0),
    ];
    let out = match_candidates(&candidates, details, NOW, CFG, &AppliedMemory::default());
    assert_eq!(pairs(&out), vec![(1, "exact".into())]);
    // With no token count on the row, time alone decides.
    let candidates = vec![cand(1, "m", t, 0, None)];
    let details = vec![
        rec("near", "m", t + 50, 530, 0),
        rec("exact", "m", t + 2000, 500, 0),
    ];
    let out = match_candidates(&candidates, details, NOW, CFG, &AppliedMemory::default());
    assert_eq!(pairs(&out), vec![(1, "near".into())]);
}

#[test]
fn window_model_alias_and_ties() {
    let t = NOW.0 - 100_000;
    let mut row = cand(1, "claude-opus-4-1", t, 0, None);
    row.actual_model = Some("claude-opus-4-1-20250805".into());
    let mut aliased = rec("alias", "internal-name", t + 10, 0, 0);
    aliased.alias = "claude-opus-4-1-20250805".into();
    let out = match_candidates(
        std::slice::from_ref(&row),
        vec![
            rec("outside", "claude-opus-4-1", t + 30_001, 0, 0),
            rec("other-model", "gpt-5", t, 0, 0),
            aliased,
        ],
        NOW,
        CFG,
        &AppliedMemory::default(),
    );
    assert_eq!(pairs(&out), vec![(1, "alias".into())]);
    // Exactly at the window edge still matches.
    let out = match_candidates(
        std::slice::from_ref(&row),
        vec![rec("edge", "claude-opus-4-1", t - 30_000, 0, 0)],
        NOW,
        CFG,
        &AppliedMemory::default(),
    );
    assert_eq!(pairs(&out), vec![(1, "edge".into())]);
    // Equal scores: the first in fetch order wins.
    let out = match_candidates(
        std::slice::from_ref(&row),
        vec![
            rec("first", "claude-opus-4-1", t + 5, 0, 0),
            rec("second", "claude-opus-4-1", t - 5, 0, 0),
        ],
        NOW,
        CFG,
        &AppliedMemory::default(),
    );
    assert_eq!(pairs(&out), vec![(1, "first".into())]);
}

#[test]
fn old_failed_sourceless_and_excess_records_are_dropped() {
    let t = NOW.0 - 1_000;
    let mut failed = rec("f", "m", t, 0, 0);
    failed.failed = true;
    let details = vec![
        rec("old", "m", NOW.0 - 300_001, 0, 0),
        failed,
        rec("", "m", t, 0, 0),
        UpstreamDetail {
            timestamp: "yesterday".into(),
            source: "bad".into(),
            model: "m".into(),
            ..UpstreamDetail::default()
        },
    ];
    let out = match_candidates(
        &[cand(1, "m", t, 0, None)],
        details,
        NOW,
        CFG,
        &AppliedMemory::default(),
    );
    assert!(out.assignments.is_empty());
    assert_eq!(out.dropped, 4);

    // 10 001 records: the first in fetch order is cut, so the row (which matches only it)
    // stays unmatched; the last one is kept.
    let mut many = vec![rec("first", "only-first", t, 0, 0)];
    many.extend((0..MAX_DETAILS).map(|i| rec(&format!("s{i}"), "m", t, 0, 0)));
    let rows = [cand(1, "only-first", t, 0, None), cand(2, "m", t, 0, None)];
    let out = match_candidates(&rows, many, NOW, CFG, &AppliedMemory::default());
    assert_eq!(out.dropped, 1);
    assert_eq!(pairs(&out), vec![(2, "s0".into())]);
}

#[test]
fn applied_memory_expires_after_the_lookback() {
    let t = NOW.0;
    let details = vec![rec("a", "m", t, 0, 0)];
    let mut c = Correlator::new("http://h", CFG);
    assert_eq!(
        c.match_tick(&[cand(1, "m", t, 0, None)], details.clone(), NOW)
            .assignments
            .len(),
        1
    );
    assert_eq!(c.remembered(), 1);
    // Still remembered just before the lookback passes.
    let later = UnixMillis(NOW.0 + CFG.lookback_ms - 1);
    let out = c.match_tick(&[cand(2, "m", t, 0, None)], details.clone(), later);
    assert_eq!(out.skipped_applied, 1);
    // Past the lookback the record is too old anyway, and the memory is empty.
    let out = c.match_tick(&[], details, UnixMillis(NOW.0 + CFG.lookback_ms + 1));
    assert_eq!(c.remembered(), 0);
    assert_eq!(out.dropped, 1);
}

#[test]
fn low_match_rate_warns_after_five_poor_samples_at_most_hourly() {
    let mut w = LowMatchWindow::default();
    let at = |s: u64| Instant::from_duration(std::time::Duration::from_secs(s));
    for i in 0..4 {
        assert_eq!(w.record(1, 10, at(i)), None);
        assert_eq!(w.record(0, 0, at(i)), None, "zero totals are not samples");
    }
    let warn = w.record(1, 10, at(4)).expect("warning");
    assert_eq!((warn.matched, warn.total), (5, 50));
    assert!((warn.match_rate - 0.1).abs() < 1e-9);
    let rec = warn.log_record();
    assert_eq!(rec.event, "correlator.low_match_rate");
    assert!(rec.fields.contains(&("window_ticks", serde_json::json!(5))));
    assert!(rec.fields.contains(&("threshold", serde_json::json!(0.5))));
    assert_eq!(w.record(0, 10, at(5)), None, "quiet for an hour");
    assert_eq!(
        w.record(0, 10, at(3604)),
        Some(LowMatchWarning {
            matched: 3,
            total: 50,
            match_rate: 0.06
        })
    );
    // Exactly half is not low.
    let mut w = LowMatchWindow::default();
    for i in 0..5 {
        assert_eq!(w.record(5, 10, at(i)), None);
    }
}

#[test]
fn handle_applied_logs_matches_and_warnings() {
    let mut c = Correlator::new("http://h", CFG);
    let logs = c.handle_applied(2, 3, Instant::ZERO);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].msg, "correlated logs");
    assert_eq!(
        logs[0].fields,
        vec![
            ("matched", serde_json::json!(2)),
            ("total", serde_json::json!(3))
        ]
    );
    assert!(c.handle_applied(0, 3, Instant::ZERO).is_empty());
}

fn arb_details() -> impl Strategy<Value = Vec<(u8, i64, i64, bool)>> {
    prop::collection::vec((0u8..3, -40_000i64..40_000, 0i64..50, any::<bool>()), 0..30)
}

fn arb_rows() -> impl Strategy<Value = Vec<(u8, i64, i64)>> {
    prop::collection::vec((0u8..3, -40_000i64..40_000, 0i64..50), 0..30)
}

fn build(
    rows: &[(u8, i64, i64)],
    details: &[(u8, i64, i64, bool)],
    base: i64,
    salt: usize,
) -> (Vec<Candidate>, Vec<UpstreamDetail>) {
    let models = ["m0", "m1", "m2"];
    let mut cands: Vec<Candidate> = rows
        .iter()
        .enumerate()
        .map(|(i, &(m, dt, tok))| {
            cand(
                i as i64,
                models[m as usize],
                (base + dt) as u64,
                tok,
                (tok % 2 == 0).then_some(tok),
            )
        })
        .collect();
    cands.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    let recs = details
        .iter()
        .enumerate()
        .map(|(i, &(m, dt, tok, failed))| {
            let mut d = rec(
                &format!("acct{}", i % 4),
                models[m as usize],
                (base + dt) as u64,
                tok,
                tok,
            );
            // A unique auth index makes every record's identity unique.
            d.auth_index = format!("{salt}-{i}");
            d.failed = failed && i % 5 == 0;
            d
        })
        .collect();
    (cands, recs)
}

proptest! {
    #[test]
    fn no_record_is_assigned_to_two_rows(rows in arb_rows(), details in arb_details()) {
        let (cands, recs) = build(&rows, &details, NOW.0 as i64 - 100_000, 0);
        let out = match_candidates(&cands, recs.clone(), NOW, CFG, &AppliedMemory::default());
        let keys: BTreeSet<_> = out.assignments.iter().map(|a| a.key.clone()).collect();
        prop_assert_eq!(keys.len(), out.assignments.len());
        let rows_hit: BTreeSet<_> = out.assignments.iter().map(|a| a.row_id).collect();
        prop_assert_eq!(rows_hit.len(), out.assignments.len());
        prop_assert_eq!(out.assignments.len() as u64 + out.unmatched_rows, out.total);
        for a in &out.assignments {
            let c = cands.iter().find(|c| c.id == a.row_id).unwrap();
            let d = recs.iter().find(|d| DetailKey::of(d) == a.key).unwrap();
            prop_assert!(!d.failed);
            prop_assert!(d.model == c.model);
            let dt = parse_timestamp(&d.timestamp).unwrap().0.abs_diff(parse_timestamp(&c.started_at).unwrap().0);
            prop_assert!(dt <= CFG.window_ms);
        }
    }

    #[test]
    fn assignments_never_change_and_records_are_used_once_across_ticks(
        ticks in prop::collection::vec((arb_rows(), arb_details(), any::<bool>()), 1..5)
    ) {
        let mut c = Correlator::new("http://h", CFG);
        // The storage model: a row keeps the first account written (WHERE cliproxy_account
        // IS NULL), and only uncorrelated rows are candidates.
        let mut written: BTreeMap<i64, DetailKey> = BTreeMap::new();
        let mut all_rows: Vec<Candidate> = Vec::new();
        let mut legacy: Vec<UpstreamDetail> = Vec::new();
        let mut used: BTreeSet<DetailKey> = BTreeSet::new();
        for (tick, (rows, details, replay)) in ticks.iter().enumerate() {
            let now = UnixMillis(NOW.0 + tick as u64 * 15_000);
            let (mut cands, recs) = build(rows, details, now.0 as i64 - 60_000, tick);
            for cnd in &mut cands {
                cnd.id += tick as i64 * 1000;
            }
            all_rows.extend(cands);
            // A legacy snapshot returns everything it ever held; a queue only new records.
            let fetched = if *replay {
                legacy.extend(recs);
                legacy.clone()
            } else {
                recs
            };
            let mut open: Vec<Candidate> = all_rows
                .iter()
                .filter(|r| !written.contains_key(&r.id))
                .cloned()
                .collect();
            open.sort_by(|a, b| b.started_at.cmp(&a.started_at));
            let out = c.match_tick(&open, fetched, now);
            for a in out.assignments {
                prop_assert!(!written.contains_key(&a.row_id), "row {} assigned twice", a.row_id);
                prop_assert!(used.insert(a.key.clone()), "record {:?} reused", a.key);
                written.insert(a.row_id, a.key);
            }
        }
    }
}

fn queue_answer(records: &[UpstreamDetail]) -> FetchResponse {
    let items: Vec<serde_json::Value> = records
        .iter()
        .map(|d| {
            serde_json::json!({
                "timestamp": d.timestamp, "latency_ms": d.latency_ms, "source": d.source,
                "auth_index": d.auth_index, "model": d.model, "failed": d.failed,
                "tokens": {"total_tokens": d.tokens.total_tokens}
            })
        })
        .collect();
    http(200, &serde_json::Value::Array(items).to_string())
}

#[test]
fn a_queue_record_no_row_takes_yet_is_offered_again_next_tick() {
    let t = NOW.0 - 20_000;
    let mut c = Correlator::new("http://h", CFG);
    let (step, _) = c.handle_fetch(Endpoint::Queue, queue_answer(&[rec("a", "m", t, 10, 0)]));
    assert_eq!(step, FetchStep::Held(1));
    // The router answered before the proxy wrote the row: only an unrelated row exists.
    let out = c.match_tick(&[cand(1, "other-model", t, 10, None)], Vec::new(), NOW);
    assert!(out.assignments.is_empty());
    assert_eq!(
        c.unapplied(),
        Unapplied {
            unmatched: 1,
            unconfirmed: 0
        }
    );
    // Next tick the row exists; the queue has nothing new.
    let later = UnixMillis(NOW.0 + 15_000);
    let (retries, logs) = c.begin_tick(later);
    assert!(retries.is_empty() && logs.is_empty());
    let (step, _) = c.handle_fetch(Endpoint::Queue, http(200, "[]"));
    assert_eq!(step, FetchStep::Held(0));
    let out = c.match_tick(&[cand(2, "m", t + 5, 10, None)], Vec::new(), later);
    assert_eq!(pairs(&out), vec![(2, "a".into())]);
    assert_eq!(
        c.unapplied(),
        Unapplied {
            unmatched: 0,
            unconfirmed: 1
        }
    );
    assert!(c.confirm(&out.assignments[0]));
    assert_eq!(c.unapplied().total(), 0);
    assert!(c.shutdown_log().is_none());
}

#[test]
fn legacy_records_are_not_held_and_never_double_a_held_record() {
    let t = NOW.0 - 20_000;
    let mut c = Correlator::new("http://h", CFG);
    let same = rec("a", "m", t, 10, 0);
    c.handle_fetch(Endpoint::Queue, queue_answer(std::slice::from_ref(&same)));
    c.match_tick(&[], Vec::new(), NOW);
    // The queue fails, the legacy snapshot holds the same record plus another: two rows
    // that both fit it must not both get it.
    let rows = [cand(1, "m", t, 10, None), cand(2, "m", t, 10, None)];
    let out = c.match_tick(&rows, vec![same, rec("b", "n", t, 10, 0)], NOW);
    assert_eq!(pairs(&out), vec![(1, "a".into())]);
    assert_eq!(out.unused_records, 1, "b matched no row");
    // b came from the snapshot (the router keeps it): not held.
    assert_eq!(
        c.unapplied(),
        Unapplied {
            unmatched: 0,
            unconfirmed: 1
        }
    );
}

#[test]
fn an_unconfirmed_pairing_is_written_again_and_never_given_to_another_row() {
    let t = NOW.0 - 20_000;
    let mut c = Correlator::new("http://h", CFG);
    c.handle_fetch(Endpoint::Queue, queue_answer(&[rec("a", "m", t, 10, 0)]));
    let out = c.match_tick(&[cand(1, "m", t, 10, None)], Vec::new(), NOW);
    let first = out.assignments[0].clone();
    // The write failed: the next tick writes the same pairing again, and the record is not
    // matched to the other row that fits it just as well.
    let later = UnixMillis(NOW.0 + 15_000);
    let (retries, _) = c.begin_tick(later);
    assert_eq!(retries, vec![first.clone()]);
    let out = c.match_tick(&[cand(2, "m", t, 10, None)], Vec::new(), later);
    assert!(out.assignments.is_empty());
    // Still failing ticks later; then the writer answers.
    let (retries, _) = c.begin_tick(UnixMillis(NOW.0 + 60_000));
    assert_eq!(retries.len(), 1);
    let log = c.shutdown_log().expect("held records are reported");
    assert_eq!(log.event, "correlator.unapplied_at_shutdown");
    assert_eq!(
        log.fields,
        vec![
            ("unmatched", serde_json::json!(0)),
            ("unconfirmed", serde_json::json!(1))
        ]
    );
    assert!(c.confirm(&first));
    assert!(!c.confirm(&first), "confirmed once");
    let (retries, _) = c.begin_tick(UnixMillis(NOW.0 + 75_000));
    assert!(retries.is_empty());
}

#[test]
fn held_records_and_pairings_are_given_up_after_the_lookback_with_a_count() {
    let t = NOW.0 - 20_000;
    let mut c = Correlator::new("http://h", CFG);
    c.handle_fetch(
        Endpoint::Queue,
        queue_answer(&[rec("a", "m", t, 10, 0), rec("b", "n", t, 10, 0)]),
    );
    c.match_tick(&[cand(1, "m", t, 10, None)], Vec::new(), NOW);
    assert_eq!(
        c.unapplied(),
        Unapplied {
            unmatched: 1,
            unconfirmed: 1
        }
    );
    // Just before: both kept.
    let (retries, logs) = c.begin_tick(UnixMillis(t + CFG.lookback_ms));
    assert_eq!((retries.len(), logs.len()), (1, 0));
    let (retries, logs) = c.begin_tick(UnixMillis(NOW.0 + CFG.lookback_ms));
    assert!(retries.is_empty());
    let events: Vec<_> = logs
        .iter()
        .map(|l| (l.level, l.event, l.fields.clone()))
        .collect();
    assert_eq!(
        events,
        vec![
            (
                Level::Debug,
                "correlator.records_expired",
                vec![("count", serde_json::json!(1))]
            ),
            (
                Level::Warn,
                "correlator.unapplied_expired",
                vec![("count", serde_json::json!(1))]
            ),
        ]
    );
    assert_eq!(c.unapplied().total(), 0);
}

#[test]
fn holding_more_than_the_cap_lets_the_oldest_go_with_a_warning() {
    let t = NOW.0 - 20_000;
    let mut c = Correlator::new("http://h", CFG);
    let first: Vec<_> = (0..MAX_DETAILS)
        .map(|i| rec(&format!("s{i}"), "m", t, 0, 0))
        .collect();
    let (_, logs) = c.handle_fetch(Endpoint::Queue, queue_answer(&first));
    assert!(logs.is_empty());
    let (step, logs) = c.handle_fetch(Endpoint::Queue, queue_answer(&[rec("new", "m", t, 0, 0)]));
    assert_eq!(step, FetchStep::Held(1));
    assert_eq!(logs[0].event, "correlator.records_let_go");
    assert_eq!(logs[0].fields[0], ("count", serde_json::json!(1)));
    let held = c.carry.take_unassigned();
    assert_eq!((held.len(), held[0].source.as_str()), (MAX_DETAILS, "s1"));
}

#[test]
fn a_management_call_limit_never_comes_from_the_loop_interval() {
    assert_eq!(
        management_timeout_ms(0),
        60_000,
        "UPSTREAM_TIMEOUT_MS unset"
    );
    assert_eq!(
        management_timeout_ms(5_000),
        60_000,
        "shorter: the floor wins"
    );
    assert_eq!(management_timeout_ms(120_000), 120_000, "longer: it wins");
}

/// How a simulated write ends: committed and answered, refused, or committed with the
/// answer lost (the tick stopped before the reply).
#[derive(Debug, Clone, Copy)]
enum Write {
    Ok,
    Refused,
    LostReply,
}

fn arb_writes() -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec(
        prop_oneof![
            Just(Write::Ok),
            Just(Write::Refused),
            Just(Write::LostReply)
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn popped_records_are_applied_at_most_once_and_never_lost_despite_failed_writes(
        ticks in prop::collection::vec((arb_rows(), arb_details(), arb_writes()), 1..6)
    ) {
        let mut c = Correlator::new("http://h", CFG);
        // The storage model of §8.4: a row keeps the first account written.
        let mut written: BTreeMap<i64, DetailKey> = BTreeMap::new();
        let mut all_rows: Vec<Candidate> = Vec::new();
        let mut popped: BTreeSet<DetailKey> = BTreeSet::new();
        let write = |written: &mut BTreeMap<i64, DetailKey>, a: &Assignment, how: Write| {
            if !matches!(how, Write::Refused) {
                written.entry(a.row_id).or_insert_with(|| a.key.clone());
            }
            matches!(how, Write::Ok)
        };
        for (tick, (rows, details, writes)) in ticks.iter().enumerate() {
            let now = UnixMillis(NOW.0 + tick as u64 * 15_000);
            let mut outcomes = writes.iter().copied().chain(std::iter::repeat(Write::Ok));
            let (retries, _) = c.begin_tick(now);
            for a in &retries {
                if write(&mut written, a, outcomes.next().unwrap_or(Write::Ok)) {
                    c.confirm(a);
                }
            }
            let (mut cands, recs) = build(rows, details, now.0 as i64 - 60_000, tick);
            for cnd in &mut cands {
                cnd.id += tick as i64 * 1000;
            }
            all_rows.extend(cands);
            popped.extend(recs.iter().filter(|d| !d.failed).map(DetailKey::of));
            c.handle_fetch(Endpoint::Queue, queue_answer(&recs));
            let mut open: Vec<Candidate> = all_rows
                .iter()
                .filter(|r| !written.contains_key(&r.id))
                .cloned()
                .collect();
            open.sort_by(|a, b| b.started_at.cmp(&a.started_at));
            let out = c.match_tick(&open, Vec::new(), now);
            for a in &out.assignments {
                if write(&mut written, a, outcomes.next().unwrap_or(Write::Ok)) {
                    c.confirm(a);
                }
            }
        }
        // The database is healthy again: one more tick writes what is left.
        let end = UnixMillis(NOW.0 + ticks.len() as u64 * 15_000);
        let (retries, _) = c.begin_tick(end);
        for a in &retries {
            write(&mut written, a, Write::Ok);
            c.confirm(a);
        }
        // Never one record on two rows, and every row holds the record paired with it.
        let applied: BTreeSet<DetailKey> = written.values().cloned().collect();
        prop_assert_eq!(applied.len(), written.len());
        // Every popped record is applied or still held, none in both.
        let held: BTreeSet<DetailKey> = c.carry.take_unassigned().iter().map(DetailKey::of).collect();
        prop_assert_eq!(c.unapplied().unconfirmed, 0);
        prop_assert!(applied.is_disjoint(&held));
        let kept: BTreeSet<DetailKey> = applied.union(&held).cloned().collect();
        prop_assert_eq!(kept, popped);
    }
}
