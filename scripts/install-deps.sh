#!/usr/bin/env bash
# Installs everything canary-stt needs to build, test and run, from Debian 12 packages.
# Idempotent: when every package is present it does nothing (no apt-get update).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config clang libclang-rt-14-dev llvm git
  # libraries (see README "Dependencies" for why each)
  libcmocka-dev libyaml-dev libjansson-dev zlib1g-dev libfftw3-dev libopenblas-dev
  libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
  libmicrohttpd-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev libssl-dev
  # test-model generation, the numerical reference, and test data
  python3 python3-torch python3-torchaudio python3-sentencepiece python3-numpy python3-onnx python3-yaml
  sentencepiece ffmpeg sox libsox-fmt-mp3 espeak-ng pocketsphinx-testdata sctk curl ca-certificates
  # service tests: JSON assertions in bash (the OpenAI SDK test installs npm `openai` with npm ci)
  jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js (the OpenAI SDK test and the onnxruntime benchmark): any node >= 18 will do.
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

# onnxruntime-node for the reference's ONNX parity test (tests/reference/onnx), from npm into a local,
# gitignored node_modules. --ignore-scripts: its postinstall downloads CUDA binaries from outside npm.
# Best effort: without it that one test reports itself skipped.
ort_local() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/reference/onnx"
  if command -v npm >/dev/null 2>&1 && [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules/onnxruntime-node" ]; then
    echo "install-deps: npm install --ignore-scripts in $dir"
    npm --prefix "$dir" install --ignore-scripts --no-audit --no-fund >/dev/null 2>&1 ||
      echo "install-deps: onnxruntime-node not installed (the ONNX parity test will be skipped)"
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  ort_local
  echo "install-deps: all dependencies present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
ort_local
