//! The few log records CLI commands emit (`control.md` §10.1 format), on stdout.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use agent_cli_proxy_core::time::UnixMillis;
use serde_json::{Map, Value, json};

/// Emits an info record unless `LOG_LEVEL` is `warn` or `error`.
pub(crate) fn info(vars: &BTreeMap<String, String>, event: &str, msg: &str, fields: Value) {
    let level = vars
        .get("LOG_LEVEL")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if level == "warn" || level == "error" {
        return;
    }
    let ts = now_ms().to_iso();
    let pretty = vars
        .get("LOG_FORMAT")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("pretty"));
    let fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if pretty {
        let mut line = format!("{ts} INFO {msg} event={event}");
        for (k, v) in &fields {
            let shown = match v {
                Value::String(s) if !s.contains(' ') => s.clone(),
                other => other.to_string(),
            };
            line.push_str(&format!(" {k}={shown}"));
        }
        crate::out_line!("{line}");
    } else {
        let mut record = Map::new();
        record.insert("ts".into(), json!(ts));
        record.insert("level".into(), json!("info"));
        record.insert("msg".into(), json!(msg));
        record.insert("event".into(), json!(event));
        record.insert("component".into(), json!("cli"));
        record.extend(fields);
        crate::out_line!("{}", Value::Object(record));
    }
}

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}
