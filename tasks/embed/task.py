"""Prefect task of the embed stage: manifests → embedding store, on a Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import EmbedConfig, EncoderConfig
from addgp.progress import progress_to_run_log
from addgp.runs import manifest_datasets, task_label
from storage.manifests import read_manifests
from tasks.embed.encoder import spec_from_config
from tasks.embed.run import embed_manifest


@contextmanager
def dask_client(address: str) -> Iterator:
    """A client of the Dask scheduler at ``address``, closed on exit (the cluster itself is the caller's)."""
    from distributed import Client

    client = Client(address, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


def _embed_name(parameters: dict[str, Any]) -> str:
    return task_label("embed", parameters["encoder"].id, manifest_datasets(parameters["manifest_paths"]))


# No result cache: the store itself is the cache (a re-run plans only missing shards).
# (ignore: the Prefect protocol for a name callback also asks for a classmethod no function has)
@task(name="embed", task_run_name=_embed_name, retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def embed_task(
    manifest_paths: list[str],
    encoder: EncoderConfig,
    store: str,
    scheduler_address: str | None,
    limits: EmbedConfig | None = None,
) -> dict:
    manifest = read_manifests(manifest_paths)
    spec = spec_from_config(encoder)
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
            max_seconds=(limits or EmbedConfig()).max_seconds,
        )
    return summary.as_dict()
