#!/usr/bin/env bash
# canary-stt transcribe end to end on a tiny random-weight model: speech (espeak-ng and
# pocketsphinx recordings) with silence and noise assembled by sox; every output format; silence
# gives no text; several files in one run; an hour of audio with bounded memory.
. "$(dirname "$0")/../integration/lib.sh"
B=$CANARY_BINARY_DIR
MODEL=$B/models/canary-1b-flash-tiny.nemo
DATA=/usr/share/pocketsphinx/test/data
PY=/usr/bin/python3
cd "$TMP"

# speech.wav: 2 s noise, espeak-ng sentence, 3 s digital silence, goforward, 2 s noise, numbers
espeak-ng -w tts.wav "The quick brown fox jumps over the lazy dog." 
sox tts.wav -r 16000 -c 1 -b 16 tts16.wav
sox -t raw -r 16000 -e signed -b 16 -c 1 $DATA/goforward.raw go.wav
sox -t raw -r 16000 -e signed -b 16 -c 1 $DATA/numbers.raw num.wav
sox -R -n -r 16000 -c 1 -b 16 noise2.wav synth 2 whitenoise vol 0.003
sox -R -n -r 16000 -c 1 -b 16 sil3.wav trim 0 3
sox noise2.wav tts16.wav sil3.wav go.wav noise2.wav num.wav speech.wav
sox -R -n -r 16000 -c 1 -b 16 silence.wav synth 20 whitenoise vol 0.002
DUR=$(soxi -D speech.wav)

for f in text json verbose_json srt vtt; do
  expect_rc 0 "transcribe --format $f" "$CANARY_BIN" transcribe --model "$MODEL" --format $f --output-dir out_$f speech.wav silence.wav
done
[ -s out_text/speech.txt ] && ok "text file written" || bad "out_text/speech.txt missing"
[ -f out_text/silence.txt ] && [ ! -s out_text/silence.txt ] && ok "silence gives an empty text file" || bad "silence.txt not empty"
expect_grep "json has text" '^{"text":' out_json/speech.json
expect_grep "silence json is empty" '^{"text":""}$' out_json/silence.json
expect_grep "vtt header" '^WEBVTT$' out_vtt/speech.vtt
expect_grep "srt timing line" '^[0-9][0-9]:[0-5][0-9]:[0-5][0-9],[0-9][0-9][0-9] --> [0-9][0-9]:[0-5][0-9]:[0-5][0-9],[0-9][0-9][0-9]$' out_srt/speech.srt

# verbose_json: OpenAI's shape; segments monotonic, inside the audio, and inside the speech (not in
# the 3 s digital silence or the leading noise); duration right; silence has no segments
if $PY - "$DUR" out_verbose_json/speech.json out_verbose_json/silence.json <<'PYEOF'
import json, sys
dur = float(sys.argv[1])
v = json.load(open(sys.argv[2]))
assert v["task"] == "transcribe" and v["language"] == "en", v
assert abs(v["duration"] - dur) < 0.002, (v["duration"], dur)
assert v["segments"], "no segments"
prev = 0
for s in v["segments"]:
    for k in ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob"):
        assert k in s, k
    assert prev <= s["start"] <= s["end"] <= dur, s
    assert s["start"] >= 1.7, ("segment in the leading noise", s)
    prev = s["start"]
for w in v.get("words", []):
    assert 0 <= w["start"] <= w["end"] <= dur, w
assert v["words_approximate"] is True  # this engine runs without timestamp tokens
sil = json.load(open(sys.argv[3]))
assert sil["segments"] == [] and sil["text"] == "", sil
PYEOF
then ok "verbose_json shape and timestamps"; else bad "verbose_json shape and timestamps"; fi

# reading on its own thread (default) or in turn with inference: the same output
expect_rc 0 "--read-ahead off" "$CANARY_BIN" transcribe --model "$MODEL" --read-ahead off --format verbose_json \
  --output-dir out_seq speech.wav silence.wav
cmp -s out_seq/speech.json out_verbose_json/speech.json && cmp -s out_seq/silence.json out_verbose_json/silence.json \
  && ok "read-ahead on and off give identical verbose_json" || bad "read-ahead changes the output"
expect_rc 2 "bad --read-ahead" "$CANARY_BIN" transcribe --model "$MODEL" --read-ahead maybe speech.wav

# several files to stdout: one transcript line each; srt for several files needs --output-dir
expect_rc 0 "two files to stdout" "$CANARY_BIN" transcribe --model "$MODEL" speech.wav go.wav
[ "$(wc -l < "$TMP/out")" = 2 ] && ok "one line per file" || bad "expected 2 lines: $(cat "$TMP/out")"
expect_rc 2 "srt of two files without --output-dir" "$CANARY_BIN" transcribe --model "$MODEL" --format srt speech.wav go.wav
expect_grep "says why" "needs --output-dir" "$TMP/err"
expect_rc 2 "unknown format" "$CANARY_BIN" transcribe --model "$MODEL" --format xml speech.wav
expect_rc 1 "missing file" "$CANARY_BIN" transcribe --model "$MODEL" nosuchfile.wav
expect_grep "names the file" "nosuchfile.wav" "$TMP/err"

# files of different lengths in one command: their chunks share batches (each chunk computed as if
# alone, canary_params.batch_independent; this model uses NeMo 2.4's front end, whose padding would
# otherwise reach a shorter chunk), and each file's transcript is the one it has alone
sox speech.wav len_a.wav trim 0 7.3
sox speech.wav len_b.wav trim 1.1 9.9
sox speech.wav len_c.wav trim 0.4 5.25
export CANARY_LOG_LEVEL=debug
expect_rc 0 "three lengths, batches of up to 4" "$CANARY_BIN" transcribe --model "$MODEL" --max-batch 4 \
  --format verbose_json --output-dir out_together len_a.wav len_b.wav len_c.wav
mixed=$(sed -n 's/.*batch of \([2-9]\) chunk(s) of \([0-9.]*\)-\([0-9.]*\) s.*/\2 \3/p' "$TMP/err" | awk '$1 != $2' | head -n1)
[ -n "$mixed" ] && ok "a batch holds chunks of different lengths ($mixed s)" || bad "no batch mixed lengths: $(grep 'batch of' "$TMP/err")"
unset CANARY_LOG_LEVEL
for f in len_a len_b len_c; do
  "$CANARY_BIN" transcribe --model "$MODEL" --format verbose_json --output-dir out_alone $f.wav 2>/dev/null
done
if $PY - <<'PYEOF'
import json
for f in ("len_a", "len_b", "len_c"):
    t, a = (json.load(open("%s/%s.json" % (d, f))) for d in ("out_together", "out_alone"))
    assert t["text"] == a["text"] and len(t["segments"]) == len(a["segments"]), (f, t["text"], a["text"])
    for x, y in zip(t["segments"], a["segments"]):
        assert x["tokens"] == y["tokens"] and abs(x["avg_logprob"] - y["avg_logprob"]) < 1e-4, (f, x, y)
PYEOF
then ok "each file's transcript in the shared batch is the one it has alone"; else bad "batching changed a transcript"; fi

# --timestamps: the model's timestamp tokens (flash models); canary-1b has none and says so
expect_rc 0 "--timestamps on canary-180m-flash" "$CANARY_BIN" transcribe --model "$B/models/canary-180m-flash-tiny.nemo" \
  --timestamps --format verbose_json speech.wav
if $PY - "$DUR" "$TMP/out" <<'PYEOF'
import json, sys
dur = float(sys.argv[1])
v = json.load(open(sys.argv[2]))
prev = 0
for w in v.get("words", []):
    assert prev <= w["start"] <= w["end"] <= dur, w
    prev = w["start"]
PYEOF
then ok "--timestamps: word times monotonic and inside the audio"; else bad "--timestamps: word times"; fi
expect_rc 2 "--timestamps on canary-1b" "$CANARY_BIN" transcribe --model "$B/models/canary-1b-tiny.nemo" --timestamps speech.wav
expect_grep "says which models have them" "no timestamp tokens" "$TMP/err"

# an hour (and ten minutes, for comparison): about 26 s of speech then 4:40 of noise, repeated.
sox speech.wav num.wav go.wav tts16.wav block_speech.wav
sox -R -n -r 16000 -c 1 -b 16 block_quiet.wav synth 280 whitenoise vol 0.002
sox block_speech.wav block_quiet.wav block.wav
SPEECH=$(soxi -D block_speech.wav); BLOCK=$(soxi -D block.wav)
sox $(for i in $(seq 12); do echo block.wav; done) hour.flac
sox block.wav block.wav short.flac
peak_kb() { # peak RSS of a command, in KiB (ASan's quarantine of freed memory kept small, else
  # it alone grows RSS by up to 256 MiB and hides what the program holds)
  ASAN_OPTIONS=quarantine_size_mb=4:thread_local_quarantine_size_kb=64 $PY -c 'import resource,subprocess,sys; r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode==0 else -1)' "$@"
}
# Bounded memory: the engine's activation buffers grow to the largest (batch, length) they meet and
# the pipeline holds at most its batch budgets of PCM, so a short input can peak lower than a long
# one (10 min is printed for the record); past that, two hours must not need more than one.
sox hour.flac hour.flac two_hours.flac
short_kb=$(peak_kb "$CANARY_BIN" transcribe --model "$MODEL" --format json --output-dir out_mem short.flac)
hour_kb=$(peak_kb "$CANARY_BIN" transcribe --model "$MODEL" --format verbose_json --output-dir out_mem hour.flac)
two_kb=$(peak_kb "$CANARY_BIN" transcribe --model "$MODEL" --format verbose_json --output-dir out_mem2 two_hours.flac)
echo "# peak RSS: 10 min $short_kb KiB, 1 hour $hour_kb KiB, 2 hours $two_kb KiB"
if [ "$hour_kb" -gt 0 ] && [ "$two_kb" -gt 0 ] && [ "$two_kb" -lt $((hour_kb + 24576)) ]; then
  ok "memory does not grow with length ($two_kb KiB for 2 h vs $hour_kb KiB for 1 h)"
else
  bad "memory grows with length: 1 hour $hour_kb KiB, 2 hours $two_kb KiB"
fi
if $PY - out_mem/hour.json "$SPEECH" "$BLOCK" <<'PYEOF'
import json, sys
v = json.load(open(sys.argv[1]))
speech, block = float(sys.argv[2]), float(sys.argv[3])
assert abs(v["duration"] - 12 * block) < 0.01, v["duration"]
# speech only at the start of every block: every segment must lie there (0.5 s for VAD padding)
for s in v["segments"]:
    b = int(s["start"] // block)
    assert s["end"] <= b * block + speech + 0.5, s
# a random-weight model may stop at once on some chunks, so not every block needs text (the
# pipeline tests prove with a recognizer double that every chunk is transcribed); most do
assert len({int(s["start"] // block) for s in v["segments"]}) >= 6, "most blocks without text"
PYEOF
then ok "hour: text only where the speech is"; else bad "hour: segments outside the speech"; fi
finish
