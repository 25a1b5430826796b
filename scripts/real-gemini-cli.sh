#!/usr/bin/env bash
# The real-client tier for Gemini CLI (docs/gemini.md §7): installs @google/gemini-cli from
# npm (once, under target/gemini-cli), builds the test, and runs the ignored test
# tests/tests/real_gemini_cli.rs through both builds inside a network namespace where only
# the loopback interface exists, so the CLI can reach the proxy and the local mock and
# nothing else.
#
# GEMINI_CLI_VERSION (default 0.61.0, the version of issue 19) picks the npm version;
# GEMINI_CLI_BIN uses an installed CLI instead. Needs npm, unshare (util-linux) and ip
# (iproute2); without root, a user namespace maps the caller to root.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${GEMINI_CLI_VERSION:-0.61.0}"
prefix="$PWD/target/gemini-cli"
if [ -z "${GEMINI_CLI_BIN:-}" ]; then
  export GEMINI_CLI_BIN="$prefix/node_modules/.bin/gemini"
  installed="$("$GEMINI_CLI_BIN" --version 2>/dev/null || true)"
  if [ "$installed" != "$version" ]; then
    command -v npm >/dev/null || { echo "npm is required: apt-get install -y nodejs npm" >&2; exit 1; }
    echo "installing @google/gemini-cli@$version into $prefix"
    npm install --no-audit --no-fund --prefix "$prefix" "@google/gemini-cli@$version"
  fi
fi
echo "gemini $("$GEMINI_CLI_BIN" --version)"

# Build outside the namespace (it has no network); the run inside is offline.
cargo test -p agent-cli-proxy-tests --test real_gemini_cli --no-run

flags=(--net)
[ "$(id -u)" = 0 ] || flags+=(--map-root-user)
exec unshare "${flags[@]}" -- sh -c '
  ip link set lo up &&
  exec cargo test --offline -p agent-cli-proxy-tests --test real_gemini_cli -- --ignored "$@"
' real-gemini-cli "$@"
