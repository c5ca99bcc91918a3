#!/usr/bin/env bash
# Durability: a job answered with 202 is never lost. After kill -9 (mid-job, and right after a
# 202) and a restart on the same data directory, queued and interrupted jobs run again and
# complete with the right transcript.
. "$(dirname "$0")/svc_lib.sh"
mkwav "$TMP/long.wav" 60 1000 8
mkwav "$TMP/a4.wav" 4
export CANARY_FAKE_CHUNK_MS=40
start_server "$TMP/d" --workers 1
expect_code "long job" 202 -F file=@"$TMP/long.wav" -F response_format=text "$URL/v1/jobs"
L=$(jb .id)
expect_code "second job" 202 -F file=@"$TMP/a4.wav" -H "Idempotency-Key: k1" "$URL/v1/jobs"
Q=$(jb .id)
for _ in $(seq 1 400); do req "$URL/v1/jobs/$L"; [ "$(jb .chunks.done)" -ge 3 ] 2>/dev/null && break; sleep 0.05; done
expect_eq "long job was mid-way when killed" "processing" "$(jb .status)"
kill -9 "$SPID"; wait "$SPID" 2>/dev/null || true
ok "killed with SIGKILL"

start_server "$TMP/d" --workers 1
expect_code "job survives the crash" 200 "$URL/v1/jobs/$L"
expect_code "idempotency survives the crash" 202 -F file=@"$TMP/a4.wav" -H "Idempotency-Key: k1" "$URL/v1/jobs"
expect_eq "same job after restart" "$Q" "$(jb .id)"
wait_status "$URL/v1/jobs/$Q" completed 60 && ok "queued job completes after restart" || bad "queued job completes after restart"
wait_status "$URL/v1/jobs/$L" completed 60 && ok "interrupted job completes after restart" || bad "interrupted job completes after restart"
expect_code "result of the interrupted job" 200 "$URL/v1/jobs/$L/result"
expect_eq "complete transcript, each chunk once" "60 Chunk 1 of 60. Chunk 60 of 60." \
  "$(grep -o 'Chunk [0-9]* of 60\.' "$TMP/body" | sort -u | wc -l) $(grep -o 'Chunk 1 of 60\.' "$TMP/body") $(grep -o 'Chunk 60 of 60\.' "$TMP/body")"
expect_eq "and nothing twice" "60" "$(grep -o 'Chunk [0-9]* of 60\.' "$TMP/body" | wc -l)"

# killed right after the 202: the job is already durable
expect_code "job just before a crash" 202 -F file=@"$TMP/a4.wav" -F response_format=srt "$URL/v1/jobs"
R=$(jb .id)
kill -9 "$SPID"; wait "$SPID" 2>/dev/null || true
start_server "$TMP/d" --workers 1
wait_status "$URL/v1/jobs/$R" completed 60 && ok "the acknowledged job completes after restart" || bad "the acknowledged job completes after restart"
expect_code "its result" 200 "$URL/v1/jobs/$R/result"
expect_eq "srt result" "$(printf '1\n00:00:00,000 --> 00:00:01,000\nChunk 1 of 4.')" "$(head -3 "$TMP/body")"
expect_code "list" 200 "$URL/v1/jobs?status=completed"
expect_eq "all three jobs completed" "3" "$(jb '.data|length')"
# a job's audio is removed just after its completion is stored: give the worker a moment
for _ in $(seq 1 100); do [ "$(find "$TMP/d/audio" "$TMP/d/tmp" -type f | wc -l)" = 0 ] && break; sleep 0.05; done
expect_eq "no audio or partial uploads left" "0" "$(find "$TMP/d/audio" "$TMP/d/tmp" -type f | wc -l)"

# A webhook that could not be delivered before a crash is delivered after the restart.
WPORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop_server "$SPID"
start_server "$TMP/d" --webhook-backoff-s 30 --webhook-attempts 5
expect_code "job with a webhook to a receiver that is down" 202 -F file=@"$TMP/a4.wav" -F webhook_url="http://127.0.0.1:$WPORT/hook" "$URL/v1/jobs"
W=$(jb .id)
wait_status "$URL/v1/jobs/$W" completed 60 && ok "completes" || bad "completes"
sleep 0.5 # the first delivery attempt fails (connection refused); the next is 30 s away
kill -9 "$SPID"; wait "$SPID" 2>/dev/null || true
RECEIVER_PORT=$WPORT "$PY" "$CANARY_SOURCE_DIR/tests/service/webhook_receiver.py" "$TMP/wr.port" "$TMP/wr.log" "$TMP/d/webhook_secret" 0 &
SERVERS+=("$!")
for _ in $(seq 1 100); do [ -s "$TMP/wr.port" ] && break; sleep 0.05; done
start_server "$TMP/d"
for _ in $(seq 1 200); do [ -s "$TMP/wr.log" ] && break; sleep 0.05; done
expect_eq "delivered after the restart, signed" "true job.completed $W" "$(head -1 "$TMP/wr.log" | jq -r '[.valid, .body.type, .body.job.id]|map(tostring)|join(" ")')"
finish
