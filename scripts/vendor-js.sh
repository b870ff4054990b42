#!/usr/bin/env bash
# Refresh the vendored JavaScript from the npm registry at the pinned versions (maintainers only: the built
# files and their licences are committed, so neither the console nor the tests need npm at run time).
#   uplot 1.6.32    -> src/geminivideo/api/console/static/vendor/uplot/   (the console's charts, MIT)
#   axe-core 4.14.1 -> tests/integration/console/vendor/axe-core/         (accessibility checks in the tests, MPL-2.0)
# Each tarball is checked against the SHA-256 recorded here before anything is copied.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "vendor-js: npm is needed (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # name version sha256 -> unpacked in $work/<name>/package
  local name=$1 version=$2 sha=$3 tarball
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  echo "$sha  $work/$tarball" | sha256sum --check --quiet || { echo "vendor-js: $name@$version checksum differs" >&2; exit 1; }
  mkdir -p "$work/$name" && tar xzf "$work/$tarball" -C "$work/$name"
}

fetch uplot 1.6.32 4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
fetch axe-core 4.14.1 e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745

uplot=src/geminivideo/api/console/static/vendor/uplot
axe=tests/integration/console/vendor/axe-core
mkdir -p "$uplot" "$axe"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" "$work/uplot/package/LICENSE" "$uplot/"
cp "$work/axe-core/package/axe.min.js" "$work/axe-core/package/LICENSE" "$axe/"
echo "vendor-js: uplot 1.6.32 and axe-core 4.14.1 copied"
