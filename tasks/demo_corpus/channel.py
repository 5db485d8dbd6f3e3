"""The channel every file of a demo dataset passes through, bona fide and spoof alike: what makes
the datasets differ as real corpora do (``studio``, ``phone``, ``far``)."""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal
from scipy.fft import next_fast_len

from tasks.demo_corpus.plan import unknown_conditions_message


def _coloured_noise(rng: np.random.Generator, n: int, slope_db_per_oct: float) -> np.ndarray:
    """Unit-RMS noise whose spectrum falls (or rises) by ``slope_db_per_oct``."""
    size = next_fast_len(n, real=True)
    spec = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size)
    spec *= np.maximum(freqs / freqs[-1], 1.0 / size) ** (slope_db_per_oct / 6.02)
    x = np.fft.irfft(spec, n=size)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * (10 ** (dbfs / 20) / _rms(x))


def _add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: float, slope: float) -> np.ndarray:
    return x + _coloured_noise(rng, len(x), slope) * _rms(x) * 10 ** (-snr_db / 20)


def _mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """G.711-style μ-law: compress, quantise to 8 bits, expand."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127.0) / 127.0
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def _room_impulse_response(rng: np.random.Generator, sr: int) -> np.ndarray:
    rt60 = rng.uniform(0.25, 0.6)
    length = int(rt60 * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail = signal.lfilter([0.6], [1.0, -0.4], tail)  # walls absorb highs
    rir = tail * 10 ** (-rng.uniform(0, 8) / 20) / _rms(tail[: int(0.05 * sr)]) * 0.1
    rir[0] = 1.0
    for _ in range(6):  # early reflections
        rir[int(rng.uniform(0.002, 0.03) * sr)] += rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0])
    return rir / np.sqrt(np.sum(rir**2))


def apply_condition(rng: np.random.Generator, x: np.ndarray, condition: str, sr: int) -> np.ndarray:
    x = x - x.mean()
    if condition == "studio":
        x = _at_level(x, rng.uniform(-26.0, -18.0))
        x = _add_noise(rng, x, rng.uniform(35.0, 50.0), slope=-3.0)
    elif condition == "phone":
        x = _at_level(x, rng.uniform(-24.0, -16.0))
        narrow = soxr.resample(x, sr, 8000, quality="HQ") if sr != 8000 else x
        sos = signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=8000, output="sos")
        narrow = signal.sosfilt(sos, narrow)
        narrow = _add_noise(rng, narrow, rng.uniform(22.0, 32.0), slope=0.0)
        narrow = _mu_law(narrow * 10 ** (rng.uniform(-2.0, 2.0) / 20))
        x = soxr.resample(narrow, 8000, sr, quality="HQ")[: len(x)] if sr != 8000 else narrow
    elif condition == "far":
        x = signal.fftconvolve(x, _room_impulse_response(rng, sr))[: len(x)]
        x = _at_level(x, rng.uniform(-40.0, -32.0))
        x = _add_noise(rng, x, rng.uniform(13.0, 25.0), slope=-4.5)
    else:  # validated earlier; kept for direct callers
        raise ValueError(unknown_conditions_message([condition]))
    peak = np.max(np.abs(x))
    return x * (0.95 / peak) if peak > 0.95 else x
