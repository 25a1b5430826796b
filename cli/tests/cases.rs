//! The cases, one per behaviour of `control.md` §11.

use std::path::Path;

use serde_json::Value;

use crate::support::{Row, Sandbox, insert_rows, s, which};

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn one_line(text: &str) -> &str {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line: {text:?}");
    lines[0]
}

/// A sandbox whose env file points DB_PATH and the pricing cache into the data dir.
pub(crate) fn configured() -> Sandbox {
    let sb = Sandbox::new();
    let data = sb.data_dir();
    sb.write_env_file(&format!(
        "CLI_PROXY_API_URL=http://127.0.0.1:9\nDB_PATH={}\nPRICING_CACHE_PATH={}\n",
        s(&data.join("proxy.db")),
        s(&data.join("pricing-cache.json")),
    ));
    sb
}

pub fn version_help_and_no_command() {
    let sb = Sandbox::new();
    let r = sb.run(&["--version"]);
    r.expect_code(0);
    // Version, the commit this tree was built from, and the runtime (the test shell's).
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(!head.is_empty(), "git is needed to check the commit");
    assert_eq!(
        r.stdout.trim(),
        format!(
            "agent-cli-proxy {} (commit {head}, test build)",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(sb.run(&["-V"]).stdout, r.stdout);
    let r = sb.run(&[]);
    r.expect_code(0);
    assert!(r.stdout.contains("Usage: agent-cli-proxy"), "{r:?}");
    for sub in [
        "serve",
        "init",
        "doctor",
        "usage",
        "backfill-costs",
        "paths",
    ] {
        assert!(r.stdout.contains(sub), "help lists {sub}");
        let h = sb.run(&[sub, "--help"]);
        h.expect_code(0);
        assert!(h.stdout.contains("Usage:"), "{sub} --help: {h:?}");
    }
    for (group, sub) in [
        ("db", "backup"),
        ("service", "install"),
        ("providers", "init"),
    ] {
        sb.run(&[group, sub, "-h"]).expect_code(0);
    }
}

pub fn usage_errors_exit_2_with_one_line() {
    let sb = Sandbox::new();
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "frobnicate"),
        (&["init", "--bogus"], "--bogus"),
        (&["doctor", "--json=maybe"], "--json"),
        (&["usage", "--since", "2026-13-01"], "2026-13-01"),
        (&["usage", "--until", "26-11-2026"], "26-11-2026"),
        (&["usage", "--by", "colour"], "colour"),
        (&["init", "--port", "70000"], "70000"),
        (&["backfill-costs", "--limit", "ten"], "ten"),
    ];
    for (args, word) in cases {
        let r = sb.run(args);
        r.expect_code(2);
        let line = one_line(&r.stderr);
        assert!(line.contains(word), "{args:?}: {line}");
        assert!(line.contains("--help"), "{args:?}: {line}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
    for (args, usage) in [
        (
            &["service"][..],
            "Usage: agent-cli-proxy service <install|start|stop|restart|status|logs [--follow]>",
        ),
        (
            &["service", "explode"][..],
            "Usage: agent-cli-proxy service <install|start|stop|restart|status|logs [--follow]>",
        ),
        (
            &["providers"][..],
            "Usage: agent-cli-proxy providers <show|path|init>",
        ),
        (
            &["providers", "list"][..],
            "Usage: agent-cli-proxy providers <show|path|init>",
        ),
    ] {
        let r = sb.run(args);
        r.expect_code(2);
        assert!(r.stderr.lines().any(|l| l == usage), "{args:?}: {r:?}");
    }
    let r = sb.run(&["db", "backup"]);
    r.expect_code(2);
    assert!(
        one_line(&r.stderr).contains("--output is required"),
        "{r:?}"
    );
    let r = sb.run(&["usage", "--since", "2026-11-02", "--until", "2026-11-01"]);
    r.expect_code(2);
}

pub fn paths_reports_xdg_defaults() {
    let mut sb = Sandbox::new();
    let home = sb.home();
    let v = sb.run(&["paths"]).expect_code(0).json();
    assert_eq!(v["configDir"], s(&home.join("config/agent-cli-proxy")));
    assert_eq!(v["envPath"], s(&home.join("config/agent-cli-proxy/.env")));
    assert_eq!(v["dataDir"], s(&home.join("data/agent-cli-proxy")));
    assert_eq!(v["dbPath"], s(&home.join("data/agent-cli-proxy/proxy.db")));
    assert_eq!(
        v["pricingCachePath"],
        s(&home.join("data/agent-cli-proxy/pricing-cache.json"))
    );
    assert_eq!(
        v["providersPath"],
        s(&home.join("config/agent-cli-proxy/providers.json"))
    );
    assert_eq!(v["databaseKind"], "sqlite");
    assert_eq!(
        v["spoolDir"],
        s(&home.join("data/agent-cli-proxy/proxy.db.spool"))
    );
    sb.unset("XDG_CONFIG_HOME").unset("XDG_DATA_HOME");
    let v = sb.run(&["paths"]).expect_code(0).json();
    assert_eq!(v["envPath"], s(&home.join(".config/agent-cli-proxy/.env")));
    assert_eq!(
        v["dbPath"],
        s(&home.join(".local/share/agent-cli-proxy/proxy.db"))
    );
    sb.set("AGENT_CLI_PROXY_DATA_DIR", "/srv/acp");
    let v = sb.run(&["paths"]).expect_code(0).json();
    assert_eq!(v["dbPath"], "/srv/acp/proxy.db");
}

pub fn serve_loads_env_file_with_process_precedence() {
    let mut sb = Sandbox::new();
    sb.write_env_file(
        "CLI_PROXY_API_URL=http://127.0.0.1:9\nT_A=file\nT_B=\"quoted value\"\nPROXY_PORT=4000\n",
    );
    sb.set("T_A", "process");
    let v = sb.run(&["serve"]).expect_code(0).json();
    assert_eq!(v["T_A"], "process");
    assert_eq!(v["T_B"], "quoted value");
    assert_eq!(v["PROXY_PORT"], "4000");
    let other = sb.path("other.env");
    std::fs::write(&other, "CLI_PROXY_API_URL=http://127.0.0.1:9\nT_C=other\n").unwrap();
    let v = sb
        .run(&["serve", "--env", &s(&other)])
        .expect_code(0)
        .json();
    assert_eq!(v["T_C"], "other");
    assert!(
        v.get("T_B").is_none(),
        "the default file is not read with --env"
    );
    let missing = sb.path("missing.env");
    let r = sb.run(&["serve", "--env", &s(&missing)]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        format!("error: env file not found: {}", s(&missing))
    );
    // Validation is the daemon's startup step 1: the map reaches the shell as loaded.
    sb.write_env_file("CLI_PROXY_API_URL=http://127.0.0.1:9\nPROXY_PORT=abc\n");
    let v = sb.run(&["serve"]).expect_code(0).json();
    assert_eq!(v["PROXY_PORT"], "abc");
}

fn expected_env(sb: &Sandbox, data: &Path) -> String {
    let _ = sb;
    format!(
        "PROXY_HOST=127.0.0.1\nPROXY_PORT=3101\nADMIN_API_KEY=adm-secret\n\
         CLI_PROXY_API_URL=http://127.0.0.1:8317\nCLI_PROXY_API_KEY=\"key with space\"\n\
         DB_PATH={db}\nPRICING_CACHE_PATH={pc}\nPRICING_CACHE_TTL_MS=3600000\n\
         CLIENT_NAME_MAPPING=\nCLIPROXY_MGMT_KEY=mgmt-secret\n\
         CLIPROXY_CORRELATION_INTERVAL_MS=15000\nCLIPROXY_CORRELATION_LOOKBACK_MS=300000\n\
         CLIPROXY_AUTH_DIR=\nQUOTA_REFRESH_TIMEOUT_MS=15000\n",
        db = s(&data.join("proxy.db")),
        pc = s(&data.join("pricing-cache.json")),
    )
}

fn init_args(data: &str) -> Vec<String> {
    [
        "init",
        "--non-interactive",
        "--port",
        "3101",
        "--cliproxy-api-url",
        "http://127.0.0.1:8317",
        "--admin-token-env",
        "MY_ADMIN",
        "--cliproxy-mgmt-key-env",
        "MY_MGMT",
        "--cliproxy-api-key-env",
        "MY_KEY",
        "--data-dir",
        data,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn secrets(sb: &mut Sandbox) {
    sb.set("MY_ADMIN", "adm-secret")
        .set("MY_MGMT", "mgmt-secret")
        .set("MY_KEY", "key with space");
}

pub fn init_non_interactive_writes_private_env_and_db() {
    let mut sb = Sandbox::new();
    secrets(&mut sb);
    // A relative data dir is written as an absolute path (the child runs in the sandbox).
    let args = init_args("rel-data");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = sb.run(&argv);
    r.expect_code(0);
    let env_path = sb.config_dir().join(".env");
    let data = sb.path("rel-data");
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        expected_env(&sb, &data)
    );
    assert_eq!(mode(&env_path), 0o600);
    assert!(data.join("proxy.db").is_file(), "database initialized");
    assert!(
        r.stdout.contains(&format!(
            "\nCreated:\n  env: {}\n  db:  {}\n  data: {}\n",
            s(&env_path),
            s(&data.join("proxy.db")),
            s(&data)
        )),
        "{r:?}"
    );
    let log: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(log["event"], "cli.init.non_interactive");
    for secret in ["adm-secret", "mgmt-secret", "key with space"] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{secret} leaked"
        );
    }
    // The database it created opens with the full schema.
    let conn = rusqlite::Connection::open(data.join("proxy.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 2);
    // AGENT_CLI_PROXY_ENV names the file when --env is absent.
    let other = sb.path("elsewhere/acp.env");
    sb.set("AGENT_CLI_PROXY_ENV", &s(&other));
    sb.run(&argv).expect_code(0);
    assert_eq!(mode(&other), 0o600);
}

pub fn init_refuses_overwrite_then_force_and_merge() {
    let mut sb = Sandbox::new();
    secrets(&mut sb);
    let data = s(&sb.path("data"));
    let args = init_args(&data);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.run(&argv).expect_code(0);
    let env_path = sb.config_dir().join(".env");
    let original = std::fs::read_to_string(&env_path).unwrap();

    let mut again = argv.clone();
    again[3] = "3999";
    let r = sb.run(&again);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        format!(
            "error: {} already exists; use --force to overwrite, or --merge to preserve existing values",
            s(&env_path)
        )
    );
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        original,
        "untouched"
    );

    // --merge keeps existing values and appends keys only the old file has.
    let edited =
        original.replace("PROXY_HOST=127.0.0.1", "PROXY_HOST=localhost") + "EXTRA_KEY=kept\n";
    std::fs::write(&env_path, &edited).unwrap();
    let mut merge = again.clone();
    merge.push("--merge");
    sb.run(&merge).expect_code(0);
    let merged = std::fs::read_to_string(&env_path).unwrap();
    assert_eq!(merged, edited, "every old value kept, order preserved");
    assert_eq!(mode(&env_path), 0o600);

    // --force replaces the file.
    let mut force = again.clone();
    force.push("--force");
    sb.run(&force).expect_code(0);
    let forced = std::fs::read_to_string(&env_path).unwrap();
    assert!(forced.contains("PROXY_PORT=3999\n"), "{forced}");
    assert!(!forced.contains("EXTRA_KEY"), "{forced}");
    assert!(forced.contains("PROXY_HOST=127.0.0.1\n"));
}

pub fn init_non_interactive_errors_name_the_variable() {
    let mut sb = Sandbox::new();
    let r = sb.run(&["init", "--non-interactive"]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: CLI_PROXY_API_URL is required for init --non-interactive unless PROXY_LOCAL_OK=1"
    );
    assert!(!sb.config_dir().join(".env").exists());
    let r = sb.run(&[
        "init",
        "--non-interactive",
        "--cliproxy-api-url",
        "http://x:1",
        "--admin-token-env",
        "NOPE",
    ]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: --admin-token-env references missing environment variable NOPE"
    );
    sb.set("PROXY_LOCAL_OK", "1").set("PROXY_PORT", "0");
    let r = sb.run(&["init", "--non-interactive"]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: PROXY_PORT must be an integer from 1 to 65535"
    );
    sb.set("PROXY_PORT", "3102")
        .set("CLI_PROXY_API_KEY", "from-env");
    sb.run(&["init", "--non-interactive"]).expect_code(0);
    let text = std::fs::read_to_string(sb.config_dir().join(".env")).unwrap();
    assert!(
        text.contains("CLI_PROXY_API_URL=http://localhost:8317\n"),
        "{text}"
    );
    assert!(text.contains("PROXY_PORT=3102\n"), "{text}");
    assert!(text.contains("CLI_PROXY_API_KEY=from-env\n"), "{text}");
    assert!(text.contains(&format!("DB_PATH={}\n", s(&sb.data_dir().join("proxy.db")))));
}

pub fn init_interactive_through_a_pty() {
    let Some(script) = which("script") else {
        println!("  skipped: `script` (util-linux) is not installed, no pseudo terminal");
        return;
    };
    let sb = Sandbox::new();
    let exe = std::env::current_exe().unwrap();
    let answers = [
        "",                      // Config .env path (default)
        "",                      // Data directory (default)
        "",                      // Proxy host
        "3200",                  // Proxy port
        "",                      // router or direct (router)
        "http://127.0.0.1:9999", // CLIProxyAPI URL
        "pty-secret-key",        // CLIProxyAPI proxy key (secret)
        "y",                     // Generate ADMIN_API_KEY
        "y",                     // Protect the dashboard with a password
        "pty-dash-pass",         // Dashboard password (secret)
        "pty-dash-pass",         // Dashboard password again (secret)
        "y",                     // correlation
        "mgmt-pty-key",          // management key (secret)
        "n",                     // quota checks
        "n",                     // install service
    ];
    let mut child = std::process::Command::new(&script)
        .args(["-qec", &format!("{} init", s(&exe)), "/dev/null"])
        .env_clear()
        .envs(&sb.vars)
        .env("ACP_CLI_CHILD", "1")
        .current_dir(sb.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for a in answers {
            // One answer at a time, after the prompt had time to appear and mute echo.
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for prompt in [
        "Config .env path (",
        "Data directory (",
        "Proxy host (127.0.0.1): ",
        "Proxy port (3100): ",
        "(router/direct) (router): ",
        "CLIProxyAPI URL (http://localhost:8317): ",
        "CLIProxyAPI proxy key (configured): ",
        "Generate ADMIN_API_KEY for admin API? [y/N]: ",
        "Protect the dashboard with a password? [y/N]: ",
        "Dashboard password: ",
        "Dashboard password again: ",
        "Enable CLIProxyAPI account correlation? [y/N]: ",
        "CLIProxyAPI management key: ",
        "Enable subscription quota checks from local CLIProxyAPI auth files? [y/N]: ",
        "Install user daemon now? [Y/n]: ",
    ] {
        assert!(
            stdout.contains(prompt),
            "missing prompt {prompt:?} in {stdout}"
        );
    }
    let env_path = sb.config_dir().join(".env");
    let text = std::fs::read_to_string(&env_path).unwrap();
    assert_eq!(mode(&env_path), 0o600);
    assert!(text.contains("PROXY_PORT=3200\n"), "{text}");
    assert!(
        text.contains("CLI_PROXY_API_URL=http://127.0.0.1:9999\n"),
        "{text}"
    );
    assert!(
        text.contains("CLI_PROXY_API_KEY=pty-secret-key\n"),
        "{text}"
    );
    assert!(text.contains("CLIPROXY_MGMT_KEY=mgmt-pty-key\n"), "{text}");
    let admin = text
        .lines()
        .find_map(|l| l.strip_prefix("ADMIN_API_KEY="))
        .unwrap();
    assert_eq!(admin.len(), 64);
    assert!(admin.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(sb.data_dir().join("proxy.db").is_file());
    assert!(
        !stdout.contains("pty-secret-key"),
        "secret echoed: {stdout}"
    );
    let phc = text
        .lines()
        .find_map(|l| l.strip_prefix("DASHBOARD_PASSWORD_HASH="))
        .unwrap();
    let phc: String = serde_json::from_str(phc).unwrap();
    assert!(
        agent_cli_proxy_core::dashboard::session::verify_password(&phc, "pty-dash-pass"),
        "{phc}"
    );
    assert!(
        !stdout.contains("pty-dash-pass"),
        "password echoed: {stdout}"
    );
    assert!(!text.contains("pty-dash-pass"), "password stored: {text}");
}

pub fn init_interactive_without_tty_refuses_secret_prompt() {
    let sb = Sandbox::new();
    let r = sb.run_with_input(&["init"], "\n\n\n\n\n\n");
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: CLIProxyAPI proxy key requires a TTY; use init --non-interactive with environment-backed secret flags"
    );
    assert!(!sb.config_dir().join(".env").exists(), "nothing written");
}

pub fn db_init_and_backup_holds_the_rows() {
    let sb = configured();
    let db = sb.data_dir().join("proxy.db");
    let r = sb.run(&["db", "init"]);
    r.expect_code(0);
    assert_eq!(r.stdout.trim(), format!("Initialized DB at {}", s(&db)));
    insert_rows(
        &db,
        &[
            Row::new("2026-11-20T10:00:00.000Z", "codex"),
            Row::new("2026-11-21T10:00:00.000Z", "opencode"),
        ],
    );
    // Idempotent.
    sb.run(&["db", "init"]).expect_code(0);
    let out = sb.path("backups/nested/copy.db");
    let r = sb.run(&["db", "backup", "--output", &s(&out)]);
    r.expect_code(0);
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(
        r.stdout
            .contains(&format!("Backup written: {} ({size} bytes)", s(&out))),
        "{r:?}"
    );
    let conn = rusqlite::Connection::open(&out).unwrap();
    let tools: Vec<String> = conn
        .prepare("SELECT tool FROM request_logs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tools, ["codex", "opencode"]);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

pub fn db_backup_refusals() {
    let mut sb = configured();
    let db = sb.data_dir().join("proxy.db");
    let out = sb.path("b.db");
    let r = sb.run(&["db", "backup", "--output", &s(&out)]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        format!("error: database does not exist: {}", s(&db))
    );
    sb.run(&["db", "init"]).expect_code(0);
    let r = sb.run(&["db", "backup", "--output", &s(&db)]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: backup output must differ from DB_PATH"
    );
    std::fs::write(&out, "x").unwrap();
    let r = sb.run(&["db", "backup", "--output", &s(&out)]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        format!("error: backup output already exists: {}", s(&out))
    );
    sb.set("DB_PATH", ":memory:");
    let r = sb.run(&["db", "backup", "--output", &s(&sb.path("m.db"))]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: cannot back up in-memory database"
    );
}

pub fn doctor_json_pass_and_fail() {
    let mut sb = configured();
    std::fs::create_dir_all(sb.data_dir()).unwrap();
    std::fs::write(
        sb.data_dir().join("pricing-cache.json"),
        r#"{"fetchedAt":0,"data":[]}"#,
    )
    .unwrap();
    let r = sb.run(&["doctor", "--json"]);
    let v = r.json();
    r.expect_code(0);
    assert_eq!(v["status"], "PASS", "{v:#}");
    let names: Vec<&String> = v["checks"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "config",
            "database",
            "providers",
            "pricingCache",
            "upstream",
            "supervisor"
        ]
    );
    assert_eq!(
        v["checks"]["config"]["details"]["envPath"],
        s(&sb.config_dir().join(".env"))
    );
    let db = &v["checks"]["database"]["details"];
    assert!(
        db["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "request_logs")
    );
    assert_eq!(db["tablesCount"], db["tables"].as_array().unwrap().len());
    assert!(!db["appliedMigrations"].as_array().unwrap().is_empty());
    assert_eq!(v["checks"]["providers"]["details"]["count"], 7);
    assert_eq!(v["checks"]["pricingCache"]["details"]["exists"], true);
    assert_eq!(v["checks"]["upstream"]["details"]["statusCode"], 200);
    assert!(
        r.stderr.contains("probe HEAD http://127.0.0.1:9/health"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("\n  \"status\": \"PASS\""),
        "2-space indent"
    );

    // A broken configuration fails, names the variable, and never shows a secret.
    sb.set("PROXY_PORT", "abc")
        .set("ADMIN_API_KEY", "super-secret-admin");
    let r = sb.run(&["doctor", "--json"]);
    r.expect_code(1);
    let v = r.json();
    assert_eq!(v["status"], "FAIL");
    assert_eq!(v["checks"]["config"]["status"], "FAIL");
    let issues = v["checks"]["config"]["issues"].as_array().unwrap();
    assert!(
        issues
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("PROXY_PORT ")),
        "{issues:?}"
    );
    assert_eq!(
        v["checks"]["providers"]["issues"][0],
        "skipped because config is invalid"
    );
    assert!(!r.stdout.contains("super-secret-admin"));
}

pub fn doctor_text_and_upstream_5xx() {
    let mut sb = configured();
    sb.set("ACP_TEST_PROBE", "503");
    let r = sb.run(&["doctor"]);
    r.expect_code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "doctor: FAIL");
    assert!(lines.contains(&"PASS config"), "{lines:?}");
    assert!(lines.contains(&"FAIL upstream"), "{lines:?}");
    assert!(
        lines.contains(&"  - upstream returned HTTP 503"),
        "{lines:?}"
    );
    // No cache file: the daemon would price from the snapshot compiled in, so it passes
    // and says so.
    assert!(
        lines.contains(&"PASS pricingCache"),
        "missing cache falls back to the snapshot: {lines:?}"
    );
    assert!(r.stdout.contains("\"kind\":\"snapshot\""), "{}", r.stdout);
    assert!(lines.contains(&"  {\"statusCode\":503}"), "{lines:?}");
    sb.set("ACP_TEST_PROBE", "connection refused");
    let v = sb.run(&["doctor", "--json"]).expect_code(1).json();
    let issue = v["checks"]["upstream"]["issues"][0].as_str().unwrap();
    assert!(issue.contains("connection refused"), "{issue}");
}

pub fn service_install_writes_a_valid_unit() {
    let sb = configured();
    let exe = std::env::current_exe().unwrap();
    let unit = sb.path("units/agent-cli-proxy.service");
    let r = sb.run(&[
        "service",
        "install",
        "--service-path",
        &s(&unit),
        "--bin",
        &s(&exe),
    ]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        format!(
            "Installed systemd user service: {}\nRun: systemctl --user daemon-reload && systemctl --user enable --now agent-cli-proxy\n",
            s(&unit)
        )
    );
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.starts_with(
            "[Unit]\nDescription=agent-cli-proxy - AI API Proxy with Usage Monitoring\n"
        )
    );
    assert!(
        text.contains(&format!("WorkingDirectory={}\n", s(&sb.data_dir()))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ExecStart={} serve --env {}\n",
            s(&exe),
            s(&sb.config_dir().join(".env"))
        )),
        "{text}"
    );
    // Default path: $XDG_CONFIG_HOME/systemd/user.
    sb.run(&["service", "install", "--bin", &s(&exe)])
        .expect_code(0);
    assert!(
        sb.home()
            .join("config/systemd/user/agent-cli-proxy.service")
            .is_file()
    );
    let r = sb.run(&["service", "install", "--bin", "/tmp/a\nb"]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        "error: --bin contains unsupported control characters"
    );

    let Some(analyze) = which("systemd-analyze") else {
        println!("  skipped systemd-analyze verify: not installed");
        return;
    };
    let out = std::process::Command::new(analyze)
        .args(["verify", &s(&unit)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about this machine (no systemd running, missing system units) are not about
    // our file; complaints naming our unit are.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("agent-cli-proxy.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {stderr}");
    if !out.status.success() {
        println!(
            "  note: systemd-analyze verify exited {:?} for reasons outside the unit: {stderr}",
            out.status.code()
        );
    }
}

pub fn service_control_runs_systemctl_and_journalctl() {
    let mut sb = Sandbox::new();
    let bin = sb.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    sb.set("PATH", &s(&bin));
    for action in ["start", "status"] {
        let r = sb.run(&["service", action]);
        r.expect_code(1);
        assert_eq!(
            one_line(&r.stderr),
            "error: systemctl not found: service control needs systemd user services; run 'agent-cli-proxy serve' under your own supervisor"
        );
    }
    let r = sb.run(&["service", "logs"]);
    r.expect_code(1);
    assert!(
        one_line(&r.stderr).starts_with("error: journalctl not found: "),
        "{r:?}"
    );
    for tool in ["systemctl", "journalctl"] {
        let path = bin.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\necho \"{tool} $*\"\nexit 3\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    sb.set("PATH", &format!("{}:/usr/bin:/bin", s(&bin)));
    let cases: &[(&[&str], &str)] = &[
        (
            &["service", "start"],
            "systemctl --user start agent-cli-proxy",
        ),
        (
            &["service", "stop"],
            "systemctl --user stop agent-cli-proxy",
        ),
        (
            &["service", "restart"],
            "systemctl --user restart agent-cli-proxy",
        ),
        (
            &["service", "status"],
            "systemctl --user status agent-cli-proxy --no-pager",
        ),
        (
            &["service", "logs"],
            "journalctl --user -u agent-cli-proxy.service",
        ),
        (
            &["service", "logs", "--follow"],
            "journalctl --user -u agent-cli-proxy.service -f",
        ),
    ];
    for (args, want) in cases {
        let r = sb.run(args);
        r.expect_code(3);
        assert_eq!(r.stdout.trim(), *want, "{args:?}");
    }
}

pub fn providers_path_init_show() {
    let mut sb = Sandbox::new();
    sb.write_env_file("CLI_PROXY_API_URL=http://127.0.0.1:9\n");
    let r = sb.run(&["providers", "path"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "(no custom providers configured)\n");
    let r = sb.run(&["providers", "init"]);
    r.expect_code(0);
    let file = sb.config_dir().join("providers.json");
    assert_eq!(
        r.stdout,
        format!("Created providers config: {}\n", s(&file))
    );
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with("}\n"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["providers"][0]["id"], "local");
    assert_eq!(doc["providers"][1]["auth"]["env"], "GLM_API_KEY");
    assert_eq!(doc["providers"][2]["type"], "gemini");
    let r = sb.run(&["providers", "init"]);
    r.expect_code(1);
    assert_eq!(
        one_line(&r.stderr),
        format!(
            "error: {} already exists; use --force to overwrite",
            s(&file)
        )
    );
    sb.run(&["providers", "init", "--force"]).expect_code(0);

    sb.set("PROVIDERS_CONFIG_PATH", &format!("  {}  ", s(&file)))
        .set("GLM_API_KEY", "glm-secret-value");
    assert_eq!(
        sb.run(&["providers", "path"]).stdout,
        format!("{}\n", s(&file))
    );
    let r = sb.run(&["providers", "show"]);
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "id\ttype\tpaths\tmodels\tauth");
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("local\topenai-compatible\t/v1/chat/completions\tllama,qwen\tnone")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"google\tgemini\t/v1beta/,/v1internal:\t-\tpreserve"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"gemini-direct\tgemini\t/v1beta/models/\tgemini\tpreserve"),
        "{lines:?}"
    );
    let blank = lines.iter().position(|l| l.is_empty()).unwrap();
    assert_eq!(blank, 1 + 10, "7 built-ins + 3 custom");
    // Then the routing table: a title, a header, one line per provider path, the catch-all.
    assert_eq!(lines[blank + 1], "Routing (router http://127.0.0.1:9):");
    assert!(lines[blank + 2].starts_with("PATH "), "{lines:?}");
    assert!(
        lines.last().unwrap().starts_with("(other paths)"),
        "{lines:?}"
    );
    let r = sb.run(&["providers", "show", "--json"]);
    r.expect_code(0);
    assert!(!r.stdout.contains("glm-secret-value"));
    let v = r.json();
    let glm = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "glm")
        .unwrap();
    assert_eq!(glm["auth"]["env"], "GLM_API_KEY");
    assert_eq!(glm["auth"]["value"], "[redacted]");
    assert_eq!(v["source"]["kind"], "file");
    sb.set("PROVIDERS_JSON", r#"{"providers":[]}"#);
    assert_eq!(
        sb.run(&["providers", "path"]).stdout,
        "PROVIDERS_JSON inline\n"
    );
}

pub fn backfill_costs_recosts_pending_rows() {
    let mut sb = configured();
    let db = sb.data_dir().join("proxy.db");
    sb.run(&["db", "init"]).expect_code(0);
    let mut priced = Row::new("2026-11-20T10:00:00.000Z", "codex");
    priced.cost_status = "pending";
    priced.cost_nanousd = 0;
    priced.model = "my-model";
    let mut unknown = priced.clone();
    unknown.model = "zzz-unpriced";
    let mut old = priced.clone();
    old.started_at = "2020-01-01T00:00:00.000Z";
    insert_rows(&db, &[priced, unknown, old]);
    // Prices: my-model at $3/M input, $15/M output, from a file:// models.dev document.
    let api = sb.path("api.json");
    std::fs::write(
        &api,
        r#"{"acme":{"id":"acme","models":{"my-model":{"id":"my-model","cost":{"input":3,"output":15}}}}}"#,
    )
    .unwrap();
    sb.set("PRICING_URL", &format!("file://{}", s(&api)));
    sb.set("COST_BACKFILL_LOOKBACK_MS", "999999999999");
    let r = sb.run(&["backfill-costs", "--limit", "2"]);
    r.expect_code(0);
    assert_eq!(
        r.stdout.trim(),
        "[backfill-costs] scanned=2 updated=1 ok=1 pending=1 unsupported=0",
        "{r:?}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (status, cost): (String, i64) = conn
        .query_row(
            "SELECT cost_status, cost_nanousd FROM request_logs WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // OpenAI convention: 800 uncached × 3 + 200 cached × 3 (no cache price) + 100 × 15 → $/M.
    assert_eq!(status, "ok");
    assert_eq!(cost, (800 * 3_000 + 200 * 3_000 + 100 * 15_000) as i64);
    assert!(
        sb.data_dir().join("pricing-cache.json").is_file(),
        "refresh wrote the cache"
    );
    // --all with a non-positive limit (ignored) reaches the 2020 row too.
    let r = sb.run(&["backfill-costs", "--all", "--limit", "0"]);
    r.expect_code(0);
    assert_eq!(
        r.stdout.trim(),
        "[backfill-costs] scanned=2 updated=1 ok=1 pending=1 unsupported=0",
        "{r:?}"
    );
    // A broken configuration is a runtime failure naming the variable.
    sb.set("COST_BACKFILL_CHUNK_SIZE", "0");
    let r = sb.run(&["backfill-costs"]);
    r.expect_code(1);
    assert!(
        one_line(&r.stderr).contains("COST_BACKFILL_CHUNK_SIZE"),
        "{r:?}"
    );
}

struct Expect {
    requests: u64,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    total: u64,
    cost: u64,
}

fn expected(rows: &[&Row]) -> Expect {
    let mut e = Expect {
        requests: 0,
        input: 0,
        output: 0,
        cache_read: 0,
        cache_write: 0,
        total: 0,
        cost: 0,
    };
    for r in rows {
        let anthropic = r.meta_json.is_some_and(|m| m.contains("anthropic"))
            || (r.meta_json.is_none() && r.provider == "anthropic");
        e.requests += 1;
        e.input += (r.prompt + r.cache_creation + if anthropic { r.cache_read } else { 0 }) as u64;
        e.output += r.completion as u64;
        e.cache_read += r.cache_read as u64;
        e.cache_write += r.cache_creation as u64;
        e.total += r.total as u64;
        e.cost += r.cost_nanousd as u64;
    }
    e
}

fn check(v: &Value, e: &Expect) {
    assert_eq!(v["requests"], e.requests, "{v}");
    assert_eq!(v["input_tokens"], e.input, "{v}");
    assert_eq!(v["output_tokens"], e.output, "{v}");
    assert_eq!(v["cache_read_tokens"], e.cache_read, "{v}");
    assert_eq!(v["cache_write_tokens"], e.cache_write, "{v}");
    assert_eq!(v["total_tokens"], e.total, "{v}");
    assert_eq!(v["cost_nanousd"], e.cost, "{v}");
}

pub fn usage_reports_match_computed_sums() {
    let sb = configured();
    let db = sb.data_dir().join("proxy.db");
    sb.run(&["db", "init"]).expect_code(0);
    let a1 = Row::new("2026-11-23T10:00:00.000Z", "codex");
    let mut a2 = Row::new("2026-11-23T12:00:00.000Z", "opencode");
    a2.provider = "anthropic";
    a2.model = "claude-sonnet-4-5";
    a2.meta_json = None; // convention from the provider type
    a2.prompt = 1_000;
    a2.completion = 500;
    a2.cache_creation = 300;
    a2.cache_read = 2_000;
    a2.total = 3_800;
    a2.cost_nanousd = 10_500_000;
    let mut a3 = Row::new("2026-11-24T09:00:00.000Z", "codex");
    a3.cost_status = "pending";
    a3.cost_nanousd = 0;
    a3.lifecycle = "aborted";
    let mut big = Row::new("2026-11-30T09:00:00.000Z", "codex");
    big.prompt = 4_000_000;
    big.total = 4_560_000;
    big.completion = 560_000;
    big.cache_read = 12_345;
    let mut pending = Row::new("2026-11-23T11:00:00.000Z", "codex");
    pending.lifecycle = "pending";
    pending.cost_status = "unresolved";
    let out_of_range = Row::new("2026-10-01T00:00:00.000Z", "codex");
    insert_rows(
        &db,
        &[
            a1.clone(),
            a2.clone(),
            a3.clone(),
            big.clone(),
            pending,
            out_of_range,
        ],
    );

    let in_range = [&a1, &a2, &a3, &big];
    let run = |args: &[&str]| {
        let mut all = vec!["usage"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--since", "2026-11-02", "--until", "2026-11-30"]);
        sb.run(&all).expect_code(0).json()
    };
    // Daily by tool.
    let v = run(&["--json"]);
    assert_eq!(v["report"], "daily");
    assert_eq!(v["by"], "tool");
    assert_eq!(v["timezone"], "UTC");
    assert_eq!(v["since"], "2026-11-02");
    check(&v["totals"], &expected(&in_range));
    assert_eq!(v["totals"]["pending_cost_rows"], 1);
    let rows = v["rows"].as_array().unwrap();
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-11-23".to_owned(), "opencode".to_owned()),
            ("2026-11-23".to_owned(), "codex".to_owned()),
            ("2026-11-24".to_owned(), "codex".to_owned()),
            ("2026-11-30".to_owned(), "codex".to_owned()),
        ]
    );
    check(&rows[0], &expected(&[&a2]));
    assert_eq!(rows[0]["cost_usd"], 0.0105);
    // Weekly by model: 2026-W48 is Nov 23–29, W49 starts on Monday Nov 30.
    let v = run(&["weekly", "--by", "model", "--json"]);
    let rows = v["rows"].as_array().unwrap();
    let w48_gpt: Vec<&Value> = rows
        .iter()
        .filter(|r| r["period"] == "2026-W48" && r["key"] == "gpt-5")
        .collect();
    check(w48_gpt[0], &expected(&[&a1, &a3]));
    assert!(rows.iter().any(|r| r["period"] == "2026-W49"));
    // Monthly by provider.
    let v = run(&["monthly", "--by", "provider", "--json"]);
    let rows = v["rows"].as_array().unwrap();
    let openai = rows.iter().find(|r| r["key"] == "openai").unwrap();
    check(openai, &expected(&[&a1, &a3, &big]));
    assert_eq!(openai["period"], "2026-11");
    // Session: client ids (no session_id in meta).
    let v = run(&["session", "--json"]);
    let rows = v["rows"].as_array().unwrap();
    let codex = rows.iter().find(|r| r["key"] == "codex-client").unwrap();
    assert_eq!(codex["first_seen"], "2026-11-23T10:00:00.000Z");
    assert_eq!(codex["last_seen"], "2026-11-30T09:00:00.000Z");
    assert_eq!(codex["tool"], "codex");
    check(codex, &expected(&[&a1, &a3, &big]));

    // The table fits 80 columns, shows compact counts, per-period totals and the footnote.
    let r = sb.run(&["usage", "--since", "2026-11-02", "--until", "2026-11-30"]);
    r.expect_code(0);
    for line in r.stdout.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    assert!(r.stdout.contains("(total)"), "{}", r.stdout);
    assert!(r.stdout.contains("4.56M"), "{}", r.stdout);
    assert!(r.stdout.contains("12.3k"), "{}", r.stdout);
    let total = r.stdout.lines().find(|l| l.starts_with("TOTAL")).unwrap();
    assert!(total.ends_with("$0.0125*"), "{total}");
    assert!(r.stdout.contains("* 1 row(s)"), "{}", r.stdout);
}

pub fn usage_empty_and_local_time_zone() {
    let mut sb = configured();
    let db = sb.data_dir().join("proxy.db");
    let r = sb.run(&["usage"]);
    r.expect_code(1);
    assert!(one_line(&r.stderr).contains("DB_PATH"), "{r:?}");
    sb.run(&["db", "init"]).expect_code(0);
    let r = sb.run(&["usage", "--since", "2020-01-01", "--until", "2020-01-31"]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        format!(
            "No usage recorded in 2020-01-01..2020-01-31 ({}).\n",
            s(&db)
        )
    );
    let r = sb.run(&["usage", "monthly"]);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        format!("No usage recorded in all time ({}).\n", s(&db))
    );
    // Default range of daily: the last 30 days, so a row from today shows up.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let ts: &'static str = Box::leak(format!("{today}T12:30:00.000Z").into_boxed_str());
    insert_rows(
        &db,
        &[
            Row::new(ts, "hermes"),
            Row::new("2026-11-26T03:00:00.000Z", "late"),
        ],
    );
    let v = sb.run(&["usage", "--json"]).expect_code(0).json();
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "hermes"),
        "{v}"
    );
    // --local: 03:00Z is the previous evening five hours west of UTC.
    let late_rows = |v: &Value| -> Vec<Value> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["key"] == "late")
            .cloned()
            .collect()
    };
    let args = [
        "usage",
        "--json",
        "--since",
        "2026-11-25",
        "--until",
        "2026-11-25",
    ];
    let v = sb.run(&args).expect_code(0).json();
    assert!(
        late_rows(&v).is_empty(),
        "in UTC the row is on 2026-11-26: {v}"
    );
    sb.set("TZ", "EST5");
    let mut local = args.to_vec();
    local.push("--local");
    let v = sb.run(&local).expect_code(0).json();
    assert_ne!(v["timezone"], "UTC");
    let late = late_rows(&v);
    assert_eq!(late.len(), 1, "{v}");
    assert_eq!(late[0]["period"], "2026-11-25");
}

pub fn closed_stdout_is_not_a_panic() {
    let sb = Sandbox::new();
    for args in [&["paths"][..], &["--help"][..], &["usage", "--by", "x"][..]] {
        let mut child = sb
            .command(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.code().is_some(), "{args:?}: killed by a signal");
    }
}

pub fn dashboard_hash_password_from_stdin() {
    let sb = Sandbox::new();
    let r = sb.run_with_input(&["dashboard", "hash-password"], "piped pass\n");
    r.expect_code(0);
    let phc = r.stdout.trim();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(agent_cli_proxy_core::dashboard::session::verify_password(
        phc,
        "piped pass"
    ));
    assert!(r.stderr.contains("DASHBOARD_PASSWORD_HASH"), "{}", r.stderr);
    sb.run_with_input(&["dashboard", "hash-password"], "\n")
        .expect_code(1);
}

/// `usage` never cuts a name: `claude-code`, the most common tool, and every other tool name
/// stay whole on their numbers' line, and a longer key (a whole session id) gets a line of
/// its own; every line stays within 80 columns.
pub fn usage_table_keeps_names_whole() {
    let sb = configured();
    let db = sb.data_dir().join("proxy.db");
    sb.run(&["db", "init"]).expect_code(0);
    let mut rows: Vec<Row> = ["claude-code", "hermes-agent", "gemini-cli", "opencode"]
        .into_iter()
        .map(|tool| Row::new("2026-11-23T10:00:00.000Z", tool))
        .collect();
    let mut session = Row::new("2026-11-23T11:00:00.000Z", "codex");
    session.meta_json = Some(r#"{"session_id":"019a7e3c-1111-7222-8333-444455556666"}"#);
    rows.push(session);
    insert_rows(&db, &rows);
    let range = ["--since", "2026-11-02", "--until", "2026-11-30"];

    let r = sb.run(&[&["usage"][..], &range].concat());
    r.expect_code(0);
    for line in r.stdout.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    assert!(!r.stdout.contains('~'), "{}", r.stdout);
    for tool in [
        "claude-code",
        "hermes-agent",
        "gemini-cli",
        "opencode",
        "codex",
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == tool))
            .unwrap_or_else(|| panic!("{tool} not whole:\n{}", r.stdout));
        assert!(
            line.contains('$'),
            "{tool} is not on its numbers' line: {line:?}"
        );
    }

    let r = sb.run(&[&["usage", "session"][..], &range].concat());
    r.expect_code(0);
    let at = r
        .stdout
        .lines()
        .position(|l| {
            l.trim_start()
                .ends_with("019a7e3c-1111-7222-8333-444455556666")
        })
        .unwrap_or_else(|| panic!("session id not whole:\n{}", r.stdout));
    let numbers = r.stdout.lines().nth(at + 1).unwrap();
    assert!(numbers.contains('$'), "{numbers:?}\n{}", r.stdout);
    for line in r.stdout.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
}

/// Runs interactive `init` in a pseudo terminal (`script`), one answer at a time; returns
/// its stdout. `None` when `script` is missing (the caller says so).
fn init_through_pty(sb: &Sandbox, answers: &[&str]) -> Option<String> {
    let script = which("script")?;
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(&script)
        .args(["-qec", &format!("{} init", s(&exe)), "/dev/null"])
        .env_clear()
        .envs(&sb.vars)
        .env("ACP_CLI_CHILD", "1")
        .current_dir(sb.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for a in answers {
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(format!("{a}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

fn assert_direct_files(sb: &Sandbox, anthropic: &str, openai: &str) {
    let env_path = sb.config_dir().join(".env");
    let text = std::fs::read_to_string(&env_path).unwrap();
    let providers = sb.config_dir().join("providers.json");
    assert!(text.contains("CLI_PROXY_API_URL=\n"), "{text}");
    assert!(
        text.contains(&format!("PROVIDERS_CONFIG_PATH={}\n", s(&providers))),
        "{text}"
    );
    assert!(!text.contains("CLIPROXY_MGMT_KEY=k"), "{text}");
    assert_eq!(mode(&providers), 0o600);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&providers).unwrap()).unwrap();
    let list = doc["providers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "anthropic");
    assert_eq!(list[0]["upstreamBaseUrl"], anthropic);
    assert_eq!(
        list[0]["paths"],
        serde_json::json!(["/v1/messages", "/v1/messages/count_tokens"])
    );
    assert_eq!(list[1]["id"], "openai");
    assert_eq!(list[1]["upstreamBaseUrl"], openai);
    assert_eq!(
        list[1]["paths"],
        serde_json::json!(["/v1/chat/completions", "/v1/responses"])
    );
    for p in list {
        assert_eq!(p["auth"], "preserve", "the proxy stores no vendor key");
    }
}

pub fn init_direct_mode_needs_no_router() {
    // Scripted form.
    let sb = Sandbox::new();
    sb.run(&["init", "--non-interactive", "--direct"])
        .expect_code(0);
    assert_direct_files(&sb, "https://api.anthropic.com", "https://api.openai.com");
    // A second run refuses to replace either file; --force replaces both.
    sb.run(&["init", "--non-interactive", "--direct"])
        .expect_code(1);
    sb.run(&[
        "init",
        "--non-interactive",
        "--direct",
        "--force",
        "--anthropic-url",
        "http://127.0.0.1:7001/",
        "--openai-url",
        "http://127.0.0.1:7002",
    ])
    .expect_code(0);
    assert_direct_files(&sb, "http://127.0.0.1:7001", "http://127.0.0.1:7002");
    // --direct and a router URL exclude each other.
    sb.run(&[
        "init",
        "--non-interactive",
        "--direct",
        "--cliproxy-api-url",
        "http://x",
    ])
    .expect_code(2);

    // The routing table says where each route goes and what the rest gets.
    let r = sb.run(&["providers", "show"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("Routing (direct mode, no router):"),
        "{}",
        r.stdout
    );
    let line = |path: &str, provider: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{path} ")) && l.contains(&format!(" {provider} ")))
            .unwrap_or_else(|| panic!("no {path} {provider} line in {}", r.stdout))
            .to_owned()
    };
    assert!(line("/v1/messages/count_tokens", "anthropic").contains("http://127.0.0.1:7001"));
    assert!(line("/v1/responses", "openai").ends_with("preserve (client's own key)"));
    assert!(line("/v1/chat/completions", "xai").contains("none: 502 NO_UPSTREAM"));
    assert!(
        r.stdout
            .lines()
            .last()
            .unwrap()
            .contains("none: 404 NO_ROUTE")
    );

    // doctor: passes without probing a router, and prices from the built-in snapshot.
    let r = sb.run(&["doctor", "--json"]);
    let v = r.json();
    r.expect_code(0);
    assert!(!r.stderr.contains("probe"), "no router to probe: {r:?}");
    assert_eq!(v["checks"]["upstream"]["details"]["router"], Value::Null);
    assert_eq!(v["checks"]["providers"]["details"]["router"], Value::Null);
    let routing = v["checks"]["providers"]["details"]["routing"]
        .as_array()
        .unwrap();
    assert!(routing.iter().any(|l| l["path"] == "/v1/messages"
        && l["provider"] == "anthropic"
        && l["upstream"] == "http://127.0.0.1:7001"));
    let source = &v["checks"]["pricingCache"]["details"]["source"];
    assert_eq!(source["kind"], "snapshot", "{v:#}");
    assert_eq!(source["license"], "MIT");
    assert_eq!(source["date"].as_str().unwrap().len(), 10);

    // Interactive form: the direct answer skips the router's questions.
    let sb = Sandbox::new();
    let answers = [
        "",       // Config .env path (default)
        "",       // Data directory (default)
        "",       // Proxy host
        "",       // Proxy port
        "direct", // router or direct
        "n",      // Generate ADMIN_API_KEY
        "n",      // Protect the dashboard with a password
        "n",      // install service
    ];
    let Some(stdout) = init_through_pty(&sb, &answers) else {
        panic!(
            "`script` (util-linux) is needed for the interactive direct-mode check: apt-get install util-linux"
        );
    };
    assert!(!stdout.contains("CLIProxyAPI URL"), "{stdout}");
    assert!(!stdout.contains("account correlation"), "{stdout}");
    assert_direct_files(&sb, "https://api.anthropic.com", "https://api.openai.com");
}

pub fn calls_without_usage_are_not_cost_pending() {
    // Two calls of the same day: one that never reached its upstream (connection refused:
    // an `error` row with no token, stored `pending`), one with tokens still unpriced.
    let mut sb = configured();
    let db = sb.data_dir().join("proxy.db");
    sb.run(&["db", "init"]).expect_code(0);
    let mut refused = Row::new("2026-11-20T10:00:00.000Z", "codex");
    refused.lifecycle = "error";
    refused.cost_status = "pending";
    refused.model = "zzz-unpriced";
    refused.prompt = 0;
    refused.completion = 0;
    refused.cache_read = 0;
    refused.total = 0;
    refused.cost_nanousd = 0;
    let mut unpriced = Row::new("2026-11-20T11:00:00.000Z", "codex");
    unpriced.cost_status = "pending";
    unpriced.model = "zzz-unpriced";
    unpriced.cost_nanousd = 0;
    insert_rows(&db, &[refused, unpriced]);

    let r = sb.run(&["usage", "--since", "2026-11-20", "--until", "2026-11-20"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(
            "* 1 row(s) with cost pending: tokens counted, cost not yet; run backfill-costs"
        ),
        "only the row with tokens is pending: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "1 call(s) without usage (failed before the upstream answered): cost 0, nothing to backfill"
        ),
        "{}",
        r.stdout
    );
    let v = sb
        .run(&[
            "usage",
            "--since",
            "2026-11-20",
            "--until",
            "2026-11-20",
            "--json",
        ])
        .expect_code(0)
        .json();
    let text = v.to_string();
    assert!(text.contains(r#""no_usage_rows":1"#), "{text}");
    assert!(text.contains(r#""pending_cost_rows":1"#), "{text}");

    // The backfill scans only the row with tokens and says why it left the other alone.
    sb.set("PRICING_URL", "file:///nonexistent/api.json");
    let r = sb.run(&["backfill-costs", "--all"]);
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "[backfill-costs] scanned=1 updated=0 ok=0 pending=1 unsupported=0",
            "[backfill-costs] 1 call(s) without usage left alone: they failed before the upstream answered, so their cost is 0, not pending",
        ],
        "{r:?}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let audits: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM cost_audit WHERE request_log_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audits, 0, "the refused call's row was not touched");
}
