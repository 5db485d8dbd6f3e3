"""Prefect task of the degrade stage: manifests → degraded copies in the cache + derived manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import PipelineConfig
from addgp.progress import progress_to_run_log
from addgp.runs import manifest_datasets, task_label
from storage.manifests import (
    read_manifests,
    rejects_path_for,
    write_manifest,
    write_rejects,
)
from storage.workspace import Workspace
from tasks.degrade.plan import degrade_plan
from tasks.degrade.registry import resolve
from tasks.degrade.run import DegradeSummary, build_context, degrade_rows, derived_dataset


@dataclass(frozen=True)
class DegradedCopies:
    """The degrade stage's result: the derived manifests written (one per (dataset, condition))
    and what each took."""

    manifests: list[str]
    summaries: list[DegradeSummary]


def degrade_manifests(
    manifest_paths: list[str], config: PipelineConfig, workspace: Workspace, client=None, progress: bool = True
) -> DegradedCopies:
    """Degrade what ``config`` needs; write one derived manifest (+ rejects) per (dataset, condition).

    Every condition's codecs are checked before any file is touched, so a missing one fails at once.
    """
    manifest = read_manifests(manifest_paths)
    plan = degrade_plan(manifest, config)
    conditions = {name: resolve(name) for name in sorted({c for _, c in plan})}
    for condition in conditions.values():
        condition.check_available()
    settings = config.degrade
    contexts = {}
    paths: list[str] = []
    summaries: list[DegradeSummary] = []
    for (dataset, name), rows in plan.items():
        condition = conditions[name]
        context = None
        if condition.uses_context:
            if dataset not in contexts:
                contexts[dataset] = build_context(
                    manifest[manifest["dataset"] == dataset], settings.sample_rate, settings.noise_dir
                )
            context = contexts[dataset]
        derived, rejects, summary = degrade_rows(
            rows,
            condition,
            workspace.degraded,
            seed=settings.seed,
            sample_rate=settings.sample_rate,
            context=context,
            threads=settings.threads,
            client=client,
            progress=progress,
        )
        path = workspace.manifest(derived_dataset(dataset, name))
        write_manifest(derived, path)
        write_rejects(rejects, rejects_path_for(path))
        paths.append(path)
        summaries.append(summary)
    return DegradedCopies(paths, summaries)


# No result cache: the degraded-audio cache is the cache (a re-run reuses every file).
def _degrade_name(parameters: dict[str, Any]) -> str:
    return task_label("degrade", manifest_datasets(parameters["manifest_paths"]))


# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="degrade", task_run_name=_degrade_name, retries=1, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def degrade_task(
    manifest_paths: list[str], config: PipelineConfig, workdir: str, scheduler_address: str | None
) -> DegradedCopies:
    """Degrade in-process (threads), or in chunks on the Dask cluster at ``scheduler_address``."""
    with progress_to_run_log():
        if scheduler_address is None:
            return degrade_manifests(manifest_paths, config, Workspace.at(workdir))
        from distributed import Client

        with Client(scheduler_address, set_as_default=False) as client:
            return degrade_manifests(manifest_paths, config, Workspace.at(workdir), client=client)
