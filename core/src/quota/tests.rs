use serde_json::json;

use super::*;

fn auth(kind: &str, token: Option<&str>) -> AuthFile {
    AuthFile {
        name: format!("{kind}.json"),
        kind: kind.to_owned(),
        email: Some(format!("{kind}@example.com")),
        access_token: token.map(Secret::new),
        account_id: None,
        disabled: false,
    }
}

fn ok(body: Value) -> ProbeAnswer {
    ProbeAnswer::Http {
        status: 200,
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn auth_files_parse_and_never_print_their_token() {
    let a = AuthFile::parse(
        "c.json",
        br#"{"type":" codex ","email":"me@x","access_token":"tok-SECRET","account_id":"acc-1","disabled":"yes"}"#,
    )
    .expect("parse");
    assert_eq!(a.kind, "codex");
    assert_eq!(a.account(), "me@x");
    assert_eq!(a.local_provider(), "openai");
    assert_eq!(
        a.access_token.as_ref().map(Secret::expose),
        Some("tok-SECRET")
    );
    assert!(!a.disabled, "only a literal true disables");
    assert!(!format!("{a:?}").contains("tok-SECRET"));
    let err = AuthFile::parse("bad.json", b"{\"access_token\":\"tok-SECRET\"").unwrap_err();
    assert!(matches!(err, AuthFileError::NotJson { .. }));
    assert!(!err.to_string().contains("tok-SECRET"));
    assert!(err.to_string().contains("bad.json"));
    assert_eq!(
        AuthFile::parse("a.json", b"[1]"),
        Err(AuthFileError::NotObject {
            name: "a.json".into()
        })
    );
    assert!(
        is_auth_file_name("x.JSON") && !is_auth_file_name(".json") && !is_auth_file_name("x.txt")
    );
}

#[test]
fn probe_plans_per_type() {
    let ProbePlan::Probe(reqs) = plan(&auth("claude", Some("t1")), "1.2.3") else {
        panic!("probe expected")
    };
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].url, CLAUDE_URL);
    assert_eq!(reqs[0].breaker_id, "quota:api.anthropic.com");
    let headers: Vec<(&str, &str)> = reqs[0]
        .headers
        .iter()
        .map(|(k, v)| (*k, v.expose()))
        .collect();
    assert_eq!(
        headers,
        vec![
            ("user-agent", "agent-cli-proxy/1.2.3"),
            ("authorization", "Bearer t1"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "oauth-2025-04-20"),
        ]
    );
    assert!(!format!("{reqs:?}").contains("t1"));

    let mut codex = auth("codex", Some("t2"));
    codex.account_id = Some("acc-9".into());
    let ProbePlan::Probe(reqs) = plan(&codex, "v") else {
        panic!()
    };
    assert_eq!(reqs[0].breaker_id, "quota:chatgpt.com");
    assert!(
        reqs[0]
            .headers
            .iter()
            .any(|(k, v)| *k == "chatgpt-account-id" && v.expose() == "acc-9")
    );

    let ProbePlan::Probe(reqs) = plan(&auth("kimi", Some("t3")), "v") else {
        panic!()
    };
    let urls: Vec<&str> = reqs.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls, vec![KIMI_URL, KIMI_FALLBACK_URL]);

    let ProbePlan::Known(q) = plan(&auth("gemini", Some("t")), "v") else {
        panic!()
    };
    assert_eq!(
        (q.status.as_str(), q.error.as_deref()),
        (
            "unsupported",
            Some("quota endpoint is not known for this provider")
        )
    );
    let ProbePlan::Known(q) = plan(&auth("claude", None), "v") else {
        panic!()
    };
    assert_eq!(
        (q.status.as_str(), q.unavailable, q.error.as_deref()),
        ("error", true, Some("missing access_token"))
    );
    let mut off = auth("codex", Some("t"));
    off.disabled = true;
    let ProbePlan::Known(q) = plan(&off, "v") else {
        panic!()
    };
    assert!(q.disabled && q.unavailable);
}

#[test]
fn claude_windows_skip_nulls_and_empty_windows() {
    let q = parse_answer(
        &auth("claude", Some("t")),
        &ok(json!({
            "five_hour": {"utilization": 42.5, "resets_at": "2026-05-04T12:00:00+00:00"},
            "seven_day": {"utilization": 0.25, "resets_at": null},
            "seven_day_sonnet": null,
            "seven_day_opus": {"utilization": null, "resets_at": null}
        })),
    );
    assert_eq!(q.status, "active");
    assert_eq!(q.account, "claude@example.com");
    let got: Vec<(&str, Option<f64>, Option<&str>)> = q
        .windows
        .iter()
        .map(|w| (w.quota_type.as_str(), w.used_pct, w.resets_at.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("5h", Some(42.5), Some("2026-05-04T12:00:00.000Z")),
            ("week", Some(25.0), None),
        ]
    );
    let rows = q.snapshot_rows("2026-05-04T10:00:00.000Z");
    assert_eq!(rows[0].remaining, Some(57.5));
    assert_eq!(rows[0].remaining_raw.as_deref(), Some("57.50%"));
    assert_eq!(rows[1].remaining_raw.as_deref(), Some("75.00%"));
    assert_eq!(rows[0].provider, "claude");
    let full = parse_answer(
        &auth("claude", Some("t")),
        &ok(json!({"five_hour": {"utilization": 130}})),
    );
    assert_eq!(
        (full.status.as_str(), full.unavailable),
        ("limit_reached", true)
    );
    assert_eq!(full.snapshot_rows("t")[0].remaining, Some(0.0));
}

#[test]
fn codex_windows_types_and_status() {
    let q = parse_answer(
        &auth("codex", Some("t")),
        &ok(json!({
            "plan_type": "plus",
            "rate_limit": {
                "allowed": true, "limit_reached": false,
                "primary_window": {"used_percent": 12, "limit_window_seconds": 18000, "reset_at": 1_777_888_800},
                "secondary_window": {"used_percent": 80, "limit_window_seconds": 604800, "reset_at": 1_777_888_800_000u64}
            }
        })),
    );
    assert_eq!(
        (q.status.as_str(), q.unavailable, q.plan.as_deref()),
        ("active", false, Some("plus"))
    );
    let types: Vec<&str> = q.windows.iter().map(|w| w.quota_type.as_str()).collect();
    assert_eq!(types, vec!["5h", "week"]);
    assert_eq!(
        q.windows[0].resets_at.as_deref(),
        Some("2026-05-04T10:00:00.000Z")
    );
    assert_eq!(
        q.windows[1].resets_at.as_deref(),
        Some("2026-05-04T10:00:00.000Z")
    );
    assert_eq!(window_type_from_seconds(86_400.0 * 3.0), "3d");
    assert_eq!(window_type_from_seconds(143.4 * 3600.0), "6d");
    assert_eq!(window_type_from_seconds(3_600.0), "1h");

    let reached = parse_answer(
        &auth("codex", Some("t")),
        &ok(
            json!({"rate_limit": {"limit_reached": true, "primary_window": {"used_percent": 100}}}),
        ),
    );
    assert_eq!(
        (reached.status.as_str(), reached.unavailable),
        ("limit_reached", true)
    );
    assert_eq!(reached.windows[0].quota_type, "5h", "fallback type");

    let err = parse_answer(
        &auth("codex", Some("t")),
        &ProbeAnswer::Http {
            status: 429,
            body: br#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":1777888800}}"#.to_vec(),
        },
    );
    assert_eq!(err.status, "usage_limit_reached");
    assert_eq!(
        err.error.as_deref(),
        Some("The usage limit has been reached")
    );
    assert_eq!(err.windows.len(), 1);
    assert_eq!(
        (err.windows[0].quota_type.as_str(), err.windows[0].used_pct),
        ("exhausted", Some(100.0))
    );
    let plain = parse_answer(
        &auth("codex", Some("t")),
        &ProbeAnswer::Http {
            status: 401,
            body: b"nope".to_vec(),
        },
    );
    assert_eq!(
        (plain.status.as_str(), plain.error.as_deref()),
        ("error", Some("HTTP 401"))
    );
    assert!(plain.windows.is_empty());
}

#[test]
fn kimi_week_and_limits() {
    let q = parse_answer(
        &auth("kimi", Some("t")),
        &ok(json!({
            "usage": {"limit": "200", "used": "50", "resetTime": "2026-05-10T00:00:00Z"},
            "limits": [
                {"window": {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"},
                 "detail": {"limit": "100", "remaining": "10", "resetTime": "2026-05-04T15:00:00Z"}},
                {"window": {"duration": 1440}, "detail": {"limit": 0, "used": 5}}
            ]
        })),
    );
    assert_eq!(q.account, "kimi");
    let got: Vec<(&str, Option<f64>)> = q
        .windows
        .iter()
        .map(|w| (w.quota_type.as_str(), w.used_pct))
        .collect();
    assert_eq!(
        got,
        vec![("week", Some(25.0)), ("5h", Some(90.0)), ("1d", None)]
    );
    assert_eq!(
        q.windows[1].resets_at.as_deref(),
        Some("2026-05-04T15:00:00.000Z")
    );
}

#[test]
fn normalisation_rules() {
    assert_eq!(normalize_pct(&json!(0.5)), Some(50.0));
    assert_eq!(normalize_pct(&json!(1)), Some(100.0));
    assert_eq!(normalize_pct(&json!(-3)), Some(0.0));
    assert_eq!(normalize_pct(&json!("37.5")), Some(37.5));
    assert_eq!(normalize_pct(&json!(null)), None);
    assert_eq!(
        normalize_reset(&json!(1_777_888_800)).as_deref(),
        Some("2026-05-04T10:00:00.000Z")
    );
    assert_eq!(
        normalize_reset(&json!(999_999_999_999u64)),
        None,
        "seconds past year 9999"
    );
    assert_eq!(
        normalize_reset(&json!(1_000_000_000_000u64)).as_deref(),
        Some("2001-09-09T01:46:40.000Z")
    );
    assert_eq!(normalize_reset(&json!("soon")), None);
    assert_eq!(normalize_reset(&json!(-1)), None);
}

#[test]
fn failures_and_the_report_shape() {
    let q = parse_answer(
        &auth("claude", Some("t")),
        &ProbeAnswer::Failed("timed out after 15000ms".into()),
    );
    assert_eq!(
        (q.status.as_str(), q.unavailable, q.error.as_deref()),
        ("error", true, Some("timed out after 15000ms"))
    );
    let local =
        json!({"since": "x", "requests": 0, "total_tokens": 0, "cost_usd": 0.0, "cost_nanousd": 0});
    let report = q.report_json("2026-05-04T10:00:00.000Z", local.clone(), local.clone());
    let keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "provider",
            "account",
            "status",
            "unavailable",
            "disabled",
            "refreshed_at",
            "error",
            "windows",
            "local_usage"
        ]
    );
    assert_eq!(report["local_usage"]["five_hour"], local);
    let (five, seven) = local_windows(UnixMillis(1_777_888_800_000));
    assert_eq!(five, "2026-05-04T05:00:00.000Z");
    assert_eq!(seven, "2026-04-27T10:00:00.000Z");
}
