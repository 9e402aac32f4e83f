#!/usr/bin/env bash
# Recording overhead per malloc/free pair under each allocator (glibc, and jemalloc,
# tcmalloc, mimalloc preloaded): the churn sample with N and N/5 pairs, bare and recorded,
# the median of RUNS runs each. The cost per pair is the slope between the two sizes
# (recorded minus bare), which leaves out the fixed costs (start, attaching, exit); printed
# with its ratio to glibc's.
# In an allocator library free also has a return probe (README: allocators), which this
# measures. Needs root and a build in BUILD (default ./build).
#
#   tools/bench/allocators.sh [N] [RUNS]
set -euo pipefail
build=${BUILD:-build}
n=${1:-100000}
runs=${2:-3}
lib=/usr/lib/x86_64-linux-gnu
churn=$build/samples/churn
record=$build/bin/heaptrail-record
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

elapsed_ms() {  # command... -> milliseconds of its run
  local start end
  start=$(date +%s%N)
  "$@" </dev/null >/dev/null 2>&1
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "| allocator | bare N | recorded N/5 | recorded N | overhead per pair | ratio to glibc |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
glibc_per_pair=
for allocator in glibc jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  name=${allocator%%:*}
  preload=
  [[ $allocator == *:* ]] && preload=$lib/${allocator#*:}
  small=$((n / 5))
  bare=$(for _ in $(seq "$runs"); do elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$churn" "$n"; done | median)
  bare_small=$(for _ in $(seq "$runs"); do elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$churn" "$small"; done | median)
  recorded=$(for _ in $(seq "$runs"); do
    elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$record" -o "$out/t.htr" -- "$churn" "$n"
  done | median)
  recorded_small=$(for _ in $(seq "$runs"); do
    elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$record" -o "$out/t.htr" -- "$churn" "$small"
  done | median)
  per_pair=$(awk -v r="$recorded" -v rs="$recorded_small" -v b="$bare" -v bs="$bare_small" -v n="$((n - small))" \
    'BEGIN { printf "%.2f", ((r - rs) - (b - bs)) * 1000 / n }')
  [[ -z $glibc_per_pair ]] && glibc_per_pair=$per_pair
  ratio=$(awk -v p="$per_pair" -v g="$glibc_per_pair" 'BEGIN { printf "%.2f", p / g }')
  echo "| $name | $bare ms | $recorded_small ms | $recorded ms | $per_pair µs | $ratio |"
done
