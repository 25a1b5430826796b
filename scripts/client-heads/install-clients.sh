#!/usr/bin/env bash
# Installs the real coding CLIs from npm into one directory (not globally), for
# scripts/record-client-heads.sh and scripts/real-clients-e2e.sh.
#
# Usage: install-clients.sh <dir>; the binaries end up in <dir>/node_modules/.bin.
# Versions: CLAUDE_CODE_VERSION, CODEX_VERSION, OPENCODE_VERSION (defaults: the versions the
# committed fixtures were recorded with). An install that already has them is reused.
set -euo pipefail

dir=${1:?usage: install-clients.sh <dir>}
CLAUDE_CODE_VERSION=${CLAUDE_CODE_VERSION:-2.1.337}
CODEX_VERSION=${CODEX_VERSION:-0.171.0}
OPENCODE_VERSION=${OPENCODE_VERSION:-1.18.33}

if ! command -v npm >/dev/null; then
  echo "install-clients: npm not found; install Node.js 20+ (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
mkdir -p "$dir"
bin="$dir/node_modules/.bin"
have() { [ -x "$bin/$1" ] && "$bin/$1" --version 2>/dev/null | grep -qF "$2"; }
if have claude "$CLAUDE_CODE_VERSION" && have codex "$CODEX_VERSION" && have opencode "$OPENCODE_VERSION"; then
  exit 0
fi
[ -f "$dir/package.json" ] || (cd "$dir" && npm init -y >/dev/null)
# The packages ship per-platform binaries as optional dependencies; their install scripts
# link them into place, so scripts must not be skipped (--ignore-scripts breaks claude and
# opencode).
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
  "@openai/codex@$CODEX_VERSION" \
  "opencode-ai@$OPENCODE_VERSION")
for b in claude codex opencode; do
  if ! "$bin/$b" --version >/dev/null 2>&1; then
    echo "install-clients: $bin/$b does not run" >&2
    exit 1
  fi
done
