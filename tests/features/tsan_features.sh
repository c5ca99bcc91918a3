#!/usr/bin/env bash
# ThreadSanitizer check of concurrent feature extraction: builds only test_features_threads (and the
# libraries it needs) in a ThreadSanitizer build next to the current one, then runs it. Part of
# `make test` (ctest label "tsan"); alone: ctest -L tsan.
set -euo pipefail
src=${CANARY_SOURCE_DIR:?}; bin=${CANARY_BINARY_DIR:?}
build="$bin/tsan-features"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCANARY_TSAN=ON -DCANARY_CUDA=OFF \
  -DCANARY_WERROR=ON >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j 2 --target test_features_threads >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$build/tests/features/test_features_threads"
