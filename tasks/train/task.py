"""Prefect task of the train stage: fit and register one detector."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import DetectorConfig, EncoderConfig, TrainConfig
from addgp.progress import progress_to_run_log
from storage.manifests import read_manifests
from tasks.embed.encoder import resolve_layer, resolve_layers, spec_from_config
from tasks.train.fit import TrainingSelection, fit_and_register
from tasks.train.trained import TrainedModel


@task(name="train", task_run_name="train[{detector.name}]", retries=1, cache_policy=NO_CACHE)
def train_task(
    manifest_paths: list[str],
    store: str,
    models_root: str,
    encoder: EncoderConfig,
    train: TrainConfig,
    detector: DetectorConfig,
) -> TrainedModel:
    spec = resolve_layers(spec_from_config(encoder))
    layer = resolve_layer(spec, train.layer)
    selection = TrainingSelection(
        datasets=tuple(train.datasets), splits=tuple(train.splits), dev_splits=tuple(train.dev_splits), layer=layer
    )
    # GP steps and the last-block kind's frame cache report progress as lines of this task run's log.
    with progress_to_run_log():
        return fit_and_register(
            read_manifests(manifest_paths),
            store,
            models_root,
            spec,
            selection,
            detector.name,
            detector.kind,
            dict(detector.params),
        )
