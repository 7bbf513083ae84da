#!/usr/bin/env bash
# Packs the package as a publisher would (prepack builds dist/), from a copy of this checkout in
# DEST, so the checkout's own dist/ is never rebuilt under a running test or engine.
#   scripts/pack.sh DEST   -> prints the tarball's path
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(realpath "$1")
copy=$dest/checkout
rm -rf "$copy"
mkdir -p "$copy"
# Tracked files and new ones not ignored: what the next commit would hold.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && { mkdir -p "$copy/$(dirname "$f")"; cp -p "$f" "$copy/$f"; }
done
ln -s "$PWD/node_modules" "$copy/node_modules"
(cd "$copy" && npm pack --silent --pack-destination "$dest" >/dev/null)
ls "$dest"/tun6in4-*.tgz
