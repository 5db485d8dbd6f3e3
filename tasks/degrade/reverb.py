"""Reverberation by synthetic room impulse responses (no RIR corpus can be downloaded here).

The impulse response is the usual statistical room model: a direct-path impulse, a few
sparse early reflections in the first ``early_ms``, then a Gaussian tail whose energy decays
by 60 dB in ``rt60_s`` seconds. The reverberant signal is scaled back to the dry signal's
power so that reverb changes the timbre and smearing, not the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from tasks.degrade.base import DegradeContext, Transform, power


def synthetic_rir(
    rt60_s: float, sample_rate: int, rng: np.random.Generator, early_ms: float = 50.0, reflections: int = 6
) -> np.ndarray:
    length = max(2, int(rt60_s * sample_rate))
    t = np.arange(length) / sample_rate
    decay = np.exp(-6.908 * t / rt60_s)  # ln(1000): amplitude falls 60 dB at rt60
    rir = rng.standard_normal(length) * decay * 0.1
    early = rng.integers(1, max(2, int(early_ms * sample_rate / 1000)), size=reflections)
    rir[early] += rng.uniform(-0.6, 0.6, size=reflections)
    rir[0] = 1.0
    return rir.astype(np.float32)


@dataclass(frozen=True)
class Reverb(Transform):
    rt60_s: float

    kind = "reverb"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        wet = fftconvolve(wave, synthetic_rir(self.rt60_s, sample_rate, rng))[: len(wave)]
        dry_power, wet_power = power(wave), power(wet)
        if wet_power == 0:
            return wave.copy()
        return (wet * np.sqrt(dry_power / wet_power)).astype(np.float32)
