#!/usr/bin/env bash
# Pulls a generated test model (tools/make-test-model, fixture test_models) from the hub mimic
# under a Canary repository name and checks that the cached .nemo is the generated one, intact.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
PY=/usr/bin/python3
GEN="$CANARY_BINARY_DIR/models/canary-180m-flash-tiny.nemo"
[ -f "$GEN" ] || { echo "missing $GEN (fixture test_models)"; exit 1; }
mkdir -p "$TMP/repos/nvidia/canary-180m-flash"
cp "$GEN" "$TMP/repos/nvidia/canary-180m-flash/canary-180m-flash.nemo"
$PY "$CANARY_SOURCE_DIR/tests/hub/mimic_hub.py" --repos "$TMP/repos" --port-file "$TMP/port" --log "$TMP/log" &
SRV_PID=$!
trap 'kill $SRV_PID 2>/dev/null || true; wait $SRV_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
export HF_ENDPOINT="http://127.0.0.1:$(cat "$TMP/port")" HF_HOME="$TMP/hf"
unset HF_TOKEN HF_HUB_OFFLINE http_proxy https_proxy all_proxy

expect_rc 0 "pull the generated model" "$CANARY_BIN" models pull nvidia/canary-180m-flash --quiet --cache-dir "$TMP/cache"
P=$(cat "$TMP/out")
cmp -s "$P" "$GEN" && ok "cached .nemo is byte-identical to the generated one" || bad "cached .nemo differs"
if $PY - "$P" <<'PYEOF'
import sys, tarfile
names = tarfile.open(sys.argv[1]).getnames()
assert any(n.endswith("model_config.yaml") for n in names), names
assert any(n.endswith("model_weights.ckpt") for n in names), names
PYEOF
then ok "the cached file is a .nemo tar with config and weights"; else bad "not a .nemo tar"; fi
expect_rc 0 "--model resolves the hub name offline to the same file" env HF_HUB_OFFLINE=1 "$CANARY_BIN" models path nvidia/canary-180m-flash --cache-dir "$TMP/cache"
[ "$(cat "$TMP/out")" = "$P" ] && ok "same path" || bad "different path"
finish
