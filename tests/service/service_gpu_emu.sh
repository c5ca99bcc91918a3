#!/usr/bin/env bash
# `canary-stt serve` with the real engine on two emulated GPUs (tests/cuda/emu: the CUDA backend's
# own kernels and host code run on the CPU): one model replica per device, concurrent jobs' batches
# on both, the CPU engine's transcripts in fp32; a GPU lost mid-run (CANARY_EMU_LOST_DEVICE=D:N,
# the sticky "unspecified launch failure" of an Xid error) is retired and its batch finishes on the
# other; with no GPU left, 503 device_failed; a GPU short of memory (CANARY_EMU_MEM_MB) runs a
# batch as halves, and answers 503 out_of_memory only when one chunk does not fit. The words are meaningless (random weights) but
# deterministic, so the transcripts must match exactly.
. "$(dirname "$0")/svc_lib.sh"
export CANARY_CUDA_PLUGIN="$CANARY_BINARY_DIR/tests/cuda/emu/libcanary_cuda_emu.so"
export CANARY_EMU_DEVICES=2 CANARY_CUDA_ARENA_MB=16
[ -f "$CANARY_CUDA_PLUGIN" ] || { bad "the emulated CUDA plugin is built ($CANARY_CUDA_PLUGIN)"; finish; }
espeak-ng -w "$TMP/speech.wav" "hello world this is a test of the canary server on two GPUs" 2>/dev/null
sox "$TMP/speech.wav" "$TMP/long.wav" repeat 14 # ~45 s: two chunks
# the text as JSON carries it (the text format puts each segment on a line of its own)
cpu_text() { "$CANARY_BIN" transcribe --model "$MODEL" --device cpu --precision fp32 --format json "$1" | jq -r .text; }
MODEL=""
for l in canary-1b-flash canary-180m-flash canary-1b-v2 canary-1b; do
  m="$CANARY_BINARY_DIR/models/$l-tiny.nemo"
  [ -f "$m" ] || continue
  MODEL=$m
  SHORT=$(cpu_text "$TMP/speech.wav")
  [ -n "$SHORT" ] && break
done
[ -n "$SHORT" ] && ok "the CPU's transcript of the sentence by $MODEL" || { bad "no tiny model transcribes the sentence (fixture test_models)"; finish; }
LONG=$(cpu_text "$TMP/long.wav")
# all_completed: every job in IDS completes with the CPU's text for its file (in FILES)
all_completed() {
  local good=0 i
  for i in "${!IDS[@]}"; do
    wait_status "$URL/v1/jobs/${IDS[$i]}" completed 120 || continue
    want=$SHORT; [ "${FILES[$i]}" = "$TMP/long.wav" ] && want=$LONG
    got=$(curl -sS "$URL/v1/jobs/${IDS[$i]}/result?format=json" | jq -r .text)
    [ "$got" = "$want" ] && good=$((good + 1)) || echo "job ${IDS[$i]} (${FILES[$i]##*/}): '$got', the CPU: '$want'" >&2
  done
  expect_eq "$1: all ${#IDS[@]} jobs completed with the CPU's transcripts" "${#IDS[@]}" "$good"
}
submit() { # submit FILES...: POST /v1/jobs, ids in IDS and their files in FILES
  IDS=(); FILES=("$@")
  for f in "$@"; do req -F file=@"$f" "$URL/v1/jobs"; IDS+=("$(jb .id)"); done
}
metric() { curl -sS "$URL/metrics" | grep -F "$1 " | awk '{print $2}'; }

# --- two GPUs, a replica each --------------------------------------------------------------------
BIN="$CANARY_BIN" start_server "$TMP/a" --model "$MODEL" --precision fp32 --max-batch 1 --workers 4
expect_code "GET /" 200 "$URL/"
expect_eq "the model on both GPUs" "cuda:0,cuda:1" "$(jb .model.device)"
expect_eq "both executors healthy" "cuda:0 true cuda:1 true" \
  "$(jb '[.hardware.devices[] | .device, .healthy] | map(tostring) | join(" ")')"
expect_eq "one log line per replica on GPU features" 2 "$(grep -c 'log-mel features on the GPU' "$TMP/a.log")"
expect_code "a synchronous transcription" 200 -F file=@"$TMP/speech.wav" "$URL/v1/audio/transcriptions"
expect_eq "the CPU's text (fp32 on the emulated GPU)" "$SHORT" "$(jb .text)"
submit "$TMP/long.wav" "$TMP/speech.wav" "$TMP/long.wav" "$TMP/speech.wav" "$TMP/speech.wav" "$TMP/speech.wav"
all_completed "two GPUs"
used=$(for id in "${IDS[@]}"; do curl -sS "$URL/v1/jobs/$id" | jq -r '.devices[]'; done | sort -u | tr '\n' ' ')
expect_eq "the jobs ran on both GPUs" "cuda:0 cuda:1 " "$used"
d0=$(metric 'canary_device_batches_total{device="cuda:0",outcome="done"}')
d1=$(metric 'canary_device_batches_total{device="cuda:1",outcome="done"}')
expect_eq "9 batches of one chunk (the sync one, 2 x 2 + 4 x 1), none failed, some on each GPU" "9 0 true" \
  "$((d0 + d1)) $(($(metric 'canary_device_batches_total{device="cuda:0",outcome="failed"}') + \
  $(metric 'canary_device_batches_total{device="cuda:1",outcome="failed"}'))) $([ "$d0" -gt 0 ] && [ "$d1" -gt 0 ] && echo true)"
stop_server "$SPID"

# --- GPU 1 lost in its first batch: retired, its batch done again on GPU 0 -----------------------
# (in tf32, which the emulation computes in fp32: the CPU's transcripts again)
CANARY_EMU_LOST_DEVICE=1:40 BIN="$CANARY_BIN" start_server "$TMP/b" --model "$MODEL" --precision tf32 --max-batch 1 \
  --workers 4
submit "$TMP/speech.wav" "$TMP/long.wav" "$TMP/speech.wav" "$TMP/speech.wav"
all_completed "GPU 1 lost"
expect_eq "GPU 1 retired after its first batch(es) failed, none done" "0 true 0" \
  "$(metric 'canary_device_healthy{device="cuda:1"}') $([ "$(metric 'canary_device_batches_total{device="cuda:1",outcome="failed"}')" -ge 1 ] && echo true) $(metric 'canary_device_batches_total{device="cuda:1",outcome="done"}')"
expect_eq "GPU 0 did every batch" "5 1" \
  "$(metric 'canary_device_batches_total{device="cuda:0",outcome="done"}') $(metric 'canary_device_healthy{device="cuda:0"}')"
expect_code "GET /" 200 "$URL/"
expect_grep "its error in GET /" '"last_error": *"CUDA device 1: .*unspecified launch failure"' "$TMP/body"
expect_grep "logged" "device cuda:1 failed and is marked unhealthy: CUDA device 1: .*unspecified launch failure" "$TMP/b.log"
expect_code "/health: still serving on GPU 0" 200 "$URL/health"
stop_server "$SPID"

# --- the only GPU lost: 503 device_failed, /health 503 ------------------------------------------
CANARY_EMU_LOST_DEVICE=1:40 BIN="$CANARY_BIN" start_server "$TMP/c" --model "$MODEL" --device cuda:1 --precision fp32
expect_eq "one replica, on GPU 1" "cuda:1" "$(curl -sS "$URL/" | jq -r .model.device)"
expect_code "a transcription on the failing GPU: 503" 503 -F file=@"$TMP/speech.wav" "$URL/v1/audio/transcriptions"
expect_eq "device_failed with the CUDA error" "device_failed true" \
  "$(jb '[.error.code, (.error.message | test("cuda:1: CUDA device 1: .*unspecified launch failure"))] | map(tostring) | join(" ")')"
expect_code "the next one: 503" 503 -F file=@"$TMP/speech.wav" "$URL/v1/audio/transcriptions"
expect_eq "no device left" "device_failed no healthy device left to run batches" "$(jb '.error.code + " " + .error.message')"
submit "$TMP/speech.wav"
wait_status "$URL/v1/jobs/${IDS[0]}" failed 30 && ok "a job fails" || bad "a job fails"
expect_eq "with device_failed" "device_failed" "$(curl -sS "$URL/v1/jobs/${IDS[0]}" | jq -r .error.code)"
expect_code "/health 503" 503 "$URL/health"
stop_server "$SPID"

# --- a GPU without memory for the batch (another process filled it): halves, not failures ---------
# (CANARY_EMU_MEM_MB: the emulated GPU has that much memory; 129 MiB holds one 40-s chunk of this
# tiny model beside the two cuBLAS workspaces and the front end's scratch, not two)
sox "$TMP/speech.wav" "$TMP/80s.wav" repeat 24 # two 40-s chunks, batched together, and a short one
CANARY_EMU_MEM_MB=129 BIN="$CANARY_BIN" start_server "$TMP/m" --model "$MODEL" --device cuda:0 --precision fp32 \
  --max-batch 2 --streams 1
expect_code "a transcription the GPU has memory for one chunk at a time" 200 -F file=@"$TMP/80s.wav" \
  "$URL/v1/audio/transcriptions"
expect_eq "the CPU's text" "$(cpu_text "$TMP/80s.wav")" "$(jb .text)"
expect_grep "the batch of two ran as two" \
  "cuda:0: out of memory for a batch of 2 chunks (.*); running it as 1 + 1; batches of at most that from now on" \
  "$TMP/m.log"
expect_code "the same again" 200 -F file=@"$TMP/80s.wav" "$URL/v1/audio/transcriptions"
expect_eq "the same text, and no second out-of-memory: the limit dropped" "true 1" \
  "$([ "$(jb .text)" = "$(cpu_text "$TMP/80s.wav")" ] && echo true) $(grep -c 'out of memory for a batch' "$TMP/m.log")"
expect_eq "GET / shows the lowered limit" "1" "$(curl -sS "$URL/" | jq -r '.hardware.devices[0].max_batch')"
expect_eq "no batch failed, the GPU stays healthy" "0 1" \
  "$(metric 'canary_device_batches_total{device="cuda:0",outcome="failed"}') $(metric 'canary_device_healthy{device="cuda:0"}')"
stop_server "$SPID"
CANARY_EMU_MEM_MB=102 BIN="$CANARY_BIN" start_server "$TMP/n" --model "$MODEL" --device cuda:0 --precision fp32
expect_code "not even one 40-s chunk fits: 503" 503 -F file=@"$TMP/80s.wav" "$URL/v1/audio/transcriptions"
expect_eq "out_of_memory" "out_of_memory" "$(jb .error.code)"
expect_code "the GPU is not retired for it: /health 200" 200 "$URL/health"
stop_server "$SPID"

# --- a lone long job hands over more than 16 chunks where memory allows: GPU batches fill up -----
# (5-s chunks: 320 KB of PCM each, so this machine's RAM allows the largest group, 64; before, a job
# handed over at most 16 chunks, so its batches averaged 16 or fewer)
sox "$TMP/speech.wav" "$TMP/200s.wav" repeat 59
CANARY_ENGINE_CHUNK_SECONDS=5 BIN="$CANARY_BIN" start_server "$TMP/g" --model "$MODEL" --device cuda:0 \
  --precision fp32 --max-batch 64 --streams 1 --workers 1
expect_grep "a job hands over up to 64 chunks" "a job hands over up to 64 chunks at a time" "$TMP/g.log"
submit "$TMP/200s.wav"
wait_status "$URL/v1/jobs/${IDS[0]}" completed 120 && ok "the long job completes" || bad "the long job completes"
want=$(CANARY_ENGINE_CHUNK_SECONDS=5 cpu_text "$TMP/200s.wav")
expect_eq "with the CPU's text at 5-s chunks" "$want" "$(curl -sS "$URL/v1/jobs/${IDS[0]}/result?format=json" | jq -r .text)"
chunks=$(curl -sS "$URL/v1/jobs/${IDS[0]}" | jq -r .chunks.done)
batches=$(metric 'canary_device_batches_total{device="cuda:0",outcome="done"}')
echo "# $chunks chunks in $batches batches" >&2
expect_eq "more than 32 chunks, in batches of more than 16 on average" "true" \
  "$([ "$chunks" -gt 32 ] && [ $((chunks / batches)) -gt 16 ] && echo true)"
stop_server "$SPID"

# --- a GPU that does not exist is refused at start ----------------------------------------------
expect_rc 1 "serve --device cuda:5 exits" "$CANARY_BIN" serve --model "$MODEL" --device cuda:5 --port 0 \
  --data-dir "$TMP/d"
expect_grep "saying why" "engine.device: 'cuda:5' names GPU 5, but 2 GPU(s) were detected" "$TMP/err"
finish
