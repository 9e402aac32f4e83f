#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: the normal build, the same suite
# under AddressSanitizer + UndefinedBehaviorSanitizer, and a bounded fuzzing run of the
# trace reader and replay. BPF tests need root; with HEAPTRAIL_REQUIRE_BPF=1 they fail
# instead of skipping when not root.
#   tools/test.sh            everything
#   tools/test.sh --quick    the normal build's tests only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
[[ ${1:-} == --quick ]] && quick=true

tools/setup.sh
echo "== tests"
(cd build && ctest --output-on-failure --timeout 300)
$quick && exit 0

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DHEAPTRAIL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure --timeout 600)

echo "== fuzzing the trace reader and replay (${HEAPTRAIL_FUZZ_SECONDS:-60} s)"
tools/fuzz.sh "${HEAPTRAIL_FUZZ_SECONDS:-60}"
