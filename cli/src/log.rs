//! The few log records CLI commands emit (`control.md` §10.1 format), on stdout.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use agent_cli_proxy_core::time::UnixMillis;
use serde_json::{Value, json};

/// Emits an info record unless `LOG_LEVEL` is `warn` or `error`.
pub(crate) fn info(vars: &BTreeMap<String, String>, event: &str, msg: &str, fields: Value) {
    let level = vars
        .get("LOG_LEVEL")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if level == "warn" || level == "error" {
        return;
    }
    let format = if vars
        .get("LOG_FORMAT")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("pretty"))
    {
        crate::daemon::log::Format::Pretty
    } else {
        crate::daemon::log::Format::Json
    };
    let mut pairs: Vec<(String, Value)> = vec![("component".to_owned(), json!("cli"))];
    if let Value::Object(m) = fields {
        pairs.extend(m);
    }
    let line = crate::daemon::log::format_line(
        format,
        now_ms(),
        agent_cli_proxy_core::exchange::Level::Info,
        msg,
        Some(event),
        pairs.iter().map(|(k, v)| (k.as_str(), v.clone())),
    );
    crate::out_line!("{line}");
}

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}
