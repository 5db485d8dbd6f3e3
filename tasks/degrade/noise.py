"""Additive noise at a target SNR: coloured noise, babble from the corpus, a user's noise folder.

SNR is the ratio of the whole utterance's power to the added noise's power, in dB; the
noise is scaled so that this holds exactly (the test measures it). No noise corpus can be
downloaded here, so babble is made of other utterances of the same corpus (the context's
babble pool) and a folder of the user's own recordings is used when ``degrade.noise_dir``
names one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from scipy.fft import next_fast_len

from tasks.degrade.base import DegradeContext, DegradeError, Transform, power

# Spectral slope of the noise power per colour: power ∝ f^-exponent.
COLOUR_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def mix_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wave`` plus ``noise`` scaled to ``snr_db`` below it (silence stays silent: there is no SNR to keep)."""
    signal_power, noise_power = power(wave), power(noise)
    if signal_power == 0 or noise_power == 0:
        return wave.copy()
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (wave + scale * noise).astype(np.float32)


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise shaped in the frequency domain to the colour's 1/f^k power slope."""
    # An FFT of a length with a large prime factor is slow: shape a fast length, keep the first ``length``.
    size = next_fast_len(length, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size)
    freqs[0] = freqs[1] if size > 1 else 1.0  # no infinite DC gain for pink/brown
    spectrum *= freqs ** (-COLOUR_EXPONENTS[colour] / 2)
    noise = np.fft.irfft(spectrum, n=size)[:length]
    return (noise - noise.mean()).astype(np.float32)


def loop_to(audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``audio`` from a random start, repeated when it is shorter."""
    start = int(rng.integers(len(audio)))
    reps = -(-(start + length) // len(audio))
    return np.tile(audio, reps)[start : start + length]


@dataclass(frozen=True)
class ColouredNoise(Transform):
    colour: str
    snr_db: float

    kind = "noise"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        return mix_at_snr(wave, coloured_noise(len(wave), self.colour, rng), self.snr_db)


@dataclass(frozen=True)
class Babble(Transform):
    """``talkers`` other utterances of the corpus summed (each at equal power), mixed at ``snr_db``."""

    snr_db: float
    talkers: int = 4

    kind = "babble"
    uses_context = True

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        if not context.babble:
            raise DegradeError("babble needs other utterances of the corpus and the babble pool is empty")
        picks = rng.choice(len(context.babble), size=self.talkers, replace=len(context.babble) < self.talkers)
        noise = np.zeros(len(wave), dtype=np.float32)
        for index in picks:
            talker = loop_to(context.babble[index], len(wave), rng)
            noise += talker / np.sqrt(max(power(talker), 1e-12))
        return mix_at_snr(wave, noise, self.snr_db)


@dataclass(frozen=True)
class NoiseFolder(Transform):
    """A random file of the user's noise folder (``degrade.noise_dir``), from a random start, mixed at ``snr_db``."""

    snr_db: float

    kind = "noise_folder"
    uses_context = True

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        if not context.noise_files:
            raise DegradeError("this condition mixes in the noise folder, but degrade.noise_dir holds no audio files")
        path = context.noise_files[int(rng.integers(len(context.noise_files)))]
        try:
            noise, rate = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise DegradeError(f"noise file {path} failed to decode: {exc}") from None
        noise = noise.mean(axis=1)
        if rate != sample_rate:
            noise = soxr.resample(noise, rate, sample_rate).astype(np.float32)
        if not len(noise) or power(noise) == 0:
            raise DegradeError(f"noise file {path} is empty or silent")
        return mix_at_snr(wave, loop_to(noise, len(wave), rng), self.snr_db)
