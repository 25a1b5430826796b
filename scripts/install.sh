#!/usr/bin/env bash
# One-step install: puts the binary in ~/.local/bin, writes the configuration with
# `init --non-interactive` (the flags you pass), installs the user service and starts it.
# Running it again changes nothing: an identical binary is not copied, an existing env file
# is kept (edit it, or run `agent-cli-proxy init --force`), the unit is rewritten identically.
#
# Usage: install.sh [--from-tarball PATH] [--prefix DIR] [--env PATH] [--smol] [--no-service]
#                   [--] [INIT FLAGS...]
#   --from-tarball PATH  install from a release tarball (checked against its SHA256SUMS);
#                        default: the release directory this script sits in, else build the
#                        source checkout it sits in with cargo
#   --prefix DIR         where the binary goes (default: ~/.local/bin)
#   --env PATH           env file to write and run with (default: the XDG config one)
#   --smol               install the smol build (agent-cli-proxy-smol)
#   --no-service         only install the binary and the configuration
#   INIT FLAGS           passed to `init --non-interactive`, e.g. --direct, or
#                        --cliproxy-api-url http://127.0.0.1:8317 --cliproxy-api-key-env KEY
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tarball=""
prefix="$HOME/.local/bin"
env_file="${XDG_CONFIG_HOME:-$HOME/.config}/agent-cli-proxy/.env"
name="agent-cli-proxy"
service=1
init_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --from-tarball) tarball="${2:?--from-tarball needs a path}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --env) env_file="${2:?--env needs a path}"; shift 2 ;;
    --smol) name="agent-cli-proxy-smol"; shift ;;
    --no-service) service=0; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; init_flags+=("$@"); break ;;
    *) init_flags+=("$1"); shift ;;
  esac
done

say() { printf 'install.sh: %s\n' "$*"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Find the binary.
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || { say "no such tarball: $tarball" >&2; exit 1; }
  tar -xzf "$tarball" -C "$work"
  release="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  if command -v sha256sum >/dev/null 2>&1; then check=(sha256sum --quiet -c SHA256SUMS)
  else check=(shasum -a 256 --quiet -c SHA256SUMS); fi
  (cd "$release" && "${check[@]}") || { say "checksum mismatch in $tarball" >&2; exit 1; }
  source_bin="$release/bin/$name"
elif [ -x "$here/bin/$name" ]; then
  source_bin="$here/bin/$name"
elif [ -f "$here/../Cargo.toml" ]; then
  root="$(cd "$here/.." && pwd)"
  say "building $name from $root (cargo build --release --locked)"
  (cd "$root" && cargo build --release --locked -p "$name")
  source_bin="$root/target/release/$name"
else
  say "no binary found: pass --from-tarball PATH, or run from a release or source checkout" >&2
  exit 1
fi
[ -x "$source_bin" ] || { say "not an executable: $source_bin" >&2; exit 1; }

# 2. Install it (only when it differs, so a re-run touches nothing).
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
bin="$prefix/$name"
changed=0
if ! cmp -s "$source_bin" "$bin" 2>/dev/null; then
  install -m 0755 "$source_bin" "$bin.tmp.$$"
  mv -f "$bin.tmp.$$" "$bin"
  changed=1
  say "installed $bin ($("$bin" --version))"
else
  say "$bin is already this version ($("$bin" --version))"
fi
case ":$PATH:" in
  *":$prefix:"*) ;;
  *) say "note: $prefix is not on your PATH; add it to use '$name' by name" ;;
esac

# 3. Configuration.
if [ -e "$env_file" ]; then
  say "keeping the existing configuration $env_file (edit it, or run '$name init --force')"
else
  # The `+` form keeps an empty list legal under `set -u` in bash 3.2 (macOS).
  "$bin" init --non-interactive --env "$env_file" ${init_flags[@]+"${init_flags[@]}"}
fi

# 4. Service.
[ "$service" = 1 ] || exit 0
"$bin" service install --env "$env_file" --bin "$bin"
case "$(uname -s)" in
  Linux)
    if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
      systemctl --user daemon-reload
      systemctl --user enable agent-cli-proxy >/dev/null
      if [ "$changed" = 1 ]; then "$bin" service restart; else "$bin" service start; fi
      say "service running: '$name service status', '$name service logs --follow'"
    else
      say "no systemd user manager here (a container, or no login session): the unit is" \
        "installed but not started; run '$bin serve --env $env_file' under your own supervisor"
    fi
    ;;
  Darwin)
    say "load the agent with the launchctl command printed above"
    ;;
esac
