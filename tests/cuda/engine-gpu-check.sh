#!/usr/bin/env bash
# The whole engine on a real NVIDIA GPU, for a machine without our Debian libraries: run from the
# repository root with build/gpu-bundle carried there (`make gpu-bundle` builds and checks it).
#
#   OUT=/some/dir bash tests/cuda/engine-gpu-check.sh        (<= BUDGET=280 s in all)
#
#  1. builds the CUDA plugin for the GPU's architecture (nvcc), and meanwhile writes the full-size
#     canary-1b-flash checkpoint with random weights (torch only) outside $OUT;
#  2. parity with the goldens on the GPU, every tiny layout: fp32 (the CPU's tolerances: encoder
#     max |diff| 1e-3, identical greedy / beam-1 / beam-4 ids and text), then tf32, bf16 and fp16
#     (encoder relative error, teacher-forced greedy token agreement, no NaN/Inf), each precision
#     in its own process;
#  3. the engine benchmark on the full model: batch 1/64/128, 10 s, 40 tokens, bf16/fp16/tf32;
#  4. the PyTorch eager baseline (shared/bench/anchor_pytorch.py, carried in the bundle) on the same
#     GPU, same run.
# Results: $OUT/results.json (every step's status and time, the parity summaries, the benchmark
# rows, the baseline's rows), $OUT/summary.txt, and each step's log. A failing step is recorded
# and the later ones still run. Knobs: ARCH=90, BUDGET=280, SKIP_BASELINE=1, BATCHES=1,64,128,
# BENCH_PREC=bf16,fp16,tf32, WORK=/tmp/canary-engine-gpu (the 3.5 GB checkpoint; not in $OUT);
# to try the script without a GPU: PLUGIN=<a built plugin, e.g. the emulation> (no nvcc build) and
# FULL_MODEL=<a .nemo to benchmark instead of the generated one>.
set -u
OUT=${OUT:-/tmp/canary-engine-gpu-check}
export OUT # the baseline writes $OUT/anchor_pytorch.json
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUNDLE=$ROOT/build/gpu-bundle
WORK=${WORK:-/tmp/canary-engine-gpu}
B="$OUT/build"
mkdir -p "$B" "$WORK"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
t_start=$(date +%s)
BUDGET=${BUDGET:-280}

step() { # step NAME TIMEOUT_S COMMAND...: runs, logs, records "NAME rc=N Ns"
    local name=$1 limit=$2
    shift 2
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "$name rc=$rc $(($(date +%s) - t0))s" >>"$SUMMARY"
    tail -n 3 "$OUT/$name.log"
    return $rc
}
left() { echo $((BUDGET - ($(date +%s) - t_start))); }

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
    ldd --version | head -n1
    python3 -c 'import torch; print("torch", torch.__version__)'
    echo "CUDA_HOME=$CUDA_HOME ARCH=$ARCH bundle: $(cat "$BUNDLE/COMMIT" 2>/dev/null)"
    git -C "$ROOT" log -1 --oneline 2>/dev/null
} >"$OUT/env.txt" 2>&1
if [ ! -x "$BUNDLE/bin/canary-gpu-parity" ]; then
    echo "no bundle at $BUNDLE: run 'make gpu-bundle' and carry build/gpu-bundle" | tee -a "$SUMMARY"
    exit 1
fi

# --- 1. the plugin and, at the same time, the full-size checkpoint --------------------------------
FULL=${FULL_MODEL:-$WORK/canary-1b-flash-full.nemo}
(
    if [ -f "$FULL" ]; then echo "using $FULL"; else
        timeout 200 python3 tests/cuda/full_model.py weights "$BUNDLE/full/canary-1b-flash" "$FULL"
    fi
) >"$OUT/full_model.log" 2>&1 &
full_pid=$!
if [ -n "${PLUGIN:-}" ]; then
    echo "build_plugin skipped: PLUGIN=$PLUGIN" >>"$SUMMARY"
else
    step build_plugin 150 bash tests/cuda/build-plugin.sh "$B" "$ARCH" "$NVCC" "$CUDA_HOME"
fi
export CANARY_CUDA_PLUGIN=${PLUGIN:-$B/libcanary_cuda.so}
export LD_LIBRARY_PATH="$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- 2. parity with the goldens on the GPU, one process per precision ----------------------------
export CANARY_BINARY_DIR="$BUNDLE" CANARY_PARITY_DIRS="$BUNDLE/golden" CANARY_PARITY_DEVICE=cuda
export CANARY_PARITY_CASES=${PARITY_CASES:-short,batch,librivox}
for prec in fp32 tf32 bf16 fp16; do
    # fp32 alone checks the exact path; a reduced precision adds its own checks to the fp32 ones
    export CANARY_PARITY_REDUCED=$prec
    [ $prec = fp32 ] && CANARY_PARITY_REDUCED=none
    step "parity_$prec" 45 "$BUNDLE/bin/canary-gpu-parity"
done

# --- 3. the engine benchmark on the full model ---------------------------------------------------
wait $full_pid
echo "full_model rc=$? ($(tail -n 1 "$OUT/full_model.log"))" >>"$SUMMARY"
if [ -f "$FULL" ]; then
    step bench $(($(left) > 160 ? 120 : 60)) "$BUNDLE/bin/canary-gpu-bench" --model "$FULL" --device cuda \
        --precision "${BENCH_PREC:-bf16,fp16,tf32}" --batches "${BATCHES:-1,64,128}" --seconds 10 --tokens 40 --runs 3
fi

# --- 4. the PyTorch eager baseline, same machine, same run ----------------------------------------
if [ -z "${SKIP_BASELINE:-}" ]; then
    ANCHOR=""
    for a in "$BUNDLE/bench/anchor_pytorch.py" shared/bench/anchor_pytorch.py ../shared/bench/anchor_pytorch.py \
        /work/shared/bench/anchor_pytorch.py; do
        [ -f "$a" ] && ANCHOR=$a && break
    done
    budget=$(($(left) - 10))
    if [ -n "$ANCHOR" ] && [ $budget -gt 40 ]; then
        step baseline_pytorch "$budget" python3 "$ANCHOR"
    else
        echo "baseline_pytorch skipped (anchor: '${ANCHOR:-not found}', ${budget}s left)" >>"$SUMMARY"
    fi
fi
echo "total $(($(date +%s) - t_start))s" >>"$SUMMARY"

# --- results.json ----------------------------------------------------------------------------------
python3 - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]
res = {"env": open(os.path.join(out, "env.txt"), errors="replace").read()[-4000:], "steps": [], "parity": {},
       "bench": [], "baseline": None}
for line in open(os.path.join(out, "summary.txt")):
    m = re.match(r"(\S+) rc=(\d+) (\d+)s", line)
    if m:
        res["steps"].append({"step": m[1], "rc": int(m[2]), "seconds": int(m[3])})
for f in sorted(os.listdir(out)):
    if f.startswith("parity_") and f.endswith(".log"):
        lines = open(os.path.join(out, f), errors="replace").read().splitlines()
        keep = [l.strip() for l in lines if re.search(r"max \|diff\||identical|cases checked|agreement|FAILED|Error|error", l)]
        res["parity"][f[len("parity_"):-4]] = keep[-60:]
if os.path.exists(os.path.join(out, "bench.log")):
    for l in open(os.path.join(out, "bench.log"), errors="replace"):
        if l.startswith("{"):
            try:
                res["bench"].append(json.loads(l))
            except ValueError:
                pass
a = os.path.join(out, "anchor_pytorch.json")
if os.path.exists(a):
    res["baseline"] = json.load(open(a))
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
PY
cat "$SUMMARY"
grep -q 'rc=[^0]' "$SUMMARY" && exit 1
exit 0
