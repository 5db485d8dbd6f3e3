"""Fit the configured detectors on the store and register them with a model card."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from addgp.contracts import is_bonafide
from addgp.metrics import compute_metrics
from storage.models import EmbeddingSetting, ModelRef, read_card, save_model
from tasks.embed.encoder import EncoderSpec
from tasks.train.data import fit_params, labelled_inputs
from tasks.train.detectors import detector_summary, make_detector
from tasks.train.trained import TrainedModel
from tasks.train.training_sets import training_sets
from tasks.train.unchanged import INPUT_DIGEST_KEY, input_digest, unchanged_version


@dataclass(frozen=True)
class TrainingSelection:
    """Which store rows a detector learns from."""

    datasets: tuple[str, ...]
    splits: tuple[str, ...]
    dev_splits: tuple[str, ...]
    layer: int


def snapshot_id(rows: pd.DataFrame) -> str:
    """Content hash of the training rows: the model card's record of exactly what trained it."""
    keys = sorted(zip(rows["dataset"], rows["utt_id"], rows["sha256"], rows["label"]))
    digest = hashlib.sha256()
    for key in keys:
        digest.update("\0".join(key).encode() + b"\n")
    return digest.hexdigest()


def fit_and_register(
    manifest: pd.DataFrame,
    store_root: str,
    models_root: str,
    spec: EncoderSpec,
    selection: TrainingSelection,
    name: str,
    kind: str,
    params: dict,
) -> TrainedModel:
    """Fit one detector, score its dev set, and save it as the next version of ``name``."""
    setting = EmbeddingSetting(encoder=spec.name, layer=selection.layer, pooling=spec.pooling, crop_s=spec.crop_seconds)
    detector = make_detector(kind, **params)
    train = labelled_inputs(
        detector, manifest, store_root, setting, datasets=list(selection.datasets), splits=list(selection.splits)
    )
    dev = None
    if selection.dev_splits and manifest["split"].isin(selection.dev_splits).any():
        dev = labelled_inputs(
            detector,
            manifest,
            store_root,
            setting,
            datasets=list(selection.datasets),
            splits=list(selection.dev_splits),
        )
    weights_digest = spec.weights_digest()
    digest = input_digest(
        setting,
        weights_digest,
        kind,
        params,
        {
            "datasets": list(selection.datasets),
            "splits": list(selection.splits),
            "dev_splits": list(selection.dev_splits),
        },
        snapshot_id(train.rows),
        snapshot_id(dev.rows) if dev is not None else None,
    )
    unchanged = unchanged_version(models_root, name, digest)
    if unchanged is not None:
        # Same data, same config: the newest version is this run's model; no identical vN+1.
        return _result(name, kind, unchanged, reused=True)
    extra = fit_params(detector, setting)
    if dev is not None:
        detector.fit(train.X, train.y, X_dev=dev.X, y_dev=dev.y, **extra)
    else:
        detector.fit(train.X, train.y, **extra)
    dev_metrics = compute_metrics(detector.score_llr(dev.X), dev.y) if dev is not None else None
    bona = is_bonafide(train.y)
    card = {
        **setting.to_card(),
        "random_weight_encoder": spec.random_weights,
        "encoder_weights_digest": weights_digest,
        # Where a local checkpoint was: its name carries only the digest (tasks/embed/encoder.py).
        **({"encoder_source": str(spec.local_dir.resolve())} if spec.local_dir is not None else {}),
        "training_data": {
            "datasets": list(selection.datasets),
            "splits": list(selection.splits),
            "dev_splits": list(selection.dev_splits) if dev is not None else [],
            "n_bonafide": int(bona.sum()),
            "n_spoof": int((~bona).sum()),
            "missing_from_store": train.missing,
            "snapshot_sha256": snapshot_id(train.rows),
            # every set it saw (train and dev) by name and content, for the report's overlap check
            "sets": training_sets(pd.concat([train.rows, dev.rows]) if dev is not None else train.rows),
            # attack ids of the training rows: the report marks eval attacks outside them as eval-only
            "attacks": training_attacks(manifest, selection),
        },
        "dev_metrics": dev_metrics,
        INPUT_DIGEST_KEY: digest,
    }
    return _result(name, kind, save_model(models_root, name, detector, card), reused=False)


def training_attacks(manifest: pd.DataFrame, selection: TrainingSelection) -> list[str]:
    """The attack ids among the selected training rows (train splits), sorted."""
    rows = manifest[manifest["dataset"].isin(selection.datasets) & manifest["split"].isin(selection.splits)]
    return sorted(str(a) for a in rows["attack"].dropna().unique())


def _result(name: str, kind: str, ref: ModelRef, reused: bool) -> TrainedModel:
    """What training returns, read from the version's card (``reused``: an unchanged earlier version)."""
    # From the card: to_state() again would copy every weight (an exact GP its training set).
    card = read_card(ref)
    return TrainedModel(
        name=name,
        kind=kind,
        path=str(ref.path),
        version=ref.version,
        dev_metrics=card.get("dev_metrics"),
        summary=detector_summary(kind, card["detector_params"]),
        train_attacks=(card.get("training_data") or {}).get("attacks"),
        reused=reused,
    )
