"""Prefect tasks of the ingest stage: ingest a dataset into a manifest,
check a pipeline's manifests for duplicate audio and train/eval overlap."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from addgp.config import DatasetConfig, PipelineConfig
from addgp.progress import progress_to_run_log
from storage.manifests import read_manifest, read_manifests, rejects_path_for, write_manifest, write_rejects
from storage.paths import exists
from tasks.ingest.checks import content_checks, describe, embedding_near_duplicates, enforce, pipeline_roles, problems
from tasks.ingest.common import IngestResult, LayoutError
from tasks.ingest.registry import ingest_dataset


def transient_failure(task, task_run, state) -> bool:
    """Retry I/O hiccups (a network filesystem, a busy disk), never a wrong layout or bad option."""
    try:
        state.result()
    except (LayoutError, ValueError, KeyError, TypeError, FileNotFoundError):
        return False
    except Exception:
        return True
    return False


@task(
    name="ingest",
    task_run_name="ingest[{dataset.name}]",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def ingest_task(
    dataset: DatasetConfig, manifest_path: str, extra_options: dict | None = None, reuse_existing: bool = False
) -> dict:
    """Read one corpus into ``manifest_path`` (+ its rejects table); returns the summary.

    ``reuse_existing``: a published corpus does not change, so the nightly loop keeps a
    manifest already written instead of re-hashing hundreds of thousands of files.
    """
    if reuse_existing and exists(manifest_path):
        result = IngestResult(dataset=dataset.name, manifest=read_manifest(manifest_path))
        return {**result.summary(), "manifest": manifest_path, "reused": True}
    options = {**dataset.options, **(extra_options or {})}
    with progress_to_run_log():
        result = ingest_dataset(dataset.adapter, dataset.root, dataset=dataset.name, **options)
    write_manifest(result.manifest, manifest_path)
    write_rejects(result.rejects, rejects_path_for(manifest_path))
    return {**result.summary(), "manifest": manifest_path, "reused": False}


@task(name="data-checks", task_run_name="data-checks[{config.name}]", cache_policy=NO_CACHE)
def data_checks_task(manifest_paths: list[str], config: PipelineConfig, config_path: str) -> pd.DataFrame:
    """Duplicate audio and train/eval overlap across the pipeline's manifests, before any training.

    Findings are logged as warnings; a train/eval overlap stops the run (DataCheckError) when
    the config says ``data_checks.train_eval_overlap: error``. Returns the data-checks table
    for the run report.
    """
    train, evaluate = pipeline_roles(config)
    checks = content_checks(
        read_manifests(manifest_paths), train=train, evaluate=evaluate, overlap=config.data_checks.train_eval_overlap
    )
    logger = get_run_logger()
    for finding in problems(checks, "warning").to_dict("records"):
        logger.warning("data check: %s", describe(finding))
    enforce(checks, config_path)
    return checks


@task(name="near-duplicate-checks", task_run_name="near-duplicates[{config.name}]", cache_policy=NO_CACHE)
def near_duplicate_task(
    checks: pd.DataFrame, manifest_paths: list[str], store: str, config: PipelineConfig, encoder_name: str, layer: int
) -> pd.DataFrame:
    """After embedding: eval clips with a near-identical training clip by embedding
    (``data_checks.near_duplicate_cosine``), logged as warnings and added to ``checks``.
    ``layer`` is the stored (non-negative) index of the layer the detectors train on."""
    threshold = config.data_checks.near_duplicate_cosine
    if threshold is None:  # the pipeline runs this task only when a threshold is set
        raise ValueError("near_duplicate_task needs data_checks.near_duplicate_cosine")
    train, evaluate = pipeline_roles(config)
    found = embedding_near_duplicates(
        read_manifests(manifest_paths),
        store,
        encoder=encoder_name,
        layer=layer,
        pooling=config.encoder.pooling,
        crop_s=config.encoder.crop_seconds,
        train=train,
        evaluate=evaluate,
        threshold=threshold,
    )
    logger = get_run_logger()
    for finding in found.to_dict("records"):
        logger.warning("data check: %s", describe(finding))
    return pd.concat([checks, found], ignore_index=True)
