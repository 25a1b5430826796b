#!/usr/bin/env bash
# Instructions per proxied request, by thread, under valgrind's callgrind: a figure that load
# from other processes does not change, for before/after comparisons on a shared machine.
# Usage: bench/callgrind.sh [BIN] [BODY json|sse]   (see bench/README.md, "Instruction counts")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${1:-$TARGET_DIR/release/agent-cli-proxy}
BODY=${2:-json}
SMALL=${CG_SMALL:-200}
LARGE=${CG_LARGE:-600}
PORT_BASE=${BENCH_PORT_BASE:-18080}
MOCK_PORT=$((PORT_BASE + 11))
PROXY_PORT=$((PORT_BASE + 13))
MOCK_BIN="$TARGET_DIR/release/mock-upstream"

log() { printf '[callgrind] %s\n' "$*" >&2; }
command -v valgrind >/dev/null || { log "valgrind is required"; exit 1; }
[ -x "$MOCK_BIN" ] || { log "build the mock first: cargo build --release -p agent-cli-proxy-bench"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/acp-callgrind.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/api.json" <<'EOF'
{"anthropic":{"id":"anthropic","name":"Anthropic","models":{"claude-sonnet-4-5":{"id":"claude-sonnet-4-5","name":"Claude Sonnet 4.5","cost":{"input":3,"output":15,"cache_read":0.3,"cache_write":3.75}}}}}
EOF

# run_once N -> "thread-file instructions" lines for one daemon that served N requests
run_once() {
    local n=$1 dir="$WORK/run-$1" mock proxy stream=""
    mkdir -p "$dir/config" "$dir/data"
    "$MOCK_BIN" --addr "127.0.0.1:$MOCK_PORT" --threads 1 >"$dir/mock.log" 2>&1 &
    mock=$!
    env -i PATH="$PATH" HOME="$dir" XDG_CONFIG_HOME="$dir/config" \
        AGENT_CLI_PROXY_DATA_DIR="$dir/data" PROXY_HOST=127.0.0.1 PROXY_PORT="$PROXY_PORT" \
        CLI_PROXY_API_URL="http://127.0.0.1:$MOCK_PORT" DB_PATH="$dir/proxy.db" \
        PRICING_CACHE_PATH="$dir/pricing-cache.json" PRICING_URL="file://$WORK/api.json" \
        LOG_LEVEL=info valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$dir/cg.out" "$BIN" serve >"$dir/stdout.log" 2>"$dir/stderr.log" &
    proxy=$!
    local _
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$PROXY_PORT/health" && break
        sleep 0.2
    done
    [ "$BODY" = sse ] && stream='"stream":true,'
    # One keep-alive connection, sequential requests: concurrency 1, as the latency goal.
    python3 - "$PROXY_PORT" "$n" "$stream" <<'EOF'
import http.client, sys
port, n, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = ('{"model":"claude-sonnet-4-5","max_tokens":1024,%s'
        '"messages":[{"role":"user","content":"Say hello."}]}' % stream)
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/v1/messages", body, {
        "Content-Type": "application/json", "anthropic-version": "2023-06-01",
        "User-Agent": "claude-cli/2.1.37 (external, cli)",
        "x-api-key": "sk-ant-bench-0000000000000000",
        "x-claude-code-session-id": "5f0c2a4e-7b1d-4c3e-9a8f-0123456789ab"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        sys.exit("status %d" % resp.status)
EOF
    kill -TERM "$proxy"
    wait "$proxy" || true
    kill "$mock" 2>/dev/null || true
    wait "$mock" 2>/dev/null || true
    local f
    # CG_KEEP=DIR keeps the per-thread profiles for callgrind_annotate.
    [ -n "${CG_KEEP:-}" ] && mkdir -p "$CG_KEEP/$n" && cp "$dir"/cg.out-* "$CG_KEEP/$n/"
    for f in "$dir"/cg.out-*; do
        printf '%s %s\n' "${f##*-}" "$(awk '/^(summary|totals):/ {print $2; exit}' "$f")"
    done
}

log "$BIN, $BODY: $SMALL then $LARGE sequential requests under callgrind"
run_once "$SMALL" >"$WORK/small.txt"
run_once "$LARGE" >"$WORK/large.txt"
# Thread files are numbered in creation order: 01 main, 02 bootstrap logger, 03 logger,
# 04 SQLite writer, then runtime workers and blocking threads. The difference between the
# two runs, divided by the extra requests, removes startup and shutdown.
echo "| thread file | role | instructions per request |"
echo "|---|---|---:|"
join "$WORK/small.txt" "$WORK/large.txt" | awk -v d=$((LARGE - SMALL)) '{
    role = "worker or blocking"
    if ($1 == "01") role = "main"; else if ($1 == "02") role = "bootstrap logger"
    else if ($1 == "03") role = "logger"; else if ($1 == "04") role = "sqlite writer"
    per = ($3 - $2) / d
    total += per
    if (per >= 50) printf "| %s | %s | %.0f |\n", $1, role, per
} END { printf "| all | | %.0f |\n", total }'
