use super::*;

const EMPTY: &str = "\
# HELP agent_cli_proxy_up 1 while the proxy is running
# TYPE agent_cli_proxy_up gauge
agent_cli_proxy_up 1
# HELP agent_cli_proxy_requests_today LLM requests today (UTC) by provider and model
# TYPE agent_cli_proxy_requests_today counter
# HELP agent_cli_proxy_tokens_today Total tokens today (UTC) by provider and model
# TYPE agent_cli_proxy_tokens_today counter
# HELP agent_cli_proxy_cost_usd_today Cost in USD today (UTC) by provider and model
# TYPE agent_cli_proxy_cost_usd_today counter
# HELP agent_cli_proxy_proxy_request_duration_ms Duration of LLM requests from entry to finalize in milliseconds
# TYPE agent_cli_proxy_proxy_request_duration_ms histogram
# HELP agent_cli_proxy_proxy_request_duration_ms_max Maximum observed agent cli proxy proxy request duration ms
# TYPE agent_cli_proxy_proxy_request_duration_ms_max gauge
# HELP agent_cli_proxy_ready_check_duration_ms Duration of uncached /ready runs in milliseconds
# TYPE agent_cli_proxy_ready_check_duration_ms histogram
# HELP agent_cli_proxy_ready_check_duration_ms_max Maximum observed agent cli proxy ready check duration ms
# TYPE agent_cli_proxy_ready_check_duration_ms_max gauge
# HELP agent_cli_proxy_rate_limited_total Requests rejected by the rate limiter since start
# TYPE agent_cli_proxy_rate_limited_total counter
agent_cli_proxy_rate_limited_total 0
# HELP agent_cli_proxy_breaker_rejections_total Requests rejected by an open circuit breaker since start
# TYPE agent_cli_proxy_breaker_rejections_total counter
# HELP agent_cli_proxy_upstream_retries_total Upstream retries since start
# TYPE agent_cli_proxy_upstream_retries_total counter
# HELP agent_cli_proxy_usage_incomplete_total Rows finalized with usage_incomplete = 1 since start
# TYPE agent_cli_proxy_usage_incomplete_total counter
agent_cli_proxy_usage_incomplete_total 0
# HELP agent_cli_proxy_storage_failures_total Storage commits that failed after retries since start
# TYPE agent_cli_proxy_storage_failures_total counter
# HELP agent_cli_proxy_active_streams Exchanges currently relaying a body
# TYPE agent_cli_proxy_active_streams gauge
agent_cli_proxy_active_streams 0
# HELP agent_cli_proxy_panics_total Panics caught at task boundaries since start
# TYPE agent_cli_proxy_panics_total counter
agent_cli_proxy_panics_total 0
# HELP agent_cli_proxy_log_dropped_lines_total Log lines dropped by backpressure since start
# TYPE agent_cli_proxy_log_dropped_lines_total counter
agent_cli_proxy_log_dropped_lines_total 0
# HELP agent_cli_proxy_spool_bytes Bytes held in spool segments
# TYPE agent_cli_proxy_spool_bytes gauge
agent_cli_proxy_spool_bytes 0
# HELP agent_cli_proxy_spool_records_total Records appended to the spool since start
# TYPE agent_cli_proxy_spool_records_total counter
agent_cli_proxy_spool_records_total{kind=\"begin\"} 0
agent_cli_proxy_spool_records_total{kind=\"usage\"} 0
agent_cli_proxy_spool_records_total{kind=\"end\"} 0
agent_cli_proxy_spool_records_total{kind=\"fallback\"} 0
# HELP agent_cli_proxy_ingest_lag_ms How long the oldest record not yet in the database has waited
# TYPE agent_cli_proxy_ingest_lag_ms gauge
agent_cli_proxy_ingest_lag_ms 0
# HELP agent_cli_proxy_ingest_batch_records Records per ingestion batch
# TYPE agent_cli_proxy_ingest_batch_records histogram
agent_cli_proxy_ingest_batch_records_bucket{le=\"+Inf\"} 0
agent_cli_proxy_ingest_batch_records_sum 0
agent_cli_proxy_ingest_batch_records_count 0
# HELP agent_cli_proxy_ingest_failures_total Ingestion batches the database refused since start
# TYPE agent_cli_proxy_ingest_failures_total counter
agent_cli_proxy_ingest_failures_total 0
";

#[test]
fn empty_registry_emits_help_and_type_for_every_series() {
    let text = MetricsRegistry::new().render(&[], &Snapshot::default());
    assert_eq!(text, EMPTY);
}

#[test]
fn full_render_matches_golden_text() {
    let mut m = MetricsRegistry::new();
    let completed = RequestLabels {
        lifecycle_status: "completed",
        provider: "openai",
        status: Some(200),
        streamed: false,
    };
    m.observe_request(completed, 250);
    m.observe_request(completed, 30_001);
    m.observe_request(
        RequestLabels {
            lifecycle_status: "aborted",
            provider: "",
            status: None,
            streamed: true,
        },
        -5,
    );
    m.observe_ready("pass", 12);
    m.inc_rate_limited();
    m.inc_rate_limited();
    m.inc_breaker_rejection("zeta");
    m.inc_breaker_rejection("anthropic");
    m.inc_breaker_rejection("zeta");
    m.inc_upstream_retry("a\"b\\c\nd");
    m.inc_usage_incomplete();
    m.inc_storage_failure(StorageOp::Finalize);
    m.inc_storage_failure(StorageOp::Prelog);
    m.inc_panic();
    let rows = [
        TodayRow {
            provider: "openai".into(),
            model: "gpt-5".into(),
            request_count: 3,
            total_tokens: 1_200,
            cost_nanousd: 10_500_000,
        },
        TodayRow {
            provider: "anthropic".into(),
            model: "".into(),
            request_count: 1,
            total_tokens: 7,
            cost_nanousd: 2_000_000_000,
        },
        TodayRow {
            provider: "anthropic".into(),
            model: "claude-sonnet-4".into(),
            request_count: 2,
            total_tokens: 10,
            cost_nanousd: 0,
        },
    ];
    let snapshot = Snapshot {
        active_streams: 4,
        log_dropped_lines: 9,
        spool: SpoolSnapshot {
            bytes: 4_096,
            records: [("begin", 6), ("usage", 2), ("end", 5), ("fallback", 1)],
            ingest_lag_ms: 12,
            ingest_failures: 3,
            batch_buckets: vec![(1, 1), (4, 2), (16, 2)],
            batch_count: 3,
            batch_sum: 14,
        },
    };
    let text = m.render(&rows, &snapshot);
    let expected = r#"# HELP agent_cli_proxy_up 1 while the proxy is running
# TYPE agent_cli_proxy_up gauge
agent_cli_proxy_up 1
# HELP agent_cli_proxy_requests_today LLM requests today (UTC) by provider and model
# TYPE agent_cli_proxy_requests_today counter
agent_cli_proxy_requests_today{model="claude-sonnet-4",provider="anthropic"} 2
agent_cli_proxy_requests_today{model="unknown",provider="anthropic"} 1
agent_cli_proxy_requests_today{model="gpt-5",provider="openai"} 3
# HELP agent_cli_proxy_tokens_today Total tokens today (UTC) by provider and model
# TYPE agent_cli_proxy_tokens_today counter
agent_cli_proxy_tokens_today{model="claude-sonnet-4",provider="anthropic"} 10
agent_cli_proxy_tokens_today{model="unknown",provider="anthropic"} 7
agent_cli_proxy_tokens_today{model="gpt-5",provider="openai"} 1200
# HELP agent_cli_proxy_cost_usd_today Cost in USD today (UTC) by provider and model
# TYPE agent_cli_proxy_cost_usd_today counter
agent_cli_proxy_cost_usd_today{model="claude-sonnet-4",provider="anthropic"} 0
agent_cli_proxy_cost_usd_today{model="unknown",provider="anthropic"} 2
agent_cli_proxy_cost_usd_today{model="gpt-5",provider="openai"} 0.0105
# HELP agent_cli_proxy_proxy_request_duration_ms Duration of LLM requests from entry to finalize in milliseconds
# TYPE agent_cli_proxy_proxy_request_duration_ms histogram
agent_cli_proxy_proxy_request_duration_ms_bucket{le="25",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="50",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="100",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="250",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="500",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="1000",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="2500",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="5000",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="10000",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="30000",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="+Inf",lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_sum{lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 0
agent_cli_proxy_proxy_request_duration_ms_count{lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="25",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 0
agent_cli_proxy_proxy_request_duration_ms_bucket{le="50",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 0
agent_cli_proxy_proxy_request_duration_ms_bucket{le="100",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 0
agent_cli_proxy_proxy_request_duration_ms_bucket{le="250",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="500",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="1000",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="2500",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="5000",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="10000",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="30000",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 1
agent_cli_proxy_proxy_request_duration_ms_bucket{le="+Inf",lifecycle_status="completed",provider="openai",status="200",streamed="false"} 2
agent_cli_proxy_proxy_request_duration_ms_sum{lifecycle_status="completed",provider="openai",status="200",streamed="false"} 30251
agent_cli_proxy_proxy_request_duration_ms_count{lifecycle_status="completed",provider="openai",status="200",streamed="false"} 2
# HELP agent_cli_proxy_proxy_request_duration_ms_max Maximum observed agent cli proxy proxy request duration ms
# TYPE agent_cli_proxy_proxy_request_duration_ms_max gauge
agent_cli_proxy_proxy_request_duration_ms_max{lifecycle_status="aborted",provider="unknown",status="unknown",streamed="true"} 0
agent_cli_proxy_proxy_request_duration_ms_max{lifecycle_status="completed",provider="openai",status="200",streamed="false"} 30001
# HELP agent_cli_proxy_ready_check_duration_ms Duration of uncached /ready runs in milliseconds
# TYPE agent_cli_proxy_ready_check_duration_ms histogram
agent_cli_proxy_ready_check_duration_ms_bucket{le="25",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="50",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="100",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="250",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="500",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="1000",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="2500",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="5000",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="10000",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="30000",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_bucket{le="+Inf",status="pass"} 1
agent_cli_proxy_ready_check_duration_ms_sum{status="pass"} 12
agent_cli_proxy_ready_check_duration_ms_count{status="pass"} 1
# HELP agent_cli_proxy_ready_check_duration_ms_max Maximum observed agent cli proxy ready check duration ms
# TYPE agent_cli_proxy_ready_check_duration_ms_max gauge
agent_cli_proxy_ready_check_duration_ms_max{status="pass"} 12
# HELP agent_cli_proxy_rate_limited_total Requests rejected by the rate limiter since start
# TYPE agent_cli_proxy_rate_limited_total counter
agent_cli_proxy_rate_limited_total 2
# HELP agent_cli_proxy_breaker_rejections_total Requests rejected by an open circuit breaker since start
# TYPE agent_cli_proxy_breaker_rejections_total counter
agent_cli_proxy_breaker_rejections_total{provider="anthropic"} 1
agent_cli_proxy_breaker_rejections_total{provider="zeta"} 2
# HELP agent_cli_proxy_upstream_retries_total Upstream retries since start
# TYPE agent_cli_proxy_upstream_retries_total counter
agent_cli_proxy_upstream_retries_total{provider="a\"b\\c\nd"} 1
# HELP agent_cli_proxy_usage_incomplete_total Rows finalized with usage_incomplete = 1 since start
# TYPE agent_cli_proxy_usage_incomplete_total counter
agent_cli_proxy_usage_incomplete_total 1
# HELP agent_cli_proxy_storage_failures_total Storage commits that failed after retries since start
# TYPE agent_cli_proxy_storage_failures_total counter
agent_cli_proxy_storage_failures_total{op="finalize"} 1
agent_cli_proxy_storage_failures_total{op="prelog"} 1
# HELP agent_cli_proxy_active_streams Exchanges currently relaying a body
# TYPE agent_cli_proxy_active_streams gauge
agent_cli_proxy_active_streams 4
# HELP agent_cli_proxy_panics_total Panics caught at task boundaries since start
# TYPE agent_cli_proxy_panics_total counter
agent_cli_proxy_panics_total 1
# HELP agent_cli_proxy_log_dropped_lines_total Log lines dropped by backpressure since start
# TYPE agent_cli_proxy_log_dropped_lines_total counter
agent_cli_proxy_log_dropped_lines_total 9
# HELP agent_cli_proxy_spool_bytes Bytes held in spool segments
# TYPE agent_cli_proxy_spool_bytes gauge
agent_cli_proxy_spool_bytes 4096
# HELP agent_cli_proxy_spool_records_total Records appended to the spool since start
# TYPE agent_cli_proxy_spool_records_total counter
agent_cli_proxy_spool_records_total{kind="begin"} 6
agent_cli_proxy_spool_records_total{kind="usage"} 2
agent_cli_proxy_spool_records_total{kind="end"} 5
agent_cli_proxy_spool_records_total{kind="fallback"} 1
# HELP agent_cli_proxy_ingest_lag_ms How long the oldest record not yet in the database has waited
# TYPE agent_cli_proxy_ingest_lag_ms gauge
agent_cli_proxy_ingest_lag_ms 12
# HELP agent_cli_proxy_ingest_batch_records Records per ingestion batch
# TYPE agent_cli_proxy_ingest_batch_records histogram
agent_cli_proxy_ingest_batch_records_bucket{le="1"} 1
agent_cli_proxy_ingest_batch_records_bucket{le="4"} 2
agent_cli_proxy_ingest_batch_records_bucket{le="16"} 2
agent_cli_proxy_ingest_batch_records_bucket{le="+Inf"} 3
agent_cli_proxy_ingest_batch_records_sum 14
agent_cli_proxy_ingest_batch_records_count 3
# HELP agent_cli_proxy_ingest_failures_total Ingestion batches the database refused since start
# TYPE agent_cli_proxy_ingest_failures_total counter
agent_cli_proxy_ingest_failures_total 3
"#;
    assert_eq!(text, expected);
}

#[test]
fn bucket_bounds_are_inclusive_and_cumulative() {
    let mut h = Histogram::default();
    for ms in [0, 25, 26, 30_000, 30_001, i64::MAX, i64::MIN] {
        h.observe(&[], ms);
    }
    let mut out = String::new();
    h.render_samples("x", &mut out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], r#"x_bucket{le="25"} 3"#); // 0, 25 and the clamped negative
    assert_eq!(lines[1], r#"x_bucket{le="50"} 4"#);
    assert_eq!(lines[9], r#"x_bucket{le="30000"} 5"#);
    assert_eq!(lines[10], r#"x_bucket{le="+Inf"} 7"#);
    assert_eq!(lines[11], format!("x_sum {}", 60_052 + i64::MAX as u64));
    assert_eq!(lines[12], "x_count 7");
    assert_eq!(h.count(&[]), 7);

    // Three more maximal observations overflow u64: the sum saturates instead of wrapping.
    for _ in 0..3 {
        h.observe(&[], i64::MAX);
    }
    let mut out = String::new();
    h.render_samples("x", &mut out);
    assert!(out.contains(&format!("x_sum {}\n", u64::MAX)));
}

#[test]
fn label_sets_sort_keys_escape_and_default_empty() {
    let l = LabelSet::new(&[("z", ""), ("a", "x\"y\\\nz")]);
    assert_eq!(l.as_str(), r#"a="x\"y\\\nz",z="unknown""#);
    assert_eq!(l.with_le("5"), r#"{le="5",a="x\"y\\\nz",z="unknown"}"#);
    assert_eq!(LabelSet::new(&[]).braced(), "");
}

#[test]
fn nanousd_renders_exact_decimals() {
    let cases = [
        (0, "0"),
        (1, "0.000000001"),
        (10_500_000, "0.0105"),
        (1_000_000_000, "1"),
        (123_456_789_012, "123.456789012"),
        (-1_500_000_000, "-1.5"),
        (i64::MIN, "-9223372036.854775808"),
    ];
    for (n, s) in cases {
        assert_eq!(nanousd_decimal(n), s);
    }
}

#[test]
fn reply_has_text_content_type() {
    let r = reply("agent_cli_proxy_up 1\n".into());
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers.get("content-type").unwrap(), CONTENT_TYPE);
    assert_eq!(&r.body[..], b"agent_cli_proxy_up 1\n");
}

proptest::proptest! {
    /// Whatever the label values, each sample stays on one line: escaping never lets a value
    /// break the line structure, and duplicate pairs merge into one sample.
    #[test]
    fn arbitrary_labels_keep_one_sample_per_line(
        pairs in proptest::collection::vec(("(?s).{0,8}", "(?s).{0,8}"), 0..8),
    ) {
        let rows: Vec<TodayRow> = pairs
            .iter()
            .map(|(p, m)| TodayRow {
                provider: p.clone(),
                model: m.clone(),
                request_count: 1,
                total_tokens: 2,
                cost_nanousd: 3,
            })
            .collect();
        let distinct: std::collections::BTreeSet<(String, String)> = pairs
            .iter()
            .map(|(p, m)| (or_unknown(p), or_unknown(m)))
            .collect();
        let text = MetricsRegistry::new().render(&rows, &Snapshot::default());
        proptest::prop_assert!(text.ends_with('\n'));
        proptest::prop_assert_eq!(text.lines().count(), EMPTY.lines().count() + 3 * distinct.len());
        // Merged duplicates keep the total: the request samples add up to one per row.
        let total: u64 = text
            .lines()
            .filter(|l| l.starts_with("agent_cli_proxy_requests_today{"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        proptest::prop_assert_eq!(total, rows.len() as u64);
    }
}
