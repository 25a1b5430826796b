//! CI-7: the tool rule table of `datapath.md` §6.2 (with ties) and the examples of §6.3.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue};

use super::*;

type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
type RuleCase<'a> = (&'a [(&'a str, &'a str)], &'a str);

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn spec_examples_of_section_6_3() {
    let mapping = BTreeMap::from([("k1".to_owned(), "alice".to_owned())]);
    let cases: &[Case<'_>] = &[
        (&[("user-agent", "opencode/1.0")], "opencode", "opencode"),
        (&[("x-agent-name", "jongi")], "openclaw", "openclaw-jongi"),
        (
            &[
                ("user-agent", "opencode/1.0"),
                ("x-opencode-session", "ses_8f3a2b91c"),
            ],
            "opencode",
            "opencode-ses_8f3a",
        ),
        (
            &[
                ("user-agent", "claude-cli/2.0.14 (external, cli)"),
                ("authorization", "Bearer k1"),
            ],
            "claude-code",
            "claude-code-alice",
        ),
        (
            &[("user-agent", "codex_cli_rs/0.101.0 (Linux; x86_64)")],
            "codex",
            "codex",
        ),
        (&[("user-agent", "curl/8.5.0")], "unknown", "unknown"),
    ];
    for (pairs, tool, id) in cases {
        let got = identify(&headers(pairs), &mapping);
        assert_eq!(
            (got.tool, got.client_id.as_str()),
            (*tool, *id),
            "{pairs:?}"
        );
    }
}

#[test]
fn tool_rule_table_in_order_with_ties() {
    let cases: &[RuleCase<'_>] = &[
        // Rule 1 beats every later rule.
        (
            &[
                ("x-agent-name", "a"),
                ("user-agent", "opencode/1"),
                ("x-initiator", "u"),
            ],
            "openclaw",
        ),
        (
            &[("x-agent-name", "   "), ("user-agent", "opencode/1")],
            "opencode",
        ),
        // Rule 2 variants, and rule 2 beats rule 3/4/5.
        (&[("x-opencode-session", "s")], "opencode"),
        (&[("x-initiator", "agent")], "opencode"),
        (&[("user-agent", "OpenCode/0.3")], "opencode"),
        (
            &[("x-initiator", "x"), ("x-openclaw-session-id", "s")],
            "opencode",
        ),
        (&[("user-agent", "claude-cli/1 opencode/2")], "opencode"),
        // Rule 3.
        (&[("x-openclaw-session-id", "s1")], "openclaw"),
        (&[("originator", " OpenClaw ")], "openclaw"),
        (&[("originator", "openclaw2")], "unknown"),
        (
            &[
                ("x-openclaw-session-id", "s"),
                ("user-agent", "HermesAgent/1"),
            ],
            "openclaw",
        ),
        // Rule 4.
        (&[("user-agent", "hermesagent/0.1")], "hermes-agent"),
        (&[("x-activity-request-id", "r")], "hermes-agent"),
        (
            &[
                ("x-activity-request-id", "r"),
                ("user-agent", "claude-cli/1"),
            ],
            "hermes-agent",
        ),
        // Rules 5–7 and their ties.
        (&[("user-agent", "Claude-CLI/2")], "claude-code"),
        (
            &[("user-agent", "claude-cli/2 codex_cli_rs/1")],
            "claude-code",
        ),
        (&[("user-agent", "codex_cli_rs/1 GeminiCLI/1")], "codex"),
        (&[("originator", "codex_cli_rs")], "codex"),
        (
            &[
                ("originator", "codex_cli_rs"),
                ("user-agent", "GeminiCLI/1"),
            ],
            "codex",
        ),
        (&[("user-agent", "GeminiCLI/0.1.0 (linux)")], "gemini-cli"),
        // Every Codex front end: the user-agent or the originator starts with `codex_`/`codex-`.
        (
            &[(
                "user-agent",
                "codex_exec/0.171.0 (Ubuntu 24.4.0; x86_64) xterm",
            )],
            "codex",
        ),
        (
            &[("user-agent", "codex-tui/0.171.0 (Linux; x86_64)")],
            "codex",
        ),
        (&[("user-agent", "Codex_VSCode/1.2")], "codex"),
        (&[("originator", "codex_exec")], "codex"),
        (&[("originator", " codex-tui ")], "codex"),
        (&[("originator", "codex_vscode")], "codex"),
        // A prefix, not a substring, and the separator is required.
        (&[("user-agent", "my-codex_exec/1")], "unknown"),
        (&[("user-agent", "codexfoo/1")], "unknown"),
        (&[("originator", "mycodex_exec")], "unknown"),
        (&[("originator", "codex")], "unknown"),
        // Substring needs the slash.
        (&[("user-agent", "claude-cli")], "unknown"),
        (&[("x-initiator", "")], "unknown"),
        (&[], "unknown"),
    ];
    for (pairs, tool) in cases {
        assert_eq!(detect_tool(&headers(pairs)).tool, *tool, "{pairs:?}");
    }
}

#[test]
fn instance_name_precedence() {
    let mapping = BTreeMap::from([("k1".to_owned(), "alice".to_owned())]);
    let id = |pairs: &[(&'static str, &str)]| identify(&headers(pairs), &mapping).client_id;
    // Mapping beats x-agent-name; x-api-key counts as the credential too.
    assert_eq!(
        id(&[("x-agent-name", "bob"), ("x-api-key", "k1")]),
        "openclaw-alice"
    );
    // The Bearer credential is the lookup key even when x-api-key maps.
    assert_eq!(
        id(&[
            ("authorization", "Bearer other"),
            ("x-api-key", "k1"),
            ("x-agent-name", "bob")
        ]),
        "openclaw-bob"
    );
    // x-agent-name beats the session header, verbatim case.
    assert_eq!(
        id(&[
            ("x-agent-name", " Bob "),
            ("x-openclaw-session-id", "abcdefghij")
        ]),
        "openclaw-Bob"
    );
    assert_eq!(
        id(&[("x-openclaw-session-id", "abcdefghij")]),
        "openclaw-abcdefgh"
    );
    assert_eq!(
        id(&[("x-activity-request-id", "12345")]),
        "hermes-agent-12345"
    );
    // Tools without a session header get no instance from other tools' headers.
    assert_eq!(
        id(&[("user-agent", "claude-cli/1"), ("x-opencode-session", "zz")]),
        "opencode-zz"
    );
    assert_eq!(
        id(&[
            ("user-agent", "claude-cli/1"),
            ("x-openclaw-session-id", "zz")
        ]),
        "openclaw-zz"
    );
    assert_eq!(
        id(&[("user-agent", "GeminiCLI/1"), ("x-request-id", "zz")]),
        "gemini-cli"
    );
}

#[test]
fn each_tool_names_its_instances_from_its_own_session_header() {
    let none = BTreeMap::new();
    let id = |pairs: &[(&'static str, &str)]| identify(&headers(pairs), &none).client_id;
    assert_eq!(
        id(&[
            ("user-agent", "claude-cli/2.1.337 (external, sdk-cli)"),
            (
                "x-claude-code-session-id",
                "3f1c9a2e-5b7d-4c1e-9f00-aa11bb22cc33"
            ),
        ]),
        "claude-code-3f1c9a2e"
    );
    assert_eq!(
        id(&[
            ("user-agent", "codex_exec/0.171.0 (Linux; x86_64)"),
            ("originator", "codex_exec"),
            ("session-id", "019a7e3c-1111-7222-8333-444455556666"),
            ("thread-id", "ffffffff-0000"),
        ]),
        "codex-019a7e3c"
    );
    // OpenCode with the Anthropic or OpenAI provider: `x-session-id` only.
    assert_eq!(
        id(&[
            ("user-agent", "opencode/1.18.33"),
            ("x-session-id", "ses_5a1b2c3d4e5f"),
        ]),
        "opencode-ses_5a1b"
    );
    // Its own gateway's header wins when both are sent.
    assert_eq!(
        id(&[
            ("user-agent", "opencode/1.18.33"),
            ("x-session-id", "ses_other"),
            ("x-opencode-session", "ses_first"),
        ]),
        "opencode-ses_firs"
    );
    // A blank first header falls through to the next one.
    assert_eq!(
        id(&[
            ("user-agent", "opencode/1.18.33"),
            ("x-opencode-session", "  "),
            ("x-session-id", "ses_next0"),
        ]),
        "opencode-ses_next"
    );
    // Session headers belong to their tool: another tool's header names no instance.
    assert_eq!(
        id(&[("user-agent", "claude-cli/2"), ("session-id", "abc")]),
        "claude-code"
    );
    assert_eq!(
        id(&[("originator", "codex_exec"), ("x-session-id", "abc")]),
        "codex"
    );
    assert_eq!(
        id(&[
            ("user-agent", "curl/8"),
            ("x-claude-code-session-id", "abc")
        ]),
        "unknown"
    );
    // The whole session id, not its prefix, is what `meta_json.session_id` keeps.
    let h = headers(&[("originator", "codex-tui"), ("session-id", " 0123456789 ")]);
    assert_eq!(
        session_id(&h, detect_tool(&h)).as_deref(),
        Some("0123456789")
    );
}

#[test]
fn session_prefix_counts_unicode_scalars() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-opencode-session",
        HeaderValue::from_bytes("séßiön_ünïcode".as_bytes()).unwrap(),
    );
    assert_eq!(
        identify(&h, &BTreeMap::new()).client_id,
        "opencode-séßiön_ü"
    );
}

#[test]
fn credentials_never_reach_client_id() {
    let secret = "sk-canary-0123456789";
    for pairs in [
        &[
            ("authorization", "Bearer sk-canary-0123456789"),
            ("user-agent", "claude-cli/1"),
        ][..],
        &[
            ("x-api-key", "sk-canary-0123456789"),
            ("user-agent", "opencode/1"),
        ][..],
        &[
            ("x-api-key", "sk-canary-0123456789"),
            ("originator", "codex_cli_rs"),
        ][..],
    ] {
        let got = identify(&headers(pairs), &BTreeMap::new());
        assert!(!got.client_id.contains("sk-canary"), "{got:?}");
        assert!(!got.client_id.contains(&secret[..8]));
    }
}
