"""Prefect task of the embed stage: manifests → embedding store, on a Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import EmbedConfig, EncoderConfig
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


# No result cache: the store itself is the cache (a re-run plans only missing shards).
@task(name="embed", retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def embed_task(
    manifest_paths: list[str],
    encoder: EncoderConfig,
    store: str,
    scheduler_address: str | None,
    limits: EmbedConfig | None = None,
) -> dict:
    manifest = read_manifests(manifest_paths)
    spec = spec_from_config(encoder)
    max_seconds = (limits or EmbedConfig()).max_seconds
    if scheduler_address is None:
        summary = embed_manifest(
            manifest,
            spec,
            store,
            batch_seconds=encoder.batch_seconds,
            shard_seconds=encoder.shard_seconds,
            progress=False,
            max_seconds=max_seconds,
        )
    else:
        with dask_client(scheduler_address) as client:
            summary = embed_manifest(
                manifest,
                spec,
                store,
                batch_seconds=encoder.batch_seconds,
                shard_seconds=encoder.shard_seconds,
                client=client,
                progress=False,
                max_seconds=max_seconds,
            )
    return summary.as_dict()
