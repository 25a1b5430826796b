use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = [
        ("HOME", "/home/u"),
        ("CLI_PROXY_API_URL", "http://127.0.0.1:8317"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in pairs {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

fn load(pairs: &[(&str, &str)]) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    Config::from_env(&env(pairs), &ExternalInputs::default())
}

fn ok(pairs: &[(&str, &str)]) -> Config {
    load(pairs).unwrap().0
}

fn issues(pairs: &[(&str, &str)]) -> Vec<String> {
    load(pairs)
        .unwrap_err()
        .issues
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn warnings(pairs: &[(&str, &str)]) -> Vec<String> {
    load(pairs)
        .unwrap()
        .1
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn defaults() {
    let c = ok(&[]);
    assert_eq!(c.proxy_host, "127.0.0.1");
    assert_eq!(c.proxy_port, 3100);
    assert!(!c.trust_proxy_headers);
    assert!(!c.proxy_require_api_key);
    assert!(c.admin_api_key.is_empty());
    assert_eq!(c.cli_proxy_api_url, "http://127.0.0.1:8317");
    assert_eq!(c.cli_proxy_api_key.expose(), "proxy");
    assert_eq!(c.db_path, "/home/u/.local/share/agent-cli-proxy/proxy.db");
    assert_eq!(
        c.pricing_cache_path,
        "/home/u/.local/share/agent-cli-proxy/pricing-cache.json"
    );
    assert_eq!(c.pricing_url, "https://models.dev/api.json");
    assert!(c.stream_usage_inject);
    assert_eq!(c.pricing_cache_ttl_ms, 3_600_000);
    assert_eq!(c.pricing_refresh_interval_ms, 21_600_000);
    assert_eq!(c.ready_pricing_max_age_ms, 86_400_000);
    assert_eq!(c.pricing_overrides_json, None);
    assert_eq!(c.pricing_aliases_json, None);
    assert_eq!(c.cost_backfill_interval_ms, 1_800_000);
    assert_eq!(c.cost_backfill_lookback_ms, 604_800_000);
    assert_eq!(c.cost_backfill_chunk_size, 500);
    assert_eq!(c.upstream_timeout_ms, 0);
    assert_eq!(c.upstream_connect_timeout_ms, 0);
    assert_eq!(c.upstream_stream_first_byte_timeout_ms, 0);
    assert_eq!(c.upstream_max_retries, 2);
    assert_eq!(c.breaker_open_after_failures, 5);
    assert_eq!(c.breaker_half_open_after_ms, 30_000);
    assert_eq!(c.breaker_evict_after_ms, 300_000);
    assert_eq!(c.max_request_body_bytes, 25_000_000);
    assert_eq!(c.rate_limit_per_client_per_min, 0);
    assert_eq!(c.stale_pending_max_age_ms, 600_000);
    assert_eq!(c.quota_refresh_interval_ms, 300_000);
    assert_eq!(c.quota_refresh_timeout_ms, 15_000);
    assert_eq!(c.quota_snapshot_retention_days, 7);
    assert!(c.client_name_mapping.is_empty());
    assert_eq!(c.providers.list().len(), 7);
    assert!(c.cliproxy_mgmt_key.is_empty());
    assert_eq!(c.correlation_interval_ms, 15_000);
    assert_eq!(c.correlation_lookback_ms, 300_000);
    assert_eq!(c.correlation_window_ms, 30_000);
    assert_eq!(c.cliproxy_auth_dir, None);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(warnings(&[]), Vec::<String>::new());
}

#[test]
fn valid_values_are_typed() {
    let c = ok(&[
        ("PROXY_HOST", " LocalHost "),
        ("PROXY_PORT", "8080"),
        ("TRUST_PROXY_HEADERS", "yes"),
        ("ADMIN_API_KEY", " adm-9f3 "),
        ("CLI_PROXY_API_URL", "https://router.example:8443/base/"),
        ("CLI_PROXY_API_KEY", "k-123"),
        ("DB_PATH", ":memory:"),
        ("PRICING_CACHE_PATH", "/var/cache/p.json"),
        ("PRICING_URL", "file:///srv/api.json"),
        ("STREAM_USAGE_INJECT", "false"),
        ("PRICING_CACHE_TTL_MS", "1000"),
        ("PRICING_OVERRIDES_JSON", r#"{"m":{"input":1,"output":2}}"#),
        ("PRICING_ALIASES_JSON", " "),
        ("COST_BACKFILL_CHUNK_SIZE", "100000"),
        ("UPSTREAM_TIMEOUT_MS", "120000"),
        ("UPSTREAM_MAX_RETRIES", "0"),
        ("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", "1000"),
        ("MAX_REQUEST_BODY_BYTES", "1"),
        ("RATE_LIMIT_PER_CLIENT_PER_MIN", "60"),
        ("QUOTA_SNAPSHOT_RETENTION_DAYS", "3650"),
        ("CLIENT_NAME_MAPPING", " a = Alice ,b=Bob=x "),
        ("CLIPROXY_MGMT_KEY", "m-77"),
        ("CLIPROXY_AUTH_DIR", "/home/u/.cli-proxy-api"),
        ("LOG_LEVEL", "DEBUG"),
        ("LOG_FORMAT", "pretty"),
    ]);
    assert_eq!(c.proxy_host, "LocalHost");
    assert!(c.proxy_host_is_loopback());
    assert_eq!(c.proxy_port, 8080);
    assert!(c.trust_proxy_headers);
    assert_eq!(c.admin_api_key.expose(), "adm-9f3");
    assert_eq!(c.cli_proxy_api_url, "https://router.example:8443/base");
    assert_eq!(c.cli_proxy_api_key.expose(), "k-123");
    assert_eq!(c.db_path, ":memory:");
    assert_eq!(c.pricing_cache_path, "/var/cache/p.json");
    assert_eq!(c.pricing_url, "file:///srv/api.json");
    assert!(!c.stream_usage_inject);
    assert_eq!(c.pricing_cache_ttl_ms, 1000);
    assert_eq!(
        c.pricing_overrides_json.as_deref(),
        Some(r#"{"m":{"input":1,"output":2}}"#)
    );
    assert_eq!(c.pricing_aliases_json, None);
    assert_eq!(c.cost_backfill_chunk_size, 100_000);
    assert_eq!(c.upstream_timeout_ms, 120_000);
    assert_eq!(c.upstream_max_retries, 0);
    assert_eq!(c.breaker_open_after_failures, 1000);
    assert_eq!(c.max_request_body_bytes, 1);
    assert_eq!(c.rate_limit_per_client_per_min, 60);
    assert_eq!(c.quota_snapshot_retention_days, 3650);
    assert_eq!(c.client_name_mapping["a"], "Alice");
    assert_eq!(c.client_name_mapping["b"], "Bob=x");
    assert_eq!(c.cliproxy_mgmt_key.expose(), "m-77");
    assert_eq!(
        c.cliproxy_auth_dir.as_deref(),
        Some("/home/u/.cli-proxy-api")
    );
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.log_format, LogFormat::Pretty);
    assert_eq!(
        ok(&[("LOG_LEVEL", "verbose"), ("LOG_FORMAT", "xml")]).log_level,
        LogLevel::Info
    );
    assert_eq!(ok(&[("LOG_FORMAT", "xml")]).log_format, LogFormat::Json);
}

#[test]
fn each_numeric_variable_rejects_its_invalid_forms() {
    let positive = [
        "PRICING_CACHE_TTL_MS",
        "PRICING_REFRESH_INTERVAL_MS",
        "READY_PRICING_MAX_AGE_MS",
        "COST_BACKFILL_INTERVAL_MS",
        "COST_BACKFILL_LOOKBACK_MS",
        "UPSTREAM_CIRCUIT_BREAKER_HALF_OPEN_AFTER_MS",
        "UPSTREAM_CIRCUIT_BREAKER_EVICT_AFTER_MS",
        "STALE_PENDING_MAX_AGE_MS",
        "QUOTA_REFRESH_INTERVAL_MS",
        "QUOTA_REFRESH_TIMEOUT_MS",
        "CLIPROXY_CORRELATION_INTERVAL_MS",
        "CLIPROXY_CORRELATION_LOOKBACK_MS",
        "CLIPROXY_CORRELATION_WINDOW_MS",
    ];
    for name in positive {
        for bad in ["", "0", "-1", "abc", "Infinity"] {
            assert_eq!(
                issues(&[(name, bad)]),
                vec![format!("{name} must be a positive finite number")],
                "{name}={bad:?}"
            );
        }
        assert!(load(&[(name, "2.5")]).is_ok());
    }
    for name in [
        "UPSTREAM_TIMEOUT_MS",
        "UPSTREAM_CONNECT_TIMEOUT_MS",
        "UPSTREAM_STREAM_FIRST_BYTE_TIMEOUT_MS",
    ] {
        for bad in ["", "-1", "1.5", "x"] {
            assert_eq!(
                issues(&[(name, bad)]),
                vec![format!("{name} must be a non-negative integer")],
                "{name}={bad:?}"
            );
        }
    }
    let ranges = [
        ("PROXY_PORT", 1, 65_535),
        ("COST_BACKFILL_CHUNK_SIZE", 1, 100_000),
        ("UPSTREAM_MAX_RETRIES", 0, 100),
        ("UPSTREAM_CIRCUIT_BREAKER_OPEN_AFTER_FAILURES", 1, 1000),
        ("MAX_REQUEST_BODY_BYTES", 1, 1_000_000_000),
        ("RATE_LIMIT_PER_CLIENT_PER_MIN", 0, 1_000_000),
        ("QUOTA_SNAPSHOT_RETENTION_DAYS", 1, 3650),
    ];
    for (name, lo, hi) in ranges {
        let message = format!("{name} must be an integer from {lo} to {hi}");
        let below = if lo == 0 {
            "-1".to_owned()
        } else {
            (lo - 1).to_string()
        };
        for bad in [
            below,
            (hi + 1).to_string(),
            "1.5".to_owned(),
            String::new(),
            "x".to_owned(),
        ] {
            assert_eq!(
                issues(&[(name, &bad)]),
                vec![message.clone()],
                "{name}={bad:?}"
            );
        }
        assert!(load(&[(name, &lo.to_string())]).is_ok());
        assert!(load(&[(name, &hi.to_string())]).is_ok());
    }
}

#[test]
fn booleans_and_api_key_requirement() {
    for name in [
        "TRUST_PROXY_HEADERS",
        "STREAM_USAGE_INJECT",
        "PROXY_REQUIRE_API_KEY",
    ] {
        assert_eq!(
            issues(&[(name, "maybe")]),
            vec![format!(
                "{name} must be a boolean (true/false, yes/no, or 1/0)"
            )]
        );
    }
    let c = ok(&[("PROXY_HOST", "0.0.0.0")]);
    assert!(c.proxy_require_api_key, "non-loopback defaults to true");
    assert_eq!(
        issues(&[
            ("PROXY_HOST", "0.0.0.0"),
            ("PROXY_REQUIRE_API_KEY", "false")
        ]),
        vec!["PROXY_REQUIRE_API_KEY must be true when PROXY_HOST is not loopback"]
    );
    assert!(ok(&[("PROXY_HOST", "[::1]"), ("PROXY_REQUIRE_API_KEY", "1")]).proxy_require_api_key);
}

#[test]
fn upstream_url_rules() {
    let mut e = env(&[]);
    e.remove("CLI_PROXY_API_URL");
    let err = Config::from_env(&e, &ExternalInputs::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Configuration validation failed: CLI_PROXY_API_URL is required unless PROXY_LOCAL_OK=1 permits the local default"
    );
    assert_eq!(
        issues(&[("CLI_PROXY_API_URL", "  ")]),
        vec!["CLI_PROXY_API_URL is required unless PROXY_LOCAL_OK=1 permits the local default"]
    );
    assert!(load(&[("CLI_PROXY_API_URL", ""), ("PROXY_LOCAL_OK", "true")]).is_err());
    let (c, w) = load(&[("CLI_PROXY_API_URL", ""), ("PROXY_LOCAL_OK", "1")]).unwrap();
    assert_eq!(c.cli_proxy_api_url, "http://localhost:8317");
    assert!(c.proxy_local_ok);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].path, "CLI_PROXY_API_URL");
    for (raw, message) in [
        ("nope", "must be a parseable http(s) URL"),
        ("ftp://h", "must be an http(s) URL"),
        (
            "http://u:p@h",
            "must not contain credentials, query or fragment",
        ),
    ] {
        assert_eq!(
            issues(&[("CLI_PROXY_API_URL", raw)]),
            vec![format!("CLI_PROXY_API_URL {message}")]
        );
    }
}

#[test]
fn pricing_url_and_json_variables() {
    assert!(load(&[("PRICING_URL", "http://prices.local/api.json?x=1")]).is_ok());
    for bad in ["file://relative", "file:///", "ftp://x", "/abs/path"] {
        assert_eq!(
            issues(&[("PRICING_URL", bad)]),
            vec!["PRICING_URL must be an http(s) URL or a file:/// URL with an absolute path"],
            "{bad}"
        );
    }
    for name in ["PRICING_OVERRIDES_JSON", "PRICING_ALIASES_JSON"] {
        assert_eq!(
            issues(&[(name, "[1]")]),
            vec![format!("{name} must be a JSON object")]
        );
        let got = issues(&[(name, "{nope")]);
        assert!(
            got[0].starts_with(&format!("{name} must be valid JSON: ")),
            "{got:?}"
        );
    }
}

#[test]
fn client_name_mapping_entries() {
    assert!(
        ok(&[("CLIENT_NAME_MAPPING", "  ")])
            .client_name_mapping
            .is_empty()
    );
    assert_eq!(
        issues(&[("CLIENT_NAME_MAPPING", "a=1,=x,b=,c,d=4,")]),
        vec![
            "CLIENT_NAME_MAPPING[1] must be a non-empty key=value entry",
            "CLIENT_NAME_MAPPING[2] must be a non-empty key=value entry",
            "CLIENT_NAME_MAPPING[3] must be a non-empty key=value entry",
            "CLIENT_NAME_MAPPING[5] must be a non-empty key=value entry",
        ]
    );
}

#[test]
fn all_issues_are_collected_in_one_error() {
    let err = load(&[
        ("PROXY_PORT", "0"),
        ("UPSTREAM_MAX_RETRIES", "x"),
        ("PROVIDERS_JSON", r#"{"providers":[{"id":""}]}"#),
    ])
    .unwrap_err();
    assert_eq!(ConfigError::CODE, "CONFIG_INVALID");
    let text = err.to_string();
    assert!(text.starts_with(
        "Configuration validation failed: PROXY_PORT must be an integer from 1 to 65535; UPSTREAM_MAX_RETRIES must be an integer from 0 to 100; providers[0].id must be a non-empty string; "
    ), "{text}");
}

#[test]
fn ignored_variables_warn() {
    for name in IGNORED_FOR_TEST {
        assert_eq!(
            warnings(&[(name, "x")]),
            vec![format!("{name} is not used by this version and is ignored")]
        );
    }
}

const IGNORED_FOR_TEST: [&str; 4] = [
    "CLAUDE_CODE_VERSION",
    "CCH_SALT",
    "CCH_POSITIONS",
    "TOOL_PREFIX",
];

const PLACEHOLDER: &str =
    "uses a placeholder value; replace it with a unique random secret before exposure";

#[test]
fn placeholder_secrets_warn() {
    for value in [
        "admin",
        "changeme",
        "change-me",
        "default",
        "example",
        "password",
        "proxy",
        "secret",
        " TOKEN ",
    ] {
        assert_eq!(
            warnings(&[("ADMIN_API_KEY", value)]),
            vec![format!("ADMIN_API_KEY {PLACEHOLDER}")]
        );
        assert_eq!(
            warnings(&[("CLIPROXY_MGMT_KEY", value)]),
            vec![format!("CLIPROXY_MGMT_KEY {PLACEHOLDER}")]
        );
    }
    assert!(warnings(&[("ADMIN_API_KEY", "s3cr3t-long")]).is_empty());
    // CLI_PROXY_API_KEY only when a host is not loopback (the default `proxy` counts).
    assert!(warnings(&[("CLI_PROXY_API_URL", "http://[::1]:8317")]).is_empty());
    assert_eq!(
        warnings(&[("CLI_PROXY_API_URL", "https://router.example")]),
        vec![format!("CLI_PROXY_API_KEY {PLACEHOLDER}")]
    );
    assert_eq!(
        warnings(&[("PROXY_HOST", "0.0.0.0"), ("CLI_PROXY_API_KEY", "changeme")]),
        vec![format!("CLI_PROXY_API_KEY {PLACEHOLDER}")]
    );
    assert!(
        warnings(&[
            ("CLI_PROXY_API_URL", "https://router.example"),
            ("CLI_PROXY_API_KEY", "k-unique")
        ])
        .is_empty()
    );
}

#[test]
fn path_warnings() {
    let relative =
        "should be an absolute path outside the deploy/runtime directory to survive releases";
    assert_eq!(
        warnings(&[
            ("DB_PATH", "proxy.db"),
            ("PRICING_CACHE_PATH", "cache.json")
        ]),
        vec![
            format!("DB_PATH {relative}"),
            format!("PRICING_CACHE_PATH {relative}")
        ]
    );
    assert!(warnings(&[("DB_PATH", ":memory:")]).is_empty());
    assert_eq!(
        warnings(&[
            ("AGENT_CLI_PROXY_DEPLOY_DIR", "/srv/app/"),
            ("AGENT_CLI_PROXY_RUNTIME_DIR", "/srv"),
            ("DB_PATH", "/srv/app/data/proxy.db"),
            ("PRICING_CACHE_PATH", "/srv/cache.json"),
        ]),
        vec![
            "DB_PATH should be outside deploy/runtime directory /srv/app/ to survive releases",
            "PRICING_CACHE_PATH should be outside deploy/runtime directory /srv to survive releases",
        ]
    );
    assert!(
        warnings(&[
            ("AGENT_CLI_PROXY_DEPLOY_DIR", "/srv/app"),
            ("DB_PATH", "/srv/application/x.db")
        ])
        .is_empty()
    );
    // No HOME: the defaults are relative and say so.
    let mut e = env(&[]);
    e.remove("HOME");
    let (_, w) = Config::from_env(&e, &ExternalInputs::default()).unwrap();
    assert_eq!(w.len(), 2);
}

#[test]
fn providers_json_wins_over_the_file() {
    let doc = r#"{"providers":[{"id":"local","type":"openai-compatible","paths":["/v1/chat/completions"],"upstreamBaseUrl":"http://localhost:11434/","models":["llama"],"auth":"none"}]}"#;
    let inputs = ExternalInputs {
        providers_file: Some(FileRead::Contents("not json".into())),
    };
    let e = env(&[
        ("PROVIDERS_JSON", doc),
        ("PROVIDERS_CONFIG_PATH", "/etc/p.json"),
    ]);
    assert_eq!(ExternalInputs::providers_file_to_read(&e), None);
    let (c, _) = Config::from_env(&e, &inputs).unwrap();
    assert_eq!(c.providers.list().len(), 8);
    assert_eq!(
        c.providers.source(),
        &crate::provider::ProviderSource::Inline
    );
    assert_eq!(c.admin_json()["features"]["customProviders"], 1);

    let e = env(&[("PROVIDERS_CONFIG_PATH", "/etc/p.json")]);
    assert_eq!(
        ExternalInputs::providers_file_to_read(&e).as_deref(),
        Some("/etc/p.json")
    );
    let file = ExternalInputs {
        providers_file: Some(FileRead::Contents(doc.into())),
    };
    let (c, _) = Config::from_env(&e, &file).unwrap();
    assert_eq!(
        c.providers.source(),
        &crate::provider::ProviderSource::File {
            path: "/etc/p.json".into()
        }
    );
    let bad = |inputs: ExternalInputs| -> Vec<String> {
        Config::from_env(&e, &inputs)
            .unwrap_err()
            .issues
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        bad(ExternalInputs {
            providers_file: Some(FileRead::Failed(
                "No such file or directory (os error 2)".into()
            ))
        }),
        vec!["PROVIDERS_CONFIG_PATH could not be read: No such file or directory (os error 2)"]
    );
    assert!(
        bad(ExternalInputs::default())[0].starts_with("PROVIDERS_CONFIG_PATH could not be read: ")
    );
    let invalid = bad(ExternalInputs {
        providers_file: Some(FileRead::Contents("{".into())),
    });
    assert!(
        invalid[0].starts_with("PROVIDERS_CONFIG_PATH must be valid JSON: "),
        "{invalid:?}"
    );
    let inline = issues(&[("PROVIDERS_JSON", "[")]);
    assert!(
        inline[0].starts_with("PROVIDERS_JSON must be valid JSON: "),
        "{inline:?}"
    );
}

#[test]
fn admin_config_shows_secrets_only_as_booleans() {
    let c = ok(&[
        ("ADMIN_API_KEY", "adm-zz91"),
        ("CLIPROXY_MGMT_KEY", "mgmt-zz92"),
        ("CLI_PROXY_API_KEY", "key-zz93"),
        ("CLIPROXY_AUTH_DIR", "/auth"),
    ]);
    let v = c.admin_json();
    let text = v.to_string();
    for secret in ["adm-zz91", "mgmt-zz92", "key-zz93"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(
        v,
        serde_json::json!({
            "proxy": {"host": "127.0.0.1", "port": 3100, "proxyRequireApiKey": false, "trustProxyHeaders": false},
            "upstream": {"cliProxyApiUrl": "http://127.0.0.1:8317", "timeoutMs": 0, "connectTimeoutMs": 0, "firstByteTimeoutMs": 0, "maxRetries": 2},
            "pricing": {"url": "https://models.dev/api.json", "cachePath": "/home/u/.local/share/agent-cli-proxy/pricing-cache.json", "refreshMs": 21_600_000, "streamUsageInject": true},
            "intervals": {"costBackfillMs": 1_800_000, "quotaRefreshMs": 300_000, "correlationMs": 15_000},
            "features": {"hasAdminApiKey": true, "hasMgmtKey": true, "hasAuthDir": true, "customProviders": 0},
            "dbPath": "/home/u/.local/share/agent-cli-proxy/proxy.db",
            "database": {"kind": "sqlite", "path": "/home/u/.local/share/agent-cli-proxy/proxy.db"},
        })
    );
}

#[test]
fn secrets_never_appear_in_issues_or_warnings() {
    let err = load(&[
        ("ADMIN_API_KEY", "password"),
        ("PROXY_PORT", "0"),
        (
            "PROVIDERS_JSON",
            r#"{"providers":[{"id":"x","type":"bad","paths":[],"upstreamBaseUrl":"ftp://x","auth":{"type":"bearer","value":"sk-zz-secret\n","bogus":1}}]}"#,
        ),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("sk-zz-secret"), "{text}");
    assert!(
        text.contains("providers[0].auth.value must be a valid header value"),
        "{text}"
    );
    assert!(
        text.contains("providers[0].auth.bogus is not supported"),
        "{text}"
    );
}

#[test]
fn pricing_json_variables_report_the_pricing_parser_issues() {
    assert_eq!(
        issues(&[("PRICING_OVERRIDES_JSON", r#"{"m":{"input":1},"n":7}"#)]),
        vec![
            "PRICING_OVERRIDES_JSON.m must include non-negative numeric input and output",
            "PRICING_OVERRIDES_JSON.n must be a pricing object",
        ]
    );
    assert_eq!(
        issues(&[("PRICING_ALIASES_JSON", r#"{"kimi":""}"#)]),
        vec!["PRICING_ALIASES_JSON.kimi must be a non-empty string"]
    );
    let c = ok(&[(
        "PRICING_OVERRIDES_JSON",
        r#"{"my-model":{"input":1,"output":2}}"#,
    )]);
    assert_eq!(c.pricing_overrides.len(), 1);
    assert!(ok(&[]).pricing_overrides.len() >= 6, "built-ins when unset");
}

#[test]
fn dashboard_variables() {
    let c = ok(&[]);
    assert!(c.dashboard_password_hash.is_none());
    assert_eq!(c.dashboard_session_ttl_ms, 7 * 86_400_000);
    let phc = crate::dashboard::session::hash_password("pw", [3; 16]).unwrap();
    let c = ok(&[
        ("DASHBOARD_PASSWORD_HASH", phc.as_str()),
        ("DASHBOARD_SESSION_TTL_MS", "60000"),
    ]);
    assert_eq!(c.dashboard_password_hash.unwrap().expose(), phc);
    assert_eq!(c.dashboard_session_ttl_ms, 60_000);
    let bad = issues(&[("DASHBOARD_PASSWORD_HASH", "hunter2")]);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].starts_with("DASHBOARD_PASSWORD_HASH must be an Argon2id PHC string"));
    assert!(!bad[0].contains("hunter2"));
}

#[test]
fn spool_settings_default_next_to_the_database_and_are_validated() {
    let c = ok(&[("DB_PATH", "/srv/acp/proxy.db")]);
    assert_eq!(c.spool.dir.as_deref(), Some("/srv/acp/proxy.db.spool"));
    assert_eq!(c.spool.fsync, crate::config::SpoolFsync::Off);
    assert_eq!(
        (c.spool.ingest_max_delay_ms, c.spool.ingest_batch),
        (50, 4_096)
    );
    assert_eq!(
        (c.spool.segment_bytes, c.spool.max_bytes),
        (67_108_864, 1_073_741_824)
    );
    let m = ok(&[("DB_PATH", ":memory:")]);
    assert_eq!(m.spool.dir, None);
    let set = ok(&[
        ("SPOOL_DIR", "/var/spool/acp"),
        ("SPOOL_FSYNC", "always"),
        ("SPOOL_INGEST_BATCH", "1"),
    ]);
    assert_eq!(set.spool.dir.as_deref(), Some("/var/spool/acp"));
    assert_eq!(set.spool.fsync, crate::config::SpoolFsync::Always);
    assert_eq!(set.spool.ingest_batch, 1);
    for (name, bad) in [
        ("SPOOL_FSYNC", "sometimes"),
        ("SPOOL_INGEST_BATCH", "0"),
        ("SPOOL_INGEST_MAX_DELAY_MS", "10001"),
        ("SPOOL_SEGMENT_BYTES", "1000"),
        ("SPOOL_MAX_BYTES", "1048576"),
    ] {
        let found = issues(&[(name, bad)]);
        assert!(
            found.iter().any(|i| i.starts_with(name)),
            "{name}={bad}: {found:?}"
        );
    }
}

#[test]
fn direct_mode_needs_no_router_url() {
    let doc = crate::provider::direct::direct_document("https://a.example", "https://o.example");
    let mut e = env(&[("PROVIDERS_JSON", &doc.to_string())]);
    e.remove("CLI_PROXY_API_URL");
    let (c, w) = Config::from_env(&e, &ExternalInputs::default()).unwrap();
    assert!(!c.has_router());
    assert_eq!(c.cli_proxy_api_url, "");
    // The router key is never sent without a router: no placeholder warning for it.
    assert!(w.iter().all(|w| w.path != "CLI_PROXY_API_KEY"), "{w:?}");
    let anthropic = c.providers.get("anthropic").unwrap();
    assert_eq!(anthropic.upstream_base_url, "https://a.example");
    // The same document read from PROVIDERS_CONFIG_PATH.
    let mut e = env(&[("PROVIDERS_CONFIG_PATH", "/p.json")]);
    e.remove("CLI_PROXY_API_URL");
    let inputs = ExternalInputs {
        providers_file: Some(FileRead::Contents(doc.to_string())),
    };
    assert!(!Config::from_env(&e, &inputs).unwrap().0.has_router());
    // Only one vendor routed: the router is still required.
    let half = serde_json::json!({"providers": [doc["providers"][0].clone()]});
    let mut e = env(&[("PROVIDERS_JSON", &half.to_string())]);
    e.remove("CLI_PROXY_API_URL");
    assert!(Config::from_env(&e, &ExternalInputs::default()).is_err());
    // Account correlation reads the router's management API.
    let mut e = env(&[
        ("PROVIDERS_JSON", &doc.to_string()),
        ("CLIPROXY_MGMT_KEY", "k-123"),
    ]);
    e.remove("CLI_PROXY_API_URL");
    let err = Config::from_env(&e, &ExternalInputs::default()).unwrap_err();
    assert_eq!(err.issues[0].path, "CLIPROXY_MGMT_KEY");
    // With a router set as well, it is used as before.
    let c = ok(&[("PROVIDERS_JSON", &doc.to_string())]);
    assert!(c.has_router());
}

#[test]
fn database_url_sqlite_forms_win_over_db_path_and_postgres_is_selected_without_echoing_it() {
    let c = ok(&[
        ("DB_PATH", "/srv/acp/proxy.db"),
        ("DATABASE_URL", "sqlite:///var/lib/acp/team.db"),
    ]);
    assert_eq!(c.db_path, "/var/lib/acp/team.db");
    assert_eq!(
        c.spool.dir.as_deref(),
        Some("/var/lib/acp/team.db.spool"),
        "the spool follows the database"
    );
    assert_eq!(
        ok(&[("DATABASE_URL", "sqlite::memory:")]).db_path,
        ":memory:"
    );
    let pg = ok(&[
        (
            "DATABASE_URL",
            "postgres://acp:s3cr3t-zz99@db.example:5433/acp?sslmode=require",
        ),
        ("AGENT_CLI_PROXY_DATA_DIR", "/var/lib/acp"),
    ]);
    let target = pg.postgres.as_ref().expect("postgres selected");
    assert_eq!(
        target.url.expose(),
        "postgres://acp:s3cr3t-zz99@db.example:5433/acp?sslmode=require"
    );
    assert_eq!(
        (target.host.as_str(), target.dbname.as_str()),
        ("db.example:5433", "acp")
    );
    assert_eq!(
        pg.spool.dir.as_deref(),
        Some("/var/lib/acp/spool"),
        "its own spool home"
    );
    let shown = format!("{pg:?} {}", pg.admin_json());
    assert!(
        !shown.contains("s3cr3t-zz99"),
        "the password leaked: {shown}"
    );
    assert_eq!(
        pg.admin_json()["database"],
        serde_json::json!({"kind": "postgres", "host": "db.example:5433", "dbname": "acp"})
    );
    let socket = ok(&[("DATABASE_URL", "postgresql:///acp?host=/run/postgresql")]);
    assert_eq!(
        socket.postgres.as_ref().map(|t| t.host.as_str()),
        Some("/run/postgresql")
    );
    let no_db = issues(&[("DATABASE_URL", "postgres://acp:s3cr3t-zz99@db.example/")]);
    assert!(
        no_db.len() == 1 && !no_db[0].contains("s3cr3t-zz99"),
        "{no_db:?}"
    );
    for bad in ["sqlite://relative.db", "mysql://x/y", "proxy.db"] {
        let found = issues(&[("DATABASE_URL", bad)]);
        assert!(
            found.len() == 1 && found[0].starts_with("DATABASE_URL"),
            "{bad}: {found:?}"
        );
    }
}
