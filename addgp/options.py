"""Options checked against the signature that takes them: one pydantic model per function.

A detector kind's hyper-parameters are its ``__init__``'s keyword parameters; the model built
here holds their annotations and defaults, plus the limits the kind declares
(``{"lr": Field(gt=0)}``), and forbids any other name. So ``hidden_dims: 32`` where a tuple is
expected, a negative learning rate or a misspelt name is an error naming the option before any
data is read, the same at config load, in ``make_detector`` and on the command line.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo


def signature_model(
    function: Callable, name: str, limits: Mapping[str, FieldInfo] | None = None, skip: tuple[str, ...] = ("self",)
) -> type[BaseModel]:
    """A pydantic model of ``function``'s parameters (less ``skip``): annotation, default and limit of each."""
    limits = limits or {}
    hints = typing.get_type_hints(function)
    parameters = {key: p for key, p in inspect.signature(function).parameters.items() if key not in skip}
    unknown = sorted(set(limits) - set(parameters))
    if unknown:  # a limit on a parameter that is not there would silently check nothing
        raise TypeError(f"{name}: limits on {unknown}, which are not parameters of {function.__qualname__}")
    # {name: (annotation, default)}; Any, as create_model's **field_definitions share the
    # keyword namespace of its own __config__, __base__, … parameters.
    fields: dict[str, Any] = {}
    for key, parameter in parameters.items():
        annotation = hints.get(key, Any)
        if key in limits:
            annotation = Annotated[annotation, limits[key]]
        fields[key] = (annotation, parameter.default)
    return create_model(name, __config__=ConfigDict(extra="forbid", strict=False), **fields)


def validate_options(owner: str, noun: str, model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` validated by ``model``; returns them converted (lists → tuples, …).

    Raises ValueError naming each wrong one, e.g. ``dkl_gp parameter 'hidden_dims': Input
    should be a valid tuple (got 32)`` or ``logreg has no parameter 'hidden'; its parameters
    are: C, Cs, …``.
    """
    try:
        validated = model.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            key = ".".join(str(part) for part in item["loc"])
            if item["type"] == "extra_forbidden":
                known = ", ".join(model.model_fields)
                problems.append(f"{owner} has no {noun} {key!r}; its {noun}s are: {known}")
            else:
                problems.append(f"{owner} {noun} {key!r}: {item['msg']} (got {item['input']!r})")
        raise ValueError("; ".join(problems)) from None
    return {key: getattr(validated, key) for key in values}
