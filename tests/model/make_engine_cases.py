#!/usr/bin/env python3
"""Engine parity cases in the golden format (docs: the `goldens` fixture of tests/golden), written
with the PyTorch reference (tests/reference/canary_ref) for the engine's own tests:
  <out>/<layout>/<case>/manifest.json + NAME.f32 arrays.
Case 'batch' (3 utterances of unequal length) with alt_* ids: the search with another token as EOS.
Usage: make_engine_cases.py MODELS_DIR OUT_DIR [layout ...]"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from canary_ref import decoding as D  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402

LAYOUTS = ["canary-180m-flash", "canary-1b-flash", "canary-1b", "canary-1b-v2"]


def audio(seconds, seed):
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000.0
    x = 0.3 * np.sin(2 * math.pi * (200 + 50 * seed) * t) * (0.5 + 0.5 * np.sin(2 * math.pi * 1.5 * t))
    return (x + 0.05 * rng.standard_normal(n)).astype(np.float32)


def save(d, name, arr, arrays):
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    a.tofile(os.path.join(d, name + ".f32"))
    arrays[name] = {"file": name + ".f32", "shape": list(a.shape), "dtype": "f32"}


def run_case(ref, d, audios, semantics="nemo-2.5"):
    """One case in the golden format v2 (docs/REFERENCE.md) plus alt_* ids (see below)."""
    os.makedirs(d, exist_ok=True)
    arrays = {}
    feats, flen = ref.features(audios, semantics)
    taps = {}
    enc, elen = ref.encode(feats, flen, semantics, taps)
    n_layers = sum(1 for k in taps if k.startswith("enc_layer_"))
    B = len(audios)
    sfx = (lambda i: "") if B == 1 else (lambda i: f"_{i}")
    prompt = ref.prompt(source_lang="en", target_lang="en", pnc=True)
    _, steps = ref.decode(enc, elen, prompt, "beam", 1, logprob_steps=4)
    lengths = []
    for i in range(B):
        save(d, "input" + sfx(i), audios[i], arrays)
        save(d, "features" + sfx(i), feats[i].float().numpy(), arrays)
        save(d, "subsampling" + sfx(i), taps["subsampling"][i].float().numpy(), arrays)
        save(d, "enc_layer_0" + sfx(i), taps["enc_layer_0"][i].float().numpy(), arrays)
        save(d, "enc_layer_last" + sfx(i), taps["encoder_out"][i].float().numpy(), arrays)
        save(d, "encoder_out" + sfx(i), enc[i].float().numpy(), arrays)
        save(d, "decoder_logprobs_first_steps" + sfx(i), steps[i].float().numpy(), arrays)
        lengths.append({"samples": len(audios[i]), "features": int(flen[i]), "feature_frames_tensor": feats.shape[2],
                        "encoder": int(elen[i]), "encoder_frames_tensor": enc.shape[1]})
    out = {"golden_version": 2, "layout": os.path.basename(os.path.dirname(d)), "case": os.path.basename(d),
           "semantics": semantics, "sample_rate": 16000, "batch_size": B, "prompt_ids": prompt,
           "lengths": lengths if B > 1 else lengths[0],
           "options": {"eos_id": ref.tok.eos, "pad_id": ref.tok.pad, "max_generation_delta": ref.max_delta,
                       "max_generation_delta_greedy": ref.max_delta_greedy, "encoder_layers": n_layers}}
    for name, strategy, beam in (("greedy", "greedy", 1), ("beam1", "beam", 1), ("beam4", "beam", 4)):
        ids, _ = ref.decode(enc, elen, prompt, strategy, beam)
        out[name + "_ids"] = ids if B > 1 else ids[0]
    # Random models often end every hypothesis at once (EOS dominates) or repeat one token, which
    # leaves the search logic untested; decoding again with another token playing EOS (the
    # runner-up of item 0's first step) exercises long outputs, beam re-ranking, cache growth and
    # NeMo's length limit.
    alt = int(torch.topk(steps[0, 0], 2).indices[1])
    mask = torch.arange(enc.shape[1])[None, :] < elen[:, None]
    P = torch.tensor([prompt] * B, dtype=torch.int64)
    common = dict(n_heads=ref.dec_heads, eos=alt, pad=ref.tok.pad, max_seq_len=ref.max_seq_len,
                  max_delta=ref.max_delta)
    out["alt_eos_id"] = alt
    g, _ = D.greedy(ref.sd, enc, mask, P, **dict(common, max_delta=ref.max_delta_greedy))
    b1, _ = D.beam_search(ref.sd, enc, mask, P, beam_size=1, **common)
    b4, _ = D.beam_search(ref.sd, enc, mask, P, beam_size=4, **common)
    for name, ids in (("alt_greedy_ids", g), ("alt_beam1_ids", b1), ("alt_beam4_ids", b4)):
        out[name] = ids if B > 1 else ids[0]
    out["arrays"] = arrays
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(out, f, indent=1)


def main():
    models, outdir = sys.argv[1], sys.argv[2]
    layouts = sys.argv[3:] or LAYOUTS
    torch.manual_seed(0)
    for lay in layouts:
        ref = CanaryReference(os.path.join(models, f"{lay}-tiny.nemo"))
        run_case(ref, os.path.join(outdir, lay, "batch"), [audio(2.1, 2), audio(4.0, 3), audio(1.2, 4)])
        print(f"{lay}: ok", flush=True)


if __name__ == "__main__":
    main()
