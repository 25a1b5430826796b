//! The test shell, the case runner and the per-case sandbox.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::Duration;

use agent_cli_proxy_cli::Shell;

/// The runtime stand-in used by the child process.
pub struct TestShell;

impl Shell for TestShell {
    fn serve(&self, env: BTreeMap<String, String>) -> ExitCode {
        let shown: BTreeMap<&String, &String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("T_") || k.as_str() == "PROXY_PORT")
            .collect();
        println!("{}", serde_json::to_string(&shown).unwrap());
        ExitCode::SUCCESS
    }

    fn probe(&self, method: &str, url: &str, _timeout: Duration) -> Result<u16, String> {
        eprintln!("probe {method} {url}");
        let answer = std::env::var("ACP_TEST_PROBE").unwrap_or_else(|_| "200".to_owned());
        answer.parse::<u16>().map_err(|_| answer)
    }

    fn binary_name(&self) -> &'static str {
        "agent-cli-proxy"
    }
}

/// Runs the cases (optionally filtered by the first free argument) and prints libtest's
/// closing line.
pub fn run_cases(cases: &[(&str, fn())]) -> ExitCode {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, case) in &selected {
        let result = catch_unwind(AssertUnwindSafe(case));
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    if !failed.is_empty() {
        println!("\nfailures:");
        for f in &failed {
            println!("    {f}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        cases.len() - selected.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// A temporary HOME with `XDG_CONFIG_HOME` and `XDG_DATA_HOME` inside it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub vars: BTreeMap<String, String>,
}

/// A finished child.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output on failure.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code; output: {self:#?}");
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut vars = BTreeMap::new();
        vars.insert("HOME".to_owned(), s(&home));
        vars.insert("XDG_CONFIG_HOME".to_owned(), s(&home.join("config")));
        vars.insert("XDG_DATA_HOME".to_owned(), s(&home.join("data")));
        vars.insert(
            "PATH".to_owned(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned()),
        );
        vars.insert("TZ".to_owned(), "UTC".to_owned());
        Sandbox { dir, vars }
    }

    pub fn home(&self) -> PathBuf {
        PathBuf::from(&self.vars["HOME"])
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home().join("config/agent-cli-proxy")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home().join("data/agent-cli-proxy")
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Sandbox {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Sandbox {
        self.vars.remove(k);
        self
    }

    /// The CLI as a command in this sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(args)
            .env_clear()
            .envs(&self.vars)
            .env("ACP_CLI_CHILD", "1")
            .current_dir(self.dir.path());
        c
    }

    /// Runs the CLI with no stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        Run::from(out)
    }

    /// Runs the CLI with `input` on a piped (non-terminal) stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Writes the default env file.
    pub fn write_env_file(&self, text: &str) -> PathBuf {
        let path = self.config_dir().join(".env");
        std::fs::create_dir_all(self.config_dir()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Looks a program up on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One finalized row to insert.
#[derive(Debug, Clone)]
pub struct Row {
    pub started_at: &'static str,
    pub tool: &'static str,
    pub provider: &'static str,
    pub model: &'static str,
    pub lifecycle: &'static str,
    pub cost_status: &'static str,
    pub prompt: i64,
    pub completion: i64,
    pub cache_creation: i64,
    pub cache_read: i64,
    pub total: i64,
    pub cost_nanousd: i64,
    pub meta_json: Option<&'static str>,
}

impl Row {
    pub fn new(started_at: &'static str, tool: &'static str) -> Row {
        Row {
            started_at,
            tool,
            provider: "openai",
            model: "gpt-5",
            lifecycle: "completed",
            cost_status: "ok",
            prompt: 1_000,
            completion: 100,
            cache_creation: 0,
            cache_read: 200,
            total: 1_100,
            cost_nanousd: 1_000_000,
            meta_json: Some(r#"{"usage_convention":"openai"}"#),
        }
    }
}

/// Inserts rows straight into `request_logs` (the database must be initialized).
pub fn insert_rows(db: &Path, rows: &[Row]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for r in rows {
        conn.execute(
            "INSERT INTO request_logs (provider, model, tool, client_id, path, started_at, \
             lifecycle_status, cost_status, prompt_tokens, completion_tokens, \
             cache_creation_tokens, cache_read_tokens, total_tokens, cost_nanousd, cost_usd, \
             meta_json, incomplete) \
             VALUES (?1, ?2, ?3, ?4, '/v1/chat/completions', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
             ?13, ?14, ?15, ?16)",
            rusqlite::params![
                r.provider,
                r.model,
                r.tool,
                format!("{}-client", r.tool),
                r.started_at,
                r.lifecycle,
                r.cost_status,
                r.prompt,
                r.completion,
                r.cache_creation,
                r.cache_read,
                r.total,
                r.cost_nanousd,
                r.cost_nanousd as f64 / 1e9,
                r.meta_json,
                i64::from(r.lifecycle != "completed"),
            ],
        )
        .unwrap();
    }
}
