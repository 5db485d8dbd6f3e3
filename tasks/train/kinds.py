"""The detector kinds by name: the one registry line of each kind.

``kind`` is what pipeline configs write (``train.detectors[].kind``) and what a model card
records as ``model_type``. Each name maps to the ``module:Class`` that implements it, imported
only when a detector of that kind is checked, built or loaded: the CLI's help, a config's
kind check and the tests read the names without importing torch.

A new kind is one module with a subclass of ``tasks.train.base.LLRDetector`` (its parameter
limits declared on the class as ``param_limits``) plus one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.train.base import LLRDetector

DETECTOR_KINDS: dict[str, str] = {
    "logreg": "tasks.train.logreg:LogRegDetector",
    "dkl_gp": "tasks.train.dkl_gp:DKLGPDetector",
    "dkl_gp_lastblock": "tasks.train.dkl_gp_lastblock:LastBlockGPDetector",
}


def kind_names() -> list[str]:
    """The registered kind names, in registry order."""
    return list(DETECTOR_KINDS)


def unknown_kind_message(kind: str) -> str:
    return f"unknown detector kind {kind!r}; choose one of {sorted(DETECTOR_KINDS)}"


def detector_class(kind: str) -> type[LLRDetector]:
    """The class registered as ``kind`` (imported now); ValueError naming the known kinds for another name."""
    if kind not in DETECTOR_KINDS:
        raise ValueError(unknown_kind_message(kind))
    module, _, name = DETECTOR_KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if cls.kind != kind:  # the card's model_type must load back as the same kind
        raise ValueError(f"tasks/train/kinds.py: {kind!r} names {DETECTOR_KINDS[kind]}, whose kind is {cls.kind!r}")
    return cls
