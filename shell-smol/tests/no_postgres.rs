//! The smol build has no PostgreSQL backend (cli's `postgres` feature is the tokio build's):
//! the commands that would need it refuse before touching anything, say so, point at the
//! tokio build, and never print the URL's password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const PASSWORD: &str = "Sesame-4417-not-for-output";

/// The smol binary in a fresh HOME with only `vars` besides.
fn run(home: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-cli-proxy-smol"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn postgres_commands_refuse_in_the_smol_build() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("postgres://acp:{PASSWORD}@127.0.0.1:9/acp");
    let with_url = [("DATABASE_URL", url.as_str())];
    let db = home.path().join("proxy.db");
    let to = ["db", "copy", "--to", &url];
    // The URL comes from DATABASE_URL, or from `--to` for the last case.
    let cases: [&[&str]; 4] = [&["db", "init"], &["usage"], &["db", "copy"], &to];
    for args in cases {
        let (vars, source): (&[(&str, &str)], &str) = if args.contains(&"--to") {
            (&[], "--to")
        } else {
            (&with_url, "DATABASE_URL")
        };
        let out = run(home.path(), args, vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(
            stderr.trim(),
            format!(
                "error: {source} names a PostgreSQL database, but this build has no \
                 PostgreSQL backend; use agent-cli-proxy (the tokio build)"
            ),
            "{args:?}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    }
    assert!(!db.exists(), "nothing was created");
    let out = run(home.path(), &["doctor", "--json"], &with_url);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(PASSWORD), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["checks"]["database"]["status"], "FAIL");
    assert!(
        doc["checks"]["database"]["issues"][0]
            .as_str()
            .unwrap()
            .contains("this build has no PostgreSQL backend"),
        "{doc}"
    );
}
