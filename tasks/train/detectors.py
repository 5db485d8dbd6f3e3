"""Detector kinds checked, built and loaded back from the registry.

The kinds by name are ``tasks/train/kinds.py`` (torch-free; ``kind`` is what pipeline configs
write and what the model card records as ``model_type``); ``params`` are the detector's
``__init__`` hyper-parameters. They are checked against the annotations of ``__init__`` and the
limits the kind declares (``param_limits``; ``addgp.options``) when a pipeline config loads, by
``make_detector`` and by ``addgp train --param``, so that ``hidden_dims: 32`` where a list is
expected or ``lr: 0`` is an error before any data is read.
"""

from __future__ import annotations

import json
import os
from functools import cache

from pydantic import BaseModel

from addgp.options import signature_model, validate_options
from storage.models import EmbeddingSetting, ModelRef, ModelRegistryError, load_model_state
from tasks.train.base import LLRDetector
from tasks.train.kinds import DETECTOR_KINDS, detector_class


@cache
def _params_model(cls: type[LLRDetector]) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters and ``cls.param_limits``; nothing else allowed."""
    return signature_model(cls.__init__, f"{cls.__name__}Params", cls.param_limits)


def check_params(kind: str, params: dict) -> dict:
    """``params`` validated against kind's ``__init__`` (names, types, declared limits); returns them
    converted (lists → tuples, …).

    Raises ValueError naming each wrong parameter, e.g. ``dkl_gp parameter 'hidden_dims':
    Input should be a valid tuple (got 32)``.
    """
    # mypy does not see a type[C] as Hashable, as functools.cache asks (python/mypy#11470).
    return validate_options(kind, "parameter", _params_model(detector_class(kind)), params)  # type: ignore[arg-type]


# Hyper-parameters that say how a fit was run, not which model it is: left out of summaries.
_EXECUTION_PARAMS = frozenset({"progress", "device"})


def detector_summary(kind: str | None, detector_params: dict | None) -> str:
    """How a registered model differs from its kind's defaults, for the reader of a report: the
    hyper-parameters set otherwise, then its fitted calibration, e.g. ``mode=exact ·
    hidden_dims=[32] · calibrated: regularised (scale 1.34, offset 0.24)``. From the card's
    ``detector_params``; "" when the card has none (another tool's model)."""
    if not detector_params:
        return ""
    hyper = detector_params.get("hyper_parameters") or {}
    defaults = detector_class(kind)().get_params() if kind in DETECTOR_KINDS else {}

    def text(value) -> str:  # tuples and lists alike, as the card's JSON holds them; strings bare
        return value if isinstance(value, str) else json.dumps(value, default=str)

    parts = [
        f"{name}={text(value)}"
        for name, value in sorted(hyper.items())
        if name not in _EXECUTION_PARAMS and (name not in defaults or text(defaults[name]) != text(value))
    ]
    calibration = (detector_params.get("fitted") or {}).get("calibration")
    if calibration:
        parts.append(
            f"calibrated: {calibration['method']} (scale {calibration['scale']:.3g}, offset {calibration['offset']:.3g})"
        )
    else:
        parts.append("uncalibrated")
    return " · ".join(parts)


def make_detector(kind: str, **params) -> LLRDetector:
    """A new, unfitted detector of ``kind`` with hyper-parameters ``params`` (checked by ``check_params``)."""
    return detector_class(kind)(**check_params(kind, params))


def load_detector(
    path_or_ref: str | os.PathLike | ModelRef,
    expect: EmbeddingSetting | None = None,
    device: str | None = None,
) -> tuple[LLRDetector, dict]:
    """Load a registered model as ``(detector, card)``, checking weights and (optionally) the embeddings it expects.

    ``path_or_ref`` is a version folder ``ROOT/NAME/vN``, a ``ModelRef``, or a model folder
    ``ROOT/NAME`` (its latest version). ``device`` overrides the torch device a GP was trained
    on (a model fitted on a GPU worker, scored on a CPU). Raises ``ModelRegistryError`` on any
    mismatch.
    """
    state = load_model_state(path_or_ref, expect)
    params = state.params
    if device is not None and "device" in params["hyper_parameters"]:
        params = {**params, "hyper_parameters": {**params["hyper_parameters"], "device": device}}
    model_type = state.card["model_type"]
    if model_type not in DETECTOR_KINDS:
        raise ModelRegistryError(
            f"{state.path}: model_type {model_type!r} is not a detector this version knows ({sorted(DETECTOR_KINDS)})"
        )
    try:
        detector = detector_class(model_type).from_state(state.arrays, params)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelRegistryError(f"{state.path}: weights do not fit a {model_type} model: {exc}") from exc
    return detector, state.card
