#!/usr/bin/python3
"""Cross-check against a second, independently written forward pass: tools/testmodel/probe.py (written
by the test-model generator's author from the same spec, to calibrate EOS; no masking or batching).
On every tiny model and a real recording, in float32 for the probe and float64 here:
  features (NeMo 2.5, valid frames), encoder output, and decoder log-probs along a teacher-forced
  sequence (prompt + 8 text ids, true positions) must agree within 1e-3 max abs.

  selfcheck_vs_probe.py --models DIR
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from canary_ref import features as F  # noqa: E402
from canary_ref import model as M  # noqa: E402
from canary_ref.audio import read_wav_16k  # noqa: E402
from canary_ref.reference import CanaryReference  # noqa: E402
from make_goldens import forced_ids  # noqa: E402

WAV = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
TOL = 1e-3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        from testmodel import probe
    except ImportError as e:
        print(f"SKIP: tools/testmodel/probe.py not available ({e})")
        return 77
    audio = read_wav_16k(WAV)
    failures = []
    for lay in ("canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2"):
        ref = CanaryReference(os.path.join(args.models, f"{lay}-tiny.nemo"))
        sd32 = {k: (v.float() if v.is_floating_point() else v) for k, v in ref.nemo.state.items()}
        feats, flen = ref.features([audio], "nemo-2.5")
        n = int(flen[0])
        pf = probe.log_mel(sd32, torch.from_numpy(audio))
        f_err = float((pf.double() - feats[0, :, :n]).abs().max())
        enc, elen = ref.encode(feats, flen, "nemo-2.5")
        n_enc = M.encoder_layer_count(ref.sd)
        pe = probe.encode(sd32, feats[0, :, :n].float(), n_enc, ref.enc_heads)
        if "encoder_decoder_proj.weight" in sd32:
            pe = pe @ sd32["encoder_decoder_proj.weight"].t() + sd32["encoder_decoder_proj.bias"]
        k = int(elen[0])
        e_err = float((pe.double()[:k] - enc[0, :k]).abs().max()) if pe.shape[0] >= k else float("inf")
        seq = ref.prompt() + forced_ids(ref)
        lp, _ = M.decoder_step(ref.sd, torch.tensor([seq]), 0, M.DecoderState(), enc[:, :k],
                               torch.ones(1, k, dtype=torch.bool), ref.dec_heads, ref.tok.pad, all_positions=True)
        h = probe.final_states(sd32, torch.tensor(seq), enc[0, :k].float(), M.decoder_layer_count(ref.sd),
                               ref.dec_heads)
        plp = torch.log_softmax(h @ sd32["log_softmax.mlp.layer0.weight"].t() + sd32["log_softmax.mlp.layer0.bias"], -1)
        d_err = float((plp.double() - lp[0]).abs().max())
        ok = f_err <= TOL and e_err <= TOL and d_err <= TOL
        print(f"{'ok  ' if ok else 'FAIL'} {lay}: features {f_err:.2e}, encoder {e_err:.2e} "
              f"({k} frames), decoder log-probs {d_err:.2e} ({len(seq)} positions)")
        if not ok:
            failures.append(lay)
    if failures:
        print(f"FAILED: {failures}")
        return 1
    print("reference agrees with tools/testmodel/probe.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
