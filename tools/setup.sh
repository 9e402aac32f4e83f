#!/usr/bin/env bash
# Installs what heaptrail needs to build (Debian packages, only those missing) and
# builds it into ./build. Needs root for apt-get when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake make g++ pkg-config          # build
  clang bpftool libbpf-dev           # BPF programs and their loader
  libelf-dev zlib1g-dev libzstd-dev  # ELF, compression
  capnproto libcapnp-dev             # trace format
  libdwarf-dev                       # analyzer: source lines
  libboost-program-options-dev       # command lines
  libgtest-dev                       # tests
  binutils util-linux                # tests: readelf/nm oracle, setpriv
  libclang-rt-14-dev                 # tests: libFuzzer runtime for tools/fuzz.sh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: run as root (or with sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
