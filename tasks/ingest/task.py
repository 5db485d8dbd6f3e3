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
from storage.workspace import Workspace
from tasks.ingest.checks import content_checks, describe, embedding_near_duplicates, enforce, pipeline_roles, problems
from tasks.ingest.common import IngestedCorpus, IngestResult, LayoutError
from tasks.ingest.losses import CorpusPlan, plan_corpora
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
) -> IngestedCorpus:
    """Read one corpus into ``manifest_path`` (+ its rejects table); returns the summary.

    ``reuse_existing``: a published corpus does not change, so the nightly loop keeps a
    manifest already written instead of re-hashing hundreds of thousands of files.
    """
    if reuse_existing and exists(manifest_path):
        result = IngestResult(dataset=dataset.name, manifest=read_manifest(manifest_path))
        return IngestedCorpus(result.summary(), manifest_path, reused=True)
    options = {**dataset.options, **(extra_options or {})}
    try:
        with progress_to_run_log():
            result = ingest_dataset(dataset.adapter, dataset.root, dataset=dataset.name, **options)
    except LayoutError as error:
        if type(error) is not LayoutError:  # a subclass (a missing inbox) names its config key already
            raise
        # The adapter knows the folder, not the config: name the key the operator has to fix.
        raise LayoutError(f"{error} (dataset {dataset.name!r}: its `root` in the config)") from error
    write_manifest(result.manifest, manifest_path)
    write_rejects(result.rejects, rejects_path_for(manifest_path))
    return IngestedCorpus(result.summary(), manifest_path, reused=False)


def ingest_datasets(
    config: PipelineConfig, workspace: Workspace, nightly_inbox: str | None = None
) -> dict[str, IngestedCorpus]:
    """Ingest every dataset of ``config`` at once (one ingest task run each, submitted from the
    calling flow) into the workspace's manifests; the results by dataset name.

    An inbox keeps its batch ledger in the workspace's state folder, never in the drop folder
    itself; a missing drop folder is an error unless the config's nightly section says to
    create it. ``nightly_inbox``: the nightly loop reads that inbox again and keeps every
    other corpus's manifest already written (``reuse_existing``).
    """
    inbox_options = {
        "state_dir": workspace.state,
        "create_missing": config.nightly is not None and config.nightly.create_inbox,
    }
    futures = {}
    for d in config.datasets:
        is_inbox = d.name == nightly_inbox if nightly_inbox is not None else d.adapter == "inbox"
        futures[d.name] = ingest_task.submit(
            d,
            workspace.manifest(d.name),
            extra_options=inbox_options if is_inbox else None,
            reuse_existing=nightly_inbox is not None and not is_inbox,
        )
    return {name: future.result() for name, future in futures.items()}


def plan_run(config: PipelineConfig, ingests: dict[str, IngestedCorpus]) -> CorpusPlan:
    """The run's corpora after ingest (``plan_corpora``), each one left out logged as a warning:
    a corpus that lost a split or too many rows is left out (of the role that needs the
    split); the run publishes what the rest allows and ``addgp run`` exits 7."""
    plan = plan_corpora(config, {name: ingested.summary for name, ingested in ingests.items()})
    for record in plan.left_out:
        get_run_logger().warning("left out of the run: dataset %s (%s): %s", record.dataset, record.role, record.reason)
    return plan


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
