#!/usr/bin/env bash
# One-shot GPU verification for a machine with an NVIDIA GPU but none of our Debian libraries:
# builds the CUDA plugin and the standalone check with only nvcc/gcc, runs the parity checks of
# every backend operation in every precision (with cuBLASLt and with the plain cuBLAS fallback),
# the canary-1b-flash benchmark at batch 1/64/128, and the PyTorch eager baseline when present.
#
#   OUT=/some/dir bash tests/cuda/gpu-check.sh          (from the repository root; <= BUDGET=330 s)
#
# Each step's status goes to $OUT/summary.txt; a failing step is recorded and the later ones
# still run. $OUT receives at most 7 files (the device tool brings back 8): summary.txt, env.txt,
# checks.jsonl (every case), failures.jsonl, bench.jsonl, logs.tar.gz (every step's log, trimmed to
# its head and tail past 2 MiB) and anchor_pytorch.json (the baseline's); the build and the logs
# stay under WORK=/tmp/canary-gpu-check-work. Knobs: ARCH=90 (compute capability digits, default:
# the GPU's), SKIP_BASELINE=1, BATCHES=1,64,128, BENCH_PREC=bf16,f16,tf32, BUDGET=330 (seconds); to
# try the script without a GPU: PLUGIN=<a built plugin, e.g. the emulation> (no nvcc build),
# CHECK_QUICK=1 (the quick cases), BENCH_MODE=--bench-tiny (the benchmark at a toy size).
set -u
set -x
OUT=${OUT:-/tmp/canary-gpu-check}
export OUT # the baseline writes $OUT/anchor_pytorch.json
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
WORK=${WORK:-/tmp/canary-gpu-check-work}
B="$WORK/build"
LOGS="$WORK/logs"
rm -rf "$LOGS"
mkdir -p "$B" "$LOGS"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
t_start=$(date +%s)

step() { # step NAME TIMEOUT_S COMMAND...: runs, logs, records "NAME rc=N Ns"
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$limit" bash -c '"$@"' _ "$@" >"$LOGS/$name.log" 2>&1 # bash -c: steps may be functions
    rc=$?
    echo "$name rc=$rc $(($(date +%s) - t0))s" >>"$SUMMARY"
    tail -n 5 "$LOGS/$name.log"
    return $rc
}
# $OUT/logs.tar.gz: every step's log; a huge one keeps its first 256 KiB and last 1.5 MiB.
pack_logs() {
    local trimmed="$WORK/logs-trimmed" f
    rm -rf "$trimmed" && mkdir -p "$trimmed"
    for f in "$LOGS"/*.log; do
        [ -f "$f" ] || continue
        if [ "$(stat -c %s "$f")" -gt $((2 << 20)) ]; then
            { head -c $((256 << 10)) "$f"; printf '\n[... trimmed ...]\n'; tail -c $((1536 << 10)) "$f"; } \
                >"$trimmed/$(basename "$f")"
        else
            cp "$f" "$trimmed/"
        fi
    done
    tar -czf "$OUT/logs.tar.gz" -C "$trimmed" .
}

NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
if [ -z "${ARCH:-}" ]; then
    ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
    ARCH=${ARCH:-90}
fi

{
    date -u
    nvidia-smi
    "$NVCC" --version
    gcc --version | head -n1
    ldd --version | head -n1
    echo "CUDA_HOME=$CUDA_HOME ARCH=$ARCH"
    git -C "$ROOT" log -1 --oneline 2>/dev/null
} >"$OUT/env.txt" 2>&1

# --- build: the plugin (four .cu files in parallel + base/error.c) and the check program ------
build_plugin() { bash tests/cuda/build-plugin.sh "$B" "$ARCH" "$NVCC" "$CUDA_HOME"; }
build_check() {
    gcc -std=gnu11 -O2 -Wall -Wextra -Iinclude -Isrc tests/cuda/gpu_ops_check.c -o "$B/gpu_ops_check" -ldl -lm
}
export -f build_plugin build_check
export B NVCC ARCH CUDA_HOME
if [ -n "${PLUGIN:-}" ]; then # trying the script without a GPU (e.g. the emulation's plugin)
    echo "build_plugin skipped: PLUGIN=$PLUGIN" >>"$SUMMARY"
else
    step build_plugin 150 build_plugin
fi
step build_check 60 build_check
PLUGIN=${PLUGIN:-$B/libcanary_cuda.so}
export LD_LIBRARY_PATH="$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- parity: every op, each precision in its own process (a faulting kernel kills only its own
# CUDA context), first through cuBLASLt, then the cublasGemmEx fallback ----------------------------
for prec in f32 tf32 bf16 f16; do
    step "check_$prec" 60 "$B/gpu_ops_check" "$PLUGIN" --prec "$prec" ${CHECK_QUICK:+--quick}
done
CANARY_CUDA_NO_LT=1 step check_fallback 60 "$B/gpu_ops_check" "$PLUGIN" --quick
cat "$LOGS"/check_*.log | grep '^{' >"$OUT/checks.jsonl"
grep -h '"ok":false' "$OUT/checks.jsonl" >"$OUT/failures.jsonl"
echo "cases: $(grep -c '"ok":true' "$OUT/checks.jsonl") passed, $(wc -l <"$OUT/failures.jsonl") failed" >>"$SUMMARY"

# --- benchmark: canary-1b-flash shapes, batch 1/64/128 ------------------------------------------
step bench 150 "$B/gpu_ops_check" "$PLUGIN" --prec none "${BENCH_MODE:---bench}" --bench-prec "${BENCH_PREC:-bf16,f16,tf32}" \
    --batches "${BATCHES:-1,64,128}"
grep -h '"bench"' "$LOGS/bench.log" >"$OUT/bench.jsonl"
pack_logs

# --- the PyTorch eager baseline, same machine, same run ------------------------------------------
BUDGET=${BUDGET:-330} # seconds for the whole script
if [ -z "${SKIP_BASELINE:-}" ]; then
    ANCHOR=""
    for a in shared/bench/anchor_pytorch.py ../shared/bench/anchor_pytorch.py /work/shared/bench/anchor_pytorch.py; do
        [ -f "$a" ] && ANCHOR=$a && break
    done
    left=$((BUDGET - 40 - ($(date +%s) - t_start)))
    if [ -n "$ANCHOR" ] && [ $left -gt 45 ]; then
        step baseline_pytorch "$left" python3 "$ANCHOR"
    else
        echo "baseline_pytorch skipped (anchor: '${ANCHOR:-not found}', ${left}s left)" >>"$SUMMARY"
    fi
fi

# --- last, if time is left: the quick f32 cases under compute-sanitizer (exact fault locations) ----
SAN="$CUDA_HOME/bin/compute-sanitizer"
left=$((BUDGET - ($(date +%s) - t_start)))
if [ "$PLUGIN" = "$B/libcanary_cuda.so" ] && [ -x "$SAN" ] && [ $left -gt 25 ]; then
    step sanitizer $((left - 5)) "$SAN" --tool memcheck --print-limit 20 "$B/gpu_ops_check" "$PLUGIN" --quick --prec f32
else
    echo "sanitizer skipped (${left}s left, $SAN, plugin $PLUGIN)" >>"$SUMMARY"
fi

echo "total $(($(date +%s) - t_start))s" >>"$SUMMARY"
pack_logs
cat "$SUMMARY"
grep -q 'rc=[^0]' "$SUMMARY" && exit 1
exit 0
