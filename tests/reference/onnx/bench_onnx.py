#!/usr/bin/python3
"""Time the exported ONNX graphs in onnxruntime-node on one WAV (benchmark use; no parity check, so
it also works for full-size models whose float64 reference would need too much memory).

  /usr/bin/python3 tests/reference/onnx/bench_onnx.py --onnx DIR --nemo MODEL.nemo --wav F.wav \
      [--threads 2] [--repeat 3]

Features are computed with canary_ref (Slaney filters and Hann window recomputed, semantics from
DIR/export.json); decoding is NeMo's beam 1 (argmax, true positions) with the decoder KV cache, up
to NeMo's length limit. Prints one JSON line: audio seconds, tokens, per-run wall ms, real-time factor.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from canary_ref import features as F  # noqa: E402
from canary_ref import prompt as P  # noqa: E402
from canary_ref.audio import read_wav_16k  # noqa: E402
from canary_ref.decoding import max_generation_length  # noqa: E402
from canary_ref.model import subsampled_lengths  # noqa: E402
from canary_ref.nemo import NemoModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--nemo", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    info = json.load(open(os.path.join(args.onnx, "export.json")))
    nm = NemoModel(args.nemo, weights=False)
    cfg = nm.config
    audio = F.pad_min_duration(read_wav_16k(args.wav))
    feats, n = F.nemo_features(torch.from_numpy(audio.astype(np.float64)), info["semantics"], dtype=torch.float32)
    prompt = P.prompt_ids(nm.tokenizer, cfg.get("prompt_format", "canary"))
    t_enc = int(subsampled_lengths([feats.shape[1]])[0])
    delta = int(((cfg.get("decoding") or {}).get("beam") or {}).get("max_generation_delta", -1))
    gen = max_generation_length(int(cfg["transf_decoder"]["config_dict"]["max_sequence_length"]), t_enc,
                                len(prompt), delta)
    work = tempfile.mkdtemp(prefix="bench-onnx-")
    try:
        ff = os.path.join(work, "features.f32")
        feats.numpy().astype("<f4").tofile(ff)
        cmd = ["node", os.path.join(HERE, "run_ort.mjs"), "--onnx", args.onnx, "--features", ff,
               "--n-mels", str(feats.shape[0]), "--frames", str(feats.shape[1]), "--length", str(n),
               "--prompt", ",".join(map(str, prompt)), "--eos", str(nm.tokenizer.eos), "--max-gen", str(gen),
               "--out", os.path.join(work, "ort"), "--repeat", str(args.repeat), "--threads", str(args.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        res = json.load(open(os.path.join(work, "ort", "result.json")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    secs = audio.size / 16000.0
    best = min(res["wall_ms"])
    print(json.dumps({"audio_s": secs, "tokens": len(res["beam1_ids"]), "threads": args.threads,
                      "wall_ms": res["wall_ms"], "rtfx_best": round(secs / (best / 1000.0), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
