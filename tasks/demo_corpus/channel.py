"""The channel every file of a demo dataset passes through, bona fide and spoof alike: what makes
the datasets differ as real corpora do (``studio``, ``phone``, ``far``).

Noise, its SNR and the room impulse response are the degrade stage's (``tasks/degrade``); the
telephone line's own parts stay here: a causal 300-3400 Hz band-pass and noise at 8 kHz
between the two resamplings, and G.711's μ-law as arithmetic (degrade's G.711 is an FFmpeg
codec on 8 kHz files, a round trip through a file per utterance).
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

from tasks.degrade.noise import coloured_noise, mix_at_snr
from tasks.degrade.reverb import synthetic_rir
from tasks.demo_corpus.plan import unknown_conditions_message


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * (10 ** (dbfs / 20) / _rms(x))


def _mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """G.711-style μ-law: compress, quantise to 8 bits, expand."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127.0) / 127.0
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def apply_condition(rng: np.random.Generator, x: np.ndarray, condition: str, sr: int) -> np.ndarray:
    x = x - x.mean()
    if condition == "studio":
        x = _at_level(x, rng.uniform(-26.0, -18.0))
        x = mix_at_snr(x, coloured_noise(len(x), "pink", rng), rng.uniform(35.0, 50.0))
    elif condition == "phone":
        x = _at_level(x, rng.uniform(-24.0, -16.0))
        narrow = soxr.resample(x, sr, 8000, quality="HQ") if sr != 8000 else x
        sos = signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=8000, output="sos")
        narrow = signal.sosfilt(sos, narrow)
        narrow = mix_at_snr(narrow, coloured_noise(len(narrow), "white", rng), rng.uniform(22.0, 32.0))
        narrow = _mu_law(narrow * 10 ** (rng.uniform(-2.0, 2.0) / 20))
        x = soxr.resample(narrow, 8000, sr, quality="HQ")[: len(x)] if sr != 8000 else narrow
    elif condition == "far":
        x = signal.fftconvolve(x, synthetic_rir(rng.uniform(0.25, 0.6), sr, rng))[: len(x)]
        x = _at_level(x, rng.uniform(-40.0, -32.0))
        x = mix_at_snr(x, coloured_noise(len(x), "brown", rng), rng.uniform(13.0, 25.0))
    else:  # validated earlier; kept for direct callers
        raise ValueError(unknown_conditions_message([condition]))
    peak = np.max(np.abs(x))
    return x * (0.95 / peak) if peak > 0.95 else x
