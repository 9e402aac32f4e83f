#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan + UBSan) and fuzzes the trace reader and the
# analyzer's replay for SECONDS (default 60), starting from tests/fuzz/corpus and the
# crafted traces at the reader's limits (tests/fuzz/crafted_seeds.cpp: wrong record
# kinds, frames that lie about their size, over-long texts, concatenated traces). The
# memory limits make any input that allocates far beyond kMaxRecordBytes (64 MiB per
# record) a finding. A crash leaves its input in build-fuzz/artifacts/ and fails; add
# it to the corpus once fixed.
#   tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DHEAPTRAIL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target trace_fuzzer crafted_seeds -j"$(nproc)"
mkdir -p build-fuzz/corpus build-fuzz/artifacts
cp tests/fuzz/corpus/* build-fuzz/corpus/
build-fuzz/tests/fuzz/crafted_seeds build-fuzz/corpus
build-fuzz/tests/fuzz/trace_fuzzer -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=1024 -malloc_limit_mb=256 \
  -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 build-fuzz/corpus 2>&1 | tail -n 20
