"""NeMo log-mel front end (FilterbankFeatures, eval mode), written from the spec (canary-spec.md §3).

Two semantics exist because NeMo changed its feature extractor in v2.5 (PR #13827):

  "nemo-2.4": reflect centre padding, valid frames = L//160 + 1, pre-emphasis not masked.
  "nemo-2.5": zero centre padding,    valid frames = L//160,     pre-emphasis masked to the valid samples.

Both produce T = 1 + Lmax//160 frames; frames at index >= valid length are set to 0 after the
per-feature normalisation (unbiased std over the valid frames, +1e-5 added to the std).

The STFT here is an explicit framed DFT (matmul with a cos/sin basis), not torch.stft, so that the
self-check against torch.stft (selfcheck.py) compares two independent computations.
"""

import math

import numpy as np
import torch

SEMANTICS = ("nemo-2.4", "nemo-2.5")

SAMPLE_RATE = 16000
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_FFT = 512
N_MELS = 128
PREEMPH = 0.97
LOG_GUARD = 2.0 ** -24
STD_EPS = 1e-5


def check_semantics(semantics):
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown feature semantics {semantics!r}; expected one of {SEMANTICS}")


def hann_window(win_length=WIN_LENGTH, dtype=torch.float64):
    """Symmetric Hann (torch.hann_window(periodic=False)): 0.5 - 0.5 cos(2 pi n / (N-1))."""
    n = torch.arange(win_length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2.0 * math.pi * n / (win_length - 1))).to(dtype)


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel_filterbank(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=None):
    """librosa.filters.mel(htk=False, norm='slaney') computed in float64 and rounded to float32,
    which is what NeMo stores as preprocessor.featurizer.fb. Returns float32 [n_mels, n_fft//2+1]."""
    fmax = sr / 2.0 if fmax is None else fmax
    n_freqs = n_fft // 2 + 1
    fftfreqs = np.linspace(0.0, sr / 2.0, n_freqs)
    mel_pts = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels])
    weights *= enorm[:, None]
    return weights.astype(np.float32)


def valid_frames(n_samples, semantics):
    """Number of valid feature frames for n_samples of audio (NeMo get_seq_len, centre=True)."""
    check_semantics(semantics)
    n = int(n_samples) // HOP_LENGTH
    if semantics == "nemo-2.4":
        n += 1
    return n


def _dft_basis(n_fft, dtype):
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    ang = 2.0 * math.pi * torch.outer(n, k) / n_fft
    return torch.cos(ang).to(dtype), (-torch.sin(ang)).to(dtype)


def power_spectrogram(x, semantics, window=None, dtype=torch.float64):
    """x: [B, L] pre-emphasised audio. Returns |STFT|^2 as [B, n_fft//2+1, 1 + L//hop]."""
    check_semantics(semantics)
    if window is None:
        window = hann_window(WIN_LENGTH, dtype)
    window = window.to(dtype)
    # torch.stft centres a shorter window inside n_fft with zeros on both sides.
    left = (N_FFT - window.numel()) // 2
    win = torch.zeros(N_FFT, dtype=dtype)
    win[left : left + window.numel()] = window
    pad = N_FFT // 2
    mode = "reflect" if semantics == "nemo-2.4" else "constant"
    if mode == "reflect" and x.shape[1] <= pad:
        raise ValueError(
            f"nemo-2.4 (reflect padding) needs more than {pad} samples, got {x.shape[1]}; "
            "NeMo pads short clips to 1 s before the preprocessor"
        )
    xp = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
    n_frames = 1 + x.shape[1] // HOP_LENGTH
    frames = xp.unfold(1, N_FFT, HOP_LENGTH)[:, :n_frames, :] * win  # [B, T, n_fft]
    cos_b, sin_b = _dft_basis(N_FFT, dtype)
    re = frames @ cos_b
    im = frames @ sin_b
    # NeMo takes sqrt(re^2+im^2) then raises it to mag_power=2; that is re^2+im^2 up to rounding.
    return (re * re + im * im).transpose(1, 2)


def nemo_features_batch(audio, lengths, semantics="nemo-2.5", fb=None, window=None, dtype=torch.float64):
    """NeMo FilterbankFeatures.forward for a right-padded batch.

    audio: [B, Lmax] float tensor (16 kHz, already right-padded with zeros), lengths: [B] samples.
    fb: [n_mels, 257] (or [1, n_mels, 257]) filterbank, default: Slaney filters as NeMo stores them.
    Returns (features [B, n_mels, 1 + Lmax//160], valid_frames [B] int64).
    """
    check_semantics(semantics)
    x = torch.as_tensor(audio).to(dtype)
    if x.dim() != 2:
        raise ValueError(f"audio must be [B, L], got shape {tuple(x.shape)}")
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    B, L = x.shape
    seq_len = torch.tensor([valid_frames(int(n), semantics) for n in lengths], dtype=torch.int64)

    # Pre-emphasis y[n] = x[n] - 0.97 x[n-1], y[0] = x[0].
    x = torch.cat([x[:, :1], x[:, 1:] - PREEMPH * x[:, :-1]], dim=1)
    if semantics == "nemo-2.5":
        # 2.5 masks the samples past each item's length, so padding stays exactly zero.
        mask = torch.arange(L)[None, :] >= lengths[:, None]
        x = x.masked_fill(mask, 0.0)

    power = power_spectrogram(x, semantics, window=window, dtype=dtype)
    if fb is None:
        fb = torch.from_numpy(slaney_mel_filterbank())
    fb = torch.as_tensor(fb).reshape(-1, N_FFT // 2 + 1).to(dtype)
    mel = torch.matmul(fb, power)  # [B, n_mels, T]
    logmel = torch.log(mel + LOG_GUARD)

    T = logmel.shape[2]
    out = torch.zeros_like(logmel)
    for b in range(B):
        n = int(min(seq_len[b], T))
        if n <= 0:
            continue
        valid = logmel[b, :, :n]
        mean = valid.mean(dim=1, keepdim=True)
        if n > 1:
            std = torch.sqrt(((valid - mean) ** 2).sum(dim=1, keepdim=True) / (n - 1))
        else:
            std = torch.zeros_like(mean)  # NeMo >= 2.5 replaces the NaN std of one frame by 0
        std = std + STD_EPS
        out[b, :, :n] = (valid - mean) / std
    return out, seq_len


def nemo_features(audio, semantics="nemo-2.5", fb=None, window=None, dtype=torch.float64):
    """One utterance: audio 1-D float (16 kHz). Returns (features [n_mels, T] tensor, valid_frames int)."""
    a = torch.as_tensor(np.asarray(audio, dtype=np.float64) if not torch.is_tensor(audio) else audio)
    if a.dim() != 1:
        raise ValueError(f"audio must be 1-D, got shape {tuple(a.shape)}")
    feats, lens = nemo_features_batch(a[None, :], [a.numel()], semantics, fb=fb, window=window, dtype=dtype)
    return feats[0], int(lens[0])


def pad_min_duration(audio, min_seconds=1.0, sr=SAMPLE_RATE):
    """NeMo transcribe(): clips shorter than 1 s are zero-padded to 1 s, split on both sides
    (lhotse pad direction 'both': the extra half rounded down goes left)."""
    a = np.asarray(audio, dtype=np.float32)
    target = int(round(min_seconds * sr))
    if a.size >= target:
        return a
    extra = target - a.size
    left = extra // 2
    return np.concatenate([np.zeros(left, np.float32), a, np.zeros(extra - left, np.float32)])
