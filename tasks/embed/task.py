"""Prefect task of the embed stage: manifests → embedding store, on a Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import EmbedConfig, EncoderConfig
from addgp.progress import progress_to_run_log, run_logger
from addgp.runs import manifest_datasets, task_label
from storage.manifests import read_manifests
from tasks.embed.encoder import spec_from_config
from tasks.embed.run import embed_manifest
from tasks.embed.summary import EmbedSummary, TooManyRejectsError


@contextmanager
def dask_client(address: str) -> Iterator:
    """A client of the Dask scheduler at ``address``, closed on exit (the cluster itself is the caller's)."""
    from distributed import Client

    client = Client(address, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


def _retry_unless_rejects(task, task_run, state) -> bool:
    """Retry a failed embed, except for too many rejects: the store holds all it could; a retry 30 s later would only repeat it."""
    return not isinstance(state.result(raise_on_failure=False), TooManyRejectsError)


def _embed_name(parameters: dict[str, Any]) -> str:
    return task_label("embed", parameters["encoder"].id, manifest_datasets(parameters["manifest_paths"]))


# No result cache: the store itself is the cache (a re-run plans only missing shards).
# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(
    name="embed",
    task_run_name=_embed_name,  # type: ignore[arg-type]
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=_retry_unless_rejects,
    cache_policy=NO_CACHE,
)
def embed_task(
    manifest_paths: list[str],
    encoder: EncoderConfig,
    store: str,
    scheduler_address: str | None,
    limits: EmbedConfig | None = None,
) -> EmbedSummary:
    """Embed the manifests' missing rows; fails with ``TooManyRejectsError`` (the flow fails, the CLI
    exits 7) after the run when a dataset has more rejects than ``limits.max_reject_fraction``."""
    manifest = read_manifests(manifest_paths)
    spec = spec_from_config(encoder)
    limits = limits or EmbedConfig()
    # Without a scheduler the stage runs in-process (client None).
    cluster = dask_client(scheduler_address) if scheduler_address is not None else nullcontext()
    with progress_to_run_log(), cluster as client:
        summary = embed_manifest(
            manifest,
            spec,
            store,
            batch_seconds=encoder.batch_seconds,
            shard_seconds=encoder.shard_seconds,
            client=client,
            max_seconds=limits.max_seconds,
        )
    logger = run_logger()
    if logger is not None:  # outside a run (``.fn`` called directly) the caller has the summary
        logger.info(
            "embedded %d utterances (%d rejects) at %.1f audio-s/s",
            summary.utterances_embedded,
            summary.rejects,
            summary.audio_seconds_per_second,
        )
    summary.check_rejects(limits.max_reject_fraction)
    return summary
