//! CI-7 over the corpus: the request heads recorded from the real Claude Code, Codex (exec
//! and TUI) and OpenCode (Anthropic and OpenAI providers) by `scripts/record-client-heads.sh`
//! are identified as each fixture says (`datapath.md` §6.2–§6.3), by the core directly and
//! through both shells into the rows; and `POST /v1/messages/count_tokens` is forwarded
//! without a row (§8).
//!
//! The fixtures state the expected tool and instance from what each client is known to send
//! (`scripts/client-heads/to-fixture.mjs`), independently of the Rust rule table.

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use agent_cli_proxy_core::identify::identify;
use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::client::{Response, request_blocking};
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::fixtures_dir;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use agent_cli_proxy_tests::support::upstream::FakeUpstream;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

agent_cli_proxy_tests::child_entry!();

const ROW_WAIT: Duration = Duration::from_secs(5);

/// The fixtures the corpus must hold: one per client and mode the README describes.
const EXPECTED: [(&str, &str); 5] = [
    ("claude-code-print", "claude-code"),
    ("codex-exec", "codex"),
    ("codex-tui", "codex"),
    ("opencode-anthropic", "opencode"),
    ("opencode-openai", "opencode"),
];

/// Headers the harness client writes itself, or that describe the recorded body.
const NOT_REPLAYED: [&str; 5] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "accept-encoding",
];

struct Head {
    fixture: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    tool: String,
    instance: Option<String>,
}

fn corpus_dir() -> PathBuf {
    fixtures_dir().join("client-heads")
}

fn corpus() -> Vec<Head> {
    let mut heads = Vec::new();
    for (name, client) in EXPECTED {
        let path = corpus_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; re-record with scripts/record-client-heads.sh",
                path.display()
            )
        });
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["client"], client, "{name}");
        let requests = doc["requests"].as_array().unwrap();
        assert!(!requests.is_empty(), "{name} holds no request");
        for r in requests {
            let headers = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap().to_owned(),
                        pair[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            heads.push(Head {
                fixture: name.to_owned(),
                method: r["method"].as_str().unwrap().to_owned(),
                target: r["target"].as_str().unwrap().to_owned(),
                headers,
                tool: r["expect"]["tool"].as_str().unwrap().to_owned(),
                instance: r["expect"]["instance"].as_str().map(str::to_owned),
            });
        }
    }
    heads
}

fn header_map(head: &Head) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &head.headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn expected_client_id(head: &Head) -> String {
    match &head.instance {
        Some(instance) => format!("{}-{instance}", head.tool),
        None => head.tool.clone(),
    }
}

/// A small body of the API the recorded target belongs to.
fn body_for(target: &str) -> &'static [u8] {
    if target.starts_with("/v1/messages") {
        br#"{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    } else if target.starts_with("/v1/responses") {
        br#"{"model":"gpt-5","stream":true,"input":"hi"}"#
    } else {
        br#"{"model":"gpt-5","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    }
}

#[test]
fn every_recorded_head_is_identified_as_its_fixture_says() {
    let heads = corpus();
    for head in &heads {
        let got = identify(&header_map(head), &BTreeMap::new());
        assert_eq!(got.tool, head.tool, "{} {}", head.fixture, head.target);
        assert_eq!(
            got.instance, head.instance,
            "{} {}",
            head.fixture, head.target
        );
        assert_eq!(got.client_id, expected_client_id(head), "{}", head.fixture);
    }
    // Every client of today names its sessions: no recorded call is left without an instance.
    for head in &heads {
        assert!(
            head.instance.is_some(),
            "{} sent no session id",
            head.fixture
        );
    }
}

#[test]
fn recorded_heads_hold_no_credential() {
    for head in corpus() {
        for (name, value) in &head.headers {
            if [
                "authorization",
                "x-api-key",
                "cookie",
                "proxy-authorization",
            ]
            .contains(&name.as_str())
            {
                assert!(
                    value == "<secret>" || value.ends_with(" <secret>"),
                    "{}: {name} kept a value",
                    head.fixture
                );
            }
            assert!(
                !value.contains("sk-"),
                "{}: {name} holds a key",
                head.fixture
            );
        }
    }
}

fn send(
    proxy: &ProxyProcess,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    match request_blocking(proxy.addr(), method, target, headers, body) {
        Ok(res) => res,
        Err(err) => panic!("{method} {target}: {err}; logs:\n{}", proxy.logs()),
    }
}

both_shells! {
    /// Each recorded head, replayed with a small body of its API, leaves a row whose `tool`
    /// and `client_id` are the fixture's, and whose `meta_json.session_id` is the whole
    /// session id.
    fn recorded_heads_name_their_rows(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        for (n, head) in corpus().iter().enumerate() {
            let msg_id = format!("client-head-{n}");
            let mut headers: Vec<(&str, &str)> = head
                .headers
                .iter()
                .filter(|(name, _)| !NOT_REPLAYED.contains(&name.as_str()))
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            headers.push(("x-request-id", msg_id.as_str()));
            let res = send(&proxy, &head.method, &head.target, &headers, body_for(&head.target));
            assert_eq!(res.status, 200, "{} {}: {}", head.fixture, head.target, res.text());
            let row = db::final_row(&proxy.db_path(), &msg_id, ROW_WAIT);
            assert_eq!(row["tool"], head.tool.as_str(), "{}", head.fixture);
            assert_eq!(row["client_id"], expected_client_id(head).as_str(), "{}", head.fixture);
            let session = db::meta(&row)["session_id"].as_str().map(str::to_owned);
            let instance = session.as_deref().map(|s| s.chars().take(8).collect::<String>());
            assert_eq!(instance, head.instance, "{}: meta session_id {session:?}", head.fixture);
        }
    }

    /// `POST /v1/messages/count_tokens` (with a `model`, as Claude Code sends it) reaches the
    /// upstream and its answer the client, and leaves no row; a `/v1/messages` call on the
    /// same proxy does leave one.
    fn count_tokens_is_forwarded_without_a_row(shell: Shell) {
        let upstream = FakeUpstream::start();
        let url = upstream.url();
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", url.as_str())]);
        let claude = [
            ("user-agent", "claude-cli/2.1.337 (external, cli)"),
            ("x-claude-code-session-id", "8c378063-0813-4a58-840b-fc6030baaa56"),
            ("content-type", "application/json"),
            ("x-request-id", "count-1"),
        ];
        let body = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#;
        for target in ["/v1/messages/count_tokens?beta=true", "/v1/messages/count_tokens"] {
            let res = send(&proxy, "POST", target, &claude, body);
            assert_eq!(res.status, 200, "{target}: {}", res.text());
            assert!(res.json().is_some(), "{target}: the upstream's JSON reaches the client: {}", res.text());
        }
        let forwarded = upstream
            .ledger()
            .entries()
            .iter()
            .filter(|e| e.path() == "/v1/messages/count_tokens" && e.body_json().is_some_and(|b| b["model"] == "claude-sonnet-4-5"))
            .count();
        assert_eq!(forwarded, 2, "both calls reach the upstream with their body");

        let mut generation = claude;
        generation[3] = ("x-request-id", "generate-1");
        let res = send(&proxy, "POST", "/v1/messages?beta=true", &generation, body);
        assert_eq!(res.status, 200, "{}", res.text());
        let row = db::final_row(&proxy.db_path(), "generate-1", ROW_WAIT);
        assert_eq!(row["client_id"], "claude-code-8c378063");
        let rows = db::scalar(&proxy.db_path(), "SELECT COUNT(*) FROM request_logs", &[]);
        assert_eq!(rows, 1, "only the generation has a row");
        let counted = db::scalar(
            &proxy.db_path(),
            "SELECT COUNT(*) FROM request_logs WHERE path LIKE '%count_tokens%'",
            &[],
        );
        assert_eq!(counted, 0);
    }
}

/// The README's "Point your tools at it" examples (`client_id = …`) are client ids the
/// corpus produces, so the section describes what the recorded clients really send.
#[test]
fn readme_client_id_examples_come_from_the_corpus() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme.find("## Point your tools at it").expect("section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |n| n + 3)];
    let ids: Vec<String> = corpus().iter().map(expected_client_id).collect();
    let examples: Vec<&str> = section
        .split("client_id = ")
        .skip(1)
        .map(|rest| rest.trim_start_matches('`').split('`').next().unwrap())
        .collect();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in examples {
        assert!(
            ids.iter().any(|id| id == example),
            "README example {example} is not in the corpus: {ids:?}"
        );
    }
}
