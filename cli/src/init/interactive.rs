//! Interactive `init` (`control.md` §11.3). Flags given on the command line become the
//! prompts' defaults.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use agent_cli_proxy_core::config::Paths;

use super::prompt::Prompter;
use super::{Existing, InitValues, check_existing, print_created, validate_port, write};
use crate::args::{InitArgs, ServiceInstallArgs};
use crate::{CliError, CmdResult, Shell, service};

/// Runs the prompts on stdin/stdout, writes the files, then offers the service install.
pub(crate) fn run(
    process: &BTreeMap<String, String>,
    args: &InitArgs,
    existing: Existing,
    shell: &dyn Shell,
) -> CmdResult {
    let mut p = Prompter::stdio();
    let values = collect(&mut p, process, args, existing)?;
    let written = write(&values, existing)?;
    print_created(&written);
    let default_install = cfg!(any(target_os = "linux", target_os = "macos"));
    if p.confirm("Install user daemon now?", default_install)? {
        let install = ServiceInstallArgs {
            env: Some(written.env_path.clone()),
            service_path: None,
            bin: None,
        };
        return service::install(process, install, shell);
    }
    Ok(ExitCode::SUCCESS)
}

fn collect<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
    process: &BTreeMap<String, String>,
    args: &InitArgs,
    existing: Existing,
) -> Result<InitValues, CliError> {
    let paths = Paths::from_env(process);
    let shown = |p: &Option<PathBuf>, default: &str| {
        p.as_ref()
            .map_or_else(|| default.to_owned(), |p| p.display().to_string())
    };
    let env_path = PathBuf::from(p.ask("Config .env path", &shown(&args.env, &paths.env_file))?);
    check_existing(&env_path, existing)?;
    let data_dir = PathBuf::from(p.ask("Data directory", &shown(&args.data_dir, &paths.data_dir))?);
    let host = p.ask("Proxy host", args.host.as_deref().unwrap_or("127.0.0.1"))?;
    let port_default = args
        .port
        .map_or_else(|| "3100".to_owned(), |p| p.to_string());
    let port = validate_port(&p.ask("Proxy port", &port_default)?)
        .map_err(|m| CliError::Runtime(format!("Proxy port {m}")))?;
    let route = loop {
        let answer = p.ask(
            "Send calls to a CLIProxyAPI router, or directly to Anthropic/OpenAI with each tool's own key? (router/direct)",
            if args.direct { "direct" } else { "router" },
        )?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "router" | "r" => break None,
            "direct" | "d" => break Some(super::direct_urls(args)),
            _ => crate::out_line!("Please answer router or direct."),
        }
    };
    let (api_url, api_key) = if route.is_some() {
        (String::new(), "proxy".to_owned())
    } else {
        let api_url = p.ask(
            "CLIProxyAPI URL",
            args.cliproxy_api_url
                .as_deref()
                .unwrap_or("http://localhost:8317"),
        )?;
        (api_url, p.secret("CLIProxyAPI proxy key", "proxy")?)
    };
    let admin_key = if is_loopback(&host) {
        if p.confirm("Generate ADMIN_API_KEY for admin API?", false)? {
            random_hex_key()?
        } else {
            String::new()
        }
    } else {
        crate::out_line!("Generated ADMIN_API_KEY (PROXY_HOST is not loopback).");
        random_hex_key()?
    };
    let dashboard_hash = if p.confirm("Protect the dashboard with a password?", false)? {
        crate::dashboard::ask_password(p)?
    } else {
        String::new()
    };
    // Correlation and quota checks read CLIProxyAPI's data: only asked with a router.
    let mgmt_key =
        if route.is_none() && p.confirm("Enable CLIProxyAPI account correlation?", false)? {
            p.secret("CLIProxyAPI management key", "")?
        } else {
            String::new()
        };
    let auth_dir = if route.is_none()
        && p.confirm(
            "Enable subscription quota checks from local CLIProxyAPI auth files?",
            false,
        )? {
        let default = match &paths.home {
            Some(h) => format!("{}/.cli-proxy-api", h.trim_end_matches('/')),
            None => "~/.cli-proxy-api".to_owned(),
        };
        p.ask("CLIProxyAPI auth directory", &default)?
    } else {
        String::new()
    };
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
        direct: route,
    })
}

fn is_loopback(host: &str) -> bool {
    matches!(
        host.trim().to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1" | "[::1]"
    )
}

/// 32 random bytes from the OS as 64 hex characters.
fn random_hex_key() -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::Runtime(format!("could not read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
