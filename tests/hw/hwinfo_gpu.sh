#!/usr/bin/env bash
# The GPU paths of hwinfo with a CPU stand-in for the CUDA plugin (tests/hw/fake_cuda_plugin.c):
# detection -> profile -> JSON for two "RTX 3080" cards, and --check passing, catching a wrong GEMM
# result and a failing device.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
export CANARY_CUDA_PLUGIN="$CANARY_BINARY_DIR/tests/hw/libfake_cuda_plugin.so"
[ -f "$CANARY_CUDA_PLUGIN" ] || { echo "missing $CANARY_CUDA_PLUGIN"; exit 1; }
unset CANARY_FAKE_GPUS CANARY_FAKE_GPU_BAD CANARY_FAKE_GPU_FAIL

expect_rc 0 "hwinfo --json with two GPUs" "$CANARY_BIN" hwinfo --json --for-model canary-1b-flash
if /usr/bin/python3 - "$TMP/out" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
g = d["hardware"]["gpus"]
assert [x["name"] for x in g] == ["Fake RTX 3080"] * 2 and g[1]["compute_capability"] == "8.6", g
assert g[0]["uuid"] == "GPU-00000000-0000-0000-0000-000000000000" and g[0]["free_bytes"] == 9800 << 20
devs = d["profile"]["devices"]
used = [x["name"] for x in devs if x["usable"]]
assert used == ["cuda:0", "cuda:1"], used
assert all(x["precision"] == "bf16" and x["tf32"] and x["workers"] == 2 and x["max_batch"] == 17
           for x in devs if x["usable"]), devs
assert [x for x in devs if x["name"] == "cpu"][0]["usable"] is False
PYEOF
then ok "GPUs reach the profile (2 workers x batch 17, bf16, as in docs/HARDWARE.md)"; else bad "GPU profile"; cat "$TMP/out" >&2; fi
expect_rc 0 "text output" "$CANARY_BIN" hwinfo
expect_grep "GPU line" "GPU 1    Fake RTX 3080, sm86, 9.6 / 10.0 GiB free, GPU-00000001" "$TMP/out"

expect_rc 0 "--check passes on healthy devices" "$CANARY_BIN" hwinfo --check
expect_grep "cuda:0 ok" "cuda:0  Fake RTX 3080: ok: memory pattern over 256 MiB and a 192x160x256 fp32 GEMM match the CPU" "$TMP/out"
expect_grep "the model part says it needs a model" "Model check: skipped: no model given (--model M.nemo)" "$TMP/out"
CANARY_FAKE_GPU_BAD=1 expect_rc 1 "--check catches a wrong result" "$CANARY_BIN" hwinfo --check
expect_grep "mismatch named" "cuda:1  Fake RTX 3080: FAILED: GEMM mismatch at C\[0\]\[7\]" "$TMP/out"
expect_grep "the other device still passes" "cuda:0  Fake RTX 3080: ok" "$TMP/out"
CANARY_FAKE_GPU_FAIL=0 expect_rc 1 "--check reports a failing device" "$CANARY_BIN" hwinfo --check --json
if /usr/bin/python3 -c "
import json; d = json.load(open('$TMP/out'))
assert d['failures'] == 1 and d['checks'][0]['ok'] is False and 'launch failure' in d['checks'][0]['message']
assert d['checks'][1]['ok'] is True and d['model_check']['status'] == 'skipped' and d['model_check']['runs'] == []
"; then ok "--check --json"; else bad "--check --json"; cat "$TMP/out" >&2; fi
CANARY_FAKE_GPUS=-1 expect_rc 0 "driver failure: the CPU is used" "$CANARY_BIN" hwinfo --json
expect_grep "driver failure reason kept" "simulated driver failure" "$TMP/out"
CANARY_FAKE_GPUS=0 expect_rc 0 "--check without GPUs" "$CANARY_BIN" hwinfo --check
expect_grep "nothing to compare" "No GPU to check" "$TMP/out"
finish
