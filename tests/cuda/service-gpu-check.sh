#!/usr/bin/env bash
# canary-stt itself on a real NVIDIA GPU: hwinfo, transcribe, serve and bench as a user runs them
# (tests/cuda/service_gpu_check.py has the checks). From the repository root of a GPU machine with
# build/svc-bundle carried there (`make svc-bundle` builds it here):
#
#   OUT=/some/dir bash tests/cuda/service-gpu-check.sh          (<= BUDGET=300 s in all)
#
# Unpacks the bundle's libraries, builds the CUDA plugin for the GPU's architecture (nvcc) while
# tests/cuda/full_model.py writes the full-size canary-1b-flash with random weights (torch), then
# runs the checks. $OUT receives service.json (every check, what the hardware profile chose, the
# throughput of the full model's jobs, the bench rows), summary.txt, env.txt and logs.tar.gz.
# Knobs: ARCH, BUDGET, WORK=/tmp/canary-svc-gpu; without a GPU: PLUGIN=<a built plugin, e.g. the
# emulation> (no nvcc) and FULL_MODEL=<a .nemo to use as the "full" model>.
set -u
OUT=${OUT:-/tmp/canary-svc-gpu-check}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUNDLE=${BUNDLE:-$ROOT/build/svc-bundle}
WORK=${WORK:-/tmp/canary-svc-gpu}
BUDGET=${BUDGET:-300}
t_start=$(date +%s)
rm -rf "$WORK/logs" "$WORK"/serve_* "$WORK/lib"
mkdir -p "$WORK/logs"
[ -x "$BUNDLE/bin/canary-stt" ] || { echo "no $BUNDLE: make svc-bundle, and carry build/svc-bundle" | tee "$OUT/summary.txt"; exit 1; }
{
    date -u
    nvidia-smi 2>&1 | head -20
    ldd --version | head -n1
    cat "$BUNDLE/COMMIT"
} >"$OUT/env.txt" 2>&1
tar -C "$WORK" -xJf "$BUNDLE/lib.tar.xz" || exit 1
export LD_LIBRARY_PATH=$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CANARY_CACHE_DIR=$WORK/cache

FULL=${FULL_MODEL:-$WORK/canary-1b-flash-full.nemo}
if [ -n "${FULL_MODEL:-}" ]; then
    touch "$FULL.done"
elif [ ! -f "$FULL.done" ]; then # a warm machine keeps it from an earlier run
    (timeout 200 python3 tests/cuda/full_model.py weights "$BUNDLE/full/canary-1b-flash" "$FULL" &&
        touch "$FULL.done") >"$WORK/logs/full_model.log" 2>&1 &
fi
if [ -n "${PLUGIN:-}" ]; then
    export CANARY_CUDA_PLUGIN=$PLUGIN
else
    NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
    CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
    ARCH=${ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')}
    t0=$(date +%s)
    bash tests/cuda/build-plugin.sh "$WORK/build" "${ARCH:-90}" "$NVCC" "$CUDA_HOME" >"$WORK/logs/build_plugin.log" 2>&1
    echo "build_plugin rc=$? $(($(date +%s) - t0))s" | tee "$OUT/summary.txt"
    export CANARY_CUDA_PLUGIN=$WORK/build/libcanary_cuda.so
fi
PY=$(command -v python3 || echo /usr/bin/python3)
"$PY" tests/cuda/service_gpu_check.py "$BUNDLE" "$OUT" "$WORK" "$FULL" $((BUDGET - ($(date +%s) - t_start))) \
    2>&1 | tee -a "$OUT/summary.txt"
rc=${PIPESTATUS[0]}
wait
tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs
echo "total $(($(date +%s) - t_start))s rc=$rc" | tee -a "$OUT/summary.txt"
exit "$rc"
