#!/usr/bin/env bash
# The real `canary-stt serve` while the build has no inference engine: it starts, answers /,
# /health (503 saying why), /metrics and /openapi.json, accepts and persists jobs and fails them
# with that reason, and never invents a transcript.
. "$(dirname "$0")/svc_lib.sh"
mkwav "$TMP/a2.wav" 2
BIN="$CANARY_BIN" start_server "$TMP/d"
expect_code "GET /" 200 "$URL/"
expect_eq "model not loaded, reason given" "false true" "$(jb '[.model.loaded, (.model.reason|length > 0)]|map(tostring)|join(" ")')"
expect_code "GET /health is 503" 503 "$URL/health"
expect_grep "health says why" '"message":"no model loaded: ' "$TMP/body"
expect_code "GET /metrics" 200 "$URL/metrics"
expect_grep "metrics: not ready" '^canary_model_ready 0$' "$TMP/body"
expect_code "GET /openapi.json" 200 "$URL/openapi.json"
expect_code "sync transcription is 503" 503 -F file=@"$TMP/a2.wav" "$URL/v1/audio/transcriptions"
expect_eq "503 error" "model_not_loaded" "$(jb .error.code)"
expect_grep "503 Retry-After" "Retry-After: " "$TMP/hdr"
expect_code "a job is accepted" 202 -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
J=$(jb .id)
wait_status "$URL/v1/jobs/$J" failed 30 && ok "and fails" || bad "and fails"
req "$URL/v1/jobs/$J"
expect_eq "with a clear reason" "model_not_loaded" "$(jb .error.code)"
expect_grep "reason text" '"message":"no model loaded: ' "$TMP/body"
expect_code "no transcript is invented" 409 "$URL/v1/jobs/$J/result"
stop_server "$SPID"
BIN="$CANARY_BIN" start_server "$TMP/d"
expect_code "the job is persisted across restarts" 200 "$URL/v1/jobs/$J"
expect_eq "still failed" "failed" "$(jb .status)"
# configuration errors are reported, not crashed on
set +e
"$CANARY_BIN" serve --port 0 --data-dir "$TMP/e" --database postgresql://x/y >"$TMP/out" 2>&1; rc=$?
set -e
expect_eq "PostgreSQL store not implemented: exit 1" "1" "$rc"
expect_grep "says so" "PostgreSQL job store is not implemented" "$TMP/out"
set +e
"$CANARY_BIN" serve --port 0 --data-dir "$TMP/e" --host not-an-ip >"$TMP/out" 2>&1; rc=$?
set -e
expect_eq "bad host: exit 1" "1" "$rc"
expect_grep "names the setting" "server.host = 'not-an-ip'" "$TMP/out"
finish
