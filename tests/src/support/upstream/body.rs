//! Response bodies of the fake upstream: generated per API and kind, or read from a golden
//! fixture. A body is a list of events (SSE events, NDJSON lines, or one JSON document) so
//! that delays, stalls and resets can fall between them.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::ledger::{Api, Kind};

/// A response body cut into events.
pub(crate) struct Body {
    pub content_type: &'static str,
    pub kind: Kind,
    pub events: Vec<Vec<u8>>,
    /// Index of the terminal event, if the body has one.
    pub terminal: Option<usize>,
    /// Index of the event carrying the final usage, if any.
    pub usage_event: Option<usize>,
    /// The final usage the body reports.
    pub usage: Option<Value>,
}

/// What a generated body depends on.
pub(crate) struct Params<'a> {
    pub api: Api,
    pub kind: Kind,
    pub path: &'a str,
    pub model: &'a str,
    pub usage: Option<Value>,
    pub events: usize,
    pub pad: usize,
    /// The request asked for a Chat usage chunk (`stream_options.include_usage: true`).
    pub include_usage: bool,
    /// Sequence number, for ids.
    pub id: usize,
}

/// Default model of each API when neither `x-fake-model` nor the request body names one.
pub(crate) fn default_model(api: Api) -> &'static str {
    match api {
        Api::Anthropic => "claude-sonnet-4-5",
        Api::Ollama => "llama3.2",
        Api::Chat | Api::Responses | Api::Health | Api::Other => "gpt-5",
    }
}

/// Default usage each API reports when `x-fake-usage` is absent.
pub(crate) fn default_usage(api: Api, kind: Kind) -> Value {
    match (api, kind) {
        (_, Kind::Ndjson) | (Api::Ollama, _) => {
            json!({"prompt_eval_count": 1000, "eval_count": 500})
        }
        (Api::Anthropic, _) => json!({
            "input_tokens": 1000, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": 500
        }),
        (Api::Responses, _) => json!({
            "input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1500
        }),
        (Api::Chat | Api::Health | Api::Other, _) => {
            json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500})
        }
    }
}

/// Generates the body for `p`.
pub(crate) fn generate(p: &Params<'_>) -> Body {
    let mut body = match (p.kind, p.api) {
        (Kind::Ndjson, _) => ollama_ndjson(p),
        (Kind::Sse, Api::Anthropic) => anthropic_sse(p),
        (Kind::Sse, Api::Responses) => responses_sse(p),
        (Kind::Sse, _) => chat_sse(p),
        (Kind::Json, _) => json_body(p),
    };
    if p.pad > 0 {
        for event in &mut body.events {
            expand_pad(event, p.pad);
        }
    }
    body
}

/// Stands for `x-fake-pad` filler while a body is serialized: the filler (plain `x`
/// bytes, which JSON never escapes) is spliced in afterwards, because serializing 100 MiB of
/// filler through `serde_json` in a debug build takes tens of seconds.
const PAD_MARKER: &str = "~~fake-pad~~";

/// Replaces every [`PAD_MARKER`] in `event` with `pad` `x` bytes.
fn expand_pad(event: &mut Vec<u8>, pad: usize) {
    let marker = PAD_MARKER.as_bytes();
    let mut out = Vec::new();
    let mut rest: &[u8] = event;
    while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
        out.reserve(at + pad);
        out.extend_from_slice(&rest[..at]);
        out.resize(out.len() + pad, b'x');
        rest = &rest[at + marker.len()..];
    }
    if out.is_empty() && rest.len() == event.len() {
        return;
    }
    out.extend_from_slice(rest);
    *event = out;
}

/// A JSON error body in the shape of the API.
pub(crate) fn error_body(api: Api, status: u16) -> Body {
    let message = format!("fake upstream status {status}");
    let value = match api {
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
        _ => json!({"error": {"message": message, "type": "fake_error", "code": status}}),
    };
    single(Kind::Json, "application/json", to_bytes(&value), None)
}

/// A short body for a response that needs one (redirects, `/health`, unknown fixtures).
pub(crate) fn small_json(value: &Value) -> Body {
    single(Kind::Json, "application/json", to_bytes(value), None)
}

/// Reads fixture `name` (`<api>/<case>` with or without extension) under `dir`.
pub(crate) fn fixture(dir: &Path, name: &str) -> Result<Body, String> {
    if name.is_empty() || name.starts_with('/') || name.split('/').any(|part| part == "..") {
        return Err(format!(
            "fixture name {name:?} must be a relative path without `..`"
        ));
    }
    let candidates: Vec<(std::path::PathBuf, Kind)> = match kind_of_extension(name) {
        Some(kind) => vec![(dir.join(name), kind)],
        None => [
            ("sse", Kind::Sse),
            ("json", Kind::Json),
            ("ndjson", Kind::Ndjson),
        ]
        .into_iter()
        .map(|(ext, kind)| (dir.join(format!("{name}.{ext}")), kind))
        .collect(),
    };
    for (path, kind) in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let (content_type, events) = match kind {
            Kind::Sse => ("text/event-stream", split_sse(&bytes)),
            Kind::Ndjson => ("application/x-ndjson", split_lines(&bytes)),
            Kind::Json => ("application/json", vec![bytes]),
        };
        let terminal = events.len().checked_sub(1);
        return Ok(Body {
            content_type,
            kind,
            events,
            terminal,
            usage_event: None,
            usage: None,
        });
    }
    Err(format!(
        "fixture {name:?} not found under {}",
        dir.display()
    ))
}

fn kind_of_extension(name: &str) -> Option<Kind> {
    let ext = Path::new(name).extension()?.to_str()?;
    match ext {
        "sse" => Some(Kind::Sse),
        "json" => Some(Kind::Json),
        "ndjson" => Some(Kind::Ndjson),
        _ => None,
    }
}

fn anthropic_sse(p: &Params<'_>) -> Body {
    let usage = p
        .usage
        .clone()
        .unwrap_or_else(|| default_usage(Api::Anthropic, Kind::Sse));
    // message_start carries the input side and an initial output count of 1, the way the
    // real API does; message_delta then carries the cumulative final usage.
    let mut start_usage = usage.clone();
    if let Some(obj) = start_usage.as_object_mut()
        && obj.contains_key("output_tokens")
    {
        obj.insert("output_tokens".into(), json!(1));
    }
    let mut events = vec![
        sse_event(
            Some("message_start"),
            &json!({"type": "message_start", "message": {
                "id": format!("msg_fake_{}", p.id), "type": "message", "role": "assistant",
                "model": p.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": start_usage}}),
        ),
        sse_event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for i in 0..p.events {
        events.push(sse_event(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text(i, p.pad)}}),
        ));
    }
    events.push(sse_event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        Some("message_delta"),
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": usage}),
    ));
    let usage_event = events.len() - 1;
    events.push(sse_event(
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    ));
    stream(
        Kind::Sse,
        "text/event-stream",
        events,
        Some(usage_event),
        Some(usage),
    )
}

fn chat_sse(p: &Params<'_>) -> Body {
    let id = format!("chatcmpl-fake-{}", p.id);
    // With include_usage the real API puts `"usage": null` on every content chunk.
    let chunk = |delta: Value, finish: Value| {
        let mut value = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": p.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if p.include_usage
            && let Some(obj) = value.as_object_mut()
        {
            obj.insert("usage".into(), Value::Null);
        }
        sse_event(None, &value)
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for i in 0..p.events {
        events.push(chunk(json!({"content": text(i, p.pad)}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    let mut usage_event = None;
    let mut usage = None;
    if p.include_usage {
        let u = p
            .usage
            .clone()
            .unwrap_or_else(|| default_usage(Api::Chat, Kind::Sse));
        events.push(sse_event(
            None,
            &json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                    "model": p.model, "choices": [], "usage": u}),
        ));
        usage_event = Some(events.len() - 1);
        usage = Some(u);
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    stream(Kind::Sse, "text/event-stream", events, usage_event, usage)
}

fn responses_sse(p: &Params<'_>) -> Body {
    let usage = p
        .usage
        .clone()
        .unwrap_or_else(|| default_usage(Api::Responses, Kind::Sse));
    let id = format!("resp_fake_{}", p.id);
    let response = |status: &str, usage: Value| json!({"id": id, "object": "response", "model": p.model, "status": status, "usage": usage});
    let mut events = vec![
        sse_event(
            Some("response.created"),
            &json!({"type": "response.created", "sequence_number": 0,
                    "response": response("in_progress", Value::Null)}),
        ),
        sse_event(
            Some("response.in_progress"),
            &json!({"type": "response.in_progress", "sequence_number": 1,
                    "response": response("in_progress", Value::Null)}),
        ),
    ];
    for i in 0..p.events {
        events.push(sse_event(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "sequence_number": i + 2,
                    "item_id": "msg_fake", "output_index": 0, "content_index": 0,
                    "delta": text(i, p.pad)}),
        ));
    }
    events.push(sse_event(
        Some("response.completed"),
        &json!({"type": "response.completed", "sequence_number": p.events + 2,
                "response": response("completed", usage.clone())}),
    ));
    let last = events.len() - 1;
    stream(
        Kind::Sse,
        "text/event-stream",
        events,
        Some(last),
        Some(usage),
    )
}

fn ollama_ndjson(p: &Params<'_>) -> Body {
    let usage = p
        .usage
        .clone()
        .unwrap_or_else(|| default_usage(Api::Ollama, Kind::Ndjson));
    let generate = p.path == "/api/generate";
    let line = |content: String, done: bool| {
        let mut value =
            json!({"model": p.model, "created_at": "2025-01-01T00:00:00Z", "done": done});
        if let Some(obj) = value.as_object_mut() {
            if generate {
                obj.insert("response".into(), json!(content));
            } else {
                obj.insert(
                    "message".into(),
                    json!({"role": "assistant", "content": content}),
                );
            }
            if done {
                obj.insert("done_reason".into(), json!("stop"));
                if let Some(u) = usage.as_object() {
                    obj.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut bytes = to_bytes(&value);
        bytes.push(b'\n');
        bytes
    };
    let mut events: Vec<Vec<u8>> = (0..p.events).map(|i| line(text(i, p.pad), false)).collect();
    events.push(line(String::new(), true));
    let last = events.len() - 1;
    stream(
        Kind::Ndjson,
        "application/x-ndjson",
        events,
        Some(last),
        Some(usage),
    )
}

fn json_body(p: &Params<'_>) -> Body {
    let content: String =
        (0..p.events.max(1)).map(|i| text(i, 0)).collect::<String>() + pad_marker(p.pad);
    let usage = p
        .usage
        .clone()
        .unwrap_or_else(|| default_usage(p.api, Kind::Json));
    let value = match p.api {
        Api::Anthropic => json!({"id": format!("msg_fake_{}", p.id), "type": "message",
            "role": "assistant", "model": p.model,
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage}),
        Api::Chat => json!({"id": format!("chatcmpl-fake-{}", p.id), "object": "chat.completion",
            "created": 1_700_000_000, "model": p.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": usage}),
        Api::Responses => json!({"id": format!("resp_fake_{}", p.id), "object": "response",
            "model": p.model, "status": "completed",
            "output": [{"type": "message", "id": "msg_fake", "role": "assistant",
                        "content": [{"type": "output_text", "text": content}]}],
            "usage": usage}),
        Api::Ollama => {
            let mut value = json!({"model": p.model, "created_at": "2025-01-01T00:00:00Z",
                "done": true, "done_reason": "stop"});
            if let Some(obj) = value.as_object_mut() {
                if p.path == "/api/generate" {
                    obj.insert("response".into(), json!(content));
                } else {
                    obj.insert(
                        "message".into(),
                        json!({"role": "assistant", "content": content}),
                    );
                }
                if let Some(u) = usage.as_object() {
                    obj.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            value
        }
        Api::Health => json!({"status": "ok"}),
        Api::Other => {
            return small_json(&json!({"ok": true, "path": p.path, "padding": pad_marker(p.pad)}));
        }
    };
    let reports_usage = !matches!(p.api, Api::Health);
    single(
        Kind::Json,
        "application/json",
        to_bytes(&value),
        reports_usage.then_some(usage),
    )
}

fn text(i: usize, pad: usize) -> String {
    format!("word{i} {}", pad_marker(pad))
}

/// The placeholder of `pad` filler bytes (empty without padding).
fn pad_marker(pad: usize) -> &'static str {
    if pad > 0 { PAD_MARKER } else { "" }
}

fn sse_event(event: Option<&str>, data: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(name) = event {
        out.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&to_bytes(data));
    out.extend_from_slice(b"\n\n");
    out
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn single(kind: Kind, content_type: &'static str, bytes: Vec<u8>, usage: Option<Value>) -> Body {
    let usage_event = usage.as_ref().map(|_| 0);
    Body {
        content_type,
        kind,
        events: vec![bytes],
        terminal: Some(0),
        usage_event,
        usage,
    }
}

fn stream(
    kind: Kind,
    content_type: &'static str,
    events: Vec<Vec<u8>>,
    usage_event: Option<usize>,
    usage: Option<Value>,
) -> Body {
    let terminal = events.len().checked_sub(1);
    Body {
        content_type,
        kind,
        events,
        terminal,
        usage_event,
        usage,
    }
}

/// Splits SSE bytes after each blank line (LF, CRLF or CR line endings); a remainder
/// without a final blank line is the last event.
fn split_sse(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => i + 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            events.push(bytes[start..end].to_vec());
            start = end;
        }
        line_start = end;
        i = end;
    }
    if start < bytes.len() {
        events.push(bytes[start..].to_vec());
    }
    events
}

fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_spliced_into_every_text_of_the_serialized_body() {
        let params = Params {
            api: Api::Anthropic,
            kind: Kind::Sse,
            path: "/v1/messages",
            model: "m",
            usage: None,
            events: 2,
            pad: 5,
            include_usage: false,
            id: 0,
        };
        let body = generate(&params);
        let all = String::from_utf8(body.events.concat()).expect("utf-8");
        assert_eq!(all.matches("\"text\":\"word0 xxxxx\"").count(), 1, "{all}");
        assert_eq!(all.matches("\"text\":\"word1 xxxxx\"").count(), 1, "{all}");
        assert!(!all.contains(PAD_MARKER));
        let plain = generate(&Params { pad: 0, ..params });
        let text = String::from_utf8(plain.events.concat()).expect("utf-8");
        assert!(text.contains("\"text\":\"word0 \""), "{text}");
    }

    #[test]
    fn split_sse_keeps_every_byte_and_cuts_after_blank_lines() {
        let input = b"event: a\ndata: 1\n\ndata: 2\r\n\r\ndata: 3\r\rtail";
        let events = split_sse(input);
        assert_eq!(
            events,
            vec![
                b"event: a\ndata: 1\n\n".to_vec(),
                b"data: 2\r\n\r\n".to_vec(),
                b"data: 3\r\r".to_vec(),
                b"tail".to_vec()
            ]
        );
        assert_eq!(events.concat(), input.to_vec());
    }
}
