#!/usr/bin/env bash
# Re-records tests/fixtures/client-heads/: the request heads the real Claude Code, Codex
# (exec and TUI) and OpenCode (Anthropic and OpenAI providers) send, as the identification
# tests replay them (docs/testing-clients.md).
#
# Usage: scripts/record-client-heads.sh            (as root, or where `unshare -rn` works)
# Env:   CLAUDE_CODE_VERSION, CODEX_VERSION, OPENCODE_VERSION  versions to install
#        CLIENTS_DIR  reuse an npm install (default: a temporary directory)
#        OUT          fixture directory (default: tests/fixtures/client-heads)
#
# The CLIs are installed from npm into a temporary directory; then each one runs inside a
# network namespace that has nothing but loopback, against scripts/client-heads/
# mock-upstream.mjs, which answers like Anthropic/OpenAI and keeps only heads, with
# credentials replaced by `<secret>`. Heads are recorded as the client sends them (not as
# the proxy forwards them): identification reads the client's head.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scripts="$root/scripts/client-heads"
out=${OUT:-$root/tests/fixtures/client-heads}

if [ "${1:-}" != "--inside" ]; then
  for tool in node npm python3 ip unshare; do
    command -v "$tool" >/dev/null || {
      echo "record-client-heads: $tool not found (Debian: apt-get install nodejs npm python3 iproute2 util-linux)" >&2
      exit 1
    }
  done
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  clients=${CLIENTS_DIR:-$work/npm}
  "$scripts/install-clients.sh" "$clients"
  ns=(unshare -n)
  [ "$(id -u)" = 0 ] || ns=(unshare -rn)
  mkdir -p "$out"
  CLIENTS_BIN="$clients/node_modules/.bin" WORK="$work" OUT="$out" \
    "${ns[@]}" bash "$0" --inside
  exit $?
fi

# Inside the namespace: only loopback exists, and it starts down.
ip link set lo up
source "$scripts/clients.sh"
version() { "$CLIENTS_BIN/$1" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1; }

port=18700
# record <fixture name> <client> <command shown in the fixture> <run function> [args...]
record() {
  local name=$1 client=$2 shown=$3 fn=$4
  shift 4
  port=$((port + 1))
  local heads="$WORK/$name.jsonl" home="$WORK/home-$name"
  : >"$heads"
  RECORD_SECRETS="$KEY" node "$scripts/mock-upstream.mjs" "$port" "$heads" 2>/dev/null &
  local mock=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local status=0
  case $fn in
    run_codex_tui) "$fn" "http://127.0.0.1:$port" "$home" "$KEY" "$heads" 1 "$@" >"$WORK/$name.log" 2>&1 || status=$? ;;
    *) "$fn" "http://127.0.0.1:$port" "$home" "$KEY" "$@" >"$WORK/$name.log" 2>&1 || status=$? ;;
  esac
  kill "$mock" 2>/dev/null || true
  wait "$mock" 2>/dev/null || true
  if [ "$status" != 0 ]; then
    echo "record-client-heads: $name exited $status; its output:" >&2
    tail -20 "$WORK/$name.log" >&2
    return 1
  fi
  local bin=${client/claude-code/claude}
  node "$scripts/to-fixture.mjs" "$client" "$(version "$bin")" "$shown" "$heads" "$OUT/$name.json"
}

# A recognisable fake: a real key never exists here, and the recorder redacts this one too.
KEY="sk-record-not-a-real-key-0000"
record claude-code-print claude-code 'claude -p "hi"' run_claude
record codex-exec codex 'codex exec "hi"' run_codex_exec
record codex-tui codex 'codex "hi" (interactive TUI)' run_codex_tui
record opencode-anthropic opencode 'opencode run "hi" (provider anthropic)' run_opencode anthropic claude-sonnet-4-5
record opencode-openai opencode 'opencode run "hi" (provider openai)' run_opencode openai gpt-5
if grep -rlF "$KEY" "$OUT" >/dev/null; then
  echo "record-client-heads: a key survived redaction in $OUT" >&2
  exit 1
fi
echo "record-client-heads: fixtures in $OUT" >&2
