"""Logistic regression on pooled SSL embeddings (the Pascu et al. 2024 recipe).

Standardise each embedding dimension with the training mean and standard deviation, then fit
an L2-regularised logistic regression for P(bonafide | x). The regularisation strength C is a
hyper-parameter; left at ``None`` it is chosen on the dev set passed to ``fit`` from the grid
``Cs`` (the last grid value, 1e6, is effectively unregularised), by the lowest dev Cllr.

Score. Logistic regression models the posterior log-odds
``logit P(bonafide | x) = log p(x | bonafide) - log p(x | spoof) + log(pi_bona / pi_spoof)``
where ``pi`` are the class proportions of the (weighted) training set. Subtracting that
log prior odds leaves the log-likelihood ratio, the score contract of docs/architecture.md:
``score_llr(x) = logit P(bonafide | x) - log(n_bona / n_spoof)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from pydantic import Field
from pydantic.fields import FieldInfo
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from addgp.metrics import cllr
from tasks.train.base import LLRDetector
from tasks.train.calibration import CalibrationMethod, is_spoof_target, log_prior_odds

DEFAULT_C = 1.0  # used when C is None and fit gets no dev set
_CHUNK_ROWS = (
    16_384  # rows standardised at a time (128 MiB of float64 at d=1,024), so X is never copied whole in float64
)


class LogRegDetector(LLRDetector):
    """Standardise → logistic regression; ``score_llr`` returns LLR scores.

    Parameters
    ----------
    C : inverse L2 strength on standardised features; ``None`` = choose on the dev set
        from ``Cs`` (or 1.0 without a dev set).
    Cs : the grid searched when C is None.
    max_iter : L-BFGS iterations per fit.
    calibration : ``None``, ``"affine"``, ``"temperature"`` or ``"regularised"`` (calibration.py); fitted on the dev set in ``fit``.
    """

    kind = "logreg"
    param_limits: ClassVar[Mapping[str, FieldInfo]] = {"C": Field(gt=0), "max_iter": Field(gt=0)}

    def __init__(
        self,
        C: float | None = None,
        Cs: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e6),
        max_iter: int = 1000,
        calibration: CalibrationMethod | None = None,
    ):
        self.C = C
        self.Cs = Cs
        self.max_iter = max_iter
        self.calibration = calibration

    def fit(self, X, y, X_dev=None, y_dev=None, sample_weight=None) -> LogRegDetector:
        """Fit on embeddings X (n, d) and labels y ("bonafide"/"spoof" strings or booleans is_spoof).

        ``sample_weight`` (n,) weights rows (few-shot adaptation uses it to up-weight the shots).
        """
        is_spoof = is_spoof_target(y)
        have_dev = X_dev is not None and y_dev is not None
        self._check_calibration_data(X_dev, y_dev)
        self.log_prior_odds_ = log_prior_odds(is_spoof, sample_weight)
        self.n_train_ = int(len(X))
        self.n_features_in_ = int(X.shape[1])
        scaler = StandardScaler()  # partial_fit in chunks: no float64 copy of a large X
        for start in range(0, len(X), _CHUNK_ROWS):
            scaler.partial_fit(X[start : start + _CHUNK_ROWS])
        self.input_mean_, self.input_scale_ = scaler.mean_, scaler.scale_
        Z = np.empty((len(X), len(self.input_mean_)), dtype=np.float32)  # the one in-memory copy
        for start in range(0, len(X), _CHUNK_ROWS):
            Z[start : start + _CHUNK_ROWS] = self._standardise(X[start : start + _CHUNK_ROWS])

        if self.C is not None or not have_dev:
            grid = [DEFAULT_C if self.C is None else float(self.C)]
        else:
            grid = sorted(float(c) for c in self.Cs)
        # Ascending C with warm starts: each fit starts from the more regularised solution.
        model = LogisticRegression(C=grid[0], max_iter=self.max_iter, warm_start=True)
        target = ~is_spoof  # class 1 = bona fide, so the model's logit is log P(bonafide)/P(spoof)
        dev_is_spoof = is_spoof_target(y_dev) if have_dev else None
        self.dev_cllr_by_C_ = {}
        best = None
        for C in grid:
            model.set_params(C=C).fit(Z, target, sample_weight=sample_weight)
            self.C_, self.coef_, self.intercept_ = C, model.coef_.ravel().astype(np.float64), float(model.intercept_[0])
            if len(grid) > 1:
                self.dev_cllr_by_C_[C] = cllr(self.raw_llr(X_dev), dev_is_spoof)
                if best is None or self.dev_cllr_by_C_[C] < self.dev_cllr_by_C_[best[0]]:
                    best = (self.C_, self.coef_, self.intercept_)
        if best is not None:
            self.C_, self.coef_, self.intercept_ = best

        self._fit_calibration(X_dev, y_dev)
        return self

    def _standardise(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.input_mean_) / self.input_scale_

    def raw_llr(self, X) -> np.ndarray:
        """LLR before calibration: the model's posterior log-odds minus the training log prior odds."""
        out = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), _CHUNK_ROWS):
            Z = self._standardise(X[start : start + _CHUNK_ROWS])
            out[start : start + len(Z)] = Z @ self.coef_ + self.intercept_ - self.log_prior_odds_
        return out

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {
            "input_mean": self.input_mean_,
            "input_scale": self.input_scale_,
            "coef": self.coef_,
            "intercept": np.array([self.intercept_]),
        }
        params = {
            "hyper_parameters": {**self.get_params(), "Cs": list(self.Cs)},
            "fitted": {
                "C": self.C_,
                "log_prior_odds": self.log_prior_odds_,
                "n_train": self.n_train_,
                "calibration": self._calibration_state(),
            },
        }
        return arrays, params

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict) -> LogRegDetector:
        hyper = dict(params["hyper_parameters"])
        hyper["Cs"] = tuple(hyper["Cs"])
        detector = cls(**hyper)
        fitted = params["fitted"]
        detector.input_mean_ = np.asarray(arrays["input_mean"], dtype=np.float64)
        detector.input_scale_ = np.asarray(arrays["input_scale"], dtype=np.float64)
        detector.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        detector.intercept_ = float(arrays["intercept"][0])
        detector.C_ = float(fitted["C"])
        detector.log_prior_odds_ = float(fitted["log_prior_odds"])
        detector.n_train_ = int(fitted["n_train"])
        detector.n_features_in_ = len(detector.input_mean_)
        detector._restore_fitted(fitted)
        return detector

    def _adapt(self, X_shots, is_spoof_shots, X_replay, is_spoof_replay, *, shot_weight, random_state, **options):
        """Refit (same C as the original fit, no calibration refit) on replay + shots, each shot weighted ``shot_weight``."""
        if options:
            raise TypeError(f"logreg adaptation takes no options {sorted(options)}")
        if X_replay is None:
            raise ValueError(
                "logistic regression adapts by refitting: pass replay rows of its training data with the shots"
            )
        X = np.concatenate([X_replay, X_shots])
        is_spoof = np.concatenate([is_spoof_replay, is_spoof_shots])
        weight = np.concatenate([np.ones(len(X_replay)), np.full(len(X_shots), shot_weight)])
        adapted = clone(self).set_params(C=self.C_, calibration=None)
        adapted.fit(X, is_spoof, sample_weight=weight)
        adapted.calibration_ = self.calibration_
        return adapted
