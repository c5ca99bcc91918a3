#!/usr/bin/env bash
# Async jobs: lifecycle, progress, results in every format, listing, cancel/delete, idempotency,
# server-sent events, API-key isolation, signed webhooks with retries, and result retention.
. "$(dirname "$0")/svc_lib.sh"
mkwav "$TMP/a2.wav" 2
mkwav "$TMP/a3.wav" 3
mkwav "$TMP/a8.wav" 8
mkwav "$TMP/bad.wav" 3 11025
mkwav "$TMP/long.wav" 120 1000 8
CANARY_FAKE_CHUNK_MS=100 start_server "$TMP/d" --workers 1
J="$URL/v1/jobs"

# --- lifecycle and progress
expect_code "submit" 202 -F file=@"$TMP/a8.wav" -F response_format=text -F language=de "$J"
A=$(jb .id)
expect_eq "202 body" "queued job de text a8.wav" "$(jb '[.status, .object, .language, .response_format, .filename]|join(" ")')"
expect_grep "Location header" "Location: /v1/jobs/$A" "$TMP/hdr"
for _ in $(seq 1 200); do
  req "$J/$A"; [ "$(jb .chunks.done)" -ge 2 ] 2>/dev/null && break; sleep 0.05
done
expect_eq "processing with progress, ETA and device" "processing 8 true true cpu true" \
  "$(jb '[.status, .chunks.total, (.progress > 0 and .progress < 1), (.eta_seconds > 0), .devices[0], (.started_at != null)]|map(tostring)|join(" ")')"
wait_status "$J/$A" completed 30 && ok "job completes" || bad "job completes"
req "$J/$A"
expect_eq "completed job" "1 8 8 null true" "$(jb '[.progress, .chunks.done, .audio_seconds, .error, (.finished_at >= .started_at)]|map(tostring)|join(" ")')"
expect_code "result in the job's format" 200 "$J/$A/result"
expect_eq "text result" "Chunk 1 of 8. Chunk 2 of 8. Chunk 3 of 8. Chunk 4 of 8. Chunk 5 of 8. Chunk 6 of 8. Chunk 7 of 8. Chunk 8 of 8." "$(cat "$TMP/body")"
expect_code "result as srt" 200 "$J/$A/result?format=srt"
expect_eq "srt first cue" "$(printf '1\n00:00:00,000 --> 00:00:01,000\nChunk 1 of 8.')" "$(head -3 "$TMP/body")"
expect_code "result as vtt" 200 "$J/$A/result?format=vtt"
expect_eq "vtt header" "WEBVTT" "$(head -1 "$TMP/body")"
expect_code "result as verbose_json" 200 "$J/$A/result?format=verbose_json"
expect_eq "verbose_json result" "de 8 8" "$(jb '[.language, .duration, (.segments|length)]|map(tostring)|join(" ")')"
expect_code "result as json" 200 "$J/$A/result?format=json"
expect_eq "json result" "Chunk 1 of 8." "$(jb '.text[0:13]')"
expect_code "bad result format" 400 "$J/$A/result?format=doc"
expect_eq "uploaded audio deleted after completion" "0" "$(find "$TMP/d/audio" -type f | wc -l)"

# --- a translation job and a failing job
expect_code "translate job" 202 -F file=@"$TMP/a2.wav" -F task=translate -F target_language=en -F language=de "$J"
T=$(jb .id)
expect_code "failing job" 202 -F file=@"$TMP/bad.wav" "$J"
F=$(jb .id)
wait_status "$J/$T" completed 30 && ok "translation completes" || bad "translation completes"
expect_code "translation result" 200 "$J/$T/result?format=text"
expect_eq "translated text" "Chunk 1 of 2 (en). Chunk 2 of 2 (en)." "$(cat "$TMP/body")"
wait_status "$J/$F" failed 30 && ok "bad audio fails the job" || bad "bad audio fails the job"
req "$J/$F"
expect_eq "failure reason" "invalid_audio corrupt audio at 1.0 s (test transcriber)" "$(jb '.error.code + " " + .error.message')"
expect_code "result of a failed job is 409" 409 "$J/$F/result"
expect_eq "409 code" "job_failed" "$(jb .error.code)"
expect_code "undecodable upload is refused at submit" 400 -F file=@"$CANARY_SOURCE_DIR/README.md" "$J"
expect_code "bad task" 400 -F file=@"$TMP/a2.wav" -F task=summarize "$J"
expect_code "bad webhook_url" 400 -F file=@"$TMP/a2.wav" -F webhook_url=ftp://x "$J"
expect_code "unknown job is 404" 404 "$J/job_000000000000000000000000"

# --- listing: newest first, pages, status filter
expect_code "list page 1" 200 "$J?limit=2"
expect_eq "page 1" "$F $T true" "$(jb '[.data[0].id, .data[1].id, .has_more]|map(tostring)|join(" ")')"
expect_code "list page 2" 200 "$J?limit=2&after=$T"
expect_eq "page 2" "$A false" "$(jb '[.data[0].id, .has_more]|map(tostring)|join(" ")')"
expect_code "filter by status" 200 "$J?status=failed"
expect_eq "only the failed job" "$F 1" "$(jb '[.data[0].id, (.data|length)]|map(tostring)|join(" ")')"
expect_code "bad status filter" 400 "$J?status=done"
expect_code "bad limit" 400 "$J?limit=0"
expect_code "bad cursor" 400 "$J?after=job_nope"

# --- idempotency
expect_code "submit with Idempotency-Key" 202 -H "Idempotency-Key: abc-1" -F file=@"$TMP/a2.wav" "$J"
I1=$(jb .id)
expect_code "retried submit" 202 -H "Idempotency-Key: abc-1" -F file=@"$TMP/a2.wav" "$J"
expect_eq "same job returned" "$I1" "$(jb .id)"
expect_grep "marked as replayed" "Idempotent-Replayed: true" "$TMP/hdr"
expect_code "another key" 202 -H "Idempotency-Key: abc-2" -F file=@"$TMP/a2.wav" "$J"
I2=$(jb .id)
[ "$I1" != "$I2" ] && ok "a new key makes a new job" || bad "a new key makes a new job"

# --- server-sent events
expect_code "job for SSE" 202 -F file=@"$TMP/a3.wav" "$J"
S=$(jb .id)
timeout 60 curl -sS -N "$J/$S/events" >"$TMP/sse" || true
expect_grep "progress events" "^event: progress" "$TMP/sse"
expect_eq "ends with completed" "event: completed" "$(grep '^event:' "$TMP/sse" | tail -1)"
expect_eq "final data" "completed 1 3" "$(grep '^data:' "$TMP/sse" | tail -1 | cut -c7- | jq -r '[.status, .progress, .chunks.done]|map(tostring)|join(" ")')"
expect_eq "progress is monotonic" "ok" "$(grep '^data:' "$TMP/sse" | cut -c7- | jq -s -r '[.[].chunks.done] as $d | if $d == ($d|sort) and ($d|length) >= 3 then "ok" else ($d|tostring) end')"
timeout 10 curl -sS -N "$J/$S/events" >"$TMP/sse2" || true
expect_eq "SSE on a finished job ends at once" "event: completed" "$(grep '^event:' "$TMP/sse2")"

# --- cancel a running job, delete a finished one
expect_code "long job" 202 -F file=@"$TMP/long.wav" "$J"
L=$(jb .id)
wait_status "$J/$L" processing 30 && ok "long job runs" || bad "long job runs"
expect_code "DELETE cancels a running job" 200 -X DELETE "$J/$L"
expect_eq "canceled" "canceled canceled" "$(jb '.status + " " + .error.code')"
expect_eq "its audio is deleted" "0" "$(find "$TMP/d/audio" -type f | wc -l)"
expect_code "result of a canceled job" 409 "$J/$L/result"
expect_code "DELETE removes a finished job" 200 -X DELETE "$J/$A"
expect_eq "deleted" "true" "$(jb .deleted)"
expect_code "and its result is gone" 404 "$J/$A/result"
stop_server "$SPID"

# --- API keys: each key sees only its own jobs
CANARY_FAKE_CHUNK_MS=5 start_server "$TMP/k" --api-keys "keyA,keyB"
expect_code "no key" 401 "$URL/v1/jobs"
expect_eq "401 shape" "authentication_error invalid_api_key" "$(jb '.error.type + " " + .error.code')"
expect_code "wrong key" 401 -H "Authorization: Bearer keyC" "$URL/v1/jobs"
expect_code "health needs no key" 200 "$URL/health"
expect_code "A submits" 202 -H "Authorization: Bearer keyA" -H "Idempotency-Key: same" -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
KA=$(jb .id)
expect_code "B uses the same idempotency key" 202 -H "Authorization: Bearer keyB" -H "Idempotency-Key: same" -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
KB=$(jb .id)
[ "$KA" != "$KB" ] && ok "idempotency keys are per API key" || bad "idempotency keys are per API key"
expect_code "B cannot see A's job" 404 -H "Authorization: Bearer keyB" "$URL/v1/jobs/$KA"
expect_code "B cannot fetch A's result" 404 -H "Authorization: Bearer keyB" "$URL/v1/jobs/$KA/result"
expect_code "B cannot delete A's job" 404 -X DELETE -H "Authorization: Bearer keyB" "$URL/v1/jobs/$KA"
expect_code "B cannot stream A's events" 404 -H "Authorization: Bearer keyB" "$URL/v1/jobs/$KA/events"
expect_code "B lists" 200 -H "Authorization: Bearer keyB" "$URL/v1/jobs"
expect_eq "B sees only its job" "$KB 1" "$(jb '[.data[0].id, (.data|length)]|map(tostring)|join(" ")')"
expect_code "A sees its job" 200 -H "Authorization: Bearer keyA" "$URL/v1/jobs/$KA"
expect_code "sync request with a key" 200 -H "Authorization: Bearer keyA" -F file=@"$TMP/a2.wav" "$URL/v1/audio/transcriptions"
stop_server "$SPID"

# --- webhooks: signed, retried with backoff, bounded
"$PY" "$CANARY_SOURCE_DIR/tests/service/webhook_receiver.py" "$TMP/wh.port" "$TMP/wh.log" "$TMP/w/webhook_secret" 1 &
SERVERS+=("$!")
"$PY" "$CANARY_SOURCE_DIR/tests/service/webhook_receiver.py" "$TMP/wh2.port" "$TMP/wh2.log" "$TMP/w/webhook_secret" 1000 &
SERVERS+=("$!")
CANARY_FAKE_CHUNK_MS=5 start_server "$TMP/w" --webhook-backoff-s 0.2 --webhook-attempts 3
for _ in $(seq 1 100); do [ -s "$TMP/wh.port" ] && [ -s "$TMP/wh2.port" ] && break; sleep 0.05; done
expect_code "job with a webhook" 202 -F file=@"$TMP/a2.wav" -F webhook_url="http://127.0.0.1:$(cat "$TMP/wh.port")/hook" "$URL/v1/jobs"
W=$(jb .id)
expect_code "job with a failing webhook" 202 -F file=@"$TMP/a2.wav" -F webhook_url="http://127.0.0.1:$(cat "$TMP/wh2.port")/hook" "$URL/v1/jobs"
for _ in $(seq 1 200); do [ "$(wc -l <"$TMP/wh.log" 2>/dev/null || echo 0)" -ge 2 ] && [ "$(wc -l <"$TMP/wh2.log" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.05; done
sleep 1 # a fourth attempt would arrive by now if the bound were not respected
expect_eq "first delivery failed, second succeeded" "2" "$(wc -l <"$TMP/wh.log")"
expect_eq "signed payload" "true true job.completed $W completed" "$(tail -1 "$TMP/wh.log" | jq -r '[.valid, (.n == 2), .body.type, .body.job.id, .body.job.status]|map(tostring)|join(" ")')"
expect_eq "failing receiver got exactly 3 attempts" "3" "$(wc -l <"$TMP/wh2.log")"
expect_code "metrics" 200 "$URL/metrics"
expect_grep "delivered webhook counted" 'canary_webhooks_total{result="delivered"} 1$' "$TMP/body"
expect_grep "abandoned webhook counted" 'canary_webhooks_total{result="failed"} 1$' "$TMP/body"
stop_server "$SPID"

# --- retention: finished jobs disappear after result_ttl_hours
CANARY_FAKE_CHUNK_MS=5 start_server "$TMP/r" --result-ttl-hours 0.0003
expect_code "short-lived job" 202 -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
R=$(jb .id)
wait_status "$URL/v1/jobs/$R" completed 30 && ok "completes" || bad "completes"
for _ in $(seq 1 100); do req "$URL/v1/jobs/$R"; [ "$CODE" = 404 ] && break; sleep 0.1; done
expect_eq "expired job is gone" "404" "$CODE"
finish
