//! The smol build has no PostgreSQL backend (it would bring tokio-postgres, and this build is
//! the one without tokio): `DATABASE_URL=postgres://…` must stop its start with a message that
//! names the build to use, never the URL, instead of recording somewhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_postgres_url_stops_the_start_and_names_the_tokio_build() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agent-cli-proxy-smol"))
        .arg("serve")
        .env_clear()
        .env("HOME", home.path())
        .env("AGENT_CLI_PROXY_DATA_DIR", home.path().join("data"))
        .env("CLI_PROXY_API_URL", "http://127.0.0.1:9")
        .env("PROXY_PORT", "1")
        .env("DATABASE_URL", "postgres://acp:pw-zz81@127.0.0.1:9/acp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "started anyway: {text}");
    assert!(text.contains("does not include"), "{text}");
    assert!(
        text.contains("agent-cli-proxy binary (the tokio build)"),
        "{text}"
    );
    assert!(!text.contains("pw-zz81"), "the password leaked: {text}");
    // Nothing was created in its place.
    assert!(!home.path().join("data/proxy.db").exists());
}
