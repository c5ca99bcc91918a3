#!/usr/bin/env bash
# Pipeline read-ahead (reader thread) vs sequential: peak RSS and wall time of `canary-stt
# transcribe` on the same inputs, runs alternated so that both modes see the same machine load.
#   bench/pipeline_overlap.sh BUILD_DIR MODEL.nemo [RUNS]
# Inputs are assembled with sox in a temporary directory (espeak-ng + pocketsphinx speech, noise):
#   ten.flac / hour.flac / three_h.flac: 26 s of speech per 5 min (10 min, 1 h, 3 h)
#   dense.flac: 10 min of speech with short pauses only
# Prints one line per (input, mode): median wall seconds and peak RSS (KiB), and whether the two
# modes wrote identical verbose_json.
set -euo pipefail
B=$(realpath "${1:?build dir}"); M=$(realpath "${2:?model}"); RUNS=${3:-5}
BIN=$B/bin/canary-stt
DATA=/usr/share/pocketsphinx/test/data
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
export CANARY_ENGINE_DEVICE=cpu # the CPU engine only (no GPU libraries in the RSS)
espeak-ng -w tts.wav "The quick brown fox jumps over the lazy dog."
sox tts.wav -r 16000 -c 1 -b 16 tts16.wav
sox -t raw -r 16000 -e signed -b 16 -c 1 $DATA/goforward.raw go.wav
sox -t raw -r 16000 -e signed -b 16 -c 1 $DATA/numbers.raw num.wav
sox -R -n -r 16000 -c 1 -b 16 noise2.wav synth 2 whitenoise vol 0.003
sox -R -n -r 16000 -c 1 -b 16 sil3.wav trim 0 3
sox noise2.wav tts16.wav sil3.wav go.wav noise2.wav num.wav speech.wav
sox speech.wav num.wav go.wav tts16.wav block_speech.wav
sox -R -n -r 16000 -c 1 -b 16 block_quiet.wav synth 280 whitenoise vol 0.002
sox block_speech.wav block_quiet.wav block.wav
sox $(for i in $(seq 2); do echo block.wav; done) ten.flac
sox $(for i in $(seq 12); do echo block.wav; done) hour.flac
sox $(for i in $(seq 36); do echo block.wav; done) three_h.flac
sox $(for i in $(seq 24); do echo block_speech.wav; done) dense.flac
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for f in ten hour three_h dense; do
  for ra in on off; do : > "t_${f}_$ra"; done
  for i in $(seq "$RUNS"); do
    for ra in on off; do
      /usr/bin/time -f "%e %M" -a -o "t_${f}_$ra" nice "$BIN" transcribe --model "$M" --format verbose_json \
        --read-ahead $ra --output-dir "out_$ra" "$f.flac" 2>/dev/null
    done
  done
  same=$(cmp -s "out_on/$f.json" "out_off/$f.json" && echo identical || echo DIFFERENT)
  for ra in on off; do
    sort -n "t_${f}_$ra" | awk -v f="$f" -v ra="$ra" -v same="$same" \
      '{w[NR]=$1; if ($2>m) m=$2} END {printf "%-8s read-ahead %-3s median wall %6.2f s  peak RSS %7d KiB  (%s)\n", f, ra, w[int((NR+1)/2)], m, same}'
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
