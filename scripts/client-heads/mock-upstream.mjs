// A tiny upstream that answers like Anthropic and OpenAI and records every request head.
//
// Usage: node mock-upstream.mjs <port> <heads.jsonl>
//
// It exists so scripts/record-client-heads.sh can run the real coding CLIs against something
// that answers them well enough to make their ordinary calls; it is not a test double of the
// proxy's upstream (the test suite has its own). Only heads are kept: method, target and the
// headers in the order received; bodies are read and dropped, except for `model` and
// `stream`, which choose the answer. Secrets are replaced before anything is written
// (see redact()).
//
// Answers: POST .../messages/count_tokens -> {"input_tokens":12}; POST .../messages -> an
// Anthropic message (SSE when "stream": true); POST .../responses -> a Responses stream
// (JSON when "stream" is not true); POST .../chat/completions -> a Chat Completions stream
// or JSON; GET .../models -> a short model list; anything else -> 404 JSON. Usage is fixed
// (input 12, output 3) so the heads, not the numbers, are the point.

import http from "node:http";
import fs from "node:fs";

const [port, out] = process.argv.slice(2);
if (!port || !out) {
  console.error("usage: node mock-upstream.mjs <port> <heads.jsonl>");
  process.exit(2);
}

// Header names whose whole value is a credential or a cookie.
const SECRET_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "api-key",
  "x-goog-api-key",
  "cookie",
  "chatgpt-account-id",
]);

// Every credential the recording script hands to a client; any header value that contains
// one is redacted even under another name.
const KNOWN_SECRETS = (process.env.RECORD_SECRETS || "").split(",").filter(Boolean);

function redact(name, value) {
  if (SECRET_HEADERS.has(name)) {
    const scheme = /^(bearer|basic)\s+/i.exec(value);
    return scheme ? `${scheme[0]}<secret>` : "<secret>";
  }
  let v = value;
  for (const s of KNOWN_SECRETS) v = v.split(s).join("<secret>");
  return v;
}

function headsOf(req) {
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    headers.push([name, redact(name, req.rawHeaders[i + 1])]);
  }
  return { method: req.method, target: req.url, headers };
}

const usage = { input: 12, output: 3 };

function sse(res, events) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const [name, data] of events) {
    res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }
  res.end();
}

function json(res, status, body) {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "content-type": "application/json", "content-length": bytes.length });
  res.end(bytes);
}

function anthropic(res, model, stream) {
  const message = {
    id: "msg_mock",
    type: "message",
    role: "assistant",
    model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: {
      input_tokens: usage.input,
      output_tokens: 1,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
  };
  if (!stream) {
    return json(res, 200, {
      ...message,
      content: [{ type: "text", text: "hello" }],
      stop_reason: "end_turn",
      usage: { ...message.usage, output_tokens: usage.output },
    });
  }
  sse(res, [
    ["message_start", { type: "message_start", message }],
    ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
    ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "hello" } }],
    ["content_block_stop", { type: "content_block_stop", index: 0 }],
    ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.output } }],
    ["message_stop", { type: "message_stop" }],
  ]);
}

function responses(res, model, stream) {
  const item = {
    id: "msg_mock",
    type: "message",
    role: "assistant",
    status: "completed",
    content: [{ type: "output_text", text: "hello", annotations: [] }],
  };
  const base = { id: "resp_mock", object: "response", created_at: Math.floor(Date.now() / 1000), model };
  const done = {
    ...base,
    status: "completed",
    output: [item],
    usage: {
      input_tokens: usage.input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.input + usage.output,
    },
  };
  if (!stream) return json(res, 200, done);
  sse(res, [
    ["response.created", { type: "response.created", sequence_number: 0, response: { ...base, status: "in_progress", output: [] } }],
    ["response.output_item.added", { type: "response.output_item.added", sequence_number: 1, output_index: 0, item: { ...item, status: "in_progress", content: [] } }],
    ["response.content_part.added", { type: "response.content_part.added", sequence_number: 2, item_id: "msg_mock", output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [] } }],
    ["response.output_text.delta", { type: "response.output_text.delta", sequence_number: 3, item_id: "msg_mock", output_index: 0, content_index: 0, delta: "hello" }],
    ["response.output_text.done", { type: "response.output_text.done", sequence_number: 4, item_id: "msg_mock", output_index: 0, content_index: 0, text: "hello" }],
    ["response.content_part.done", { type: "response.content_part.done", sequence_number: 5, item_id: "msg_mock", output_index: 0, content_index: 0, part: item.content[0] }],
    ["response.output_item.done", { type: "response.output_item.done", sequence_number: 6, output_index: 0, item }],
    ["response.completed", { type: "response.completed", sequence_number: 7, response: done }],
  ]);
}

function chat(res, model, stream) {
  const u = { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output };
  const base = { id: "chatcmpl-mock", object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model };
  if (!stream) {
    return json(res, 200, {
      ...base,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
      usage: u,
    });
  }
  res.writeHead(200, { "content-type": "text/event-stream" });
  const chunks = [
    { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { content: "hello" }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    { ...base, choices: [], usage: u },
  ];
  for (const c of chunks) res.write(`data: ${JSON.stringify(c)}\n\n`);
  res.end("data: [DONE]\n\n");
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    fs.appendFileSync(out, JSON.stringify(headsOf(req)) + "\n");
    let body = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8")) || {};
    } catch {
      body = {};
    }
    const model = typeof body.model === "string" ? body.model : "mock-model";
    const stream = body.stream === true || body.stream === "true";
    const path = req.url.split("?")[0];
    if (req.method === "POST" && path.endsWith("/messages/count_tokens")) {
      return json(res, 200, { input_tokens: usage.input });
    }
    if (req.method === "POST" && path.endsWith("/messages")) return anthropic(res, model, stream);
    if (req.method === "POST" && path.endsWith("/responses")) return responses(res, model, stream);
    if (req.method === "POST" && path.endsWith("/chat/completions")) return chat(res, model, stream);
    if (req.method === "GET" && path.endsWith("/models")) {
      return json(res, 200, {
        object: "list",
        data: [{ id: model, object: "model", type: "model", display_name: model, created_at: "2025-01-01T00:00:00Z" }],
      });
    }
    json(res, 404, { error: { type: "not_found_error", message: `mock: no route for ${req.method} ${path}` } });
  });
});

server.listen(Number(port), "127.0.0.1", () => {
  console.error(`mock upstream on 127.0.0.1:${port}, heads -> ${out}`);
});
