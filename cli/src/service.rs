//! `service install|start|stop|restart|status|logs` (`control.md` §11.2, §11.6).
//!
//! Choices where the spec is silent:
//! * `--env` given for `service install` must exist (the §5.1 rule); the default env file
//!   need not, and a missing one is reported as a warning, since `serve` would run on the
//!   process environment alone.
//! * The names in the control-character refusal are the flags (`--bin`, `--env`,
//!   `--service-path`) and `data dir`.
//! * The unit and the agent keep the `agent-cli-proxy` names for both binaries; the smol
//!   build differs only in `ExecStart`.
//! * Tools are looked up on the `PATH` of the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use agent_cli_proxy_core::config::Paths;

use crate::args::{ServiceCommand, ServiceInstallArgs};
use crate::{CliError, CmdResult, Shell, env};

/// The service name systemd knows.
const UNIT: &str = "agent-cli-proxy";

/// Runs one `service` subcommand.
pub(crate) fn run(
    process: &BTreeMap<String, String>,
    cmd: ServiceCommand,
    shell: &dyn Shell,
) -> CmdResult {
    match cmd {
        ServiceCommand::Install(a) => install(process, a, shell),
        ServiceCommand::Start => control(process, "start"),
        ServiceCommand::Stop => control(process, "stop"),
        ServiceCommand::Restart => control(process, "restart"),
        ServiceCommand::Status => control(process, "status"),
        ServiceCommand::Logs { follow } => logs(process, follow),
    }
}

/// `service install`.
pub(crate) fn install(
    process: &BTreeMap<String, String>,
    args: ServiceInstallArgs,
    shell: &dyn Shell,
) -> CmdResult {
    let loaded = env::load(process, args.env.as_deref())?;
    let paths = Paths::from_env(&loaded.vars);
    let bin = match args.bin {
        Some(b) => env::absolute(&b)?,
        None => std::env::current_exe().map_err(|e| {
            CliError::Runtime(format!(
                "could not find the path of {}: {e}; pass --bin",
                shell.binary_name()
            ))
        })?,
    };
    let env_path = env::absolute(Path::new(&loaded.env_path))?;
    let data_dir = env::absolute(Path::new(&paths.data_dir))?;
    for (name, value) in [
        ("--bin", &bin),
        ("--env", &env_path),
        ("data dir", &data_dir),
    ] {
        refuse_control_chars(name, &value.display().to_string())?;
    }
    if let Some(p) = &args.service_path {
        refuse_control_chars("--service-path", &p.display().to_string())?;
    }
    if args.env.is_none() && !env_path.exists() {
        crate::err_line!(
            "warning: {} does not exist; the service will run on its environment alone",
            env_path.display()
        );
    }
    let unit = Unit {
        bin: bin.display().to_string(),
        env_path: env_path.display().to_string(),
        data_dir: data_dir.display().to_string(),
    };
    match std::env::consts::OS {
        "linux" => {
            let path = args
                .service_path
                .unwrap_or_else(|| PathBuf::from(&paths.systemd_unit));
            write_file(&path, &unit.systemd())?;
            crate::out_line!("Installed systemd user service: {}", path.display());
            crate::out_line!(
                "Run: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
            );
        }
        "macos" => {
            let path = args
                .service_path
                .unwrap_or_else(|| PathBuf::from(&paths.launchd_agent));
            write_file(&path, &unit.launchd())?;
            crate::out_line!("Installed launchd agent: {}", path.display());
            crate::out_line!("Run: launchctl load {}", path.display());
        }
        other => {
            return Err(CliError::Runtime(format!(
                "Unsupported service platform: {other}"
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The paths a unit or agent needs.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub bin: String,
    pub env_path: String,
    pub data_dir: String,
}

impl Unit {
    /// The systemd user unit of §11.6.
    pub(crate) fn systemd(&self) -> String {
        format!(
            "[Unit]\n\
             Description=agent-cli-proxy - AI API Proxy with Usage Monitoring\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             WorkingDirectory={}\n\
             ExecStart={} serve --env {}\n\
             Restart=always\n\
             RestartSec=5\n\
             TimeoutStopSec=20\n\
             \n\
             [Install]\n\
             WantedBy=default.target\n",
            systemd_value(&self.data_dir),
            systemd_value(&self.bin),
            systemd_value(&self.env_path),
        )
    }

    /// The launchd agent of §11.6.
    pub(crate) fn launchd(&self) -> String {
        let s = |v: &str| format!("    <string>{}</string>\n", xml_escape(v));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n\
             <dict>\n\
             \x20 <key>Label</key>\n\
             \x20 <string>ai.agent-cli-proxy</string>\n\
             \x20 <key>WorkingDirectory</key>\n\
             \x20 <string>{}</string>\n\
             \x20 <key>ProgramArguments</key>\n\
             \x20 <array>\n\
             {}{}{}{}\
             \x20 </array>\n\
             \x20 <key>RunAtLoad</key>\n\
             \x20 <true/>\n\
             \x20 <key>KeepAlive</key>\n\
             \x20 <true/>\n\
             </dict>\n\
             </plist>\n",
            xml_escape(&self.data_dir),
            s(&self.bin),
            s("serve"),
            s("--env"),
            s(&self.env_path),
        )
    }
}

/// Bare when it matches `[A-Za-z0-9_/@%+=:,.-]+`, else double-quoted with `\` and `"`
/// escaped.
pub(crate) fn systemd_value(v: &str) -> String {
    let bare = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '/' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '-')
        });
    if bare {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn xml_escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn refuse_control_chars(name: &str, value: &str) -> Result<(), CliError> {
    if value.chars().any(char::is_control) {
        return Err(CliError::Runtime(format!(
            "{name} contains unsupported control characters"
        )));
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    let dir = crate::fsutil::parent_dir(path);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(path, text))
        .map_err(|e| CliError::Runtime(format!("could not write {}: {e}", path.display())))
}

/// `service start|stop|restart|status`.
fn control(process: &BTreeMap<String, String>, action: &str) -> CmdResult {
    if std::env::consts::OS != "linux" {
        crate::out_line!(
            "Service control is only automated for systemd user services. Use launchctl on macOS."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut args = vec!["--user", action, UNIT];
    if action == "status" {
        args.push("--no-pager");
    }
    run_tool(process, "systemctl", &args)
}

/// `service logs [--follow]`.
fn logs(process: &BTreeMap<String, String>, follow: bool) -> CmdResult {
    match std::env::consts::OS {
        "linux" => {
            let mut args = vec!["--user", "-u", "agent-cli-proxy.service"];
            if follow {
                args.push("-f");
            }
            run_tool(process, "journalctl", &args)
        }
        "macos" => {
            let verb = if follow { "stream" } else { "show" };
            run_tool(
                process,
                "log",
                &[
                    verb,
                    "--predicate",
                    "process == \"agent-cli-proxy\"",
                    "--style",
                    "compact",
                ],
            )
        }
        _ => Err(CliError::Runtime(
            "service logs not supported on this platform; check stderr/stdout".to_owned(),
        )),
    }
}

/// Runs a tool found on `PATH` with inherited stdio and returns its exit code.
fn run_tool(process: &BTreeMap<String, String>, tool: &str, args: &[&str]) -> CmdResult {
    let Some(path) = find_on_path(process, tool) else {
        return Err(CliError::Runtime(format!(
            "{tool} not found: service control needs systemd user services; run 'agent-cli-proxy serve' under your own supervisor"
        )));
    };
    let status = Command::new(&path)
        .args(args)
        .status()
        .map_err(|e| CliError::Runtime(format!("could not run {}: {e}", path.display())))?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn find_on_path(process: &BTreeMap<String, String>, tool: &str) -> Option<PathBuf> {
    let path = process.get("PATH")?;
    std::env::split_paths(path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quoting() {
        assert_eq!(systemd_value("/usr/bin/acp"), "/usr/bin/acp");
        assert_eq!(systemd_value("/a b/c"), "\"/a b/c\"");
        assert_eq!(systemd_value("/a\"b\\c"), "\"/a\\\"b\\\\c\"");
        assert_eq!(systemd_value(""), "\"\"");
    }

    #[test]
    fn unit_and_agent_content() {
        let u = Unit {
            bin: "/opt/acp/bin".into(),
            env_path: "/home/u/.config/agent-cli-proxy/.env".into(),
            data_dir: "/home/u/data & more".into(),
        };
        let unit = u.systemd();
        assert!(unit.contains("WorkingDirectory=\"/home/u/data & more\"\n"));
        assert!(
            unit.contains(
                "ExecStart=/opt/acp/bin serve --env /home/u/.config/agent-cli-proxy/.env\n"
            )
        );
        assert!(unit.contains("TimeoutStopSec=20\n"));
        let plist = u.launchd();
        assert!(plist.contains("<string>/home/u/data &amp; more</string>"));
        assert!(plist.contains("<string>ai.agent-cli-proxy</string>"));
        assert!(plist.contains("<key>KeepAlive</key>\n  <true/>"));
    }

    #[test]
    fn control_characters_are_refused() {
        let err = refuse_control_chars("--bin", "/a\nb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--bin contains unsupported control characters"
        );
        assert!(refuse_control_chars("--bin", "/a b").is_ok());
    }
}
