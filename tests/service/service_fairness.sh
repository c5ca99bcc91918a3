#!/usr/bin/env bash
# Scheduling: chunks of concurrent jobs interleave, so a 3-second job submitted while a 3-hour
# job runs is served within a few chunks; and a client that disconnects from a synchronous
# request cancels its work.
. "$(dirname "$0")/svc_lib.sh"
mkwav "$TMP/3h.wav" 10800 100 8      # 3 hours (a low sample rate keeps the file at 1 MB)
mkwav "$TMP/a3.wav" 3
mkwav "$TMP/10m.wav" 600 1000 8
export CANARY_FAKE_CHUNK_MS=100
start_server "$TMP/d" --workers 1
expect_code "3-hour job" 202 -F file=@"$TMP/3h.wav" "$URL/v1/jobs"
L=$(jb .id)
wait_status "$URL/v1/jobs/$L" processing 30 && ok "3-hour job runs" || bad "3-hour job runs"
expect_eq "3-hour job has 10800 chunks" "10800" "$(curl -sS "$URL/v1/jobs/$L" | jq -r .chunks.total)"

# The long job's progress between the short job's submission and its completion measures the
# share the short job got: with one worker and round-robin it is about one chunk per chunk.
before=$(curl -sS "$URL/v1/jobs/$L" | jq -r .chunks.done)
expect_code "3-second sync request while it runs" 200 --max-time 120 -F file=@"$TMP/a3.wav" -F response_format=text "$URL/v1/audio/transcriptions"
after=$(curl -sS "$URL/v1/jobs/$L" | jq -r .chunks.done)
expect_eq "short transcript" "Chunk 1 of 3. Chunk 2 of 3. Chunk 3 of 3." "$(cat "$TMP/body")"
[ $((after - before)) -le 8 ] && ok "short request interleaved (long job advanced $((after - before)) chunks meanwhile)" \
  || bad "short request waited behind the long job (long job advanced $((after - before)) chunks)"
before=$(curl -sS "$URL/v1/jobs/$L" | jq -r .chunks.done)
expect_code "3-second async job while it runs" 202 -F file=@"$TMP/a3.wav" "$URL/v1/jobs"
S=$(jb .id)
wait_status "$URL/v1/jobs/$S" completed 120 && ok "short job completes" || bad "short job completes"
after=$(curl -sS "$URL/v1/jobs/$L" | jq -r .chunks.done)
[ $((after - before)) -le 12 ] && ok "short job interleaved (long job advanced $((after - before)) chunks meanwhile)" \
  || bad "short job waited behind the long job (long job advanced $((after - before)) chunks)"
expect_eq "long job still running" "processing" "$(curl -sS "$URL/v1/jobs/$L" | jq -r .status)"
expect_code "cancel the 3-hour job" 200 -X DELETE "$URL/v1/jobs/$L"
expect_eq "canceled" "canceled" "$(jb .status)"

# A client that goes away cancels its synchronous transcription.
curl -sS --max-time 1 -F file=@"$TMP/10m.wav" "$URL/v1/audio/transcriptions" >/dev/null 2>&1 || true
canceled=""
for _ in $(seq 1 100); do
  req "$URL/metrics"
  grep -q 'canary_jobs_finished_total{status="canceled"} 2$' "$TMP/body" && grep -q '^canary_queue_depth 0$' "$TMP/body" && { canceled=1; break; }
  sleep 0.1
done
[ -n "$canceled" ] && ok "disconnect canceled the request" || { bad "disconnect canceled the request"; grep -E 'finished_total|queue_depth' "$TMP/body" >&2; }
c1=$(grep '^canary_chunks_processed_total' "$TMP/body" | cut -d' ' -f2)
sleep 0.5
req "$URL/metrics"
c2=$(grep '^canary_chunks_processed_total' "$TMP/body" | cut -d' ' -f2)
expect_eq "no chunks run after the cancel" "$c1" "$c2"
[ "$c1" -lt 600 ] && ok "the 600-chunk request stopped early ($c1 chunks in all)" || bad "request ran to the end ($c1 chunks)"
finish
