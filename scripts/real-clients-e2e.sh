#!/usr/bin/env bash
# The real-client tier (docs/testing-clients.md): installs Claude Code, Codex and OpenCode
# from npm into a temporary directory, builds the tests, then runs tests/tests/real_clients.rs
# against both shells inside a network namespace that has nothing but loopback, so the
# clients reach only the proxy and the fake upstream.
#
# Usage: scripts/real-clients-e2e.sh   (as root, or where `unshare -rn` works)
# Env:   CLAUDE_CODE_VERSION, CODEX_VERSION, OPENCODE_VERSION, CLIENTS_DIR as in
#        scripts/record-client-heads.sh; CARGO_TEST_ARGS extra arguments for cargo test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in node npm python3 ip unshare cargo; do
  command -v "$tool" >/dev/null || {
    echo "real-clients-e2e: $tool not found (Debian: apt-get install nodejs npm python3 iproute2 util-linux)" >&2
    exit 1
  }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clients=${CLIENTS_DIR:-$work/npm}
"$root/scripts/client-heads/install-clients.sh" "$clients"

cd "$root"
# Build outside the namespace: cargo may need the registry.
# shellcheck disable=SC2086
cargo test -p agent-cli-proxy-tests --test real_clients --no-run ${CARGO_TEST_ARGS:-}
ns=(unshare -n)
[ "$(id -u)" = 0 ] || ns=(unshare -rn)
# shellcheck disable=SC2086
REAL_CLIENTS_BIN="$clients/node_modules/.bin" "${ns[@]}" bash -c \
  'ip link set lo up && exec cargo test --offline -p agent-cli-proxy-tests --test real_clients '"${CARGO_TEST_ARGS:-}"' -- --ignored --test-threads=1 --nocapture'
