#!/usr/bin/env bash
# Builds libcanary_cuda.so with nvcc and gcc only (no CMake, none of our Debian libraries), for the
# GPU scripts gpu-check.sh and engine-gpu-check.sh: the four .cu files compiled in parallel for
# one architecture, plus base/error.c.
#   tests/cuda/build-plugin.sh OUT_DIR ARCH NVCC CUDA_HOME     (from the repository root)
set -u
B=$1 ARCH=$2 NVCC=$3 CUDA_HOME=$4
mkdir -p "$B"
gcc -std=gnu11 -O2 -fPIC -fvisibility=hidden -Iinclude -Isrc -c src/base/error.c -o "$B/error.o" || exit 1
pids=()
for f in plugin backend kernels profile; do
    "$NVCC" -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden -Iinclude -Isrc \
        -gencode "arch=compute_$ARCH,code=sm_$ARCH" -c "src/nn/cuda/$f.cu" -o "$B/$f.o" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] || exit 1
exec "$NVCC" -shared -o "$B/libcanary_cuda.so" "$B/plugin.o" "$B/backend.o" "$B/kernels.o" "$B/profile.o" "$B/error.o" \
    -lcublasLt -lcublas -Xlinker -rpath -Xlinker "$CUDA_HOME/lib64"
