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
/// How long the logging thread lets lines gather after the first one wakes it, so a busy
/// proxy wakes it (a futex call on the request's thread, a context switch on the other)
/// about once per this period instead of once per line. Lines reach stdout at most this
/// much later; an idle proxy does not wake at all.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// Lines queued that end the linger at once, well before the queue would drop any.
const HIGH_WATER: usize = QUEUE_LINES / 2;

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
    /// The logging thread waits for a line: the next one must wake it. While it is
    /// writing or lingering, lines are only queued (no notify, no syscall).
    idle: bool,
    /// A batch taken from `lines` is being written: [`Logger::flush`] waits for it too.
    writing: bool,
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
                idle: false,
                writing: false,
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
            rec.fields.iter().map(|(k, v)| (*k, v)),
        );
    }

    /// Logs an event with fields.
    pub fn event(&self, level: Level, event: &str, msg: &str, fields: Vec<(&str, Value)>) {
        self.log(level, msg, Some(event), fields.iter().map(|(k, v)| (*k, v)));
    }

    fn log<'a>(
        &self,
        level: Level,
        msg: &str,
        event: Option<&str>,
        fields: impl Iterator<Item = (&'a str, &'a Value)> + Clone,
    ) {
        if level < self.inner.min {
            return;
        }
        let ts = now_wall();
        let line = match self.inner.format {
            Format::Json => format_json(ts, level, msg, event, fields.clone()),
            Format::Pretty => None,
        };
        let line = line.unwrap_or_else(|| {
            let owned = fields.map(|(k, v)| (k, v.clone()));
            format_line(self.inner.format, ts, level, msg, event, owned)
        });
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
        let wake = std::mem::take(&mut q.idle) || q.lines.len() == HIGH_WATER;
        drop(q);
        if wake {
            self.inner.ready.notify_one();
        }
    }

    /// Waits (at most a second) until every queued line is written, including a batch the
    /// thread has taken but not finished writing, then flushes stdout (at shutdown).
    pub fn flush(&self) {
        for _ in 0..200 {
            let empty = self
                .inner
                .queue
                .lock()
                .map(|q| q.lines.is_empty() && !q.writing)
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
                q.idle = true;
                q = match inner.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            q.idle = false;
            if q.closed && q.lines.is_empty() {
                return;
            }
            // Let the lines of the next moments join this write. A notify (high water,
            // `flush`, shutdown) ends the linger early.
            if !q.closed && q.lines.len() < HIGH_WATER {
                q = match inner.ready.wait_timeout(q, LINGER) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
            let batch: Vec<String> = q.lines.drain(..).collect();
            let dropped = std::mem::take(&mut q.dropped_since_report);
            q.writing = true;
            (batch, dropped)
        };
        // Stdout is line-buffered: without this buffer every line is its own `write`.
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        for line in batch {
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        drop(out);
        if let Ok(mut q) = inner.queue.lock() {
            q.writing = false;
        }
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

/// The JSON line [`format_line`] would give, written straight into one buffer instead of
/// through a `serde_json::Map` (an index map with a SipHash table and one allocation per
/// key). `None` when a field name repeats a name before it: the map's replace-in-place
/// semantics then decide, so the caller falls back to [`format_line`].
fn format_json<'a>(
    ts: UnixMillis,
    level: Level,
    msg: &str,
    event: Option<&str>,
    fields: impl Iterator<Item = (&'a str, &'a Value)> + Clone,
) -> Option<String> {
    const FIXED: [&str; 4] = ["ts", "level", "msg", "event"];
    let mut seen: Vec<&str> = Vec::with_capacity(8);
    for (k, _) in fields.clone() {
        if FIXED.contains(&k) || seen.contains(&k) {
            return None;
        }
        seen.push(k);
    }
    let mut out: Vec<u8> = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"ts\":\"");
    push_iso(&mut out, ts);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level_str(level).as_bytes());
    out.extend_from_slice(b"\",\"msg\":");
    serde_json::to_writer(&mut out, msg).ok()?;
    if let Some(e) = event {
        out.extend_from_slice(b",\"event\":");
        serde_json::to_writer(&mut out, e).ok()?;
    }
    for (k, v) in fields {
        out.push(b',');
        serde_json::to_writer(&mut out, k).ok()?;
        out.push(b':');
        if is_secret_name(k) {
            out.extend_from_slice(b"\"[REDACTED]\"");
        } else {
            serde_json::to_writer(&mut out, v).ok()?;
        }
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// Appends `ts.to_iso()` without allocating.
fn push_iso(out: &mut Vec<u8>, ts: UnixMillis) {
    match ts.iso_bytes() {
        Some(bytes) => out.extend_from_slice(&bytes),
        None => out.extend_from_slice(ts.to_iso().as_bytes()),
    }
}

/// The redaction rule of `control.md` §10.3.
pub fn is_secret_name(name: &str) -> bool {
    // Nearly every field name is already lower snake case: check it as it is.
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return is_secret_lowered(name);
    }
    // Field names are short: a stack copy keeps this check off the allocator.
    let mut buf = [0u8; 64];
    let lowered;
    let n: &str = if name.len() <= buf.len() {
        for (dst, b) in buf.iter_mut().zip(name.bytes()) {
            *dst = match b.to_ascii_lowercase() {
                b'-' => b'_',
                other => other,
            };
        }
        match std::str::from_utf8(&buf[..name.len()]) {
            Ok(n) => n,
            Err(_) => return is_secret_name_owned(name),
        }
    } else {
        lowered = name.to_ascii_lowercase().replace('-', "_");
        &lowered
    };
    is_secret_lowered(n)
}

fn is_secret_name_owned(name: &str) -> bool {
    is_secret_lowered(&name.to_ascii_lowercase().replace('-', "_"))
}

fn is_secret_lowered(n: &str) -> bool {
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
    EXACT.contains(&n)
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

    /// What `Logger::log` writes for a JSON logger: the direct writer, or the map when it
    /// declines.
    fn json_line(msg: &str, event: Option<&str>, fields: &[(&str, Value)]) -> String {
        let refs = fields.iter().map(|(k, v)| (*k, v));
        format_json(UnixMillis(1_700_000_000_123), Level::Info, msg, event, refs).unwrap_or_else(
            || {
                format_line(
                    Format::Json,
                    UnixMillis(1_700_000_000_123),
                    Level::Info,
                    msg,
                    event,
                    fields.iter().cloned(),
                )
            },
        )
    }

    fn map_line(msg: &str, event: Option<&str>, fields: &[(&str, Value)]) -> String {
        format_line(
            Format::Json,
            UnixMillis(1_700_000_000_123),
            Level::Info,
            msg,
            event,
            fields.iter().cloned(),
        )
    }

    #[test]
    fn the_direct_json_writer_matches_the_map_byte_for_byte() {
        type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, Value)>);
        let cases: Vec<Case<'_>> = vec![
            (
                "request finalized",
                Some("lifecycle.finalized"),
                vec![
                    ("request_id", Value::from("0b6f-\"quoted\"\n")),
                    ("total_tokens", Value::from(42)),
                    ("cost_usd", Value::from(0.0105)),
                    ("streamed", Value::from(true)),
                    ("model", Value::Null),
                    ("nested", serde_json::json!({"b": [1, "x"], "a": "é\u{1}"})),
                ],
            ),
            ("no event, odd text \u{7f} ü 😀", None, vec![]),
            (
                "secrets",
                Some("e"),
                vec![
                    ("Authorization", Value::from("Bearer sk")),
                    ("x-api-key", Value::from("k")),
                    ("input_tokens", Value::from(3)),
                ],
            ),
            // Repeated names: the map replaces in place; the direct writer must agree.
            (
                "dup",
                Some("e"),
                vec![("a", Value::from(1)), ("a", Value::from(2))],
            ),
            (
                "dup fixed",
                Some("e"),
                vec![("msg", Value::from("over")), ("ts", Value::from(1))],
            ),
        ];
        for (msg, event, fields) in &cases {
            assert_eq!(
                json_line(msg, *event, fields),
                map_line(msg, *event, fields)
            );
        }
        let refs = cases[0].2.iter().map(|(k, v)| (*k, v));
        assert!(
            format_json(UnixMillis(0), Level::Info, "m", None, refs).is_some(),
            "the common case takes the direct path"
        );
    }

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        #[test]
        fn the_fast_timestamp_is_to_iso(ms in proptest::prop_oneof![
            0u64..4_102_444_800_000,
            proptest::num::u64::ANY,
        ]) {
            let mut out = Vec::new();
            push_iso(&mut out, UnixMillis(ms));
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), UnixMillis(ms).to_iso());
        }

        #[test]
        fn direct_json_equals_the_map_for_any_fields(
            msg in "\\PC{0,12}",
            event in proptest::option::of("[a-z._]{1,10}"),
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "ts", "msg", "level", "event", "a", "b", "A-b", "api_key", "X-Api-Key",
                        "my_token", "total_tokens", "ü-key",
                    ]),
                    proptest::prop_oneof![
                        "\\PC{0,8}".prop_map(Value::from),
                        proptest::num::i64::ANY.prop_map(Value::from),
                        proptest::bool::ANY.prop_map(Value::from),
                    ],
                ),
                0..6,
            ),
        ) {
            proptest::prop_assert_eq!(
                json_line(&msg, event.as_deref(), &fields),
                map_line(&msg, event.as_deref(), &fields)
            );
        }
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
