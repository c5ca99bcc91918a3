#!/usr/bin/env bash
# The synchronous OpenAI-compatible endpoints, the informational routes and every request error.
. "$(dirname "$0")/svc_lib.sh"
export CANARY_FAKE_CHUNK_MS=5
mkwav "$TMP/a3.wav" 3
mkwav "$TMP/a2.wav" 2
mkwav "$TMP/a6.wav" 6
mkwav "$TMP/big.wav" 40            # 1.28 MB > --max-upload-mb 1
mkwav "$TMP/bad.wav" 3 11025       # the test transcriber fails at its second chunk
echo "this is not audio" >"$TMP/notaudio.txt"
start_server "$TMP/d" --max-upload-mb 1 --max-audio-seconds 5 --language en

# --- informational routes
expect_code "GET / answers" 200 "$URL/"
expect_eq "GET / message" "Canary STT API is running" "$(jb .message)"
expect_eq "GET / keeps its keys" "true" "$(jb 'has("version") and has("model") and has("queue") and (.hardware|has("gpus") and has("gpu_names") and has("system_memory_gb") and has("max_workers"))')"
expect_eq "GET / names the model" "test/fake-canary" "$(jb .model.name)"
expect_code "GET /health is 200 with a model" 200 "$URL/health"
expect_code "GET /v1/models" 200 "$URL/v1/models"
expect_eq "models list the loaded model" "test/fake-canary" "$(jb '.data[0].id')"
expect_code "GET /openapi.json" 200 "$URL/openapi.json"
expect_eq "openapi is OpenAPI 3 with the job routes" "3.0.3 true" "$(jb '.openapi + " " + (.paths|has("/v1/jobs/{id}/events")|tostring)')"
expect_code "unknown path is 404" 404 "$URL/nope"
expect_eq "404 uses the OpenAI error shape" "invalid_request_error not_found" "$(jb '.error.type + " " + .error.code')"
expect_code "wrong method is 405" 405 -X PUT "$URL/v1/jobs"
expect_code "X-Request-Id is echoed" 200 -H "X-Request-Id: test-rid-42" "$URL/health"
expect_grep "request id header" "X-Request-Id: test-rid-42" "$TMP/hdr"

# --- every response format, exact bodies
T="$URL/v1/audio/transcriptions"
expect_code "json" 200 -F file=@"$TMP/a3.wav" -F model=whisper-1 "$T"
expect_eq "json body" '{"text":"Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3.","usage":{"type":"duration","seconds":3.0}}' "$(cat "$TMP/body")"
expect_code "text" 200 -F file=@"$TMP/a3.wav" -F response_format=text "$T"
expect_eq "text body" "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3." "$(cat "$TMP/body")"
expect_grep "text content type" "Content-Type: text/plain" "$TMP/hdr"
expect_code "srt" 200 -F file=@"$TMP/a2.wav" -F response_format=srt "$T"
expect_eq "srt body" "$(printf '1\n00:00:00,000 --> 00:00:01,000\nChunk 1 of 2.\n\n2\n00:00:01,000 --> 00:00:02,000\nChunk 2 of 2.\n\n')" "$(cat "$TMP/body")"
expect_code "vtt" 200 -F file=@"$TMP/a2.wav" -F response_format=vtt "$T"
expect_eq "vtt body" "$(printf 'WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nChunk 1 of 2.\n\n00:00:01.000 --> 00:00:02.000\nChunk 2 of 2.\n\n')" "$(cat "$TMP/body")"
expect_code "verbose_json with words" 200 -F file=@"$TMP/a2.wav" -F response_format=verbose_json -F 'timestamp_granularities[]=word' -F 'timestamp_granularities[]=segment' "$T"
expect_eq "verbose_json fields" "transcribe en 2 2 8 Chunk 0.25 0.5" "$(jb '[.task, .language, .duration, (.segments|length), (.words|length), .words[0].word, .words[1].start, .words[1].end]|map(tostring)|join(" ")')"
expect_eq "verbose_json segment" " Chunk 2 of 2. 1 2" "$(jb '[.segments[1].text, .segments[1].start, .segments[1].end]|map(tostring)|join(" ")')"
expect_code "verbose_json without word granularity has no words" 200 -F file=@"$TMP/a2.wav" -F response_format=verbose_json "$T"
expect_eq "no words key" "false" "$(jb 'has("words")')"
expect_code "chunked upload (no Content-Length)" 200 -H "Transfer-Encoding: chunked" -F file=@"$TMP/a3.wav" "$T"
expect_eq "chunked upload transcribed" "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3." "$(jb .text)"
expect_code "translation" 200 -F file=@"$TMP/a2.wav" -F language=de -F response_format=verbose_json "$URL/v1/audio/translations"
expect_eq "translation goes to English" "translate en Chunk 1 of 2 (en). Chunk 2 of 2 (en)." "$(jb '.task + " " + .language + " " + .text')"
expect_code "target_language on translations" 200 -F file=@"$TMP/a2.wav" -F target_language=fr -F response_format=text "$URL/v1/audio/translations"
expect_eq "translated to fr" "Chunk 1 of 2 (fr). Chunk 2 of 2 (fr)." "$(cat "$TMP/body")"

# --- bad requests are 400 (never 5xx), with the offending param
expect_code "unknown response_format" 400 -F file=@"$TMP/a2.wav" -F response_format=xml "$T"
expect_eq "param names response_format" "response_format invalid_request_error" "$(jb '.error.param + " " + .error.type')"
expect_code "temperature out of range" 400 -F file=@"$TMP/a2.wav" -F temperature=2 "$T"
expect_eq "param names temperature" "temperature" "$(jb .error.param)"
expect_code "word timestamps need verbose_json" 400 -F file=@"$TMP/a2.wav" -F 'timestamp_granularities[]=word' "$T"
expect_eq "param names timestamp_granularities[]" "timestamp_granularities[]" "$(jb .error.param)"
expect_code "bad language code" 400 -F file=@"$TMP/a2.wav" -F language='e n!' "$T"
expect_code "bad pnc" 400 -F file=@"$TMP/a2.wav" -F pnc=maybe "$T"
expect_code "missing file" 400 -F model=whisper-1 "$T"
expect_eq "param names file" "file missing_file" "$(jb '.error.param + " " + .error.code')"
expect_code "not multipart" 400 -H 'Content-Type: application/json' -d '{"file":"x"}' "$T"
expect_code "undecodable audio" 400 -F file=@"$TMP/notaudio.txt" "$T"
expect_eq "undecodable audio code" "invalid_audio" "$(jb .error.code)"
expect_grep "undecodable audio names the file" "notaudio.txt" "$TMP/body"
expect_code "audio failing mid-way is 400" 400 -F file=@"$TMP/bad.wav" "$T"
expect_grep "decode error message" "corrupt audio at 1.0 s" "$TMP/body"
expect_code "audio over max_audio_seconds" 400 -F file=@"$TMP/a6.wav" "$T"
expect_eq "audio_too_long" "audio_too_long" "$(jb .error.code)"
expect_code "upload over max_upload_mb (Content-Length)" 413 -F file=@"$TMP/big.wav" "$T"
expect_eq "413 code" "file_too_large" "$(jb .error.code)"
expect_code "upload over max_upload_mb (chunked)" 413 -H "Transfer-Encoding: chunked" -F file=@"$TMP/big.wav" "$T"
expect_code "stream=true is refused clearly" 400 -F file=@"$TMP/a2.wav" -F stream=true "$T"

# --- metrics reflect what happened
expect_code "GET /metrics" 200 "$URL/metrics"
expect_grep "completed count" 'canary_jobs_finished_total{status="completed"} 9$' "$TMP/body"
expect_grep "failed count" 'canary_jobs_finished_total{status="failed"} 1$' "$TMP/body"
expect_grep "latency histogram" 'canary_http_request_duration_seconds_count{method="POST",route="/v1/audio/transcriptions"} 20$' "$TMP/body"
expect_grep "audio seconds" 'canary_audio_seconds_total 21.000' "$TMP/body"
expect_grep "device busy time" 'canary_device_busy_seconds_total{device="cpu"}' "$TMP/body"
expect_grep "model ready" 'canary_model_ready 1' "$TMP/body"
expect_eq "no stray uploads left" "0" "$(find "$TMP/d/tmp" "$TMP/d/audio" -type f | wc -l)"

# --- a full queue answers 429 with Retry-After
stop_server "$SPID"
CANARY_FAKE_CHUNK_MS=50 start_server "$TMP/q" --queue-size 1 --workers 1
mkwav "$TMP/a60.wav" 60 1000 8
expect_code "long job accepted" 202 -F file=@"$TMP/a60.wav" "$URL/v1/jobs"
J=$(jb .id)
expect_code "sync request with a full queue" 429 -F file=@"$TMP/a2.wav" "$URL/v1/audio/transcriptions"
expect_grep "Retry-After" "Retry-After: " "$TMP/hdr"
expect_eq "429 type" "rate_limit_error queue_full" "$(jb '.error.type + " " + .error.code')"
expect_code "job submit with a full queue" 429 -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
expect_code "cancel the long job" 200 -X DELETE "$URL/v1/jobs/$J"
expect_eq "it is canceled" "canceled" "$(jb .status)"
expect_code "queue has room again" 200 -F file=@"$TMP/a2.wav" -F response_format=text "$URL/v1/audio/transcriptions"
finish
