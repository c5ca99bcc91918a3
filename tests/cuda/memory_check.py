#!/usr/bin/env python3
"""hw/profile's memory model against what the CUDA backend allocates (on the CPU emulation).

The service admits a batch on a GPU when batch x item_bytes fits the budget left after the weights
and the workers' fixed part (docs/HARDWARE.md). An estimate under what the engine takes ends in
out-of-memory failures on a GPU; one far over it wastes the GPU. For tiny models of several layouts
at two chunk lengths and two batch sizes, this runs the engine on the emulated GPU with the CUDA
profile on (CANARY_CUDA_PROFILE writes the exec's arena peak and scratch) and holds:

  features on the CPU:  measured <= batch x item_bytes <= 1.15 x measured
  features on the GPU:  measured <= batch x item_bytes + worker_bytes

item_bytes and worker_bytes come from `canary-stt hwinfo --json` for the same checkpoint, chunk
length and precision (the profile reads the checkpoint's own dimensions).

usage: memory_check.py CANARY_STT GPU_BENCH EMU_PLUGIN MODELS_DIR WORK_DIR
"""
import json
import os
import subprocess
import sys

STT, BENCH, PLUGIN, MODELS, WORK = sys.argv[1:6]
os.makedirs(WORK, exist_ok=True)
ENV = dict(os.environ, CANARY_CUDA_PLUGIN=PLUGIN, CANARY_CUDA_ARENA_MB="16")
CASES = [  # (layout, seconds, batch, features on the GPU, precision: activations are fp32 in all, beam)
    ("canary-1b-flash", 10, 1, False, "fp32", 1),
    ("canary-1b-flash", 40, 3, False, "fp32", 1),
    ("canary-1b", 40, 1, False, "fp32", 1),
    ("canary-1b", 10, 3, False, "fp32", 1),
    ("canary-1b-v2", 40, 2, False, "bf16", 1),
    ("canary-1b-flash", 40, 2, False, "fp32", 4),
    ("canary-180m-flash", 40, 3, True, "fp32", 1),
]
failures = 0


def check(ok, what):
    global failures
    print(("ok - " if ok else "not ok - ") + what)
    failures += 0 if ok else 1


def profile_of(model, seconds, precision, beam=1):
    out = subprocess.run([STT, "hwinfo", "--model", model, "--json", "--chunk-seconds", str(seconds),
                          "--precision", precision, "--device", "cuda:0", "--beam-size", str(beam)], env=ENV, capture_output=True, text=True)
    prof = json.loads(out.stdout)["profile"]
    dev = next(d for d in prof["devices"] if d["name"] == "cuda:0")
    return dev["item_bytes"], dev["worker_bytes"]


for layout, seconds, batch, gpu_features, precision, beam in CASES:
    model = os.path.join(MODELS, layout + "-tiny.nemo")
    item, worker = profile_of(model, seconds, precision, beam)
    log = os.path.join(WORK, "%s-%d-%d-%d.jsonl" % (layout, seconds, batch, gpu_features))
    if os.path.exists(log):
        os.remove(log)
    env = dict(ENV, CANARY_CUDA_PROFILE=log, CANARY_GPU_FEATURES="1" if gpu_features else "0")
    run = subprocess.run([BENCH, "--model", model, "--device", "cuda", "--precision", precision, "--batches",
                          str(batch), "--seconds", str(seconds), "--tokens", "8", "--runs", "1", "--beam",
                          str(beam)],
                         env=env, capture_output=True, text=True)
    name = "%s %s, %d s, batch %d%s, features on the %s" % (layout, precision, seconds, batch,
                                                            ", beam %d" % beam if beam > 1 else "",
                                                            "GPU" if gpu_features else "CPU")
    if run.returncode != 0:
        check(False, name + ": the bench ran (%s)" % run.stderr.strip()[-300:])
        continue
    mem = [json.loads(line) for line in open(log) if '"cuda_memory"' in line]
    if len(mem) != 1:
        check(False, name + ": one cuda_memory line (%d)" % len(mem))
        continue
    measured = mem[0]["arena_peak_bytes"] + mem[0]["scratch_bytes"]
    estimate = batch * item
    print("# %s: arena peak %d + scratch %d = %d bytes; estimate %d x %d = %d (x%.3f), worker %d" %
          (name, mem[0]["arena_peak_bytes"], mem[0]["scratch_bytes"], measured, batch, item, estimate,
           estimate / measured, worker))
    if gpu_features:
        check(measured <= estimate + worker, name + ": within batch x item_bytes + worker_bytes")
        check(measured > estimate, name + ": the front end's scratch shows (else this case proves nothing)")
    else:
        check(measured <= estimate, name + ": within batch x item_bytes")
        check(estimate <= 1.15 * measured, name + ": and not 15% over it")

# Fragmentation: batches of 1, 3, 2 and 4 on one context, the arena growing by exactly what it
# needs (CANARY_CUDA_ARENA_CHUNK_MB=1): what it reserves stays near the peak in use (a plan that
# grows frees the context's buffers first, largest are placed first, free chunks go back).
model = os.path.join(MODELS, "canary-1b-flash-tiny.nemo")
item, worker = profile_of(model, 40, "fp32")
log = os.path.join(WORK, "fragmentation.jsonl")
if os.path.exists(log):
    os.remove(log)
env = dict(ENV, CANARY_CUDA_PROFILE=log, CANARY_GPU_FEATURES="0", CANARY_CUDA_ARENA_MB="1",
           CANARY_CUDA_ARENA_CHUNK_MB="1")
run = subprocess.run([BENCH, "--model", model, "--device", "cuda", "--precision", "fp32", "--batches", "1,3,2,4",
                      "--seconds", "40", "--tokens", "8", "--runs", "1"], env=env, capture_output=True, text=True)
mem = [json.loads(line) for line in open(log) if '"cuda_memory"' in line] if run.returncode == 0 else []
if len(mem) != 1:
    check(False, "fragmentation: the bench ran with one exec (%s)" % run.stderr.strip()[-300:])
else:
    m = mem[0]
    print("# batches 1, 3, 2, 4 of 40 s: arena peak %d, reserved %d (x%.3f), scratch %d; estimate 4 x %d" %
          (m["arena_peak_bytes"], m["arena_reserved_bytes"], m["arena_reserved_bytes"] / m["arena_peak_bytes"],
           m["scratch_bytes"], item))
    check(m["arena_reserved_bytes"] <= 1.1 * m["arena_peak_bytes"], "fragmentation: reserved within 10% of the peak")
    check(m["arena_reserved_bytes"] + m["scratch_bytes"] <= 4 * item, "fragmentation: reserved + scratch within 4 x item_bytes")

print("%d failure(s)" % failures)
sys.exit(1 if failures else 0)
