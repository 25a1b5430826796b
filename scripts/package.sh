#!/usr/bin/env bash
# Builds the release tarball: both binaries, README.md, LICENSE, install.sh and SHA256SUMS
# (of every file inside), as dist/agent-cli-proxy-<version>-<arch>-<os>.tar.gz plus a
# .sha256 file next to it.
#
# Usage: scripts/package.sh [--out DIR] [--bin PATH]...
#   --out DIR    where the tarball goes (default: dist/)
#   --bin PATH   package this already-built binary instead of running
#                `cargo build --release --locked` for both shells (repeatable)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/dist"
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --bin) bins+=("${2:?--bin needs a path}"); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
commit="${ACP_GIT_COMMIT:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
arch="$(uname -m)"
name="agent-cli-proxy-$version-$arch-$os"

if [ ${#bins[@]} -eq 0 ]; then
  (cd "$root" && ACP_GIT_COMMIT="$commit" cargo build --release --locked \
    -p agent-cli-proxy -p agent-cli-proxy-smol)
  bins=("$root/target/release/agent-cli-proxy" "$root/target/release/agent-cli-proxy-smol")
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/bin"
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "package.sh: not an executable: $b" >&2; exit 1; }
  install -m 0755 "$b" "$dir/bin/"
done
install -m 0644 "$root/README.md" "$root/LICENSE" "$dir/"
install -m 0755 "$root/scripts/install.sh" "$dir/"
(cd "$dir" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' \
  | xargs sha256sum > SHA256SUMS)

mkdir -p "$out"
out="$(cd "$out" && pwd)"
# Fixed owner, order and times, so the same inputs give the same bytes.
stamp="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$stamp" \
  -C "$stage" -cf - "$name" | gzip -n > "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
