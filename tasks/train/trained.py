"""What the train stage hands on: the registered version of a detector.

A module of its own, importing nothing heavy, so the report stage can name the type (and
Prefect can validate a report flow's parameters) without loading any detector code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainedModel:
    """What training hands on: the registered version (``path`` = MODELS/NAME/vN) and what the
    report shows of it, read from its card; ``reused``: an unchanged earlier version."""

    name: str
    kind: str
    path: str
    version: int
    dev_metrics: dict[str, float] | None  # metrics on the dev splits; None without dev rows
    summary: str  # non-default hyper-parameters and calibration (detector_summary)
    train_attacks: list[str] | None  # attack ids of the training rows; None on cards from before
    reused: bool

    def as_dict(self) -> dict:
        """The record ``addgp train`` prints."""
        return asdict(self)
