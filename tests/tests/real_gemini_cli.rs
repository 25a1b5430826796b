//! The real-client tier for Gemini CLI (`gemini.md` §5): the real `@google/gemini-cli` from
//! npm, in API-key mode, completes a prompt through each build against a local mock Gemini
//! upstream; its own token report (`--output-format json` stats) equals the rows, which say
//! `gemini-cli`, `google`, the model from the path, exact tokens and cost; a `:countTokens`
//! call with media leaves no row.
//!
//! Ignored by default: it needs the CLI (`npm install @google/gemini-cli`) and must run in a
//! loopback-only network namespace so the CLI cannot reach anything but the mock. Run it with
//! `scripts/real-gemini-cli.sh` (`docs/gemini.md` §7).

// Test code: unwrap and expect are how a case fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_cli_proxy_tests::both_shells;
use agent_cli_proxy_tests::support::checks::wait_prices_loaded;
use agent_cli_proxy_tests::support::db;
use agent_cli_proxy_tests::support::proc::ProxyProcess;
use agent_cli_proxy_tests::support::shells::Shell;
use serde_json::{Value, json};

agent_cli_proxy_tests::child_entry!();

/// The model the CLI is told to use; the pricing fixture of the tests prices it
/// (`google/gemini-2.5-pro`: 1.25 / 10 / 0.31 $/M).
const MODEL: &str = "gemini-2.5-pro";
const ANSWER: &str = "Hello from the mock Gemini.";
const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// One request the mock received.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

/// A minimal Gemini API on `127.0.0.1`: `:streamGenerateContent` (SSE with `alt=sse`, else a
/// JSON array), `:generateContent`, `:countTokens`; anything else 404. Every generation
/// reports cumulative `usageMetadata` with cached input and thoughts.
struct MockGemini {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MockGemini {
    fn start() -> MockGemini {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        MockGemini { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0; n];
            reader.read_exact(&mut body).unwrap();
        }
        log.lock().unwrap().push(Seen {
            target: target.clone(),
            headers: headers.clone(),
        });
        let (status, content_type, body) = respond(&target);
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
            return;
        }
    }
}

fn chunk(text: &str, usage: Value) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
        "usageMetadata": usage,
        "modelVersion": MODEL,
    })
}

fn respond(target: &str) -> (u16, &'static str, Vec<u8>) {
    let path = target.split('?').next().unwrap_or("");
    if path.ends_with(":streamGenerateContent") {
        let first = chunk(
            "Hello from ",
            json!({"promptTokenCount": 1200, "cachedContentTokenCount": 800, "candidatesTokenCount": 2, "totalTokenCount": 1202}),
        );
        let mut last = chunk(
            "the mock Gemini.",
            json!({"promptTokenCount": 1200, "cachedContentTokenCount": 800, "candidatesTokenCount": 5, "thoughtsTokenCount": 30, "totalTokenCount": 1235}),
        );
        last["candidates"][0]["finishReason"] = json!("STOP");
        if target.contains("alt=sse") {
            let body = format!("data: {first}\r\n\r\ndata: {last}\r\n\r\n");
            return (200, "text/event-stream", body.into_bytes());
        }
        return (
            200,
            "application/json",
            format!("[{first},\r\n{last}]").into_bytes(),
        );
    }
    if path.ends_with(":generateContent") {
        // Utility calls (routing, next-speaker checks) ask for JSON: answer with a JSON text
        // that fits them.
        let mut c = chunk(
            r#"{"reasoning":"The answer is complete.","next_speaker":"user","model_choice":"flash"}"#,
            json!({"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52}),
        );
        c["candidates"][0]["finishReason"] = json!("STOP");
        return (200, "application/json", c.to_string().into_bytes());
    }
    if path.ends_with(":countTokens") {
        return (200, "application/json", br#"{"totalTokens":258}"#.to_vec());
    }
    (
        404,
        "application/json",
        br#"{"error":{"code":404,"message":"not in the mock","status":"NOT_FOUND"}}"#.to_vec(),
    )
}

/// The CLI: `GEMINI_CLI_BIN`, else what `scripts/real-gemini-cli.sh` installs.
fn gemini_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GEMINI_CLI_BIN") {
        return PathBuf::from(bin);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/gemini-cli/node_modules/.bin/gemini")
}

/// Fails unless every network interface is `lo`: the CLI must not reach anything else.
fn assert_loopback_only_namespace() {
    // `/proc/net/dev` shows the interfaces of this process's namespace (`/sys/class/net` may
    // still show the host's, as sysfs is not remounted by `unshare`).
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
        .collect();
    assert!(
        !interfaces.is_empty() && interfaces.iter().all(|i| i == "lo"),
        "this test runs the real Gemini CLI and must be inside a loopback-only network \
         namespace (interfaces here: {interfaces:?}); run scripts/real-gemini-cli.sh"
    );
}

/// Exact cost in nUSD of a Gemini row at the `gemini-2.5-pro` base rates (in pUSD/token:
/// 1 250 000 input, 310 000 cached, 10 000 000 output), rounded half up (`accounting.md` §5.3).
fn expected_cost(prompt: i64, cached: i64, completion: i64) -> i64 {
    let pusd = (prompt - cached) * 1_250_000 + cached * 310_000 + completion * 10_000_000;
    (pusd + 500) / 1000
}

fn run_cli(proxy: &ProxyProcess, home: &std::path::Path) -> (Value, String) {
    let bin = gemini_bin();
    assert!(
        bin.exists(),
        "the real Gemini CLI is not installed at {}: run scripts/real-gemini-cli.sh \
         (npm install --prefix target/gemini-cli @google/gemini-cli) or set GEMINI_CLI_BIN",
        bin.display()
    );
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::write(
        home.join(".gemini/settings.json"),
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"}},"privacy":{"usageStatisticsEnabled":false}}"#,
    )
    .unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["-p", "Say hello.", "-m", MODEL, "--output-format", "json"])
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GEMINI_API_KEY", "dummy-key-for-the-mock")
        .env("GOOGLE_GEMINI_BASE_URL", proxy.url())
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    while !waiter.is_finished() {
        if started.elapsed() > CLI_TIMEOUT {
            // Only the child this test started, by its pid.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the Gemini CLI did not finish within {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = waiter.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the Gemini CLI failed ({}):\nstdout: {stdout}\nstderr: {stderr}\nproxy logs:\n{}",
        output.status,
        proxy.logs()
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("CLI output is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (report, stderr)
}

both_shells! {
    /// Through this build, the real Gemini CLI completes a prompt; its token report equals
    /// the rows; every row says `gemini-cli`, `google`, the model from the path, exact cost.
    #[ignore = "needs the real Gemini CLI from npm in a loopback-only namespace: run scripts/real-gemini-cli.sh"]
    fn real_gemini_cli_completes_and_its_report_equals_the_rows(shell: Shell) {
        assert_loopback_only_namespace();
        let mock = MockGemini::start();
        let upstream = format!("http://{}", mock.addr);
        let proxy = ProxyProcess::start(shell, &[("CLI_PROXY_API_URL", upstream.as_str())]);
        let addr = proxy.addr();
        wait_prices_loaded(addr, &[]);
        let home = tempfile::tempdir().unwrap();
        let (report, stderr) = run_cli(&proxy, home.path());
        assert_eq!(
            report["response"].as_str().map(str::trim),
            Some(ANSWER),
            "{report}\nstderr: {stderr}"
        );

        let seen = mock.seen();
        let generations: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.target.contains(":streamGenerateContent") || s.target.contains(":generateContent"))
            .collect();
        assert!(!generations.is_empty(), "no generation reached the mock: {seen:?}");
        for s in &seen {
            let ua = s.headers.iter().find(|(k, _)| k == "user-agent").map(|(_, v)| v.as_str());
            assert!(ua.is_some_and(|ua| ua.starts_with("GeminiCLI")), "{s:?}");
            let key = s.headers.iter().find(|(k, _)| k == "x-goog-api-key").map(|(_, v)| v.as_str());
            assert_eq!(key, Some("dummy-key-for-the-mock"), "the API key is forwarded untouched");
        }

        // Every generation call has a final row.
        let db_path = proxy.db_path();
        let deadline = Instant::now() + Duration::from_secs(10);
        let rows = loop {
            let rows = db::rows(
                &db_path,
                "SELECT * FROM request_logs WHERE lifecycle_status != 'pending' ORDER BY id",
                &[],
            );
            if rows.len() >= generations.len() || Instant::now() > deadline {
                break rows;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(rows.len(), generations.len(), "one row per generation call: {rows:?}");

        let mut sums = [0i64; 5];
        for (row, call) in rows.iter().zip(&generations) {
            let path = call.target.split('?').next().unwrap();
            let path_model = path
                .strip_prefix("/v1beta/models/")
                .and_then(|r| r.split(':').next())
                .unwrap();
            assert_eq!(row["path"], path, "{row}");
            assert_eq!(row["tool"], "gemini-cli", "{row}");
            assert_eq!(row["provider"], "google", "{row}");
            assert_eq!(row["model"], path_model, "the model from the path: {row}");
            assert_eq!(row["actual_model"], MODEL, "{row}");
            assert_eq!(row["lifecycle_status"], "completed", "{row}");
            assert_eq!(row["usage_incomplete"], 0, "{row}");
            assert_eq!(row["streamed"], i64::from(path.ends_with(":streamGenerateContent")), "{row}");
            let col = |c: &str| row[c].as_i64().unwrap();
            assert_eq!(row["cost_status"], "ok", "{row}");
            assert_eq!(
                col("cost_nanousd"),
                expected_cost(col("prompt_tokens"), col("cache_read_tokens"), col("completion_tokens")),
                "{row}"
            );
            for (sum, c) in sums.iter_mut().zip([
                "prompt_tokens",
                "completion_tokens",
                "cache_read_tokens",
                "reasoning_tokens",
                "total_tokens",
            ]) {
                *sum += col(c);
            }
        }

        // The CLI's own report, summed over its models: prompt (+ tool-use prompt),
        // candidates + thoughts, cached, thoughts, total.
        let mut reported = [0i64; 5];
        let mut requests = 0;
        for stats in report["stats"]["models"].as_object().expect("stats.models").values() {
            let t = &stats["tokens"];
            let n = |k: &str| t[k].as_i64().unwrap_or(0);
            reported[0] += n("prompt") + n("tool");
            reported[1] += n("candidates") + n("thoughts");
            reported[2] += n("cached");
            reported[3] += n("thoughts");
            reported[4] += n("total");
            requests += stats["api"]["totalRequests"].as_i64().unwrap_or(0);
        }
        assert_eq!(requests, rows.len() as i64, "the CLI's request count: {report}");
        assert_eq!(
            sums, reported,
            "rows (prompt, completion, cached, reasoning, total) differ from the CLI's report: {report}"
        );

        // A countTokens call with media, as the CLI sends it: forwarded, no row.
        let ua = generations[0]
            .headers
            .iter()
            .find(|(k, _)| k == "user-agent")
            .map(|(_, v)| v.clone())
            .unwrap();
        let count_path = format!("/v1beta/models/{MODEL}:countTokens");
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"what is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}]}]}"#;
        let mut conn = TcpStream::connect(addr).unwrap();
        let request = format!(
            "POST {count_path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: {ua}\r\nx-goog-api-key: dummy-key-for-the-mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(request.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(r#"{"totalTokens":258}"#), "{answer}");
        assert!(mock.seen().iter().any(|s| s.target == count_path), "countTokens reached the mock");
        let total = db::scalar(&db_path, "SELECT COUNT(*) FROM request_logs", &[]);
        assert_eq!(total, rows.len() as i64, "countTokens left no row");
    }
}
