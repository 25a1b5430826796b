//! Every admin query of `control.md` §6 against known rows, with hand-computed expectations,
//! and the JSON field names of each response shape.
//!
//! The fixture (written through the real commands: pre-log, finalize, correlate, quota
//! insert, key create):
//!
//! | row | provider/model | started_at | tokens (p, c → total) | cost | end | key | account |
//! |---|---|---|---|---|---|---|---|
//! | r1 | anthropic/claude | 05-04 10:00:00.000 | 100, 50 → 150 | 300 | completed 200 | A | acct-a, auth 1 |
//! | r2 | anthropic/claude | 05-04 10:07:00.000 | 200, 0 → 200 | 400 | completed 200 | A | acct-a, auth kept |
//! | r3 | openai/gpt-5 | 05-04 12:30:00.000 | 1000, 100 → 1100 | 3300 | error 500 | B | acct-b, auth 2 |
//! | r4 | anthropic/haiku (tool codex) | 05-03 23:59:59.999 | 10, 10 → 20 | 100 | completed 200 | — | acct-a, auth 3 |
//! | r5 | openai/gpt-5 | 05-02 08:00:00.000 | 50, 50 → 100 | 100 | aborted 499 | — | — |
//! | r6 | anthropic/claude | 05-04 11:00:00.000 | pending | 0 | — | — | — |
//! | r7 | anthropic/claude | 05-04 10:07:00.000 | pending | 0 | — | — | — |

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use agent_cli_proxy_core::admin::{DateRange, Span, parse_day};
use agent_cli_proxy_core::secret::Secret;
use agent_cli_proxy_core::time::UnixMillis;
use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::queries::{LogFilter, TrendFilter};
use agent_cli_proxy_storage::{
    Correlation, FinalizeRow, NewApiKey, Op, QuotaSnapshotRow, Reply, Store, Terminal,
};
use helpers::*;
use serde::Serialize;
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    r: [i64; 8],
    key_a: i64,
    key_b: i64,
    key_c: i64,
}

fn pre(store: &mut Store, provider: &str, model: &str, at: &str, tool: &str) -> i64 {
    let mut row = prelog(provider, model, at);
    row.tool = tool.into();
    row.client_id = if tool == "codex" {
        "codex-cli".into()
    } else {
        tool.into()
    };
    match store.execute(Op::PreLog(Box::new(row))).unwrap() {
        Reply::RowId(id) => id,
        other => panic!("{other:?}"),
    }
}

fn fin(store: &mut Store, f: FinalizeRow) {
    assert_eq!(
        store.execute(Op::Finalize(Box::new(f))).unwrap(),
        Reply::Finalized(true)
    );
}

fn ended(
    id: i64,
    t: TokenColumns,
    nanos: u64,
    end: Terminal,
    status: i64,
    key: Option<i64>,
) -> FinalizeRow {
    let mut f = finalize(id, t, nanos);
    f.lifecycle_status = end;
    f.status = Some(status);
    f.proxy_api_key_id = key;
    if end != Terminal::Completed {
        f.error_code = Some("upstream_error".into());
        f.error_message = Some(format!("upstream HTTP {status}"));
    }
    f
}

fn create_key(store: &mut Store, hex: char, name: &str) -> i64 {
    match store
        .execute(Op::CreateApiKey(NewApiKey {
            key: Secret::new(hex.to_string().repeat(64)),
            name: name.into(),
            allowed_accounts: Some(vec!["acct-a".into()]),
            allowed_providers: None,
        }))
        .unwrap()
    {
        Reply::ApiKeyCreated(c) => c.id,
        other => panic!("{other:?}"),
    }
}

fn correlate(store: &mut Store, id: i64, account: &str, auth: Option<&str>) {
    let reply = store
        .execute(Op::Correlate(Correlation {
            id,
            source: Some(account.into()),
            auth_index: auth.map(str::to_owned),
            now: "2026-05-05T00:00:00.000Z".into(),
        }))
        .unwrap();
    assert_eq!(reply, Reply::Changed(true));
}

fn fixture() -> Fixture {
    let (dir, path) = temp_db();
    let mut store = migrated(&path);
    let key_a = create_key(&mut store, 'a', "alpha");
    let key_b = create_key(&mut store, 'b', "beta");
    let key_c = create_key(&mut store, 'c', "gamma");
    // Known creation times: A and C share one, B is older, so the order is C, A, B.
    for (id, at) in [
        (key_a, "2026-05-01 00:00:00"),
        (key_b, "2026-04-01 00:00:00"),
        (key_c, "2026-05-01 00:00:00"),
    ] {
        store
            .connection()
            .execute(
                "UPDATE api_keys SET created_at = ?2 WHERE id = ?1",
                rusqlite::params![id, at],
            )
            .unwrap();
    }
    let s = &mut store;
    let r1 = pre(
        s,
        "anthropic",
        "claude",
        "2026-05-04T10:00:00.000Z",
        "claude-code",
    );
    let r2 = pre(
        s,
        "anthropic",
        "claude",
        "2026-05-04T10:07:00.000Z",
        "claude-code",
    );
    let r3 = pre(
        s,
        "openai",
        "gpt-5",
        "2026-05-04T12:30:00.000Z",
        "claude-code",
    );
    let r4 = pre(s, "anthropic", "haiku", "2026-05-03T23:59:59.999Z", "codex");
    let r5 = pre(
        s,
        "openai",
        "gpt-5",
        "2026-05-02T08:00:00.000Z",
        "claude-code",
    );
    let r6 = pre(
        s,
        "anthropic",
        "claude",
        "2026-05-04T11:00:00.000Z",
        "claude-code",
    );
    let r7 = pre(
        s,
        "anthropic",
        "claude",
        "2026-05-04T10:07:00.000Z",
        "claude-code",
    );
    let done = Terminal::Completed;
    fin(s, ended(r1, tokens(100, 50), 2, done, 200, Some(key_a)));
    fin(s, ended(r2, tokens(200, 0), 2, done, 200, Some(key_a)));
    let mut f3 = ended(r3, tokens(1000, 100), 3, Terminal::Error, 500, Some(key_b));
    f3.actual_model = Some("gpt-5-2025-08-07".into());
    f3.actual_provider = Some("openai".into());
    f3.latency_ms = Some(1234);
    fin(s, f3);
    fin(s, ended(r4, tokens(10, 10), 5, done, 200, None));
    fin(
        s,
        ended(r5, tokens(50, 50), 1, Terminal::Aborted, 499, None),
    );
    correlate(s, r1, "acct-a", Some("1"));
    correlate(s, r2, "acct-a", None);
    correlate(s, r3, "acct-b", Some("2"));
    correlate(s, r4, "acct-a", Some("3"));
    // Columns the commands of this fixture do not set, for the full LogRow check.
    s.connection()
        .execute(
            "UPDATE request_logs SET agent = 'reviewer', msg_id = 'msg-3',
               user_agent = 'curl/8', source_ip = '10.0.0.3' WHERE id = ?1",
            [r3],
        )
        .unwrap();
    Fixture {
        _dir: dir,
        store,
        r: [0, r1, r2, r3, r4, r5, r6, r7],
        key_a,
        key_b,
        key_c,
    }
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

const DAILY_USAGE: [&str; 11] = [
    "day",
    "provider",
    "model",
    "request_count",
    "prompt_tokens",
    "completion_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "cost_nanousd",
];

fn daily(day: &str, pm: (&str, &str), n: i64, p: i64, c: i64, total: i64, nano: i64) -> Value {
    json!({
        "day": day, "provider": pm.0, "model": pm.1, "request_count": n,
        "prompt_tokens": p, "completion_tokens": c, "cache_creation_tokens": 0,
        "cache_read_tokens": 0, "total_tokens": total, "cost_usd": nano as f64 / 1e9,
        "cost_nanousd": nano
    })
}

fn day_claude() -> Value {
    daily("2026-05-04", ("anthropic", "claude"), 2, 300, 50, 350, 700)
}

fn day_gpt() -> Value {
    daily("2026-05-04", ("openai", "gpt-5"), 1, 1000, 100, 1100, 3300)
}

#[test]
fn usage_today_and_models_of_a_day() {
    let f = fixture();
    let today = to_json(&f.store.usage_today("2026-05-04").unwrap());
    assert_eq!(
        today,
        json!({
            "date": "2026-05-04", "requests": 3, "total_tokens": 1450, "cost_usd": 4e-6,
            "cost_nanousd": 4000, "breakdown": [day_claude(), day_gpt()]
        })
    );
    assert_eq!(
        keys(&today),
        [
            "date",
            "requests",
            "total_tokens",
            "cost_usd",
            "cost_nanousd",
            "breakdown"
        ]
    );
    assert_eq!(keys(&today["breakdown"][0]), DAILY_USAGE);
    assert_eq!(
        to_json(&f.store.usage_today("2026-05-01").unwrap()),
        json!({"date": "2026-05-01", "requests": 0, "total_tokens": 0, "cost_usd": 0.0,
               "cost_nanousd": 0, "breakdown": []})
    );
    assert_eq!(
        to_json(&f.store.usage_models_day("2026-05-04").unwrap()),
        json!([day_claude(), day_gpt()])
    );
    assert_eq!(
        to_json(&f.store.usage_models_day("2026-05-03").unwrap()),
        json!([daily(
            "2026-05-03",
            ("anthropic", "haiku"),
            1,
            10,
            10,
            20,
            100
        )])
    );
}

#[test]
fn usage_range_has_one_entry_per_day_with_rows_descending() {
    let f = fixture();
    let range = to_json(&f.store.usage_range("2026-05-01", "2026-05-04").unwrap());
    assert_eq!(
        range,
        json!([
            {"date": "2026-05-04", "requests": 3, "total_tokens": 1450, "cost_usd": 4e-6,
             "cost_nanousd": 4000, "breakdown": [day_claude(), day_gpt()]},
            {"date": "2026-05-03", "requests": 1, "total_tokens": 20, "cost_usd": 1e-7,
             "cost_nanousd": 100,
             "breakdown": [daily("2026-05-03", ("anthropic", "haiku"), 1, 10, 10, 20, 100)]},
            {"date": "2026-05-02", "requests": 1, "total_tokens": 100, "cost_usd": 1e-7,
             "cost_nanousd": 100,
             "breakdown": [daily("2026-05-02", ("openai", "gpt-5"), 1, 50, 50, 100, 100)]},
        ])
    );
    let one = f.store.usage_range("2026-05-03", "2026-05-03").unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].date, "2026-05-03");
    assert!(
        f.store
            .usage_range("2026-06-01", "2026-06-30")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn usage_models_over_a_range_are_summed_without_day() {
    let f = fixture();
    let models = to_json(
        &f.store
            .usage_models_range("2026-05-02", "2026-05-04")
            .unwrap(),
    );
    let no_day = |mut v: Value| {
        v.as_object_mut().unwrap().shift_remove("day");
        v
    };
    assert_eq!(
        models,
        json!([
            no_day(daily("", ("anthropic", "claude"), 2, 300, 50, 350, 700)),
            no_day(daily("", ("anthropic", "haiku"), 1, 10, 10, 20, 100)),
            no_day(daily("", ("openai", "gpt-5"), 2, 1050, 150, 1200, 3400)),
        ])
    );
    assert_eq!(keys(&models[0]), DAILY_USAGE[1..]);
    // The bounds are inclusive: 05-03 alone holds only haiku.
    let one = f
        .store
        .usage_models_range("2026-05-03", "2026-05-03")
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].model, "haiku");
}

#[test]
fn usage_providers_of_a_day_and_a_range() {
    let f = fixture();
    let provider = |p: &str, n: i64, total: i64, nano: i64| {
        json!({"provider": p, "request_count": n, "total_tokens": total,
               "cost_usd": nano as f64 / 1e9, "cost_nanousd": nano})
    };
    let range = to_json(&f.store.usage_providers("2026-05-02", "2026-05-04").unwrap());
    assert_eq!(
        range,
        json!([
            provider("anthropic", 3, 370, 800),
            provider("openai", 2, 1200, 3400)
        ])
    );
    assert_eq!(
        keys(&range[0]),
        [
            "provider",
            "request_count",
            "total_tokens",
            "cost_usd",
            "cost_nanousd"
        ]
    );
    assert_eq!(
        to_json(&f.store.usage_providers("2026-05-04", "2026-05-04").unwrap()),
        json!([
            provider("anthropic", 2, 350, 700),
            provider("openai", 1, 1100, 3300)
        ])
    );
}

#[allow(clippy::too_many_arguments)]
fn account_row(
    day: &str,
    pm: (&str, &str),
    account: &str,
    auth: &str,
    n: i64,
    pc: (i64, i64),
    total: i64,
    nano: i64,
) -> Value {
    json!({
        "day": day, "provider": pm.0, "model": pm.1, "cliproxy_account": account,
        "cliproxy_auth_index": auth, "request_count": n, "prompt_tokens": pc.0,
        "completion_tokens": pc.1, "cache_creation_tokens": 0, "cache_read_tokens": 0,
        "reasoning_tokens": 0, "total_tokens": total, "cost_usd": nano as f64 / 1e9,
        "cost_nanousd": nano
    })
}

#[test]
fn usage_accounts_of_a_day_a_range_and_the_summary() {
    let f = fixture();
    let a = || {
        account_row(
            "2026-05-04",
            ("anthropic", "claude"),
            "acct-a",
            "1",
            2,
            (300, 50),
            350,
            700,
        )
    };
    let b = || {
        account_row(
            "2026-05-04",
            ("openai", "gpt-5"),
            "acct-b",
            "2",
            1,
            (1000, 100),
            1100,
            3300,
        )
    };
    let haiku = account_row(
        "2026-05-03",
        ("anthropic", "haiku"),
        "acct-a",
        "3",
        1,
        (10, 10),
        20,
        100,
    );
    let day = to_json(&f.store.usage_accounts_day("2026-05-04").unwrap());
    assert_eq!(day, json!([a(), b()]));
    assert_eq!(
        keys(&day[0]),
        [
            "day",
            "provider",
            "model",
            "cliproxy_account",
            "cliproxy_auth_index",
            "request_count",
            "prompt_tokens",
            "completion_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_usd",
            "cost_nanousd"
        ]
    );
    assert_eq!(
        to_json(
            &f.store
                .usage_accounts_range("2026-05-01", "2026-05-04")
                .unwrap()
        ),
        json!([a(), b(), haiku])
    );
    assert!(f.store.usage_accounts_day("2026-05-02").unwrap().is_empty());

    let summary = to_json(
        &f.store
            .usage_accounts_summary("2026-05-01", "2026-05-04")
            .unwrap(),
    );
    let s = |account: &str, auth: &str, p: &str, n: i64, total: i64, nano: i64| {
        json!({"cliproxy_account": account, "cliproxy_auth_index": auth, "provider": p,
               "request_count": n, "total_tokens": total, "cost_usd": nano as f64 / 1e9,
               "cost_nanousd": nano})
    };
    assert_eq!(
        summary,
        json!([
            s("acct-b", "2", "openai", 1, 1100, 3300),
            s("acct-a", "1", "anthropic", 2, 350, 700),
            s("acct-a", "3", "anthropic", 1, 20, 100),
        ])
    );
    assert_eq!(
        keys(&summary[0]),
        [
            "cliproxy_account",
            "cliproxy_auth_index",
            "provider",
            "request_count",
            "total_tokens",
            "cost_usd",
            "cost_nanousd"
        ]
    );
    assert_eq!(
        to_json(
            &f.store
                .usage_accounts_summary("2026-06-01", "2026-06-07")
                .unwrap()
        ),
        json!([])
    );
}

fn at(day: &str, secs: u64) -> UnixMillis {
    UnixMillis(parse_day(day).unwrap().0 + secs * 1000)
}

/// The non-empty buckets of a trend as (timestamp, requests, tokens, cost).
fn filled(trend: &Value) -> Vec<(String, i64, i64, i64)> {
    trend["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["requests"] != 0)
        .map(|b| {
            (
                b["timestamp"].as_str().unwrap().to_owned(),
                b["requests"].as_i64().unwrap(),
                b["tokens"].as_i64().unwrap(),
                b["cost_nanousd"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn usage_trend_fills_every_bucket_and_filters_exactly() {
    let f = fixture();
    let day = Span::of_range(&DateRange::new("2026-05-04", "2026-05-04").unwrap());
    let trend = to_json(&f.store.usage_trend(&day, &TrendFilter::default()).unwrap());
    let buckets = trend["buckets"].as_array().unwrap();
    assert_eq!(keys(&trend), ["buckets"]);
    assert_eq!(buckets.len(), 24);
    assert_eq!(
        keys(&buckets[0]),
        [
            "timestamp",
            "requests",
            "tokens",
            "cost_usd",
            "cost_nanousd"
        ]
    );
    assert_eq!(
        buckets[0],
        json!({"timestamp": "2026-05-04T00:00:00Z", "requests": 0, "tokens": 0,
               "cost_usd": 0.0, "cost_nanousd": 0})
    );
    assert_eq!(buckets[23]["timestamp"], "2026-05-04T23:00:00Z");
    // The pending rows r6 (11:00) and r7 (10:07) are left out.
    assert_eq!(
        filled(&trend),
        [
            ("2026-05-04T10:00:00Z".to_owned(), 2, 350, 700),
            ("2026-05-04T12:00:00Z".to_owned(), 1, 1100, 3300),
        ]
    );
    assert_eq!(buckets[10]["cost_usd"], json!(7e-7));

    let only = |provider: Option<&str>, model: Option<&str>, tool: Option<&str>| TrendFilter {
        provider: provider.map(str::to_owned),
        model: model.map(str::to_owned),
        tool: tool.map(str::to_owned),
    };
    let openai = to_json(
        &f.store
            .usage_trend(&day, &only(Some("openai"), None, None))
            .unwrap(),
    );
    assert_eq!(
        filled(&openai),
        [("2026-05-04T12:00:00Z".to_owned(), 1, 1100, 3300)]
    );
    let claude = to_json(
        &f.store
            .usage_trend(&day, &only(None, Some("claude"), None))
            .unwrap(),
    );
    assert_eq!(
        filled(&claude),
        [("2026-05-04T10:00:00Z".to_owned(), 2, 350, 700)]
    );
    let codex = to_json(
        &f.store
            .usage_trend(&day, &only(None, None, Some("codex")))
            .unwrap(),
    );
    assert_eq!(codex["buckets"].as_array().unwrap().len(), 24);
    assert!(filled(&codex).is_empty());

    // The last millisecond of a range still counts (r4 at 23:59:59.999).
    let before = Span::of_range(&DateRange::new("2026-05-03", "2026-05-03").unwrap());
    let t = to_json(
        &f.store
            .usage_trend(&before, &TrendFilter::default())
            .unwrap(),
    );
    assert_eq!(
        filled(&t),
        [("2026-05-03T23:00:00Z".to_owned(), 1, 20, 100)]
    );

    // `hours=5` ending 15:00: 61 buckets of 300 s from 10:00; r1 sits exactly on the first
    // bucket's start.
    let five = Span::ending_at(at("2026-05-04", 15 * 3600), 5 * 3_600_000);
    let t = to_json(&f.store.usage_trend(&five, &TrendFilter::default()).unwrap());
    assert_eq!(t["buckets"].as_array().unwrap().len(), 61);
    assert_eq!(t["buckets"][0]["timestamp"], "2026-05-04T10:00:00Z");
    assert_eq!(
        filled(&t),
        [
            ("2026-05-04T10:00:00Z".to_owned(), 1, 150, 300),
            ("2026-05-04T10:05:00Z".to_owned(), 1, 200, 400),
            ("2026-05-04T12:30:00Z".to_owned(), 1, 1100, 3300),
        ]
    );
}

#[test]
fn stats_of_an_empty_and_a_filled_database() {
    let (_dir, path) = temp_db();
    let empty = migrated(&path);
    let stats = to_json(&empty.stats().unwrap());
    assert_eq!(
        stats,
        json!({"total_requests": 0, "total_tokens": 0, "total_cost_usd": 0.0,
               "total_cost_nanousd": 0, "first_request_at": null, "last_request_at": null})
    );
    assert_eq!(
        keys(&stats),
        [
            "total_requests",
            "total_tokens",
            "total_cost_usd",
            "total_cost_nanousd",
            "first_request_at",
            "last_request_at"
        ]
    );
    let f = fixture();
    assert_eq!(
        to_json(&f.store.stats().unwrap()),
        json!({"total_requests": 7, "total_tokens": 1570, "total_cost_usd": 4.2e-6,
               "total_cost_nanousd": 4200, "first_request_at": "2026-05-02T08:00:00.000Z",
               "last_request_at": "2026-05-04T12:30:00.000Z"})
    );
}

#[test]
fn logs_filters_bounds_and_order() {
    let f = fixture();
    let [_, r1, r2, r3, r4, r5, r6, r7] = f.r;
    let ids = |filter: LogFilter, limit: u32, offset: u32| -> Vec<i64> {
        f.store
            .logs(&filter, limit, offset)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    let all = LogFilter::default;
    // started_at descending; r7 and r2 share a start, the higher id first.
    assert_eq!(ids(all(), 50, 0), [r3, r6, r7, r2, r1, r4, r5]);
    assert_eq!(ids(all(), 2, 1), [r6, r7]);
    assert_eq!(ids(all(), 1, 6), [r5]);
    assert_eq!(ids(all(), 200, 7), Vec::<i64>::new());
    let with = |edit: fn(&mut LogFilter)| {
        let mut filter = LogFilter::default();
        edit(&mut filter);
        filter
    };
    assert_eq!(ids(with(|f| f.tool = Some("codex".into())), 50, 0), [r4]);
    assert_eq!(
        ids(with(|f| f.client_id = Some("codex-cli".into())), 50, 0),
        [r4]
    );
    assert_eq!(
        ids(with(|f| f.model = Some("gpt-5".into())), 50, 0),
        [r3, r5]
    );
    assert_eq!(
        ids(with(|f| f.provider = Some("anthropic".into())), 50, 0),
        [r6, r7, r2, r1, r4]
    );
    assert_eq!(ids(with(|f| f.status_min = Some(400)), 50, 0), [r3, r5]);
    // Pending rows have no status, so a status bound leaves them out.
    assert_eq!(ids(with(|f| f.status_max = Some(299)), 50, 0), [r2, r1, r4]);
    assert_eq!(
        ids(
            with(|f| {
                f.status_min = Some(499);
                f.status_max = Some(499);
            }),
            50,
            0
        ),
        [r5]
    );
    assert_eq!(
        ids(with(|f| f.lifecycle_status = Some("pending".into())), 50, 0),
        [r6, r7]
    );
    assert_eq!(
        ids(with(|f| f.lifecycle_status = Some("error".into())), 50, 0),
        [r3]
    );
    assert_eq!(
        ids(with(|f| f.lifecycle_status = Some("aborted".into())), 50, 0),
        [r5]
    );
    assert_eq!(
        ids(
            with(|f| {
                f.provider = Some("openai".into());
                f.lifecycle_status = Some("completed".into());
            }),
            50,
            0
        ),
        Vec::<i64>::new()
    );
    // Filters are exact, not prefixes or patterns.
    assert!(ids(with(|f| f.model = Some("gpt".into())), 50, 0).is_empty());
    assert!(ids(with(|f| f.model = Some("gpt-%".into())), 50, 0).is_empty());
}

#[test]
fn log_by_id_has_every_column_under_its_name() {
    let f = fixture();
    let r3 = f.r[3];
    let row = to_json(&f.store.log_by_id(r3).unwrap().unwrap());
    let expected = json!({
        "id": r3,
        "request_id": "req-2026-05-04T12:30:00.000Z",
        "provider": "openai",
        "model": "gpt-5",
        "actual_model": "gpt-5-2025-08-07",
        "actual_provider": "openai",
        "proxy_api_key_id": f.key_b,
        "tool": "claude-code",
        "client_id": "claude-code",
        "agent": "reviewer",
        "source": "proxy",
        "msg_id": "msg-3",
        "path": "/v1/messages",
        "streamed": 1,
        "status": 500,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 1100,
        "cost_usd": 3.3e-6,
        "cost_status": "ok",
        "lifecycle_status": "error",
        "incomplete": 1,
        "error_code": "upstream_error",
        "error_message": "upstream HTTP 500",
        "latency_ms": 1234,
        "started_at": "2026-05-04T12:30:00.000Z",
        "finished_at": "2026-05-04T10:00:01.000Z",
        "finalized_at": "2026-05-04T10:00:01.000Z",
        "meta_json": r#"{"method":"POST","usage_convention":"anthropic","attempts":1,"stream_usage_injected":false}"#,
        "user_agent": "curl/8",
        "source_ip": "10.0.0.3",
        "cliproxy_account": "acct-b",
        "cliproxy_auth_index": "2",
        "cliproxy_source": "acct-b",
        "correlated_at": "2026-05-05T00:00:00.000Z",
        "cache_write_1h_tokens": 0,
        "usage_incomplete": 0,
        "cost_nanousd": 3300
    });
    assert_eq!(row, expected);
    // The key order is the declared column order of control.md §2.1.
    let declared: Vec<String> = {
        let mut stmt = f
            .store
            .connection()
            .prepare("SELECT name FROM pragma_table_info('request_logs') ORDER BY cid")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(keys(&row), declared);
    assert_eq!(f.store.log_by_id(9_999).unwrap(), None);
}

#[test]
fn cost_audit_is_oldest_first_and_unknown_logs_are_none() {
    let f = fixture();
    let [_, r1, _, _, _, _, r6, _] = f.r;
    // Two later audits of r1, as a backfill would write them.
    for (cost, at) in [(350, "2026-05-06 00:00:00"), (320, "2026-05-05 00:00:00")] {
        f.store
            .connection()
            .execute(
                "INSERT INTO cost_audit (request_log_id, model, provider, source,
                   base_cost_usd, cost_nanousd, calc_at)
                 VALUES (?1, 'claude', 'anthropic', 'pricing', ?2 / 1e9, ?2, ?3)",
                rusqlite::params![r1, cost, at],
            )
            .unwrap();
    }
    let audits = to_json(&f.store.cost_audit(r1).unwrap().unwrap());
    let list = audits.as_array().unwrap();
    // Oldest first means insertion order (id), not calc_at.
    let costs: Vec<i64> = list
        .iter()
        .map(|a| a["cost_nanousd"].as_i64().unwrap())
        .collect();
    assert_eq!(costs, [300, 350, 320]);
    let ids: Vec<i64> = list.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        keys(&list[0]),
        [
            "id",
            "request_log_id",
            "model",
            "provider",
            "source",
            "base_cost_usd",
            "cost_nanousd",
            "calc_at"
        ]
    );
    assert_eq!(list[0]["request_log_id"], r1);
    assert_eq!(list[0]["model"], "m");
    assert_eq!(list[0]["provider"], "anthropic");
    assert_eq!(list[0]["source"], "pricing");
    assert_eq!(list[0]["base_cost_usd"], json!(3e-7));
    assert_eq!(list[1]["calc_at"], "2026-05-06 00:00:00");
    assert_eq!(f.store.cost_audit(r6).unwrap(), Some(Vec::new()));
    assert_eq!(f.store.cost_audit(9_999).unwrap(), None);
}

fn snapshot(ts: &str, provider: &str, account: &str, kind: &str, used: f64) -> QuotaSnapshotRow {
    QuotaSnapshotRow {
        timestamp: ts.into(),
        provider: provider.into(),
        account: account.into(),
        quota_type: kind.into(),
        model: (provider == "codex").then(|| "gpt-5".to_owned()),
        used_pct: Some(used),
        remaining: Some(100.0 - used),
        remaining_raw: Some(format!("{:.2}%", 100.0 - used)),
        resets_at: Some("2026-05-04T15:00:00.000Z".into()),
        raw_json: Some(format!(r#"{{"used":{used}}}"#)),
    }
}

fn quotas_store() -> (tempfile::TempDir, Store) {
    let (dir, path) = temp_db();
    let mut store = migrated(&path);
    let rows = vec![
        snapshot("2026-05-04T10:00:00.000Z", "claude", "acct-a", "5h", 10.0),
        snapshot("2026-05-04T10:30:00.000Z", "claude", "acct-a", "5h", 20.0),
        snapshot("2026-05-04T10:10:00.000Z", "claude", "acct-a", "week", 5.0),
        snapshot("2026-05-04T09:00:00.000Z", "codex", "acct-b", "5h", 50.0),
        snapshot("2026-05-01T00:00:00.000Z", "claude", "acct-a", "5h", 99.0),
        // Same key and second as the 20 % row, inserted later: it is the latest.
        snapshot("2026-05-04T10:30:00.000Z", "claude", "acct-a", "5h", 21.0),
    ];
    assert_eq!(
        store.execute(Op::InsertQuotaSnapshots(rows)).unwrap(),
        Reply::Count(6)
    );
    (dir, store)
}

#[test]
fn quotas_latest_per_key_within_the_window() {
    let (_dir, store) = quotas_store();
    let latest = store.quotas_latest("2026-05-02T00:00:00.000Z").unwrap();
    let summary: Vec<(&str, &str, &str, Option<f64>)> = latest
        .iter()
        .map(|s| {
            (
                s.provider.as_str(),
                s.account.as_str(),
                s.quota_type.as_str(),
                s.used_pct,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("claude", "acct-a", "5h", Some(21.0)),
            ("claude", "acct-a", "week", Some(5.0)),
            ("codex", "acct-b", "5h", Some(50.0)),
        ]
    );
    let row = to_json(&latest[2]);
    assert_eq!(
        row,
        json!({"id": 4, "timestamp": "2026-05-04T09:00:00.000Z", "provider": "codex",
               "account": "acct-b", "quota_type": "5h", "model": "gpt-5", "used_pct": 50.0,
               "remaining": 50.0, "remaining_raw": "50.00%",
               "resets_at": "2026-05-04T15:00:00.000Z", "raw_json": r#"{"used":50}"#})
    );
    assert_eq!(
        keys(&row),
        [
            "id",
            "timestamp",
            "provider",
            "account",
            "quota_type",
            "model",
            "used_pct",
            "remaining",
            "remaining_raw",
            "resets_at",
            "raw_json"
        ]
    );
    // Outside the window nothing is reported, even the old row of a live key.
    assert!(
        store
            .quotas_latest("2026-05-05T00:00:00.000Z")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn quota_history_buckets_hold_the_latest_snapshot_per_key() {
    let (_dir, store) = quotas_store();
    // Two hours ending 11:00: 25 buckets of 300 s from 09:00.
    let span = Span::ending_at(at("2026-05-04", 11 * 3600), 2 * 3_600_000);
    let history = to_json(&store.quota_history(&span, None, None).unwrap());
    let buckets = history["buckets"].as_array().unwrap();
    assert_eq!(keys(&history), ["buckets"]);
    assert_eq!(buckets.len(), 25);
    assert_eq!(keys(&buckets[0]), ["timestamp", "snapshots"]);
    // The codex row sits exactly on the first bucket's start.
    assert_eq!(
        buckets[0],
        json!({"timestamp": "2026-05-04T09:00:00Z", "snapshots": [
            {"provider": "codex", "account": "acct-b", "quota_type": "5h", "model": "gpt-5",
             "used_pct": 50.0, "remaining": 50.0, "resets_at": "2026-05-04T15:00:00.000Z"}
        ]})
    );
    assert_eq!(
        buckets[1],
        json!({"timestamp": "2026-05-04T09:05:00Z", "snapshots": []})
    );
    let used = |i: usize| -> Vec<(String, f64)> {
        buckets[i]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["quota_type"].as_str().unwrap().to_owned(),
                    s["used_pct"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(buckets[12]["timestamp"], "2026-05-04T10:00:00Z");
    assert_eq!(used(12), [("5h".to_owned(), 10.0)]);
    assert_eq!(used(14), [("week".to_owned(), 5.0)]);
    assert_eq!(used(18), [("5h".to_owned(), 21.0)]);
    let non_empty = buckets
        .iter()
        .filter(|b| !b["snapshots"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(non_empty, 4);

    let codex = store.quota_history(&span, Some("codex"), None).unwrap();
    let filled: Vec<&str> = codex
        .buckets
        .iter()
        .filter(|b| !b.snapshots.is_empty())
        .map(|b| b.timestamp.as_str())
        .collect();
    assert_eq!(filled, ["2026-05-04T09:00:00Z"]);
    let acct_a = store.quota_history(&span, None, Some("acct-a")).unwrap();
    let filled: Vec<&str> = acct_a
        .buckets
        .iter()
        .filter(|b| !b.snapshots.is_empty())
        .map(|b| b.timestamp.as_str())
        .collect();
    assert_eq!(
        filled,
        [
            "2026-05-04T10:00:00Z",
            "2026-05-04T10:10:00Z",
            "2026-05-04T10:30:00Z"
        ]
    );
}

#[test]
fn api_keys_list_order_request_count_and_usage() {
    let f = fixture();
    let list = to_json(&f.store.api_keys().unwrap());
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect();
    // created_at descending, then id descending.
    assert_eq!(ids, [f.key_c, f.key_a, f.key_b]);
    assert_eq!(
        list[1],
        json!({"id": f.key_a, "keyPrefix": "aaaaaaaa", "name": "alpha",
               "createdAt": "2026-05-01 00:00:00", "revokedAt": null, "lastUsedAt": null,
               "requestCount": 2, "allowedAccounts": ["acct-a"], "allowedProviders": null})
    );
    assert_eq!(
        keys(&list[0]),
        [
            "id",
            "keyPrefix",
            "name",
            "createdAt",
            "revokedAt",
            "lastUsedAt",
            "requestCount",
            "allowedAccounts",
            "allowedProviders"
        ]
    );
    let counts: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["requestCount"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [0, 2, 1]);

    let usage = to_json(&f.store.api_key_usage(f.key_a).unwrap().unwrap());
    assert_eq!(
        usage,
        json!({"id": f.key_a, "requestCount": 2, "totalTokens": 350, "totalCostUsd": 7e-7,
               "totalCostNanousd": 700})
    );
    assert_eq!(
        keys(&usage),
        [
            "id",
            "requestCount",
            "totalTokens",
            "totalCostUsd",
            "totalCostNanousd"
        ]
    );
    assert_eq!(
        to_json(&f.store.api_key_usage(f.key_c).unwrap().unwrap()),
        json!({"id": f.key_c, "requestCount": 0, "totalTokens": 0, "totalCostUsd": 0.0,
               "totalCostNanousd": 0})
    );
    assert_eq!(f.store.api_key_usage(9_999).unwrap(), None);
}
