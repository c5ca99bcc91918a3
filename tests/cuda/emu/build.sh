#!/usr/bin/env bash
# Builds libcanary_cuda_emu.so: src/nn/cuda/{backend,kernels,profile}.cu compiled as C++ against the CPU
# emulation of CUDA/cuBLAS/cuBLASLt in this directory (kernel launches rewritten to emu_launch).
#   build.sh SOURCE_DIR OUT_DIR [CXX] [CC]     (also OUT_DIR/emu_selftest: emu_selftest.cpp)
set -eu
SRC=$1 OUT=$2 CXX=${3:-c++} CC=${4:-cc}
EMU="$SRC/tests/cuda/emu"
mkdir -p "$OUT"
for f in backend kernels profile; do
    sed -E -e 's/([A-Za-z_0-9]+)<<<(.*)>>>\(/emu_launch(\1, \2, /' \
        -e 's/extern __shared__ float smem\[\];/float *smem = (float *)emu_dynamic_smem();/' \
        "$SRC/src/nn/cuda/$f.cu" >"$OUT/$f.emu.cpp"
done
FLAGS="-std=c++17 -O2 -g -fPIC -fvisibility=hidden -Wall -Wno-unused-function -Wno-unknown-pragmas -I$EMU/include -I$EMU -I$SRC/src -I$SRC/include"
"$CC" -std=gnu11 -O1 -fPIC -fvisibility=hidden -I"$SRC/include" -I"$SRC/src" -c "$SRC/src/base/error.c" -o "$OUT/error.o"
"$CXX" $FLAGS -shared -o "$OUT/libcanary_cuda_emu.so" "$OUT/backend.emu.cpp" "$OUT/kernels.emu.cpp" "$OUT/profile.emu.cpp" \
    "$EMU/emu_cuda.cpp" "$EMU/emu_plugin.cpp" "$OUT/error.o"
# the emulation's ordering promises, checked on their own (ctest cuda_emu_selftest)
"$CXX" -std=c++17 -O1 -g -Wall -Wno-unused-function -I$EMU/include -I$EMU -o "$OUT/emu_selftest" \
    "$EMU/emu_selftest.cpp" "$EMU/emu_cuda.cpp" -lpthread
