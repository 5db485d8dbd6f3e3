"""The detector kinds by name, their parameters checked, and loading a detector back from the registry.

``kind`` is what pipeline configs write (``train.detectors[].kind``) and what the model card
records as ``model_type``; ``params`` are the detector's ``__init__`` hyper-parameters.

A new kind is one module with a subclass of ``tasks.train.base.LLRDetector`` and one line in
``DETECTOR_CLASSES``. Its parameters are checked against the type annotations of its
``__init__`` (``check_params``) when a pipeline config loads, by ``make_detector`` and by
``addgp train --param``, so that ``hidden_dims: 32`` where a list is expected is an error
before any data is read.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from functools import cache

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from storage.models import EmbeddingSetting, ModelRef, ModelRegistryError, load_model_state
from tasks.train.base import LLRDetector
from tasks.train.dkl_gp import DKLGPDetector
from tasks.train.dkl_gp_lastblock import LastBlockGPDetector
from tasks.train.logreg import LogRegDetector

DETECTOR_CLASSES: dict[str, type[LLRDetector]] = {
    "logreg": LogRegDetector,
    "dkl_gp": DKLGPDetector,
    "dkl_gp_lastblock": LastBlockGPDetector,
}


def detector_class(kind: str) -> type[LLRDetector]:
    if kind not in DETECTOR_CLASSES:
        raise ValueError(f"unknown detector kind {kind!r}; choose one of {sorted(DETECTOR_CLASSES)}")
    return DETECTOR_CLASSES[kind]


@cache
def _params_model(cls: type[LLRDetector]) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters: their annotations and defaults, nothing else allowed."""
    hints = typing.get_type_hints(cls.__init__)
    # {name: (annotation, default)}; Any, as create_model's **field_definitions share the
    # keyword namespace of its own __config__, __base__, … parameters.
    fields: dict[str, typing.Any] = {
        name: (hints.get(name, typing.Any), param.default)
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if name != "self"
    }
    return create_model(f"{cls.__name__}Params", __config__=ConfigDict(extra="forbid", strict=False), **fields)


def check_params(kind: str, params: dict) -> dict:
    """``params`` validated against kind's ``__init__`` (names and types); returns them converted (lists → tuples, …).

    Raises ValueError naming each wrong parameter, e.g. ``dkl_gp parameter 'hidden_dims':
    Input should be a valid tuple (got 32)``.
    """
    cls = detector_class(kind)
    try:
        # mypy does not see a type[C] as Hashable, as functools.cache asks (python/mypy#11470).
        params_model = _params_model(cls)  # type: ignore[arg-type]
        validated = params_model.model_validate(params)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            key = ".".join(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                known = ", ".join(n for n in params_model.model_fields)
                problems.append(f"{kind} has no parameter {key!r}; its parameters are: {known}")
            else:
                problems.append(f"{kind} parameter {key!r}: {item['msg']} (got {item['input']!r})")
        raise ValueError("; ".join(problems)) from None
    return {name: getattr(validated, name) for name in params}


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
    defaults = detector_class(kind)().get_params() if kind in DETECTOR_CLASSES else {}

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
    if model_type not in DETECTOR_CLASSES:
        raise ModelRegistryError(
            f"{state.path}: model_type {model_type!r} is not a detector this version knows ({sorted(DETECTOR_CLASSES)})"
        )
    try:
        detector = DETECTOR_CLASSES[model_type].from_state(state.arrays, params)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelRegistryError(f"{state.path}: weights do not fit a {model_type} model: {exc}") from exc
    return detector, state.card
