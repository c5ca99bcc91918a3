"""Runs the PyTorch reference front end (tests/reference/canary_ref/features.py) on inputs written
by test_features_parity.c.

usage: ref_features.py DIR
DIR/cases.txt has one line per case: "<name> <semantics> <input>[,<input>...]" where each input is a
raw float32 file in DIR. Writes DIR/<name>.out.f32 ([B, n_mels, T] float32) and DIR/<name>.valid
(one valid-frame count per line), plus DIR/fb.f32 (the reference Slaney filterbank).
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from canary_ref import features as F  # noqa: E402


def main():
    d = sys.argv[1]
    F.slaney_mel_filterbank().astype("<f4").tofile(os.path.join(d, "fb.f32"))
    with open(os.path.join(d, "cases.txt")) as fh:
        for line in fh:
            if not line.strip():
                continue
            name, sem, files = line.split()
            audios = [np.fromfile(os.path.join(d, f), dtype="<f4") for f in files.split(",")]
            lmax = max(a.size for a in audios)
            batch = np.zeros((len(audios), lmax), dtype=np.float32)
            for i, a in enumerate(audios):
                batch[i, : a.size] = a
            feats, lens = F.nemo_features_batch(torch.from_numpy(batch), [a.size for a in audios], sem)
            feats.numpy().astype("<f4").tofile(os.path.join(d, name + ".out.f32"))
            with open(os.path.join(d, name + ".valid"), "w") as out:
                out.write("\n".join(str(int(n)) for n in lens) + "\n")


if __name__ == "__main__":
    main()
