#!/usr/bin/env bash
# run-fuzzers.sh DIR SECONDS [NAME]: runs every fuzz_* binary (or only fuzz_NAME) in DIR for SECONDS on a working copy of its
# seed corpus (tests/fuzz/corpus/<name>), prints the executions reached, fails on any crash.
set -euo pipefail
dir=$1; secs=$2; only=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  [ -z "$only" ] || [ "$only" = "$name" ] || continue
  work=$(mktemp -d); mkdir -p "$work/corpus"
  [ -d "$src/tests/fuzz/corpus/$name" ] && cp -r "$src/tests/fuzz/corpus/$name/." "$work/corpus/"
  echo "== fuzz_$name for ${secs}s"
  if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" \
       >"$work/log" 2>&1; then
    grep -E 'stat::number_of_executed_units|cov:' "$work/log" | tail -2
  else
    echo "fuzz_$name FAILED; log and crash input in $work"; tail -40 "$work/log"; status=1; continue
  fi
  rm -rf "$work"
done
exit $status
