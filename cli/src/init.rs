//! `init` (`control.md` §11.3, §11.4): collect the values (prompts or flags and the process
//! environment), write the env file atomically with mode 0600, initialise the database.
//!
//! Choices where the spec is silent:
//! * Interactive `init` refuses an existing env file the same way as `--non-interactive`
//!   (unless `--force` or `--merge`), checked right after the env path prompt.
//! * The data directory is made absolute against the working directory, so `DB_PATH` and
//!   `PRICING_CACHE_PATH` are always absolute; so is the env path.
//! * A port from `PROXY_PORT` must be an integer from 1 to 65535; a host must not be blank.
//! * Direct mode writes `providers.json` next to the env file (mode 0600) and points
//!   `PROVIDERS_CONFIG_PATH` at it; `CLI_PROXY_API_URL` is written empty. An existing
//!   providers file is refused like the env file, replaced with `--force`, kept with
//!   `--merge`.

mod interactive;
pub(crate) mod prompt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_cli_proxy_core::config::{Paths, parse_env_file};
use serde_json::json;

use crate::args::InitArgs;
use crate::{CliError, CmdResult, Shell, db, env, envfile, fsutil, log};

/// The values `init` writes.
#[derive(Debug, Clone)]
pub(crate) struct InitValues {
    pub env_path: PathBuf,
    pub data_dir: PathBuf,
    pub host: String,
    pub port: String,
    pub api_url: String,
    pub api_key: String,
    pub admin_key: String,
    pub mgmt_key: String,
    pub auth_dir: String,
    /// `DASHBOARD_PASSWORD_HASH` (empty: the dashboard has no sign-in of its own).
    pub dashboard_hash: String,
    /// Direct mode: the vendors' base URLs (Anthropic, OpenAI); `None` with a router.
    pub direct: Option<(String, String)>,
}

/// How an existing env file is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    Refuse,
    Force,
    Merge,
}

/// What was written.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub env_path: PathBuf,
    pub db_path: String,
    pub data_dir: PathBuf,
}

/// `init`.
pub(crate) fn run(
    process: &BTreeMap<String, String>,
    args: InitArgs,
    shell: &dyn Shell,
) -> CmdResult {
    let existing = match (args.force, args.merge) {
        (true, _) => Existing::Force,
        (_, true) => Existing::Merge,
        _ => Existing::Refuse,
    };
    if args.non_interactive {
        let values = non_interactive_values(process, &args)?;
        check_existing(&values.env_path, existing)?;
        let written = write(&values, existing)?;
        log::info(
            process,
            "cli.init.non_interactive",
            "init complete",
            json!({
                "envPath": written.env_path.display().to_string(),
                "dbPath": written.db_path,
                "dataDir": written.data_dir.display().to_string(),
            }),
        );
        print_created(&written);
        Ok(ExitCode::SUCCESS)
    } else {
        interactive::run(process, &args, existing, shell)
    }
}

/// The values of `init --non-interactive`: flag, then variable, then default.
fn non_interactive_values(
    process: &BTreeMap<String, String>,
    args: &InitArgs,
) -> Result<InitValues, CliError> {
    let var = |name: &str| {
        process
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let paths = Paths::from_env(process);
    let env_path = match (&args.env, var("AGENT_CLI_PROXY_ENV")) {
        (Some(p), _) => p.clone(),
        (None, Some(v)) => PathBuf::from(v),
        (None, None) => PathBuf::from(&paths.env_file),
    };
    let data_dir = match &args.data_dir {
        Some(p) => p.clone(),
        None => PathBuf::from(&paths.data_dir),
    };
    let host = match &args.host {
        Some(h) => h.trim().to_owned(),
        None => var("PROXY_HOST").unwrap_or("127.0.0.1").to_owned(),
    };
    if host.is_empty() {
        return Err(CliError::Runtime("--host must not be empty".to_owned()));
    }
    let port = match args.port {
        Some(p) => p.to_string(),
        None => {
            let text = var("PROXY_PORT").unwrap_or("3100");
            validate_port(text).map_err(|m| CliError::Runtime(format!("PROXY_PORT {m}")))?
        }
    };
    let direct = args.direct.then(|| direct_urls(args));
    let api_url = match (&args.cliproxy_api_url, var("CLI_PROXY_API_URL")) {
        _ if direct.is_some() => String::new(),
        (Some(u), _) if !u.trim().is_empty() => u.trim().to_owned(),
        (_, Some(u)) => u.to_owned(),
        _ if process.get("PROXY_LOCAL_OK").map(String::as_str) == Some("1") => {
            "http://localhost:8317".to_owned()
        }
        _ => {
            return Err(CliError::Runtime(
                "CLI_PROXY_API_URL is required for init --non-interactive unless PROXY_LOCAL_OK=1"
                    .to_owned(),
            ));
        }
    };
    let api_key = match &args.cliproxy_api_key_env {
        Some(name) => from_named_env(process, "--cliproxy-api-key-env", name)?,
        None => var("CLI_PROXY_API_KEY").unwrap_or("proxy").to_owned(),
    };
    let admin_key = match (&args.admin_token, &args.admin_token_env) {
        (Some(v), _) => v.trim().to_owned(),
        (None, Some(name)) => from_named_env(process, "--admin-token-env", name)?,
        (None, None) => var("ADMIN_API_KEY").unwrap_or_default().to_owned(),
    };
    let mgmt_key = match &args.cliproxy_mgmt_key_env {
        Some(name) => from_named_env(process, "--cliproxy-mgmt-key-env", name)?,
        None => var("CLIPROXY_MGMT_KEY").unwrap_or_default().to_owned(),
    };
    let auth_dir = match &args.cliproxy_auth_dir {
        Some(d) => d.trim().to_owned(),
        None => var("CLIPROXY_AUTH_DIR").unwrap_or_default().to_owned(),
    };
    let dashboard_hash = var("DASHBOARD_PASSWORD_HASH")
        .unwrap_or_default()
        .to_owned();
    Ok(InitValues {
        env_path,
        data_dir,
        host,
        port,
        api_url,
        api_key,
        admin_key,
        mgmt_key,
        auth_dir,
        dashboard_hash,
        direct,
    })
}

/// The vendors' URLs of direct mode: the flags, else the vendors' public APIs.
pub(crate) fn direct_urls(args: &InitArgs) -> (String, String) {
    use agent_cli_proxy_core::provider::direct::{ANTHROPIC_URL, OPENAI_URL};
    let pick = |flag: &Option<String>, default: &str| {
        flag.as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    };
    (
        pick(&args.anthropic_url, ANTHROPIC_URL),
        pick(&args.openai_url, OPENAI_URL),
    )
}

/// `PROXY_PORT`'s rule: an integer from 1 to 65535.
pub(crate) fn validate_port(text: &str) -> Result<String, &'static str> {
    match text.trim().parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p.to_string()),
        _ => Err("must be an integer from 1 to 65535"),
    }
}

fn from_named_env(
    process: &BTreeMap<String, String>,
    flag: &str,
    name: &str,
) -> Result<String, CliError> {
    match process.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(CliError::Runtime(format!(
            "{flag} references missing environment variable {name}"
        ))),
    }
}

/// Refuses an existing env file unless `--force` or `--merge`.
pub(crate) fn check_existing(env_path: &Path, existing: Existing) -> Result<(), CliError> {
    if existing == Existing::Refuse && env_path.exists() {
        return Err(CliError::Runtime(format!(
            "{} already exists; use --force to overwrite, or --merge to preserve existing values",
            env_path.display()
        )));
    }
    Ok(())
}

/// Writes the env file, creates the directories and initialises the database at the written
/// `DB_PATH`.
pub(crate) fn write(values: &InitValues, existing: Existing) -> Result<Written, CliError> {
    let env_path = env::absolute(&values.env_path)?;
    let data_dir = env::absolute(&values.data_dir)?;
    let mut entries = entries(values, &data_dir);
    if let Some((anthropic, openai)) = &values.direct {
        let providers_path = env_path.with_file_name("providers.json");
        write_direct_providers(&providers_path, anthropic, openai, existing)?;
        entries.push((
            "PROVIDERS_CONFIG_PATH".to_owned(),
            providers_path.display().to_string(),
        ));
    }
    if existing == Existing::Merge && env_path.exists() {
        let old = std::fs::read_to_string(&env_path).map_err(|e| {
            CliError::Runtime(format!("could not read {}: {e}", env_path.display()))
        })?;
        entries = envfile::merge(&entries, &parse_env_file(&old));
    }
    fsutil::write_private_atomic(&env_path, envfile::render(&entries).as_bytes())?;
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| CliError::Runtime(format!("could not create {}: {e}", data_dir.display())))?;
    let db_path = entries
        .iter()
        .find(|(k, _)| k == "DB_PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    db::init_at(&db_path)?;
    Ok(Written {
        env_path,
        db_path,
        data_dir,
    })
}

/// Writes the direct-mode providers document (`provider::direct`).
fn write_direct_providers(
    path: &Path,
    anthropic: &str,
    openai: &str,
    existing: Existing,
) -> Result<(), CliError> {
    if path.exists() {
        match existing {
            Existing::Refuse => {
                return Err(CliError::Runtime(format!(
                    "{} already exists; use --force to overwrite, or --merge to keep it",
                    path.display()
                )));
            }
            Existing::Merge => return Ok(()),
            Existing::Force => {}
        }
    }
    let doc = agent_cli_proxy_core::provider::direct::direct_document(anthropic, openai);
    let mut text = env::pretty(&doc);
    text.push('\n');
    fsutil::write_private_atomic(path, text.as_bytes())?;
    Ok(())
}

pub(crate) fn print_created(w: &Written) {
    crate::out_line!("\nCreated:");
    crate::out_line!("  env: {}", w.env_path.display());
    crate::out_line!("  db:  {}", w.db_path);
    crate::out_line!("  data: {}", w.data_dir.display());
}

fn entries(v: &InitValues, data_dir: &Path) -> Vec<(String, String)> {
    let in_data = |name: &str| data_dir.join(name).display().to_string();
    let values: [String; 14] = [
        v.host.clone(),
        v.port.clone(),
        v.admin_key.clone(),
        v.api_url.clone(),
        v.api_key.clone(),
        in_data("proxy.db"),
        in_data("pricing-cache.json"),
        "3600000".to_owned(),
        String::new(),
        v.mgmt_key.clone(),
        "15000".to_owned(),
        "300000".to_owned(),
        v.auth_dir.clone(),
        "15000".to_owned(),
    ];
    let mut entries: Vec<(String, String)> = envfile::KEY_ORDER
        .iter()
        .zip(values)
        .map(|(k, v)| ((*k).to_owned(), v))
        .collect();
    // Only written when chosen, so an env file without a dashboard password stays as before.
    if !v.dashboard_hash.is_empty() {
        entries.push((
            "DASHBOARD_PASSWORD_HASH".to_owned(),
            v.dashboard_hash.clone(),
        ));
    }
    entries
}
