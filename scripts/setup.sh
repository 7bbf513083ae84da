#!/usr/bin/env bash
# Installs what the tests (`setup.sh`), the lab (`setup.sh lab`) or the benchmarks (`setup.sh bench`)
# need on a fresh Debian machine:
# Debian packages (skipped when present), npm dependencies, and the native addon built here
# (a checkout loads native/build before the committed prebuilds).
# Safe to run again: each step does nothing when its work is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# Which set: none for everything `npm test` needs, `lab` for what `npm run lab` needs, `bench` for
# the tests' set and the benchmarks' tools.
set_name=${1:-test}

# What the lab runs: ip (namespaces, veth, addresses), ping, sysctl (forwarding in the router namespace);
# the broker lab also nft (its 1:1 NAT) and openssl (a certificate for its HTTPS update API).
LAB_PACKAGES=(iproute2 iputils-ping procps nftables openssl)
# build-essential, python3: the addon (and the test-only `cap` package) build from source in a
# checkout; libpcap-dev: `cap` links libpcap.
BUILD_PACKAGES=(build-essential python3 libpcap-dev)
# liburing-dev: the addon batches TUN reads and writes through io_uring with it (the lab runs
# without). qemu-user-static: the tests run the arm64 prebuild (scripts/verify-arm64.sh). python3-seccomp:
# a test refuses io_uring to an engine (test/helpers/deny_io_uring.py). debootstrap, systemd-container:
# test/systemd-boot.test.ts boots the systemd units in a Debian container (systemd-nspawn).
# docker.io, busybox-static: the Docker recipe is tested with a real dockerd and an image imported
# from busybox (test/docker.test.ts); iptables: the doctor's FORWARD-policy check meets Docker's rules.
TEST_PACKAGES=("${LAB_PACKAGES[@]}" "${BUILD_PACKAGES[@]}" python3-scapy python3-seccomp tshark iperf3 tcpdump strace liburing-dev qemu-user-static ethtool debootstrap systemd-container docker.io busybox-static iptables)

# npm ci when node_modules is missing or older than the lock file.
need_npm_ci=
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then need_npm_ci=1; fi
# The native addon (TUN, raw socket, batched I/O): rebuild when a source is newer than the binary,
# or when liburing arrived after the addon was built without it.
addon=native/build/Release/tun6in4_native.node
addon_is_stale() {
  [ -d native ] && [ -f native/binding.gyp ] || return 1
  [ ! -f "$addon" ] || [ -n "$(find native -maxdepth 1 -newer "$addon" \( -name '*.cc' -o -name '*.h' -o -name '*.cjs' -o -name binding.gyp \))" ] ||
    { [ -f /usr/include/liburing.h ] && ! node -e "process.exit(require('./$addon').IO_URING_COMPILED ? 0 : 1)"; }
}

case "$set_name" in
  test) APT_PACKAGES=("${TEST_PACKAGES[@]}") ;;
  # `setup.sh bench` adds what only the benchmarks use.
  bench) APT_PACKAGES=("${TEST_PACKAGES[@]}" linux-perf gcc) ;;
  # The toolchain only when this run compiles something: npm ci (the test-only `cap`) or the addon.
  lab)
    APT_PACKAGES=("${LAB_PACKAGES[@]}")
    if [ -n "$need_npm_ci" ] || addon_is_stale; then APT_PACKAGES+=("${BUILD_PACKAGES[@]}"); fi
    ;;
  *)
    echo "setup: unknown set \"$set_name\"; use lab, bench, or none (everything npm test needs)" >&2
    exit 2
    ;;
esac

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo -n); else
    echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "$need_npm_ci" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

if addon_is_stale; then
  echo "setup: building the native addon"
  npm run --silent build:native
fi
