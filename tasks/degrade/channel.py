"""Channel effects: narrowband resampling, band-limiting, packet loss, clipping, gain.

soxr does the resampling (the same library the decoder uses); scipy's zero-phase
Butterworth filters do the band-limiting, so no condition shifts the signal in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
from scipy.signal import butter, sosfiltfilt

from tasks.degrade.base import DegradeContext, Transform, fit_length


@dataclass(frozen=True)
class Resample(Transform):
    """Down to ``rate`` Hz and back: everything above rate/2 is gone, as on an 8 kHz line."""

    rate: int

    kind = "resample"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        narrow = soxr.resample(wave, sample_rate, self.rate, quality="HQ")
        return fit_length(soxr.resample(narrow, self.rate, sample_rate, quality="HQ").astype(np.float32), len(wave))


@dataclass(frozen=True)
class BandLimit(Transform):
    """Band-pass ``low_hz``–``high_hz`` (a 0 low edge is a low-pass), zero phase, ``order`` per side."""

    low_hz: float
    high_hz: float
    order: int = 8

    kind = "bandlimit"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        nyquist = sample_rate / 2
        high = min(self.high_hz, 0.99 * nyquist)
        if self.low_hz > 0:
            sos = butter(self.order, [self.low_hz, high], btype="bandpass", fs=sample_rate, output="sos")
        else:
            sos = butter(self.order, high, btype="lowpass", fs=sample_rate, output="sos")
        return sosfiltfilt(sos, wave).astype(np.float32)


@dataclass(frozen=True)
class PacketLoss(Transform):
    """Drop ``packet_ms`` packets with probability ``loss_rate`` (silence in their place, no concealment).

    Losses come in bursts as on real networks: a two-state (Gilbert) chain whose mean burst is
    ``mean_burst`` packets and whose long-run loss rate is ``loss_rate``.
    """

    loss_rate: float
    packet_ms: float = 20.0
    mean_burst: float = 2.0

    kind = "packet_loss"

    def lost_packets(self, n_packets: int, rng: np.random.Generator) -> np.ndarray:
        recover = 1.0 / self.mean_burst  # P(lost → received)
        lose = recover * self.loss_rate / (1.0 - self.loss_rate)  # stationary loss share = loss_rate
        draws = rng.random(n_packets)
        lost = np.zeros(n_packets, dtype=bool)
        state = draws[0] < self.loss_rate
        for i in range(n_packets):
            if i:
                state = draws[i] >= recover if state else draws[i] < lose
            lost[i] = state
        return lost

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        size = max(1, round(self.packet_ms * sample_rate / 1000))
        n_packets = -(-len(wave) // size)
        out = wave.copy()
        for index in np.flatnonzero(self.lost_packets(n_packets, rng)):
            out[index * size : (index + 1) * size] = 0.0
        return out


@dataclass(frozen=True)
class Clipping(Transform):
    """Hard-clip so that ``fraction`` of the samples hit the rails (an overdriven input stage)."""

    fraction: float

    kind = "clipping"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        level = float(np.quantile(np.abs(wave), 1.0 - self.fraction))
        if level <= 0:
            return wave.copy()
        return np.clip(wave, -level, level).astype(np.float32)


@dataclass(frozen=True)
class Gain(Transform):
    """Scale by ``gain_db`` and saturate at full scale (±1), as a recording device would."""

    gain_db: float

    kind = "gain"

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        return np.clip(wave * np.float32(10 ** (self.gain_db / 20)), -1.0, 1.0).astype(np.float32)
