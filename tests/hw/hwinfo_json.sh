#!/usr/bin/env bash
# canary-stt hwinfo: the --json schema on this machine and on a fake cgroup-limited tree; --check
# says plainly that it needs the engine; impossible device requests fail with a message.
. "$CANARY_SOURCE_DIR/tests/integration/lib.sh"
PY=/usr/bin/python3

expect_rc 0 "hwinfo --json" "$CANARY_BIN" hwinfo --json
cp "$TMP/out" "$TMP/live.json"
if $PY - "$TMP/live.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
hw, prof = d["hardware"], d["profile"]
cpu = hw["cpu"]
assert isinstance(cpu["model"], str) and isinstance(cpu["arch"], str)
assert cpu["logical_cores"] >= cpu["physical_cores"] >= 1
assert 1 <= cpu["compute_cpus"] <= cpu["physical_cores"]
for k in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_usable", "neon", "arm_bf16"):
    assert isinstance(cpu["features"][k], bool), k
assert hw["memory"]["total_bytes"] >= hw["memory"]["available_bytes"] > 0
assert hw["cgroup"]["version"] in (0, 1, 2)
assert isinstance(hw["gpus"], list) and isinstance(hw["gpu_note"], str)
for g in hw["gpus"]:
    for k in ("index", "name", "compute_capability", "total_bytes", "free_bytes", "uuid", "integrated", "nvml"):
        assert k in g, k
assert isinstance(hw["jetson"], bool)
assert prof["model"]["name"] == "canary-180m-flash" and prof["model"]["params"] == 182000000
assert 0 < prof["chunk_seconds"] <= prof["model"]["max_chunk_seconds"] == 40.0
assert prof["concurrent_jobs"] >= 2
used = [x for x in prof["devices"] if x["usable"]]
assert used, "no device in use"
for x in prof["devices"]:
    for k in ("name", "kind", "workers", "threads", "max_batch", "precision", "tf32", "budget_bytes",
              "weight_bytes", "item_bytes", "worker_bytes", "residency", "why"):
        assert k in x, k
    assert x["kind"] in ("cpu", "cuda") and x["precision"] in ("fp32", "bf16", "fp16")
for x in used:
    assert x["workers"] >= 1 and x["max_batch"] >= 1 and x["why"]
    assert x["budget_bytes"] >= x["weight_bytes"] + x["workers"] * x["worker_bytes"] + x["item_bytes"]
assert d["error"] == ""
PYEOF
then ok "live JSON matches the schema"; else bad "live JSON schema"; cat "$TMP/live.json" >&2; fi

# A fake container: 4 logical / 2 physical cores, cgroup v2 quota of 1.5 CPUs and 2 GiB.
R="$TMP/root"
mkdir -p "$R/proc/self" "$R/sys/fs/cgroup/app" "$R/sys/devices/system/cpu"
for c in 0 1 2 3; do
  mkdir -p "$R/sys/devices/system/cpu/cpu$c/topology"
  echo $((c % 2)) > "$R/sys/devices/system/cpu/cpu$c/topology/core_id"
  echo 0 > "$R/sys/devices/system/cpu/cpu$c/topology/physical_package_id"
  printf 'processor\t: %d\nmodel name\t: Fake CPU\nflags\t\t: avx2 fma\n\n' $c >> "$R/proc/cpuinfo"
done
echo 0-3 > "$R/sys/devices/system/cpu/online"
printf 'MemTotal: 16000000 kB\nMemAvailable: 15000000 kB\n' > "$R/proc/meminfo"
echo "0::/app" > "$R/proc/self/cgroup"
echo "cpu memory" > "$R/sys/fs/cgroup/cgroup.controllers"
echo "150000 100000" > "$R/sys/fs/cgroup/app/cpu.max"
echo 2147483648 > "$R/sys/fs/cgroup/app/memory.max"

expect_rc 0 "hwinfo --json on a fake cgroup v2 tree" "$CANARY_BIN" hwinfo --json --root "$R" --for-model canary-180m-flash
if $PY - "$TMP/out" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
hw, dev = d["hardware"], d["profile"]["devices"][0]
assert hw["cpu"]["model"] == "Fake CPU", hw["cpu"]["model"]
assert (hw["cpu"]["logical_cores"], hw["cpu"]["physical_cores"], hw["cpu"]["compute_cpus"]) == (4, 2, 1)
assert hw["cgroup"] == {"version": 2, "cpus": 1.5, "memory_limit_bytes": 2147483648}, hw["cgroup"]
assert dev["name"] == "cpu" and dev["threads"] == 1 and dev["precision"] == "fp32"
assert dev["budget_bytes"] == int(2147483648 * 0.8), dev["budget_bytes"]
PYEOF
then ok "cgroup limits reach the profile"; else bad "cgroup profile"; cat "$TMP/out" >&2; fi

expect_rc 0 "text output" "$CANARY_BIN" hwinfo --root "$R" --threads 3
expect_grep "text names the CPU" "Fake CPU (x86_64), 2 physical / 4 logical cores" "$TMP/out"
expect_grep "override shown with its reason" "3 threads from engine.threads" "$TMP/out"

unset CANARY_CUDA_PLUGIN
expect_rc 0 "hwinfo --check on this machine" "$CANARY_BIN" hwinfo --check
expect_grep "--check says the model part needs a model" "Model check: skipped: no model given" "$TMP/out"

expect_rc 1 "device=cuda on a machine without GPUs" "$CANARY_BIN" hwinfo --root "$R" --device cuda
expect_grep "no-GPU message" "no GPU was detected" "$TMP/err"
expect_rc 2 "bad precision value" "$CANARY_BIN" hwinfo --precision fp8
finish
