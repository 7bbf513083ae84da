#!/usr/bin/env bash
# Runs the arm64 prebuild, as packed into the tarball, on this x64 machine under qemu-user, with
# Debian's arm64 Node.js and its libraries unpacked into a sysroot (nothing installed, host apt
# left alone):
#   1. the package's own loader picks native/prebuilds/linux-arm64 and calls into it;
#   2. a 6in4 tunnel between two namespaces made here, one end the arm64 engine under qemu, the
#      other the x64 engine (its prebuild, from the same tarball): ping6 both ways through it.
# Prints what it verified; exits non-zero on the first failure. Needs root (namespaces).
#   scripts/verify-arm64.sh [TARBALL]   (default: pack this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "verify-arm64: needs root (network namespaces)" >&2; exit 1; }
if ! command -v qemu-aarch64-static >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
sysroot=$root/native/build-cross/node-arm64
[ -x "$sysroot/usr/bin/node" ] || bash scripts/debian-arm64.sh native/build-cross "$sysroot" --deps nodejs
arm64_node=(qemu-aarch64-static -L "$sysroot" "$sysroot/usr/bin/node")

work=$(mktemp -d)
a=t6arm64-$$-a b=t6arm64-$$-b
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

tarball=${1:-$(bash scripts/pack.sh "$work")}
mkdir "$work/installed"
tar xzf "$tarball" -C "$work/installed"
# The package's dependencies (pure JS) from this checkout; its native code only from the tarball.
ln -s "$root/node_modules" "$work/installed/node_modules"
pkg=$work/installed/package

echo "verify-arm64: $("${arm64_node[@]}" -p 'process.arch + " Node " + process.version') under $(qemu-aarch64-static --version | head -1)"
(cd "$pkg" && "${arm64_node[@]}" --input-type=module -e "
  const { nativeAddonInfo, loadNative } = await import('./dist/io/native.js');
  const info = nativeAddonInfo();
  if (info.build !== 'prebuilt' || !info.path.includes('linux-arm64')) throw new Error('loaded ' + info.path);
  const a = loadNative();
  console.log('verify-arm64: loaded', info.path.slice('$pkg/'.length), '| MAX_BATCH', a.MAX_BATCH, '| io_uring compiled in:', a.IO_URING_COMPILED, '| usable under qemu-user:', a.ioUringAvailable());
")

ip netns add "$a"
ip netns add "$b"
ip link add v0 netns "$a" type veth peer name v1 netns "$b"
ip -n "$a" addr add 192.0.2.1/24 dev v0
ip -n "$b" addr add 192.0.2.2/24 dev v1
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set v0 up
ip -n "$b" link set v1 up

run=(run --mode 6in4 --keepalive off --no-default-route --dev tun0)
ip netns exec "$a" node "$pkg/dist/cli/main.js" "${run[@]}" --local 192.0.2.1 --remote 192.0.2.2 --address 2001:db8:1::1/64 --peer 2001:db8:1::2 \
  --control "$work/x64.sock" 2>"$work/x64.log" &
pids+=($!)
ip netns exec "$b" "${arm64_node[@]}" "$pkg/dist/cli/main.js" "${run[@]}" --local 192.0.2.2 --remote 192.0.2.1 --address 2001:db8:1::2/64 --peer 2001:db8:1::1 \
  --control "$work/arm64.sock" 2>"$work/arm64.log" &
pids+=($!)

# Each engine logs "tunnel up" once its interface is configured; wait on that, not on time.
for log in x64 arm64; do
  for _ in $(seq 600); do
    grep -q '"msg":"tunnel up"' "$work/$log.log" && break
    if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  grep -q '"msg":"tunnel up"' "$work/$log.log" || { echo "verify-arm64: the $log engine did not come up:" >&2; cat "$work/$log.log" >&2; exit 1; }
done
echo "verify-arm64: arm64 engine up: $(grep -o '"up":"[^"]*"' "$work/arm64.log" | head -1)"
ip netns exec "$b" ping -6 -c 3 -W 5 2001:db8:1::1 | tail -2
ip netns exec "$a" ping -6 -c 3 -W 5 -s 1400 2001:db8:1::2 | tail -2
echo "verify-arm64: OK: the arm64 prebuild loads under Node $("${arm64_node[@]}" -p process.version) and its engine forwards 6in4 both ways with an x64 engine"
