"""Prefect tasks of the evaluate stage: score every eval set with every registered model, then analyse."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import EvaluateConfig, PipelineConfig
from addgp.runs import task_label
from storage.manifests import read_manifests
from tasks.embed.task import dask_client
from tasks.evaluate.crossdataset import Evaluation, EvaluationSettings, evaluate_scores
from tasks.evaluate.degraded_scores import score_with_conditions
from tasks.train.detectors import load_detector
from tasks.train.trained import TrainedModel


def _evaluate_name(parameters: dict[str, Any]) -> str:
    return task_label("evaluate", [m.name for m in parameters["models"]], parameters["config"].eval_datasets)


def _cross_dataset_name(parameters: dict[str, Any]) -> str:
    return task_label("cross-dataset", pd.unique(parameters["scores"]["detector"]))


# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="evaluate", task_run_name=_evaluate_name, retries=1, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def evaluate_task(
    manifest_paths: list[str], store: str, models: list[TrainedModel], config: PipelineConfig
) -> pd.DataFrame:
    """Scores of every model on the config's eval sets (``evaluate.splits``), clean and under
    each ``evaluate.conditions`` entry.

    The ``condition`` column says which (``clean`` = as shipped); the manifests must include
    the degrade stage's derived manifests for every condition. Each eval set is read once for
    all models, in record batches, through the score cache; a real cluster
    (``cluster.address``) scores the store shard by shard, one Dask task per shard file (on
    one machine, streaming in-process is bounded already).
    """
    detectors = {m.name: load_detector(m.path) for m in models}
    manifest = read_manifests(manifest_paths)
    scored = (config.eval_datasets, config.evaluate.splits, list(config.evaluate.conditions))
    if config.cluster.address is None:
        return score_with_conditions(manifest, store, detectors, *scored)
    with dask_client(config.cluster.address) as client:
        return score_with_conditions(manifest, store, detectors, *scored, client)


@task(name="cross-dataset", task_run_name=_cross_dataset_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def cross_dataset_task(scores: pd.DataFrame, evaluate: EvaluateConfig) -> Evaluation:
    """The cross-dataset matrix, bootstrap CIs, breakdowns and selective prediction of ``scores``
    (the clean rows), and the robustness section (the ``condition`` column)."""
    settings = EvaluationSettings(
        n_boot=evaluate.n_boot, target_error=evaluate.target_error, training_overlap=evaluate.training_overlap
    )
    return evaluate_scores(scores, settings)
