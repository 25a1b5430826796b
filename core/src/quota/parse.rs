//! Probe answers → windows (`control.md` §8.5 table and normalisation rules).

use serde_json::{Map, Value};

use super::{AccountQuota, QuotaWindow};
use crate::correlate::parse_timestamp;
use crate::time::UnixMillis;

/// A percentage: values ≤ 1 are fractions (× 100); the result is clamped to 0..100.
/// Numbers and numeric strings are read; anything else (or a non-finite value) is `None`.
pub fn normalize_pct(v: &Value) -> Option<f64> {
    let n = number(v)?;
    let pct = if n <= 1.0 { n * 100.0 } else { n };
    Some(pct.clamp(0.0, 100.0))
}

/// A reset time as ISO: numbers under 10^12 are seconds, else milliseconds; strings are
/// parsed as timestamps (or as numbers). `None` when unreadable.
pub fn normalize_reset(v: &Value) -> Option<String> {
    let ms = match v {
        Value::String(s) => match parse_timestamp(s) {
            Some(t) => return Some(t.to_iso()),
            None => s.trim().parse::<f64>().ok()?,
        },
        other => number(other)?,
    };
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    let ms = if ms < 1e12 { ms * 1000.0 } else { ms };
    if ms > 253_402_300_799_000.0 {
        return None;
    }
    Some(UnixMillis(ms as u64).to_iso())
}

/// A window type from its length: `h = round(s / 3600)`; `h ≥ 144` → `week`; `h ≥ 24` →
/// `<round(h / 24)>d`; else `<h>h`.
pub fn window_type_from_seconds(seconds: f64) -> String {
    let h = (seconds / 3600.0).round().max(0.0);
    if h >= 144.0 {
        "week".to_owned()
    } else if h >= 24.0 {
        format!("{}d", (h / 24.0).round() as u64)
    } else {
        format!("{}h", h as u64)
    }
}

pub(super) fn claude(q: &mut AccountQuota, status: u16, json: &Value) {
    if !(200..300).contains(&status) {
        q.error = Some(error_message(json, status));
        return;
    }
    for (key, quota_type) in [
        ("five_hour", "5h"),
        ("seven_day", "week"),
        ("seven_day_sonnet", "week_sonnet"),
        ("seven_day_opus", "week_opus"),
    ] {
        let Some(w) = json.get(key).and_then(Value::as_object) else {
            continue;
        };
        let used = w.get("utilization").and_then(normalize_pct);
        let resets_at = w.get("resets_at").and_then(normalize_reset);
        if used.is_none() && resets_at.is_none() {
            continue;
        }
        q.windows.push(QuotaWindow {
            quota_type: quota_type.to_owned(),
            model: None,
            used_pct: used,
            resets_at,
            raw: Value::Object(w.clone()),
        });
    }
    set_active(q);
}

pub(super) fn codex(q: &mut AccountQuota, status: u16, json: &Value) {
    q.plan = json
        .get("plan_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if !(200..300).contains(&status) {
        let err = json.get("error");
        q.status = err
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("error")
            .to_owned();
        q.unavailable = true;
        q.error = Some(error_message(json, status));
        if let Some(e) = err
            && let Some(reset) = e.get("resets_at").filter(|r| !r.is_null())
        {
            q.windows.push(QuotaWindow {
                quota_type: "exhausted".to_owned(),
                model: None,
                used_pct: Some(100.0),
                resets_at: normalize_reset(reset),
                raw: e.clone(),
            });
        }
        return;
    }
    let limits = json.get("rate_limit");
    for (key, fallback) in [("primary_window", "5h"), ("secondary_window", "week")] {
        let Some(w) = limits.and_then(|l| l.get(key)).and_then(Value::as_object) else {
            continue;
        };
        let quota_type = w
            .get("limit_window_seconds")
            .and_then(number)
            .map_or_else(|| fallback.to_owned(), window_type_from_seconds);
        q.windows.push(QuotaWindow {
            quota_type,
            model: None,
            used_pct: w.get("used_percent").and_then(normalize_pct),
            resets_at: w.get("reset_at").and_then(normalize_reset),
            raw: Value::Object(w.clone()),
        });
    }
    let reached = limits.is_some_and(|l| {
        l.get("limit_reached") == Some(&Value::Bool(true))
            || l.get("allowed") == Some(&Value::Bool(false))
    });
    q.unavailable = reached;
    q.status = if reached { "limit_reached" } else { "active" }.to_owned();
}

pub(super) fn kimi(q: &mut AccountQuota, status: u16, json: &Value) {
    if !(200..300).contains(&status) {
        q.error = Some(error_message(json, status));
        return;
    }
    if let Some(u) = json.get("usage").and_then(Value::as_object) {
        q.windows.push(kimi_window("week".to_owned(), u, u));
    }
    for limit in json
        .get("limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(o) = limit.as_object() else { continue };
        let detail = o.get("detail").and_then(Value::as_object).unwrap_or(o);
        let duration = o
            .get("window")
            .and_then(|w| w.get("duration"))
            .and_then(number);
        let quota_type = match duration {
            Some(300.0) => "5h".to_owned(),
            Some(d) => window_type_from_seconds(d * 60.0),
            None => continue,
        };
        q.windows.push(kimi_window(quota_type, detail, o));
    }
    set_active(q);
}

fn kimi_window(
    quota_type: String,
    detail: &Map<String, Value>,
    raw: &Map<String, Value>,
) -> QuotaWindow {
    let limit = detail.get("limit").and_then(number);
    let used = detail.get("used").and_then(number).or_else(|| {
        let remaining = detail.get("remaining").and_then(number)?;
        Some(limit? - remaining)
    });
    let used_pct = match (used, limit) {
        (Some(u), Some(l)) if l > 0.0 => Some((u * 100.0 / l).clamp(0.0, 100.0)),
        _ => None,
    };
    let resets_at = ["resetTime", "reset_time", "resetAt", "reset_at"]
        .iter()
        .find_map(|k| detail.get(*k).and_then(normalize_reset));
    QuotaWindow {
        quota_type,
        model: None,
        used_pct,
        resets_at,
        raw: Value::Object(raw.clone()),
    }
}

fn set_active(q: &mut AccountQuota) {
    let reached = q
        .windows
        .iter()
        .any(|w| w.used_pct.is_some_and(|u| u >= 100.0));
    q.unavailable = reached;
    q.status = if reached { "limit_reached" } else { "active" }.to_owned();
}

fn error_message(json: &Value, status: u16) -> String {
    json.get("error")
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("HTTP {status}"), str::to_owned)
}

fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}
