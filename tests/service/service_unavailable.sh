#!/usr/bin/env bash
# When there is no model to serve. The real `canary-stt serve` fails fast, before opening a port,
# when its model cannot be found (the default hub name with neither network nor cache: the hub
# module's paragraph; a missing path) or cannot be loaded, with exit 1. While a model is loading the
# service is up but not ready (canary-stt-testserver --ready-when FILE stands in for a slow load):
# /health and synchronous requests answer 503, jobs are accepted and wait queued, nothing is
# invented, and they run once the model is ready, also after a restart.
. "$(dirname "$0")/svc_lib.sh"
unset CANARY_MODEL HF_TOKEN HF_HUB_OFFLINE http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export HF_HOME="$TMP/hf" HF_ENDPOINT="http://127.0.0.1:9" # the discard port: no network
mkwav "$TMP/a2.wav" 2

# ---- the default model, offline, nothing cached: the paragraph, exit 1, no port ----
expect_rc 1 "serve with the default model offline: exit 1" "$CANARY_BIN" serve --port 0 --port-file "$TMP/p1" \
  --data-dir "$TMP/d" --cache-dir "$TMP/cache"
expect_grep "what was tried" "canary-stt serve: cannot get the model nvidia/canary-180m-flash: it is not in the model cache ($TMP/cache)" "$TMP/err"
expect_grep "how to place a .nemo by hand" "start with --model /path/to/canary-180m-flash.nemo" "$TMP/err"
expect_grep "how to start with a test model" "tools/make-test-model --layout canary-180m-flash" "$TMP/err"
[ ! -e "$TMP/p1" ] && ok "no port was opened" || bad "a port file was written"
expect_rc 1 "a missing model file: exit 1" "$CANARY_BIN" serve --port 0 --port-file "$TMP/p2" --data-dir "$TMP/d" \
  --model "$TMP/none.nemo"
expect_grep "naming it" "canary-stt serve: --model $TMP/none.nemo: no such file or directory" "$TMP/err"
echo "not a model" >"$TMP/broken.nemo"
expect_rc 1 "a broken model file: exit 1" "$CANARY_BIN" serve --port 0 --port-file "$TMP/p3" --data-dir "$TMP/d" \
  --model "$TMP/broken.nemo"
expect_grep "naming the file" "canary-stt serve: loading model $TMP/broken.nemo: " "$TMP/err"

# ---- while the model loads ----
start_server "$TMP/d" --ready-when "$TMP/loaded"
expect_code "GET /" 200 "$URL/"
expect_eq "not loaded yet, reason given" "false model test/fake-canary is loading" "$(jb '[.model.loaded, .model.reason]|map(tostring)|join(" ")')"
expect_code "GET /health is 503" 503 "$URL/health"
expect_eq "health says why" "unavailable no model loaded: model test/fake-canary is loading" "$(jb '.status + " " + .message')"
expect_code "GET /metrics" 200 "$URL/metrics"
expect_grep "metrics: not ready" '^canary_model_ready 0$' "$TMP/body"
expect_code "GET /openapi.json" 200 "$URL/openapi.json"
expect_code "sync transcription is 503" 503 -F file=@"$TMP/a2.wav" "$URL/v1/audio/transcriptions"
expect_eq "503 error" "model_not_loaded" "$(jb .error.code)"
expect_grep "503 Retry-After" "Retry-After: " "$TMP/hdr"
expect_code "a job is accepted" 202 -F file=@"$TMP/a2.wav" "$URL/v1/jobs"
J=$(jb .id)
expect_code "and waits" 200 "$URL/v1/jobs/$J"
expect_eq "queued" "queued" "$(jb .status)"
expect_code "no transcript is invented" 409 "$URL/v1/jobs/$J/result"
# stopped while loading: the job stays queued for the next start
stop_server "$SPID"
start_server "$TMP/d" --ready-when "$TMP/loaded"
expect_code "the job is persisted across restarts" 200 "$URL/v1/jobs/$J"
expect_eq "still queued" "queued" "$(jb .status)"
touch "$TMP/loaded" # the model is ready
wait_status "$URL/v1/jobs/$J" completed 30 && ok "then it runs" || bad "then it runs"
expect_code "GET /health is 200" 200 "$URL/health"
expect_eq "ready" "ok test/fake-canary" "$(jb '.status + " " + .model')"
expect_code "the job's result" 200 "$URL/v1/jobs/$J/result?format=json"
[ -n "$(jb .text)" ] && ok "has the test transcriber's text" || bad "empty result"
expect_code "sync transcription works" 200 -F file=@"$TMP/a2.wav" "$URL/v1/audio/transcriptions"
stop_server "$SPID"

# configuration errors are reported, not crashed on (the model, a directory, resolves; the store
# or the address fails before it would load)
mkdir -p "$TMP/modeldir"
set +e
"$CANARY_BIN" serve --port 0 --data-dir "$TMP/e" --database postgresql://x/y --model "$TMP/modeldir" >"$TMP/out" 2>&1; rc=$?
set -e
expect_eq "PostgreSQL store not implemented: exit 1" "1" "$rc"
expect_grep "says so" "PostgreSQL job store is not implemented" "$TMP/out"
set +e
"$CANARY_BIN" serve --port 0 --data-dir "$TMP/e" --host not-an-ip --model "$TMP/modeldir" >"$TMP/out" 2>&1; rc=$?
set -e
expect_eq "bad host: exit 1" "1" "$rc"
expect_grep "names the setting" "server.host = 'not-an-ip'" "$TMP/out"
finish
