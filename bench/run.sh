#!/usr/bin/env bash
# Load benchmark of agent-cli-proxy: direct-to-mock against an nginx relay, the tokio build
# and the smol build, for JSON and SSE bodies, with accounting and logging on.
# Usage: bench/run.sh            (see bench/README.md for the knobs)
# Prints one markdown table and writes it, with the raw figures, to bench/results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/bench"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-1s}
PORT_BASE=${BENCH_PORT_BASE:-18080}
MOCK_THREADS=${BENCH_MOCK_THREADS:-2}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results.md}

MOCK_PORT=$((PORT_BASE + 1))
NGINX_PORT=$((PORT_BASE + 2))
TOKIO_PORT=$((PORT_BASE + 3))
SMOL_PORT=$((PORT_BASE + 4))
PG_PORT=$((PORT_BASE + 5))
PG_PROXY_PORT=$((PORT_BASE + 6))
# BENCH_PG=0 leaves out the tokio build on PostgreSQL (docs/replicas.md), a local server
# started here in the same run.
BENCH_PG=${BENCH_PG:-1}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
need_tool() { # need_tool CMD PACKAGE -> 0 when CMD is (now) available
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing $2"
        if [ -z "${APT_UPDATED:-}" ]; then
            apt-get update -qq >/dev/null 2>&1 || true
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || true
    fi
    command -v "$1" >/dev/null 2>&1
}
need_tool wrk wrk || die "wrk is required (apt-get install wrk)"
need_tool curl curl || die "curl is required"
need_tool sqlite3 sqlite3 || die "sqlite3 is required for the accounting check"
HAVE_NGINX=1
if ! need_tool nginx nginx && ! [ -x /usr/sbin/nginx ]; then
    HAVE_NGINX=0
    log "nginx: not installed and cannot be installed; skipping the nginx row"
fi
NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
PG_BIN_DIR=${PG_BIN:-}
if [ "$BENCH_PG" = 1 ] && [ -z "$PG_BIN_DIR" ]; then
    if command -v initdb >/dev/null 2>&1; then
        # Through symlinks: a machine may link initdb and pg_ctl alone onto the PATH.
        PG_BIN_DIR=$(dirname "$(readlink -f "$(command -v initdb)")")
    else
        compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_tool psql postgresql || true
        PG_BIN_DIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    fi
    if [ ! -x "$PG_BIN_DIR/initdb" ]; then
        BENCH_PG=0
        log "postgresql: initdb not found (apt-get install postgresql); skipping the tokio-pg row"
    fi
fi

# ---------------------------------------------------------------- build
cd "$ROOT"
log "building --release: mock-upstream, agent-cli-proxy"
cargo build --release -q -p agent-cli-proxy-bench -p agent-cli-proxy
MOCK_BIN="$TARGET_DIR/release/mock-upstream"
TOKIO_BIN="$TARGET_DIR/release/agent-cli-proxy"
SMOL_BIN="$TARGET_DIR/release/agent-cli-proxy-smol"
HAVE_SMOL=1
log "building --release: agent-cli-proxy-smol"
if ! cargo build --release -q -p agent-cli-proxy-smol 2>/dev/null; then
    HAVE_SMOL=0
    echo "smol: not available (cargo build --release -p agent-cli-proxy-smol failed)"
fi

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/acp-bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${BENCH_KEEP:-}" ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$MOCK_PORT" "$NGINX_PORT" "$TOKIO_PORT" "$SMOL_PORT" "$PG_PORT" "$PG_PROXY_PORT"; do
    port_free "$port" || die "port $port is in use; set BENCH_PORT_BASE"
done

wait_health() { # wait_health PORT PID -> 0 when /health answers 200 within 10 s
    local _
    for _ in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || return 1
        curl -sf -o /dev/null "http://127.0.0.1:$1/health" && return 0
        sleep 0.1
    done
    return 1
}

rss_kib() { # rss_kib PID... -> summed VmRSS in KiB
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

cat >"$WORK/api.json" <<'EOF'
{"anthropic":{"id":"anthropic","name":"Anthropic","models":{"claude-sonnet-4-5":{"id":"claude-sonnet-4-5","name":"Claude Sonnet 4.5","cost":{"input":3,"output":15,"cache_read":0.3,"cache_write":3.75}}}}}
EOF

"$MOCK_BIN" --addr "127.0.0.1:$MOCK_PORT" --threads "$MOCK_THREADS" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
wait_health "$MOCK_PORT" "$MOCK_PID" || die "mock-upstream did not start (see $WORK/mock.log)"

start_proxy() { # start_proxy NAME BIN PORT [VAR=VALUE...] -> sets PROXY_PID
    local dir="$WORK/$1"
    mkdir -p "$dir/config" "$dir/data"
    env -i PATH="$PATH" HOME="$dir" "${@:4}" \
        XDG_CONFIG_HOME="$dir/config" AGENT_CLI_PROXY_DATA_DIR="$dir/data" \
        PROXY_HOST=127.0.0.1 PROXY_PORT="$3" \
        CLI_PROXY_API_URL="http://127.0.0.1:$MOCK_PORT" \
        DB_PATH="$dir/proxy.db" PRICING_CACHE_PATH="$dir/pricing-cache.json" \
        PRICING_URL="file://$WORK/api.json" LOG_LEVEL=info \
        "$2" serve >"$dir/stdout.log" 2>"$dir/stderr.log" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
}

declare -A PID_OF RSS_OF SIZE_OF PORT_OF
TARGETS=(direct)
PORT_OF[direct]=$MOCK_PORT

if [ "$HAVE_NGINX" = 1 ]; then
    mkdir -p "$WORK/nginx/tmp"
    user_line=""
    [ "$(id -u)" = 0 ] && user_line="user root;"
    cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
    "$NGINX_BIN" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        >"$WORK/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    if wait_health "$NGINX_PORT" "$NGINX_PID"; then
        TARGETS+=(nginx)
        PID_OF[nginx]=$NGINX_PID
        PORT_OF[nginx]=$NGINX_PORT
        SIZE_OF[nginx]=$(stat -L -c %s "$NGINX_BIN")
    else
        log "nginx: did not start (see $WORK/nginx/error.log); skipping the nginx row"
    fi
fi

start_proxy tokio "$TOKIO_BIN" "$TOKIO_PORT"
wait_health "$TOKIO_PORT" "$PROXY_PID" ||
    die "agent-cli-proxy did not serve /health (see $WORK/tokio/stderr.log)"
TARGETS+=(tokio)
PID_OF[tokio]=$PROXY_PID
PORT_OF[tokio]=$TOKIO_PORT
SIZE_OF[tokio]=$(stat -c %s "$TOKIO_BIN")

if [ "$HAVE_SMOL" = 1 ]; then
    start_proxy smol "$SMOL_BIN" "$SMOL_PORT"
    if wait_health "$SMOL_PORT" "$PROXY_PID"; then
        TARGETS+=(smol)
        PID_OF[smol]=$PROXY_PID
        PORT_OF[smol]=$SMOL_PORT
        SIZE_OF[smol]=$(stat -c %s "$SMOL_BIN")
    else
        HAVE_SMOL=0
        echo "smol: not available (agent-cli-proxy-smol serve did not answer /health)"
        kill "$PROXY_PID" 2>/dev/null || true
    fi
fi

# The tokio build on PostgreSQL: a local server with its default durability (fsync on),
# owned by the postgres user when this runs as root (PostgreSQL refuses root).
pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$BENCH_PG" = 1 ]; then
    PG_DATA="$WORK/pg"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$PG_DATA" "$WORK"
    if pg_as "$PG_BIN_DIR/initdb" -D "$PG_DATA/data" -U postgres --auth=trust --locale=C -E UTF8 \
        >"$WORK/pg-initdb.log" 2>&1 &&
        pg_as "$PG_BIN_DIR/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w \
            -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 &&
        pg_as "$PG_BIN_DIR/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres acp_bench \
            >>"$WORK/pg-initdb.log" 2>&1; then
        PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/acp_bench?sslmode=disable"
        start_proxy tokio-pg "$TOKIO_BIN" "$PG_PROXY_PORT" DATABASE_URL="$PG_URL" \
            SPOOL_DIR="$WORK/tokio-pg/spool"
        if wait_health "$PG_PROXY_PORT" "$PROXY_PID"; then
            TARGETS+=(tokio-pg)
            PID_OF[tokio-pg]=$PROXY_PID
            PORT_OF[tokio-pg]=$PG_PROXY_PORT
            SIZE_OF[tokio-pg]=$(stat -c %s "$TOKIO_BIN")
        else
            BENCH_PG=0
            log "tokio-pg: did not serve /health (see $WORK/tokio-pg/stdout.log)"
        fi
    else
        BENCH_PG=0
        log "postgresql: could not start; initdb and server logs follow"
        tail -n 5 "$WORK/pg-initdb.log" "$PG_DATA/server.log" >&2 2>/dev/null || true
    fi
fi
stop_pg() {
    [ -n "${PG_DATA:-}" ] && pg_as "$PG_BIN_DIR/pg_ctl" -D "$PG_DATA/data" -m fast stop >/dev/null 2>&1 || true
}
trap 'stop_pg; cleanup' EXIT

# Idle RSS: every server has answered /health; give them 2 s of quiet first.
sleep 2
for t in "${TARGETS[@]}"; do
    case $t in
    direct) ;;
    nginx)
        mapfile -t workers < <(pgrep -P "${PID_OF[nginx]}" || true)
        RSS_OF[nginx]=$(rss_kib "${PID_OF[nginx]}" "${workers[@]}")
        ;;
    *) RSS_OF[$t]=$(rss_kib "${PID_OF[$t]}") ;;
    esac
done

# ---------------------------------------------------------------- load
cat >"$WORK/json.lua" <<'EOF'
wrk.method = "POST"
wrk.path = "/v1/messages"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
-- What Claude Code sends (tests/fixtures/client-heads/): its user-agent, its own key, a
-- session id, so the proxy does the identification work it does for real clients.
wrk.headers["User-Agent"] = "claude-cli/2.1.37 (external, cli)"
wrk.headers["x-api-key"] = "sk-ant-bench-0000000000000000"
wrk.headers["x-claude-code-session-id"] = "5f0c2a4e-7b1d-4c3e-9a8f-0123456789ab"
wrk.body = '{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Say hello."}]}'
EOF
sed 's/"max_tokens":1024,/"max_tokens":1024,"stream":true,/' "$WORK/json.lua" >"$WORK/sse.lua"

to_us() { # wrk latency text (850.00us, 1.23ms, 1.00s, 2.00m) -> microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000
        else if (v ~ /m$/) m = 60000000; else if (v ~ /s$/) m = 1000000; else m = 1
        printf "%.0f", n * m }'
}

declare -A RPS P50 P90 P99 REQS ERRS
declare -A SENT # wrk-counted responses per target, warm-ups included
declare -A CPU THREADS # CPU µs per request at c=16: total, and per thread name (proxies)
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
PID_OF[direct]=$MOCK_PID

thread_ticks() { # thread_ticks PID -> "name ticks" per thread name, summed
    local task
    for task in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' _ <"$task/comm" 2>/dev/null)" \
            "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)"
    done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
target_ticks() { # target_ticks TARGET -> CPU ticks of its processes (nginx: master + workers)
    local pid total=0 t
    local pids=("${PID_OF[$1]}")
    if [ "$1" = nginx ]; then
        mapfile -t -O 1 pids < <(pgrep -P "${PID_OF[nginx]}" || true)
    fi
    for pid in "${pids[@]}"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

run_wrk() { # run_wrk OUT THREADS CONNS DURATION LUA URL
    wrk -t"$2" -c"$3" -d"$4" --latency -s "$5" "$6" >"$1" 2>&1 || true
}
wrk_requests() { awk '/ requests in / {print $1}' "$1" | head -1; }
wrk_errors() {
    awk '/Non-2xx or 3xx responses:/ {e += $NF}
         /Socket errors:/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
         END {print e + 0}' "$1"
}
wrk_pct() { to_us "$(awk -v p="$2" '$1 == p {print $2}' "$1" | head -1)"; }

for t in "${TARGETS[@]}"; do
    SENT[$t]=0
    url="http://127.0.0.1:${PORT_OF[$t]}"
    for body in json sse; do
        out="$WORK/wrk-$t-$body"
        log "$t $body: warm-up $WARMUP, c=16 $DURATION, c=1 $DURATION"
        run_wrk "$out-warm.txt" 2 16 "$WARMUP" "$WORK/$body.lua" "$url"
        ticks0=$(target_ticks "$t")
        thread_ticks "${PID_OF[$t]}" >"$out-threads0.txt"
        run_wrk "$out-c16.txt" 2 16 "$DURATION" "$WORK/$body.lua" "$url"
        ticks1=$(target_ticks "$t")
        thread_ticks "${PID_OF[$t]}" >"$out-threads1.txt"
        run_wrk "$out-c1.txt" 1 1 "$DURATION" "$WORK/$body.lua" "$url"
        k="$t/$body"
        RPS[$k]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out-c16.txt")
        P50[$k]=$(wrk_pct "$out-c1.txt" 50%)
        P90[$k]=$(wrk_pct "$out-c1.txt" 90%)
        P99[$k]=$(wrk_pct "$out-c1.txt" 99%)
        REQS[$k]=0
        ERRS[$k]=0
        for phase in warm c16 c1; do
            n=$(wrk_requests "$out-$phase.txt")
            e=$(wrk_errors "$out-$phase.txt")
            REQS[$k]=$((REQS[$k] + ${n:-0}))
            ERRS[$k]=$((ERRS[$k] + ${e:-0}))
        done
        SENT[$t]=$((SENT[$t] + REQS[$k]))
        n16=$(wrk_requests "$out-c16.txt")
        n16=${n16:-0}
        CPU[$k]=$(awk -v d=$((ticks1 - ticks0)) -v n="$n16" -v hz="$CLK_TCK" \
            'BEGIN {if (n > 0) printf "%.0f", d * 1e6 / hz / n; else print "?"}')
        case $t in
        tokio | smol | tokio-pg)
            THREADS[$k]=$(join "$out-threads0.txt" "$out-threads1.txt" |
                awk -v n="$n16" -v hz="$CLK_TCK" '$3 > $2 && n > 0 {
                    printf "%s%s %.0f", sep, $1, ($3 - $2) * 1e6 / hz / n; sep = ", " }')
            ;;
        *) THREADS[$k]="" ;;
        esac
        [ -n "${RPS[$k]}" ] || { RPS[$k]=0; log "$t $body: wrk printed no figures: $(head -c 300 "$out-c16.txt")"; }
    done
done

# ---------------------------------------------------------------- report
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
signed() { awk -v d="$1" 'BEGIN {printf "%+d µs", d}'; }

TABLE="$WORK/table.md"
{
    echo "| target | body | req/s (c=16) | ratio to direct | p50 c=1 | p99 c=1 | added p50 | added p99 | idle RSS | binary size |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        for body in json sse; do
            k="$t/$body"
            d="direct/$body"
            ratio=$(awk -v a="${RPS[$k]}" -v b="${RPS[$d]}" 'BEGIN {if (b > 0) printf "%.1f %%", 100 * a / b; else print "—"}')
            if [ "$t" = direct ]; then
                added50="—"; added99="—"; rss="—"; size="—"
            else
                added50=$(signed $((P50[$k] - P50[$d])))
                added99=$(signed $((P99[$k] - P99[$d])))
                rss=$(mib $((RSS_OF[$t] * 1024)))
                size=$(mib "${SIZE_OF[$t]}")
            fi
            echo "| $t | ${body^^} | ${RPS[$k]} | $ratio | ${P50[$k]} µs | ${P99[$k]} µs | $added50 | $added99 | $rss | $size |"
        done
    done
} >"$TABLE"

RAW="$WORK/raw.md"
{
    echo "| target | body | p50 / p90 / p99 c=1 (µs) | responses counted by wrk | non-2xx + socket errors | CPU µs/request at c=16 (by thread) |"
    echo "|---|---|---:|---:|---:|---|"
    for t in "${TARGETS[@]}"; do
        for body in json sse; do
            k="$t/$body"
            detail=""
            [ -n "${THREADS[$k]}" ] && detail=" (${THREADS[$k]})"
            echo "| $t | ${body^^} | ${P50[$k]} / ${P90[$k]} / ${P99[$k]} | ${REQS[$k]} | ${ERRS[$k]} | ${CPU[$k]}$detail |"
        done
    done
} >"$RAW"

# Goals of reliability.md §5 (reported, not gating).
GOALS="$WORK/goals.md"
goal() { # goal LABEL OK(0/1) DETAIL
    local mark="MISS"
    [ "$2" = 1 ] && mark="ok"
    echo "- [$mark] $1: $3"
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1f", 100 * a / b; else print 0}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {print (a >= b) ? 1 : 0}'; }
{
    for t in tokio smol; do
        [ -n "${PID_OF[$t]:-}" ] || continue
        for body in json sse; do
            r=$(pct "${RPS[$t/$body]}" "${RPS[direct/$body]}")
            goal "$t ${body^^} throughput c=16 ≥ 35 % of direct" "$(ge "$r" 35)" "$r %"
        done
        for body in json sse; do
            a50=$((P50[$t/$body] - P50[direct/$body]))
            a99=$((P99[$t/$body] - P99[direct/$body]))
            goal "$t ${body^^} added p50 < 60 µs" "$([ "$a50" -lt 60 ] && echo 1 || echo 0)" "$a50 µs"
            goal "$t ${body^^} added p99 < 150 µs" "$([ "$a99" -lt 150 ] && echo 1 || echo 0)" "$a99 µs"
        done
        goal "$t idle RSS < 15 MiB" "$([ "${RSS_OF[$t]}" -lt 15360 ] && echo 1 || echo 0)" "$(mib $((RSS_OF[$t] * 1024)))"
    done
    if [ -n "${PID_OF[tokio-pg]:-}" ]; then
        for body in json sse; do
            r=$(pct "${RPS[tokio-pg/$body]}" "${RPS[tokio/$body]}")
            goal "tokio on PostgreSQL ${body^^} throughput within 10 % of tokio on SQLite" "$(ge "$r" 90)" "$r %"
        done
    else
        echo "- tokio-pg: not run (BENCH_PG=0 or no PostgreSQL server binaries)"
    fi
    if [ -n "${PID_OF[smol]:-}" ]; then
        for body in json sse; do
            r=$(pct "${RPS[smol/$body]}" "${RPS[tokio/$body]}")
            goal "smol ${body^^} throughput ≥ 80 % of tokio" "$(ge "$r" 80)" "$r %"
        done
        r=$(pct "${RSS_OF[smol]}" "${RSS_OF[tokio]}")
        goal "smol idle RSS ≤ 70 % of tokio" "$(awk -v r="$r" 'BEGIN {print (r <= 70) ? 1 : 0}')" "$r %"
        echo "- binary size: tokio $(mib "${SIZE_OF[tokio]}"), smol $(mib "${SIZE_OF[smol]}")"
    else
        echo "- smol: not available"
    fi
} >"$GOALS"

# ---------------------------------------------------------------- accounting check
# Stop the proxies (SIGTERM finalizes and flushes), then count their rows. Every response
# wrk counted had its row finalized first (the terminal hold), so completed rows are at least
# wrk's count; requests still in flight when a wrk run stopped (at most its concurrency, 16 +
# 16 + 1 per body) may add a few rows, completed or aborted.
ACCT="$WORK/accounting.md"
: >"$ACCT"
pg_rows() {
    pg_as "$PG_BIN_DIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d acp_bench -At \
        -c "select count(*) from request_logs" 2>/dev/null || echo 0
}
for t in tokio smol tokio-pg; do
    [ -n "${PID_OF[$t]:-}" ] || continue
    pid=${PID_OF[$t]}
    if [ "$t" = tokio-pg ]; then
        # The replica ships its spool in the background; a stop leaves what is still spooled
        # for the next start. Let it catch up first (rows stop growing), and time it.
        caught0=$(date +%s)
        last=-1
        same=0
        while [ "$same" -lt 3 ] && [ $(($(date +%s) - caught0)) -lt 600 ]; do
            n=$(pg_rows)
            if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; fi
            last=$n
            sleep 1
        done
        PG_CATCHUP_S=$(($(date +%s) - caught0 - 3))
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    db="$WORK/$t/proxy.db"
    sql="select
        (select count(*) from request_logs where lifecycle_status = 'completed'),
        (select count(*) from request_logs),
        (select count(*) from request_logs where cost_status = 'ok'),
        (select coalesce(sum(cost_nanousd), 0) from request_logs where lifecycle_status = 'completed')"
    if [ "$t" = tokio-pg ]; then
        counts=$(pg_as "$PG_BIN_DIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d acp_bench \
            -At -F '|' -c "$sql" 2>&1 || true)
    else
        counts=$(sqlite3 "$db" "$sql" 2>&1 || true)
    fi
    IFS='|' read -r completed rows priced nanousd <<<"$counts"
    logged=$(grep -c '"lifecycle.finalized"' "$WORK/$t/stdout.log" 2>/dev/null || true)
    slack=$((2 * (16 + 16 + 1)))
    verdict="MISMATCH"
    if [[ "$completed" =~ ^[0-9]+$ ]] && [ "$completed" -ge "${SENT[$t]}" ] &&
        [ "$completed" -le $((SENT[$t] + slack)) ]; then
        verdict="ok"
        [ "$completed" = "${SENT[$t]}" ] && verdict="ok, equal"
    fi
    [ "$t" = tokio-pg ] && echo "- tokio-pg: the database caught up with the spool ${PG_CATCHUP_S:-?} s after the load ended" >>"$ACCT"
    echo "- $t: wrk counted ${SENT[$t]} responses; request_logs completed = $completed" \
        "(all rows $rows, cost_status ok $priced, sum cost_nanousd $nanousd;" \
        "lifecycle.finalized log lines $logged) → $verdict" >>"$ACCT"
done

# ---------------------------------------------------------------- output
HEADER="Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(uname -sr); $( (wrk -v 2>&1 || true) | head -1 | cut -d' ' -f1-2);"
HEADER+=" commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');"
HEADER+=" wrk -t2 -c16 -d$DURATION (throughput) and -t1 -c1 -d$DURATION --latency (latency),"
HEADER+=" $WARMUP warm-up per body; mock-upstream with $MOCK_THREADS threads; proxies with LOG_LEVEL=info to a file."
{
    echo "# Load benchmark results"
    echo
    echo "$HEADER"
    echo
    cat "$TABLE"
    echo
    echo "Latency detail and error counts:"
    echo
    cat "$RAW"
    echo
    echo "Goals (reliability.md §5, reported, not gating):"
    echo
    cat "$GOALS"
    echo
    echo "Accounting check (completed rows against wrk's count):"
    echo
    cat "$ACCT"
    [ "$HAVE_NGINX" = 1 ] || { echo; echo "nginx: not available, no relay row."; }
    [ "$HAVE_SMOL" = 1 ] || { echo; echo "smol: not available."; }
} >"$RESULTS"

echo
cat "$TABLE"
echo
cat "$RAW"
echo
cat "$GOALS"
echo
cat "$ACCT"
echo
echo "written to $RESULTS"
