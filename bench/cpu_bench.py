#!/usr/bin/env python3
"""CPU benchmark, side by side in one run: canary-stt (fp32, bf16), onnxruntime on the reference's
ONNX export, PyTorch CPU on the reference. Same model, threads, audio (synthetic, 10 s) and
work (40 generated tokens per utterance, EOS ignored).

    /usr/bin/python3 bench/cpu_bench.py --bin build/release/bin/canary-stt --threads 2 \
        build/full/canary-180m-flash-full.nemo [--onnx DIR] [--skip-torch]

RTFx = audio seconds / wall seconds. The machine's load average is printed: on a shared machine
wall times are inflated, compare rows of the same run only."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from canary_ref import decoding as D  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402

SECONDS, TOKENS, BATCH = 10, 40, 8


def synth(seed):
    """The same synthetic audio as `canary-stt bench` (tones + noise)."""
    n = SECONDS * 16000
    t = np.arange(n) / 16000.0
    s = np.uint32(2463534242 ^ seed)
    noise = np.empty(n, np.float64)
    s = int(s)
    for i in range(n):  # xorshift32, as cmd_bench.c
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        noise[i] = (s >> 8) / 16777216.0 - 0.5
    x = 0.3 * np.sin(2 * math.pi * (180 + 40 * np.sin(t * 3)) * t) + 0.1 * np.sin(2 * math.pi * 950 * t) + 0.05 * noise
    return x.astype(np.float32)


def ours(binary, model, threads, precision):
    env = dict(os.environ)
    env["OPENBLAS_CORETYPE"] = "SkylakeX"  # the environment here presets Haswell; docs/BENCHMARKS.md
    out = subprocess.run([binary, "bench", "--model", model, "--threads", str(threads), "--precision", precision,
                          "--batch", str(BATCH), "--seconds", str(SECONDS), "--tokens", str(TOKENS), "--runs", "3",
                          "--format", "json"], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def torch_ref(model, threads, audios):
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    ref = CanaryReference(model, dtype=torch.float32)
    load = time.perf_counter() - t0
    prompt = ref.prompt(source_lang="en", target_lang="en", pnc=True)
    res = {"load_s": load}
    for name, items in (("single", audios[:1]), ("batch", audios)):
        with torch.no_grad():
            t0 = time.perf_counter()
            feats, flen = ref.features(items, "nemo-2.5")
            enc, elen = ref.encode(feats, flen, "nemo-2.5")
            t1 = time.perf_counter()
            mask = torch.arange(enc.shape[1])[None, :] < elen[:, None]
            P = torch.tensor([prompt] * len(items))
            # EOS never matches (-5): exactly TOKENS tokens (1 + TOKENS - 1 loop steps)
            D.beam_search(ref.sd, enc, mask, P, ref.dec_heads, eos=-5, pad=ref.tok.pad,
                          max_seq_len=len(prompt) + TOKENS - 1, beam_size=1, max_delta=-1)
            t2 = time.perf_counter()
        audio = SECONDS * len(items)
        res[name] = {"wall_s": t2 - t0, "rtfx": audio / (t2 - t0), "encoder_s": t1 - t0, "decoder_s": t2 - t1}
    return res


def onnx_run(onnx_dir, model, threads, audio, workdir):
    ref = CanaryReference(model, dtype=torch.float32)
    feats, flen = ref.features([audio], "nemo-2.5")
    os.makedirs(workdir, exist_ok=True)
    f = os.path.join(workdir, "features.f32")
    feats[0].float().numpy().astype("<f4").tofile(f)
    prompt = ref.prompt(source_lang="en", target_lang="en", pnc=True)
    script = os.path.join(HERE, "..", "tests", "reference", "onnx", "run_ort.mjs")
    t0 = time.perf_counter()
    out = subprocess.run(["node", script, "--onnx", onnx_dir, "--features", f, "--n-mels", str(feats.shape[1]),
                          "--frames", str(feats.shape[2]), "--length", str(int(flen[0])),
                          "--prompt", ",".join(map(str, prompt)), "--eos", "-5", "--max-gen", str(TOKENS - 1),
                          "--repeat", "3", "--threads", str(threads), "--batch", str(BATCH), "--out", workdir],
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r = json.load(open(os.path.join(workdir, "result.json")))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    single, batch = med(r["wall_ms"]) / 1e3, med(r["batch"]["wall_ms"]) / 1e3
    return {"onnxruntime": r.get("onnxruntime"), "process_wall_s": wall,
            "single": {"wall_s": single, "rtfx": SECONDS / single, "encoder_s": med(r["enc_ms"]) / 1e3},
            "batch": {"n": BATCH, "wall_s": batch, "rtfx": SECONDS * BATCH / batch,
                      "encoder_s": med(r["batch"]["enc_ms"]) / 1e3}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--bin", default="build/release/bin/canary-stt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", action="append", default=[], help="ONNX dir per model (same order)")
    ap.add_argument("--skip-torch", action="store_true")
    a = ap.parse_args()
    print(f"load average: {os.getloadavg()}, threads {a.threads}")
    audios = [synth(i) for i in range(BATCH)]
    for i, m in enumerate(a.models):
        print(f"== {os.path.basename(m)}")
        for prec in ("fp32", "bf16"):
            r = ours(a.bin, m, a.threads, prec)
            print(f"canary-stt {prec}: load {r['load_s']:.2f} s, 1x10 s RTFx {r['single']['rtfx']:.1f} "
                  f"(encoder {r['single']['encoder_gflops']:.0f} GFLOP/s), {BATCH}x10 s RTFx {r['batch']['rtfx']:.1f} "
                  f"(encoder {r['batch']['encoder_gflops']:.0f} GFLOP/s), peak RSS {r['peak_rss_mb']:.0f} MB")
            print(json.dumps(r))
        if i < len(a.onnx):
            r = onnx_run(a.onnx[i], m, a.threads, audios[0], a.onnx[i] + "-run")
            print(f"onnxruntime fp32 (no features): 1x10 s RTFx {r['single']['rtfx']:.1f} "
                  f"(encoder {r['single']['encoder_s']:.3f} s), {BATCH}x10 s RTFx {r['batch']['rtfx']:.1f} "
                  f"(encoder {r['batch']['encoder_s']:.3f} s)")
            print(json.dumps(r))
        if not a.skip_torch:
            r = torch_ref(m, a.threads, audios)
            print(f"pytorch fp32: load {r['load_s']:.2f} s, 1x10 s RTFx {r['single']['rtfx']:.1f}, "
                  f"{BATCH}x10 s RTFx {r['batch']['rtfx']:.1f}")
            print(json.dumps(r))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
