#!/usr/bin/python3
"""Checks the golden fixture: every manifest has the agreed keys, every array file has exactly
prod(shape) float32 values, shapes agree with the recorded lengths, log-probs are normalised,
ids are inside the vocabulary, and features/lengths recomputed independently (torch.stft pipeline
in selfcheck_features.py, float64) agree with the stored features within 1e-4 (the parity tolerance of the C front end).
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from canary_ref.nemo import NemoModel  # noqa: E402
from selfcheck_features import torch_reference  # noqa: E402

REQUIRED = ["layout", "case", "semantics", "sample_rate", "arrays", "prompt_ids", "greedy_ids", "beam1_ids",
            "beam4_ids", "greedy_text", "beam1_text", "beam4_text", "lengths", "options"]
ARRAYS = ["input", "features", "subsampling", "enc_layer_0", "enc_layer_mid", "enc_layer_last", "encoder_out",
          "decoder_logprobs_first_steps", "decoder_logprobs_forced"]


def load(case_dir, spec):
    path = os.path.join(case_dir, spec["file"])
    n = os.path.getsize(path)
    want = 4 * math.prod(spec["shape"])
    if n != want:
        raise ValueError(f"{path}: {n} bytes, shape {spec['shape']} needs {want}")
    return np.fromfile(path, dtype="<f4").reshape(spec["shape"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", required=True)
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    manifests = sorted(glob.glob(os.path.join(args.golden, "*", "*", "manifest.json")))
    if not manifests:
        print(f"no manifests under {args.golden}")
        return 1
    errors = []
    fbs = {}
    for mpath in manifests:
        d = os.path.dirname(mpath)
        m = json.load(open(mpath))
        tag = f"{m.get('layout')}/{m.get('case')}"
        missing = [k for k in REQUIRED if k not in m]
        if missing:
            errors.append(f"{tag}: missing keys {missing}")
            continue
        if m["layout"] not in fbs:
            nm = NemoModel(os.path.join(args.models, f"{m['layout']}-tiny.nemo"))
            fbs[m["layout"]] = (nm.get("preprocessor.featurizer.fb").double().reshape(-1, 257),
                                nm.get("log_softmax.mlp.layer0.weight").shape[0])
        fb, vocab = fbs[m["layout"]]
        B = m.get("batch_size", 1)
        lengths = m["lengths"] if B > 1 else [m["lengths"]]
        ids_all = [m[k] if B > 1 else [m[k]] for k in ("greedy_ids", "beam1_ids", "beam4_ids")]
        for ids in ids_all:
            for seq in ids:
                if any((not isinstance(t, int)) or t < 0 or t >= vocab for t in seq):
                    errors.append(f"{tag}: id outside [0, {vocab})")
        audio, alen, feats = [], [], []
        for i in range(B):
            sfx = f"_{i}" if B > 1 else ""
            try:
                arr = {a: load(d, m["arrays"][a + sfx]) for a in ARRAYS}
            except (KeyError, ValueError) as e:
                errors.append(f"{tag}: {e}")
                continue
            L = lengths[i]
            if arr["input"].shape != (L["samples"],):
                errors.append(f"{tag}: input shape {arr['input'].shape} vs samples {L['samples']}")
            if arr["features"].shape != (fb.shape[0], L["feature_frames_tensor"]):
                errors.append(f"{tag}: features shape {arr['features'].shape}")
            for a in ("subsampling", "enc_layer_0", "enc_layer_mid", "enc_layer_last", "encoder_out"):
                if arr[a].shape[0] != L["encoder_frames_tensor"]:
                    errors.append(f"{tag}: {a} has {arr[a].shape[0]} frames, expected {L['encoder_frames_tensor']}")
            if L["encoder"] != -(-L["features"] // 8) and L["features"] > 0:
                errors.append(f"{tag}: encoder length {L['encoder']} != ceil({L['features']}/8)")
            lp = arr["decoder_logprobs_first_steps"]
            if lp.shape[1] != vocab or not np.allclose(np.exp(lp.astype(np.float64)).sum(1), 1.0, atol=1e-4):
                errors.append(f"{tag}: decoder log-probs not normalised over {vocab}")
            if lp.shape[0] >= 1 and ids_all[1][i] and int(np.argmax(lp[0])) != ids_all[1][i][0]:
                errors.append(f"{tag}: argmax of step-0 log-probs != first beam-1 token")
            fl = arr["decoder_logprobs_forced"]
            if fl.shape != (len(m["options"]["forced_ids"]) + 1, vocab):
                errors.append(f"{tag}: decoder_logprobs_forced shape {fl.shape}")
            elif not np.allclose(fl[0], lp[0], atol=1e-6):
                errors.append(f"{tag}: forced row 0 differs from the first beam-1 row (same prompt step)")
            audio.append(arr["input"])
            alen.append(L["samples"])
            feats.append(arr["features"])
        if len(audio) != B:
            continue
        Lmax = max(alen)
        batch = torch.zeros(B, Lmax, dtype=torch.float64)
        for i, a in enumerate(audio):
            batch[i, : a.size] = torch.from_numpy(a.astype(np.float64))
        want, wlen = torch_reference(batch, alen, m["semantics"], fb)
        for i in range(B):
            if int(wlen[i]) != lengths[i]["features"]:
                errors.append(f"{tag}: valid frames {lengths[i]['features']} != {int(wlen[i])}")
            err = float(np.abs(feats[i] - want[i].numpy()).max())
            # 1e-4: the goldens use the checkpoint's float32 window, the recomputation float64 Hann.
            if err > 1e-4:
                errors.append(f"{tag}: stored features differ from the torch.stft pipeline by {err:.3g}")
        print(f"ok   {tag} ({B} item{'s' if B > 1 else ''})")
    if errors:
        print("\n".join(["FAILED:"] + errors))
        return 1
    print(f"{len(manifests)} golden cases checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
