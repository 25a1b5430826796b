//! Fuzz bodies of the `usage` module's targets.
//!
//! Each body reads the input as a recipe for an event sequence: every event sets each usage
//! field to nothing, a valid count or a hostile value (negative, above 2^63 − 1, fractional,
//! string, null, object). A reference model tracks the last valid value of each field; the
//! extracted record must equal it after every event, and feeding every event twice must give
//! the same record. The raw input is also fed as-is, which must not panic.

use bytes::Bytes;

use crate::exchange::relay::{BodyKind, Relay, RelayConfig};
use crate::usage::{Convention, UsageRecord, UsageState, extract_plain};

const HOSTILE: [&str; 8] = [
    "null",
    "-1",
    "9223372036854775808",
    "18446744073709551616",
    "1.5",
    "\"7\"",
    "{}",
    "[3]",
];

/// A generated field: its JSON text and the count it is worth, or `None` when absent.
type Field = Option<(String, Option<u64>)>;

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A field: `(json text, valid value)`, or `None` when absent.
    fn field(&mut self) -> Field {
        let b = self.byte().unwrap_or(0);
        match b % 4 {
            0 => None,
            1 => {
                let v = u64::from(u16::from_le_bytes([
                    self.byte().unwrap_or(0),
                    self.byte().unwrap_or(0),
                ]));
                Some((v.to_string(), Some(v)))
            }
            2 => Some((HOSTILE[usize::from(b / 4) % HOSTILE.len()].to_owned(), None)),
            _ => Some((i64::MAX.to_string(), Some(i64::MAX as u64))),
        }
    }

    fn model(&mut self) -> Option<String> {
        match self.byte().unwrap_or(0) % 4 {
            0 => None,
            1 => Some(String::new()),
            n => Some(format!("model-{n}")),
        }
    }
}

fn obj(fields: &[(&str, &Field)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|(t, _)| format!("\"{k}\":{t}")))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn set(slot: &mut Option<u64>, f: &Field) {
    if let Some((_, Some(v))) = f {
        *slot = Some(*v);
    }
}

fn val(f: &Field) -> Option<u64> {
    f.as_ref().and_then(|(_, v)| *v)
}

fn check_twice(
    events: &[(Option<&str>, String)],
    expect: Option<UsageRecord>,
    model: Option<&str>,
) {
    let mut once = UsageState::new();
    let mut twice = UsageState::new();
    for (name, data) in events {
        once.observe_sse_event(name.map(str::as_bytes), data.as_bytes());
        twice.observe_sse_event(name.map(str::as_bytes), data.as_bytes());
        twice.observe_sse_event(name.map(str::as_bytes), data.as_bytes());
        assert_eq!(
            once.record(),
            twice.record(),
            "replaying {data} changed the record"
        );
    }
    assert_eq!(
        once.record(),
        expect,
        "record differs from the last reported values"
    );
    assert_eq!(once.actual_model(), model, "actual model differs");
}

/// Fuzz body of `usage_anthropic`.
pub fn usage_anthropic(data: &[u8]) {
    let mut st = UsageState::new();
    st.observe_sse_event(None, data);
    let _ = extract_plain(data);

    let mut c = Cursor(data);
    let mut events = Vec::new();
    let (mut input, mut read, mut creation, mut output) = (None, None, None, None);
    let mut split: Option<(u64, u64)> = None;
    let mut seen = false;
    let mut model: Option<String> = None;
    while let Some(op) = c.byte() {
        let (i, r, cc, o) = (c.field(), c.field(), c.field(), c.field());
        let object = (op & 2 != 0).then(|| (c.field(), c.field()));
        let mut usage = obj(&[
            ("input_tokens", &i),
            ("cache_read_input_tokens", &r),
            ("cache_creation_input_tokens", &cc),
            ("output_tokens", &o),
        ]);
        if let Some((a, b)) = &object {
            usage.pop();
            let inner = obj(&[
                ("ephemeral_5m_input_tokens", a),
                ("ephemeral_1h_input_tokens", b),
            ]);
            let sep = if usage.len() > 1 { "," } else { "" };
            usage = format!("{usage}{sep}\"cache_creation\":{inner}}}");
        }
        seen = true;
        set(&mut input, &i);
        set(&mut read, &r);
        set(&mut output, &o);
        if let Some((a, b)) = &object {
            split = Some((val(a).unwrap_or(0), val(b).unwrap_or(0)));
        } else if val(&cc).is_some() {
            split = None;
        }
        set(&mut creation, &cc);
        if op & 1 == 0 {
            let m = c.model();
            if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
                model = Some(m.clone());
            }
            let m = m.map_or(String::new(), |m| format!(",\"model\":\"{m}\""));
            events.push((
                Some("message_start"),
                format!("{{\"type\":\"message_start\",\"message\":{{\"usage\":{usage}{m}}}}}"),
            ));
        } else {
            events.push((
                Some("message_delta"),
                format!("{{\"type\":\"message_delta\",\"usage\":{usage}}}"),
            ));
        }
    }
    let (w5, w1) = split.unwrap_or((creation.unwrap_or(0), 0));
    let expect = seen.then_some(UsageRecord {
        convention: Convention::Anthropic,
        input_uncached: input.unwrap_or(0),
        cache_read: read.unwrap_or(0),
        cache_write_5m: w5,
        cache_write_1h: w1,
        output: output.unwrap_or(0),
        reasoning: 0,
    });
    check_twice(&events, expect, model.as_deref());
}

fn openai_record(p: Option<u64>, k: Option<u64>, c: Option<u64>, r: Option<u64>) -> UsageRecord {
    UsageRecord {
        convention: Convention::OpenAi,
        input_uncached: p.unwrap_or(0).saturating_sub(k.unwrap_or(0)),
        cache_read: k.unwrap_or(0),
        cache_write_5m: 0,
        cache_write_1h: 0,
        output: c.unwrap_or(0),
        reasoning: r.unwrap_or(0),
    }
}

/// Fuzz body of `usage_openai_chat`.
pub fn usage_openai_chat(data: &[u8]) {
    let mut st = UsageState::new();
    st.observe_sse_event(None, data);
    let _ = st.data_line_is_usage_chunk(data);

    let mut c = Cursor(data);
    let mut events = Vec::new();
    let mut expect = None;
    let mut model: Option<String> = None;
    while let Some(op) = c.byte() {
        let m = c.model();
        if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
            model = Some(m.clone());
        }
        let m = m.map_or(String::new(), |m| format!("\"model\":\"{m}\","));
        let choices = if op & 1 == 0 {
            "[]"
        } else {
            "[{\"index\":0,\"delta\":{\"content\":\"x\"}}]"
        };
        let usage = if op & 2 == 0 {
            "null".to_owned()
        } else {
            let (p, k, cc, r) = (c.field(), c.field(), c.field(), c.field());
            expect = Some(openai_record(val(&p), val(&k), val(&cc), val(&r)));
            let mut u = obj(&[("prompt_tokens", &p), ("completion_tokens", &cc)]);
            u.pop();
            let sep = if u.len() > 1 { "," } else { "" };
            format!(
                "{u}{sep}\"prompt_tokens_details\":{},\"completion_tokens_details\":{}}}",
                obj(&[("cached_tokens", &k)]),
                obj(&[("reasoning_tokens", &r)])
            )
        };
        events.push((None, format!("{{\"object\":\"chat.completion.chunk\",{m}\"choices\":{choices},\"usage\":{usage}}}")));
    }
    check_twice(&events, expect, model.as_deref());
}

/// Fuzz body of `usage_responses`.
pub fn usage_responses(data: &[u8]) {
    let mut st = UsageState::new();
    st.observe_sse_event(Some(b"response.completed"), data);

    const TYPES: [&str; 6] = [
        "response.created",
        "response.in_progress",
        "response.output_text.delta",
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    let mut c = Cursor(data);
    let mut events = Vec::new();
    let mut expect = None;
    let mut model: Option<String> = None;
    while let Some(op) = c.byte() {
        let ty = TYPES[usize::from(op) % TYPES.len()];
        let m = c.model();
        let reads_model = !ty.ends_with(".delta");
        if reads_model && let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
            model = Some(m.clone());
        }
        let m = m.map_or(String::new(), |m| format!("\"model\":\"{m}\","));
        let (p, k, cc, r) = (c.field(), c.field(), c.field(), c.field());
        let terminal = TYPES[3..].contains(&ty);
        let with_usage = op & 8 != 0;
        if terminal && with_usage {
            expect = Some(openai_record(val(&p), val(&k), val(&cc), val(&r)));
        }
        let usage = if with_usage {
            let mut u = obj(&[("input_tokens", &p), ("output_tokens", &cc)]);
            u.pop();
            let sep = if u.len() > 1 { "," } else { "" };
            format!(
                "{u}{sep}\"input_tokens_details\":{},\"output_tokens_details\":{}}}",
                obj(&[("cached_tokens", &k)]),
                obj(&[("reasoning_tokens", &r)])
            )
        } else {
            "null".to_owned()
        };
        let name = (op & 16 != 0).then_some(ty);
        events.push((
            name,
            format!("{{\"type\":\"{ty}\",\"response\":{{{m}\"usage\":{usage}}}}}"),
        ));
    }
    check_twice(&events, expect, model.as_deref());
}

/// Fuzz body of `usage_ndjson`: the event recipe as Ollama lines, also relayed in chunks.
pub fn usage_ndjson(data: &[u8]) {
    let mut st = UsageState::new();
    st.observe_ndjson_line(data);

    let mut c = Cursor(data);
    let mut body = String::new();
    let mut expect = None;
    let mut model: Option<String> = None;
    let mut terminal = None;
    while let Some(op) = c.byte() {
        let m = c.model();
        if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
            model = Some(m.clone());
        }
        let m = m.map_or(String::new(), |m| format!("\"model\":\"{m}\","));
        let (p, e) = (c.field(), c.field());
        let done = op & 1 == 1;
        let counts_present = |f: &Field| f.as_ref().is_some_and(|(t, _)| t.parse::<f64>().is_ok());
        if done && terminal.is_none() {
            terminal = Some(body.len() as u64);
        }
        if done && (counts_present(&p) || counts_present(&e)) {
            expect = Some(UsageRecord {
                cache_read: 0,
                ..openai_record(val(&p), None, val(&e), None)
            });
        }
        let mut line = obj(&[("prompt_eval_count", &p), ("eval_count", &e)]);
        line.pop();
        let sep = if line.len() > 1 { "," } else { "" };
        body.push_str(&format!("{{{m}{}{sep}\"done\":{done}}}\n", &line[1..]));
    }
    let mut relay = Relay::new(BodyKind::Ndjson, RelayConfig::default());
    let mut out = Vec::new();
    for piece in body
        .as_bytes()
        .chunks(1 + usize::from(data.first().copied().unwrap_or(0) % 13))
    {
        out.extend(relay.push(Bytes::copy_from_slice(piece)).release.concat());
    }
    out.extend(relay.finish().release.concat());
    out.extend(relay.release_held().concat());
    assert_eq!(out, body.as_bytes(), "NDJSON relay is not byte-exact");
    assert_eq!(relay.terminal_offset(), terminal, "terminal line");
    assert_eq!(
        relay.usage().record,
        expect,
        "record differs from the last done line"
    );
    assert_eq!(relay.usage().actual_model, model.as_deref(), "actual model");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_bodies_hold_their_oracles_on_sample_recipes() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let len = rng.usize(0..120);
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            usage_anthropic(&data);
            usage_openai_chat(&data);
            usage_responses(&data);
            usage_ndjson(&data);
        }
    }
}
