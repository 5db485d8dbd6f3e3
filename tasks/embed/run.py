"""Embed a manifest into the store: plan the missing shards, run them, report what happened.

Runs in-process when no Dask client is given (tests, small jobs) and on the client's workers
otherwise: one task per shard, retried when a worker dies, one GPU per task where workers
advertise a ``GPU`` resource; a shard that keeps killing its workers is retried file by file,
so one poison file becomes a reject instead of failing the run. Afterwards each dataset's rows
still not embedded are counted, and ``EmbedSummary.check_rejects`` raises
``TooManyRejectsError`` (the CLI's exit code 7) over ``embed.max_reject_fraction``. How a run
works, and permanent against transient rejects: docs/embedding.md.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from addgp.progress import progress_bar
from storage import embeddings as store
from storage.paths import absolute
from tasks.embed.audio import DEFAULT_MAX_SECONDS, AudioError, load_audio
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING, EncoderSpec, resolve_layers
from tasks.embed.loading import load_encoder
from tasks.embed.shards import Shard, ShardResult, embed_shard, plan_shards, reject_shard, split_shard
from tasks.embed.summary import EmbedSummary

SHARD_RETRIES = 3
log = logging.getLogger(__name__)


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
    ``spec.crop_seconds`` crops them); None lifts the limit. A relative ``store_root`` is made
    absolute here, before any task is shipped: a Dask worker resolves paths against its own
    working directory. (Manifest paths are absolute already: see ``storage.manifests``.)
    """
    started = time.perf_counter()
    spec = resolve_layers(spec)
    store_root = absolute(store_root)
    with store.writer_lock(store_root) as fence:
        # Planning only after the fence is up: every shard of an earlier run is either
        # committed (and skipped here) or refused at its commit.
        retired = store.retire_empty_markers(store_root)
        if retired:
            log.info(
                "embed: deleted %d empty embeddings file(s) of an earlier version from %s", len(retired), store_root
            )
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
        store=store_root,
        rejects_by_dataset=rejects_by_dataset(manifest, spec, store_root),
    )


def reason_head(reason: str) -> str:
    """A reject reason without its file-specific details, so that reasons can be counted: the text
    before the first ':' with numbers as N (``header declares N s (N frames at N Hz), over …``)."""
    return re.sub(r"\d+(\.\d+)?", "N", str(reason).split(":", 1)[0])


def rejects_by_dataset(manifest: pd.DataFrame, spec: EncoderSpec, store_root: str) -> dict[str, dict]:
    """Per dataset of ``manifest``: its rows and those the store holds as rejects, not embedded (see EmbedSummary)."""
    outstanding = store.outstanding_rejects(store_root, spec.name, spec.pooling, spec.crop_seconds, list(spec.layers))
    wanted = set(zip(manifest["dataset"], manifest["utt_id"], manifest["sha256"]))
    identity = zip(outstanding["dataset"], outstanding["utt_id"], outstanding["sha256"])
    outstanding = outstanding[np.array([key in wanted for key in identity], dtype=bool)]
    out = {}
    for name, rows in manifest.groupby("dataset", sort=True)["utt_id"].size().items():
        mine = outstanding[outstanding["dataset"] == name]
        counts: dict[str, int | str | None] = {
            "rows": int(rows),
            "rejected": len(mine),
            "transient": int((mine["kind"] == store.TRANSIENT).sum()),
            "permanent": int((mine["kind"] == store.PERMANENT).sum()),
            "commonest_reason": None,
            "commonest_count": 0,
            "commonest_kind": None,
            "example": None,
        }
        if len(mine):
            heads = mine["reason"].map(reason_head)
            head = heads.value_counts().index[0]
            first = mine[heads == head].iloc[0]
            counts.update(
                commonest_reason=str(head),
                commonest_count=int((heads == head).sum()),
                commonest_kind=str(first["kind"]),
                example=f"{first['path']}: {first['reason']}",
            )
        out[str(name)] = counts
    return out


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
