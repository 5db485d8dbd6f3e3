"""Prefect task of the train stage: fit and register one detector."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import DetectorConfig, EncoderConfig, TrainConfig
from storage.manifests import read_manifests
from tasks.embed.encoder import resolve_layer, resolve_layers, spec_from_config
from storage.models import EmbeddingSetting, save_model
from tasks.train.challenge import build_challenger
from tasks.train.detectors import load_detector
from tasks.train.fit import TrainingSelection, fit_and_register, snapshot_id


@task(name="train", retries=1, cache_policy=NO_CACHE)
def train_task(manifest_paths: list[str], store: str, models_root: str, encoder: EncoderConfig, train: TrainConfig, detector: DetectorConfig) -> dict:
    spec = resolve_layers(spec_from_config(encoder))
    layer = resolve_layer(spec, train.layer)
    selection = TrainingSelection(
        datasets=tuple(train.datasets), splits=tuple(train.splits), dev_splits=tuple(train.dev_splits), layer=layer
    )
    return fit_and_register(
        read_manifests(manifest_paths), store, models_root, spec, selection, detector.name, detector.kind, dict(detector.params)
    )


@task(name="challenger", retries=1, cache_policy=NO_CACHE)
def challenger_task(
    champion_path: str, strategy: str, manifest_paths: list[str], store: str, models_root: str, name: str,
    learn_rows: pd.DataFrame, replay_rows: int,
) -> dict:
    """Build tonight's challenger from the champion and the new rows; register it as the next version of ``name``."""
    champion, card = load_detector(champion_path)
    manifest = read_manifests(manifest_paths)
    challenger = build_challenger(champion, card, strategy, manifest, store, learn_rows, replay_rows)
    learned = card["training_data"] | {
        "nightly_strategy": strategy,
        "parent_model": champion_path,
        "new_rows": int(len(learn_rows)),
        "new_rows_sha256": snapshot_id(learn_rows),
    }
    inherited = {**EmbeddingSetting.of_card(card).to_card(), "random_weight_encoder": card["random_weight_encoder"]}
    ref = save_model(models_root, name, challenger, {**inherited, "training_data": learned, "dev_metrics": None})
    return {"name": name, "kind": card["model_type"], "path": str(ref.path), "version": ref.version}
