"""The demo corpus' plan: which speaker says what, with which label and attack, in which file.

Deterministic from the seed; a file never depends on which other files are planned.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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


def unknown_conditions_message(unknown: Sequence[str]) -> str:
    return f"unknown demo corpus condition(s) {sorted(set(unknown))}; known conditions: {', '.join(CONDITIONS)}"


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
        order = np.random.default_rng([seed, name_code(condition), name_code(split), 0x0DE7]).permutation(n)
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


def name_code(text: str) -> int:
    return zlib.crc32(text.encode())
