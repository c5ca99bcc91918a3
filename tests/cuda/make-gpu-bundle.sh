#!/usr/bin/env bash
# Builds build/gpu-bundle: what tests/cuda/engine-gpu-check.sh needs on a GPU machine that has none
# of our Debian libraries (at most 64 MiB may be carried there):
#   bin/canary-gpu-parity   tests/model/test_model_parity: the engine against the goldens on a device
#   bin/canary-gpu-bench    tests/cuda/gpu_bench.c: the engine timed like `canary-stt bench`
#   lib/                    every shared library they need beyond glibc, libstdc++ and libgcc (both
#                           binaries are linked with RPATH $ORIGIN/../lib)
#   models/, golden/        the tiny models and their goldens (cases short, batch, librivox)
#   full/canary-1b-flash/   the full-size checkpoint's config and tokenizers; the GPU machine adds
#                           random weights with torch alone (tests/cuda/full_model.py)
#   bench/anchor_pytorch.py the PyTorch baseline (shared/bench), when this machine has it
# Then checks the bundle: nothing left to resolve outside it but the system's C/C++ runtime, and
# the parity program passes with the bundle's own libraries in a clean environment (env -i) on the
# CPU and, when the emulation is built, on the CPU emulation of the CUDA backend.
#
#   tests/cuda/make-gpu-bundle.sh BUILD_DIR OUT_DIR      (BUILD_DIR: a release build with both targets)
set -eu
BUILD=$(cd "$1" && pwd)
OUT=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
LAYOUTS="canary-1b canary-1b-flash canary-180m-flash canary-1b-v2"
CASES="short batch librivox"
# Needed from the system, never carried: glibc, the C++ runtime, the CUDA driver and libraries.
SYSTEM_LIBS='^(linux-vdso\.so|ld-linux[-a-z0-9_]*\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcublas(Lt)?\.so|libcudart\.so)'

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib" "$OUT/models" "$OUT/golden" "$OUT/full"
cp "$BUILD/tests/model/test_model_parity" "$OUT/bin/canary-gpu-parity"
cp "$BUILD/tests/cuda/canary-gpu-bench" "$OUT/bin/canary-gpu-bench"

# Libraries: everything ldd resolves for the binaries (transitively) that the system list lacks.
for bin in "$OUT"/bin/*; do
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
    if ! [[ $name =~ $SYSTEM_LIBS ]]; then cp -L "$path" "$OUT/lib/$name"; fi
done

# Tiny models and goldens: the build's own when its fixtures ran, else made here.
if [ ! -f "$BUILD/models/canary-1b-v2-tiny.nemo" ]; then
    "$PY" "$SRC/tools/make-test-model" --size tiny --out "$BUILD/models" -q --layout all
fi
if [ ! -f "$BUILD/golden/canary-1b-v2/short/manifest.json" ]; then
    "$PY" "$SRC/tests/reference/make_goldens.py" --models "$BUILD/models" --out "$BUILD/golden"
fi
for l in $LAYOUTS; do
    cp "$BUILD/models/$l-tiny.nemo" "$OUT/models/"
    for c in $CASES; do
        mkdir -p "$OUT/golden/$l"
        cp -r "$BUILD/golden/$l/$c" "$OUT/golden/$l/"
    done
done
"$PY" "$SRC/tests/cuda/full_model.py" skeleton canary-1b-flash "$OUT/full/canary-1b-flash" >/dev/null
# the PyTorch baseline travels with the bundle (a checkout's shared/ may not reach the GPU machine)
for a in "$SRC/shared/bench/anchor_pytorch.py" "$SRC/../shared/bench/anchor_pytorch.py" /work/shared/bench/anchor_pytorch.py; do
    if [ -f "$a" ]; then
        mkdir -p "$OUT/bench" && cp "$a" "$OUT/bench/"
        break
    fi
done
git -C "$SRC" log -1 --format='%H %s' >"$OUT/COMMIT" 2>/dev/null || echo unknown >"$OUT/COMMIT"

# --- checks ------------------------------------------------------------------------------------
fail() {
    echo "make-gpu-bundle: $*" >&2
    exit 1
}
# Every library any bundled object asks for is in lib/ or is a system library.
for f in "$OUT"/bin/* "$OUT"/lib/*; do
    for need in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -f "$OUT/lib/$need" ] || [[ $need =~ $SYSTEM_LIBS ]] || fail "$(basename "$f") needs $need, not in the bundle"
    done
done
for f in "$OUT"/bin/*; do
    readelf -d "$f" | grep -q 'R.*PATH.*\$ORIGIN/../lib' || fail "$(basename "$f") has no RPATH \$ORIGIN/../lib"
done
# With the system's libraries hidden, the binaries still resolve everything from lib/.
mkdir -p "$OUT/.check"
LD_LIBRARY_PATH= ldd "$OUT/bin/canary-gpu-parity" "$OUT/bin/canary-gpu-bench" >"$OUT/.check/ldd.txt"
! grep -q "not found" "$OUT/.check/ldd.txt" || fail "unresolved libraries: $(grep 'not found' "$OUT/.check/ldd.txt")"
LIBDIR=$(cd "$OUT/lib" && pwd -P)
awk '$2 == "=>" {print $1, $3}' "$OUT/.check/ldd.txt" | sort -u | while read -r lib path; do
    [[ $lib =~ $SYSTEM_LIBS ]] && continue
    [ "$(dirname "$(readlink -f "$path")")" = "$LIBDIR" ] || fail "$lib resolves outside the bundle ($path)"
done
# The parity program on the CPU in a clean environment, one case per layout.
env -i CANARY_BINARY_DIR="$OUT" CANARY_PARITY_DIRS="$OUT/golden" CANARY_PARITY_CASES=short \
    CANARY_PARITY_DEVICE=cpu "$OUT/bin/canary-gpu-parity" >"$OUT/.check/parity_cpu.txt" 2>&1 ||
    fail "parity on the CPU failed: $(tail -n 5 "$OUT/.check/parity_cpu.txt")"
grep -q "4 cases checked on cpu" "$OUT/.check/parity_cpu.txt" || fail "parity on the CPU checked no cases"
# ... and on the CPU emulation of the CUDA backend (the plugin path the GPU machine will use).
EMU="$BUILD/tests/cuda/emu/libcanary_cuda_emu.so"
if [ -f "$EMU" ]; then
    env -i CANARY_BINARY_DIR="$OUT" CANARY_PARITY_DIRS="$OUT/golden" CANARY_PARITY_CASES=short \
        CANARY_PARITY_DEVICE=cuda CANARY_PARITY_REDUCED=fp16 CANARY_CUDA_PLUGIN="$EMU" CANARY_CUDA_ARENA_MB=16 \
        "$OUT/bin/canary-gpu-parity" >"$OUT/.check/parity_emu.txt" 2>&1 ||
        fail "parity on the emulated GPU failed: $(tail -n 5 "$OUT/.check/parity_emu.txt")"
    grep -q "4 cases checked on cuda" "$OUT/.check/parity_emu.txt" || fail "parity on the emulation checked no cases"
    env -i CANARY_CUDA_PLUGIN="$EMU" CANARY_CUDA_ARENA_MB=16 "$OUT/bin/canary-gpu-bench" \
        --model "$OUT/models/canary-180m-flash-tiny.nemo" --device cuda --precision fp32,fp16 --batches 1,2 \
        --seconds 1 --tokens 3 --runs 1 >"$OUT/.check/bench_emu.jsonl" 2>&1 ||
        fail "canary-gpu-bench on the emulation failed: $(tail -n 5 "$OUT/.check/bench_emu.jsonl")"
fi
rm -rf "$OUT/.check"
size=$(du -sm "$OUT" | cut -f1)
[ "$size" -le 60 ] || fail "the bundle is ${size} MiB; at most 64 MiB can be carried to the GPU machine"
echo "gpu bundle: $OUT (${size} MiB): $(ls "$OUT/lib" | tr '\n' ' ')"
