"""Degrade manifest rows under one condition: plan, transform, cache, derive the manifest.

Each source row becomes one row of the derived manifest: same utt_id, split, label,
attack and speaker; dataset ``<dataset>@<condition>`` so that (dataset, utt_id) stays
unique next to the clean manifest and the embedding store keeps the two apart; ``path``
and ``sha256`` of the degraded file; ``source_dataset``, ``source_sha256``, ``condition``,
``condition_params`` (JSON) and ``degrade_seed``. A row that cannot be degraded goes to the
rejects with the condition named. Files already in the cache are reused, never rewritten.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from addgp.progress import progress_bar
from storage import degraded as cache
from tasks.degrade.base import DegradeContext, DegradeError, stream
from tasks.degrade.registry import Condition

DATASET_SEPARATOR = "@"
BABBLE_POOL = 16  # utterances of the corpus that babble is drawn from
NOISE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
CHUNK_FILES = 64  # rows per Dask task: enough to amortise scheduling, small enough to balance
CHUNK_RETRIES = 3  # a chunk whose worker died is rerun; files it already wrote are reused
DERIVED_COLUMNS = ["source_dataset", "source_sha256", "condition", "condition_params", "degrade_seed"]


def derived_dataset(dataset: str, condition: str) -> str:
    """The dataset name of ``dataset``'s copies under ``condition``: ``demo_studio@mp3_64k``."""
    return f"{dataset}{DATASET_SEPARATOR}{condition}"


@dataclass(frozen=True)
class DegradeSummary:
    """What degrading one (dataset, condition) did: files written and reused from the cache, rejects, timings."""

    dataset: str
    condition: str
    files: int
    written: int
    reused: int
    rejects: int
    audio_s: float
    wall_s: float

    @property
    def files_per_second(self) -> float:
        return self.files / self.wall_s if self.wall_s else 0.0

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "files_per_second": round(self.files_per_second, 2),
            "audio_seconds_per_second": round(self.audio_seconds_per_second, 2),
        }


def load_source(path: str, sample_rate: int) -> np.ndarray:
    """A source file as mono float32 at the working rate; DegradeError (the reject reason) when it cannot be read."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DegradeError("source audio file missing") from None
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DegradeError(f"source failed to decode: {exc}") from None
    if audio.size == 0:
        raise DegradeError("source is zero-length audio")
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def build_context(dataset_rows: pd.DataFrame, sample_rate: int, noise_dir: str | Path | None) -> DegradeContext:
    """The babble pool (bona fide utterances of the corpus, chosen by content hash) and the noise folder's files."""
    bona = dataset_rows[dataset_rows["label"] == "bonafide"].drop_duplicates("sha256").sort_values("sha256")
    babble: list[np.ndarray] = []
    babble_shas: list[str] = []
    for path, sha in zip(bona["path"], bona["sha256"]):
        if len(babble) == BABBLE_POOL:
            break
        try:
            babble.append(load_source(path, sample_rate))
            babble_shas.append(sha)
        except DegradeError:
            continue  # an unreadable file is reported by its own row; the pool takes the next one
    folder = Path(noise_dir) if noise_dir is not None else None
    noise_files = (
        sorted(p for p in folder.rglob("*") if p.suffix.lower() in NOISE_SUFFIXES and p.is_file()) if folder else []
    )
    digest = hashlib.sha256()
    for sha in babble_shas:
        digest.update(f"babble {sha}\n".encode())
    for path in noise_files:
        digest.update(f"noise {path.relative_to(folder or '/')} {path.stat().st_size}\n".encode())
    return DegradeContext(babble=babble, noise_files=noise_files, digest=digest.hexdigest(), babble_sha256=babble_shas)


def degrade_wave(
    wave: np.ndarray, condition: Condition, sample_rate: int, seed: int, source_sha256: str, context: DegradeContext
) -> np.ndarray:
    """Apply the condition's transforms in order; each step draws from its own child of the file's random stream."""
    steps = stream(seed, condition.spec(), source_sha256).spawn(len(condition.transforms))
    own = context.excluding(source_sha256)
    out = wave
    for transform, step in zip(condition.transforms, steps):
        out = transform.apply(out, sample_rate, np.random.default_rng(step), own)
        if len(out) != len(wave):
            raise DegradeError(f"{transform.kind} changed the length from {len(wave)} to {len(out)} samples")
    if not np.isfinite(out).all():
        raise DegradeError("the degraded copy contains NaN or infinite samples")
    return out


Result = tuple[str | None, str, str | None, bool]  # (sha256 or None, cache path, reject reason or None, written now)


def degrade_record(
    record: dict, condition: Condition, cache_root: str, seed: int, sample_rate: int, context: DegradeContext
) -> Result:
    """Degrade one manifest row into the cache, or find its copy there already."""
    spec = condition.spec()
    key = cache.cache_key(record["sha256"], spec, seed, sample_rate, context.digest if condition.uses_context else "")
    path = cache.cached_path(cache_root, condition.name, spec, key)
    sha = cache.cached_sha256(path)
    if sha is not None:
        return sha, path, None, False
    try:
        wave = load_source(record["path"], sample_rate)
        out = degrade_wave(wave, condition, sample_rate, seed, record["sha256"], context)
    except DegradeError as exc:
        return None, path, f"condition {condition.name}: {exc}", False
    return cache.write_audio(path, out, sample_rate), path, None, True


def degrade_chunk(
    records: list[dict], condition: Condition, cache_root: str, seed: int, sample_rate: int, context: DegradeContext
) -> list[Result]:
    """The unit of work on a Dask worker: a run of rows, in order."""
    return [degrade_record(r, condition, cache_root, seed, sample_rate, context) for r in records]


def _run_on_dask(client, records, condition, cache_root, seed, sample_rate, context, bar) -> list[Result]:
    from distributed import as_completed

    # The babble pool travels to each worker once, not with every chunk. hash=False: a content
    # key would be shared with the previous condition's scatter of the same pool, whose
    # release can race with this use ("lost dependencies").
    shared = client.scatter(context, broadcast=True, hash=False)
    chunks = [records[i : i + CHUNK_FILES] for i in range(0, len(records), CHUNK_FILES)]
    futures = [
        client.submit(
            degrade_chunk, chunk, condition, cache_root, seed, sample_rate, shared, retries=CHUNK_RETRIES, pure=False
        )
        for chunk in chunks
    ]
    position = {future.key: index for index, future in enumerate(futures)}
    done: dict[int, list[Result]] = {}
    for future in as_completed(futures, loop=client.loop):  # the client is not the process default
        done[position[future.key]] = future.result()
        bar.update(len(chunks[position[future.key]]))
    return [result for index in range(len(chunks)) for result in done[index]]


def degrade_rows(
    rows: pd.DataFrame,
    condition: Condition,
    cache_root: str,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    context: DegradeContext | None = None,
    threads: int = 2,
    client=None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, DegradeSummary]:
    """(derived manifest rows, rejects, summary) for ``rows`` (one source dataset) under ``condition``.

    Runs on ``threads`` threads in-process, or as chunks of ``CHUNK_FILES`` rows on the
    workers of a Dask ``client``. Raises CodecUnavailable before any work when the machine
    lacks a codec the condition needs.
    """
    condition.check_available()
    started = time.perf_counter()
    context = context or DegradeContext()
    spec = condition.spec()
    dataset = str(rows["dataset"].iloc[0]) if len(rows) else ""
    target = derived_dataset(dataset, condition.name)

    records = rows.to_dict("records")
    bar = progress_bar(total=len(records), unit="file", desc=f"degrade {target}", disable=not progress)
    if client is not None:
        results = _run_on_dask(client, records, condition, cache_root, seed, sample_rate, context, bar)
    else:
        results = []
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for result in pool.map(
                lambda r: degrade_record(r, condition, cache_root, seed, sample_rate, context), records
            ):
                results.append(result)
                bar.update(1)
    bar.close()

    derived, rejects = [], []
    for record, (sha, path, reason, _) in zip(records, results):
        if reason is not None:
            rejects.append({"dataset": target, "source": record["path"], "utt_id": record["utt_id"], "reason": reason})
            continue
        derived.append(
            {
                **record,
                "dataset": target,
                "path": path,
                "sha256": sha,
                "source_dataset": dataset,
                "source_sha256": record["sha256"],
                "condition": condition.name,
                "condition_params": spec,
                "degrade_seed": seed,
            }
        )
    columns = list(rows.columns) + [c for c in DERIVED_COLUMNS if c not in rows.columns]
    summary = DegradeSummary(
        dataset=target,
        condition=condition.name,
        files=len(records),
        written=sum(1 for r in results if r[3]),
        reused=sum(1 for r in results if r[2] is None and not r[3]),
        rejects=len(rejects),
        audio_s=float(rows["duration_s"].sum()) if len(rows) else 0.0,
        wall_s=time.perf_counter() - started,
    )
    return (
        pd.DataFrame(derived, columns=columns),
        pd.DataFrame(rejects, columns=["dataset", "source", "utt_id", "reason"]),
        summary,
    )
