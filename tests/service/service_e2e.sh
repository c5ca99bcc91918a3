#!/usr/bin/env bash
# End to end with the real engine and pipeline: `canary-stt serve` loads a tiny generated model
# (fixture test_models; random weights, so the words are meaningless but deterministic) and
# transcribes real speech (espeak-ng) through the FFmpeg decoder, VAD, chunking and merging.
. "$(dirname "$0")/svc_lib.sh"
espeak-ng -w "$TMP/speech.wav" "hello world this is a test of the canary server" 2>/dev/null
# Random weights: some tiny models say nothing for this sentence. Use the first whose transcript by
# `canary-stt transcribe` is not empty; the service must give exactly that text.
MODEL=""
for l in canary-180m-flash canary-1b-v2 canary-1b-flash canary-1b; do
  m="$CANARY_BINARY_DIR/models/$l-tiny.nemo"
  [ -f "$m" ] || continue
  cli_text=$("$CANARY_BIN" transcribe --model "$m" --format text "$TMP/speech.wav")
  if [ -n "$cli_text" ]; then MODEL=$m; break; fi
done
[ -n "$MODEL" ] && ok "a tiny model with a non-empty transcript: $MODEL" || { bad "no tiny model transcribes the sentence (fixture test_models)"; finish; }
"$CANARY_BIN" model-info "$MODEL" --json >"$TMP/info.json"
want_block="true $(jq -r '.variant + " " + (.tokenizer.languages|join(","))' "$TMP/info.json")"
ffmpeg -loglevel error -i "$TMP/speech.wav" -ar 44100 -ac 2 "$TMP/speech.mp3"
BIN="$CANARY_BIN" start_server "$TMP/d" --model "$MODEL" --workers 2 --cache-dir "$TMP/cache"
expect_code "health is 200 with the model loaded" 200 "$URL/health"
expect_code "GET /" 200 "$URL/"
expect_eq "model block" "$want_block" "$(jb '[.model.loaded, .model.variant, (.model.languages|join(","))]|map(tostring)|join(" ")')"

T="$URL/v1/audio/transcriptions"
expect_code "verbose_json" 200 -F file=@"$TMP/speech.wav" -F response_format=verbose_json "$T"
cp "$TMP/body" "$TMP/v1.json"
text=$(jb .text)
expect_eq "verbose_json shape" "transcribe en true true true" "$(jb '[.task, .language, (.text|length > 0), (.segments|length >= 1), (.duration > 2 and .duration < 5)]|map(tostring)|join(" ")')"
expect_eq "the same text as canary-stt transcribe" "$cli_text" "$text"
# the API's verbose_json carries what the CLI's does: token ids, mean log-probability, seek (the
# log-probability to 1e-4: the server's thread count can change fp32 summation order)
"$CANARY_BIN" transcribe --model "$MODEL" --format verbose_json "$TMP/speech.wav" >"$TMP/cli_v.json"
seg_view='[.segments[]|[.seek,.start,.end,.text,.tokens,(.avg_logprob*1e4|round)]]'
expect_eq "segments with token ids and log-probabilities, as the CLI's verbose_json" \
  "$(jq -c "$seg_view" "$TMP/cli_v.json")" "$(jq -c "$seg_view" "$TMP/v1.json")"
expect_eq "token ids present" "true" "$(jq -c '[.segments[]|(.tokens|length > 0)]|all' "$TMP/v1.json")"
expect_eq "segments lie inside the audio" "true" "$(jb '[.segments[] | (.start >= 0 and .end <= 5 and .start <= .end)] | all')"
expect_code "the same request again" 200 -F file=@"$TMP/speech.wav" -F response_format=text "$T"
expect_eq "deterministic text" "$text" "$(cat "$TMP/body")"
# word granularity on a model with timestamp tokens: the same model-timed words as the CLI's --timestamps
if "$CANARY_BIN" transcribe --model "$MODEL" --timestamps \
     --format verbose_json "$TMP/speech.wav" >"$TMP/cli_ts.json" 2>/dev/null; then
  expect_code "verbose_json with word timestamps" 200 -F file=@"$TMP/speech.wav" -F response_format=verbose_json \
    -F 'timestamp_granularities[]=word' "$T"
  expect_eq "words from the model's timestamp tokens, as the CLI's" "$(jq -c '[.words[]?|[.word,.start,.end]]' "$TMP/cli_ts.json")" \
    "$(jq -c '[.words[]?|[.word,.start,.end]]' "$TMP/body")"
fi
# speech longer than the model's limit, cut inside speech: the same chunks, overlap and seam merging
sox "$TMP/speech.wav" "$TMP/45s.wav" repeat 16
expect_code "45 s of speech without a pause" 200 -F file=@"$TMP/45s.wav" -F response_format=text "$T"
expect_eq "the same text as canary-stt transcribe" "$("$CANARY_BIN" transcribe --model "$MODEL" --format text "$TMP/45s.wav")" \
  "$(cat "$TMP/body")"
expect_code "mp3 at 44.1 kHz stereo decodes" 200 -F file=@"$TMP/speech.mp3" "$T"
expect_code "async job" 202 -F file=@"$TMP/speech.wav" "$URL/v1/jobs"
J=$(jb .id)
wait_status "$URL/v1/jobs/$J" completed 120 && ok "job completes" || bad "job completes"
req "$URL/v1/jobs/$J"
expect_eq "job progress and device" "1 true cpu" "$(jb '[.progress, (.chunks.done >= 1 and .chunks.done == .chunks.total), .devices[0]]|map(tostring)|join(" ")')"
expect_code "job result" 200 "$URL/v1/jobs/$J/result?format=json"
expect_eq "job text equals the synchronous text" "$text" "$(jb .text)"
expect_code "srt" 200 "$URL/v1/jobs/$J/result?format=srt"
expect_grep "srt cue" "^00:00:0.,... --> 00:00:0.,...$" "$TMP/body"
expect_code "translation to German" 200 -F file=@"$TMP/speech.wav" -F target_language=de -F response_format=verbose_json "$URL/v1/audio/translations"
expect_eq "translation task and language" "translate de" "$(jb '.task + " " + .language')"
expect_code "a language the model lacks" 400 -F file=@"$TMP/speech.wav" -F language=ja "$T"
expect_grep "says so" "language 'ja' is not supported" "$TMP/body"
expect_code "undecodable file" 400 -F file=@"$CANARY_SOURCE_DIR/README.md" "$T"
expect_eq "invalid_audio" "invalid_audio file" "$(jb '.error.code + " " + .error.param')"
expect_code "metrics" 200 "$URL/metrics"
expect_grep "real-time factor is reported" "^canary_real_time_factor 0\.[0-9]*[1-9]" "$TMP/body"

# Fairness with the real pipeline: one worker, 10-second chunks; a short request submitted while a
# 4-chunk job runs is served between that job's chunks.
stop_server "$SPID"
sox "$TMP/speech.wav" "$TMP/long.wav" repeat 150   # ~400 s: 40 chunks, far more than the short request needs
BIN="$CANARY_BIN" start_server "$TMP/f" --model "$MODEL" --workers 1 --chunk-seconds 10 --cache-dir "$TMP/cache"
expect_code "long job" 202 -F file=@"$TMP/long.wav" "$URL/v1/jobs"
L=$(jb .id)
wait_status "$URL/v1/jobs/$L" processing 60 && ok "long job runs" || bad "long job runs"
expect_code "short request meanwhile" 200 -F file=@"$TMP/speech.wav" -F response_format=text "$URL/v1/audio/transcriptions"
expect_eq "short request answered (same text as alone)" "$text" "$(cat "$TMP/body")"
req "$URL/v1/jobs/$L"
expect_eq "while the long job is still running" "processing true" "$(jb '[.status, (.chunks.total >= 40 and .chunks.done < .chunks.total)]|map(tostring)|join(" ")')"
expect_code "cancel it (or delete it, if it finished meanwhile)" 200 -X DELETE "$URL/v1/jobs/$L"
case "$(jb '.status // "deleted"')" in canceled|deleted) ok "canceled or deleted" ;; *) bad "DELETE answered $(cat "$TMP/body")" ;; esac

# Batches across jobs with the real engine: the CPU takes batches of 4 chunks (engine.max_batch);
# jobs of 10-second chunks submitted together share the executors' batches, and each gets exactly
# the text the same file gets when it runs alone on that server. (These checkpoints use NeMo 2.4's
# front end, which does not mask padding, so the service batches only chunks of equal length;
# which jobs share a batch depends on timing here, service_devices.sh checks compositions.)
stop_server "$SPID"
espeak-ng -w "$TMP/speech2.wav" "numbers one two three four five six seven" 2>/dev/null
sox "$TMP/speech.wav" "$TMP/long1.wav" repeat 7    # ~25 s
sox "$TMP/speech2.wav" "$TMP/long2.wav" repeat 7
BIN="$CANARY_BIN" start_server "$TMP/g" --model "$MODEL" --workers 1 --max-batch 4 --chunk-seconds 10 --cache-dir "$TMP/cache"
expect_code "long1 alone" 200 -F file=@"$TMP/long1.wav" -F response_format=text "$URL/v1/audio/transcriptions"
want1=$(cat "$TMP/body")
expect_code "long2 alone" 200 -F file=@"$TMP/long2.wav" -F response_format=text "$URL/v1/audio/transcriptions"
want2=$(cat "$TMP/body")
req "$URL/metrics"
b0=$(grep '^canary_batches_total ' "$TMP/body" | cut -d' ' -f2)
c0=$(grep '^canary_batch_chunks_total ' "$TMP/body" | cut -d' ' -f2)
ids=()
for f in long1 long2 long1 long2; do
  req -F file=@"$TMP/$f.wav" "$URL/v1/jobs"; ids+=("$(jb .id)")
done
good=0
for k in 0 1 2 3; do
  wait_status "$URL/v1/jobs/${ids[$k]}" completed 120 || continue
  want=$([ $((k % 2)) = 0 ] && echo "$want1" || echo "$want2")
  [ "$(curl -sS "$URL/v1/jobs/${ids[$k]}/result?format=text")" = "$want" ] && good=$((good + 1))
done
expect_eq "four 3-chunk jobs through batches of 4, each with the text it gets alone" "4" "$good"
req "$URL/metrics"
b=$(($(grep '^canary_batches_total ' "$TMP/body" | cut -d' ' -f2) - b0))
c=$(($(grep '^canary_batch_chunks_total ' "$TMP/body" | cut -d' ' -f2) - c0))
[ "$c" -gt "$b" ] && ok "batches held several chunks ($c chunks in $b batches)" \
  || bad "no batch held more than one chunk ($c in $b)"
finish
