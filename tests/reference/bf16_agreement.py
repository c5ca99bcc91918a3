#!/usr/bin/python3
"""How often does bf16 inference pick the fp64 reference's greedy token? A property of the model
as much as of the implementation, so measured three ways on the same tiny models and golden inputs,
with teacher forcing on the fp64 greedy ids (every reference token plus the final EOS):

  fp32      canary_ref in float32 (sanity: should be ~100%)
  emulated  canary_ref (float64) with canary-stt's bf16 rounding: weights and inputs of every linear
            layer and pointwise conv rounded to bf16, products accumulated exactly; the subsampling
            stack and depthwise conv unrounded (what canary-stt --precision bf16 computes)
  autocast  canary_ref in float32 under torch.autocast("cpu", bfloat16): PyTorch's standard bf16
            inference (also rounds matmul outputs and attention products)

  /usr/bin/python3 tests/reference/bf16_agreement.py --models build/release/models [--cases batch,librivox]
Prints one line per layout and mode, then the totals. docs/BENCHMARKS.md quotes a run.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from canary_ref import decoding as D  # noqa: E402
from canary_ref import features as F  # noqa: E402
from canary_ref import model as M  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402
from make_goldens import DEFAULT_SEMANTICS, LAYOUTS, inputs  # noqa: E402


def r16(t):
    return t.to(torch.bfloat16).to(t.dtype)


class Emulated:
    """Patches canary_ref's linear layers and pointwise convs with canary-stt's bf16 rounding."""

    def __init__(self, sd):
        self.keep = sd["encoder.pre_encode.out.weight"]  # the subsampling output linear stays fp32

    def __enter__(self):
        self.lin, self.conv1d = M._lin, Fn.conv1d

        def lin(x, w, b=None):
            return self.lin(x, w, b) if w is self.keep else self.lin(r16(x), r16(w), b)

        def conv1d(x, w, b=None, *args, **kw):
            if w.shape[-1] == 1 and kw.get("groups", 1) == 1:
                return self.conv1d(r16(x), r16(w), b, *args, **kw)
            return self.conv1d(x, w, b, *args, **kw)

        M._lin, Fn.conv1d = lin, conv1d
        return self

    def __exit__(self, *exc):
        M._lin, Fn.conv1d = self.lin, self.conv1d


def forced_argmax(ref, enc, elen, prompt, targets):
    """Argmax after the prompt and after each forced target, fed as NeMo's greedy strategy feeds its
    own tokens (token j at position j + 1, decoding.greedy), per item."""
    B, T, _ = enc.shape
    emask = torch.arange(T)[None, :] < elen[:, None]
    n = max(len(t) for t in targets)
    pad = ref.tok.pad
    lp, st = M.decoder_step(ref.sd, torch.tensor([prompt] * B), 0, M.DecoderState(), enc, emask, ref.dec_heads, pad)
    out = [lp.argmax(-1)]
    for j in range(n - 1):
        ids = torch.tensor([[t[j] if j < len(t) else pad] for t in targets])
        lp, st = M.decoder_step(ref.sd, ids, j + 1, st, enc, emask, ref.dec_heads, pad)
        out.append(lp.argmax(-1))
    return torch.stack(out, 1)


def run(ref, layout, audios, opts, mode):
    semantics = DEFAULT_SEMANTICS[layout]
    if opts.get("alt_semantics"):
        semantics = "nemo-2.5" if semantics == "nemo-2.4" else "nemo-2.4"
    popts = {"source_lang": "en", "target_lang": opts.get("target_lang", "en"), "pnc": opts.get("pnc", True)}
    padded = [F.pad_min_duration(np.asarray(a, np.float32)) for a in audios]
    feats, flen = ref.features(padded, semantics)
    prompt = ref.prompt(**popts)
    enc, elen = ref.encode(feats, flen, semantics)
    greedy, _ = ref.decode(enc, elen, prompt, "greedy")
    limit = D.max_generation_length(ref.max_seq_len, enc.shape[1], len(prompt), ref.max_delta_greedy)
    targets = [g + [ref.tok.eos] if len(g) < limit else g for g in greedy]
    return feats, flen, semantics, prompt, targets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cases = inputs()
    if a.cases:
        cases = {k: v for k, v in cases.items() if k in a.cases.split(",")}
    totals = {m: [0, 0] for m in ("fp32", "emulated", "autocast")}
    for layout in LAYOUTS:
        path = os.path.join(a.models, f"{layout}-tiny.nemo")
        ref64 = CanaryReference(path, torch.float64)
        ref32 = CanaryReference(path, torch.float32)
        per = {m: [0, 0] for m in totals}
        for name, (audios, opts) in cases.items():
            feats, flen, sem, prompt, targets = run(ref64, layout, audios, opts, None)
            for mode in totals:
                ref = ref64 if mode == "emulated" else ref32
                f = feats.to(ref.dtype)
                if mode == "emulated":
                    with Emulated(ref.sd):
                        enc, elen = ref.encode(f, flen, sem)
                        got = forced_argmax(ref, enc, elen, prompt, targets)
                elif mode == "autocast":
                    # torch 1.13's CPU autocast leaves layer_norm out of its fp32 list (later
                    # releases include it): give it fp32 inputs as they do.
                    ln = M._ln
                    M._ln = lambda x, sd, prefix, eps=1e-5: ln(x.float(), sd, prefix, eps)
                    try:
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            enc, elen = ref.encode(f, flen, sem)
                            got = forced_argmax(ref, enc.float(), elen, prompt, targets)
                    finally:
                        M._ln = ln
                else:
                    enc, elen = ref.encode(f, flen, sem)
                    got = forced_argmax(ref, enc, elen, prompt, targets)
                for b, t in enumerate(targets):
                    per[mode][0] += sum(int(got[b, j]) == t[j] for j in range(len(t)))
                    per[mode][1] += len(t)
        for mode, (ok, n) in per.items():
            print(f"{layout:18s} {mode:9s} {ok}/{n} = {100.0 * ok / max(n, 1):.2f}%")
            totals[mode][0] += ok
            totals[mode][1] += n
    for mode, (ok, n) in totals.items():
        print(f"{'all':18s} {mode:9s} {ok}/{n} = {100.0 * ok / max(n, 1):.2f}%")


if __name__ == "__main__":
    main()
