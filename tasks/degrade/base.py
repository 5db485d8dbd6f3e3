"""What every transform shares: the interface, the per-file random stream, the errors.

A transform is a frozen dataclass whose fields are its parameters (they go into the
derived manifest and the cache key) and whose ``apply`` maps a mono float32 waveform at
``sample_rate`` to one of the same length. All randomness comes from the ``rng`` it is
given, so the same seed and the same source audio always give the same samples.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DegradeError(ValueError):
    """A file that could not be degraded (or whose degraded copy does not decode); the message is the reject reason."""


class CodecUnavailable(RuntimeError):
    """The codec library on this machine lacks an encoder or decoder a condition needs."""


@dataclass
class DegradeContext:
    """What a transform may need beyond the waveform: other audio to mix in.

    ``babble`` holds decoded utterances of the same corpus (the babble pool),
    ``noise_files`` the files of the user's noise folder (``degrade.noise_dir``).
    ``digest`` identifies both, so a cached copy made with another pool is never reused.
    """

    babble: list[np.ndarray] = field(default_factory=list)
    noise_files: list[Path] = field(default_factory=list)
    digest: str = ""
    babble_sha256: list[str] = field(default_factory=list)  # sha256 of each babble utterance, same order

    def excluding(self, sha256: str) -> DegradeContext:
        """The context for one file: an utterance never babbles over itself."""
        if sha256 not in self.babble_sha256:
            return self
        keep = [i for i, sha in enumerate(self.babble_sha256) if sha != sha256]
        return DegradeContext(
            babble=[self.babble[i] for i in keep],
            noise_files=self.noise_files,
            digest=self.digest,
            babble_sha256=[self.babble_sha256[i] for i in keep],
        )


class Transform:
    """Base of every transform; subclasses are frozen dataclasses with a ``kind`` name."""

    kind: str = ""
    # Whether the output depends on DegradeContext (babble pool, noise folder): then the
    # context's digest is part of the cache key.
    uses_context: bool = False

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict:
        return {"kind": self.kind, **vars(self)}  # subclasses are frozen dataclasses: their fields

    def check_available(self) -> None:
        """Raise CodecUnavailable when this machine cannot run the transform (codecs override it)."""


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad to ``length`` samples: every condition preserves the duration."""
    if len(wave) >= length:
        return np.ascontiguousarray(wave[:length], dtype=np.float32)
    return np.concatenate([wave, np.zeros(length - len(wave), dtype=np.float32)]).astype(np.float32, copy=False)


def power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64)))


def canonical(params: list[dict]) -> str:
    """A stable text form of a chain's parameters (sorted keys) for keys and manifests."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def stream(seed: int, condition: str, source_sha256: str) -> np.random.SeedSequence:
    """The random stream of one (seed, condition, source audio): independent of file order and of other files."""
    digest = hashlib.sha256(f"{seed}\0{condition}\0{source_sha256}".encode()).digest()
    return np.random.SeedSequence(int.from_bytes(digest[:16], "little"))
