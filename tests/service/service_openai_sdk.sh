#!/usr/bin/env bash
# The official OpenAI SDK for Node (npm `openai`, pinned by node/package-lock.json) against the
# service: json, text, srt, verbose_json, vtt, translations, errors. Installs the SDK with
# `npm ci` into the (git-ignored) node_modules when it is missing.
. "$(dirname "$0")/svc_lib.sh"
NODE_DIR="$CANARY_SOURCE_DIR/tests/service/node"
command -v node >/dev/null || { bad "node is required (scripts/install-deps.sh installs it)"; finish; }
if [ ! -f "$NODE_DIR/node_modules/openai/package.json" ]; then
  (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund >"$TMP/npm.log" 2>&1) \
    || { bad "npm ci in $NODE_DIR failed"; cat "$TMP/npm.log" >&2; finish; }
fi
mkwav "$TMP/a2.wav" 2
CANARY_FAKE_CHUNK_MS=5 start_server "$TMP/d" --api-keys sdk-key
if node "$NODE_DIR/openai_sdk_test.mjs" "$URL" sdk-key "$TMP/a2.wav" >"$TMP/node.out" 2>&1; then ok "OpenAI SDK suite"; else bad "OpenAI SDK suite"; fi
cat "$TMP/node.out"
expect_eq "all SDK checks ran" "10 passed" "$(tail -1 "$TMP/node.out")"
finish
