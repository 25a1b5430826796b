// Turns the heads one client run left in a .jsonl file into a fixture of
// tests/fixtures/client-heads/: the heads in order, each with the tool and instance name the
// proxy must give it (docs/datapath.md §6.2–§6.3), written from what the client is known to
// send, so the identification tests compare the Rust rule table against this independent
// statement of it.
//
// Usage: node to-fixture.mjs <client> <version> <command> <heads.jsonl> <out.json>
// <client> is one of claude-code, codex, opencode.

import fs from "node:fs";

const [client, version, command, input, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node to-fixture.mjs <client> <version> <command> <heads.jsonl> <out.json>");
  process.exit(2);
}

// Where each client carries its session id when it talks to the Anthropic or OpenAI API.
const SESSION_HEADERS = {
  "claude-code": ["x-claude-code-session-id"],
  codex: ["session-id"],
  opencode: ["x-opencode-session", "x-session-id"],
};
if (!(client in SESSION_HEADERS)) {
  console.error(`unknown client ${client}`);
  process.exit(2);
}

function header(headers, name) {
  const hit = headers.find(([n, v]) => n === name && v.trim() !== "");
  return hit ? hit[1].trim() : null;
}

const requests = fs
  .readFileSync(input, "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l))
  .map((head) => {
    const session = SESSION_HEADERS[client].map((n) => header(head.headers, n)).find((v) => v);
    const instance = session ? Array.from(session).slice(0, 8).join("") : null;
    return { ...head, expect: { tool: client, instance } };
  });
if (requests.length === 0) {
  console.error(`${input}: the client made no request`);
  process.exit(1);
}
const fixture = { client, version, command, recorded: new Date().toISOString().slice(0, 10), requests };
// One header per line keeps the fixtures readable and their diffs small.
const text = JSON.stringify(fixture, null, 2).replace(
  /\[\n\s*("(?:[^"\\]|\\.)*"),\n\s*("(?:[^"\\]|\\.)*")\n\s*\]/g,
  "[$1, $2]",
);
fs.writeFileSync(out, text + "\n");
console.error(`${out}: ${requests.length} head(s)`);
