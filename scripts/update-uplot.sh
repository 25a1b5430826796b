#!/usr/bin/env bash
# Replaces the vendored uPlot of the dashboard with another release from the npm registry.
#   scripts/update-uplot.sh 1.6.32
# Then change the version in core/assets/dashboard/index.html and overview.js (the import),
# run `cargo test -p agent-cli-proxy-core --lib dashboard` and the browser test, and commit.
set -euo pipefail
version="${1:?usage: scripts/update-uplot.sh <version>}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/core/assets/dashboard/vendor/uplot-$version"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.esm.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
# The page's CSP forbids eval; a release that needs it cannot be used as is.
if grep -qE 'eval\(|new Function' "$dest/uPlot.esm.js"; then
  echo "uPlot $version uses eval or new Function; the dashboard's CSP would block it" >&2
  exit 1
fi
for old in "$root"/core/assets/dashboard/vendor/uplot-*; do
  [ "$old" = "$dest" ] || rm -rf "$old"
done
echo "vendored uPlot $version in ${dest#$root/}"
