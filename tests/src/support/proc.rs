//! The proxy as a child process of the test binary itself.
//!
//! # How the re-exec works with libtest
//!
//! The tests package has no binary of its own, so [`ProxyProcess`] re-executes the current
//! test executable (`std::env::current_exe()`) as
//!
//! ```text
//! <test-exe> child_entry --exact --nocapture --test-threads=1 -q
//! ```
//!
//! with `ACP_TEST_CHILD=tokio|smol`, `ACP_TEST_ARGS` (the daemon's argv after the program
//! name, joined by U+001F, default `serve`) and `ACP_TEST_PARENT_PID`. libtest then runs
//! exactly one test, `child_entry`, which calls [`run_child_if_requested`]: it sees
//! `ACP_TEST_CHILD`, runs that shell's entry point and exits the process with its code, so
//! libtest never prints a summary. In a normal run `child_entry` returns at once.
//!
//! Every integration test file that starts processes therefore has
//!
//! ```ignore
//! agent_cli_proxy_tests::child_entry!();
//! ```
//!
//! at top level, and its cases call [`run_child_if_requested`] first (the
//! [`both_shells!`](crate::both_shells) macro does this for them), so that even a child
//! started with a different filter could not run a case.
//!
//! The child's stdout and stderr go to files in its temp dir (libtest adds a `running 1
//! test` line to stdout; log readers skip lines that are not JSON). A watchdog thread in
//! the child exits it when the test process that started it goes away, so no daemon
//! outlives a killed test run.
//!
//! # Concurrency
//!
//! At most 2 proxies run at once in one test process (`reliability.md` §4;
//! `ACP_MAX_PROXIES` overrides): [`ProxyProcess::start`] waits for a slot and holds it
//! until the value is dropped. A test must not start a second slot-holding process while
//! holding one if other tests may hold the rest; [`ProxyOptions::take_slot`] `= false`
//! exists for short-lived extra processes (a second daemon that must fail on a locked
//! database, a CLI command).

mod pricing;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use self::pricing::{PRICING_API_JSON, file_url, write_pricing_fixture};
use crate::support::client;
pub use crate::support::shells::Shell;

/// Environment variable naming the shell a re-executed test binary must run.
pub const CHILD_ENV: &str = "ACP_TEST_CHILD";
/// Environment variable carrying the child's argv (after the program name), U+001F-separated.
pub const ARGS_ENV: &str = "ACP_TEST_ARGS";
/// Environment variable carrying the pid of the test process that started the child.
pub const PARENT_ENV: &str = "ACP_TEST_PARENT_PID";
/// Separator of the arguments in [`ARGS_ENV`].
pub const ARGS_SEPARATOR: char = '\u{1f}';
/// How long [`ProxyProcess::start`] waits for `GET /health`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Defines the `child_entry` test every process-starting test file needs (see the module
/// docs). It is an entry point, not a check: in a normal run it returns at once.
#[macro_export]
macro_rules! child_entry {
    () => {
        /// Entry point of the proxy child process; returns at once in a normal test run.
        #[test]
        fn child_entry() {
            $crate::support::proc::run_child_if_requested();
        }
    };
}

/// When `ACP_TEST_CHILD` is set, runs the named shell with the argv of `ACP_TEST_ARGS` and
/// exits the process with its exit code; otherwise returns at once.
pub fn run_child_if_requested() {
    let Ok(value) = std::env::var(CHILD_ENV) else {
        return;
    };
    let Some(shell) = Shell::parse(&value) else {
        eprintln!("{CHILD_ENV}={value:?}: expected tokio or smol");
        exit_child(2);
    };
    watch_parent();
    let mut args: Vec<OsString> = vec![OsString::from(match shell {
        Shell::Tokio => "agent-cli-proxy",
        Shell::Smol => "agent-cli-proxy-smol",
    })];
    args.extend(child_args().into_iter().map(OsString::from));
    let code = run_shell(shell, args);
    exit_child(exit_code_number(code));
}

/// Runs a shell's daemon entry point with `args` (program name first).
fn run_shell(shell: Shell, args: Vec<OsString>) -> ExitCode {
    match shell {
        Shell::Tokio => {
            let overrides = std::env::var("ACP_TEST_LIMITS").unwrap_or_default();
            let limits = agent_cli_proxy::Limits::default().with_overrides(&overrides);
            agent_cli_proxy::main_with_limits(args, limits)
        }
        Shell::Smol => {
            let overrides = std::env::var("ACP_TEST_LIMITS").unwrap_or_default();
            let limits = agent_cli_proxy_smol::Limits::default().with_overrides(&overrides);
            agent_cli_proxy_smol::main_with_limits(args, limits)
        }
    }
}

/// The daemon argv (after the program name) requested by the parent; `serve` by default.
fn child_args() -> Vec<String> {
    match std::env::var(ARGS_ENV) {
        Ok(joined) if !joined.is_empty() => {
            joined.split(ARGS_SEPARATOR).map(str::to_owned).collect()
        }
        _ => vec!["serve".to_owned()],
    }
}

/// Maps an [`ExitCode`] to its number. `ExitCode` has no stable accessor, but every code a
/// shell returns comes from `ExitCode::from(u8)` (or `SUCCESS`/`FAILURE`, which equal 0 and
/// 1 on Unix), so comparing against the 256 possible values finds it.
pub fn exit_code_number(code: ExitCode) -> i32 {
    (0..=u8::MAX)
        .find(|n| ExitCode::from(*n) == code)
        .map_or(1, i32::from)
}

/// Exits the child process (a proxy child, or a child of another kind such as the soak
/// tier's load generator), so libtest prints no summary. Only a re-executed child gets here:
/// it plays the role of a binary's `main`, which the workspace ban on `process::exit` leaves
/// to `main`.
#[allow(clippy::disallowed_methods)]
pub fn exit_child(code: i32) -> ! {
    std::process::exit(code)
}

/// Exits the child when its parent test process is gone (the child was re-parented); every
/// kind of re-executed child starts it.
pub fn watch_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("acp-test-watchdog".into())
        .spawn(move || {
            loop {
                if std::os::unix::process::parent_id() != parent {
                    exit_child(137);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    if let Err(err) = spawned {
        eprintln!("parent watchdog not started: {err}");
    }
}

/// How to start a proxy child.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Which daemon.
    pub shell: Shell,
    /// Environment entries; they override the harness defaults of the same name.
    pub env: Vec<(String, String)>,
    /// Harness defaults to leave unset (e.g. `CLI_PROXY_API_URL` to test its absence).
    pub unset: Vec<String>,
    /// Daemon argv after the program name (default `["serve"]`).
    pub args: Vec<String>,
    /// Wait for `GET /health` (default true; set false for a process expected to fail).
    pub wait_health: bool,
    /// Hold one of the process-wide proxy slots (default true).
    pub take_slot: bool,
}

impl ProxyOptions {
    /// `serve` on `shell` with the harness defaults.
    pub fn new(shell: Shell) -> ProxyOptions {
        ProxyOptions {
            shell,
            env: Vec::new(),
            unset: Vec::new(),
            args: vec!["serve".to_owned()],
            wait_health: true,
            take_slot: true,
        }
    }

    /// Adds environment entries.
    pub fn env(mut self, env: &[(&str, &str)]) -> ProxyOptions {
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }
}

/// A proxy child process with its own temp dir (database, pricing cache, XDG dirs, HOME,
/// logs). Dropping it kills the process (SIGKILL) and removes the dir.
pub struct ProxyProcess {
    options: ProxyOptions,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    status: Option<ExitStatus>,
    healthy_after: Option<Duration>,
    _slot: Option<Slot>,
}

impl ProxyProcess {
    /// Starts `serve` on `shell` with `env` over the harness defaults and waits for
    /// `/health`; panics with the child's logs when it does not come up in 10 s.
    pub fn start(shell: Shell, env: &[(&str, &str)]) -> ProxyProcess {
        ProxyProcess::start_with(ProxyOptions::new(shell).env(env))
    }

    /// Starts with full options; panics with the child's logs on failure.
    pub fn start_with(options: ProxyOptions) -> ProxyProcess {
        match ProxyProcess::try_start(options) {
            Ok(process) => process,
            Err(err) => panic!("{err}"),
        }
    }

    /// Fallible form of [`ProxyProcess::start_with`]; the error carries the logs.
    pub fn try_start(options: ProxyOptions) -> io::Result<ProxyProcess> {
        let slot = options.take_slot.then(Slot::acquire);
        let dir = tempfile::Builder::new().prefix("acp-proxy-").tempdir()?;
        for sub in ["home", "config", "data", "state", "cache", "pricing"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        write_pricing_fixture(&dir.path().join("pricing"))?;
        let port = free_port()?;
        let mut process = ProxyProcess {
            options,
            dir,
            port,
            child: None,
            status: None,
            healthy_after: None,
            _slot: slot,
        };
        process.spawn_child()?;
        if process.options.wait_health {
            process.wait_healthy(HEALTH_TIMEOUT)?;
        }
        Ok(process)
    }

    /// Which shell runs.
    pub fn shell(&self) -> Shell {
        self.options.shell
    }

    /// `127.0.0.1:<PROXY_PORT>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<PROXY_PORT>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The temp dir holding everything of this proxy.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DB_PATH` (unless the test overrode it).
    pub fn db_path(&self) -> PathBuf {
        self.env_value("DB_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.path().join("data").join("proxy.db"))
    }

    /// Time from spawn to the first `200` of `/health` in the last start.
    pub fn healthy_after(&self) -> Option<Duration> {
        self.healthy_after
    }

    /// Opens the database read-only (5 s busy timeout) for assertions.
    pub fn open_db_readonly(&self) -> rusqlite::Connection {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let path = self.db_path();
        let conn = match rusqlite::Connection::open_with_flags(&path, flags) {
            Ok(conn) => conn,
            Err(err) => panic!("cannot open {} read-only: {err}", path.display()),
        };
        if let Err(err) = conn.busy_timeout(Duration::from_secs(5)) {
            panic!("cannot set busy timeout: {err}");
        }
        conn
    }

    /// Everything the child wrote: stdout, then stderr.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// The child's stdout so far (all starts appended), once it has settled: the logging
    /// thread writes in batches (it lets lines gather for up to 10 ms after the first one,
    /// `docs/control.md` §10.2), so a line logged just before an HTTP answer can reach the
    /// file shortly after the answer. Read again every 25 ms until two reads agree (at most
    /// 2 s).
    pub fn stdout(&self) -> String {
        let path = self.dir.path().join("stdout.log");
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_millis(25));
            let now = read();
            if now == last || Instant::now() >= deadline {
                return now;
            }
            last = now;
        }
    }

    /// The child's stderr so far (all starts appended).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Log lines that are JSON objects (the proxy's `LOG_FORMAT=json` events).
    pub fn log_events(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.status = child.wait().ok();
        }
    }

    /// Sends SIGTERM (the process keeps running until it finishes its shutdown).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`TERM`, `INT`, `HUP`, …) through `kill(1)`, which needs no
    /// unsafe code here.
    pub fn signal(&self, name: &str) {
        let Some(pid) = self.pid() else {
            return;
        };
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            eprintln!("kill -{name} {pid} failed");
        }
    }

    /// Waits up to 30 s for the process to exit and returns its code (128 + signal number
    /// when killed by a signal); on timeout it is killed and the test fails with the logs.
    pub fn wait_exit(&mut self) -> i32 {
        match self.wait_exit_timeout(Duration::from_secs(30)) {
            Some(code) => code,
            None => {
                self.kill9();
                panic!(
                    "{} proxy did not exit within 30 s; logs:\n{}",
                    self.shell(),
                    self.logs()
                );
            }
        }
    }

    /// Waits up to `timeout` for the exit; `None` if still running.
    pub fn wait_exit_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status_code(status));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit code if the process has exited.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.poll_exit().map(status_code)
    }

    /// Starts the process again on the same port, database and dir, and waits for
    /// `/health` (a still-running process is killed with SIGKILL first).
    pub fn restart(&mut self) {
        self.kill9();
        let restarted = self
            .spawn_child()
            .and_then(|()| self.wait_healthy(HEALTH_TIMEOUT));
        if let Err(err) = restarted {
            panic!("{err}");
        }
    }

    /// [`ProxyProcess::restart`] that returns the failure (with the logs) instead of
    /// panicking, for starts that are meant to fail.
    pub fn try_restart(&mut self) -> io::Result<()> {
        self.kill9();
        self.spawn_child()
            .and_then(|()| self.wait_healthy(HEALTH_TIMEOUT))
    }

    /// Waits until `GET /health` answers 200, the process exits, or `timeout` passes.
    pub fn wait_healthy(&mut self, timeout: Duration) -> io::Result<()> {
        let spawned = Instant::now();
        let deadline = spawned + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Err(self.failure(&format!("exited with {status} before /health")));
            }
            let health = client::request_blocking_timeout(
                self.addr(),
                "GET",
                "/health",
                &[],
                b"",
                Duration::from_millis(500),
            );
            if health.is_ok_and(|r| r.status == 200) {
                self.healthy_after = Some(spawned.elapsed());
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("no /health 200 within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn_child(&mut self) -> io::Result<()> {
        let exe = std::env::current_exe()?;
        let dir = self.dir.path();
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(dir.join("stdout.log"))?;
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))?;
        // `ACP_TEST_WRAPPER` (e.g. `heaptrack`) runs the daemon under a profiler; the pid
        // the harness samples is then the wrapper's.
        let mut command = match std::env::var_os("ACP_TEST_WRAPPER") {
            Some(wrapper) if !wrapper.is_empty() => {
                let mut c = Command::new(wrapper);
                c.arg(exe);
                c
            }
            _ => Command::new(exe),
        };
        command
            .args([
                "child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (key, value) in self.child_env() {
            command.env(key, value);
        }
        if std::env::var_os("ACP_TEST_WRAPPER").is_some_and(|w| !w.is_empty()) {
            // The wrapper is the daemon's parent, so the parent watchdog would fire at once.
            command.env_remove(PARENT_ENV);
        }
        self.child = Some(command.spawn()?);
        self.status = None;
        Ok(())
    }

    /// The harness defaults, then the test's entries, minus `unset`.
    fn child_env(&self) -> Vec<(String, String)> {
        let dir = self.dir.path();
        let path = |sub: &str| dir.join(sub).display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), path("home")),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_DATA_HOME".into(), path("data")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("XDG_CACHE_HOME".into(), path("cache")),
            ("AGENT_CLI_PROXY_DATA_DIR".into(), path("data")),
            ("PROXY_HOST".into(), "127.0.0.1".into()),
            ("PROXY_PORT".into(), self.port.to_string()),
            // Port 1 refuses connections; a test that needs an upstream sets its own URL.
            ("CLI_PROXY_API_URL".into(), "http://127.0.0.1:1".into()),
            (
                "DB_PATH".into(),
                dir.join("data").join("proxy.db").display().to_string(),
            ),
            (
                "PRICING_CACHE_PATH".into(),
                dir.join("data")
                    .join("pricing-cache.json")
                    .display()
                    .to_string(),
            ),
            (
                "PRICING_URL".into(),
                file_url(&dir.join("pricing").join("api.json")),
            ),
            // RQ-S6 runs the whole CI suite at debug level to catch secrets in logs.
            ("LOG_LEVEL".into(), "debug".into()),
            ("LOG_FORMAT".into(), "json".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
        ];
        for (key, value) in &self.options.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env.retain(|(k, _)| !self.options.unset.contains(k));
        env.push((CHILD_ENV.into(), self.options.shell.as_str().into()));
        env.push((
            ARGS_ENV.into(),
            self.options.args.join(&ARGS_SEPARATOR.to_string()),
        ));
        env.push((PARENT_ENV.into(), std::process::id().to_string()));
        env
    }

    fn env_value(&self, key: &str) -> Option<String> {
        self.options
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.status = Some(status);
            self.child = None;
        }
        if self.child.is_some() {
            return None;
        }
        self.status
    }

    fn failure(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "{} proxy on port {}: {what}; logs:\n{}",
            self.shell(),
            self.port,
            self.logs()
        ))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn status_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// A port that was free a moment ago. Another process may take it before the proxy binds;
/// the proxy then exits with `startup.port_in_use` and the error shows it.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One of the process-wide proxy slots.
struct Slot;

static SLOTS: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

impl Slot {
    fn acquire() -> Slot {
        let max = std::env::var("ACP_MAX_PROXIES")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(2);
        let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= max {
            used = SLOT_FREED.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(1);
        SLOT_FREED.notify_one();
    }
}
