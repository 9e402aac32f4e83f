#!/usr/bin/env bash
# heaptrail benchmark harness: the one command.
#
#   sudo tools/bench/run.sh [--runs N] [--only overhead,profile,lossless,replay,symbols] [--quick]
#
# Installs the Debian packages it needs (only those missing), builds heaptrail and the
# harness into build-bench/harness (its own CMake project, tools/bench/CMakeLists.txt),
# runs every figure and rewrites the generated part of BENCHMARKS.md. Needs root (BPF).
# About 15 minutes on a 2-CPU VM. Run it on an otherwise idle machine: the overhead
# figures are ratios of runs interleaved in one invocation, but other load still adds noise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: needs root (BPF programs, uprobes, bpftool); run it with sudo" >&2
  exit 1
fi

packages=(
  cmake make g++ pkg-config clang bpftool libbpf-dev libelf-dev zlib1g-dev libzstd-dev
  capnproto libcapnp-dev libdwarf-dev libboost-program-options-dev nlohmann-json3-dev  # heaptrail's build
  python3 time binutils        # the harness (python3 standard library only), /usr/bin/time, nm/readelf
  heaptrack zstd               # comparison: heaptrack, heaptrack_print (zstd: .zst output)
  sqlite3 jq                   # real workloads (perl: perl-base)
  llvm elfutils                # symbolization comparison: llvm-symbolizer, eu-addr2line
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=build-bench/harness
cmake -S tools/bench -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

args=("$@")
exec python3 tools/bench/bench.py --build "$build" --out BENCHMARKS.md \
  --command "sudo tools/bench/run.sh${args[*]:+ ${args[*]}}" "${args[@]}"
