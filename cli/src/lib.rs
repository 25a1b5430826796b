//! The command line of agent-cli-proxy (`control.md` §11): every command but the server loop
//! itself. Both binaries call [`main_with`] with their [`Shell`] (a [`RuntimeShell`]), which
//! supplies `serve` and the runtime for the HTTP probe of `doctor`; nothing here depends on
//! an async runtime.
//!
//! Exit codes (§11.1): 0 success, 1 runtime failure (one line on stderr naming the variable or
//! file at fault), 2 usage error (one line naming the offending word and a `--help` hint).
//!
//! Choices where the spec is silent:
//! * `--version` and the usage lines use [`Shell::binary_name`], so the smol build prints
//!   `agent-cli-proxy-smol <version>`.
//! * `db init`, `db backup`, `db copy` and `usage` need only `DB_PATH` (or a PostgreSQL
//!   `DATABASE_URL`): when the rest of the configuration is invalid they still run, taking
//!   it (or its default) from the loaded environment. `serve`, `doctor` and `backfill-costs`
//!   need a valid configuration.
//! * `init` reads the process environment only (the env file is its output, not an input).
//! * `paths` shows the defaults computed from the process environment.
//! * `serve` only loads the environment (a missing `--env` file is its failure here); the
//!   shell validates it and logs `config.error` / `config.warning` as startup steps 1–2.
//! * Configuration warnings are printed on stderr as `warning: <path> <message>`.
//! * Info events the spec names for CLI commands (`cli.init.non_interactive`, `db.backup`,
//!   `db.copy`)
//!   are JSON log lines on stdout, like the daemon's (`control.md` §10.1), honouring
//!   `LOG_LEVEL` and `LOG_FORMAT`.
//!
//! Testing scheme: `cli/tests/cli.rs` is a `harness = false` test whose `main` re-executes
//! its own binary as the CLI (with a test [`Shell`]) in temporary HOME/XDG directories, so
//! every case runs the real command path as a subprocess.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Like `println!`, but a closed stdout (`usage | head`) is ignored instead of panicking.
macro_rules! out_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like `print!`, ignoring a closed stdout.
macro_rules! out_text {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = write!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// Like `eprintln!`, ignoring a closed stderr.
macro_rules! err_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Like `eprint!`, ignoring a closed stderr.
macro_rules! err_text {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {err_line, err_text, out_line, out_text};

mod args;
mod backfill;
pub mod daemon;
mod dashboard;
mod db;
mod doctor;
mod env;
mod envfile;
mod fsutil;
mod init;
mod log;
mod pg;
pub mod pool;
mod providers;
pub mod scratch;
mod service;
mod spool;
pub mod tls;
pub mod upstream;
mod usage;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command, DashboardCommand, DbCommand};

/// What a runtime shell provides to the CLI.
pub trait Shell {
    /// Runs the daemon with the loaded environment map until shutdown; returns the exit code.
    fn serve(&self, env: BTreeMap<String, String>) -> ExitCode;
    /// `HEAD`/`GET` probe of a URL with a timeout, for `doctor` (status code or error text).
    fn probe(&self, method: &str, url: &str, timeout: Duration) -> Result<u16, String>;
    /// The binary's name for messages and the service unit (`agent-cli-proxy` or `-smol`).
    fn binary_name(&self) -> &'static str;
    /// The runtime behind `serve` (`tokio`, `smol`), printed by `--version`.
    fn build_name(&self) -> &'static str {
        "test"
    }
    /// `GET` of a URL with a timeout, returning the body of a 2xx answer (any other status
    /// is an error text). `backfill-costs` uses it for its forced pricing refresh; the
    /// default says the shell has no such client, and the backfill then prices from the
    /// cache file.
    fn fetch(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let _ = (url, timeout);
        Err("this build cannot fetch URLs from the command line".to_owned())
    }
}

/// A shell that cannot serve or probe: for tests of commands that never do either.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoShell;

impl Shell for NoShell {
    fn serve(&self, _env: BTreeMap<String, String>) -> ExitCode {
        crate::err_line!("error: serve is not available in this build");
        ExitCode::from(1)
    }

    fn probe(&self, _method: &str, _url: &str, _timeout: Duration) -> Result<u16, String> {
        Err("no HTTP client in this build".to_owned())
    }

    fn binary_name(&self) -> &'static str {
        "agent-cli-proxy"
    }
}

/// A runtime shell as the CLI sees it: its daemon and names, and the shared upstream client
/// over its runtime (`net`) for `doctor`'s probe and `backfill-costs`' fetch, so both builds
/// make those calls alike.
pub struct RuntimeShell<I> {
    /// Runs the daemon with the loaded environment map and the listener limits.
    pub serve: fn(BTreeMap<String, String>, agent_cli_proxy_core::limits::Limits) -> ExitCode,
    /// Listener limits for `serve` (the defaults of `datapath.md` §1 in production).
    pub limits: agent_cli_proxy_core::limits::Limits,
    /// [`Shell::binary_name`].
    pub binary_name: &'static str,
    /// [`Shell::build_name`].
    pub build_name: &'static str,
    /// The runtime's sockets, timer and blocking pool.
    pub net: I,
}

impl<I: upstream::control::ControlRuntime + Clone> RuntimeShell<I> {
    /// A shell from its daemon, limits, `(binary, build)` names and runtime IO.
    pub fn new(
        serve: fn(BTreeMap<String, String>, agent_cli_proxy_core::limits::Limits) -> ExitCode,
        limits: agent_cli_proxy_core::limits::Limits,
        (binary_name, build_name): (&'static str, &'static str),
        net: I,
    ) -> Self {
        RuntimeShell {
            serve,
            limits,
            binary_name,
            build_name,
            net,
        }
    }

    /// The shared CLI with this shell: parses `args`, runs the command, returns the exit
    /// code.
    pub fn run(&self, args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
        main_with(args, self)
    }
}

impl<I: upstream::control::ControlRuntime + Clone> Shell for RuntimeShell<I> {
    fn serve(&self, env: BTreeMap<String, String>) -> ExitCode {
        (self.serve)(env, self.limits.clone())
    }

    fn probe(&self, method: &str, url: &str, timeout: Duration) -> Result<u16, String> {
        upstream::control::probe_once(self.net.clone(), method, url, timeout)
    }

    fn binary_name(&self) -> &'static str {
        self.binary_name
    }

    fn build_name(&self) -> &'static str {
        self.build_name
    }

    fn fetch(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        upstream::control::fetch_once(self.net.clone(), url, timeout)
    }
}

/// Parses `args` (the first item is the program name) and runs the command.
pub fn main_with<I, T>(args: I, shell: &dyn Shell) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let name = shell.binary_name();
    let command = Cli::command()
        .name(name)
        .bin_name(name)
        .version(version_line(shell.build_name()));
    let matches = match command.clone().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return clap_failure(&e, &args, name),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_failure(&e, &args, name),
    };
    let Some(cmd) = cli.command else {
        let mut command = command;
        let help = command.render_help();
        crate::out_line!("{help}");
        return ExitCode::SUCCESS;
    };
    match run(cmd, shell) {
        Ok(code) => code,
        Err(err) => {
            let _ = std::io::stdout().flush();
            match &err {
                CliError::Usage(message) => {
                    crate::err_line!("error: {message}");
                    ExitCode::from(2)
                }
                CliError::Runtime(message) => {
                    crate::err_line!("error: {message}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// A command's failure: the exit code follows the kind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A bad command line (exit 2); the text already includes any usage line.
    #[error("{0}")]
    Usage(String),
    /// A runtime failure (exit 1): one line naming the variable or file at fault.
    #[error("{0}")]
    Runtime(String),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Runtime(one_line(&format!("{e:#}")))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Runtime(one_line(&e.to_string()))
    }
}

pub(crate) type CmdResult = Result<ExitCode, CliError>;

fn run(cmd: Command, shell: &dyn Shell) -> CmdResult {
    let process = env::process_env();
    match cmd {
        Command::Serve(a) => {
            // Validation, warnings and their log events are startup steps 1–2 of the daemon
            // (`control.md` §1), so the shell does them on the map it is given.
            let loaded = env::load(&process, a.env.as_deref())?;
            Ok(shell.serve(loaded.vars))
        }
        Command::Init(a) => init::run(&process, a, shell),
        Command::Db { command } => match command {
            DbCommand::Init(a) => db::init(&process, a.env.as_deref()),
            DbCommand::Backup(a) => db::backup(&process, a),
            DbCommand::Copy(a) => db::copy(&process, a),
            DbCommand::Spool {
                command: args::SpoolCommand::Status(a),
            } => spool::status(&process, a),
        },
        Command::Paths => env::paths(&process),
        Command::Doctor(a) => doctor::run(&process, a, shell),
        Command::Service { command } => match command {
            Some(c) => service::run(&process, c, shell),
            None => Err(CliError::Usage(format!(
                "missing subcommand for 'service'\n{}",
                service_usage(shell.binary_name())
            ))),
        },
        Command::Providers { command } => match command {
            Some(c) => providers::run(&process, c),
            None => Err(CliError::Usage(format!(
                "missing subcommand for 'providers'\n{}",
                providers_usage(shell.binary_name())
            ))),
        },
        Command::Dashboard { command } => match command {
            DashboardCommand::HashPassword => dashboard::hash_password(),
        },
        Command::Usage(a) => usage::run(&process, a),
        Command::BackfillCosts(a) => backfill::run(&process, a, shell),
    }
}

fn service_usage(bin: &str) -> String {
    format!("Usage: {bin} service <install|start|stop|restart|status|logs [--follow]>")
}

fn providers_usage(bin: &str) -> String {
    format!("Usage: {bin} providers <show|path|init>")
}

/// `--version`'s text after the binary name: version, git commit and runtime build.
pub fn version_line(build: &str) -> &'static str {
    // clap keeps the version for the whole process; built once per run.
    format!(
        "{} (commit {}, {build} build)",
        env!("CARGO_PKG_VERSION"),
        env!("ACP_GIT_COMMIT")
    )
    .leak()
}

/// Help and version go to stdout (exit 0); anything else is a usage error in one line plus a
/// hint (exit 2).
fn clap_failure(e: &clap::Error, args: &[OsString], bin: &str) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            crate::out_text!("{}", e.render());
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            if let Some(extra) = group_usage(args, bin) {
                crate::err_line!("error: missing subcommand; run '{bin} --help' for usage");
                crate::err_line!("{extra}");
                return ExitCode::from(2);
            }
            crate::err_text!("{}", e.render());
            return ExitCode::from(2);
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let hint = help_hint(args, bin);
    crate::err_line!("error: {first}; run '{hint} --help' for usage");
    if e.kind() == ErrorKind::InvalidSubcommand
        && let Some(extra) = group_usage(args, bin)
    {
        crate::err_line!("{extra}");
    }
    ExitCode::from(2)
}

/// The extra usage line of `service` and `providers` when their subcommand is wrong.
fn group_usage(args: &[OsString], bin: &str) -> Option<String> {
    match first_word(args).as_deref() {
        Some("service") => Some(service_usage(bin)),
        Some("providers") => Some(providers_usage(bin)),
        _ => None,
    }
}

fn help_hint(args: &[OsString], bin: &str) -> String {
    match first_word(args) {
        Some(w) if Cli::command().find_subcommand(&w).is_some() => format!("{bin} {w}"),
        _ => bin.to_owned(),
    }
}

fn first_word(args: &[OsString]) -> Option<String> {
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .map(str::to_owned)
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
