"""The detector kinds by name, and loading a detector back from the model registry.

``kind`` is what pipeline configs write (``train.detectors[].kind``) and what the model card
records as ``model_type``; ``params`` are the detector's ``__init__`` hyper-parameters.
"""

from __future__ import annotations

import os

from storage.models import ModelRef, ModelRegistryError, load_model_state
from tasks.train.dkl_gp import DKLGPDetector
from tasks.train.logreg import LogRegDetector

DETECTOR_CLASSES = {cls.kind: cls for cls in (LogRegDetector, DKLGPDetector)}


def make_detector(kind: str, **params):
    """A new, unfitted detector of ``kind`` ("logreg" or "dkl_gp") with hyper-parameters ``params``."""
    if kind not in DETECTOR_CLASSES:
        raise ValueError(f"unknown detector kind {kind!r}; choose one of {sorted(DETECTOR_CLASSES)}")
    cls = DETECTOR_CLASSES[kind]
    try:
        return cls(**params)
    except TypeError:
        known = sorted(cls().get_params())
        unknown = sorted(set(params) - set(known))
        raise ValueError(f"{kind}: unknown parameter(s) {unknown}; known: {known}") from None


def load_detector(
    path_or_ref: str | os.PathLike | ModelRef,
    expect_encoder: str | None = None,
    expect_layer: int | None = None,
    expect_pooling: str | None = None,
    device: str | None = None,
):
    """Load a registered model as ``(detector, card)``, checking weights and (optionally) the embedding it expects.

    ``path_or_ref`` is a version folder ``ROOT/NAME/vN``, a ``ModelRef``, or a model folder
    ``ROOT/NAME`` (its latest version). ``device`` overrides the torch device a GP was trained
    on (a model fitted on a GPU worker, scored on a CPU). Raises ``ModelRegistryError`` on any
    mismatch.
    """
    state = load_model_state(path_or_ref, expect_encoder, expect_layer, expect_pooling)
    params = state.params
    if device is not None and "device" in params["hyper_parameters"]:
        params = {**params, "hyper_parameters": {**params["hyper_parameters"], "device": device}}
    model_type = state.card["model_type"]
    if model_type not in DETECTOR_CLASSES:
        raise ModelRegistryError(
            f"{state.path}: model_type {model_type!r} is not a detector this version knows ({sorted(DETECTOR_CLASSES)})"
        )
    try:
        detector = DETECTOR_CLASSES[model_type].from_state(state.arrays, params)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelRegistryError(f"{state.path}: weights do not fit a {model_type} model: {exc}") from exc
    return detector, state.card
