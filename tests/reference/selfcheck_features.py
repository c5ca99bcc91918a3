#!/usr/bin/python3
"""Self-check of canary_ref.features against independent torch/torchaudio computations.

  1. Slaney mel filters: our float64 formula vs torchaudio.functional.melscale_fbanks(norm/mel_scale='slaney').
  2. Power spectrogram: our framed DFT vs torch.stft(center=True, pad_mode=reflect|constant).
  3. Full features: a straightforward NeMo-style pipeline written with torch.stft + torch.std
     vs ours, for both semantics, on a padded batch (lengths differ) and on one item.
Exits non-zero with a message on any mismatch.
"""
import os
import sys

import numpy as np
import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canary_ref import features as F  # noqa: E402

failures = []


def check(name, got, want, atol, rtol=0.0):
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    if got.shape != want.shape:
        failures.append(f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        print(f"FAIL {name}: shape mismatch")
        return
    err = (got - want).abs()
    lim = atol + rtol * want.abs()
    worst = float(err.max()) if err.numel() else 0.0
    ok = bool((err <= lim).all())
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max abs err {worst:.3g}")
    if not ok:
        failures.append(f"{name}: max abs err {worst:.3g} over tolerance atol={atol} rtol={rtol}")


def torch_reference(audio, lengths, semantics, fb):
    """NeMo FilterbankFeatures as a plain torch.stft pipeline (float64)."""
    x = audio.to(torch.float64)
    B, L = x.shape
    seq = torch.tensor([F.valid_frames(int(n), semantics) for n in lengths])
    x = torch.cat([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], dim=1)
    if semantics == "nemo-2.5":
        x = x.masked_fill(torch.arange(L)[None] >= torch.as_tensor(lengths)[:, None], 0.0)
    spec = torch.stft(
        x, n_fft=512, hop_length=160, win_length=400, window=torch.hann_window(400, periodic=False, dtype=torch.float64),
        center=True, pad_mode="reflect" if semantics == "nemo-2.4" else "constant", return_complex=True,
    )
    p = torch.sqrt(spec.real ** 2 + spec.imag ** 2) ** 2
    m = torch.log(fb.to(torch.float64) @ p + 2.0 ** -24)
    out = torch.zeros_like(m)
    for b in range(B):
        n = int(seq[b])
        v = m[b, :, :n]
        std = v.std(dim=1, keepdim=True) if n > 1 else torch.zeros(v.shape[0], 1, dtype=v.dtype)
        out[b, :, :n] = (v - v.mean(dim=1, keepdim=True)) / (std + 1e-5)
    return out, seq


def main():
    torch.manual_seed(0)
    # 1. filterbank
    ours = torch.from_numpy(F.slaney_mel_filterbank())
    ta = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, 128, 16000, norm="slaney", mel_scale="slaney").T
    check("slaney mel filterbank vs torchaudio", ours, ta, atol=1e-6)
    # Filters are non-empty and the DC / Nyquist columns carry no weight, as in librosa.
    if not bool((ours.sum(dim=1) > 0).all()):
        failures.append("a mel filter is empty")

    # 2. STFT power
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16000 + 37, generator=gen, dtype=torch.float64) * 0.1
    for sem in F.SEMANTICS:
        got = F.power_spectrogram(x, sem)
        spec = torch.stft(
            x, 512, 160, 400, window=torch.hann_window(400, periodic=False, dtype=torch.float64), center=True,
            pad_mode="reflect" if sem == "nemo-2.4" else "constant", return_complex=True,
        )
        check(f"power spectrogram vs torch.stft ({sem})", got, spec.abs() ** 2, atol=1e-9, rtol=1e-9)
        if got.shape[2] != 1 + x.shape[1] // 160:
            failures.append(f"frame count {got.shape[2]} != 1 + L//160")

    # 3. full features on a padded batch with unequal lengths (speech-like: noise bursts with an envelope)
    lengths = [16000, 12345, 4000]
    audio = torch.zeros(3, max(lengths), dtype=torch.float64)
    for b, n in enumerate(lengths):
        t = torch.arange(n, dtype=torch.float64) / 16000
        audio[b, :n] = 0.3 * torch.sin(2 * np.pi * 220 * (b + 1) * t) * torch.sin(np.pi * t * 3) ** 2
        audio[b, :n] += 0.01 * torch.randn(n, generator=gen, dtype=torch.float64)
    fb = torch.from_numpy(F.slaney_mel_filterbank())
    for sem in F.SEMANTICS:
        got, glen = F.nemo_features_batch(audio, lengths, sem, fb=fb)
        want, wlen = torch_reference(audio, lengths, sem, fb)
        check(f"features batch vs torch.stft pipeline ({sem})", got, want, atol=1e-7)
        if glen.tolist() != wlen.tolist():
            failures.append(f"valid lengths {glen.tolist()} != {wlen.tolist()}")
        expect_len = [n // 160 + (1 if sem == "nemo-2.4" else 0) for n in lengths]
        if glen.tolist() != expect_len:
            failures.append(f"{sem}: valid lengths {glen.tolist()} != {expect_len}")
        # Masked frames are exactly zero; valid ones are normalised (mean 0, unbiased std ~1).
        for b, n in enumerate(glen.tolist()):
            if got.shape[2] > n and float(got[b, :, n:].abs().max()) != 0.0:
                failures.append(f"{sem}: item {b} frames >= {n} not zero")
            mu = got[b, :, :n].mean(dim=1).abs().max()
            if mu > 1e-9:
                failures.append(f"{sem}: item {b} mean {mu}")
        # Single-item call agrees with the batch for the longest item (no padding involved).
        one, n1 = F.nemo_features(audio[0, : lengths[0]], sem)
        check(f"single == batch item 0 ({sem})", one, got[0], atol=1e-10)
    # In 2.5 a padded item equals the same item alone (the point of PR #13827); in 2.4 it does not.
    got, _ = F.nemo_features_batch(audio, lengths, "nemo-2.5", fb=fb)
    alone, _ = F.nemo_features(audio[1, : lengths[1]], "nemo-2.5", fb=fb)
    check("nemo-2.5 padded item == item alone", got[1, :, : alone.shape[1]], alone, atol=1e-9)

    # Silence: log of the guard everywhere, std 0 -> features exactly 0.
    sil, n = F.nemo_features(np.zeros(16000), "nemo-2.5")
    if n != 100 or float(sil.abs().max()) != 0.0:
        failures.append(f"silence: n={n}, max |x|={float(sil.abs().max())}")
    # Hand-computed length table.
    for L, want24, want25 in [(0, 1, 0), (159, 1, 0), (160, 2, 1), (16000, 101, 100), (160000, 1001, 1000)]:
        if F.valid_frames(L, "nemo-2.4") != want24 or F.valid_frames(L, "nemo-2.5") != want25:
            failures.append(f"valid_frames({L})")

    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("features self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
