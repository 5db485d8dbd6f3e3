"""Prefect tasks of the ingest stage: generate the demo corpus, ingest a dataset into a manifest."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import DatasetConfig, DemoCorpusConfig
from addgp.storage.manifests import rejects_path_for, write_manifest, write_rejects
from addgp.tasks.ingest.registry import ingest_dataset


@task(name="generate-demo-corpus", cache_policy=NO_CACHE)
def demo_corpus_task(config: DemoCorpusConfig) -> dict[str, str]:
    """Synthesise the demo corpus (idempotent: an existing corpus with the same parameters is kept)."""
    from addgp.tasks.ingest.demo_corpus import generate_demo_corpus

    roots = generate_demo_corpus(
        config.root,
        seed=config.seed,
        conditions=tuple(config.conditions),
        utterances_per_split=dict(config.utterances_per_split),
        sample_rate=config.sample_rate,
        progress=False,
    )
    return {name: str(path) for name, path in roots.items()}


@task(name="ingest", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def ingest_task(dataset: DatasetConfig, manifest_path: str) -> dict:
    """Read one corpus into ``manifest_path`` (+ its rejects table); returns the summary."""
    result = ingest_dataset(dataset.adapter, dataset.root, dataset=dataset.name, progress=False, **dataset.options)
    write_manifest(result.manifest, manifest_path)
    write_rejects(result.rejects, rejects_path_for(manifest_path))
    return {**result.summary(), "manifest": manifest_path}
