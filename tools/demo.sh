#!/usr/bin/env bash
# Sets everything up, records the bundled leaky sample and shows its leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
mkdir -p out
echo
echo "== heaptrail-record -o out/leaky.htr -- build/samples/leaky"
build/bin/heaptrail-record -o out/leaky.htr -- build/samples/leaky
echo
echo "== heaptrail analyze out/leaky.htr"
build/bin/heaptrail analyze out/leaky.htr
