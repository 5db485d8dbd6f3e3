"""The score cache: a model's scores on one eval set, kept until the model or the data changes.

A cached entry is the score table (``storage.reports.SCORE_COLUMNS`` layout) of one model on
one dataset's selected rows, keyed by

* the model's card digest (``storage.models.card_digest``: weights, hyper-parameters, fitted
  calibration, encoder setting — everything that decides a score);
* the embedding setting it reads (encoder, layer, pooling, crop);
* the dataset's snapshot (``dataset_snapshot``): a digest of the selected manifest rows (every
  column a score row carries: identity, content hash, split, label, attack, speaker,
  conditions) and of the names of the store's shard files of that dataset and setting
  (content-keyed: a new or re-embedded row is a new shard name);
* ``CACHE_FORMAT``, bumped when scoring code changes what it writes.

So a night without new data, or the champion's side of a night with a batch, reads its
scores instead of scoring again; anything that could change a score misses. Entries live
inside the embedding store, at ``STORE/_scores/<format>/<model digest>/<setting slug>/
<dataset folder>/scores-<snapshot>.parquet``: next to the embeddings they derive from, hidden
from ``pyarrow.dataset.dataset(STORE)`` and from the embedding readers (``_`` folder,
``scores-`` files). Each entry is written atomically; deleting ``STORE/_scores`` at any time is
safe (the next run scores again). Beside an entry, small JSON summaries of its scores (``summary_path``: a quiet
night's EER and bootstrap interval per corpus, keyed by resamples and seed) spare a night
without new data even the bootstrap.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pandas as pd

from storage.embeddings import dataset_folder, encoder_slug, setting_shards
from storage.models import EmbeddingSetting
from storage.paths import atomic_write, exists, filesystem, join

# where a (model, eval set)'s scores came from, as run summaries and reports say it
CACHED, SCORED = "reused from the score cache", "scored"
CACHE_DIR = "_scores"
log = logging.getLogger(__name__)
CACHE_FORMAT = "v1"
# manifest columns a score row carries (tasks/evaluate/scoring.py): a change in any of them is a new snapshot
SNAPSHOT_COLUMNS = (
    "dataset",
    "utt_id",
    "sha256",
    "split",
    "label",
    "attack",
    "speaker",
    "codec",
    "transmission",
    "language",
)


def dataset_snapshot(selected: pd.DataFrame, store: str, setting: EmbeddingSetting, dataset: str) -> str:
    """Digest of what one dataset's scores depend on besides the model: its selected manifest rows
    (order-free) and the store's shard names for it under ``setting``."""
    columns = [c for c in SNAPSHOT_COLUMNS if c in selected.columns]
    row_hashes = np.sort(pd.util.hash_pandas_object(selected[columns].astype(str), index=False).to_numpy())
    digest = hashlib.sha256()
    digest.update(",".join(columns).encode())
    digest.update(row_hashes.tobytes())
    for name in setting_shards(store, setting.encoder, setting.pooling, setting.crop_s, dataset):
        digest.update(name.encode() + b"\0")
    return digest.hexdigest()[:32]


def cache_path(store: str, model_digest: str, setting: EmbeddingSetting, dataset: str, snapshot: str) -> str:
    slug = f"{encoder_slug(setting.encoder, setting.pooling, setting.crop_s)}--layer{setting.layer}"
    return join(
        store, CACHE_DIR, CACHE_FORMAT, model_digest, slug, dataset_folder(dataset), f"scores-{snapshot}.parquet"
    )


def read_cached_scores(path: str) -> pd.DataFrame | None:
    """The cached score table at ``path``, or None when there is none."""
    if not exists(path):
        return None
    fs, local = filesystem(path)
    with fs.open(local, "rb") as handle:
        return pd.read_parquet(handle)


def write_cached_scores(path: str, scores: pd.DataFrame) -> bool:
    """Keep ``scores`` under ``path``, atomically (a reader sees the whole entry or none).

    A store this process may not write (read-only mount, full disk) only loses the cache:
    the failure is logged as a warning naming the path, and False returned.
    """
    try:
        with atomic_write(path) as handle:
            scores.to_parquet(handle, index=False)
    except OSError as exc:
        log.warning("score cache not written (%s: %s); the next run scores again", path, exc)
        return False
    return True


def summary_path(entry: str, name: str) -> str:
    """Where a summary derived from the cached scores at ``entry`` lives (``name``: what and how,
    e.g. ``reevaluation-boot200-seed3``): beside the entry, so it goes when the entry goes."""
    return f"{entry.removesuffix('.parquet')}.{name}.json"


def read_cached_summary(path: str) -> dict | None:
    """A summary kept by ``write_cached_summary``, or None."""
    if not exists(path):
        return None
    fs, local = filesystem(path)
    with fs.open(local, "r") as handle:
        return json.load(handle)


def write_cached_summary(path: str, summary: dict) -> None:
    """Keep a small JSON summary of cached scores (same guarantees as ``write_cached_scores``)."""
    try:
        with atomic_write(path, "w") as handle:
            json.dump(summary, handle)
    except OSError as exc:
        log.warning("score cache summary not written (%s: %s)", path, exc)
