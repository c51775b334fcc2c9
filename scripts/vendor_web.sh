#!/usr/bin/env bash
# Fetch the dashboard's vendored chart library again from the npm registry (`npm pack`), check
# it against the integrity npm records, and print the sha256 sums to put in
# monitor/web/static/vendor/VENDORED.md and tests/unit/web/test_vendor.py.
#   bash scripts/vendor_web.sh [version]      (default: the vendored 1.6.32)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-1.6.32}
DEST=monitor/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf "uplot-$VERSION.tgz")
want=$(npm view "uplot@$VERSION" dist.integrity)
got="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot-$VERSION.tgz" | base64 -w0)"
[ "$want" = "$got" ] || { echo "vendor_web: integrity mismatch for uplot@$VERSION" >&2; exit 1; }
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$DEST/"
cp "$tmp/package/LICENSE" "$DEST/uPlot.LICENSE"
echo "uplot@$VERSION ($want)"
sha256sum "$DEST/uPlot.iife.min.js" "$DEST/uPlot.min.css"
