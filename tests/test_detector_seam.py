"""The detector seam: a new kind is one class plus one registry line; scikit-learn's tools read our estimators right."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pytest
import yaml
from pydantic import Field
from pydantic.fields import FieldInfo
from sklearn.exceptions import NotFittedError
from sklearn.metrics import get_scorer, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from addgp.config import ConfigError, load_config
from flows.config import load_pipeline_config
from storage.manifests import read_manifests, write_manifest
from storage.models import save_model
from tasks.embed.task import embed_task
from tasks.nightly.challenger import build_challenger
from tasks.train.base import LLRDetector
from tasks.train.calibration import is_spoof_target
from tasks.train.detectors import load_detector, make_detector
from tasks.train.dkl_gp import DKLGPDetector
from tasks.train.kinds import DETECTOR_KINDS
from tasks.train.logreg import LogRegDetector
from tasks.train.task import train_task


def blobs(seed: int, n: int = 120, dim: int = 6, distance: float = 1.5):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + distance * np.eye(dim)[0]]).astype(
        np.float32
    )
    return X, np.array(["bonafide"] * n + ["spoof"] * n)


# ------------------------------------------------------------------ scikit-learn's sign rule (issue 16 item 1)

SKLEARN_KINDS = {
    "logreg": lambda: LogRegDetector(C=1.0),
    "dkl_gp": lambda: DKLGPDetector(
        mode="variational", feature_extractor="identity", n_inducing=16, batch_size=64, max_steps=30, progress=False
    ),
}


@pytest.mark.parametrize("kind", list(SKLEARN_KINDS))
def test_sklearn_scorers_agree_with_roc_auc_of_p_spoof(kind):
    X, y = blobs(0)
    Xt, yt = blobs(1)
    detector = SKLEARN_KINDS[kind]().fit(X, y)
    truth = roc_auc_score(is_spoof_target(yt), detector.predict_proba(Xt)[:, 1])
    assert 0.75 < truth < 1.0  # informative, not trivial
    assert get_scorer("roc_auc")(detector, Xt, yt) == pytest.approx(truth)
    # The LLR itself is unchanged: higher = bona fide.
    assert roc_auc_score(~is_spoof_target(yt), detector.score_llr(Xt)) == pytest.approx(truth)
    np.testing.assert_allclose(detector.decision_function(Xt), -detector.score_llr(Xt))
    assert get_scorer("neg_log_loss")(detector, Xt, yt) > -0.7  # columns read in classes_ order (chance: -0.69)
    assert get_scorer("accuracy")(detector, Xt, yt) > 0.7


def test_cross_val_score_and_grid_search_agree_with_roc_auc_score():
    X, y = blobs(2)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(LogRegDetector(C=1.0), X, y, scoring="roc_auc", cv=cv)
    by_hand = []
    for train, test in cv.split(X, y):
        detector = LogRegDetector(C=1.0).fit(X[train], y[train])
        by_hand.append(roc_auc_score(y[test] == "spoof", detector.predict_proba(X[test])[:, 1]))
    np.testing.assert_allclose(scores, by_hand)
    assert scores.min() > 0.7  # the sign bug gave 1 - AUC, below 0.3
    search = GridSearchCV(LogRegDetector(), {"C": [1e-4, 1.0]}, scoring="roc_auc", cv=cv).fit(X, y)
    assert search.best_score_ == pytest.approx(max(search.cv_results_["mean_test_score"])) and search.best_score_ > 0.7


def test_check_estimator_applies_only_where_labels_are_not_integers():
    """scikit-learn's check_estimator trains on integer labels in nearly every check; the detectors
    refuse them on purpose (is 1 spoof or bona fide? see calibration.is_spoof_target). What does
    apply: unfitted use raises NotFittedError, and pickling keeps the scores."""
    import pickle

    results = check_estimator(LogRegDetector(C=1.0), on_fail=None)
    by_name = {r["check_name"]: r for r in results}
    assert by_name["check_estimators_unfitted"]["status"] == "passed"
    assert "integer/float labels are ambiguous" in str(by_name["check_classifiers_train"]["exception"])
    X, y = blobs(3)
    for make in SKLEARN_KINDS.values():
        with pytest.raises(NotFittedError):
            make().score_llr(X)
        detector = make().fit(X, y)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(detector)).score_llr(X), detector.score_llr(X))


# ------------------------------------------------------------------ a new kind: one class, one registry line


class NearestMean(LLRDetector):
    """Toy kind: LLR of two isotropic Gaussians at the class means; adapts by moving the spoof mean toward the shots."""

    kind = "nearest_mean"
    param_limits: ClassVar[Mapping[str, FieldInfo]] = {"width": Field(gt=0)}  # a limit declared on the kind

    def __init__(self, width: float = 1.0, calibration: str | None = None):
        self.width = width
        self.calibration = calibration

    def fit(self, X, y, X_dev=None, y_dev=None):
        self._check_calibration_data(X_dev, y_dev)
        is_spoof = is_spoof_target(y)
        self.n_features_in_ = X.shape[1]
        self.means_ = np.stack([X[~is_spoof].mean(0), X[is_spoof].mean(0)]).astype(np.float64)
        self.n_spoof_ = int(is_spoof.sum())
        self._fit_calibration(X_dev, y_dev)
        return self

    def raw_llr(self, X):
        d2 = ((np.asarray(X, dtype=np.float64)[:, None, :] - self.means_[None]) ** 2).sum(-1)
        return (d2[:, 1] - d2[:, 0]) / (2 * self.width**2)

    def to_state(self):
        return {"means": self.means_}, {
            "hyper_parameters": self.get_params(),
            "fitted": {"n_spoof": self.n_spoof_, "calibration": self._calibration_state()},
        }

    @classmethod
    def from_state(cls, arrays, params):
        detector = cls(**params["hyper_parameters"])
        detector.means_, detector.n_spoof_ = np.asarray(arrays["means"]), params["fitted"]["n_spoof"]
        detector.n_features_in_ = detector.means_.shape[1]
        detector._restore_fitted(params["fitted"])
        return detector

    def _adapt(self, X_shots, is_spoof_shots, X_replay, is_spoof_replay, *, shot_weight, random_state):
        adapted = NearestMean(**self.get_params())
        adapted.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        spoof_shots = X_shots[is_spoof_shots]
        weight = shot_weight * len(spoof_shots)
        adapted.means_ = self.means_.copy()
        adapted.means_[1] = (self.n_spoof_ * self.means_[1] + weight * spoof_shots.mean(0)) / (self.n_spoof_ + weight)
        adapted.n_spoof_ = self.n_spoof_ + len(spoof_shots)
        return adapted


@pytest.fixture
def toy_kind(monkeypatch):
    monkeypatch.setitem(DETECTOR_KINDS, NearestMean.kind, f"{__name__}:NearestMean")  # the one registry line


def _config(tmp_path, detectors) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "workdir": str(tmp_path / "work"),
                "datasets": [{"name": "alpha", "adapter": "protocol_csv", "root": str(tmp_path)}],
                "encoder": {"id": "tiny-random"},
                "train": {"datasets": ["alpha"], "dev_splits": [], "detectors": detectors},
            }
        )
    )
    return str(path)


def test_config_checks_kind_and_params_against_the_registry(tmp_path, toy_kind):
    good = load_pipeline_config(_config(tmp_path, [{"name": "t", "kind": "nearest_mean", "params": {"width": 2}}]))
    assert make_detector("nearest_mean", **good.train.detectors[0].params).width == 2.0
    with pytest.raises(
        ConfigError,
        match=r"train\.detectors\.0\.params: nearest_mean parameter 'width': Input should be a valid number",
    ):
        load_pipeline_config(_config(tmp_path, [{"name": "t", "kind": "nearest_mean", "params": {"width": "wide"}}]))
    with pytest.raises(
        ConfigError, match=r"pipeline\.yaml: train\.detectors\.0\.params: dkl_gp parameter 'hidden_dims'.*valid tuple"
    ):
        load_pipeline_config(_config(tmp_path, [{"name": "g", "kind": "dkl_gp", "params": {"hidden_dims": 32}}]))
    with pytest.raises(
        ConfigError, match=r"train\.detectors\.0\.kind: unknown detector kind 'svm'; choose one of .*nearest_mean"
    ):
        load_pipeline_config(_config(tmp_path, [{"name": "s", "kind": "svm"}]))
    with pytest.raises(
        ConfigError, match=r"params: nearest_mean parameter 'width': Input should be greater than 0 \(got 0\)"
    ):  # the limit the toy kind declares on its own class
        load_pipeline_config(_config(tmp_path, [{"name": "t", "kind": "nearest_mean", "params": {"width": 0}}]))
    with pytest.raises(ConfigError) as error:  # the limits the registered kinds declare
        load_pipeline_config(
            _config(
                tmp_path,
                [
                    {"name": "g", "kind": "dkl_gp", "params": {"lr": 0, "n_inducing": -4}},
                    {"name": "l", "kind": "logreg", "params": {"C": 0.0}},
                ],
            )
        )
    assert "train.detectors.0.params: dkl_gp parameter 'n_inducing': Input should be greater than 0 (got -4)" in str(
        error.value
    )
    assert "dkl_gp parameter 'lr': Input should be greater than 0 (got 0)" in str(error.value)
    assert "train.detectors.1.params: logreg parameter 'C': Input should be greater than 0 (got 0.0)" in str(
        error.value
    )


def test_a_toy_kind_trains_from_a_pipeline_config_and_adapts(tmp_path, toy_kind, audio_manifest):
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest[audio_manifest["dataset"] == "alpha"], manifest)
    config = load_config(_config(tmp_path, [{"name": "toy", "kind": "nearest_mean", "params": {"width": 3}}]))
    store, models = str(tmp_path / "store"), str(tmp_path / "models")
    embed_task.fn([str(manifest)], config.encoder, store, None)

    result = train_task.fn([str(manifest)], store, models, config.encoder, config.train, config.train.detectors[0])

    detector, card = load_detector(result.path)
    assert isinstance(detector, NearestMean) and detector.width == 3.0 and card["model_type"] == "nearest_mean"
    shots = read_manifests([str(manifest)]).query("label == 'spoof'").head(2)
    adapted = build_challenger(detector, card, "adapt", read_manifests([str(manifest)]), store, shots, replay_rows=4)
    assert isinstance(adapted, NearestMean) and adapted.n_spoof_ == detector.n_spoof_ + 2
    assert not np.allclose(adapted.means_[1], detector.means_[1])
    assert (
        save_model(
            models, "toy", adapted, {k: card[k] for k in ("encoder", "layer", "pooling", "random_weight_encoder")}
        ).version
        == 2
    )
