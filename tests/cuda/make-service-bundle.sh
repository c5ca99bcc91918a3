#!/usr/bin/env bash
# Builds build/svc-bundle: what tests/cuda/service-gpu-check.sh needs to run the product itself
# (`canary-stt transcribe`, `serve`, `bench`, `hwinfo`) on a GPU machine that has none of our Debian
# libraries (at most 64 MiB may be carried there, the working tree included):
#   bin/canary-stt          the release binary
#   lib.tar.xz              every shared library it needs beyond glibc and the C++ runtime (FFmpeg's
#                           codecs pull in ~150 MiB; xz brings them to ~50)
#   models/                 canary-1b-flash-tiny.nemo (EOS-calibrated, so transcripts have real lengths)
#   full/canary-1b-flash/   the full-size checkpoint's config and tokenizers (tests/cuda/full_model.py
#                           adds random weights there with torch alone)
#   audio/                  speech.wav (a sentence), long.flac (~4.7 min of sentences and pauses: the
#                           VAD cuts it into several chunks), mix00-11.opus (12 pieces of it, 6-38 s),
#                           video.mp4 (H.264 + AAC), real.flac (recorded speech, pocketsphinx-testdata)
#   expected/NAME.json      the CPU's fp32 verbose_json of each file with the tiny model: the GPU's fp32
#                           must give the same tokens and times, through the CLI and through the service
#
#   tests/cuda/make-service-bundle.sh BUILD_DIR OUT_DIR     (BUILD_DIR: a release build with its models)
set -eu
BUILD=$(cd "$1" && pwd)
OUT=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$BUILD/bin/canary-stt
TINY=$BUILD/models/canary-1b-flash-tiny.nemo
[ -x "$BIN" ] || { echo "no $BIN: make release first" >&2; exit 1; }
[ -f "$TINY" ] || { echo "no $TINY: run the test_models fixture (ctest -R test_models) first" >&2; exit 1; }
SYSTEM_LIBS='^(linux-vdso\.so|ld-linux[-a-z0-9_]*\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcublas(Lt)?\.so|libcudart\.so)'

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/models" "$OUT/full" "$OUT/audio" "$OUT/expected" "$OUT/lib"
cp "$BIN" "$OUT/bin/canary-stt"
cp "$TINY" "$OUT/models/"
ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
    if ! [[ $name =~ $SYSTEM_LIBS ]]; then cp -L "$path" "$OUT/lib/$name"; fi
done
(cd "$OUT" && tar -cf - lib | xz -9 -T2 >lib.tar.xz && rm -rf lib)
/usr/bin/python3 "$SRC/tests/cuda/full_model.py" skeleton canary-1b-flash "$OUT/full/canary-1b-flash" >/dev/null

A=$OUT/audio
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
espeak-ng -w "$A/speech.wav" "hello world this is a test of the canary server on a real GPU" 2>/dev/null
i=0
for s in "the quick brown fox jumps over the lazy dog" "speech recognition on graphics processors is fast" \
    "long recordings are cut at silences into chunks" "every chunk is batched with the others"; do
    espeak-ng -w "$T/s$i.wav" "$s" 2>/dev/null
    sox "$T/s$i.wav" -r 16000 "$T/p$i.wav" pad 0 1.2
    i=$((i + 1))
done
sox "$T"/p*.wav "$T/round.wav"
sox "$T/round.wav" -C 5 "$A/long.flac" repeat 17 # ~3 minutes
# 12 files of distinct lengths (6-38 s, opus): jobs whose chunks can batch together only when any
# lengths may (canary_params.batch_independent; CANARY_EQUAL_LENGTH_BATCHES=1 is the A/B)
k=0
for len in 6 8 11 13 16 18 21 24 27 31 35 38; do
    ffmpeg -loglevel error -ss $((k * 19)) -t "$len" -i "$A/long.flac" -c:a libopus -b:a 24k "$A/mix$(printf %02d $k).opus"
    k=$((k + 1))
done
ffmpeg -loglevel error -f lavfi -i color=c=blue:s=160x120:r=10 -i "$A/speech.wav" -shortest \
    -c:v libx264 -pix_fmt yuv420p -c:a aac -b:a 64k "$A/video.mp4"
R=/usr/share/pocketsphinx/test/data/librivox
if [ -d "$R" ]; then
    sox "$R"/sense_and_sensibility_01_austen_64kb-0870.wav "$R"/sense_and_sensibility_01_austen_64kb-0880.wav \
        "$R"/sense_and_sensibility_01_austen_64kb-0890.wav "$A/real.flac"
fi
for f in "$A"/*; do
    n=$(basename "$f")
    "$BIN" transcribe --model "$TINY" --device cpu --precision fp32 --format verbose_json "$f" \
        >"$OUT/expected/${n%.*}.json" 2>/dev/null
done
git -C "$SRC" rev-parse --short HEAD >"$OUT/COMMIT"
echo "service bundle: $OUT ($(du -sm "$OUT" | cut -f1) MiB): $(ls "$A" | tr '\n' ' ')"
