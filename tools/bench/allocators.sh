#!/usr/bin/env bash
# Recording overhead per malloc/free pair under each allocator (glibc, and jemalloc,
# tcmalloc, mimalloc preloaded): the churn sample's N pairs, bare and recorded, the median
# of RUNS runs each; prints the recorded-minus-bare time per pair and its ratio to glibc's.
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

echo "| allocator | bare | recorded | overhead per pair | ratio to glibc |"
echo "| --- | ---: | ---: | ---: | ---: |"
glibc_per_pair=
for allocator in glibc jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  name=${allocator%%:*}
  preload=
  [[ $allocator == *:* ]] && preload=$lib/${allocator#*:}
  bare=$(for _ in $(seq "$runs"); do elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$churn" "$n"; done | median)
  recorded=$(for _ in $(seq "$runs"); do
    elapsed_ms env ${preload:+LD_PRELOAD=$preload} "$record" -o "$out/t.htr" -- "$churn" "$n"
  done | median)
  per_pair=$(awk -v r="$recorded" -v b="$bare" -v n="$n" 'BEGIN { printf "%.2f", (r - b) * 1000 / n }')
  [[ -z $glibc_per_pair ]] && glibc_per_pair=$per_pair
  ratio=$(awk -v p="$per_pair" -v g="$glibc_per_pair" 'BEGIN { printf "%.2f", p / g }')
  echo "| $name | $bare ms | $recorded ms | $per_pair µs | $ratio |"
done
