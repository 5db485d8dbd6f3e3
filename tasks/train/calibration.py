"""Labels, the calibration loss (Cllr) and score calibration shared by every detector.

A detector's raw score is meant to be an LLR, but a model fitted on one corpus is rarely well
calibrated on another. An optional calibration maps the raw LLR ``s`` to ``scale * s + offset``,
fitted on a dev set by minimising Cllr (the class-balanced cross-entropy, whose minimiser at
equal priors is the true LLR): ``"affine"``, ``"temperature"`` (offset 0: the EER is unchanged)
or ``"regularised"`` (affine as a MAP estimate pulled to the identity, so a small dev set cannot
make it overfit and no dev set gives the identity). The methods, the prior and measurements:
docs/detectors.md, "Calibration".
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from addgp.contracts import is_bonafide

CALIBRATION_METHODS = ("affine", "temperature", "regularised")
CalibrationMethod = Literal["affine", "temperature", "regularised"]
# Prior precision of the regularised calibration on (scale - 1) and offset, in the units of
# the summed dev log-likelihood (nats): a dev row of a well-separated class adds about 0.1-0.25
# to the likelihood's curvature, so the prior weighs as much as roughly 20-40 such rows.
PRIOR_PRECISION = 4.0


def is_spoof_target(y) -> np.ndarray:
    """Boolean ``is_spoof`` from labels, the only two target forms a detector accepts.

    ``y`` is either label strings ``"bonafide"``/``"spoof"`` or booleans meaning *is spoof*.
    Integers are refused: some corpora code spoof as 1, others bona fide as 1, and guessing
    silently flips every score.
    """
    y = np.asarray(y)
    if y.dtype == bool:
        return y
    if y.dtype.kind in "iuf":
        raise ValueError(
            "integer/float labels are ambiguous (is 1 spoof or bona fide?); pass the label strings "
            "'bonafide'/'spoof' or a boolean array meaning is_spoof"
        )
    return ~is_bonafide(y)


def log_prior_odds(is_spoof: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """log(P(bonafide) / P(spoof)) of a training set, the term a posterior log-odds must lose to be an LLR."""
    w = np.ones(len(is_spoof)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w_bona, w_spoof = float(w[~is_spoof].sum()), float(w[is_spoof].sum())
    if w_bona <= 0 or w_spoof <= 0:
        raise ValueError(f"training data needs both classes; got weight {w_bona} bonafide and {w_spoof} spoof")
    return float(np.log(w_bona / w_spoof))


def class_balanced(is_spoof: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Row weights under which each class carries half the total weight, with mean 1.

    A model fitted with them sees equal class priors, so its posterior log-odds is already an
    LLR and needs no prior correction.
    """
    w = np.ones(len(is_spoof)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    log_prior_odds(is_spoof, w)  # raises unless both classes are present
    per_class = np.where(is_spoof, w[is_spoof].sum(), w[~is_spoof].sum())
    return w * len(w) / (2.0 * per_class)


@dataclass(frozen=True)
class Calibration:
    """An affine map of LLR scores; ``method`` records how it was fitted."""

    method: str
    scale: float
    offset: float

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return self.scale * scores + self.offset

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Calibration | None:
        return (
            None
            if data is None
            else cls(method=data["method"], scale=float(data["scale"]), offset=float(data["offset"]))
        )


def fit_calibration(scores, y, method: str = "affine") -> Calibration:
    """Fit a calibration of LLR ``scores`` to labels ``y`` by minimising Cllr (plus the prior, for ``"regularised"``)."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {list(CALIBRATION_METHODS)}")
    scores = np.asarray(scores, dtype=np.float64)
    is_spoof = is_spoof_target(y)
    if is_spoof.all() or not is_spoof.any():
        raise ValueError("calibration needs dev scores of both classes")
    # Bona fide targets are +1, spoof -1; each class is averaged separately (equal priors).
    sign = np.where(is_spoof, -1.0, 1.0)
    weight = np.where(is_spoof, 0.5 / is_spoof.sum(), 0.5 / (~is_spoof).sum())
    with_offset = method != "temperature"
    # The loss is a per-row average (weights sum to 1), so the prior enters divided by the rows.
    prior = PRIOR_PRECISION / len(scores) if method == "regularised" else 0.0
    centre = np.array([1.0, 0.0] if with_offset else [1.0])

    def loss_and_grad(theta):
        scale, offset = theta[0], (theta[1] if with_offset else 0.0)
        margin = sign * (scale * scores + offset)
        loss = float(np.sum(weight * np.logaddexp(0.0, -margin)))
        dmargin = -weight * sign * np.exp(-np.logaddexp(0.0, margin))  # d loss / d (scale*s+offset)
        grad = np.array([np.sum(dmargin * scores)] + ([np.sum(dmargin)] if with_offset else []))
        loss += 0.5 * prior * float(np.sum((theta - centre) ** 2))
        return loss, grad + prior * (theta - centre)

    theta0 = np.array([1.0, 0.0] if with_offset else [1.0])
    result = minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B")
    offset = float(result.x[1]) if with_offset else 0.0
    return Calibration(method=method, scale=float(result.x[0]), offset=offset)


def calibrate(detector, X, y, method: str = "affine"):
    """A copy of a fitted ``detector`` with a calibration fitted on (X, y), replacing any earlier one."""
    calibrated = copy.deepcopy(detector)
    calibrated.calibration_ = fit_calibration(detector.raw_llr(X), y, method)
    return calibrated
