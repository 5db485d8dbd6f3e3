"""Embed a manifest into the store: plan the missing shards, run them, report what happened.

Runs in-process when no Dask client is given (tests, small jobs) and on the client's
workers otherwise: one task per shard, retried when a worker dies, pinned to one GPU
per task where workers advertise a ``GPU`` resource.

A shard whose task kills its workers (the scheduler gives up after
``distributed.scheduler.allowed-failures`` deaths: ``KilledWorker``) is split into one task
per file, run one at a time; a file that still kills its worker alone is written to the
store's rejects, so the run completes and no later run tries it again.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from addgp.progress import progress_bar
from storage import embeddings as store
from tasks.embed.audio import DEFAULT_MAX_SECONDS, AudioError, load_audio
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, EncoderSpec, load_encoder, resolve_layers
from tasks.embed.shards import Shard, ShardResult, embed_shard, plan_shards, reject_shard, split_shard

SHARD_RETRIES = 3
log = logging.getLogger(__name__)


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
    shards_fenced: int = 0  # shards a newer run took over before they were committed
    files_crashed: int = 0  # files that killed their worker alone and were rejected

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "audio_seconds_per_second": round(self.audio_seconds_per_second, 2)}


class _Bar(tqdm):
    """tqdm with one extra field, ``{done}``, for the bar format (tqdm's ``{postfix}`` adds a comma)."""

    done = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "done": self.done}


class EmbedProgress:
    """The embed progress bar, for a person: files and audio done of the total, the speed as
    a multiple of real time, elapsed and ETA as clock times, e.g.
    ``embed tiny-random:  41%|████▏     | 460/1126 files, audio 07:40/18:46, 12.5× real time [00:37<00:53]``.

    The bar advances in whole audio-seconds — the work is proportional to audio, not to
    files — so the ETA holds when file lengths vary.
    """

    def __init__(self, shards: list, desc: str, disable: bool = False):
        self.files_total = sum(len(s.rows) for s in shards)
        self.audio_total = sum(s.audio_seconds for s in shards)
        self.files = 0
        self.audio = 0.0
        self.bar = progress_bar(
            tqdm_class=_Bar,
            total=round(self.audio_total),
            desc=desc,
            disable=disable,
            unit="audio-s",
            bar_format="{desc}: {percentage:3.0f}%|{bar:10}| {done} [{elapsed}<{remaining}]",
        )
        self._describe(0.0)

    def _describe(self, elapsed: float) -> None:
        speed = f", {self.audio / elapsed:.1f}× real time" if self.audio and elapsed > 0 else ""
        clock = tqdm.format_interval
        self.bar.done = (
            f"{self.files}/{self.files_total} files, audio {clock(self.audio)}/{clock(self.audio_total)}{speed}"
        )

    def advance(self, shard) -> None:
        """One shard done (written, skipped or rejected: its files are no longer to do)."""
        self.files += len(shard.rows)
        before = round(self.audio)
        self.audio += shard.audio_seconds
        self._describe(time.time() - self.bar.start_t if not self.bar.disable else 0.0)
        self.bar.update(round(self.audio) - before)

    def close(self) -> None:
        self.bar.close()


def embed_manifest(
    manifest: pd.DataFrame,
    spec: EncoderSpec,
    store_root: str,
    *,
    batch_seconds: float | None = None,
    shard_seconds: float = 600.0,
    client=None,
    progress: bool = True,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> EmbedSummary:
    """Fill ``store_root`` with embeddings of every manifest row it lacks for ``spec``.

    ``max_seconds``: files whose header declares more audio are rejected (unless
    ``spec.crop_seconds`` crops them); None lifts the limit.
    """
    started = time.perf_counter()
    spec = resolve_layers(spec)
    with store.writer_lock(store_root) as fence:
        # Planning only after the fence is up: every shard of an earlier run is either
        # committed (and skipped here) or refused at its commit.
        shards = plan_shards(manifest, spec, store_root, shard_seconds)
        bar = EmbedProgress(shards, f"embed {spec.name}", disable=not progress)
        results: list[ShardResult] = []
        if client is None:
            for shard in shards:
                results.append(embed_shard(shard, spec, store_root, batch_seconds, None, fence, max_seconds))
                bar.advance(shard)
        else:
            results = _run_on_dask(client, shards, spec, store_root, batch_seconds, bar, fence, max_seconds)
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
        shards_fenced=sum(r.fenced for r in results),
        files_crashed=sum(1 for r in results if r.crashed),
    )


def _run_on_dask(
    client,
    shards: list[Shard],
    spec: EncoderSpec,
    store_root: str,
    batch_seconds: float | None,
    bar,
    fence: str | None,
    max_seconds: float | None,
) -> list[ShardResult]:
    from distributed import KilledWorker, as_completed

    gpu_workers = [w for w in client.scheduler_info().get("workers", {}).values() if w.get("resources", {}).get("GPU")]
    # A GPU never runs two encoders at once: each shard task claims one whole GPU.
    resources = {"GPU": 1} if gpu_workers else None
    # Task keys carry the run: a task of a killed run that still executes under the same
    # shard key must not be taken for this run's (its fence is stale; it writes nothing).
    run = (fence or uuid.uuid4().hex)[:12]
    submitted: dict[str, tuple[Shard, bool]] = {}  # task key -> (shard, ran alone as a suspect)

    def submit(shard: Shard, isolated: bool = False):
        key = f"embed-shard-{shard.key}-{run}" + ("-alone" if isolated else "")
        submitted[key] = (shard, isolated)
        # A suspect gets no retries: each one would cost another worker.
        return client.submit(
            embed_shard,
            shard,
            spec,
            store_root,
            batch_seconds,
            None,
            fence,
            max_seconds,
            key=key,
            retries=0 if isolated else SHARD_RETRIES,
            resources=resources,
            pure=False,
        )

    pending = as_completed([submit(shard) for shard in shards], loop=client.loop)
    # Files of shards that killed their workers, run one task at a time: a worker's death
    # also counts against the tasks merely queued on it, so only a file that was alone in
    # flight when its worker died is known to be the one that killed it.
    suspects: list[Shard] = []
    suspect_running = False
    results: list[ShardResult] = []
    for future in pending:
        shard, isolated = submitted[future.key]
        try:
            result = future.result()
        except KilledWorker as exc:
            if not isolated:
                suspects.extend(split_shard(shard, spec))
                result = None
            else:
                path = shard.rows[0][2]
                result = reject_shard(
                    shard,
                    spec,
                    store_root,
                    f"crashed the worker process embedding it ({type(exc).__name__}: {exc}); "
                    "likely out of memory or a decoder crash — inspect the file before re-ingesting it",
                    fence,
                )
                result.crashed = True
                log.warning("embed: %s killed the worker embedding it; written to the store's rejects", path)
        if isolated:
            suspect_running = False
        if suspects and not suspect_running:
            pending.add(submit(suspects.pop(0), isolated=True))
            suspect_running = True
        if result is not None:
            results.append(result)
            bar.advance(shard)
    return results


def parse_layers(text: str, option: str = "--layers") -> tuple[int, ...]:
    """Layer indices from a comma-separated option value; ValueError naming the option and what it accepts."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if not parts or any(not p for p in parts):
            raise ValueError
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: expected comma-separated hidden-state indices — integers, 0 = CNN features, "
            "1…N = transformer layers, -1 = last, -2 = second to last — e.g. -1 or 8,12,-1"
        ) from None


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
