//! The real-client tier: the real Claude Code (`claude -p`), Codex (`codex exec` and the
//! interactive TUI) and OpenCode (`opencode run`, Anthropic and OpenAI providers) CLIs run
//! through each shell against the fake upstream, and every row they leave is checked: the
//! tool, the instance from the client's own session id (`datapath.md` §6.2–§6.3), the
//! tokens the fake upstream reported and the cost at list price.
//!
//! Ignored by default: it needs the CLIs from npm and about a minute per shell. Run it with
//! `scripts/real-clients-e2e.sh`, which installs them into a temporary directory and runs
//! this file inside a loopback-only network namespace (docs/testing-clients.md). By hand:
//!
//! ```text
//! REAL_CLIENTS_BIN=<dir with claude, codex, opencode> \
//!   cargo test -p agent-cli-proxy-tests --test real_clients -- --ignored --test-threads=1
//! ```

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::ledger::LedgerEntry;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

/// A recognisable fake credential; the fake upstream accepts anything.
const KEY: &str = "sk-e2e-not-a-real-key-0000";
const ROW_WAIT: Duration = Duration::from_secs(20);

/// Cost at list price of the fake upstream's default usage (1 000 input, 500 output tokens,
/// no cache) for each model the clients ask for, in nanodollars: input and output $/MTok of
/// Anthropic's and OpenAI's price lists, the same figures as the bundled price table.
const LIST_COST: [(&str, i64); 7] = [
    ("claude-sonnet-4-5", 10_500_000), // $3 / $15
    ("claude-haiku-4-5", 3_500_000),   // $1 / $5
    // OpenCode's title model for the Anthropic provider, by its dated id.
    ("claude-haiku-4-5-20251001", 3_500_000),
    ("gpt-5", 6_250_000),       // $1.25 / $10
    ("gpt-5-codex", 6_250_000), // $1.25 / $10
    ("gpt-5-mini", 1_250_000),  // $0.25 / $2
    ("gpt-5-nano", 250_000),    // $0.05 / $0.40
];

/// One client run: the `clients.sh` function and its extra arguments, the tool its rows
/// must carry, and the header that carries its session id.
struct Client {
    label: &'static str,
    run: &'static str,
    args: &'static [&'static str],
    tool: &'static str,
    session_headers: &'static [&'static str],
    /// Extra environment for the run.
    env: &'static [(&'static str, &'static str)],
}

const CLIENTS: [Client; 5] = [
    Client {
        label: "claude -p",
        run: "run_claude",
        args: &[],
        tool: "claude-code",
        session_headers: &["x-claude-code-session-id"],
        env: &[],
    },
    Client {
        label: "codex exec",
        run: "run_codex_exec",
        args: &[],
        tool: "codex",
        session_headers: &["session-id"],
        env: &[],
    },
    Client {
        label: "codex (TUI)",
        run: "run_codex_tui",
        args: &[],
        tool: "codex",
        session_headers: &["session-id"],
        env: &[],
    },
    Client {
        label: "opencode run (anthropic)",
        run: "run_opencode",
        args: &["anthropic", "claude-sonnet-4-5"],
        tool: "opencode",
        session_headers: &["x-opencode-session", "x-session-id"],
        env: &[],
    },
    Client {
        label: "opencode run (openai)",
        run: "run_opencode",
        args: &["openai", "gpt-5"],
        tool: "opencode",
        session_headers: &["x-opencode-session", "x-session-id"],
        // The AI SDK needs the output-item events the fake upstream's generated Responses
        // stream leaves out; this fixture has them (and the same 1 000 / 500 usage).
        env: &[(
            "OPENCODE_HEADERS_JSON",
            r#"{"x-fake-fixture":"responses/full_items.sse"}"#,
        )],
    },
];

fn clients_bin() -> PathBuf {
    match std::env::var_os("REAL_CLIENTS_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => panic!(
            "REAL_CLIENTS_BIN is not set: run scripts/real-clients-e2e.sh, which installs \
             Claude Code, Codex and OpenCode from npm (needs node and npm) and sets it"
        ),
    }
}

fn clients_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/client-heads/clients.sh")
}

fn is_llm(e: &LedgerEntry) -> bool {
    ["/v1/messages", "/v1/responses", "/v1/chat/completions"].contains(&e.path())
}

fn row_count(proxy: &ProxyProcess) -> usize {
    db::rows(&proxy.db_path(), "SELECT id FROM request_logs", &[]).len()
}

/// Runs one client against the proxy; the TUI is stopped once its first row is final (the
/// driver waits for a line in `done`, which this appends).
fn run_client(client: &Client, proxy: &ProxyProcess, home: &Path) {
    let done = home.join("done");
    std::fs::write(&done, "").unwrap();
    let mut script = format!(
        "set -e; source '{}'; {} \"$BASE\" \"$CLIENT_HOME\" \"$KEY\"",
        clients_sh().display(),
        client.run
    );
    if client.run == "run_codex_tui" {
        script.push_str(" \"$DONE\" 1");
    }
    for arg in client.args {
        script.push_str(&format!(" '{arg}'"));
    }
    let rows_before = row_count(proxy);
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("CLIENTS_BIN", clients_bin())
        .env("BASE", proxy.url())
        .env("CLIENT_HOME", home)
        .env("KEY", KEY)
        .env("DONE", &done)
        .envs(client.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: cannot start bash: {e}", client.label));
    if client.run == "run_codex_tui" {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let finals = db::rows(
                &proxy.db_path(),
                "SELECT id FROM request_logs WHERE lifecycle_status != 'pending'",
                &[],
            );
            if finals.len() > rows_before {
                std::fs::write(&done, "row\n").unwrap();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} exited {:?}\nstdout:\n{}\nstderr:\n{}\nproxy logs:\n{}",
        client.label,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        proxy.logs()
    );
}

/// The rows with `id > after` once as many are final as the upstream saw LLM calls since
/// ledger position `from`.
fn rows_for(
    proxy: &ProxyProcess,
    upstream: &FakeUpstream,
    from: usize,
    after: i64,
) -> (Vec<Value>, Vec<LedgerEntry>) {
    let calls: Vec<LedgerEntry> = upstream
        .ledger()
        .entries_from(from)
        .into_iter()
        .filter(is_llm)
        .collect();
    let (rows, ok) = db::wait_rows(
        &proxy.db_path(),
        "SELECT * FROM request_logs WHERE id > ?1 ORDER BY id",
        &[&after],
        ROW_WAIT,
        |rows| rows.len() >= calls.len() && rows.iter().all(|r| r["lifecycle_status"] != "pending"),
    );
    assert!(ok, "rows {rows:?} for {} upstream calls", calls.len());
    (rows, calls)
}

fn check_rows(client: &Client, rows: &[Value], calls: &[LedgerEntry]) {
    let label = client.label;
    assert!(
        !calls.is_empty(),
        "{label}: no LLM call reached the upstream"
    );
    assert_eq!(
        rows.len(),
        calls.len(),
        "{label}: one row per upstream call: {rows:?}"
    );
    let mut sent: Vec<String> = calls
        .iter()
        .map(|c| {
            client
                .session_headers
                .iter()
                .find_map(|h| c.header(h).filter(|v| !v.trim().is_empty()))
                .unwrap_or_else(|| {
                    panic!("{label}: a call without a session header: {:?}", c.headers)
                })
                .trim()
                .to_owned()
        })
        .collect();
    let mut recorded = Vec::new();
    for row in rows {
        assert_eq!(row["tool"], client.tool, "{label}: {row}");
        assert_eq!(row["status"], 200, "{label}: {row}");
        assert_eq!(row["lifecycle_status"], "completed", "{label}: {row}");
        let session = db::meta(row)["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let prefix: String = session.chars().take(8).collect();
        assert_eq!(
            row["client_id"],
            format!("{}-{prefix}", client.tool),
            "{label}: {row}"
        );
        recorded.push(session);
        assert_eq!(row["prompt_tokens"], 1000, "{label}: {row}");
        assert_eq!(row["completion_tokens"], 500, "{label}: {row}");
        assert_eq!(row["total_tokens"], 1500, "{label}: {row}");
        // Priced by the model the upstream answered with, as the proxy prices it.
        let model = row["actual_model"]
            .as_str()
            .or(row["model"].as_str())
            .unwrap_or_default();
        let cost = LIST_COST
            .iter()
            .find(|(m, _)| *m == model)
            .unwrap_or_else(|| panic!("{label}: no list price written down for {model}: {row}"))
            .1;
        assert_eq!(row["cost_status"], "ok", "{label}: {row}");
        assert_eq!(row["cost_nanousd"], cost, "{label}: {row}");
    }
    // The rows carry exactly the session ids the client sent.
    sent.sort();
    recorded.sort();
    assert_eq!(recorded, sent, "{label}");
}

both_shells! {
    #[ignore = "real-client tier: needs Claude Code, Codex and OpenCode from npm; run scripts/real-clients-e2e.sh (docs/testing-clients.md)"]
    fn real_clients_leave_identified_exact_rows(shell: Shell) {
        let bin = clients_bin();
        for tool in ["claude", "codex", "opencode"] {
            assert!(
                bin.join(tool).exists(),
                "{} missing: run scripts/real-clients-e2e.sh (it installs the CLIs from npm)",
                bin.join(tool).display()
            );
        }
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let homes = tempfile::tempdir().unwrap();
        for (n, client) in CLIENTS.iter().enumerate() {
            let from = upstream.ledger().len();
            let after = db::rows(&proxy.db_path(), "SELECT COALESCE(MAX(id), 0) AS m FROM request_logs", &[])[0]["m"]
                .as_i64()
                .unwrap();
            let home = homes.path().join(format!("client-{n}"));
            std::fs::create_dir_all(&home).unwrap();
            run_client(client, &proxy, &home);
            let (rows, calls) = rows_for(&proxy, &upstream, from, after);
            check_rows(client, &rows, &calls);
            println!("{shell} {}: {} row(s) ok: {:?}", client.label, rows.len(),
                rows.iter().map(|r| format!("{} {} {}", r["client_id"], r["model"], r["cost_nanousd"])).collect::<Vec<_>>());
        }
    }
}
