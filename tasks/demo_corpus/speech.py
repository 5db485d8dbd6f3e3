"""Bona fide speech of the demo corpus: source-filter synthesis (a Rosenberg glottal source on a
smooth F0 contour, time-varying formant filtering, fricatives, plosives, pauses)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.ndimage import gaussian_filter1d

from tasks.demo_corpus.dsp import istft, n_fft_for, stft
from tasks.demo_corpus.plan import MAX_SECONDS, MIN_SECONDS, Speaker

# Adult-male formant targets F1..F4 (Hz) of a few vowels; F5 is fixed.
VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [270, 2290, 3010, 3700],  # i
        [300, 870, 2240, 3300],  # u
        [530, 1840, 2480, 3500],  # e
        [570, 840, 2410, 3400],  # o
        [660, 1720, 2410, 3450],  # ae
        [500, 1500, 2500, 3500],  # schwa
        [390, 1990, 2550, 3600],  # I
        [440, 1020, 2240, 3350],  # U
    ],
    dtype=float,
)
BANDWIDTHS = np.array([70.0, 100.0, 150.0, 220.0, 300.0])
F5 = 4500.0
# Fricative noise spectra: (centre Hz, relative bandwidth, level)
FRICATIVES = {
    "s": (6200.0, 0.35, 1.0),
    "sh": (3000.0, 0.45, 1.0),
    "f": (4500.0, 1.2, 0.35),
    "burst": (2500.0, 0.9, 0.9),
}
CONTROL_RATE = 200  # control tracks: one value per 5 ms


@dataclass
class Utterance:
    """A waveform plus the analysis an oracle would give a vocoder (smooth F0, voicing)."""

    wave: np.ndarray
    f0: np.ndarray  # per sample, Hz, smooth, defined everywhere
    voicing: np.ndarray  # per sample, 0..1


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-passed with a Gaussian of ``sigma`` samples."""
    z = gaussian_filter1d(rng.standard_normal(n + int(6 * sigma)), sigma, mode="wrap")[:n]
    return z / (z.std() + 1e-12)


@lru_cache(maxsize=8)
def _fricative_shapes(n_fft: int, sr: int) -> np.ndarray:
    """Magnitude response (kinds × bins) of each FRICATIVES noise: a log-Gaussian bump."""
    freqs = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / sr), 50.0)
    shapes = [np.exp(-0.5 * (np.log(freqs / min(c, 0.42 * sr)) / w) ** 2) for c, w, _ in FRICATIVES.values()]
    return np.array(shapes)


def synthesize_bonafide(rng: np.random.Generator, speaker: Speaker, sample_rate: int) -> Utterance:
    sr = sample_rate
    duration = rng.uniform(MIN_SECONDS, MAX_SECONDS)
    n = int(duration * sr)
    nc = int(np.ceil(duration * CONTROL_RATE)) + 1
    tc = np.arange(nc) / CONTROL_RATE

    # --- control tracks (5 ms) -------------------------------------------------------
    voice_amp = np.zeros(nc)  # glottal source amplitude
    voicing = np.zeros(nc)  # 1 voiced, 0 unvoiced (smoothed later)
    fric_amp = np.zeros(nc)
    aspir_amp = np.zeros(nc)  # /h/-like aspiration through the vocal tract
    fric_kind = np.zeros(nc, dtype=int)  # index into FRICATIVES
    formants = np.zeros((nc, 5))
    accents = np.zeros(nc)
    kinds = list(FRICATIVES)

    def idx(t: float) -> int:
        return int(np.clip(round(t * CONTROL_RATE), 0, nc - 1))

    lead = rng.uniform(0.08, 0.25)
    end = duration - rng.uniform(0.08, 0.25)
    vowel = VOWELS[rng.integers(len(VOWELS))]
    targets: list[tuple[float, np.ndarray]] = [(0.0, vowel)]
    t = lead
    while t < end - 0.12:
        syllable = rng.lognormal(np.log(1.0 / speaker.rate), 0.25)
        syllable = min(syllable, end - t)
        onset = rng.random()
        c_dur = 0.0
        if onset < 0.55 and syllable > 0.15:  # consonant onset
            c_dur = min(rng.uniform(0.05, 0.12), 0.45 * syllable)
            a, b = idx(t), idx(t + c_dur)
            kind = rng.random()
            if kind < 0.45:  # fricative
                k = int(rng.integers(3))
                fric_kind[a:b] = k
                fric_amp[a:b] = FRICATIVES[kinds[k]][2] * rng.uniform(0.15, 0.4)
                if rng.random() < 0.3:  # voiced fricative
                    voicing[a:b] = 1.0
                    voice_amp[a:b] = 0.25
            elif kind < 0.7:  # plosive: closure then burst + aspiration
                burst = idx(t + 0.7 * c_dur)
                fric_kind[burst:b] = kinds.index("burst")
                fric_amp[burst:b] = rng.uniform(0.2, 0.5)
                aspir_amp[burst:b] = rng.uniform(0.05, 0.15)
            elif kind < 0.9:  # nasal: voiced, low F1, weak
                voicing[a:b] = 1.0
                voice_amp[a:b] = rng.uniform(0.25, 0.4)
                targets.append((t + 0.5 * c_dur, np.array([260.0, 1100.0 + 700 * rng.random(), 2300.0, 3300.0])))
            else:  # /h/
                aspir_amp[a:b] = rng.uniform(0.1, 0.3)
        v0, v1 = t + c_dur, t + syllable
        a, b = idx(v0), idx(v1)
        voicing[a:b] = 1.0
        ramp = np.sin(np.linspace(0, np.pi, max(b - a, 1))) ** 0.6
        voice_amp[a:b] = np.maximum(voice_amp[a:b], rng.uniform(0.6, 1.0) * ramp)
        vowel = VOWELS[rng.integers(len(VOWELS))] * rng.uniform(0.94, 1.06, size=4)
        targets.append((v0 + 0.5 * (v1 - v0), vowel))
        if rng.random() < 0.35:  # pitch accent on this syllable
            centre = idx(v0 + 0.4 * (v1 - v0))
            accents += rng.uniform(0.05, 0.18) * np.exp(-0.5 * ((np.arange(nc) - centre) / (0.06 * CONTROL_RATE)) ** 2)
        t = v1
        if rng.random() < 0.12:  # pause between words
            t += rng.uniform(0.06, 0.2)
    targets.append((duration, targets[-1][1]))

    times = np.array([tt for tt, _ in targets])
    values = np.array([v for _, v in targets])
    for k in range(4):
        formants[:, k] = np.interp(tc, times, values[:, k])
    formants[:, 4] = F5
    formants = gaussian_filter1d(formants, 0.025 * CONTROL_RATE, axis=0, mode="nearest")
    formants *= speaker.vtl * (1.0 + 0.015 * _smooth_noise(rng, nc, 8.0))[:, None]  # microvariation
    bandwidths = BANDWIDTHS[None, :] * (1.0 + 0.15 * _smooth_noise(rng, nc, 10.0))[:, None]

    voicing = gaussian_filter1d(voicing, 1.5, mode="nearest")
    voice_amp = gaussian_filter1d(voice_amp, 2.0, mode="nearest") * (1.0 + 0.05 * _smooth_noise(rng, nc, 4.0))
    fric_amp = gaussian_filter1d(fric_amp, 1.5, mode="nearest")
    aspir_amp = gaussian_filter1d(aspir_amp, 1.5, mode="nearest")

    # F0: speaker mean, declination, accents, slow drift
    f0c = (
        speaker.f0
        * rng.uniform(0.92, 1.08)
        * np.exp(-rng.uniform(0.05, 0.2) * tc / duration + accents + 0.05 * _smooth_noise(rng, nc, 0.12 * CONTROL_RATE))
    )

    # --- per-sample tracks ---------------------------------------------------------------
    ts = np.arange(n) / sr
    f0 = np.interp(ts, tc, f0c)
    v_s = np.interp(ts, tc, voicing)
    amp_s = np.interp(ts, tc, voice_amp)

    # glottal source: Rosenberg flow derivative read out at a jittered phase
    phase0 = np.cumsum(f0) / sr
    n_periods = int(phase0[-1]) + 2
    jit = 1.0 + speaker.jitter * rng.standard_normal(n_periods)
    shim = 1.0 + speaker.shimmer * rng.standard_normal(n_periods)
    phase = np.cumsum(f0 * jit[phase0.astype(int)]) / sr
    u = phase - np.floor(phase)
    oq = speaker.open_quotient
    tp, tn = 0.62 * oq, 0.38 * oq
    source = np.where(
        u < tp,
        (np.pi / (2 * tp)) * np.sin(np.pi * u / tp),
        np.where(u < tp + tn, -(np.pi / (2 * tn)) * np.sin(np.pi * (u - tp) / (2 * tn)), 0.0),
    )
    source *= shim[np.minimum(phase.astype(int), n_periods - 1)] * (f0 / 150.0)
    if speaker.tilt > 0:
        source = signal.lfilter([1.0 - speaker.tilt], [1.0, -speaker.tilt], source)
    noise = rng.standard_normal(n)
    aspiration = noise * (
        speaker.breathiness * (1.0 + 0.6 * np.cos(2 * np.pi * u)) * amp_s * 4.0 + np.interp(ts, tc, aspir_amp)
    )
    glottal = source * amp_s * v_s + aspiration
    frication = rng.standard_normal(n) * np.interp(ts, tc, fric_amp)

    # --- time-varying filtering in the STFT domain ---------------------------------------
    n_fft = n_fft_for(sr)
    hop = n_fft // 4
    G = stft(glottal, n_fft)
    Fr = stft(frication, n_fft)
    n_frames = G.shape[0]
    frame_t = np.arange(n_frames) * hop / sr
    fmt = np.stack([np.interp(frame_t, tc, formants[:, k]) for k in range(5)], axis=1)
    bw = np.stack([np.interp(frame_t, tc, bandwidths[:, k]) for k in range(5)], axis=1)
    # cascade of five resonators (unity gain at DC) as one all-pole polynomial per frame
    poly = np.zeros((n_frames, 11))
    poly[:, 0] = 1.0
    gain = np.ones(n_frames)
    for k in range(5):
        r = np.exp(-np.pi * bw[:, k] / sr)
        c1, c2 = -2 * r * np.cos(2 * np.pi * np.minimum(fmt[:, k], 0.47 * sr) / sr), r**2
        nxt = poly.copy()
        nxt[:, 1:] += c1[:, None] * poly[:, :-1]
        nxt[:, 2:] += c2[:, None] * poly[:, :-2]
        poly = nxt
        gain *= 1 + c1 + c2
    H = gain[:, None] * np.fft.rfft([1.0, -0.9], n_fft)[None, :] / np.fft.rfft(poly, n=n_fft, axis=1)  # + lip radiation
    kind_frames = np.interp(frame_t, tc, fric_kind).round().astype(int)
    F = _fricative_shapes(n_fft, sr)[kind_frames]
    wave = istft(G * H + Fr * F, n_fft, n)
    wave = signal.lfilter([1, -1], [1, -0.995], wave)  # DC blocker
    wave /= np.sqrt(np.mean(wave**2)) + 1e-12
    return Utterance(wave=wave, f0=f0, voicing=v_s)


def perturbed_speaker(rng: np.random.Generator, speaker: Speaker) -> Speaker:
    """The target voice as a cloning system reproduces it: close, not identical, and steadier."""
    return replace(
        speaker,
        f0=speaker.f0 * rng.uniform(0.94, 1.06),
        vtl=speaker.vtl * rng.uniform(0.97, 1.03),
        jitter=speaker.jitter * rng.uniform(0.5, 1.0),
        shimmer=speaker.shimmer * rng.uniform(0.5, 1.0),
    )
