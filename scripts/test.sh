#!/usr/bin/env bash
# Builds Outrider three ways and runs every test with CTest:
#   release  unit, integration and compatibility tests (npm clients, real Prometheus)
#   asan     the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   fuzz     libFuzzer targets, a short run each over their seed corpus
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ ! -d tests/compat/node_modules ] || [ tests/compat/package-lock.json -nt tests/compat/node_modules/.stamp ]; then
  (cd tests/compat && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
fi
JOBS=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
for preset in release asan fuzz; do
  echo "=== $preset ==="
  cmake --preset "$preset" -DOUTRIDER_WERROR=ON >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  # integration tests start servers on ephemeral ports, so they can share the machine
  ctest --preset "$preset" -j "$JOBS" --timeout 1800
done
