#!/usr/bin/env bash
# Fetches the embedded ClickHouse engine (libchdb.so) from the npm registry
# package @chdb/lib-linux-x64-gnu, checks the tarball against the integrity
# hash pinned here AND the one the registry publishes, and caches the library
# so it is fetched once per machine. Prints the library's path.
#
#   scripts/fetch-chdb.sh            # fetch if missing, print the path
#   scripts/fetch-chdb.sh --print-path  # only print where it goes
#   LOUPE_CHDB_CACHE=/dir scripts/fetch-chdb.sh
set -euo pipefail

PKG="@chdb/lib-linux-x64-gnu"
VERSION="26.7.3-stable.1"
# dist.integrity of $PKG@$VERSION as published on the npm registry.
INTEGRITY="sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw=="

cache="${LOUPE_CHDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/loupe/chdb}/$VERSION"
lib="$cache/libchdb.so"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$lib"
  exit 0
fi

if [[ -f "$lib" && -f "$cache/VERIFIED" ]]; then
  echo "$lib"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch-chdb: npm is needed (apt-get install npm, or Node.js)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "fetch-chdb: openssl is needed" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

published="$(cd "$tmp" && npm view "$PKG@$VERSION" dist.integrity 2>/dev/null || true)"
if [[ -n "$published" && "$published" != "$INTEGRITY" ]]; then
  echo "fetch-chdb: the registry publishes integrity $published for $PKG@$VERSION, but $INTEGRITY is pinned here; refusing" >&2
  exit 1
fi

echo "fetch-chdb: downloading $PKG@$VERSION (~180 MB) ..." >&2
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null)
tgz="$(ls "$tmp"/*.tgz)"
actual="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
  echo "fetch-chdb: integrity mismatch for $tgz: got $actual, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/libchdb.so
mkdir -p "$cache"
mv "$tmp/package/libchdb.so" "$lib.partial"
mv "$lib.partial" "$lib"
printf '%s %s\n' "$PKG@$VERSION" "$INTEGRITY" > "$cache/VERIFIED"
echo "fetch-chdb: verified and cached at $lib" >&2
echo "$lib"
