"""Test inputs: 16-bit PCM WAV reading (stdlib wave, no extra dependency) and synthetic signals."""

import wave

import numpy as np


def read_wav_16k(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16 kHz mono 16-bit PCM, got {w.getframerate()} Hz, "
                             f"{w.getnchannels()} ch, {8 * w.getsampwidth()} bit")
        data = w.readframes(w.getnframes())
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)


def synthetic_speechlike(seconds, seed, sr=16000):
    """Deterministic speech-like signal: harmonic 'vowels' with a varying pitch, syllable envelope
    and a little noise; float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    f0 = 110.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum((0.5 / h) * np.sin(h * phase + rng.uniform(0, 6.28)) for h in range(1, 9))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6.28)), 0, None) ** 2
    x = 0.25 * x * env + 0.005 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)
