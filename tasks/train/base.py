"""What every detector kind shares: the LLR contract, scikit-learn's sign rule, calibration, adaptation.

A detector kind subclasses ``LLRDetector`` (as scikit-learn's linear models subclass
``LinearClassifierMixin``) and supplies ``fit``, ``raw_llr``, ``to_state``/``from_state`` and, if
it can learn from a few new examples, ``_adapt``. Everything a caller needs to *use* a fitted
detector is defined once, here: ``score_llr`` (the calibrated LLR, higher = more bona fide),
``decision_function`` (scikit-learn's opposite sign, so its scorers compute what the project
means), ``predict_proba``, ``predict``, the calibration and ``adapt``. The contract and the sign
rule's reasoning: docs/detectors.md, "The contract (every detector kind)".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from addgp.contracts import BONAFIDE, LABELS, SPOOF, p_spoof_from_score
from tasks.train.calibration import Calibration, fit_calibration, is_spoof_target

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

# What a kind's fit and score_llr read (``LLRDetector.input``); tasks/train/data.py routes on it.
EMBEDDINGS_INPUT = "embeddings"  # pooled vectors from the embedding store, (n, dim)
FRAMES_INPUT = "frames"  # frame-level hidden states from the frame cache, (n, T, hidden), NaN-padded
CLASSES = np.array(sorted(LABELS))  # scikit-learn's order: ["bonafide", "spoof"]
DEFAULT_SHOT_WEIGHT = 5.0  # each shot counts as this many replay rows (see the kinds' _adapt)
# An update whose |LLR| on its reference rows exceeds this many times the largest |LLR| the model
# gave them before (or 1, whichever is more) is refused: learning a few rows sharpens scores by a
# few times at most, while a numerical failure gave scores of -50 to -300 from a model whose
# scores stayed within ±10 (issue 20).
SANE_LLR_FACTOR = 10.0


class UnsoundUpdateError(RuntimeError):
    """``adapt`` produced scores outside a sane range; the update is refused and nothing is saved."""


class LLRDetector(ClassifierMixin, BaseEstimator):
    """Base of every detector kind; see the module docstring for the contract."""

    kind: ClassVar[str]  # the name in pipeline configs (train.detectors[].kind) and on the model card
    input: ClassVar[str] = EMBEDDINGS_INPUT  # what X is
    # Limits of __init__'s parameters beyond their types, e.g. {"lr": Field(gt=0)}: checked with
    # the types wherever parameters are (config load, make_detector, addgp train --param).
    param_limits: ClassVar[Mapping[str, FieldInfo]] = {}
    crop_seconds: float | None  # a FRAMES_INPUT kind's hyper-parameter: the seconds its frames cover

    # ------------------------------------------------------------------ what a kind supplies

    def raw_llr(self, X) -> np.ndarray:
        """LLR before calibration."""
        raise NotImplementedError

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON-able params) that ``from_state`` turns back into the same detector."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict) -> LLRDetector:
        raise NotImplementedError

    def _adapt(
        self, X_shots, is_spoof_shots, X_replay, is_spoof_replay, *, shot_weight: float, random_state: int, **options
    ):
        raise NotImplementedError(f"detector kind {self.kind!r} does not support few-shot adaptation")

    # ------------------------------------------------------------------ prediction

    def score_llr(self, X) -> np.ndarray:
        """LLR scores (calibrated when a calibration was fitted); higher = more bona fide."""
        check_is_fitted(self, "classes_")
        scores = self.raw_llr(X)
        return scores if self.calibration_ is None else self.calibration_.apply(scores)

    def decision_function(self, X) -> np.ndarray:
        """scikit-learn's confidence for ``classes_[1]`` = "spoof": ``-score_llr(X)`` (see the module docstring)."""
        return -self.score_llr(X)

    def predict_proba(self, X) -> np.ndarray:
        """Columns in ``classes_`` order, [P(bonafide), P(spoof)], at equal priors (P(spoof) = sigmoid(-LLR))."""
        p_spoof = p_spoof_from_score(self.score_llr(X))
        return np.column_stack([1.0 - p_spoof, p_spoof])

    def predict(self, X) -> np.ndarray:
        """Labels by the Bayes decision at equal priors: bona fide where the LLR is >= 0."""
        return np.where(self.score_llr(X) >= 0, BONAFIDE, SPOOF)

    # ------------------------------------------------------------------ shared steps of fit / state

    def _check_calibration_data(self, X_dev, y_dev) -> None:
        # "regularised" without dev data is the identity (its prior's mode), so it needs none.
        if self.calibration not in (None, "regularised") and (X_dev is None or y_dev is None):
            raise ValueError(f"calibration={self.calibration!r} needs a dev set: fit(X, y, X_dev=..., y_dev=...)")

    def _fit_calibration(self, X_dev, y_dev) -> None:
        """Set ``calibration_`` (None without a ``calibration`` method) and ``classes_``: the last step of every ``fit``."""
        self.calibration_ = None
        if self.calibration is not None and X_dev is not None and y_dev is not None:
            self.calibration_ = fit_calibration(self.raw_llr(X_dev), y_dev, self.calibration)
        self.classes_ = CLASSES.copy()

    def _calibration_state(self) -> dict | None:
        return None if self.calibration_ is None else self.calibration_.to_dict()

    def _restore_fitted(self, fitted: dict) -> None:
        """The fitted attributes every kind's ``from_state`` restores the same way."""
        self.calibration_ = Calibration.from_dict(fitted["calibration"])
        self.classes_ = CLASSES.copy()

    # ------------------------------------------------------------------ adaptation

    def adapt(
        self,
        X_shots,
        y_shots,
        X_replay=None,
        y_replay=None,
        *,
        shot_weight: float = DEFAULT_SHOT_WEIGHT,
        random_state: int = 0,
        **options,
    ) -> LLRDetector:
        """A copy of this fitted detector adapted to K labelled shots; this one is never modified.

        Labels are "bonafide"/"spoof" strings or booleans is_spoof, as for ``fit``. Replay rows
        (a sample of the old training data) are used by kinds that refit on them; a kind that
        adapts by conditioning on its own posterior ignores them (its ``_adapt`` says so).
        ``options`` are the kind's own (e.g. ``update`` for a GP); an unknown one is an error.
        A fitted calibration is carried over unchanged.
        """
        X_shots = np.asarray(X_shots, dtype=np.float32)
        if X_shots.ndim != 2 or len(X_shots) == 0:
            raise ValueError("adapt needs at least one shot, as a (K, dim) matrix")
        is_spoof_shots = is_spoof_target(y_shots)
        if len(is_spoof_shots) != len(X_shots):
            raise ValueError(f"{len(X_shots)} shots but {len(is_spoof_shots)} labels")
        expected = getattr(self, "n_features_in_", X_shots.shape[1])
        if X_shots.shape[1] != expected:
            raise ValueError(f"shots have {X_shots.shape[1]} dimensions but the model was fitted on {expected}")
        is_spoof_replay = None
        if X_replay is not None:
            X_replay = np.asarray(X_replay, dtype=np.float32)
            if X_shots.shape[1] != X_replay.shape[1]:
                raise ValueError(
                    f"shots have {X_shots.shape[1]} dimensions but the replay rows have {X_replay.shape[1]}"
                )
            is_spoof_replay = is_spoof_target(y_replay)
        adapted = self._adapt(
            X_shots,
            is_spoof_shots,
            X_replay,
            is_spoof_replay,
            shot_weight=float(shot_weight),
            random_state=random_state,
            **options,
        )
        reference = X_shots if X_replay is None else np.concatenate([X_shots, X_replay])
        check_sane_update(self.score_llr(reference), adapted.score_llr(reference))
        return adapted


def check_sane_update(before: np.ndarray, after: np.ndarray) -> None:
    """Raise ``UnsoundUpdateError`` unless the adapted scores on the reference rows are finite and
    within ``SANE_LLR_FACTOR`` times the largest |LLR| the model gave them before."""
    if not np.isfinite(after).all():
        raise UnsoundUpdateError(
            f"the update gave {int((~np.isfinite(after)).sum())} non-finite score(s) on its own shots/replay rows; "
            "it was refused and nothing was saved. Check the shots for NaN/inf embeddings, or adapt with fewer shots."
        )
    bound = SANE_LLR_FACTOR * max(float(np.abs(before).max()), 1.0)
    worst = float(np.abs(after).max())
    if worst > bound:
        raise UnsoundUpdateError(
            f"the update scored its own shots/replay rows up to |LLR| = {worst:.1f}, beyond the sane bound {bound:.1f} "
            f"({SANE_LLR_FACTOR:g} x the largest |LLR| of {float(np.abs(before).max()):.1f} the model gave them before): "
            "a numerical failure of the update, refused rather than saved. Retrain the model instead "
            "(`addgp train`, or nightly strategy `retrain`) and report the shots that caused it."
        )
