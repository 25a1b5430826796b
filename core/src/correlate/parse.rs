//! Management answers → [`UpstreamDetail`]s (`control.md` §8.2), and the timestamp parser
//! both sides of a match use.

use serde_json::{Map, Value};

use super::{DetailTokens, UpstreamDetail};
use crate::time::UnixMillis;

/// Parses a `usage-queue` body: a JSON array whose items are objects or JSON strings holding
/// one; items without a string `timestamp` are dropped. `None` when the body is not a JSON
/// array (the caller then falls back to the legacy endpoint).
pub fn parse_queue(body: &[u8]) -> Option<Vec<UpstreamDetail>> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let object = match item {
            Value::Object(o) => o,
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(o)) => o,
                _ => continue,
            },
            _ => continue,
        };
        if let Some(d) = detail(&object, None) {
            out.push(d);
        }
    }
    Some(out)
}

/// Parses a legacy `/v0/management/usage` snapshot
/// `{usage: {apis: {<api>: {models: {<model>: {details: [...]}}}}}}`; each detail takes its
/// model key as `model`. Parts of the wrong shape are skipped. `None` when the body is not a
/// JSON object.
pub fn parse_legacy(body: &[u8]) -> Option<Vec<UpstreamDetail>> {
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let mut out = Vec::new();
    let Some(apis) = root
        .get("usage")
        .and_then(|u| u.get("apis"))
        .and_then(Value::as_object)
    else {
        return Some(out);
    };
    for api in apis.values() {
        let Some(models) = api.get("models").and_then(Value::as_object) else {
            continue;
        };
        for (model, entry) in models {
            let Some(details) = entry.get("details").and_then(Value::as_array) else {
                continue;
            };
            for d in details {
                if let Some(o) = d.as_object()
                    && let Some(parsed) = detail(o, Some(model))
                {
                    out.push(parsed);
                }
            }
        }
    }
    Some(out)
}

/// Parses an ISO-8601 / RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM]`, `T` or a
/// space; no zone means UTC) to epoch milliseconds. Fractions beyond milliseconds are
/// truncated. `None` for anything else or a time before 1970.
pub fn parse_timestamp(s: &str) -> Option<UnixMillis> {
    let b = s.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let midnight = UnixMillis::from_civil_date(i64::from(year), month, day)?;
    let local = i64::try_from(midnight.0).ok()?
        + i64::from(hour) * 3_600_000
        + i64::from(minute) * 60_000
        + i64::from(second) * 1000
        + i64::try_from(millis).ok()?;
    let utc = local - offset_secs * 1000;
    u64::try_from(utc).ok().map(UnixMillis)
}

fn detail(o: &Map<String, Value>, model_key: Option<&str>) -> Option<UpstreamDetail> {
    let Some(Value::String(ts)) = o.get("timestamp") else {
        return None;
    };
    let tokens = o.get("tokens").and_then(Value::as_object);
    let token = |name: &str| tokens.map_or(0, |t| int(t.get(name)));
    Some(UpstreamDetail {
        timestamp: ts.trim().to_owned(),
        latency_ms: int(o.get("latency_ms")),
        source: text(o.get("source")),
        auth_index: text(o.get("auth_index")),
        provider: text(o.get("provider")),
        model: match model_key {
            Some(m) => m.trim().to_owned(),
            None => text(o.get("model")),
        },
        alias: text(o.get("alias")),
        endpoint: text(o.get("endpoint")),
        failed: matches!(o.get("failed"), Some(Value::Bool(true))),
        tokens: DetailTokens {
            input_tokens: token("input_tokens"),
            output_tokens: token("output_tokens"),
            reasoning_tokens: token("reasoning_tokens"),
            cached_tokens: token("cached_tokens"),
            total_tokens: token("total_tokens"),
        },
    })
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => String::new(),
    }
}

/// A JSON number as an integer: non-numbers and non-finite values are 0, fractions are
/// rounded, out-of-range values saturate.
fn int(v: Option<&Value>) -> i64 {
    let Some(Value::Number(n)) = v else {
        return 0;
    };
    if let Some(i) = n.as_i64() {
        return i;
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => f.round() as i64,
        _ => 0,
    }
}
