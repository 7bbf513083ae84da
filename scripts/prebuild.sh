#!/usr/bin/env bash
# Builds the prebuilt Node-API binaries that ship in the package, for every target this machine
# kind can build: linux-x64 natively and linux-arm64 with Debian's cross toolchain, both glibc,
# both with liburing linked statically. Offline apart from Debian's and npm's registries: Node's
# headers come from this host (never downloaded), arm64's liburing from Debian's arm64 package
# unpacked into a private sysroot (the host's apt configuration is left alone).
#
#   npm run prebuild               build both, write native/prebuilds/ and its MANIFEST.json
#   npm run prebuild -- --verify   then run scripts/verify-arm64.sh (qemu-user, in namespaces)
#
# After a build native/build/ holds the host's own build again, which is what a checkout loads.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

apt_need() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  echo "prebuild: installing Debian packages: ${missing[*]}"
  [ "$(id -u)" = 0 ] || { echo "prebuild: need root to apt-get install ${missing[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_need build-essential python3 liburing-dev g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
[ -d node_modules/node-addon-api ] || npm ci --no-audit --no-fund

# Node's own headers: node-gyp must never fetch them.
nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
if [ -z "$nodedir" ] || [ "$nodedir" = undefined ] || [ ! -f "$nodedir/include/node/common.gypi" ]; then
  nodedir=$(dirname "$(dirname "$(command -v node)")")
fi
[ -f "$nodedir/include/node/node_api.h" ] || { echo "prebuild: Node's headers are not under $nodedir/include/node; install them (Debian: libnode-dev) or set npm_config_nodedir" >&2; exit 1; }
node_gyp=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
[ -f "$node_gyp" ] || node_gyp=$(command -v node-gyp)

# arm64 liburing from Debian, through a private apt state so the host keeps its architectures.
cross=$root/native/build-cross
sysroot=$cross/sysroot-arm64
if [ ! -f "$sysroot/usr/lib/aarch64-linux-gnu/liburing.a" ]; then
  bash scripts/debian-arm64.sh "$cross" "$sysroot" liburing-dev
fi

out=$root/native/prebuilds
rm -rf "$out"
mkdir -p "$out"

build() { # arch triplet-prefix
  local arch=$1 prefix=$2 env=()
  if [ -n "$prefix" ]; then
    env=(CC="${prefix}gcc" CXX="${prefix}g++" LINK="${prefix}g++" AR="${prefix}ar" LIBURING_ROOT="$sysroot")
  fi
  echo "prebuild: linux-$arch"
  # A prebuild without io_uring would be slower everywhere it lands: refuse rather than ship it.
  [ -n "$(cd native && env "${env[@]}" node liburing.cjs lib "$arch")" ] || { echo "prebuild: no liburing for $arch" >&2; exit 1; }
  (cd native && env "${env[@]}" node "$node_gyp" rebuild --arch="$arch" --nodedir="$nodedir" >"$cross/build-$arch.log" 2>&1) ||
    { cat "$cross/build-$arch.log" >&2; exit 1; }
  mkdir -p "$out/linux-$arch"
  # The file name carries node-gyp-build's tags: Node-API (any Node version), glibc.
  "${prefix}strip" -o "$out/linux-$arch/tun6in4_native.napi.glibc.node" native/build/Release/tun6in4_native.node
}
mkdir -p "$cross"
build arm64 aarch64-linux-gnu-
build x64 ""

node scripts/prebuild-manifest.mjs "$out" "$nodedir"
cat "$out/MANIFEST.json"

if [ "${1:-}" = --verify ]; then bash scripts/verify-arm64.sh; fi
