"""Embed a manifest into the store: plan the missing shards, run them, report what happened.

Runs in-process when no Dask client is given (tests, small jobs) and on the client's
workers otherwise: one task per shard, retried when a worker dies, pinned to one GPU
per task where workers advertise a ``GPU`` resource.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from storage import embeddings as store
from tasks.embed.audio import AudioError, load_audio
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, EncoderSpec, load_encoder, resolve_layers
from tasks.embed.shards import ShardResult, embed_shard, plan_shards

SHARD_RETRIES = 3


@dataclass
class EmbedSummary:
    encoder: str
    random_weights: bool
    layers: list[int]
    shards_planned: int
    utterances_embedded: int
    rejects: int
    audio_s: float
    model_s: float
    decode_s: float
    wall_s: float
    oom_splits: int
    warnings: list[str] = field(default_factory=list)

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "audio_seconds_per_second": round(self.audio_seconds_per_second, 2)}


def embed_manifest(
    manifest: pd.DataFrame,
    spec: EncoderSpec,
    store_root: str,
    *,
    batch_seconds: float | None = None,
    shard_seconds: float = 600.0,
    client=None,
    progress: bool = True,
) -> EmbedSummary:
    """Fill ``store_root`` with embeddings of every manifest row it lacks for ``spec``."""
    started = time.perf_counter()
    spec = resolve_layers(spec)
    with store.writer_lock(store_root):
        shards = plan_shards(manifest, spec, store_root, shard_seconds)
        bar = tqdm(total=sum(s.audio_seconds for s in shards), unit="audio-s", desc=f"embed {spec.name}", disable=not progress)
        results: list[ShardResult] = []
        if client is None:
            for shard in shards:
                results.append(embed_shard(shard, spec, store_root, batch_seconds))
                bar.update(shard.audio_seconds)
        else:
            results = _run_on_dask(client, shards, spec, store_root, batch_seconds, bar)
        bar.close()
    warnings = [RANDOM_WEIGHT_WARNING] if spec.random_weights else []
    return EmbedSummary(
        encoder=spec.name,
        random_weights=spec.random_weights,
        layers=list(spec.layers),
        shards_planned=len(shards),
        utterances_embedded=sum(r.utterances for r in results if not r.skipped),
        rejects=sum(r.rejects for r in results),
        audio_s=sum(r.audio_s for r in results),
        model_s=sum(r.model_s for r in results),
        decode_s=sum(r.decode_s for r in results),
        wall_s=time.perf_counter() - started,
        oom_splits=sum(r.oom_splits for r in results),
        warnings=warnings,
    )


def _run_on_dask(client, shards, spec: EncoderSpec, store_root: str, batch_seconds: float | None, bar) -> list[ShardResult]:
    from distributed import as_completed

    gpu_workers = [w for w in client.scheduler_info().get("workers", {}).values() if w.get("resources", {}).get("GPU")]
    # A GPU never runs two encoders at once: each shard task claims one whole GPU.
    resources = {"GPU": 1} if gpu_workers else None
    futures = [
        client.submit(
            embed_shard,
            shard,
            spec,
            store_root,
            batch_seconds,
            key=f"embed-shard-{shard.key}",
            retries=SHARD_RETRIES,
            resources=resources,
            pure=False,
        )
        for shard in shards
    ]
    seconds = {shard.key: shard.audio_seconds for shard in shards}
    results: list[ShardResult] = []
    for future in as_completed(futures, loop=client.loop):
        result = future.result()
        results.append(result)
        bar.update(seconds[result.key])
    return results


def embed_paths(
    paths: list[str], spec: EncoderSpec, batch_seconds: float | None = None, embedder: Embedder | None = None
) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Embed audio files in memory (no store): (embedded paths, (n, dim) matrix of the first layer, {path: reason}).

    For scoring files people bring (`addgp score`); batched by length like the store path
    (``batch_seconds`` None: the device's measured default).
    """
    embedder = embedder or Embedder(load_encoder(resolve_layers(spec)))
    waves, kept, failures = [], [], {}
    min_samples = embedder.encoder.min_samples()
    for path in paths:
        try:
            wave = load_audio(path, spec.sample_rate, spec.crop_seconds)
            if len(wave) < min_samples:
                raise AudioError(f"too short for the encoder: {len(wave)} samples < receptive field {min_samples}")
        except AudioError as exc:
            failures[path] = str(exc)
            continue
        waves.append(wave)
        kept.append(path)
    layer = embedder.layers[0]
    rows = np.zeros((len(waves), embedder.output_dim), dtype=np.float32)
    for batch in length_buckets([len(w) for w in waves], int(spec.batch_seconds(batch_seconds) * spec.sample_rate)):
        rows[batch] = embedder.embed([waves[i] for i in batch])[layer]
    return kept, rows, failures
