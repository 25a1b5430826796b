//! `doctor [--env PATH] [--json]` (`control.md` §11.5).
//!
//! Choices where the spec is silent:
//! * A missing `--env` file is a `config` FAIL (`env file not found: <path>`) and the other
//!   checks run on the process environment, so the report stays complete.
//! * With an invalid configuration, the database and pricing checks use `DB_PATH` /
//!   `PRICING_CACHE_PATH` as set (or their defaults); `providers` lists the provider issues
//!   under `details.invalid`; `upstream` is skipped when `CLI_PROXY_API_URL` did not validate.
//! * A probe answered below 200 fails like one of 500 and above (`upstream returned HTTP <n>`);
//!   a probe error fails with its text.
//! * With `DATABASE_URL=postgres://…` the database check connects, reads the recorded
//!   migrations and pings, without migrating (the first replica to start does that, under
//!   the migration lock); details `{kind: "postgres", host, dbname, appliedMigrations,
//!   pendingMigrations}`, never the URL. A build without the backend fails the check saying
//!   so.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use agent_cli_proxy_core::config::{Config, ConfigError, Paths};
use agent_cli_proxy_core::pricing::PriceSource;
use agent_cli_proxy_core::pricing::cache_file::from_cache_file;
use agent_cli_proxy_core::provider::ProviderSource;
use agent_cli_proxy_core::provider::direct::{routing_json, routing_table};
use agent_cli_proxy_storage::{DbPath, Store};
use serde_json::{Value, json};

use crate::args::DoctorArgs;
use crate::{CmdResult, Shell, env};

/// The upstream probe's timeout.
const PROBE_TIMEOUT: Duration = Duration::from_millis(2_000);

struct Check {
    name: &'static str,
    issues: Vec<String>,
    details: Option<Value>,
}

impl Check {
    fn passed(&self) -> bool {
        self.issues.is_empty()
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "status": if self.passed() { "PASS" } else { "FAIL" },
            "issues": self.issues,
        });
        if let (Some(details), Some(obj)) = (&self.details, v.as_object_mut()) {
            obj.insert("details".into(), details.clone());
        }
        v
    }
}

/// Runs every check and prints the report.
pub(crate) fn run(
    process: &BTreeMap<String, String>,
    args: DoctorArgs,
    shell: &dyn Shell,
) -> CmdResult {
    let (vars, env_path, env_issue) = match env::load(process, args.env.as_deref()) {
        Ok(l) => (l.vars, l.env_path, None),
        Err(e) => (
            process.clone(),
            args.env
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            Some(e.to_string()),
        ),
    };
    let validated = Config::from_env(&vars, &env::external_inputs(&vars));
    let checks = [
        config_check(&validated, &env_path, env_issue),
        database_check(&validated, &vars),
        providers_check(&validated),
        pricing_check(&validated, &vars),
        upstream_check(&validated, shell),
        Check {
            name: "supervisor",
            issues: Vec::new(),
            details: Some(json!({"loops": []})),
        },
    ];
    let pass = checks.iter().all(Check::passed);
    let status = if pass { "PASS" } else { "FAIL" };
    if args.json {
        let mut map = serde_json::Map::new();
        for c in &checks {
            map.insert(c.name.to_owned(), c.json());
        }
        crate::out_line!(
            "{}",
            env::pretty(&json!({"status": status, "checks": Value::Object(map)}))
        );
    } else {
        crate::out_line!("doctor: {status}");
        for c in &checks {
            crate::out_line!("{} {}", if c.passed() { "PASS" } else { "FAIL" }, c.name);
            for issue in &c.issues {
                crate::out_line!("  - {issue}");
            }
            match (&c.details, c.name) {
                // The routing table reads better as a table than as one JSON line.
                (Some(_), "providers") if c.passed() => {
                    if let Ok((config, _)) = &validated {
                        for line in crate::providers::routing_lines(config) {
                            crate::out_line!("  {line}");
                        }
                    }
                }
                (Some(d), _) => crate::out_line!("  {d}"),
                (None, _) => {}
            }
        }
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

type Validated = Result<(Config, Vec<agent_cli_proxy_core::config::ConfigWarning>), ConfigError>;

fn config_check(validated: &Validated, env_path: &str, env_issue: Option<String>) -> Check {
    let mut issues: Vec<String> = env_issue.into_iter().collect();
    if let Err(e) = validated {
        issues.extend(e.issues.iter().map(ToString::to_string));
    }
    Check {
        name: "config",
        issues,
        details: Some(json!({"envPath": env_path})),
    }
}

fn var_or<'a>(vars: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn database_check(validated: &Validated, vars: &BTreeMap<String, String>) -> Check {
    let postgres = match validated {
        Ok((c, _)) => c.postgres.clone(),
        Err(_) => match env::database(vars) {
            env::Database::Postgres(target) => Some(target),
            env::Database::Sqlite(_) => None,
        },
    };
    if let Some(target) = postgres {
        let basic = json!({"kind": "postgres", "host": target.host, "dbname": target.dbname});
        return match crate::pg::doctor_details(&target) {
            Ok(details) => Check {
                name: "database",
                issues: Vec::new(),
                details: Some(details),
            },
            Err(issue) => Check {
                name: "database",
                issues: vec![issue],
                details: Some(basic),
            },
        };
    }
    let path = match validated {
        Ok((c, _)) => c.db_path.clone(),
        Err(_) => {
            var_or(vars, "DB_PATH").map_or_else(|| Paths::from_env(vars).db_path, str::to_owned)
        }
    };
    let mut check = Check {
        name: "database",
        issues: Vec::new(),
        details: Some(json!({"path": path})),
    };
    match inspect_db(&path) {
        Ok((tables, migrations)) => {
            check.details = Some(json!({
                "path": path,
                "tablesCount": tables.len(),
                "tables": tables,
                "appliedMigrations": migrations,
            }));
        }
        Err(e) => check.issues.push(format!("DB_PATH {path}: {e}")),
    }
    check
}

fn inspect_db(path: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let (store, _) = Store::open_and_migrate(&DbPath::from_config(path))
        .map_err(|e| crate::one_line(&e.to_string()))?;
    let conn = store.connection();
    let strings = |sql: &str| -> Result<Vec<String>, String> {
        let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    };
    let tables = strings(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let migrations =
        strings("SELECT name FROM schema_migrations ORDER BY applied_at DESC, name DESC LIMIT 10")?;
    Ok((tables, migrations))
}

fn providers_check(validated: &Validated) -> Check {
    match validated {
        Ok((config, _)) => {
            let source = match config.providers.source() {
                ProviderSource::BuiltIn => "built-in".to_owned(),
                ProviderSource::Inline => "PROVIDERS_JSON".to_owned(),
                ProviderSource::File { path } => format!("file:{path}"),
            };
            Check {
                name: "providers",
                issues: Vec::new(),
                details: Some(json!({
                    "count": config.providers.list().len(),
                    "source": source,
                    "invalid": [],
                    "router": config.has_router().then_some(&config.cli_proxy_api_url),
                    "routing": routing_json(&routing_table(&config.providers)),
                })),
            }
        }
        Err(e) => {
            let invalid: Vec<String> = e
                .issues
                .iter()
                .filter(|i| i.path.starts_with("providers") || i.path.starts_with("PROVIDERS_"))
                .map(ToString::to_string)
                .collect();
            Check {
                name: "providers",
                issues: vec!["skipped because config is invalid".to_owned()],
                details: Some(json!({"count": 0, "source": null, "invalid": invalid})),
            }
        }
    }
}

fn pricing_check(validated: &Validated, vars: &BTreeMap<String, String>) -> Check {
    let path = match validated {
        Ok((c, _)) => c.pricing_cache_path.clone(),
        Err(_) => var_or(vars, "PRICING_CACHE_PATH")
            .map_or_else(|| Paths::from_env(vars).pricing_cache_path, str::to_owned),
    };
    let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let age_ms = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // What the daemon would load at startup: a readable cache file, else the snapshot
    // compiled into the binary. A missing cache is not a failure any more; an unreadable one
    // still is, since the daemon would silently fall back to older prices.
    let cached = meta
        .as_ref()
        .map(|_| std::fs::read(&path).map_err(|e| e.to_string()))
        .map(|r| r.and_then(|b| from_cache_file(&b).map_err(|e| e.to_string())));
    let (issues, source) = match cached {
        Some(Ok(file)) => (
            Vec::new(),
            PriceSource::CacheFile.describe(Some(file.fetched_at)),
        ),
        Some(Err(e)) => (
            vec![format!("pricing cache unreadable: {path}: {e}")],
            PriceSource::Snapshot.describe(None),
        ),
        None => (Vec::new(), PriceSource::Snapshot.describe(None)),
    };
    Check {
        name: "pricingCache",
        issues,
        details: Some(json!({
            "path": path,
            "exists": meta.is_some(),
            "size": meta.as_ref().map(std::fs::Metadata::len),
            "ageMs": age_ms,
            "source": source,
        })),
    }
}

fn upstream_check(validated: &Validated, shell: &dyn Shell) -> Check {
    let Ok((config, _)) = validated else {
        return Check {
            name: "upstream",
            issues: vec!["skipped because config is invalid".to_owned()],
            details: Some(json!({"statusCode": null})),
        };
    };
    if !config.has_router() {
        return Check {
            name: "upstream",
            issues: Vec::new(),
            details: Some(json!({
                "statusCode": null,
                "router": null,
                "note": "no router (direct mode): calls go to the providers' own URLs",
            })),
        };
    }
    let url = format!("{}/health", config.cli_proxy_api_url);
    let (issues, code) = match shell.probe("HEAD", &url, PROBE_TIMEOUT) {
        Ok(code) if (200..500).contains(&code) => (Vec::new(), Some(code)),
        Ok(code) => (vec![format!("upstream returned HTTP {code}")], Some(code)),
        Err(e) => (vec![format!("upstream {url} unreachable: {e}")], None),
    };
    Check {
        name: "upstream",
        issues,
        details: Some(json!({"statusCode": code})),
    }
}
