//! Quota refresh (`control.md` §8.5), shared by the `quota-refresh` loop and
//! `/admin/quotas?refresh=true` / `/admin/quotas/refresh`: read the auth files, probe each
//! account, insert every window as a snapshot in one writer command, report.
//!
//! Refreshes are single-flight: a caller arriving while one runs waits for it and gets the
//! same result. The admin handler runs on a blocking thread, so it drives the refresh with
//! `block_on` through the [`HttpGet`] the shell installed at startup
//! ([`QuotaService::install_http`]), running reader queries inline.
//!
//! Probes run one account after another (each bounded by `QUOTA_REFRESH_TIMEOUT_MS`), which
//! keeps the breaker and log order simple; auth directories hold a handful of files.
//! Tokens leave [`Secret`](agent_cli_proxy_core::secret::Secret) only to build a request
//! header and are never logged; a file that cannot be read or parsed is named in the warning
//! with the reason, never its contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use agent_cli_proxy_core::config::Config;
use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::quota::{
    self, AccountQuota, AuthFile, ProbeAnswer, ProbePlan, is_auth_file_name,
};
use agent_cli_proxy_core::supervisor::QuotaRefreshSkip;
use agent_cli_proxy_storage::queries::LocalUsage;
use agent_cli_proxy_storage::{Op, QuotaSnapshotRow, Reply as StoreReply};
use serde_json::{Value, json};

use super::Daemon;
use super::correlator::{BoxFuture, Hop, HttpGet, blocking, guarded_get};

/// The answer of a refresh: `{timestamp, accounts: [AccountQuotaReport], inserted}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshReport {
    /// The refresh's single timestamp, ISO.
    pub timestamp: String,
    /// One AccountQuotaReport per readable auth file, in file-name order.
    pub accounts: Vec<Value>,
    /// Snapshot rows inserted.
    pub inserted: u64,
}

impl RefreshReport {
    /// The admin JSON.
    pub fn to_json(&self) -> Value {
        json!({"timestamp": self.timestamp, "accounts": self.accounts, "inserted": self.inserted})
    }
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// `CLIPROXY_AUTH_DIR` cannot be listed.
    #[error("cannot read CLIPROXY_AUTH_DIR {path}: {reason}")]
    AuthDirUnreadable {
        /// The directory.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The snapshots could not be stored.
    #[error("quota snapshots not stored: {0}")]
    Storage(String),
    /// The shell has not installed an HTTP client.
    #[error("quota refresh is not available in this shell")]
    NoClient,
    /// The refresh that this caller joined was cancelled.
    #[error("quota refresh was cancelled")]
    Cancelled,
}

type Outcome = Result<Arc<RefreshReport>, RefreshError>;

/// Single-flight refreshes and the shell's HTTP client.
#[derive(Default)]
pub struct QuotaService {
    running: Mutex<Option<Arc<Flight>>>,
    http: OnceLock<Arc<dyn HttpGet>>,
}

impl std::fmt::Debug for QuotaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaService")
            .field("http", &self.http.get().is_some())
            .finish_non_exhaustive()
    }
}

impl QuotaService {
    /// Installs the shell's client for admin-triggered refreshes (first call wins).
    pub fn install_http(&self, http: Arc<dyn HttpGet>) {
        let _ = self.http.set(http);
    }

    /// Runs a refresh, or joins the one running.
    pub async fn refresh(&self, d: &Daemon, io: &dyn HttpGet) -> Outcome {
        let (flight, leader) = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match running.as_ref() {
                Some(f) => (Arc::clone(f), false),
                None => {
                    let f = Arc::new(Flight::default());
                    *running = Some(Arc::clone(&f));
                    (f, true)
                }
            }
        };
        if !leader {
            return flight.wait().await;
        }
        let mut guard = Leader {
            service: self,
            flight: Arc::clone(&flight),
            done: false,
        };
        let result = run(d, io).await.map(Arc::new);
        guard.finish(result.clone());
        result
    }

    /// The admin refresh, from a blocking thread: no auth dir → the empty answer.
    pub fn refresh_blocking(&self, d: &Daemon) -> Outcome {
        if d.config.cliproxy_auth_dir.is_none() {
            return Ok(Arc::new(RefreshReport {
                timestamp: d.wall().to_iso(),
                accounts: Vec::new(),
                inserted: 0,
            }));
        }
        let Some(http) = self.http.get() else {
            return Err(RefreshError::NoClient);
        };
        let inline = Inline(Arc::clone(http));
        futures_lite::future::block_on(self.refresh(d, &inline))
    }
}

/// Whether `quota-refresh` runs (`control.md` §8.1): the auth dir is set, readable and holds
/// at least one `*.json`.
pub fn enablement(config: &Config) -> Result<PathBuf, QuotaRefreshSkip> {
    let Some(dir) = config.cliproxy_auth_dir.as_deref() else {
        return Err(QuotaRefreshSkip::MissingAuthDir);
    };
    let names = auth_file_names(Path::new(dir)).map_err(|_| QuotaRefreshSkip::AuthDirUnreadable)?;
    if names.is_empty() {
        return Err(QuotaRefreshSkip::NoAuthFiles);
    }
    Ok(PathBuf::from(dir))
}

/// Logs `quota.refresh_skipped` with its reason (info for a missing dir, else warn).
pub fn log_skipped(d: &Daemon, reason: QuotaRefreshSkip) {
    let level = match reason {
        QuotaRefreshSkip::MissingAuthDir => Level::Info,
        _ => Level::Warn,
    };
    d.logger.event(
        level,
        "quota.refresh_skipped",
        "quota refresh skipped",
        vec![("reason", json!(reason.as_str()))],
    );
}

async fn run(d: &Daemon, io: &dyn HttpGet) -> Result<RefreshReport, RefreshError> {
    let now = d.wall();
    let timestamp = now.to_iso();
    let Some(dir) = d.config.cliproxy_auth_dir.clone() else {
        return Ok(RefreshReport {
            timestamp,
            accounts: Vec::new(),
            inserted: 0,
        });
    };
    let listing = {
        let dir = PathBuf::from(&dir);
        blocking(io, move || read_auth_dir(&dir)).await
    };
    let files = listing
        .map_err(|reason| RefreshError::AuthDirUnreadable {
            path: dir.clone(),
            reason,
        })?
        .map_err(|reason| RefreshError::AuthDirUnreadable {
            path: dir.clone(),
            reason,
        })?;
    let mut auths = Vec::new();
    for (name, read) in files {
        match read.and_then(|bytes| AuthFile::parse(&name, &bytes).map_err(|e| e.to_string())) {
            Ok(a) => auths.push(a),
            Err(err) => d.logger.event(
                Level::Warn,
                "quota.auth_file_failed",
                "failed to read auth file",
                vec![("name", json!(name)), ("err", json!(err))],
            ),
        }
    }
    let timeout = Duration::from_millis(d.config.quota_refresh_timeout_ms);
    let mut quotas = Vec::with_capacity(auths.len());
    for auth in &auths {
        quotas.push(probe(d, io, auth, timeout).await);
    }
    let rows: Vec<QuotaSnapshotRow> = quotas
        .iter()
        .flat_map(|q| q.snapshot_rows(&timestamp))
        .map(|r| QuotaSnapshotRow {
            timestamp: r.timestamp,
            provider: r.provider,
            account: r.account,
            quota_type: r.quota_type,
            model: r.model,
            used_pct: r.used_pct,
            remaining: r.remaining,
            remaining_raw: r.remaining_raw,
            resets_at: r.resets_at,
            raw_json: r.raw_json,
        })
        .collect();
    let inserted = if rows.is_empty() {
        0
    } else {
        match d.writer.send(Op::InsertQuotaSnapshots(rows)).await {
            Ok(StoreReply::Count(n)) => n,
            Ok(_) => 0,
            Err(e) => return Err(RefreshError::Storage(e.to_string())),
        }
    };
    let (five_since, seven_since) = quota::local_windows(now);
    let mut accounts = Vec::with_capacity(quotas.len());
    for (auth, q) in auths.iter().zip(&quotas) {
        let readers = d.readers.clone();
        let (account, provider) = (q.account.clone(), auth.local_provider());
        let (five, seven) = (five_since.clone(), seven_since.clone());
        let local = blocking(io, move || {
            readers.with(|s| {
                Ok((
                    s.local_usage(&account, &provider, &five)?,
                    s.local_usage(&account, &provider, &seven)?,
                ))
            })
        })
        .await
        .map_err(RefreshError::Storage)?
        .map_err(|e| RefreshError::Storage(e.to_string()))?;
        accounts.push(q.report_json(&timestamp, local_json(&local.0), local_json(&local.1)));
    }
    d.logger.event(
        Level::Info,
        "quota.refreshed",
        "quota refresh finished",
        vec![
            ("accounts", json!(accounts.len())),
            ("inserted", json!(inserted)),
        ],
    );
    Ok(RefreshReport {
        timestamp,
        accounts,
        inserted,
    })
}

async fn probe(d: &Daemon, io: &dyn HttpGet, auth: &AuthFile, timeout: Duration) -> AccountQuota {
    let requests = match quota::plan(auth, env!("CARGO_PKG_VERSION")) {
        ProbePlan::Known(q) => return q,
        ProbePlan::Probe(requests) => requests,
    };
    let mut answer = ProbeAnswer::Failed("no probe request".to_owned());
    for req in &requests {
        let headers: Vec<(&str, &str)> =
            req.headers.iter().map(|(k, v)| (*k, v.expose())).collect();
        answer = match guarded_get(d, io, &req.breaker_id, &req.url, &headers, timeout).await {
            Ok((status, body)) => ProbeAnswer::Http { status, body },
            Err(e) => ProbeAnswer::Failed(e),
        };
        if answer.is_success() {
            break;
        }
    }
    quota::parse_answer(auth, &answer)
}

fn local_json(l: &LocalUsage) -> Value {
    serde_json::to_value(l).unwrap_or(Value::Null)
}

type AuthRead = (String, Result<Vec<u8>, String>);

/// Every `*.json` of `dir` with its bytes or read error, in name order.
fn read_auth_dir(dir: &Path) -> Result<Vec<AuthRead>, String> {
    let names = auth_file_names(dir).map_err(|e| e.to_string())?;
    Ok(names
        .into_iter()
        .map(|name| {
            let read = std::fs::read(dir.join(&name)).map_err(|e| e.to_string());
            (name, read)
        })
        .collect())
}

fn auth_file_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_auth_file_name(&name) && !entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The shared outcome of one refresh.
#[derive(Default)]
struct Flight {
    state: Mutex<(Option<Outcome>, Vec<Waker>)>,
}

impl Flight {
    fn complete(&self, outcome: Outcome) {
        let wakers = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 = Some(outcome);
            std::mem::take(&mut state.1)
        };
        for w in wakers {
            w.wake();
        }
    }

    async fn wait(&self) -> Outcome {
        futures_lite::future::poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &state.0 {
                Some(outcome) => Poll::Ready(outcome.clone()),
                None => {
                    state.1.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// Completes the flight (with `Cancelled` if the leader's future is dropped) and frees the
/// slot, so followers never wait forever.
struct Leader<'a> {
    service: &'a QuotaService,
    flight: Arc<Flight>,
    done: bool,
}

impl Leader<'_> {
    fn finish(&mut self, outcome: Outcome) {
        self.release();
        self.flight.complete(outcome);
        self.done = true;
    }

    fn release(&self) {
        let mut running = self
            .service
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if running
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            *running = None;
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.release();
            self.flight.complete(Err(RefreshError::Cancelled));
        }
    }
}

/// The installed client with blocking jobs run inline (the caller is a blocking thread).
struct Inline(Arc<dyn HttpGet>);

impl HttpGet for Inline {
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(u16, Vec<u8>), String>> {
        self.0.get(url, headers, timeout)
    }

    fn run_blocking(&self, job: Box<dyn FnOnce() + Send + 'static>) -> BoxFuture<'static, ()> {
        job();
        Box::pin(std::future::ready(()))
    }

    fn get_hop(
        &self,
        url: &str,
        max: usize,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Hop, String>> {
        self.0.get_hop(url, max, timeout)
    }
}
