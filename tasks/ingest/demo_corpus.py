"""A deterministic synthetic deepfake corpus for the demo pipeline and for tests.

``generate_demo_corpus(root)`` writes one dataset per *condition* (``demo_studio``,
``demo_phone``, ``demo_far``), each laid out exactly as ASVspoof 2019 LA ships::

    ROOT/demo_<condition>/
      ASVspoof2019_LA_{train,dev,eval}/flac/DEMO_<COND>_<SPLIT>_<NNNNN>.flac   (16-bit FLAC)
      ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt
      demo_corpus.json                                                       (stamp, written last)

so that ``tasks.ingest.asvspoof2019.ingest(ROOT/demo_<condition>)`` reads it unchanged.

What is in it (numpy/scipy/soxr only, deterministic from the seed):

* **bona fide** — source–filter speech-like synthesis: a Rosenberg glottal-flow-derivative
  source driven by a smooth F0 contour (declination, accents, drift, jitter, shimmer,
  speaker-dependent mean F0, open quotient and tilt), aspiration noise, time-varying formant
  filtering through a sequence of vowel targets with smooth transitions (vocal-tract length
  per speaker), syllable amplitude envelopes, fricative / plosive / nasal segments, pauses.
* **spoof** — a *different* bona-fide-like utterance of the target speaker (voice slightly
  off and steadier, as a cloned voice is) resynthesised by a frame-based method that leaves
  artefacts:

  ====  ==========================================================================  =========
  A01   Griffin–Lim from a mel-compressed, sharpened STFT magnitude, few iterations  all splits
  A02   coarse band-envelope (channel) vocoder, dB-quantised and held, pulse/noise   all splits
        excitation, frame phases flattened
  A03   OLA harmonic (sinusoidal) vocoder, no noise component, frame phase reset     all splits
  A04   LPC-10-like vocoder: order-10 quantised reflection coefficients, 2 dB gain,  eval only
        dispersed-pulse buzz / hiss switch
  ====  ==========================================================================  =========

  A04 never occurs in train/dev, so eval measures generalisation to an unseen attack. The
  artefact strength of each spoof (how close the frame phases come to zero / to the frame
  grid, the Griffin–Lim initial phase and iteration count) is drawn per utterance from
  ``STRENGTH``: mostly strong, sometimes mild. That table is the corpus' difficulty knob. It
  is tuned so that a logistic regression on mean-pooled embeddings of the small random-weight
  wav2vec2 ("tiny-random") lands at an EER of roughly 10–30 % within a condition, and does
  worse across conditions (see tests/test_demo_corpus.py). A random-weight encoder sees
  little beyond low-frequency balance and waveform/phase structure on a short time grid, so
  the artefacts are of that kind (frame-rate phase structure from overlap-add synthesis is a
  real vocoder artefact, here made rather strong).
* **conditions** — the channel every file of a dataset goes through (bona fide and spoof
  alike), which is what makes the datasets differ as real corpora do: ``studio`` (clean,
  normal level), ``phone`` (8 kHz, 300–3400 Hz, line noise, G.711 μ-law, back to the
  sample rate), ``far`` (synthetic room reverberation, low level, more and coloured noise).

Splits have disjoint speakers (``spk_NN``, numbered across splits); ~40 % of each split is
bona fide. Every utterance draws from its own random stream keyed by (seed, condition,
split, index), so a file never depends on which other files were generated.

Idempotent: the stamp ``demo_corpus.json`` (parameters, generator version, sha256 of every
file) is written atomically after everything else. A dataset whose stamp matches the
requested parameters and whose files still match their hashes is left as it is; otherwise
its generated folders are removed and it is written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal
from scipy.fft import next_fast_len
from scipy.ndimage import gaussian_filter1d

from addgp.progress import progress_bar
from storage.paths import atomic_write
from tasks.ingest.asvspoof2019 import PROTOCOL_DIR, PROTOCOLS

__all__ = [
    "ATTACKS",
    "CONDITIONS",
    "GENERATOR_VERSION",
    "STAMP_NAME",
    "dataset_name",
    "generate_demo_corpus",
    "plan_dataset",
    "render_utterance",
]

GENERATOR_VERSION = 1
STAMP_NAME = "demo_corpus.json"
CONDITIONS = ("studio", "phone", "far")
SPLITS = ("train", "dev", "eval")
ATTACKS = {
    "A01": "Griffin-Lim from a mel-compressed, sharpened STFT magnitude (zero initial phase, few iterations)",
    "A02": "coarse band-envelope vocoder, pulse/noise excitation, flattened frame phases",
    "A03": "overlap-add harmonic vocoder without noise component, frame phase reset",
    "A04": "LPC-10-like vocoder, quantised reflection coefficients, buzz/hiss excitation (eval only, unseen)",
}
SPLIT_ATTACKS = {"train": ("A01", "A02", "A03"), "dev": ("A01", "A02", "A03"), "eval": ("A01", "A02", "A03", "A04")}
BONAFIDE_FRACTION = 0.4
MIN_SECONDS, MAX_SECONDS = 1.5, 3.5
DEFAULT_UTTERANCES = {"train": 60, "dev": 30, "eval": 60}


def dataset_name(condition: str) -> str:
    return f"demo_{condition}"


# ---------------------------------------------------------------------------------------
# Plan: who says what, with which label, in which file
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    """A synthetic voice; drawn from (seed, speaker number) only, so it is the same in every condition."""

    index: int
    female: bool
    f0: float  # mean F0, Hz
    vtl: float  # formant scale (1 / relative vocal-tract length)
    open_quotient: float
    tilt: float  # extra source spectral tilt, one-pole coefficient
    breathiness: float
    jitter: float
    shimmer: float
    rate: float  # syllables per second

    @property
    def id(self) -> str:
        return f"spk_{self.index:02d}"


def make_speaker(seed: int, index: int) -> Speaker:
    rng = np.random.default_rng([seed, 0x5BEA4E, index])
    female = bool(rng.random() < 0.5)
    return Speaker(
        index=index,
        female=female,
        f0=float(rng.uniform(175, 245) if female else rng.uniform(90, 140)),
        vtl=float(rng.uniform(1.08, 1.2) if female else rng.uniform(0.9, 1.02)),
        open_quotient=float(rng.uniform(0.5, 0.75)),
        tilt=float(rng.uniform(0.0, 0.6)),
        breathiness=float(rng.uniform(0.01, 0.06) * (1.6 if female else 1.0)),
        jitter=float(rng.uniform(0.004, 0.014)),
        shimmer=float(rng.uniform(0.03, 0.09)),
        rate=float(rng.uniform(3.6, 5.4)),
    )


@dataclass(frozen=True)
class UttPlan:
    utt_id: str
    condition: str
    split: str
    index: int
    speaker: Speaker
    label: str  # bonafide | spoof
    attack: str | None

    def protocol_line(self) -> str:
        return f"{self.speaker.id} {self.utt_id} - {self.attack or '-'} {self.label}"


def _speaker_counts(utterances_per_split: Mapping[str, int]) -> dict[str, int]:
    """About one speaker per 4 utterances, at least 2 (when there are 2 utterances), at most 20."""
    return {split: min(int(n), max(2, min(20, int(round(n / 4))))) for split, n in utterances_per_split.items()}


def plan_dataset(condition: str, seed: int, utterances_per_split: Mapping[str, int]) -> list[UttPlan]:
    """Every file of one dataset: id, split, speaker, label, attack — deterministic from the seed."""
    counts = _speaker_counts(utterances_per_split)
    plans: list[UttPlan] = []
    first_speaker = 0
    for split in SPLITS:
        if split not in utterances_per_split:
            continue
        n = int(utterances_per_split[split])
        speakers = [make_speaker(seed, first_speaker + i) for i in range(counts[split])]
        first_speaker += counts[split]
        n_bona = n if n < 2 else min(n - 1, max(1, int(round(BONAFIDE_FRACTION * n))))
        attacks = SPLIT_ATTACKS[split]
        labels: list[tuple[str, str | None]] = [("bonafide", None)] * n_bona + [
            ("spoof", attacks[i % len(attacks)]) for i in range(n - n_bona)
        ]
        order = np.random.default_rng([seed, _code(condition), _code(split), 0x0DE7]).permutation(n)
        for index in range(n):
            label, attack = labels[order[index]]
            plans.append(
                UttPlan(
                    utt_id=f"DEMO_{condition.upper()}_{split.upper()}_{index:05d}",
                    condition=condition,
                    split=split,
                    index=index,
                    speaker=speakers[index % len(speakers)],
                    label=label,
                    attack=attack,
                )
            )
    return plans


def _code(text: str) -> int:
    return zlib.crc32(text.encode())


# ---------------------------------------------------------------------------------------
# STFT helpers (Hann, hop N/4, frame j centred at sample j*hop)
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return signal.get_window("hann", n_fft)


def stft(x: np.ndarray, n_fft: int) -> np.ndarray:
    hop = n_fft // 4
    pad = n_fft // 2
    n_frames = int(np.ceil(len(x) / hop)) + 1
    padded = np.zeros((n_frames - 1) * hop + n_fft)
    padded[pad : pad + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    return np.fft.rfft(frames * _hann(n_fft), axis=1)


def istft(spec: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    hop = n_fft // 4
    window = _hann(n_fft)
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


def _frame_values(track: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """A per-sample track sampled at the STFT frame centres."""
    idx = np.minimum(np.arange(n_frames) * hop, len(track) - 1)
    return track[idx]


def _n_fft(sample_rate: int, seconds: float = 0.032) -> int:
    return int(2 ** np.round(np.log2(seconds * sample_rate)))


@lru_cache(maxsize=64)
def _mel_filterbank(
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
def _mel_inverse(n_bands: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Bins × bands map from band power back to a power spectrum: each bin gets the
    filter-weighted average power density of the bands covering it (0 outside fmin..fmax)."""
    fb = _mel_filterbank(n_bands, n_fft, sample_rate, fmin, fmax)
    return (fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-9)).T


# ---------------------------------------------------------------------------------------
# Bona fide: source–filter synthesis
# ---------------------------------------------------------------------------------------

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
    n_fft = _n_fft(sr)
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


def _perturbed_speaker(rng: np.random.Generator, speaker: Speaker) -> Speaker:
    """The target voice as a cloning system reproduces it: close, not identical, and steadier."""
    return replace(
        speaker,
        f0=speaker.f0 * rng.uniform(0.94, 1.06),
        vtl=speaker.vtl * rng.uniform(0.97, 1.03),
        jitter=speaker.jitter * rng.uniform(0.5, 1.0),
        shimmer=speaker.shimmer * rng.uniform(0.5, 1.0),
    )


# ---------------------------------------------------------------------------------------
# Attacks: resynthesis methods that leave artefacts
# ---------------------------------------------------------------------------------------


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
    n_fft = _n_fft(sr, frame_seconds)
    X = stft(utt.wave, n_fft)
    mag = np.abs(X)
    n_mels = int(rng.choice([40, 64, 80]))
    fmin = float(rng.choice([55.0, 80.0, 125.0]))  # common TTS mel settings
    fmax = float(rng.choice([0.45, 0.475, 0.5])) * sr
    fb = _mel_filterbank(n_mels, n_fft, sr, fmin, fmax)
    mel_power = (mag**2) @ fb.T
    mag = np.sqrt(mel_power @ _mel_inverse(n_mels, n_fft, sr, fmin, fmax).T)
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
    n_fft = _n_fft(sr, frame_seconds)
    hop = n_fft // 4
    n = len(utt.wave)
    X = stft(utt.wave, n_fft)
    n_bands = int(rng.integers(14, 26))
    fb = _mel_filterbank(n_bands, n_fft, sr)
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
    v_frames = _frame_values(voiced, X.shape[0], hop)[:, None]
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
    n_fft = _n_fft(sr, frame_seconds)
    hop = n_fft // 4
    n = len(utt.wave)
    X = np.abs(stft(utt.wave, n_fft))
    n_frames = X.shape[0]
    f0 = _smooth_track(utt.f0, 0.03, sr)
    f0_frames = _frame_values(f0, n_frames, hop)
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
    centre_phase = (1.0 - reset) * _frame_values(running, n_frames, hop)
    f0_frames = _frame_values(f0, n_frames, hop)
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
    window = _hann(n_fft)
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
    """Reflection coefficients and prediction error, vectorised over frames (rows of r)."""
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
    n_fft = _n_fft(sr)
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
    pulse_fft = _n_fft(sr, 0.016)
    pulse_frames = stft(np.zeros(n), pulse_fft).shape[0]
    n_harm = min(int(0.47 * sr / f0.min()), 1023)
    flat = (
        np.arange(1, n_harm + 1)[None, :] * _frame_values(f0, pulse_frames, pulse_fft // 4)[:, None] < 0.47 * sr
    ).astype(float)
    pulses = _frame_harmonics(f0, flat, np.zeros(n_harm), reset, pulse_fft, n, sr) * voiced
    buzz = _flat(stft(signal.fftconvolve(pulses, chirp)[:n], n_fft))
    hiss = _flat(stft(rng.standard_normal(n), n_fft))
    v = _frame_values(voiced, n_frames, hop)[:, None]
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


# ---------------------------------------------------------------------------------------
# Conditions: the channel every file of a dataset passes through
# ---------------------------------------------------------------------------------------


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
        raise ValueError(_unknown_conditions_message([condition]))
    peak = np.max(np.abs(x))
    return x * (0.95 / peak) if peak > 0.95 else x


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def render_utterance(plan: UttPlan, seed: int, sample_rate: int = 16000) -> np.ndarray:
    """The int16 samples of one planned file: a function of the plan and the seed only.

    BLAS runs single-threaded here: the matrix products are small (threads would only fight
    over the cores), and a fixed thread count keeps the floating-point results, hence the
    file bytes, the same whatever the machine's core count.
    """
    with _single_threaded_blas():
        return _render(plan, seed, sample_rate)


def _render(plan: UttPlan, seed: int, sample_rate: int) -> np.ndarray:
    key = [seed, _code(plan.condition), _code(plan.split), plan.index]
    content_rng, attack_rng, channel_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(key).spawn(3))
    if plan.label == "bonafide":
        wave = synthesize_bonafide(content_rng, plan.speaker, sample_rate).wave
    else:
        voice = _perturbed_speaker(attack_rng, plan.speaker)
        source = synthesize_bonafide(content_rng, voice, sample_rate)
        if plan.attack is None:
            raise ValueError(f"{plan.utt_id}: a spoofed utterance needs an attack")
        wave = ATTACK_FUNCTIONS[plan.attack](attack_rng, source, sample_rate)
    wave = apply_condition(channel_rng, wave, plan.condition, sample_rate)
    return np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------
# Writing, stamp, idempotence
# ---------------------------------------------------------------------------------------


def _unknown_conditions_message(unknown: Sequence[str]) -> str:
    return f"unknown demo corpus condition(s) {sorted(set(unknown))}; known conditions: {', '.join(CONDITIONS)}"


def _validate(
    conditions: Sequence[str], utterances_per_split: Mapping[str, int], sample_rate: int
) -> tuple[list[str], dict[str, int]]:
    if isinstance(conditions, str):
        conditions = [conditions]
    conditions = list(conditions)
    if not conditions:
        raise ValueError(f"no conditions given; known conditions: {', '.join(CONDITIONS)}")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(_unknown_conditions_message(unknown))
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"conditions repeat a name: {conditions}")
    bad_splits = [s for s in utterances_per_split if s not in SPLITS]
    if bad_splits:
        raise ValueError(
            f"unknown split(s) {bad_splits} in utterances_per_split; ASVspoof 2019 LA has {', '.join(SPLITS)}"
        )
    counts: dict[str, int] = {}
    for split in SPLITS:
        if split in utterances_per_split:
            value = utterances_per_split[split]
            if not _is_int(value) or value < 1:
                raise ValueError(f"utterances_per_split[{split!r}] must be a positive integer, got {value!r}")
            counts[split] = int(value)
    if not counts:
        raise ValueError("utterances_per_split is empty: nothing to generate")
    if not _is_int(sample_rate) or not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be an integer between 8000 and 96000 Hz, got {sample_rate!r}")
    return conditions, counts


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _stamp_params(condition: str, seed: int, counts: Mapping[str, int], sample_rate: int) -> dict:
    return {
        "generator": "tasks.ingest.demo_corpus",
        "version": GENERATOR_VERSION,
        "condition": condition,
        "seed": int(seed),
        "utterances_per_split": dict(counts),
        "sample_rate": int(sample_rate),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_complete(root: Path, params: dict) -> bool:
    """True when ROOT holds a stamp for exactly these parameters and every file matches its hash."""
    try:
        stamp = json.loads((root / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("params") != params or not isinstance(stamp.get("files"), dict):
        return False
    try:
        return all(_sha256(root / rel) == digest for rel, digest in stamp["files"].items())
    except OSError:
        return False


def _generated_paths(root: Path) -> list[Path]:
    return [root / STAMP_NAME, root / PROTOCOL_DIR] + [root / f"ASVspoof2019_LA_{split}" for split in SPLITS]


def _clean(root: Path) -> None:
    """Remove what a previous run generated (and nothing else) — the stamp first."""
    for path in _generated_paths(root):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def generate_demo_corpus(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    conditions: Sequence[str] = CONDITIONS,
    utterances_per_split: Mapping[str, int] | None = None,
    sample_rate: int = 16000,
    progress: bool = True,
) -> dict[str, Path]:
    """Write (or reuse) one ASVspoof-2019-LA-shaped dataset per condition under ROOT.

    Returns ``{"demo_<condition>": ROOT/demo_<condition>}`` in the order of ``conditions``.
    Raises ValueError for an unknown condition (the message lists the known ones) or bad sizes.
    """
    conditions, counts = _validate(
        conditions, DEFAULT_UTTERANCES if utterances_per_split is None else utterances_per_split, sample_rate
    )
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed, sample_rate = int(seed), int(sample_rate)
    root = Path(root)
    out: dict[str, Path] = {}
    todo: list[tuple[Path, dict, list[UttPlan]]] = []
    for condition in conditions:
        name = dataset_name(condition)
        ds_root = root / name
        out[name] = ds_root
        params = _stamp_params(condition, seed, counts, sample_rate)
        if _is_complete(ds_root, params):
            continue
        todo.append((ds_root, params, plan_dataset(condition, seed, counts)))

    total = sum(len(plans) for _, _, plans in todo)
    with progress_bar(
        total=total, desc="demo corpus", unit="file", disable=not progress or total == 0, leave=False
    ) as bar:
        for ds_root, params, plans in todo:
            ds_root.mkdir(parents=True, exist_ok=True)
            _clean(ds_root)
            (ds_root / PROTOCOL_DIR).mkdir()
            for split in counts:
                (ds_root / f"ASVspoof2019_LA_{split}" / "flac").mkdir(parents=True)
            files: dict[str, str] = {}
            for plan in plans:
                rel = f"ASVspoof2019_LA_{plan.split}/flac/{plan.utt_id}.flac"
                sf.write(
                    ds_root / rel,
                    render_utterance(plan, seed, sample_rate),
                    sample_rate,
                    format="FLAC",
                    subtype="PCM_16",
                )
                files[rel] = _sha256(ds_root / rel)
                bar.update(1)
            for split in counts:
                rel = f"{PROTOCOL_DIR}/{PROTOCOLS[split]}"
                lines = [p.protocol_line() for p in plans if p.split == split]
                (ds_root / rel).write_text("\n".join(lines) + "\n")
                files[rel] = _sha256(ds_root / rel)
            stamp = {
                "params": params,
                "attacks": {k: ATTACKS[k] for k in sorted({p.attack for p in plans if p.attack})},
                "files": files,
            }
            with atomic_write(ds_root / STAMP_NAME, "w") as handle:
                handle.write(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return out
