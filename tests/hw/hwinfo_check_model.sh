#!/usr/bin/env bash
# hwinfo --check at model level with the tiny generated models: the CPU in fp32 is the reference,
# every GPU must reproduce its token ids; on a CPU-only machine the CPU's bf16 agreement is shown
# as information and the check passes ("no GPU to compare"). With a GPU the model cannot run on
# (the CPU stand-in plugin has no compute backend), that device fails with the reason.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
MODEL="$CANARY_BINARY_DIR/models/canary-180m-flash-tiny.nemo"
V2="$CANARY_BINARY_DIR/models/canary-1b-v2-tiny.nemo"
export CANARY_CACHE_DIR="$TMP/cache"

# CPU only (no plugin)
export CANARY_CUDA_PLUGIN="$TMP/no-such-plugin.so"
expect_rc 0 "--check --model on a CPU-only machine" "$CANARY_BIN" hwinfo --check --model "$MODEL"
expect_grep "names the model and the reference" "Model check with $MODEL (reference: the CPU in fp32):" "$TMP/out"
expect_grep "the CPU reference ran one batch" "^cpu     fp32  REFERENCE: [1-9][0-9]* tokens for 2 synthetic clips (3.0 s, 1.7 s) in one batch" "$TMP/out"
expect_grep "bf16 agreement as information" "^cpu     bf16  INFO: [0-9]* of [1-9][0-9]* token ids agree with fp32" "$TMP/out"
expect_grep "says there is no GPU to compare" "Model check: no GPU to compare: the model ran on the CPU only." "$TMP/out"
expect_rc 0 "--check --json --model" "$CANARY_BIN" hwinfo --check --json --model "$V2"
if /usr/bin/python3 - "$TMP/out" "$V2" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["failures"] == 0 and d["checks"] == [], d
m = d["model_check"]
assert m["status"] == "ran" and m["model"] == sys.argv[2] and m["failures"] == 0, m
assert m["message"] == "no GPU to compare: the model ran on the CPU only", m
ref, bf16 = m["runs"]
assert (ref["device"], ref["precision"], ref["result"]) == ("cpu", "fp32", "REFERENCE") and ref["tokens"] > 0, ref
assert (bf16["device"], bf16["precision"], bf16["result"]) == ("cpu", "bf16", "INFO"), bf16
assert bf16["compared"] >= ref["tokens"] and 0 <= bf16["agreeing"] <= bf16["compared"], bf16
for r in m["runs"]:
    assert set(r) == {"device", "precision", "result", "tokens", "agreeing", "compared", "max_logprob_diff", "message"}, r
PYEOF
then ok "JSON schema of the model check"; else bad "JSON schema of the model check"; cat "$TMP/out" >&2; fi
# the reference is deterministic: two runs give the same tokens
"$CANARY_BIN" hwinfo --check --json --model "$V2" >"$TMP/again"
[ "$(jq -c '.model_check.runs[0]' "$TMP/out")" = "$(jq -c '.model_check.runs[0]' "$TMP/again")" ] \
  && ok "the same reference tokens on a second run" || bad "the reference changed between runs"
expect_rc 0 "--check without a model" "$CANARY_BIN" hwinfo --check
expect_grep "says only the device self-test ran" "Model check: skipped: no model given (--model M.nemo), so only the device self-test ran" "$TMP/out"
expect_rc 1 "--check with a missing model" "$CANARY_BIN" hwinfo --check --model "$TMP/missing.nemo"
expect_grep "names it" "missing.nemo" "$TMP/err"

# two "GPUs" from the stand-in plugin: their self-test passes, the model cannot run on them
export CANARY_CUDA_PLUGIN="$CANARY_BINARY_DIR/tests/hw/libfake_cuda_plugin.so"
unset CANARY_FAKE_GPUS CANARY_FAKE_GPU_BAD CANARY_FAKE_GPU_FAIL
expect_rc 1 "--check --model with GPUs the model cannot run on" "$CANARY_BIN" hwinfo --check --model "$MODEL"
expect_grep "op-level check still passes" "cuda:0  Fake RTX 3080: ok" "$TMP/out"
expect_grep "model check fails that device with the reason" "^cuda:1  fp32  FAIL: the model did not run: " "$TMP/out"
expect_grep "the CPU reference ran" "^cpu     fp32  REFERENCE: " "$TMP/out"
expect_grep "failures counted" "^2 failure(s) over 3 device(s)." "$TMP/out"
finish
