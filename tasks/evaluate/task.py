"""Prefect tasks of the evaluate stage: score every eval set with every registered model, then analyse."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.runs import task_label
from storage.manifests import read_manifests
from tasks.evaluate.crossdataset import Evaluation, EvaluationSettings, evaluate_scores
from tasks.evaluate.degraded_scores import score_with_conditions
from tasks.train.detectors import load_detector


def _evaluate_name(parameters: dict[str, Any]) -> str:
    return task_label("evaluate", list(parameters["model_paths"]), parameters["datasets"])


def _cross_dataset_name(parameters: dict[str, Any]) -> str:
    return task_label("cross-dataset", pd.unique(parameters["scores"]["detector"]))


# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="evaluate", task_run_name=_evaluate_name, retries=1, cache_policy=NO_CACHE)  # type: ignore[arg-type]
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


@task(name="cross-dataset", task_run_name=_cross_dataset_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def cross_dataset_task(
    scores: pd.DataFrame,
    n_boot: int = 1000,
    target_error: float = 0.05,
    seed: int = 0,
    training_overlap: str = "exclude",
) -> Evaluation:
    """The cross-dataset matrix, bootstrap CIs, breakdowns and selective prediction of ``scores``."""
    settings = EvaluationSettings(
        n_boot=n_boot, target_error=target_error, seed=seed, training_overlap=training_overlap
    )
    return evaluate_scores(scores, settings)
