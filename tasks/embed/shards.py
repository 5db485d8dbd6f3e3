"""The unit of embedding work: plan shards from a manifest, embed one shard, write it.

A shard is a set of manifest rows of one dataset holding about ``shard_seconds`` of audio.
Shards are planned only from rows the store does not have yet, nor has rejected for good
(the nightly path embeds only new audio; a transient reject is planned again), and a
shard's key hashes its rows' identities and the encoder setting, so planning the same work
twice yields the same shard files.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from storage import embeddings as store
from tasks.embed.audio import DEFAULT_MAX_SECONDS, AudioError, load_audio
from tasks.embed.embedder import Embedder, Timings, length_buckets
from tasks.embed.encoder import EncoderSpec
from tasks.embed.loading import load_encoder

SHARD_COLUMNS = ["utt_id", "dataset", "path", "duration_s", "sha256"]
DECODE_THREADS = 4
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    key: str
    dataset: str
    rows: tuple[tuple, ...]  # SHARD_COLUMNS values; tuples pickle small and cheap for Dask

    @property
    def audio_seconds(self) -> float:
        return float(sum(r[3] for r in self.rows))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows), columns=SHARD_COLUMNS)


@dataclass
class ShardResult:
    key: str
    dataset: str
    utterances: int
    rejects: int
    audio_s: float
    model_s: float
    decode_s: float
    wall_s: float
    oom_splits: int
    skipped: bool = False
    fenced: bool = False  # a newer run owned the store at commit time: nothing was written
    crashed: bool = False  # its one file killed the worker embedding it; written as a reject


def plan_shards(manifest: pd.DataFrame, spec: EncoderSpec, store_root: str, shard_seconds: float) -> list[Shard]:
    """Shards covering the manifest rows that the store lacks for this encoder setting."""
    done = store.completed_keys(store_root, spec.name, spec.pooling, spec.crop_seconds, list(spec.layers))
    rows = manifest[SHARD_COLUMNS].copy()
    if spec.crop_seconds is not None:
        rows["duration_s"] = rows["duration_s"].clip(upper=spec.crop_seconds)
    if done:
        identity = list(zip(rows["dataset"], rows["utt_id"], rows["sha256"]))
        rows = rows[[key not in done for key in identity]]
    shards: list[Shard] = []
    for dataset, group in rows.sort_values(["dataset", "utt_id"]).groupby("dataset", sort=True):
        # Contiguous runs in utt_id order keep shard membership stable when new rows arrive.
        budget = np.cumsum(group["duration_s"].to_numpy()) // shard_seconds
        for _, part in group.groupby(budget, sort=True):
            members = tuple(part.itertuples(index=False, name=None))
            shards.append(Shard(key=_shard_key(spec, members), dataset=str(dataset), rows=members))
    return shards


def split_shard(shard: Shard, spec: EncoderSpec) -> list[Shard]:
    """One shard per row: how a shard that crashed its workers is narrowed down to the file that did it."""
    return [Shard(key=_shard_key(spec, (row,)), dataset=shard.dataset, rows=(row,)) for row in shard.rows]


def reject_shard(
    shard: Shard, spec: EncoderSpec, store_root: str, reason: str, fence: str | None = None
) -> ShardResult:
    """Write ``shard`` with every row a reject (``reason``), so no later run plans it again."""
    started = time.perf_counter()
    location = store.ShardLocation(
        store_root, store.encoder_slug(spec.name, spec.pooling, spec.crop_seconds), shard.dataset, shard.key
    )
    frame = shard.frame()
    # Permanent: a file that kills its worker alone would kill the next run's too.
    rejects = frame[["dataset", "utt_id", "sha256", "path"]].assign(reason=reason, kind=store.PERMANENT)
    no_rows = pd.DataFrame(columns=[f.name for f in store.META_FIELDS])
    try:
        store.write_shard(location, no_rows, np.zeros((0, 0), np.float32), spec.storage_dtype, rejects, fence=fence)
    except store.StaleWriterError:
        return ShardResult(
            shard.key, shard.dataset, 0, 0, 0.0, 0.0, 0.0, time.perf_counter() - started, 0, skipped=True, fenced=True
        )
    return ShardResult(shard.key, shard.dataset, 0, len(frame), 0.0, 0.0, 0.0, time.perf_counter() - started, 0)


def _shard_key(spec: EncoderSpec, rows: tuple[tuple, ...]) -> str:
    digest = hashlib.sha256(spec.run_key().encode())
    digest.update(repr(spec.layers).encode())
    for utt_id, dataset, _path, _duration, sha in rows:
        digest.update(f"{dataset}\0{utt_id}\0{sha}\n".encode())
    return digest.hexdigest()[:24]


@lru_cache(maxsize=1)
def worker_encoder(spec: EncoderSpec) -> Embedder:
    """One encoder per worker process, loaded on first use and kept for later shards.

    Tasks carry only the (small, hashable) spec; shipping the model with every task would
    send hundreds of MB per shard. maxsize=1: a worker serves one encoder setting at a time.
    """
    return Embedder(load_encoder(spec))


def embed_shard(
    shard: Shard,
    spec: EncoderSpec,
    store_root: str,
    batch_seconds: float | None,
    embedder: Embedder | None = None,
    fence: str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> ShardResult:
    """Decode, embed and write one shard; rows that cannot be embedded become rejects.

    Each file's bytes are checked against the manifest's sha256 as they are read, and
    ``max_seconds`` bounds the duration a header may declare (see ``load_audio``).
    ``fence``: the planning run's token (``storage.embeddings.writer_lock``); when a newer
    run owns the store by the time the shard is done, nothing is written and the result
    says ``fenced``. ``batch_seconds`` None: the default measured for this worker's device
    (resolved here, on the worker, since the driver may have no GPU).
    """
    started = time.perf_counter()
    location = store.ShardLocation(
        store_root, store.encoder_slug(spec.name, spec.pooling, spec.crop_seconds), shard.dataset, shard.key
    )
    if store.shard_exists(location):
        return ShardResult(shard.key, shard.dataset, len(shard.rows), 0, 0.0, 0.0, 0.0, 0.0, 0, skipped=True)
    embedder = embedder or worker_encoder(spec)
    frame = shard.frame()
    timings = Timings()
    min_samples = embedder.encoder.min_samples()
    expected = np.maximum((frame["duration_s"].to_numpy() * spec.sample_rate).astype(int), 1)
    batches = length_buckets(expected, int(spec.batch_seconds(batch_seconds) * spec.sample_rate))

    rejects: list[dict] = []
    kept_rows: list[int] = []
    pooled: dict[int, list[np.ndarray]] = {layer: [] for layer in embedder.layers}

    def decode(index: int) -> tuple[int, np.ndarray | None, AudioError | None, float]:
        """(index, wave or None, the reject or None, seconds spent), run on a decode thread."""
        t0 = time.perf_counter()
        try:
            wave = load_audio(
                frame.at[index, "path"],
                spec.sample_rate,
                spec.crop_seconds,
                expected_sha256=frame.at[index, "sha256"],
                max_seconds=max_seconds,
            )
            if len(wave) < min_samples:
                raise AudioError(f"too short for the encoder: {len(wave)} samples < receptive field {min_samples}")
            return index, wave, None, time.perf_counter() - t0
        except AudioError as exc:
            return index, None, exc, time.perf_counter() - t0

    # Decoding the next batch on CPU threads overlaps with the model running this one.
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        pending = [pool.map(decode, batch) for batch in batches[:1]]
        for number in range(len(batches)):
            if number + 1 < len(batches):
                pending.append(pool.map(decode, batches[number + 1]))
            waves: list[np.ndarray] = []
            indices: list[int] = []
            for index, wave, problem, seconds in pending.pop(0):
                timings.decode_s += seconds  # summed here, on one thread: the decode threads share nothing
                if problem is not None:
                    kind = store.TRANSIENT if problem.transient else store.PERMANENT
                    rejects.append({**_identity(frame, index), "reason": str(problem), "kind": kind})
                    continue
                assert wave is not None  # decode returns a wave whenever it reports no problem
                waves.append(wave)
                indices.append(index)
            if not waves:
                continue
            result = embedder.embed(waves, timings)
            kept_rows.extend(indices)
            for layer in embedder.layers:
                pooled[layer].append(result[layer])
            timings.audio_s += sum(len(w) for w in waves) / spec.sample_rate

    rows, matrix = _rows_for_store(frame, kept_rows, pooled, spec, embedder)
    rejects_df = pd.DataFrame(rejects, columns=store.REJECTS_SCHEMA.names)
    try:
        store.write_shard(location, rows, matrix, spec.storage_dtype, rejects_df, fence=fence)
    except store.StaleWriterError as exc:
        log.warning("shard not committed: %s", exc)
        return ShardResult(
            shard.key, shard.dataset, 0, 0, 0.0, 0.0, 0.0, time.perf_counter() - started, 0, skipped=True, fenced=True
        )
    return ShardResult(
        key=shard.key,
        dataset=shard.dataset,
        utterances=len(kept_rows),
        rejects=len(rejects),
        audio_s=timings.audio_s,
        model_s=timings.model_s,
        decode_s=timings.decode_s,
        wall_s=time.perf_counter() - started,
        oom_splits=timings.oom_splits,
    )


def _identity(frame: pd.DataFrame, index: int) -> dict:
    return {key: frame.at[index, key] for key in ("dataset", "utt_id", "sha256", "path")}


def _rows_for_store(
    frame: pd.DataFrame, kept: list[int], pooled: dict[int, list[np.ndarray]], spec: EncoderSpec, embedder: Embedder
) -> tuple[pd.DataFrame, np.ndarray]:
    """Long format: one row per (utterance, layer), in the store's column layout."""
    if not kept:
        return pd.DataFrame(columns=[f.name for f in store.META_FIELDS]), np.zeros((0, embedder.output_dim), np.float32)
    base = frame.loc[kept, ["utt_id", "dataset", "sha256"]].reset_index(drop=True)
    # Store layers by their index in hidden_states (0 = CNN features after projection),
    # so rows from "-1" and "24" of a 24-layer model are the same layer.
    parts, matrices = [], []
    for layer in embedder.layers:
        part = base.copy()
        part["layer"] = layer
        parts.append(part)
        matrices.append(np.concatenate(pooled[layer]))
    rows = pd.concat(parts, ignore_index=True)
    rows["encoder"] = spec.name
    rows["random_weights"] = spec.random_weights
    rows["pooling"] = spec.pooling
    rows["crop_s"] = spec.crop_seconds
    return rows[[f.name for f in store.META_FIELDS]], np.concatenate(matrices)
