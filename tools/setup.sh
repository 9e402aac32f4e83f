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
  libdeflate-dev                     # analyzer: compressed debug sections
  libdebuginfod-dev debuginfod       # analyzer: debug files by build-id from servers (the server for its test)
  libboost-program-options-dev       # command lines
  nlohmann-json3-dev                 # analyzer: JSON output
  libprotobuf-dev protobuf-compiler  # analyzer: pprof output (profile.proto)
  golang-go chromium                 # tests: go tool pprof and headless Chromium read the reports
  libgtest-dev                       # tests
  binutils util-linux                # tests: readelf/nm oracle, setpriv
  llvm-16 libc6-dbg                  # tests: llvm-symbolizer-16 as the symbolizer's reference, libc's debug info
  libclang-rt-14-dev                 # tests: libFuzzer runtime for tools/fuzz.sh
  g++-aarch64-linux-gnu binutils-aarch64-linux-gnu  # device build (tools/build-device.sh)
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross     # tests: a 32-bit arm library (Thumb/ARM)
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0  # tests: allocators preloaded with LD_PRELOAD
  qemu-system-arm qemu-user-static cpio             # tests: the emulated arm64 device
)
# The arm64 architecture, so that apt-get can download the device build's libraries and
# the emulated device's kernel and busybox (nothing of arm64 is installed).
foreign_archs=(arm64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
new_archs=()
for a in "${foreign_archs[@]}"; do
  dpkg --print-foreign-architectures | grep -x "$a" >/dev/null || new_archs+=("$a")
done
if ((${#missing[@]})) || ((${#new_archs[@]})); then
  echo "setup: installing ${missing[*]:-} ${new_archs[*]/#/architecture }" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: run as root (or with sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  for a in "${new_archs[@]}"; do dpkg --add-architecture "$a"; done
  # A foreign index that fails to download (mirror being synced) must not stop the
  # setup: the install below fails by itself if something it needs is missing.
  apt-get update -qq || echo "setup: apt-get update reported errors; going on" >&2
  if ((${#missing[@]})); then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
