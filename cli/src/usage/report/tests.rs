use super::*;

fn row(started_at: &str, tool: &str, provider: &str, meta: Option<&str>) -> UsageRow {
    UsageRow {
        started_at: started_at.to_owned(),
        tool: tool.to_owned(),
        client_id: format!("{tool}-client"),
        model: "m".to_owned(),
        provider: provider.to_owned(),
        meta_json: meta.map(str::to_owned),
        prompt_tokens: 1_000,
        completion_tokens: 500,
        cache_creation_tokens: 200,
        cache_read_tokens: 300,
        total_tokens: 2_000,
        cost_nanousd: 10_500_000,
        cost_pending: false,
        no_usage: false,
    }
}

fn never(_: &str) -> bool {
    false
}

#[test]
fn compact_token_counts() {
    let cases = [
        (0, "0"),
        (950, "950"),
        (999, "999"),
        (1_000, "1.00k"),
        (12_345, "12.3k"),
        (123_456, "123k"),
        (999_499, "999k"),
        (999_999, "1.00M"),
        (4_560_000, "4.56M"),
        (1_200_000_000, "1.20B"),
        (1_234_567_890_123, "1.23T"),
        (u64::MAX, "18.4E"),
    ];
    for (n, want) in cases {
        assert_eq!(compact(n), want, "{n}");
    }
}

#[test]
fn usd_has_four_decimals_rounded_half_up() {
    assert_eq!(format_usd(10_500_000), "$0.0105");
    assert_eq!(format_usd(0), "$0.0000");
    assert_eq!(format_usd(49_999), "$0.0000");
    assert_eq!(format_usd(50_000), "$0.0001");
    assert_eq!(format_usd(12_345_678_900_000), "$12345.6789");
}

#[test]
fn input_follows_the_convention() {
    let rows = [
        row("2026-11-26T10:00:00.000Z", "a", "anthropic", None),
        row(
            "2026-11-26T11:00:00.000Z",
            "b",
            "openai",
            Some(r#"{"usage_convention":"openai"}"#),
        ),
        row(
            "2026-11-26T12:00:00.000Z",
            "c",
            "x",
            Some(r#"{"usage_convention":"anthropic"}"#),
        ),
    ];
    let by_provider = |p: &str| p == "anthropic";
    let lines = aggregate(
        &rows,
        Report::Daily,
        GroupBy::Tool,
        &TimeZone::UTC,
        &by_provider,
    );
    let input: BTreeMap<&str, u64> = lines
        .iter()
        .map(|l| (l.key.as_str(), l.sums.input))
        .collect();
    assert_eq!(input["a"], 1_500);
    assert_eq!(input["b"], 1_200);
    assert_eq!(input["c"], 1_500);
}

#[test]
fn periods_weeks_months_and_time_zones() {
    let d = jiff::civil::date(2026, 11, 26);
    assert_eq!(period_label(d, Report::Daily), "2026-11-26");
    assert_eq!(period_label(d, Report::Weekly), "2026-W48");
    assert_eq!(period_label(d, Report::Monthly), "2026-11");
    // ISO week of 2027-01-01 (a Friday) belongs to 2026's last week.
    assert_eq!(
        period_label(jiff::civil::date(2027, 1, 1), Report::Weekly),
        "2026-W53"
    );
    let tz = TimeZone::fixed(jiff::tz::offset(-5));
    assert_eq!(
        local_date("2026-11-26T03:00:00.000Z", &tz),
        Some(jiff::civil::date(2026, 11, 25))
    );
    assert_eq!(local_date("not a time", &tz), None);
}

#[test]
fn sessions_use_session_id_else_client() {
    let rows = [
        row(
            "2026-11-25T10:00:00.000Z",
            "codex",
            "openai",
            Some(r#"{"session_id":"s1"}"#),
        ),
        row("2026-11-25T11:00:00.000Z", "opencode", "openai", None),
        row(
            "2026-11-26T09:00:00.000Z",
            "codex",
            "openai",
            Some(r#"{"session_id":"s1"}"#),
        ),
    ];
    let lines = aggregate(
        &rows,
        Report::Session,
        GroupBy::Tool,
        &TimeZone::UTC,
        &never,
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].key, "opencode-client");
    assert_eq!(lines[1].key, "s1");
    assert_eq!(lines[1].sums.requests, 2);
    assert_eq!(lines[1].period, "2026-11-26");
    let s = lines[1].session.as_ref().unwrap();
    assert_eq!(s.first_seen, "2026-11-25T10:00:00.000Z");
    assert_eq!(s.last_seen, "2026-11-26T09:00:00.000Z");
    assert_eq!(s.tool, "codex");
}

#[test]
fn table_fits_80_columns_with_period_totals_and_footnote() {
    let mut pending = row(
        "2026-11-26T10:00:00.000Z",
        "a-very-long-tool-name",
        "p",
        None,
    );
    pending.cost_pending = true;
    pending.cost_nanousd = 0;
    pending.total_tokens = u64::MAX / 2;
    let rows = [
        pending,
        row("2026-11-26T11:00:00.000Z", "b", "p", None),
        row("2026-11-27T11:00:00.000Z", "b", "p", None),
    ];
    let lines = aggregate(&rows, Report::Daily, GroupBy::Tool, &TimeZone::UTC, &never);
    let table = to_table(Report::Daily, GroupBy::Tool, &lines);
    for line in table.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    assert_eq!(table.matches("(total)").count(), 1, "{table}");
    assert!(!table.contains('~'), "{table}");
    // The long key gets a line of its own in the key column; its numbers follow on the next.
    let at = table
        .lines()
        .position(|l| l == format!("{:11}a-very-long-tool-name", ""))
        .unwrap_or_else(|| panic!("{table}"));
    let numbers = table.lines().nth(at + 1).unwrap();
    assert!(numbers.starts_with(&" ".repeat(28)), "{numbers:?}");
    assert!(numbers.ends_with("$0.0000*"), "{numbers:?}");
    assert!(table.contains("$0.0000*"), "{table}");
    assert!(table.contains("* 1 row(s) with cost pending"), "{table}");
    let total_line = table.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    assert!(total_line.ends_with("$0.0210*"), "{total_line}");
    assert!(!table.contains("without usage"), "{table}");
}

#[test]
fn calls_without_usage_are_not_cost_pending() {
    let mut failed = row("2026-11-26T10:00:00.000Z", "codex", "openai", None);
    failed.prompt_tokens = 0;
    failed.completion_tokens = 0;
    failed.cache_creation_tokens = 0;
    failed.cache_read_tokens = 0;
    failed.total_tokens = 0;
    failed.cost_nanousd = 0;
    failed.no_usage = true;
    let rows = [
        failed,
        row("2026-11-26T11:00:00.000Z", "codex", "openai", None),
    ];
    let lines = aggregate(&rows, Report::Daily, GroupBy::Tool, &TimeZone::UTC, &never);
    let table = to_table(Report::Daily, GroupBy::Tool, &lines);
    assert!(!table.contains("cost pending"), "{table}");
    assert!(!table.contains('*'), "{table}");
    assert!(
        table.contains("1 call(s) without usage (failed before the upstream answered)"),
        "{table}"
    );
    let total = totals(&lines);
    assert_eq!(
        (total.requests, total.pending_cost_rows, total.no_usage_rows),
        (2, 0, 1)
    );
}

#[test]
fn json_totals_are_exact_sums() {
    let rows = [
        row("2026-11-26T10:00:00.000Z", "a", "p", None),
        row("2026-11-27T10:00:00.000Z", "a", "p", None),
    ];
    let lines = aggregate(
        &rows,
        Report::Monthly,
        GroupBy::Tool,
        &TimeZone::UTC,
        &never,
    );
    let doc = to_json(Report::Monthly, GroupBy::Tool, "UTC", None, None, &lines);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 1);
    assert_eq!(doc["rows"][0]["period"], "2026-11");
    assert_eq!(doc["totals"]["cost_nanousd"], 21_000_000);
    assert_eq!(doc["totals"]["total_tokens"], 4_000);
    assert_eq!(doc["since"], Value::Null);
}

#[test]
fn every_tool_name_of_the_rule_table_prints_whole_on_one_line() {
    use agent_cli_proxy_core::identify::{TOOL_RULES, UNKNOWN};
    let mut tools: Vec<&str> = TOOL_RULES
        .iter()
        .chain([&UNKNOWN])
        .map(|r| r.tool)
        .collect();
    tools.sort_unstable();
    tools.dedup();
    let rows: Vec<UsageRow> = tools
        .iter()
        .map(|t| row("2026-11-26T10:00:00.000Z", t, "p", None))
        .collect();
    let lines = aggregate(&rows, Report::Daily, GroupBy::Tool, &TimeZone::UTC, &never);
    let table = to_table(Report::Daily, GroupBy::Tool, &lines);
    for tool in tools {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == tool))
            .unwrap_or_else(|| panic!("{tool} missing:\n{table}"));
        assert!(
            line.ends_with("$0.0105"),
            "{tool} not on its numbers' line: {line:?}"
        );
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    assert!(table.contains(" claude-code "), "{table}");
}
