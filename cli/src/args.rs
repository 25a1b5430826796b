//! The command line grammar (`control.md` §11.2), as clap derive types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `agent-cli-proxy [COMMAND]`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "AI API proxy with exact usage and cost accounting",
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per process; boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the proxy daemon.
    Serve(EnvOnly),
    /// Write the env file and initialise the database (interactive unless --non-interactive).
    Init(InitArgs),
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Print the default paths as JSON.
    Paths,
    /// Check the configuration, database, providers, pricing cache and upstream.
    Doctor(DoctorArgs),
    /// Install and control the user service.
    Service {
        #[command(subcommand)]
        command: Option<ServiceCommand>,
    },
    /// Show or create the provider configuration.
    Providers {
        #[command(subcommand)]
        command: Option<ProvidersCommand>,
    },
    /// Usage reports from the database (daily, weekly, monthly, session).
    Usage(UsageArgs),
    /// The local dashboard served at /dashboard/.
    Dashboard {
        #[command(subcommand)]
        command: DashboardCommand,
    },
    /// Re-cost finalized rows whose cost is still unknown, once.
    BackfillCosts(BackfillArgs),
}

/// Commands that only take `--env`.
#[derive(Debug, Args)]
pub(crate) struct EnvOnly {
    /// Env file to load (default: $XDG_CONFIG_HOME/agent-cli-proxy/.env when it exists).
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Env file to write (default: AGENT_CLI_PROXY_ENV, else the default env file).
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
    /// Data directory for the database and pricing cache.
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Take every value from flags and the environment; never prompt.
    #[arg(long)]
    pub non_interactive: bool,
    /// PROXY_HOST.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// PROXY_PORT.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// CLI_PROXY_API_URL.
    #[arg(long, value_name = "URL", conflicts_with = "direct")]
    pub cliproxy_api_url: Option<String>,
    /// No router: send calls straight to Anthropic and OpenAI, each tool with its own key
    /// (writes a providers file next to the env file).
    #[arg(long)]
    pub direct: bool,
    /// Anthropic's base URL in direct mode.
    #[arg(long, value_name = "URL", requires = "direct")]
    pub anthropic_url: Option<String>,
    /// OpenAI's base URL in direct mode.
    #[arg(long, value_name = "URL", requires = "direct")]
    pub openai_url: Option<String>,
    /// Name of the environment variable holding CLI_PROXY_API_KEY.
    #[arg(long, value_name = "NAME")]
    pub cliproxy_api_key_env: Option<String>,
    /// ADMIN_API_KEY given directly (prefer --admin-token-env).
    #[arg(long, value_name = "VALUE", conflicts_with = "admin_token_env")]
    pub admin_token: Option<String>,
    /// Name of the environment variable holding ADMIN_API_KEY.
    #[arg(long, value_name = "NAME")]
    pub admin_token_env: Option<String>,
    /// Name of the environment variable holding CLIPROXY_MGMT_KEY.
    #[arg(long, value_name = "NAME")]
    pub cliproxy_mgmt_key_env: Option<String>,
    /// CLIPROXY_AUTH_DIR (enables quota checks).
    #[arg(long, value_name = "PATH")]
    pub cliproxy_auth_dir: Option<String>,
    /// Accepted for compatibility and ignored.
    #[arg(long, value_name = "PATH", hide = true)]
    pub runtime_dir: Option<String>,
    /// Replace an existing env file.
    #[arg(long, conflicts_with = "merge")]
    pub force: bool,
    /// Keep the values of an existing env file and add the missing keys.
    #[arg(long)]
    pub merge: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DashboardCommand {
    /// Read a password (without echo on a terminal, else one line of stdin) and print its
    /// Argon2id hash for DASHBOARD_PASSWORD_HASH.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Create, open, upgrade and check the database.
    Init(EnvOnly),
    /// Write a consistent copy of the database.
    Backup(BackupArgs),
    /// Copy a SQLite database into an empty PostgreSQL database and verify it.
    Copy(CopyArgs),
    /// Inspect the spool (segments, bytes, records not yet in the database).
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SpoolCommand {
    /// Segments, bytes, the last record written and the last applied (read-only).
    Status(SpoolStatusArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SpoolStatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Where to write the backup (must not exist).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The PostgreSQL database to fill, postgres://… (default: DATABASE_URL). A password
    /// here shows in the process list: prefer DATABASE_URL in the env file.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// The SQLite database to copy (default: DB_PATH).
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Write the systemd user unit (Linux) or launchd agent (macOS).
    Install(ServiceInstallArgs),
    /// systemctl --user start agent-cli-proxy.
    Start,
    /// systemctl --user stop agent-cli-proxy.
    Stop,
    /// systemctl --user restart agent-cli-proxy.
    Restart,
    /// systemctl --user status agent-cli-proxy.
    Status,
    /// Show the service logs.
    Logs {
        /// Keep printing new lines.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ServiceInstallArgs {
    /// Env file the service loads.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
    /// Where to write the unit (default: the systemd user unit path).
    #[arg(long, value_name = "PATH")]
    pub service_path: Option<PathBuf>,
    /// The binary the service runs (default: this executable).
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProvidersCommand {
    /// The merged provider list (secrets redacted).
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Where the custom providers come from.
    Path,
    /// Write a starter providers file.
    Init {
        /// File to write (default: PROVIDERS_CONFIG_PATH, else the default providers file).
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// The period of a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Report {
    /// One line per day and key.
    #[default]
    Daily,
    /// ISO weeks (Monday first), `YYYY-Www`.
    Weekly,
    /// `YYYY-MM`.
    Monthly,
    /// One line per session.
    Session,
}

/// The group key inside a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum GroupBy {
    /// The tool.
    #[default]
    Tool,
    /// `client_id`.
    Client,
    /// The requested model.
    Model,
    /// The provider.
    Provider,
}

#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// daily (default), weekly, monthly or session.
    #[arg(value_enum)]
    pub report: Option<Report>,
    /// Group key inside each period.
    #[arg(long, value_enum, default_value_t = GroupBy::Tool)]
    pub by: GroupBy,
    /// First day included (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<jiff::civil::Date>,
    /// Last day included (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<jiff::civil::Date>,
    /// Periods in the local time zone instead of UTC.
    #[arg(long)]
    pub local: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BackfillArgs {
    /// Env file to load.
    #[arg(long, value_name = "PATH")]
    pub env: Option<PathBuf>,
    /// Every finalized row, not only those of the lookback window.
    #[arg(long)]
    pub all: bool,
    /// Scan at most N rows (a non-positive value is ignored).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub limit: Option<i64>,
}

/// `YYYY-MM-DD`, a real date.
fn parse_date(text: &str) -> Result<jiff::civil::Date, String> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape {
        return Err("expected YYYY-MM-DD".to_owned());
    }
    text.parse::<jiff::civil::Date>()
        .map_err(|_| "expected a real date as YYYY-MM-DD".to_owned())
}
