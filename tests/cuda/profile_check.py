#!/usr/bin/env python3
"""The plugin's per-operation profile (CANARY_CUDA_PROFILE) on the CPU emulation of CUDA.

canary-gpu-bench runs one timed greedy pass (fp32, then bf16: two execs, one per backend) of a tiny
model with the profile on, off, and on with a failing cudaEventRecord. Checks: the token ids are
identical in the three runs; each exec's profile counts exactly the operations one encoder +
decoder pass of the model's layout makes (the warm-up is paused, so the counts are one pass's);
linear keys carry their precision and shapes; GPU times are >= 0 and busy lies in [0, 1]; every
operation is "starved" (launches are synchronous on the emulation); the
failing event stops that exec's profile (reported) and fails nothing.

  profile_check.py BENCH PLUGIN MODEL.nemo WORKDIR
"""
import json
import os
import subprocess
import sys
import tarfile

import yaml

BENCH, PLUGIN, MODEL, WORK = sys.argv[1:5]
BATCH, TOKENS = 2, 3
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def run(name, profile, extra_env=None):
    env = dict(os.environ, CANARY_CUDA_PLUGIN=PLUGIN, CANARY_CUDA_ARENA_MB="16")
    env.pop("CANARY_CUDA_PROFILE", None)
    path = os.path.join(WORK, name + ".jsonl")
    if os.path.exists(path):
        os.unlink(path)
    if profile:
        env["CANARY_CUDA_PROFILE"] = path
    env.update(extra_env or {})
    p = subprocess.run([BENCH, "--model", MODEL, "--device", "cuda", "--precision", "fp32,bf16", "--batches",
                        str(BATCH), "--seconds", "1", "--tokens", str(TOKENS), "--runs", "1"],
                       env=env, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
    check(p.returncode == 0, f"{name}: canary-gpu-bench exit {p.returncode}")
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith('{"event":"bench"')]
    check(len(rows) == 2 and all("error" not in r for r in rows), f"{name}: two bench rows without error")
    hashes = {r["precision"]: r.get("ids_hash") for r in rows}
    lines = [json.loads(l) for l in open(path)] if profile and os.path.exists(path) else []
    return hashes, lines, p.stderr


os.makedirs(WORK, exist_ok=True)
with tarfile.open(MODEL) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("model_config.yaml"))
    cfg = yaml.safe_load(t.extractfile(member))
Le = cfg["encoder"]["n_layers"]
dec = cfg["transf_decoder"].get("config_dict", cfg["transf_decoder"])
Ld, d_dec, vocab = dec["num_layers"], dec["hidden_size"], cfg["head"]["num_classes"]
proj = 1 if cfg["encoder"]["d_model"] != d_dec else 0
T = TOKENS  # decoder steps: the prompt step gives the first token, one step per further token
# One pass (src/model/model.c, decode.c): subsampling 2 pointwise linears + the output linear, 9 per
# conformer layer (ff1 x2, qkv, pos, out, pw1, pw2, ff2 x2), the encoder-decoder projection, one
# cross K/V linear per decoder layer, then per step 6 per decoder layer (self qkv, self out,
# cross q, cross out, ff x2) and the head.
expected = {
    "linear": 3 + 9 * Le + proj + Ld + T * (6 * Ld + 1),
    "rel_attention": Le,
    "conv2d_s2_pair": 1,  # the first two subsampling convs, fused on the GPU
    "conv2d_s2": 1,
    "glu_mask": Le,
    "dwconv1d": Le,
    "attention self": T * Ld,
    "attention cross": T * Ld,
    "embed": T,
    "log_softmax": T,
    "topk": T,  # greedy: each step's top-1 on the device
    "sync": 1 + T,  # the encoder's and each step's
}

h_on, lines, _ = run("profile_on", True)
h_off, _, _ = run("profile_off", False)
h_fail, lines_fail, err_fail = run("profile_event_fail", True, {"CANARY_EMU_EVENT_FAIL": "40"})
check(h_on == h_off, f"token ids with the profile on {h_on} and off {h_off}")
check(h_fail == h_off, f"token ids with a failing event {h_fail} and without profile {h_off}")

execs = {}
for l in lines:
    execs.setdefault(l["exec"], []).append(l)
check(len(execs) == 2, f"two execs report (fp32 and bf16 backends), got {sorted(execs)}")
precs_seen = []
for ex, ls in execs.items():
    keys = [l for l in ls if "cuda_profile" in l]
    summ = {l["cuda_profile_summary"]: l for l in ls if "cuda_profile_summary" in l}
    check(set(summ) == {"encoder", "decoder", "other", "all"}, f"{ex}: summary lines {sorted(summ)}")
    check([k["gpu_ms"] for k in keys] == sorted((k["gpu_ms"] for k in keys), reverse=True),
          f"{ex}: keys sorted by gpu_ms")
    for k in keys:
        check(k["gpu_ms"] >= 0 and k["host_ms"] >= 0 and 0 <= k["starved"] <= k["calls"], f"{ex}: {k}")
    lin_precs = {k["cuda_profile"].split()[-1] for k in keys if k["cuda_profile"].startswith("linear ")}
    prec = "bf16" if "bf16" in lin_precs else "fp32"
    # bf16 layers run each feed-forward block (2 per conformer layer, 1 per decoder layer and step)
    # as one ffn operation with a bf16 hidden layer; fp32 as its two linears
    want = dict(expected)
    if prec == "bf16":
        want["ffn"] = 2 * Le + T * Ld
        want["linear"] = expected["linear"] - 2 * want["ffn"]
    else:
        want["ffn"] = 0
    for op, n in want.items():
        got = sum(k["calls"] for k in keys if k["cuda_profile"] == op or k["cuda_profile"].startswith(op + " "))
        check(got == n, f"{ex}: {op} calls {got}, expected {n}")
    precs_seen.append(prec)
    head = f"linear m={BATCH} n={vocab} k={d_dec} {prec}"
    check(sum(k["calls"] for k in keys if k["cuda_profile"] == head) == T,
          f"{ex}: '{head}' (the head on each row's last position) runs once per step: {T}")
    for name, s in summ.items():
        check(0 <= s["busy"] <= 1 and s["gpu_ms"] >= 0 and s["span_ms"] >= 0, f"{ex}: summary {s}")
        check(s["gpu_ms"] <= s["span_ms"] * 1.0001 + 1e-3, f"{ex}: {name} gpu_ms within span_ms")
        # launches run synchronously on the emulation: every operation after a window's first finds
        # the previous one finished
        check(s["starved"] == (1.0 if s["ops"] > s["windows"] else 0.0), f"{ex}: {name} starved {s['starved']}")
    check(summ["encoder"]["windows"] == 1, f"{ex}: one encoder window, got {summ['encoder']['windows']}")
    check(summ["decoder"]["windows"] == 2 * T, f"{ex}: two decoder windows per step (sync, topk)")
    ops = sum(k["calls"] for k in keys if k["cuda_profile"] != "sync")
    check(summ["all"]["ops"] == ops, f"{ex}: windows hold every operation ({summ['all']['ops']} vs {ops})")
    check(summ["all"]["stopped"] == "", f"{ex}: not stopped")
check(sorted(precs_seen) == ["bf16", "fp32"], f"one exec per precision, got {precs_seen}")

stopped = [l for l in lines_fail if l.get("cuda_profile_summary") == "all" and l["stopped"]]
check(len(stopped) == 1 and "cudaEventRecord" in stopped[0]["stopped"],
      f"exactly one exec reports its profile stopped by cudaEventRecord: {stopped}")
check(err_fail.count("CUDA profile of exec") == 1, "the stop is noted once on stderr")

print(f"profile: {len(lines)} lines, {len(execs)} execs; layout Le={Le} Ld={Ld} proj={proj}: "
      f"{expected['linear']} linear calls per pass")
if failures:
    print(f"{len(failures)} checks failed")
    sys.exit(1)
print("all profile checks passed")
