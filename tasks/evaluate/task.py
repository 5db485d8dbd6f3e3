"""Prefect tasks of the evaluate stage: score every eval set with every registered model, then analyse."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.manifests import read_manifests
from tasks.evaluate.crossdataset import Evaluation, EvaluationSettings, evaluate_scores
from tasks.evaluate.degraded_scores import score_with_conditions
from tasks.train.detectors import load_detector


@task(name="evaluate", retries=1, cache_policy=NO_CACHE)
def evaluate_task(
    manifest_paths: list[str],
    store: str,
    model_paths: dict[str, str],
    datasets: list[str],
    splits: list[str],
    conditions: list[str] | None = None,
) -> pd.DataFrame:
    """Scores of every model on every dataset's ``splits``, clean and under each degradation ``conditions`` entry.

    The ``condition`` column says which (``clean`` = as shipped); the manifests must include
    the degrade stage's derived manifests for every condition.
    """
    detectors = {name: load_detector(path) for name, path in model_paths.items()}
    return score_with_conditions(
        read_manifests(manifest_paths), store, detectors, datasets, splits, list(conditions or [])
    )


@task(name="cross-dataset", cache_policy=NO_CACHE)
def cross_dataset_task(
    scores: pd.DataFrame, n_boot: int = 1000, target_error: float = 0.05, seed: int = 0
) -> Evaluation:
    """The cross-dataset matrix, bootstrap CIs, breakdowns and selective prediction of ``scores``."""
    return evaluate_scores(scores, EvaluationSettings(n_boot=n_boot, target_error=target_error, seed=seed))
