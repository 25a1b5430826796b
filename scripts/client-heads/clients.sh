# Sourced by scripts/record-client-heads.sh and scripts/real-clients-e2e.sh: how to run each
# real CLI non-interactively against a base URL, the way the README tells users to point it
# at the proxy. Each function takes the base URL (scheme, host and port, no path), a fresh
# home directory (the client's config and state live there, never in the user's home) and
# the API key to send. CLIENTS_BIN is the directory holding claude, codex and opencode.
#
# Every client runs with telemetry, update checks and model-list downloads switched off, so
# that the only traffic is the API calls under test (the scripts also run them in a
# loopback-only network namespace).

: "${CLIENTS_BIN:?CLIENTS_BIN must name the directory with claude, codex and opencode}"
SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-90}

# claude -p: ANTHROPIC_BASE_URL without /v1 (the SDK appends /v1/messages).
run_claude() {
  local base=$1 home=$2 key=$3
  mkdir -p "$home/work"
  (cd "$home/work" && env HOME="$home" ANTHROPIC_BASE_URL="$base" ANTHROPIC_API_KEY="$key" \
    DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    timeout "$CLIENT_TIMEOUT" "$CLIENTS_BIN/claude" -p "hi" --model claude-sonnet-4-5 </dev/null)
}

# Codex reads its provider from $CODEX_HOME/config.toml; the key comes from env_key.
codex_config() {
  local base=$1 home=$2
  mkdir -p "$home/work" "$home/.codex"
  cat >"$home/.codex/config.toml" <<TOML
model = "gpt-5"
model_provider = "proxy"
check_for_update_on_startup = false

[model_providers.proxy]
name = "agent-cli-proxy"
base_url = "$base/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"

[projects."$home/work"]
trust_level = "trusted"
TOML
}

run_codex_exec() {
  local base=$1 home=$2 key=$3
  codex_config "$base" "$home"
  (cd "$home/work" && env HOME="$home" CODEX_HOME="$home/.codex" OPENAI_API_KEY="$key" \
    timeout "$CLIENT_TIMEOUT" "$CLIENTS_BIN/codex" exec --skip-git-repo-check "hi" </dev/null)
}

# The interactive TUI on a pseudo-terminal; it is stopped once <done-file> has <lines> lines
# more than when it started (the recorder's heads file, or a file the e2e test appends to
# when the row shows up).
run_codex_tui() {
  local base=$1 home=$2 key=$3 done_file=$4 lines=${5:-1}
  codex_config "$base" "$home"
  (cd "$home/work" && env HOME="$home" CODEX_HOME="$home/.codex" OPENAI_API_KEY="$key" \
    python3 "$SCRIPTS_DIR/tty-drive.py" "$done_file" "$lines" "$CLIENT_TIMEOUT" -- \
    "$CLIENTS_BIN/codex" "hi")
}

# opencode run with the built-in anthropic or openai provider pointed at the base URL.
# OPENCODE_HEADERS_JSON (a JSON object) adds request headers through the provider options;
# the real-client tier uses it to pick a fake-upstream answer the AI SDK accepts.
run_opencode() {
  local base=$1 home=$2 key=$3 provider=$4 model=$5
  local headers=${OPENCODE_HEADERS_JSON:-'{}'}
  mkdir -p "$home/work"
  cat >"$home/work/opencode.json" <<JSON
{
  "\$schema": "https://opencode.ai/config.json",
  "model": "$provider/$model",
  "share": "disabled",
  "autoupdate": false,
  "provider": { "$provider": { "options": { "baseURL": "$base/v1", "apiKey": "$key", "headers": $headers } } }
}
JSON
  (cd "$home/work" && env HOME="$home" XDG_CONFIG_HOME="$home/.config" \
    XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache" \
    XDG_STATE_HOME="$home/.local/state" OPENCODE_DISABLE_MODELS_FETCH=1 \
    OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1 \
    timeout "$CLIENT_TIMEOUT" "$CLIENTS_BIN/opencode" run "hi" </dev/null)
}
