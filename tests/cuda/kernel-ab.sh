#!/usr/bin/env bash
# A/B of a kernel change on one GPU, same machine and job: the plugin built with an older
# src/nn/cuda/kernels.cu against the working tree's, alternated twice (canary-gpu-bench, median of
# RUNS), after the engine check (which also builds the new plugin and writes the full model). From
# the repository root with build/gpu-bundle and the old file carried, e.g.
#
#   git show REV:src/nn/cuda/kernels.cu > .diag/kernels_old.cu      (here; .diag is git-excluded)
#   OUT=$OUT OLD_KERNELS=.diag/kernels_old.cu bash tests/cuda/kernel-ab.sh     (there: ~90 s)
#
# $OUT gets ab.txt ("old"/"new" + one bench JSON row per line) and the engine check's files.
# Knobs: PREC=bf16,tf32, BATCHES=1,128, RUNS=5, BUDGET=150 (the engine check's).
set -u
: "${OLD_KERNELS:?OLD_KERNELS must name the older kernels.cu}"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
rm -rf /tmp/kernel-ab-src && mkdir -p /tmp/kernel-ab-src && cp -r src include tests /tmp/kernel-ab-src/ &&
    cp "$OLD_KERNELS" /tmp/kernel-ab-src/src/nn/cuda/kernels.cu || exit 1
(cd /tmp/kernel-ab-src && bash tests/cuda/build-plugin.sh /tmp/kernel-ab-old "${ARCH:-90}" "$NVCC" "$CUDA_HOME" \
    >/tmp/kernel-ab-old.log 2>&1; echo "old plugin rc=$?") &
OUT=$OUT BUDGET=${BUDGET:-150} SKIP_BASELINE=1 BATCHES=${BATCHES:-1,128} BENCH_PREC=${PREC:-bf16,tf32} \
    PROFILE_BATCHES=1 bash tests/cuda/engine-gpu-check.sh 2>&1 | tail -20
wait
FULL=/tmp/canary-engine-gpu/canary-1b-flash-full.nemo
for round in 1 2; do
    for tag in old new; do
        p=/tmp/kernel-ab-old/libcanary_cuda.so
        [ $tag = new ] && p=/tmp/canary-engine-gpu/build/libcanary_cuda.so
        CANARY_CUDA_PLUGIN=$p build/gpu-bundle/bin/canary-gpu-bench --model $FULL --device cuda \
            --precision "${PREC:-bf16,tf32}" --batches "${BATCHES:-1,128}" --seconds 10 --tokens 40 \
            --runs "${RUNS:-5}" 2>/dev/null | grep '"event":"bench"' | sed "s/^/$tag /"
    done
done | tee "$OUT/ab.txt" | cut -c1-200
