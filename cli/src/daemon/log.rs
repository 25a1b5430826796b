//! The process logger (`control.md` §10): one JSON object (or a pretty line) per record,
//! handed to a logging thread through a bounded queue so a request never blocks on stdout.
//! Errors bypass the queue and go to stderr at once. Field names that look like secrets are
//! redacted before formatting.
//!
//! Every record travels through `tracing`: [`Logger::install_tracing`] makes a layer the
//! process's global subscriber, our own records become `tracing` events (carrying their
//! already formatted, redacted line), and events of the libraries underneath (hyper, rustls)
//! are formatted into the same JSON lines with the same redaction. An operator can add layers
//! (for example an OpenTelemetry exporter) to the same dispatcher.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use agent_cli_proxy_core::exchange::{Level, LogRecord};
use agent_cli_proxy_core::time::UnixMillis;
use serde_json::{Map, Value};

/// Capacity of the stdout queue (`control.md` §10.2).
pub const QUEUE_LINES: usize = 1000;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// `<ts> <LEVEL> <msg> key=value …`.
    Pretty,
}

struct Queue {
    lines: VecDeque<String>,
    dropped_since_report: u64,
    closed: bool,
}

struct Inner {
    min: Level,
    via_tracing: std::sync::atomic::AtomicBool,
    format: Format,
    queue: Mutex<Queue>,
    ready: Condvar,
    dropped_total: AtomicU64,
    stderr: Mutex<()>,
}

/// A cheap-to-clone handle to the logger.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

impl Logger {
    /// Starts the logging thread.
    pub fn start(min: Level, format: Format) -> Logger {
        let inner = Arc::new(Inner {
            min,
            via_tracing: std::sync::atomic::AtomicBool::new(false),
            format,
            queue: Mutex::new(Queue {
                lines: VecDeque::with_capacity(QUEUE_LINES),
                dropped_since_report: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            dropped_total: AtomicU64::new(0),
            stderr: Mutex::new(()),
        });
        let worker = Arc::clone(&inner);
        let _ = std::thread::Builder::new()
            .name("acp-logger".into())
            .spawn(move || writer_loop(&worker));
        Logger { inner }
    }

    /// Lines dropped by backpressure since start (`agent_cli_proxy_log_dropped_lines_total`).
    pub fn dropped_lines(&self) -> u64 {
        self.inner.dropped_total.load(Ordering::Relaxed)
    }

    /// Logs a record from the core.
    pub fn record(&self, rec: &LogRecord) {
        self.log(
            rec.level,
            rec.msg,
            Some(rec.event),
            rec.fields.iter().map(|(k, v)| (*k, v.clone())),
        );
    }

    /// Logs an event with fields.
    pub fn event(&self, level: Level, event: &str, msg: &str, fields: Vec<(&str, Value)>) {
        self.log(level, msg, Some(event), fields.into_iter());
    }

    fn log<'a>(
        &self,
        level: Level,
        msg: &str,
        event: Option<&str>,
        fields: impl Iterator<Item = (&'a str, Value)>,
    ) {
        if level < self.inner.min {
            return;
        }
        let line = format_line(self.inner.format, now_wall(), level, msg, event, fields);
        if self.inner.via_tracing.load(Ordering::Relaxed) {
            emit_through_tracing(level, &line);
            return;
        }
        self.write_line(level, line);
    }

    /// Makes this logger the sink of the process's `tracing` dispatcher (once per process;
    /// a second call leaves the first sink in place and keeps logging directly).
    pub fn install_tracing(&self) {
        use tracing_subscriber::layer::SubscriberExt;
        let layer = TracingSink {
            logger: self.clone(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            self.inner.via_tracing.store(true, Ordering::Relaxed);
        }
    }

    fn write_line(&self, level: Level, line: String) {
        if level == Level::Error {
            let _guard = self.inner.stderr.lock();
            let _ = writeln!(std::io::stderr(), "{line}");
            return;
        }
        let Ok(mut q) = self.inner.queue.lock() else {
            return;
        };
        if q.lines.len() >= QUEUE_LINES {
            q.lines.pop_front();
            q.dropped_since_report += 1;
            self.inner.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        q.lines.push_back(line);
        drop(q);
        self.inner.ready.notify_one();
    }

    /// Flushes the queue and stops the thread (at shutdown).
    pub fn flush(&self) {
        for _ in 0..200 {
            let empty = self
                .inner
                .queue
                .lock()
                .map(|q| q.lines.is_empty())
                .unwrap_or(true);
            if empty {
                break;
            }
            self.inner.ready.notify_one();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = std::io::stdout().flush();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
    }
}

fn writer_loop(inner: &Inner) {
    let mut stdout = std::io::stdout();
    loop {
        let (batch, dropped) = {
            let Ok(mut q) = inner.queue.lock() else {
                return;
            };
            while q.lines.is_empty() && !q.closed {
                q = match inner.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            if q.closed && q.lines.is_empty() {
                return;
            }
            let batch: Vec<String> = q.lines.drain(..).collect();
            let dropped = std::mem::take(&mut q.dropped_since_report);
            (batch, dropped)
        };
        let mut out = stdout.lock();
        for line in batch {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        drop(out);
        if dropped > 0 {
            let line = format_line(
                inner.format,
                now_wall(),
                Level::Warn,
                "stdout backpressure caused line drops",
                Some("logger.dropped_lines"),
                [("count", Value::from(dropped))].into_iter(),
            );
            let _guard = inner.stderr.lock();
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        let _ = &mut stdout;
    }
}

fn now_wall() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    UnixMillis(ms)
}

fn level_str(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Formats one record; secret-looking field names get `[REDACTED]`.
pub fn format_line<'a>(
    format: Format,
    ts: UnixMillis,
    level: Level,
    msg: &str,
    event: Option<&str>,
    fields: impl Iterator<Item = (&'a str, Value)>,
) -> String {
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::from(ts.to_iso()));
    obj.insert("level".into(), Value::from(level_str(level)));
    obj.insert("msg".into(), Value::from(msg));
    if let Some(e) = event {
        obj.insert("event".into(), Value::from(e));
    }
    for (k, v) in fields {
        let v = if is_secret_name(k) {
            Value::from("[REDACTED]")
        } else {
            v
        };
        obj.insert(k.to_owned(), v);
    }
    match format {
        Format::Json => Value::Object(obj).to_string(),
        Format::Pretty => {
            let mut line = format!(
                "{} {} {}",
                ts.to_iso(),
                level_str(level).to_ascii_uppercase(),
                msg
            );
            for (k, v) in obj.iter().skip(3) {
                let rendered = match v {
                    Value::String(s) if !s.contains(' ') => s.clone(),
                    other => other.to_string(),
                };
                line.push_str(&format!(" {k}={rendered}"));
            }
            line
        }
    }
}

/// The redaction rule of `control.md` §10.3.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    if n.ends_with("_tokens") {
        return false;
    }
    const EXACT: &[&str] = &[
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "api_key",
        "apikey",
        "x_admin_token",
        "cookie",
        "set_cookie",
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
    ];
    EXACT.contains(&n.as_str())
        || ["_secret", "_password", "_api_key", "_token"]
            .iter()
            .any(|s| n.ends_with(s))
}

/// The field that carries one of our own, fully formatted lines through `tracing`.
const LINE_FIELD: &str = "acp_line";

fn emit_through_tracing(level: Level, line: &str) {
    match level {
        Level::Debug => {
            tracing::event!(target: "agent_cli_proxy", tracing::Level::DEBUG, acp_line = line)
        }
        Level::Info => {
            tracing::event!(target: "agent_cli_proxy", tracing::Level::INFO, acp_line = line)
        }
        Level::Warn => {
            tracing::event!(target: "agent_cli_proxy", tracing::Level::WARN, acp_line = line)
        }
        Level::Error => {
            tracing::event!(target: "agent_cli_proxy", tracing::Level::ERROR, acp_line = line)
        }
    }
}

/// The `tracing` layer writing every event into the logger's queue.
struct TracingSink {
    logger: Logger,
}

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TracingSink {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        level_of(metadata.level()) >= self.logger.inner.min
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = level_of(event.metadata().level());
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        if let Some(line) = visitor.line {
            self.logger.write_line(level, line);
            return;
        }
        // A library's event: its message and fields, redacted like ours.
        let target = event.metadata().target();
        let msg = visitor.message.unwrap_or_default();
        let mut fields = vec![("component", Value::from(target))];
        fields.extend(visitor.fields.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let line = format_line(
            self.logger.inner.format,
            now_wall(),
            level,
            &msg,
            None,
            fields.into_iter(),
        );
        self.logger.write_line(level, line);
    }
}

#[derive(Default)]
struct Fields {
    line: Option<String>,
    message: Option<String>,
    fields: Vec<(String, Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            LINE_FIELD => self.line = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            name => self.fields.push((name.to_owned(), Value::from(value))),
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = Some(text),
            name => self.fields.push((name.to_owned(), Value::from(text))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_field_names_are_redacted_but_token_counts_are_not() {
        let line = format_line(
            Format::Json,
            UnixMillis(0),
            Level::Info,
            "m",
            Some("e.v"),
            [
                ("authorization", Value::from("Bearer sk-1")),
                ("x-api-key", Value::from("k")),
                ("refresh_token", Value::from("r")),
                ("total_tokens", Value::from(12)),
                ("provider_api_key", Value::from("p")),
            ]
            .into_iter(),
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["authorization"], "[REDACTED]");
        assert_eq!(v["x-api-key"], "[REDACTED]");
        assert_eq!(v["refresh_token"], "[REDACTED]");
        assert_eq!(v["provider_api_key"], "[REDACTED]");
        assert_eq!(v["total_tokens"], 12);
        assert_eq!(v["event"], "e.v");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn pretty_lines_quote_only_values_with_spaces() {
        let line = format_line(
            Format::Pretty,
            UnixMillis(0),
            Level::Warn,
            "hello",
            Some("a.b"),
            [
                ("path", Value::from("/v1/x")),
                ("err", Value::from("two words")),
            ]
            .into_iter(),
        );
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z WARN hello event=a.b path=/v1/x err=\"two words\""
        );
    }
}
