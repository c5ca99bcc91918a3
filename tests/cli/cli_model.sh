#!/usr/bin/env bash
# --model as a hub name in every subcommand (cli.c: cn_cli_model_path / cn_cli_resolve_model): a
# generated tiny model (fixture test_models) served by the hub mimic (tests/hub/mimic_hub.py) under
# nvidia/<layout> is fetched on first use, cached, and gives the very same transcript as
# the local file; with neither network nor cache every command stops with the hub's paragraph.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
PY=/usr/bin/python3
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY CANARY_MODEL
export HF_HOME="$TMP/hf" XDG_CACHE_HOME="$TMP/xdg"
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: wanted '$2', got '$3'"; fi; }
expect_eq_file() { if cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; diff "$2" "$3" | head -20 >&2; fi; }
espeak-ng -w "$TMP/speech.wav" "hello world this is a test of the canary server" 2>/dev/null

# Random weights: some layouts say nothing for this sentence. Serve the first that does, so that
# "same transcript" compares real text (the reference is the same file given by path).
LAYOUT=""
for l in canary-180m-flash canary-1b-v2 canary-1b-flash canary-1b; do
  [ -f "$CANARY_BINARY_DIR/models/$l-tiny.nemo" ] || continue
  "$CANARY_BIN" transcribe --model "$CANARY_BINARY_DIR/models/$l-tiny.nemo" --format verbose_json "$TMP/speech.wav" >"$TMP/by_path.json"
  if [ -n "$(jq -r .text "$TMP/by_path.json")" ]; then LAYOUT=$l; break; fi
done
[ -n "$LAYOUT" ] && ok "a tiny model with a non-empty transcript: $LAYOUT" || { bad "no tiny model transcribes the sentence (fixture test_models)"; finish; }
GEN="$CANARY_BINARY_DIR/models/$LAYOUT-tiny.nemo"
REPO=nvidia/$LAYOUT
mkdir -p "$TMP/repos/$REPO"
cp "$GEN" "$TMP/repos/$REPO/$LAYOUT.nemo"
$PY "$CANARY_SOURCE_DIR/tests/hub/mimic_hub.py" --repos "$TMP/repos" --port-file "$TMP/port" --log "$TMP/log" &
SRV_PID=$!
trap 'kill $SRV_PID 2>/dev/null || true; wait $SRV_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
export HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port")"
cdn_gets() { grep -c "^GET /cdn/" "$TMP/log" || true; }
C="$TMP/cache"

# first use: fetched, then transcribed
expect_rc 0 "transcribe --model $REPO fetches on first use" "$CANARY_BIN" transcribe --model $REPO \
  --cache-dir "$C" --format verbose_json "$TMP/speech.wav"
expect_eq_file "same transcript as the local file" "$TMP/by_path.json" "$TMP/out"
[ "$(cdn_gets)" = 1 ] && ok "downloaded once" || bad "CDN GETs: $(cdn_gets)"
SNAP=$(ls "$C"/models--nvidia--$LAYOUT/snapshots/*/$LAYOUT.nemo)
cmp -s "$SNAP" "$GEN" && ok "cached in the hub layout, byte-identical" || bad "cache content ($SNAP)"
# the second use comes from the cache (the hub is asked for the commit, nothing is downloaded)
expect_rc 0 "transcribe again" "$CANARY_BIN" transcribe --model $REPO --cache-dir "$C" --format verbose_json "$TMP/speech.wav"
expect_eq_file "same transcript again" "$TMP/by_path.json" "$TMP/out"
[ "$(cdn_gets)" = 1 ] && ok "nothing downloaded the second time" || bad "CDN GETs: $(cdn_gets)"
# the setting (CANARY_MODEL) and the config file work like --model
CANARY_MODEL=$REPO expect_rc 0 "CANARY_MODEL=$REPO" "$CANARY_BIN" transcribe --cache-dir "$C" --format verbose_json "$TMP/speech.wav"
expect_eq_file "same transcript from the setting" "$TMP/by_path.json" "$TMP/out"

# model-info and bench take hub names too (offline: from the cache)
"$CANARY_BIN" model-info "$GEN" --json >"$TMP/info_gen.json"
sed 's/"path":"[^"]*"//' "$TMP/info_gen.json" >"$TMP/info_path.json"
HF_HUB_OFFLINE=1 expect_rc 0 "model-info $REPO (offline, cached)" "$CANARY_BIN" model-info $REPO --json --cache-dir "$C"
sed 's/"path":"[^"]*"//' "$TMP/out" >"$TMP/info_hub.json"
expect_eq_file "model-info: the same model" "$TMP/info_path.json" "$TMP/info_hub.json"
expect_grep "model-info names the cached file" "\"path\":\"$SNAP\"" "$TMP/out"
HF_HUB_OFFLINE=1 expect_rc 0 "model-info with the configured model" "$CANARY_BIN" model-info --model $REPO --json --cache-dir "$C"
HF_HUB_OFFLINE=1 expect_rc 0 "bench --model $REPO (offline, cached)" "$CANARY_BIN" bench --model $REPO --cache-dir "$C" \
  --batch 1 --seconds 1 --tokens 2 --runs 1 --format json
expect_eq "bench ran that model" "$(jq -r .variant "$TMP/info_gen.json")" "$(jq -r .model "$TMP/out")"

# no network, no cache: every command stops with the paragraph (exit 1); the default model's name
REPO=nvidia/canary-180m-flash
export HF_ENDPOINT="http://127.0.0.1:9" # the discard port: connection refused
for cmd in "transcribe $TMP/speech.wav" "model-info" "bench --runs 1" "serve --port 0 --data-dir $TMP/srv --port-file $TMP/srv.port"; do
  # shellcheck disable=SC2086
  expect_rc 1 "offline, nothing cached: ${cmd%% *} fails" "$CANARY_BIN" $cmd --model $REPO --cache-dir "$TMP/empty"
  expect_grep "${cmd%% *}: what was tried" "cannot get the model $REPO: it is not in the model cache" "$TMP/err"
  expect_grep "${cmd%% *}: how to place a .nemo by hand" "start with --model /path/to/canary-180m-flash.nemo" "$TMP/err"
  expect_grep "${cmd%% *}: how to start with a test model" "tools/make-test-model --layout canary-180m-flash" "$TMP/err"
done
[ ! -e "$TMP/srv.port" ] && ok "serve never opened a port" || bad "serve wrote a port file"
expect_rc 2 "model-info of a missing file is a usage error" "$CANARY_BIN" model-info "$TMP/none.nemo"
expect_grep "naming it" "$TMP/none.nemo: no such file or directory" "$TMP/err"
expect_rc 1 "transcribe with a missing model file" "$CANARY_BIN" transcribe --model "$TMP/none.nemo" "$TMP/speech.wav"
expect_grep "naming it" "$TMP/none.nemo: no such file or directory" "$TMP/err"
finish
