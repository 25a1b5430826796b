#![allow(clippy::result_large_err)] // helpers mirror `parse`'s signature

use http::Method;
use http::header::CACHE_CONTROL;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// 2026-05-04T10:00:00.123Z
const NOW: UnixMillis = UnixMillis(1_777_888_800_123);

fn get(path_and_query: &str) -> Result<AdminRequest, Reply> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    parse(&Method::GET, path, query, b"", NOW)
}

fn body_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn assert_rejected(res: Result<AdminRequest, Reply>, status: u16, error: &str) {
    let reply = res.expect_err("expected a rejection");
    assert_eq!(reply.status.as_u16(), status, "{error}");
    assert_eq!(body_of(&reply), json!({ "error": error }));
    assert_eq!(reply.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json"
    );
}

#[test]
fn every_shared_validation_message() {
    let cases: &[(&str, &str)] = &[
        ("/admin/usage/range", "Missing from or to parameter"),
        (
            "/admin/usage/range?from=2026-05-01",
            "Missing from or to parameter",
        ),
        (
            "/admin/usage/accounts/range?to=2026-05-01",
            "Missing from or to parameter",
        ),
        (
            "/admin/usage/range?from=2026-5-01&to=2026-05-02",
            "Invalid from parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/range?from=2026-02-30&to=x",
            "Invalid from parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/range?from=&to=2026-05-02",
            "Invalid from parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/range?from=2026-05-01&to=2026-13-01",
            "Invalid to parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/range?from=2026-05-01&to=2026-05-01T00",
            "Invalid to parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/range?from=2026-05-02&to=2026-05-01",
            "from must be on or before to",
        ),
        (
            "/admin/usage/range?from=2025-01-01&to=2026-01-02",
            "Date range cannot exceed 366 days",
        ),
        (
            "/admin/usage/models?from=2026-05-01",
            "Both from and to are required when using date range",
        ),
        (
            "/admin/usage/providers?to=2026-05-01",
            "Both from and to are required when using date range",
        ),
        (
            "/admin/usage/trend?from=2026-05-01",
            "Both from and to are required when using date range",
        ),
        (
            "/admin/quotas/history?to=2026-05-01",
            "Both from and to are required when using date range",
        ),
        (
            "/admin/usage/models?day=2026-02-29",
            "Invalid day parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/accounts?day=yesterday",
            "Invalid day parameter; expected YYYY-MM-DD",
        ),
        (
            "/admin/usage/accounts/summary?from=2026-05-05",
            "from must be on or before to",
        ),
        ("/admin/usage/trend?hours=0", "Invalid hours parameter"),
        ("/admin/usage/trend?hours=-1", "Invalid hours parameter"),
        ("/admin/usage/trend?hours=8784.5", "Invalid hours parameter"),
        ("/admin/usage/trend?hours=NaN", "Invalid hours parameter"),
        ("/admin/usage/trend?hours=inf", "Invalid hours parameter"),
        ("/admin/usage/trend?hours=abc", "Invalid hours parameter"),
        ("/admin/quotas/history?hours=1.5", "Invalid hours parameter"),
        ("/admin/quotas/history?hours=0", "Invalid hours parameter"),
        (
            "/admin/quotas/history?hours=8785",
            "Invalid hours parameter",
        ),
        ("/admin/logs?limit=0", "Invalid limit or offset"),
        ("/admin/logs?limit=201", "Invalid limit or offset"),
        ("/admin/logs?limit=1.0", "Invalid limit or offset"),
        ("/admin/logs?limit=", "Invalid limit or offset"),
        ("/admin/logs?offset=-1", "Invalid limit or offset"),
        ("/admin/logs?offset=100001", "Invalid limit or offset"),
        (
            "/admin/logs?offset=99999999999999999999",
            "Invalid limit or offset",
        ),
        ("/admin/logs?limit=0&tool=", "Invalid limit or offset"),
        ("/admin/logs?tool=", "Invalid filter parameter"),
        ("/admin/logs?client_id=+", "Invalid filter parameter"),
        ("/admin/logs?model=%20%09", "Invalid filter parameter"),
        ("/admin/logs?provider=", "Invalid filter parameter"),
        ("/admin/logs?status_min=abc", "Invalid filter parameter"),
        ("/admin/logs?status_max=5.5", "Invalid filter parameter"),
        (
            "/admin/logs?lifecycle_status=done",
            "Invalid filter parameter",
        ),
        ("/admin/logs?lifecycle_status=", "Invalid filter parameter"),
    ];
    for (target, error) in cases {
        assert_rejected(get(target), 400, error);
    }
}

#[test]
fn range_limits_are_inclusive() {
    // 2024 is a leap year: 2024-01-01..2024-12-31 is exactly 366 days.
    let Ok(AdminRequest::UsageRange(r)) = get("/admin/usage/range?from=2024-01-01&to=2024-12-31")
    else {
        panic!("366 days must be accepted");
    };
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.days()),
        ("2024-01-01", "2024-12-31", 366)
    );
    assert_rejected(
        get("/admin/usage/range?from=2024-01-01&to=2025-01-01"),
        400,
        "Date range cannot exceed 366 days",
    );
    let Ok(AdminRequest::UsageRange(one)) = get("/admin/usage/range?from=2026-05-04&to=2026-05-04")
    else {
        panic!("a one-day range is valid");
    };
    assert_eq!(one.days(), 1);
}

#[test]
fn unknown_paths_methods_and_ids_are_404() {
    let cases: &[(Method, &str)] = &[
        (Method::GET, "/admin"),
        (Method::GET, "/admin/"),
        (Method::GET, "/admin/nope"),
        (Method::GET, "/admin/stats/"),
        (Method::POST, "/admin/stats"),
        (Method::HEAD, "/admin/stats"),
        (Method::PUT, "/admin/api-keys"),
        (Method::GET, "/admin/logs/12a"),
        (Method::GET, "/admin/logs/-1"),
        (Method::GET, "/admin/logs/%31"),
        (Method::GET, "/admin/logs/99999999999999999999"),
        (Method::GET, "/admin/logs/1/other"),
        (Method::GET, "/admin/api-keys/1"),
        (Method::PATCH, "/admin/api-keys/x"),
        (Method::DELETE, "/admin/api-keys/"),
        (Method::GET, "/admin/breakers/"),
        (Method::GET, "/admin/breakers/bad%zz"),
        (Method::GET, "/admin/breakers/a/reset"),
        (Method::POST, "/admin/breakers/a"),
        (Method::GET, "/adminx/stats"),
    ];
    for (method, path) in cases {
        let res = parse(method, path, None, br#"{"name":"x"}"#, NOW);
        assert_rejected(res, 404, "Not found");
    }
}

#[test]
fn routes_map_to_typed_requests() {
    use AdminRequest as R;
    assert_eq!(
        get("/admin/usage/today").unwrap(),
        R::UsageToday {
            date: "2026-05-04".into()
        }
    );
    assert_eq!(get("/admin/stats").unwrap(), R::Stats);
    assert_eq!(get("/admin/logs/0042").unwrap(), R::Log { id: 42 });
    assert_eq!(
        get("/admin/logs/7/cost-audit").unwrap(),
        R::LogCostAudit { id: 7 }
    );
    assert_eq!(get("/admin/quotas").unwrap(), R::Quotas);
    assert_eq!(get("/admin/quotas?refresh=1").unwrap(), R::Quotas);
    assert_eq!(get("/admin/quotas?refresh=true").unwrap(), R::QuotasRefresh);
    assert_eq!(get("/admin/quotas/refresh").unwrap(), R::QuotasRefresh);
    assert_eq!(get("/admin/quotas/probes").unwrap(), R::QuotaProbes);
    assert_eq!(get("/admin/providers").unwrap(), R::Providers);
    assert_eq!(get("/admin/config").unwrap(), R::Config);
    assert_eq!(get("/admin/api-keys").unwrap(), R::ApiKeys);
    assert_eq!(
        get("/admin/api-keys/3/usage").unwrap(),
        R::ApiKeyUsage { id: 3 }
    );
    assert_eq!(get("/admin/breakers").unwrap(), R::Breakers);
    assert_eq!(
        get("/admin/breakers/my%2Fprov%20x+y").unwrap(),
        R::Breaker {
            provider_id: "my/prov x+y".into()
        }
    );
    assert_eq!(
        parse(
            &Method::POST,
            "/admin/breakers/openai/reset",
            None,
            b"",
            NOW
        )
        .unwrap(),
        R::BreakerReset {
            provider_id: "openai".into()
        }
    );
    assert_eq!(
        parse(&Method::DELETE, "/admin/api-keys/9", None, b"", NOW).unwrap(),
        R::ApiKeyRevoke { id: 9 }
    );
    assert_eq!(
        get("/admin/pricing?model=claude+sonnet%2D4&provider=").unwrap(),
        R::Pricing {
            model: Some("claude sonnet-4".into()),
            provider: None
        }
    );
    assert_eq!(
        get("/admin/pricing").unwrap(),
        R::Pricing {
            model: None,
            provider: None
        }
    );
}

#[test]
fn day_and_range_defaults() {
    use AdminRequest as R;
    assert_eq!(
        get("/admin/usage/models").unwrap(),
        R::UsageModels(DayOrRange::Day("2026-05-04".into()))
    );
    assert_eq!(
        get("/admin/usage/providers?day=2026-05-01").unwrap(),
        R::UsageProviders(DayOrRange::Day("2026-05-01".into()))
    );
    let Ok(R::UsageModels(DayOrRange::Range(r))) =
        get("/admin/usage/models?day=bad&from=2026-04-01&to=2026-04-30")
    else {
        panic!("from/to win over day");
    };
    assert_eq!(r.days(), 30);
    assert_eq!(
        get("/admin/usage/accounts").unwrap(),
        R::UsageAccounts {
            day: "2026-05-04".into()
        }
    );
    let Ok(R::UsageAccountsSummary(s)) = get("/admin/usage/accounts/summary") else {
        panic!("summary defaults");
    };
    assert_eq!(
        (s.from.as_str(), s.to.as_str()),
        ("2026-04-27", "2026-05-04")
    );
    let Ok(R::UsageAccountsSummary(s)) = get("/admin/usage/accounts/summary?to=2026-04-30") else {
        panic!("summary with only to");
    };
    assert_eq!(
        (s.from.as_str(), s.to.as_str()),
        ("2026-04-27", "2026-04-30")
    );
}

#[test]
fn logs_defaults_bounds_and_filters() {
    let Ok(AdminRequest::Logs(q)) = get("/admin/logs") else {
        panic!("defaults");
    };
    assert_eq!((q.limit, q.offset, q.tool.as_deref()), (50, 0, None));
    let Ok(AdminRequest::Logs(q)) = get(
        "/admin/logs?limit=200&offset=100000&tool=claude-code&client_id=a+b&model=m&provider=p\
         &status_min=400&status_max=-1&lifecycle_status=aborted",
    ) else {
        panic!("all params");
    };
    assert_eq!(q.limit, 200);
    assert_eq!(q.offset, 100_000);
    assert_eq!(q.client_id.as_deref(), Some("a b"));
    assert_eq!((q.status_min, q.status_max), (Some(400), Some(-1)));
    assert_eq!(
        q.lifecycle_status.map(LifecycleFilter::as_str),
        Some("aborted")
    );
    let Ok(AdminRequest::Logs(q)) = get("/admin/logs?limit=1") else {
        panic!("limit 1");
    };
    assert_eq!(q.limit, 1);
}

#[test]
fn trend_hours_5_is_61_buckets_of_300s() {
    let Ok(AdminRequest::UsageTrend { span, .. }) = get("/admin/usage/trend?hours=5") else {
        panic!("trend");
    };
    assert_eq!(span.width_secs, 300);
    assert_eq!(span.bucket_count(), 61);
    let starts: Vec<u64> = span.bucket_starts().collect();
    assert_eq!(starts.len(), 61);
    assert!(starts.iter().all(|s| s % 300 == 0));
    assert_eq!(bucket_timestamp(starts[0]), "2026-05-04T05:00:00Z");
    assert_eq!(bucket_timestamp(starts[60]), "2026-05-04T10:00:00Z");

    let Ok(AdminRequest::QuotaHistory { span, .. }) = get("/admin/quotas/history?hours=5") else {
        panic!("history");
    };
    assert_eq!((span.width_secs, span.bucket_count()), (300, 61));
}

#[test]
fn bucket_widths_follow_the_span() {
    let cases: &[(&str, u64, u64)] = &[
        ("hours=24", 3_600, 25),
        ("hours=5.5", 3_600, 7),
        ("hours=168", 14_400, 43),
        ("hours=169", 86_400, 8),
        ("hours=8784", 86_400, 367),
        ("from=2026-05-04&to=2026-05-04", 3_600, 24),
        ("from=2026-05-01&to=2026-05-07", 14_400, 42),
        ("from=2026-05-01&to=2026-05-08", 86_400, 8),
    ];
    for (query, width, count) in cases {
        let target = format!("/admin/usage/trend?{query}");
        let Ok(AdminRequest::UsageTrend { span, .. }) = get(&target) else {
            panic!("{query}");
        };
        assert_eq!(
            (span.width_secs, span.bucket_count()),
            (*width, *count),
            "{query}"
        );
    }
    assert_eq!(bucket_width_secs(5 * 3_600_000), 300);
    assert_eq!(bucket_width_secs(5 * 3_600_000 + 1), 3_600);
}

#[test]
fn trend_reply_includes_empty_buckets_and_slots_rows() {
    let range = DateRange::new("2026-05-04", "2026-05-04").unwrap();
    let span = Span::of_range(&range);
    let base = 1_777_852_800; // 2026-05-04T00:00:00Z
    let rows = [
        TrendRow {
            bucket_start_secs: base + 3_600,
            requests: 2,
            tokens: 30,
            cost_nanousd: 10_500_000,
        },
        // A second row inside the same hour is summed into it.
        TrendRow {
            bucket_start_secs: base + 3_700,
            requests: 1,
            tokens: 5,
            cost_nanousd: 1,
        },
        // Outside the span: dropped.
        TrendRow {
            bucket_start_secs: base - 1,
            requests: 9,
            tokens: 9,
            cost_nanousd: 9,
        },
    ];
    let reply = trend_reply(&span, &rows);
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let body = body_of(&reply);
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(
        buckets[0],
        json!({"timestamp":"2026-05-04T00:00:00Z","requests":0,"tokens":0,"cost_usd":0.0,"cost_nanousd":0})
    );
    assert_eq!(
        buckets[1],
        json!({"timestamp":"2026-05-04T01:00:00Z","requests":3,"tokens":35,"cost_usd":0.010500001,"cost_nanousd":10_500_001})
    );
    assert_eq!(buckets[23]["timestamp"], "2026-05-04T23:00:00Z");
}

#[test]
fn history_reply_has_snapshot_lists() {
    let span = Span::ending_at(UnixMillis(1_777_852_800_000 + 600_000), 600_000);
    let rows = [(1_777_852_800 + 301, json!({"provider":"claude"}))];
    let body = body_of(&history_reply(&span, &rows));
    assert_eq!(
        body,
        json!({"buckets":[
            {"timestamp":"2026-05-04T00:00:00Z","snapshots":[]},
            {"timestamp":"2026-05-04T00:05:00Z","snapshots":[{"provider":"claude"}]},
            {"timestamp":"2026-05-04T00:10:00Z","snapshots":[]},
        ]})
    );
}

fn post_key(body: &str) -> Result<AdminRequest, Reply> {
    parse(&Method::POST, "/admin/api-keys", None, body.as_bytes(), NOW)
}

fn patch_key(body: &str) -> Result<AdminRequest, Reply> {
    parse(
        &Method::PATCH,
        "/admin/api-keys/5",
        None,
        body.as_bytes(),
        NOW,
    )
}

#[test]
fn api_key_body_errors() {
    let long = format!(r#"{{"name":"{}"}}"#, "é".repeat(201));
    let cases: &[(&str, &str)] = &[
        ("", "Invalid request body"),
        ("{", "Invalid request body"),
        ("[]", "Invalid request body"),
        ("\"name\"", "Invalid request body"),
        (r#"{"name":5}"#, "Invalid request body"),
        (r#"{"name":"a\u0007b"}"#, "Invalid request body"),
        (r#"{"name":"a\nb"}"#, "Invalid request body"),
        (&long, "Invalid request body"),
        (
            r#"{"name":"ok","allowed_accounts":"a"}"#,
            "Invalid request body",
        ),
        (
            r#"{"name":"ok","allowed_providers":["a",1]}"#,
            "Invalid request body",
        ),
        (
            r#"{"name":"ok","allowed_providers":{}}"#,
            "Invalid request body",
        ),
        (r#"{}"#, "name is required"),
        (r#"{"name":null}"#, "name is required"),
        (r#"{"name":"   "}"#, "name is required"),
        (r#"{"name":"\t\n"}"#, "name is required"),
    ];
    for (body, error) in cases {
        assert_rejected(post_key(body), 400, error);
    }
    let patch_cases: &[(&str, &str)] = &[
        ("", "Invalid request body"),
        ("null", "Invalid request body"),
        (r#"{"name":"x"}"#, "Invalid request body"),
        (r#"{"allowed_accounts":[true]}"#, "Invalid request body"),
        (r#"{"allowed_providers":"openai"}"#, "Invalid request body"),
    ];
    for (body, error) in patch_cases {
        assert_rejected(patch_key(body), 400, error);
    }
}

#[test]
fn api_key_bodies_normalize_lists() {
    let name_200 = "é".repeat(200);
    let body = format!(
        r#"{{"name":"  {name_200} ","allowed_accounts":[" a@x ","","a@x","b"],"allowed_providers":["  "]}}"#
    );
    let Ok(AdminRequest::ApiKeyCreate(c)) = post_key(&body) else {
        panic!("valid create");
    };
    assert_eq!(c.name, name_200);
    assert_eq!(
        c.allowed_accounts,
        Some(vec!["a@x".to_owned(), "b".to_owned()])
    );
    assert_eq!(c.allowed_providers, None);
    assert_eq!(
        list_column(c.allowed_accounts.as_deref()).as_deref(),
        Some(r#"["a@x","b"]"#)
    );
    assert_eq!(list_column(Some(&[])), None);

    let Ok(AdminRequest::ApiKeyPatch { id, patch }) =
        patch_key(r#"{"allowed_accounts":null,"other":1}"#)
    else {
        panic!("valid patch");
    };
    assert_eq!(id, 5);
    assert_eq!(patch.allowed_accounts, Some(None));
    assert_eq!(patch.allowed_providers, None);
    let Ok(AdminRequest::ApiKeyPatch { patch, .. }) =
        patch_key(r#"{"allowed_providers":["openai","openai"]}"#)
    else {
        panic!("valid patch");
    };
    assert_eq!(
        patch.allowed_providers,
        Some(Some(vec!["openai".to_owned()]))
    );
}

#[test]
fn api_key_material_is_hex_hash_and_prefix() {
    let m = ApiKeyMaterial::from_random([0xab; 32]);
    assert_eq!(m.key.expose(), "ab".repeat(32));
    assert_eq!(m.key_prefix, "abababab");
    assert_eq!(m.key_hash.len(), 64);
    // SHA-256 of the 64-char hex string, not of the raw bytes.
    assert_ne!(
        m.key_hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest([0xab; 32]))
    );
    assert_eq!(
        m.key_hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(m.key.expose()))
    );
}

#[test]
fn reply_helpers() {
    let r = created(&json!({"id":1}));
    assert_eq!((r.status.as_u16(), &r.body[..]), (201, &b"{\"id\":1}"[..]));
    assert_eq!(r.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let r = breaker_not_found();
    assert_eq!(
        (r.status.as_u16(), body_of(&r)),
        (404, json!({"error":"Breaker not found"}))
    );
    let r = internal_error();
    assert_eq!(
        (r.status.as_u16(), body_of(&r)),
        (500, json!({"error":"Internal server error"}))
    );
    assert_eq!(not_found().status.as_u16(), 404);
}

proptest! {
    #[test]
    fn parse_never_panics(
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PATCH, Method::DELETE]),
        path in "/admin/[a-z%0-9/-]{0,40}",
        query in proptest::option::of("[a-z_=&%0-9.+-]{0,60}"),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        now in 0u64..4_000_000_000_000,
    ) {
        let _ = parse(&method, &path, query.as_deref(), &body, UnixMillis(now));
    }

    #[test]
    fn hour_spans_cover_now_and_start(hours in 1u64..=8784, now in 0u64..4_000_000_000_000) {
        let target = format!("hours={hours}");
        let res = parse(&Method::GET, "/admin/quotas/history", Some(&target), b"", UnixMillis(now));
        let Ok(AdminRequest::QuotaHistory { span, .. }) = res else {
            panic!("valid hours");
        };
        let first = span.first_bucket_secs();
        let last = span.last_bucket_secs();
        prop_assert!(first * 1000 <= span.start.0);
        prop_assert!(span.start.0 < (first + span.width_secs) * 1000);
        prop_assert!(last * 1000 <= now && now < (last + span.width_secs) * 1000);
        prop_assert!(span.bucket_count() <= 367);
    }
}
