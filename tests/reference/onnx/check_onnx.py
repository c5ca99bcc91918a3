#!/usr/bin/python3
"""Parity of the ONNX export run by onnxruntime (node, onnxruntime-node) with the reference.

For each tiny layout: export the three graphs, run run_ort.mjs on a real recording, and compare
  encoder states        max abs diff <= 1e-3 (float32 ORT vs float64 reference)
  first-step log-probs  max abs diff <= 1e-3
  beam-1 token ids      identical
Exit code 77 (ctest SKIP) when node or onnxruntime-node is not installed:
  npm --prefix tests/reference/onnx install --ignore-scripts
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from canary_ref import features as F  # noqa: E402
from canary_ref.audio import read_wav_16k  # noqa: E402
from canary_ref.decoding import max_generation_length  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402
from export_onnx import export  # noqa: E402

SKIP = 77
WAV = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
TOL = 1e-3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--layouts", default="canary-180m-flash,canary-1b-v2,canary-1b,canary-1b-flash")
    ap.add_argument("--size", default="tiny", help="tiny (ctest) or full (real dimensions, benchmarks)")
    ap.add_argument("--repeat", type=int, default=1, help="onnxruntime runs of the whole pipeline (timing)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        print("SKIP: node or onnxruntime-node missing; run: npm --prefix tests/reference/onnx install --ignore-scripts")
        return SKIP
    torch.set_num_threads(1)
    audio = read_wav_16k(WAV)
    failures = []
    report = {}
    for lay in [x for x in args.layouts.split(",") if x]:
        model = os.path.join(args.models, f"{lay}-{args.size}.nemo")
        sem = "nemo-2.5" if lay == "canary-1b-v2" else "nemo-2.4"
        out = os.path.join(args.work, lay)
        export(model, out, sem)
        ref = CanaryReference(model)
        feats, flen = ref.features([F.pad_min_duration(audio)], sem)
        enc, elen = ref.encode(feats, flen, sem)
        prompt = ref.prompt()
        ids, steps = ref.decode(enc, elen, prompt, "beam", 1, logprob_steps=4)
        feat_file = os.path.join(out, "features.f32")
        feats[0].to(torch.float32).numpy().astype("<f4").tofile(feat_file)
        gen_len = max_generation_length(ref.max_seq_len, enc.shape[1], len(prompt), ref.max_delta)
        cmd = [node, os.path.join(HERE, "run_ort.mjs"), "--onnx", out, "--features", feat_file,
               "--n-mels", str(feats.shape[1]), "--frames", str(feats.shape[2]), "--length", str(int(flen[0])),
               "--prompt", ",".join(map(str, prompt)), "--eos", str(ref.tok.eos), "--max-gen", str(gen_len),
               "--out", os.path.join(out, "ort"), "--repeat", str(args.repeat), "--threads", str(args.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            failures.append(f"{lay}: run_ort failed: {r.stderr.strip()[-500:]}")
            continue
        res = json.load(open(os.path.join(out, "ort", "result.json")))
        es = np.fromfile(os.path.join(out, "ort", "encoder_states.f32"), "<f4").reshape(res["encoder_states_shape"])
        lp = np.fromfile(os.path.join(out, "ort", "log_probs_first_steps.f32"), "<f4").reshape(res["log_probs_shape"])
        enc_err = float(np.abs(es[0] - enc[0].numpy()).max())
        n = min(lp.shape[0], steps.shape[1])
        lp_err = float(np.abs(lp[:n] - steps[0, :n].numpy()).max())
        same = res["beam1_ids"] == ids[0]
        report[lay] = {"encoder_max_abs": enc_err, "logprob_max_abs": lp_err, "tokens": len(ids[0]),
                       "ids_equal": same, "encoder_length": res["encoder_length"], "ort_wall_ms": res["wall_ms"]}
        print(f"{'ok  ' if enc_err <= TOL and lp_err <= TOL and same else 'FAIL'} {lay}: {report[lay]}")
        if enc_err > TOL or lp_err > TOL or not same or res["encoder_length"] != int(elen[0]):
            failures.append(f"{lay}: {report[lay]}")
    with open(os.path.join(args.work, "onnx_parity.json"), "w") as f:
        json.dump(report, f, indent=1)
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("onnxruntime matches the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
