"""The STFT the synthesiser and the vocoders share (Hann, hop N/4, frame j centred at sample j*hop)
and mel filterbanks for the Griffin-Lim attack.

The analysis is scipy's ``ShortTimeFFT`` (from the first frame centred on sample 0, without
its phase shift). The inverse is written here: overlap-add normalised by the window power that
actually covers each sample, so the first and last frames come back at full level; scipy's
dual-window inverse assumes the frames before the first one (``ShortTimeFFT.p_min``), which the
vocoders do not make.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.signal import ShortTimeFFT


@lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    return signal.get_window("hann", n_fft)


@lru_cache(maxsize=8)
def _short_time_fft(n_fft: int) -> ShortTimeFFT:
    return ShortTimeFFT(hann(n_fft), hop=n_fft // 4, fs=1, mfft=n_fft, phase_shift=None)


def stft(x: np.ndarray, n_fft: int) -> np.ndarray:
    """(frames, bins) of ``x``: frame j centred at sample j*hop, up to the first one centred past the end."""
    n_frames = int(np.ceil(len(x) / (n_fft // 4))) + 1
    return _short_time_fft(n_fft).stft(x, p0=0, p1=n_frames).T


def istft(spec: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    hop = n_fft // 4
    window = hann(n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * window
    n_frames = frames.shape[0]
    blocks = np.zeros((n_frames + 3, hop))
    norm = np.zeros((n_frames + 3, hop))
    w2 = (window**2).reshape(4, hop)
    for j in range(4):
        blocks[j : j + n_frames] += frames[:, j * hop : (j + 1) * hop]
        norm[j : j + n_frames] += w2[j]
    out = (blocks / np.maximum(norm, 1e-3)).reshape(-1)
    pad = n_fft // 2
    return out[pad : pad + length]


def frame_values(track: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """A per-sample track sampled at the STFT frame centres."""
    idx = np.minimum(np.arange(n_frames) * hop, len(track) - 1)
    return track[idx]


def n_fft_for(sample_rate: int, seconds: float = 0.032) -> int:
    return int(2 ** np.round(np.log2(seconds * sample_rate)))


@lru_cache(maxsize=64)
def mel_filterbank(
    n_bands: int, n_fft: int, sample_rate: int, fmin: float = 40.0, fmax: float | None = None
) -> np.ndarray:
    fmax = fmax or sample_rate / 2
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fb = np.zeros((n_bands, len(freqs)))
    for b in range(n_bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rise = (freqs - lo) / max(mid - lo, 1e-9)
        fall = (hi - freqs) / max(hi - mid, 1e-9)
        fb[b] = np.clip(np.minimum(rise, fall), 0.0, None)
        if not fb[b].any():  # narrower than a bin: take the nearest bin
            fb[b, np.argmin(np.abs(freqs - mid))] = 1.0
    return fb


@lru_cache(maxsize=64)
def mel_inverse(n_bands: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Bins × bands map from band power back to a power spectrum: each bin gets the
    filter-weighted average power density of the bands covering it (0 outside fmin..fmax)."""
    fb = mel_filterbank(n_bands, n_fft, sample_rate, fmin, fmax)
    return (fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-9)).T
