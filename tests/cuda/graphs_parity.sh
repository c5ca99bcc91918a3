#!/usr/bin/env bash
# The whole engine with CUDA graphs (CANARY_CUDA_GRAPHS=1) on the emulated GPU: parity with the
# goldens exactly as without graphs (test_model_parity's fp32 checks: identical greedy, beam-1 and
# beam-4 ids and text), and proof that the decoder steps really ran as graphs: every context reports
# steps launched as graphs and no recording given up.
#   graphs_parity.sh TEST_MODEL_PARITY      (environment: as test_model_parity_cuda_emu)
set -u
log=$(mktemp)
trap 'rm -f "$log"' EXIT
CANARY_CUDA_GRAPHS=1 "$1" >"$log" 2>&1
rc=$?
tail -n 4 "$log"
[ $rc = 0 ] || { echo "FAIL: parity with graphs (rc $rc)"; grep -E "FAIL|differ|mismatch" "$log" | head; exit 1; }
reports=$(grep -c "steps launched as graphs" "$log")
launched=$(grep -o "graphs: [0-9]* steps launched" "$log" | awk '{s += $2} END {print s + 0}')
given_up=$(grep -o "[0-9]* recordings given up" "$log" | awk '{s += $1} END {print s + 0}')
echo "contexts: $reports, steps launched as graphs: $launched, recordings given up: $given_up"
grep -m3 "recordings given up, last" "$log"
[ "$reports" -gt 0 ] && [ "$launched" -gt 0 ] && [ "$given_up" = 0 ] || { echo "FAIL: graphs not used as expected"; exit 1; }
grep "graphs: 0 steps launched" "$log" && { echo "FAIL: a context decoded without graphs"; exit 1; }
echo "PASS"
