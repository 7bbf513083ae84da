#!/usr/bin/env bash
# Installs what the tests, the lab and the benchmarks need on a fresh Debian machine:
# Debian packages (skipped when present), npm dependencies, and the native addon built here
# (a checkout loads native/build before the committed prebuilds).
# Safe to run again: each step does nothing when its work is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# build-essential, python3: the addon (and the test-only `cap` package) build from source in a
# checkout. liburing-dev: the addon batches TUN reads and writes through io_uring with it.
# qemu-user-static: the tests run the arm64 prebuild (scripts/verify-arm64.sh). python3-seccomp:
# a test refuses io_uring to an engine (test/helpers/deny_io_uring.py). debootstrap, systemd-container:
# test/systemd-boot.test.ts boots the systemd units in a Debian container (systemd-nspawn).
# docker.io, busybox-static: the Docker recipe is tested with a real dockerd and an image imported
# from busybox (test/docker.test.ts); iptables: the doctor's FORWARD-policy check meets Docker's rules.
APT_PACKAGES=(build-essential python3 python3-scapy python3-seccomp tshark iproute2 iputils-ping iperf3 tcpdump libpcap-dev nftables strace liburing-dev qemu-user-static ethtool debootstrap systemd-container docker.io busybox-static iptables)
# `setup.sh bench` adds what only the benchmarks use.
if [ "${1:-}" = bench ]; then APT_PACKAGES+=(ethtool linux-perf gcc); fi

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

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# The native addon (TUN, raw socket, batched I/O): rebuild when a source is newer than the binary.
if [ -d native ] && [ -f native/binding.gyp ]; then
  addon=native/build/Release/tun6in4_native.node
  # also rebuild when liburing arrived after the addon was built without it
  if [ ! -f "$addon" ] || [ -n "$(find native -maxdepth 1 -newer "$addon" \( -name '*.cc' -o -name '*.h' -o -name '*.cjs' -o -name binding.gyp \))" ] ||
    { [ -f /usr/include/liburing.h ] && ! node -e "process.exit(require('./$addon').IO_URING_COMPILED ? 0 : 1)"; }; then
    echo "setup: building the native addon"
    npm run --silent build:native
  fi
fi
