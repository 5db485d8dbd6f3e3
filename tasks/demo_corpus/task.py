"""The Prefect task of the demo corpus stage: generate the corpus before ingest reads it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from addgp.config import DemoCorpusConfig
from addgp.progress import progress_to_run_log


@task(name="generate-demo-corpus", task_run_name="demo-corpus[{config.root}]", cache_policy=NO_CACHE)
def demo_corpus_task(config: DemoCorpusConfig) -> dict[str, str]:
    """Synthesise the demo corpus (idempotent: an existing corpus with the same parameters is kept)."""
    from tasks.demo_corpus.writer import generate_demo_corpus

    with progress_to_run_log():
        roots = generate_demo_corpus(
            config.root,
            seed=config.seed,
            conditions=tuple(config.conditions),
            utterances_per_split=dict(config.utterances_per_split),
            sample_rate=config.sample_rate,
        )
    return {name: str(path) for name, path in roots.items()}
