"""The demo corpus' spoofing attacks: resynthesis methods that leave a vocoder's artefacts (A01-A04,
``plan.ATTACKS``), each ``(rng, bona fide utterance, sample rate) -> waveform``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal
from scipy.ndimage import gaussian_filter1d

from tasks.demo_corpus.dsp import frame_values, hann, istft, mel_filterbank, mel_inverse, n_fft_for, stft
from tasks.demo_corpus.speech import CONTROL_RATE, Utterance


def _flat(spec: np.ndarray) -> np.ndarray:
    """A spectrum divided by its per-frame RMS magnitude (spectrally 'white' excitation)."""
    return spec / (np.sqrt(np.mean(np.abs(spec) ** 2, axis=1, keepdims=True)) + 1e-9)


def _smooth_track(track: np.ndarray, seconds: float, sample_rate: int) -> np.ndarray:
    """Gaussian smoothing of a slow per-sample track (computed on a 5 ms grid, then interpolated)."""
    step = max(1, sample_rate // CONTROL_RATE)
    coarse = gaussian_filter1d(track[::step], seconds * CONTROL_RATE, mode="nearest")
    return np.interp(np.arange(len(track)), np.arange(len(coarse)) * step, coarse)


def _pulse_train(f0: np.ndarray, voiced: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unit impulses at every period of ``f0`` where ``voiced``: a perfectly regular buzz."""
    phase = np.cumsum(f0) / sample_rate
    pulses = np.zeros(len(f0))
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    return pulses * voiced


def attack_griffin_lim(
    rng: np.random.Generator,
    utt: Utterance,
    sr: int,
    *,
    strength: float | None = None,
    n_iter: int | None = None,
    frame_seconds: float = 0.016,
) -> np.ndarray:
    """A01: mel-compressed magnitude (TTS-style fmin/fmax) → back to linear frequency →
    sharpened → 1–6 Griffin–Lim iterations. ``strength`` 1 starts from zero phase in every frame
    with a single iteration (frame-synchronous phase structure survives), 0 from random phase
    with six."""
    n_fft = n_fft_for(sr, frame_seconds)
    X = stft(utt.wave, n_fft)
    mag = np.abs(X)
    n_mels = int(rng.choice([40, 64, 80]))
    fmin = float(rng.choice([55.0, 80.0, 125.0]))  # common TTS mel settings
    fmax = float(rng.choice([0.45, 0.475, 0.5])) * sr
    fb = mel_filterbank(n_mels, n_fft, sr, fmin, fmax)
    mel_power = (mag**2) @ fb.T
    mag = np.sqrt(mel_power @ mel_inverse(n_mels, n_fft, sr, fmin, fmax).T)
    mag = mag ** rng.uniform(1.0, 1.5)  # Tacotron-style magnitude sharpening before Griffin-Lim
    strength = _strength(rng, "A01") if strength is None else strength
    n_iter = 1 + int(round(5 * (1.0 - strength))) if n_iter is None else n_iter
    angles = _unit_phasor(2 * np.pi * (1.0 - strength) * rng.random(mag.shape))  # strength 1: zero initial phase
    n = len(utt.wave)
    for _ in range(n_iter):
        y = istft(mag * angles, n_fft, n)
        rebuilt = stft(y, n_fft)
        angles = rebuilt / np.maximum(np.abs(rebuilt), 1e-12)
    return istft(mag * angles, n_fft, n)


def attack_band_vocoder(
    rng: np.random.Generator,
    utt: Utterance,
    sr: int,
    *,
    cutoff: float | None = None,
    periodicity: float | None = None,
    flatten: float | None = None,
    frame_seconds: float = 0.016,
) -> np.ndarray:
    """A02: band energies on a mel scale, quantised in dB and held for 2–3 frames, imposed on a
    pulse-train-plus-noise excitation (noise above a voicing cut-off, and in unvoiced frames);
    each frame's phase pulled towards zero by ``flatten`` (1: zero-phase frames, which buzz at
    the frame rate)."""
    n_fft = n_fft_for(sr, frame_seconds)
    hop = n_fft // 4
    n = len(utt.wave)
    X = stft(utt.wave, n_fft)
    n_bands = int(rng.integers(14, 26))
    fb = mel_filterbank(n_bands, n_fft, sr)
    band_db = 10 * np.log10((np.abs(X) ** 2) @ fb.T / fb.sum(axis=1) + 1e-10)
    step = rng.uniform(2.0, 6.0)
    band_db = np.round(band_db / step) * step
    hold = int(rng.integers(2, 4))
    band_db = np.repeat(band_db[::hold], hold, axis=0)[: X.shape[0]]
    env = np.sqrt(np.clip((10 ** (band_db / 10)) @ fb, 1e-12, None) / np.maximum(fb.sum(axis=0), 1e-3))
    f0 = _smooth_track(utt.f0, 0.02, sr)
    voiced = (utt.voicing > 0.5).astype(float)
    pulses = _flat(stft(_pulse_train(f0, voiced, sr), n_fft))
    noise = _flat(stft(rng.standard_normal(n), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    cutoff = rng.uniform(1500.0, 4000.0) if cutoff is None else cutoff
    periodicity = rng.uniform(0.6, 0.9) if periodicity is None else periodicity
    v_frames = frame_values(voiced, X.shape[0], hop)[:, None]
    periodic = v_frames * (freqs[None, :] < cutoff) * periodicity
    excitation = periodic * pulses + (1.0 - periodic) * noise
    flatten = _strength(rng, "A02") if flatten is None else flatten
    return istft(_flatten_phase(excitation * env, flatten), n_fft, n)


def attack_harmonic(
    rng: np.random.Generator,
    utt: Utterance,
    sr: int,
    *,
    reset: float | None = None,
    coherence: float | None = None,
    frame_seconds: float = 0.016,
) -> np.ndarray:
    """A03: frame-by-frame harmonic (sinusoidal) synthesis, overlap-added: harmonics of a smoothed
    F0, amplitudes read from the STFT magnitude, fixed per-harmonic phases, no noise component
    (unvoiced sounds come out as buzz). ``reset`` is how much of the running pitch phase each
    frame forgets (1: every frame restarts its pulses at the frame centre — phase mismatch
    between overlapping frames, the classic artefact of OLA sinusoidal synthesis)."""
    n_fft = n_fft_for(sr, frame_seconds)
    hop = n_fft // 4
    n = len(utt.wave)
    X = np.abs(stft(utt.wave, n_fft))
    n_frames = X.shape[0]
    f0 = _smooth_track(utt.f0, 0.03, sr)
    f0_frames = frame_values(f0, n_frames, hop)
    cutoff = rng.uniform(0.5, 0.94) * sr / 2
    n_harm = min(int(cutoff / f0_frames.min()), 1023)
    k = np.arange(1, n_harm + 1)
    hf = f0_frames[:, None] * k[None, :]  # Hz
    bins = hf * n_fft / sr
    lo = np.clip(np.floor(bins).astype(int), 0, X.shape[1] - 2)
    frac = np.clip(bins - lo, 0, 1)
    rows = np.arange(n_frames)[:, None]
    amps = ((1 - frac) * X[rows, lo] + frac * X[rows, lo + 1]) * (hf < cutoff)
    coherence = rng.uniform(0.0, 1.0) if coherence is None else coherence  # 1: all cosine phase (peaky)
    reset = _strength(rng, "A03") if reset is None else reset
    phases = 2 * np.pi * (1 - coherence) * rng.random(n_harm)
    return _frame_harmonics(f0, amps, phases, reset, n_fft, n, sr)


def _frame_harmonics(
    f0: np.ndarray, amps: np.ndarray, phases: np.ndarray, reset: float, n_fft: int, length: int, sr: int
) -> np.ndarray:
    """Overlap-added frames, each a sum of harmonics of the frame's F0 with the given amplitudes
    (frames × harmonics) and phases. Frame j starts its pitch cycle at ``(1 - reset)`` times the
    running pitch phase at its centre: 0 keeps the frames coherent, 1 makes every frame's pulses
    sit on the frame grid whatever the pitch."""
    hop = n_fft // 4
    n_frames, n_harm = amps.shape
    table_len = max(256, 1 << int(np.ceil(np.log2(4 * n_harm + 4))))
    spectrum = np.zeros((n_frames, table_len // 2 + 1), dtype=complex)
    spectrum[:, 1 : n_harm + 1] = amps * np.exp(1j * phases)[None, :]
    tables = np.fft.irfft(spectrum, n=table_len, axis=1)
    running = np.cumsum(f0) / sr
    centre_phase = (1.0 - reset) * frame_values(running, n_frames, hop)
    f0_frames = frame_values(f0, n_frames, hop)
    tau = (np.arange(n_fft) - n_fft // 2) / sr  # frame j covers j*hop - n_fft/2 ... (as in stft)
    pos = (centre_phase[:, None] + f0_frames[:, None] * tau[None, :]) % 1.0 * table_len
    i0 = pos.astype(int) % table_len
    w = pos - np.floor(pos)
    rows = np.arange(n_frames)[:, None]
    frames = (1 - w) * tables[rows, i0] + w * tables[rows, (i0 + 1) % table_len]
    return _overlap_add(frames, n_fft, length)


def _overlap_add(frames: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    """Hann-windowed overlap-add of time-domain frames laid out as ``stft`` lays them out."""
    hop = n_fft // 4
    window = hann(n_fft)
    n_frames = frames.shape[0]
    blocks = np.zeros((n_frames + 3, hop))
    norm = np.zeros((n_frames + 3, hop))
    w = window.reshape(4, hop)
    framed = frames * window
    for j in range(4):
        blocks[j : j + n_frames] += framed[:, j * hop : (j + 1) * hop]
        norm[j : j + n_frames] += w[j]
    out = (blocks / np.maximum(norm, 1e-3)).reshape(-1)
    return out[n_fft // 2 : n_fft // 2 + length]


def _flatten_phase(spec: np.ndarray, amount: float) -> np.ndarray:
    """Pull every frame's phase towards zero by ``amount`` (1: zero-phase frames)."""
    return np.abs(spec) * _unit_phasor((1.0 - amount) * np.angle(spec))


def _unit_phasor(theta: np.ndarray) -> np.ndarray:
    out = np.empty(theta.shape, dtype=complex)
    out.real = np.cos(theta)
    out.imag = np.sin(theta)
    return out


def _levinson(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflection coefficients and prediction error, vectorised over frames (rows of r).

    Not scipy.linalg.solve_toeplitz: that gives the predictor coefficients, while LPC-10
    quantises the reflection coefficients, which this recursion yields on its way (each
    clipped inside |k| < 1 so that the quantised filter stays stable)."""
    a = np.zeros((r.shape[0], order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    ks = np.zeros((r.shape[0], order))
    for i in range(1, order + 1):
        acc = r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1 : 0 : -1], axis=1)
        k = np.clip(-acc / np.maximum(err, 1e-12), -0.999, 0.999)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = err * (1 - k**2)
        ks[:, i - 1] = k
    return ks, err


def _step_up(ks: np.ndarray) -> np.ndarray:
    order = ks.shape[1]
    a = np.zeros((ks.shape[0], order + 1))
    a[:, 0] = 1.0
    for i in range(1, order + 1):
        k = ks[:, i - 1 : i]
        a[:, 1:i] = a[:, 1:i] + k * a[:, i - 1 : 0 : -1]
        a[:, i] = k[:, 0]
    return a


def attack_lpc(
    rng: np.random.Generator, utt: Utterance, sr: int, *, dispersion: float | None = None, reset: float | None = None
) -> np.ndarray:
    """A04: LPC-10-like vocoder — order 10, reflection coefficients quantised in the arcsine
    domain, gain in 2 dB steps, frame-held; hard voiced/unvoiced switch between a dispersed
    pulse buzz (quarter-tone F0, partly reset to the frame grid by ``reset``) and hiss."""
    n_fft = n_fft_for(sr)
    hop = n_fft // 4
    n = len(utt.wave)
    X = stft(utt.wave, n_fft)
    n_frames = X.shape[0]
    order = 10 if sr <= 16000 else 16
    r = np.fft.irfft(np.abs(X) ** 2, n=n_fft, axis=1)[:, : order + 1]
    r[:, 0] *= 1.0001
    r *= np.exp(-0.5 * (2 * np.pi * 60.0 * np.arange(order + 1) / sr) ** 2)[None, :]  # lag window
    ks, err = _levinson(r, order)
    levels = 2 ** int(rng.integers(3, 5))
    ks = np.sin(np.round(np.arcsin(ks) / (np.pi / 2) * levels) / levels * (np.pi / 2)).clip(-0.995, 0.995)
    gain_db = np.round(10 * np.log10(np.maximum(err, 1e-12)) / 2.0) * 2.0
    hold = int(rng.integers(2, 4))
    ks = np.repeat(ks[::hold], hold, axis=0)[:n_frames]
    gain_db = np.repeat(gain_db[::hold], hold, axis=0)[:n_frames]
    a = _step_up(ks)
    A = np.fft.rfft(a, n=n_fft, axis=1)
    env = 10 ** (gain_db[:, None] / 20) / A  # minimum-phase all-pole synthesis filter
    f0 = 2.0 ** (np.round(np.log2(_smooth_track(utt.f0, 0.01, sr)) * 24) / 24)  # quarter-tone steps
    voiced = (utt.voicing > 0.5).astype(float)
    dispersion = rng.uniform(0.001, 0.004) if dispersion is None else dispersion
    chirp_len = max(2, int(dispersion * sr))  # LPC-10-style dispersed excitation pulse
    t = np.arange(chirp_len) / chirp_len
    chirp = np.sin(np.pi * t) * np.sin(2 * np.pi * (0.5 * t + rng.uniform(1.0, 4.0) * t**2))
    reset = _strength(rng, "A04") if reset is None else reset
    pulse_fft = n_fft_for(sr, 0.016)
    pulse_frames = stft(np.zeros(n), pulse_fft).shape[0]
    n_harm = min(int(0.47 * sr / f0.min()), 1023)
    flat = (
        np.arange(1, n_harm + 1)[None, :] * frame_values(f0, pulse_frames, pulse_fft // 4)[:, None] < 0.47 * sr
    ).astype(float)
    pulses = _frame_harmonics(f0, flat, np.zeros(n_harm), reset, pulse_fft, n, sr) * voiced
    buzz = _flat(stft(signal.fftconvolve(pulses, chirp)[:n], n_fft))
    hiss = _flat(stft(rng.standard_normal(n), n_fft))
    v = frame_values(voiced, n_frames, hop)[:, None]
    return istft((v * buzz + (1 - v) * hiss) * env, n_fft, n)


# Per-attack artefact strength (phase flattening / frame phase reset / Griffin-Lim initial
# phase): with probability P_STRONG near 1 (drawn from [0.97, 1]), otherwise uniform in [LO, HI].
# This is the difficulty knob of the corpus, tuned so that a linear model on a small
# random-weight wav2vec2's pooled embeddings lands at a moderate EER (tests/test_demo_corpus.py).
STRENGTH = {"A01": (1.0, 0.3, 0.9), "A02": (0.95, 0.3, 0.9), "A03": (0.95, 0.3, 0.9), "A04": (0.5, 0.3, 0.9)}


def _strength(rng: np.random.Generator, attack: str) -> float:
    p_strong, lo, hi = STRENGTH[attack]
    strong = rng.random() < p_strong
    value = rng.uniform(0.97, 1.0) if strong else rng.uniform(lo, hi)
    return float(value)


# An attack: (rng, bona fide utterance, sample rate) -> spoofed waveform.
AttackFunction = Callable[[np.random.Generator, Utterance, int], np.ndarray]

ATTACK_FUNCTIONS: dict[str, AttackFunction] = {
    "A01": attack_griffin_lim,
    "A02": attack_band_vocoder,
    "A03": attack_harmonic,
    "A04": attack_lpc,
}
