#!/usr/bin/env bash
# Sets everything up, builds, and runs every test. BPF tests need root; with
# HEAPTRAIL_REQUIRE_BPF=1 they fail instead of skipping when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
ctest --output-on-failure --timeout 300
