#!/usr/bin/env bash
# Unpacks Debian arm64 packages (and, with --deps, everything they depend on) into a sysroot,
# through a private apt state under WORKDIR: the host's own apt architectures and lists stay as
# they are, and nothing is installed. Used for the cross build's liburing and for running the
# arm64 prebuild under qemu-user.
#   scripts/debian-arm64.sh WORKDIR SYSROOT [--deps] PACKAGE...
set -euo pipefail
mkdir -p "$1" "$2"
work=$(realpath "$1") sysroot=$(realpath "$2")
shift 2
deps=0
if [ "${1:-}" = --deps ]; then deps=1; shift; fi
state=$work/apt-arm64
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
touch "$state/status"
# APT::Sandbox::User=root: apt's _apt user cannot write into a private (0700) working directory.
opts=(-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o "Dir::State=$state" -o "Dir::State::Lists=$state/lists"
  -o "Dir::State::status=$state/status" -o "Dir::Cache=$state/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
if [ -z "$(ls "$state/lists" | grep -v partial)" ]; then apt-get "${opts[@]}" update -qq; fi
pkgs=("$@")
if ((deps)); then
  mapfile -t pkgs < <(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends "$@" | grep -E '^[a-z0-9]' | sort -u)
fi
(cd "$state/debs" && apt-get "${opts[@]}" download "${pkgs[@]}" >/dev/null)
for deb in "$state"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
