"""The nightly challenger: built from the champion and the new inbox rows, then tested against it.

- ``retrain``: fit a fresh detector of the champion's kind and hyper-parameters on the
  configured training data plus the new rows.
- ``adapt``: condition the champion on the new rows (few-shot adaptation, feature
  extractor frozen) with a replay sample of its training data, so it does not forget.

Both hold out a fixed share of the new rows (``holdout_mask``) that neither model trains
on: the "new fakes" test set on which the challenger must beat the champion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from addgp.contracts import BONAFIDE
from tasks.evaluate.bootstrap import bootstrap_distribution
from addgp.metrics import compute_metrics
from tasks.evaluate.scoring import score_rows
from storage.models import EmbeddingSetting
from tasks.train.data import LabelledEmbeddings, labelled_embeddings
from tasks.train.detectors import make_detector
from tasks.train.promotion import holdout_mask

NEW_FAKES = "new_fakes"


def _select(setting: EmbeddingSetting, manifest: pd.DataFrame, store: str, datasets: list[str], splits: list[str] | None) -> LabelledEmbeddings:
    return labelled_embeddings(manifest, store, setting, datasets=datasets, splits=splits)


def split_new_rows(new_rows: pd.DataFrame, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to learn from, rows kept out to test on), stable from night to night."""
    held = holdout_mask(new_rows["utt_id"], holdout_fraction)
    return new_rows[~held].reset_index(drop=True), new_rows[held].reset_index(drop=True)


def _subset(data: LabelledEmbeddings, rows: pd.DataFrame) -> LabelledEmbeddings:
    keys = set(zip(rows["dataset"], rows["utt_id"]))
    mask = np.array([k in keys for k in zip(data.rows["dataset"], data.rows["utt_id"])], dtype=bool)
    return LabelledEmbeddings(rows=data.rows[mask].reset_index(drop=True), X=data.X[mask], missing=len(rows) - int(mask.sum()))


def build_challenger(
    champion,
    champion_card: dict,
    strategy: str,
    manifest: pd.DataFrame,
    store: str,
    learn_rows: pd.DataFrame,
    replay_rows: int,
    seed: int = 0,
):
    """A new detector that has seen ``learn_rows`` (manifest rows of the new batches)."""
    setting = EmbeddingSetting.of_card(champion_card)
    training = champion_card["training_data"]
    old = _select(setting, manifest, store, training["datasets"], training["splits"])
    new = _subset(_select(setting, manifest, store, sorted(learn_rows["dataset"].unique()), None), learn_rows)
    if len(new.rows) == 0:
        raise ValueError("none of the new rows to learn from are in the embedding store; did the embed step reject them?")
    if strategy == "retrain":
        detector = make_detector(champion_card["model_type"], **champion_card["detector_params"]["hyper_parameters"])
        X, y = np.concatenate([old.X, new.X]), np.concatenate([old.y, new.y])
        if training.get("dev_splits"):
            dev = _select(setting, manifest, store, training["datasets"], training["dev_splits"])
            detector.fit(X, y, X_dev=dev.X, y_dev=dev.y)
        else:
            detector.fit(X, y)
        return detector
    if strategy == "adapt":
        rng = np.random.default_rng(seed)
        replay = rng.choice(len(old.rows), size=min(replay_rows, len(old.rows)), replace=False)
        return champion.adapt(new.X, new.y, old.X[replay], old.y[replay], random_state=seed)
    raise ValueError(f"unknown nightly strategy {strategy!r}: use 'retrain' or 'adapt'")


def score_champion_and_challenger(
    models: dict[str, tuple[object, dict]],
    manifest: pd.DataFrame,
    store: str,
    eval_datasets: list[str],
    eval_splits: list[str],
    holdout_rows: pd.DataFrame,
) -> pd.DataFrame:
    """Scores of each model on each eval dataset and on the held-out new fakes (dataset ``new_fakes``).

    The new-fakes set is the held-out inbox rows; where those hold no bona fide audio, the
    bona fide rows of the eval datasets stand in (as ASVspoof scores each attack against
    the shared bona fide set).
    """
    frames = []
    for name, (detector, card) in models.items():
        setting = EmbeddingSetting.of_card(card)
        for dataset in eval_datasets:
            frames.append(score_rows(detector, name, _select(setting, manifest, store, [dataset], eval_splits)))
        if len(holdout_rows):
            held = _subset(_select(setting, manifest, store, sorted(holdout_rows["dataset"].unique()), None), holdout_rows)
            parts = [score_rows(detector, name, held)]
            if not (held.rows["label"] == BONAFIDE).any():
                bona = _select(setting, manifest, store, eval_datasets, eval_splits)
                bona = LabelledEmbeddings(rows=bona.rows[bona.y == BONAFIDE].reset_index(drop=True), X=bona.X[bona.y == BONAFIDE], missing=0)
                parts.append(score_rows(detector, name, bona))
            frames.append(pd.concat(parts, ignore_index=True).assign(dataset=NEW_FAKES))
    return pd.concat(frames, ignore_index=True)


def eer_by_dataset(scores: pd.DataFrame, detector: str) -> dict[str, float]:
    mine = scores[scores["detector"] == detector]
    return {d: compute_metrics(g["score"].to_numpy(), g["label"].to_numpy())["eer"] for d, g in mine.groupby("dataset", sort=True)}


def average_eer_ci_half_width(scores: pd.DataFrame, detector: str, datasets: list[str], n_boot: int, seed: int = 0) -> float:
    """Half-width of the bootstrap 95 % interval of the detector's EER averaged over ``datasets``.

    Each dataset is resampled on its own (by speaker where known); the average is taken per
    resample, so the interval reflects the average's own spread.
    """
    mine = scores[scores["detector"] == detector]
    draws = np.mean(
        [bootstrap_distribution(mine[mine["dataset"] == d], "eer", n_boot=n_boot, seed=seed) for d in datasets], axis=0
    )
    low, high = np.percentile(draws, [2.5, 97.5])
    return float((high - low) / 2)
