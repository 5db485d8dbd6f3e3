"""The nightly challenger: built from the champion and the new inbox rows, then tested against it.

- ``retrain``: fit a fresh detector of the champion's kind and hyper-parameters on the
  configured training data plus the new rows.
- ``adapt``: the champion's own update (``detector.adapt``, feature extractor frozen): for the
  variational GP the streaming update of q(u), whose time, scoring cost and saved size do not
  grow with the nights (docs/detectors.md, "Updates that do not grow"); for the exact GP a
  bounded conditioning set; for LR a refit on a replay sample of its training data + the rows.

A scheduled consolidation (tasks/nightly/consolidation.py) is the ``retrain`` path given every
inbox row learnt so far as its new rows (tasks/nightly/task.py picks the step and the rows).

Both hold out a fixed share of each label's new rows (``stratified_holdout_mask``) that neither model trains
on: the "new fakes" test set on which the challenger must beat the champion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from addgp.contracts import is_bonafide
from storage.embeddings import path_identity_hint
from storage.models import EmbeddingSetting
from tasks.nightly.promotion import stratified_holdout_mask
from tasks.train.data import LabelledEmbeddings, embeddings_of_rows, labelled_embeddings
from tasks.train.detectors import make_detector
from tasks.train.fit import snapshot_id


def select_rows(
    setting: EmbeddingSetting, manifest: pd.DataFrame, store: str, datasets: list[str], splits: list[str] | None
) -> LabelledEmbeddings:
    return labelled_embeddings(manifest, store, setting, datasets=datasets, splits=splits)


def split_new_rows(new_rows: pd.DataFrame, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to learn from, rows kept out to test on): the same share of each label held out
    (``stratified_holdout_mask``), the same split for the same rows."""
    held = stratified_holdout_mask(new_rows["utt_id"], new_rows["label"], holdout_fraction)
    return new_rows[~held].reset_index(drop=True), new_rows[held].reset_index(drop=True)


def rows_embeddings(
    setting: EmbeddingSetting, manifest: pd.DataFrame, store: str, rows: pd.DataFrame
) -> LabelledEmbeddings:
    """The store vectors of ``rows`` (tonight's, the held-out or pooled ones: matched to ``manifest``
    by dataset and utt_id, in manifest order). Only these rows are read and held, not their
    whole dataset: the inbox's grows every night (docs/benchmarks.md, "Nightly reads")."""
    # vectorised: ``manifest`` is every corpus's rows (millions at full size), a Python loop over it took seconds
    candidates = manifest[manifest["dataset"].isin(rows["dataset"].unique()) & manifest["utt_id"].isin(rows["utt_id"])]
    keys = pd.MultiIndex.from_frame(rows[["dataset", "utt_id"]])
    wanted = candidates[pd.MultiIndex.from_frame(candidates[["dataset", "utt_id"]]).isin(keys)]
    return embeddings_of_rows(wanted, store, setting)


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
    old = select_rows(setting, manifest, store, training["datasets"], training["splits"])
    new = rows_embeddings(setting, manifest, store, learn_rows)
    if len(new.rows) == 0:
        raise ValueError(
            "none of the new rows to learn from are in the embedding store; did the embed step reject them?"
            + path_identity_hint(setting.encoder)
        )
    if strategy == "retrain":
        detector = make_detector(champion_card["model_type"], **champion_card["detector_params"]["hyper_parameters"])
        X, y = np.concatenate([old.X, new.X]), np.concatenate([old.y, new.y])
        if training.get("dev_splits"):
            dev = select_rows(setting, manifest, store, training["datasets"], training["dev_splits"])
            detector.fit(X, y, X_dev=dev.X, y_dev=dev.y)
        else:
            detector.fit(X, y)
        return detector
    if strategy == "adapt":
        rng = np.random.default_rng(seed)
        replay = rng.choice(len(old.rows), size=min(replay_rows, len(old.rows)), replace=False)
        return champion.adapt(new.X, new.y, old.X[replay], old.y[replay], random_state=seed)
    raise ValueError(f"unknown nightly strategy {strategy!r}: use 'retrain' or 'adapt'")


def derived_card(parent_card: dict, rows: pd.DataFrame, provenance: dict, rows_key: str = "new_rows") -> dict:
    """The model card of a model made from ``parent_card``'s model and ``rows`` (new rows, shots).

    It reads the parent's embeddings. Its training data is the parent's (datasets, splits,
    counts and snapshot: where a replay sample comes from) plus ``provenance`` (strategy,
    parent model, …), the rows counted and hashed under ``rows_key``, and ``adaptations``:
    the parent's list plus one entry for this step — the parent's name, version and card
    digest, and the rows added (datasets, counts, digest) — so a chain of adaptations stays
    readable on the newest card.
    """
    bona = is_bonafide(rows["label"].to_numpy())
    step = {
        "parent": {k: parent_card.get(k) for k in ("name", "version", "digest")},
        "datasets": sorted(str(d) for d in rows["dataset"].unique()),
        "rows": int(len(rows)),
        "n_bonafide": int(bona.sum()),
        "n_spoof": int((~bona).sum()),
        "snapshot_sha256": snapshot_id(rows),
        **provenance,
    }
    parent_data = parent_card["training_data"]
    learned = (
        parent_data
        | provenance
        | {rows_key: int(len(rows)), f"{rows_key}_sha256": step["snapshot_sha256"]}
        | {"adaptations": [*parent_data.get("adaptations", []), step]}
    )
    # A derived model reads its parent's embeddings, made by the same (random-weight or not) encoder.
    inherited = {
        **EmbeddingSetting.of_card(parent_card).to_card(),
        "random_weight_encoder": parent_card.get("random_weight_encoder"),
        **{k: parent_card[k] for k in ("encoder_weights_digest", "encoder_source") if k in parent_card},
    }
    return {**inherited, "training_data": learned, "dev_metrics": None}
