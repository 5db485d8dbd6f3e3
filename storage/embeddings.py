"""The embedding store: a directory of Parquet shards, one row per (utterance, encoder, layer, pooling).

Layout::

    STORE/<encoder-slug>/<dataset-folder>/part-<shard-key>.parquet          embeddings
    STORE/_rejects/<encoder-slug>/<dataset-folder>/rejects-<shard-key>.parquet   what could not be embedded
    STORE/.writer.lock, STORE/.writer.epoch                                  who may commit shards

``pyarrow.dataset.dataset(STORE)`` reads every embedding shard: it skips paths starting with
``_`` or ``.``, so rejects, locks and in-flight temporary files never show up as rows. Every
folder holding embeddings is therefore named so that it never starts with ``_`` or ``.``
(``dataset_folder``: percent-encoding, reversible and collision-free), and this module's own
readers list the ``part-*.parquet`` files explicitly instead of trusting discovery, so no
written shard can be skipped — including those of stores written before the encoding, whose
folders were named by replacing unusual characters with ``_``.

A shard's key is a hash of its rows' identities and the encoder settings, and each shard is
written by an atomic rename, so a shard is either wholly present or absent and writing it
twice gives the same file: a re-run adds nothing and a killed run resumes at the first
missing shard.

Exactly-once across runs (a killed Dask client whose workers keep writing while the next run
plans the same rows under other shard keys) rests on a *fence*: the run holding the writer
lock writes a new epoch token to ``STORE/.writer.epoch``, every shard task carries the token
of the run that planned it, and a shard is committed (renamed into place) only under the
short commit lock and only while the token is still current. A run's planning starts after
its epoch is written, so every shard it can see was committed before, and every shard of an
older run not yet committed is refused. Object stores have no lock: there the readers of this
module drop duplicate keys (raw ``pyarrow.dataset`` readers would not; see docs/operations.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from addgp.contracts import EMBEDDING_KEY_COLUMNS, looks_like_path
from storage.paths import OldFormatError, exists, filesystem, flocked, join

REJECTS_DIR = "_rejects"
LOCK_FILE = ".writer.lock"
EPOCH_FILE = ".writer.epoch"
COMMIT_LOCK_FILE = ".commit.lock"
# A file-name component may hold 255 bytes; longer encoded names keep a readable prefix and a hash.
MAX_FOLDER_CHARS = 200
ROW_IDENTITY = ("dataset", "utt_id", "sha256")
# Rows per record batch of the streaming reader (``iter_embeddings``): at d = 1,024 a batch is
# 32 MB of float16 as stored and 64 MB as float32, whatever the size of the store.
BATCH_ROWS = 16_384
# crop_s is part of a row's key too: the same audio cropped differently is another embedding.
DEDUPE_COLUMNS = (*EMBEDDING_KEY_COLUMNS, "crop_s", "sha256")

# What the embed stage could not use, keyed like the rows it replaces. ``kind`` says whether a
# re-run skips the row (permanent: its bytes are unusable) or tries it again (transient: the
# file could not be read — missing, no permission, an I/O error — which may be over by then).
TRANSIENT = "transient"
PERMANENT = "permanent"
REJECTS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("utt_id", pa.string()),
        ("sha256", pa.string()),
        ("path", pa.string()),
        ("reason", pa.string()),
        ("kind", pa.string()),
    ]
)
# Which audio and which encoder a stored row is of: shared by the embeddings and the frame cache.
SOURCE_FIELDS = [
    pa.field("utt_id", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("encoder", pa.string()),
    pa.field("random_weights", pa.bool_()),
]
META_FIELDS = [
    *SOURCE_FIELDS,
    pa.field("layer", pa.int32()),
    pa.field("pooling", pa.string()),
    pa.field("crop_s", pa.float64()),
]


def encoder_slug(encoder: str, pooling: str, crop_s: float | None) -> str:
    """Folder name for one encoder setting, safe on every filesystem."""
    crop = "full" if crop_s is None else f"crop{crop_s:g}s"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.rstrip("/").rsplit("/", 1)[-1]).strip("._-")[:60] or "encoder"
    # The readable part may collide (two local dirs both named 'xlsr'); the hash never does.
    # It must not start with '.' or '_': dataset discovery treats such paths as hidden.
    digest = hashlib.sha256(f"{encoder}|{pooling}|{crop}".encode()).hexdigest()[:10]
    return f"{readable}--{pooling.replace('+', '_')}--{crop}--{digest}"


def embedding_schema(dim: int, dtype: str) -> pa.Schema:
    value_type = {"float32": pa.float32(), "float16": pa.float16()}[dtype]
    return pa.schema(META_FIELDS + [pa.field("embedding", pa.list_(value_type, dim))])


@dataclass(frozen=True)
class ShardLocation:
    store: str
    slug: str
    dataset: str
    key: str

    @property
    def embeddings_path(self) -> str:
        return join(self.store, self.slug, dataset_folder(self.dataset), f"part-{self.key}.parquet")

    @property
    def rejects_path(self) -> str:
        return join(self.store, REJECTS_DIR, self.slug, dataset_folder(self.dataset), f"rejects-{self.key}.parquet")


def dataset_folder(name: str) -> str:
    """The folder of a dataset's shards: its name percent-encoded (RFC 3986 unreserved characters
    kept), with a leading ``.`` or ``_`` encoded too, so discovery never takes it for hidden.

    Reversible (percent-decoding gives the name back) and collision-free for names up to ``MAX_FOLDER_CHARS``
    encoded characters; plain names (``asvspoof2019_la``) keep their folder of older stores.
    Longer names keep a readable prefix and a hash of the whole name (still collision-free;
    the name itself is in every row).
    """
    if not name:
        raise ValueError("dataset name is empty; every manifest row needs a dataset name")
    encoded = quote(name, safe="-_.~")
    if encoded[0] in "._":
        encoded = f"%{ord(encoded[0]):02X}{encoded[1:]}"
    if len(encoded) > MAX_FOLDER_CHARS:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        encoded = f"{encoded[: MAX_FOLDER_CHARS - 20].rstrip('%0123456789ABCDEF')}--{digest}"
    return encoded


class StaleWriterError(RuntimeError):
    """A shard task of a run that no longer owns the store tried to commit; nothing was written."""


def write_shard(
    location: ShardLocation,
    rows: pd.DataFrame,
    embeddings: np.ndarray,
    dtype: str,
    rejects: pd.DataFrame,
    fence: str | None = None,
) -> None:
    """Write one shard's embeddings and rejects; each file appears atomically or not at all.

    ``rows`` holds the META_FIELDS columns, ``embeddings`` the matching (n, dim) matrix.
    Rows are grouped by layer into separate row groups so that a layer filter reads only
    its own pages. Both files are written to temporary names first, then renamed into place
    (rejects first: the embeddings file is the marker that the shard is complete). A shard
    with no row embedded gets no embeddings file at all — a file of its own could only carry
    a schema the store does not have (no embedding width to write), and one such file made
    every reader of the store fail. Its rejects file records it instead (``shard_exists``):
    complete when any reject is permanent; a shard whose every row is a transient reject is
    still to do, so the next run plans the same rows under the same key. With a
    ``fence`` (the epoch token of the run that planned the shard, from ``writer_lock``), the
    renames happen under the store's commit lock and only while that token is current;
    otherwise the temporary files are removed and ``StaleWriterError`` is raised.
    """
    reject_table = pa.Table.from_pandas(rejects[REJECTS_SCHEMA.names], schema=REJECTS_SCHEMA, preserve_index=False)
    files: list[tuple[str, Callable[[Any], None]]] = [
        (location.rejects_path, lambda handle: pq.write_table(reject_table, handle))
    ]
    if len(rows):
        files.append((location.embeddings_path, lambda handle: _write_embeddings(handle, rows, embeddings, dtype)))
    commit_files(location.store, files, fence, f"shard {location.key}")


def commit_files(store: str, files: list[tuple[str, Callable[[Any], None]]], fence: str | None, what: str) -> None:
    """Write each ``(path, write)`` of ``files`` to a temporary sibling, then rename them into place
    in order, so each file appears whole or not at all.

    With a ``fence`` (the epoch token of the run that planned the work, from ``writer_lock``) the
    renames happen under the store's commit lock and only while that token is current; otherwise
    the temporary files are removed and ``StaleWriterError`` (naming ``what``) is raised. Every
    store that shares the embedding store's writer lock (the frame cache) commits through here.
    """
    staged: list[tuple[str, str]] = []
    fs, _ = filesystem(store)
    try:
        for path, write in files:
            with _staged(path, staged) as handle:
                write(handle)
        with commit_lock(store):
            if fence is not None:
                current = current_epoch(store)
                if current != fence:
                    raise StaleWriterError(
                        f"{what} of {store} was planned by writer epoch {fence}, but {EPOCH_FILE} now holds "
                        f"{current}: a newer run owns the store; its rows are left to it"
                    )
            for tmp, final in staged:
                _move(fs, tmp, final)
    finally:
        for tmp, _ in staged:
            if fs.exists(tmp):
                fs.rm(tmp)


@contextmanager
def _staged(final_path: str, staged: list[tuple[str, str]]):
    """A temporary sibling of ``final_path`` to write; recorded in ``staged`` for the commit."""
    fs, final = filesystem(final_path)
    parent = final.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{final.rsplit('/', 1)[-1]}"
    staged.append((tmp, final))
    with fs.open(tmp, "wb") as handle:
        yield handle


def _move(fs, tmp: str, final: str) -> None:
    if "file" in fs.protocol:
        os.replace(tmp, final)
    else:
        fs.mv(tmp, final)


def _write_embeddings(handle, rows: pd.DataFrame, embeddings: np.ndarray, dtype: str) -> None:
    """At least one row: the embedding width is the matrix's (a file of no rows is never written)."""
    if embeddings.ndim != 2 or not len(rows) or len(embeddings) != len(rows) or not embeddings.shape[1]:
        raise ValueError(f"an embeddings file needs rows and their (rows, dim > 0) matrix, got {embeddings.shape}")
    dim = embeddings.shape[1]
    schema = embedding_schema(dim, dtype)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    with pq.ParquetWriter(handle, schema) as writer:
        for layer in sorted(rows["layer"].unique()):
            mask = (rows["layer"] == layer).to_numpy()
            values = np.ascontiguousarray(embeddings[mask], dtype=np_dtype)
            flat = pa.array(values.reshape(-1), type=schema.field("embedding").type.value_type)
            columns = [pa.array(rows.loc[mask, f.name].tolist(), type=f.type) for f in META_FIELDS]
            columns.append(pa.FixedSizeListArray.from_arrays(flat, dim))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _dataset(store: str) -> ds.Dataset | None:
    if not exists(store):
        return None
    fs, root = filesystem(store)
    files = shard_files(fs, root, "part-", skip_top=REJECTS_DIR)
    empty = set(empty_markers(fs, root))
    files = [f for f in files if f not in empty]
    if not files:
        return None
    return ds.dataset(files, filesystem=fs, format="parquet")


def shard_files(fs, root: str, prefix: str, skip_top: str | None = None) -> list[str]:
    """Every committed shard file below ``root``, listed explicitly.

    Only the file name decides (``prefix…parquet``; temporary files start with ``.tmp-``):
    folder names are never taken for hidden, so shards under any dataset folder — also the
    ``_…`` folders of stores written before ``dataset_folder`` — are read.
    """
    out = []
    for path in fs.find(root):
        relative = path[len(root) :].lstrip("/")
        if skip_top is not None and relative.split("/", 1)[0] == skip_top:
            continue
        name = relative.rsplit("/", 1)[-1]
        if name.startswith(prefix) and name.endswith(".parquet"):
            out.append(path)
    return sorted(out)


# Earlier versions wrote a shard with no row embedded as a ``part-*.parquet`` of zero rows whose
# ``embedding`` column had width 0: any reader unifying it with real shards failed for the whole
# store. Such a file holds no rows, so readers skip it and the next embed run deletes it (its
# rejects file, committed before it, records the shard). Only files this small can be one (a
# zero-row file of the store's schema is under 2 KB; tests/test_faults_store.py holds the bound):
# the footer check costs one small read per file under the bound, none for a shard of real
# embeddings (a single 1024-wide float32 row is 4 KB of values already).
EMPTY_MARKER_MAX_BYTES = 4 * 1024


def empty_markers(fs, root: str) -> list[str]:
    """The ``part-*.parquet`` files below ``root`` holding no rows (the zero-width markers of earlier
    versions; this version writes none), found by size, then by footer."""
    out = []
    for path, info in fs.find(root, detail=True).items():
        relative = path[len(root) :].lstrip("/")
        name = relative.rsplit("/", 1)[-1]
        if relative.split("/", 1)[0] == REJECTS_DIR or not (name.startswith("part-") and name.endswith(".parquet")):
            continue
        if info.get("type") != "file" or (info.get("size") or 0) > EMPTY_MARKER_MAX_BYTES:
            continue
        with fs.open(path, "rb") as handle:
            if pq.ParquetFile(handle).metadata.num_rows == 0:
                out.append(path)
    return sorted(out)


def retire_empty_markers(store: str) -> list[str]:
    """Delete the zero-row ``part-*.parquet`` markers of earlier versions (see ``empty_markers``), so that
    raw ``pyarrow.dataset(STORE)`` readers read the store again; the paths deleted.

    Called by the embed run holding the writer lock. A marker holds no rows, so deleting it loses
    nothing: its shard stays recorded by its rejects file (``shard_exists``).
    """
    if not exists(store):
        return []
    fs, root = filesystem(store)
    markers = empty_markers(fs, root)
    for path in markers:
        fs.rm(path)
    return markers


def _embedded_keys(store: str, encoder: str, pooling: str, crop_s: float | None, layers: list[int]) -> set:
    """(dataset, utt_id, sha256) of the rows the store holds for every layer in ``layers``."""
    dataset = _dataset(store)
    if dataset is None:
        return set()
    table = dataset.to_table(
        columns=[*ROW_IDENTITY, "layer"],
        filter=_setting_filter(encoder, pooling, crop_s) & pc.field("layer").isin(layers),
    ).to_pandas()
    counts = table.drop_duplicates().groupby(list(ROW_IDENTITY)).size()
    return set(counts[counts >= len(set(layers))].index)


def completed_keys(
    store: str, encoder: str, pooling: str, crop_s: float | None, layers: list[int]
) -> set[tuple[str, str, str]]:
    """(dataset, utt_id, sha256) already embedded for every layer in ``layers``, or rejected for good.

    Transient rejects are not among them: the next run plans those rows again.
    """
    done = _embedded_keys(store, encoder, pooling, crop_s, layers)
    rejects = read_rejects(store, encoder_slug(encoder, pooling, crop_s))
    permanent = rejects[rejects["kind"] == PERMANENT]
    done.update(zip(permanent["dataset"], permanent["utt_id"], permanent["sha256"]))
    return done


def outstanding_rejects(
    store: str, encoder: str, pooling: str, crop_s: float | None, layers: list[int]
) -> pd.DataFrame:
    """The rejects of one encoder setting whose rows are still not embedded, one per row.

    A row rejected as transient and embedded by a later run is no longer a reject; a row
    rejected more than once keeps its permanent reject where it has one.
    """
    rejects = read_rejects(store, encoder_slug(encoder, pooling, crop_s))
    if not len(rejects):
        return rejects
    embedded = _embedded_keys(store, encoder, pooling, crop_s, layers)
    identity = list(zip(rejects["dataset"], rejects["utt_id"], rejects["sha256"]))
    rejects = rejects[np.array([key not in embedded for key in identity], dtype=bool)]
    rejects = rejects.sort_values("kind", key=lambda kind: kind != PERMANENT, kind="stable")
    return rejects.drop_duplicates(subset=list(ROW_IDENTITY)).reset_index(drop=True)


def _setting_filter(encoder: str, pooling: str, crop_s: float | None) -> pc.Expression:
    crop = pc.field("crop_s").is_null() if crop_s is None else pc.field("crop_s") == crop_s
    return (pc.field("encoder") == encoder) & (pc.field("pooling") == pooling) & crop


def read_rejects(store: str, slug: str | None = None) -> pd.DataFrame:
    """Every embed rejects row of the store, or of one encoder setting's folder.

    A rejects file of an earlier version (no ``kind``) is an ``OldFormatError`` naming it.
    """
    base = join(store, REJECTS_DIR, slug) if slug else join(store, REJECTS_DIR)
    empty = REJECTS_SCHEMA.empty_table().to_pandas()
    if not exists(base):
        return empty
    fs, root = filesystem(base)
    files = shard_files(fs, root, "rejects-")
    if not files:
        return empty
    # The explicit schema reads a file without ``kind`` too (its kinds come back null): found here,
    # then named by the file's own schema.
    rejects = ds.dataset(files, schema=REJECTS_SCHEMA, filesystem=fs, format="parquet").to_table().to_pandas()
    if rejects["kind"].isna().any():
        for path in files:
            with fs.open(path, "rb") as handle:
                if "kind" not in pq.read_schema(handle).names:
                    raise unclassed_rejects_error(path)
    return rejects.drop_duplicates().reset_index(drop=True)


def unclassed_rejects_error(path: str) -> OldFormatError:
    return OldFormatError(path, "embed rejects without a kind (transient or permanent)")


# Before local checkpoints were named by the digest of their config and weights
# (tasks/embed/encoder.py), rows and model cards named them by their folder path.
def path_identity_hint(encoder: str | None) -> str:
    """Why rows or models of ``encoder`` are missing when it is a folder path (else ""): the identity
    local checkpoints had before they were named by the digest of their config and weights."""
    if encoder is None or not looks_like_path(encoder):
        return ""
    return (
        f". The encoder {encoder} is a folder path: the identity local checkpoints had before they were named by "
        "the digest of their config and weights (local-<model_type>@sha256-…). Embeddings made since are stored "
        "under that name and are not mixed with the old rows; retrain the model on them (`addgp train --encoder DIR`), "
        "after `addgp embed MANIFEST --encoder DIR` for the data it needs"
    )


def _settings_held(dataset: ds.Dataset, datasets: list[str] | None, most: int = 8) -> str:
    """What the store does hold for ``datasets``, for the message of a selection that found nothing:
    an fp32 model asking an int8-only store (``ID+int8``) or another layer then says so itself."""
    where = pc.field("dataset").isin(datasets) if datasets is not None else pc.scalar(True)
    held = dataset.to_table(columns=["encoder", "layer", "pooling", "crop_s"], filter=where).to_pandas()
    settings = held.drop_duplicates().sort_values(["encoder", "layer", "pooling"])
    if settings.empty:
        return "; the store holds no rows for these datasets (run `addgp embed` on their manifests)"
    listed = [
        f"encoder={r.encoder} layer={r.layer} pooling={r.pooling} crop_s={None if pd.isna(r.crop_s) else r.crop_s}"
        for r in settings.head(most).itertuples()
    ]
    more = f" (+{len(settings) - most} more)" if len(settings) > most else ""
    return "; for these datasets it holds " + "; ".join(listed) + more


def read_embeddings(
    store: str,
    *,
    encoder: str | None = None,
    layer: int | None = None,
    pooling: str | None = None,
    crop_s: float | str | None = "any",
    datasets: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows matching the filters as (metadata frame, float32 matrix), duplicates dropped.

    Filters are pushed down to Parquet: only the matching row groups are read.
    Raises ValueError when the selection mixes encoder settings (the rows would not be
    comparable) or is empty.
    """
    dataset = _dataset(store)
    if dataset is None:
        raise FileNotFoundError(
            f"embedding store {store} holds no shards; fill it with `addgp embed MANIFEST --store {store}`"
        )
    expression = pc.scalar(True)
    if encoder is not None:
        expression &= pc.field("encoder") == encoder
    if layer is not None:
        expression &= pc.field("layer") == layer
    if pooling is not None:
        expression &= pc.field("pooling") == pooling
    if crop_s != "any":
        expression &= pc.field("crop_s").is_null() if crop_s is None else pc.field("crop_s") == crop_s
    if datasets is not None:
        expression &= pc.field("dataset").isin(datasets)
    table = dataset.to_table(filter=expression)
    if table.num_rows == 0:
        raise ValueError(
            f"no embeddings in {store} for encoder={encoder}, layer={layer}, pooling={pooling}, datasets={datasets}"
            + _settings_held(dataset, datasets)
            + path_identity_hint(encoder)
        )
    meta = table.drop_columns(["embedding"]).to_pandas()
    settings = meta[["encoder", "layer", "pooling", "crop_s"]].drop_duplicates()
    if len(settings) > 1:
        raise ValueError(f"selection in {store} mixes encoder settings; filter by encoder/layer/pooling:\n{settings}")
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    matrix = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    keep = ~meta.duplicated(subset=list(DEDUPE_COLUMNS)).to_numpy()
    return meta[keep].reset_index(drop=True), matrix[keep]


def iter_embeddings(
    store: str,
    *,
    encoder: str,
    layer: int,
    pooling: str,
    crop_s: float | None,
    datasets: list[str],
    batch_rows: int = BATCH_ROWS,
    files: list[str] | None = None,
    utt_ids: Collection[str] | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The rows of one embedding setting in ``datasets`` (and with one of ``utt_ids``, when given),
    streamed: (``ROW_IDENTITY`` frame, float32 matrix) per record batch of at most ``batch_rows`` rows.

    Memory is one batch (plus the Parquet reader's one row group in flight), not the selection:
    the scanner reads only the identity and embedding columns of the row groups that pass the
    filter, one fragment and one batch ahead at most. Duplicate rows (object stores) are not
    dropped here: the caller's join keeps the first (``tasks.train.data``). ``files`` (from
    ``setting_shard_paths``) restricts the read to those shard files: one task's fragment of the
    store when scoring runs on a cluster.
    Raises ``FileNotFoundError`` for a store without shards; yields nothing when no row matches.
    """
    if files is not None:
        fs, _ = filesystem(store)
        dataset = ds.dataset(files, filesystem=fs, format="parquet") if files else None
    else:
        dataset = _dataset(store)
    if dataset is None:
        raise FileNotFoundError(
            f"embedding store {store} holds no shards; fill it with `addgp embed MANIFEST --store {store}`"
        )
    expression = (
        _setting_filter(encoder, pooling, crop_s) & (pc.field("layer") == layer) & pc.field("dataset").isin(datasets)
    )
    if utt_ids is not None:
        wanted = sorted(utt_ids)
        # the range lets the reader skip row groups by their utt_id statistics (isin alone does
        # not); a night's rows share its delivery folder's prefix, so other nights' shards are skipped
        expression = expression & pc.field("utt_id").isin(wanted)
        if wanted:
            expression = expression & (pc.field("utt_id") >= wanted[0]) & (pc.field("utt_id") <= wanted[-1])
    scanner = dataset.scanner(
        columns=[*ROW_IDENTITY, "embedding"],
        filter=expression,
        batch_size=batch_rows,
        batch_readahead=1,
        fragment_readahead=1,
    )
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        column = batch.column("embedding")
        dim = column.type.list_size
        values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        meta = batch.select(list(ROW_IDENTITY)).to_pandas()
        yield meta, values.astype(np.float32, copy=False)


def setting_shard_paths(store: str, encoder: str, pooling: str, crop_s: float | None, dataset: str) -> list[str]:
    """The committed shard files of one dataset under one encoder setting's folder, sorted
    (paths of the store's filesystem, as ``iter_embeddings(files=…)`` takes them)."""
    folder = join(store, encoder_slug(encoder, pooling, crop_s), dataset_folder(dataset))
    if not exists(folder):
        return []
    fs, root = filesystem(folder)
    return shard_files(fs, root, "part-")


def setting_shards(store: str, encoder: str, pooling: str, crop_s: float | None, dataset: str) -> list[str]:
    """Names of the committed shard files of one dataset under one encoder setting's folder, sorted.

    A shard's name is a hash of its rows' identities and settings, so this list changes whenever
    rows of the dataset are added (or a shard is rewritten): the score cache's view of the store.
    """
    return [path.rsplit("/", 1)[-1] for path in setting_shard_paths(store, encoder, pooling, crop_s, dataset)]


def shard_exists(location: ShardLocation) -> bool:
    """Whether the shard was committed: its embeddings file, or — for a shard with no row embedded —
    a rejects file holding a permanent reject (see ``write_shard``)."""
    if exists(location.embeddings_path):
        return True
    if not exists(location.rejects_path):
        return False
    fs, path = filesystem(location.rejects_path)
    with fs.open(path, "rb") as handle:
        rejects = pq.read_table(handle).to_pandas()
    if "kind" not in rejects:
        raise unclassed_rejects_error(location.rejects_path)
    return bool((rejects["kind"] == PERMANENT).any())


@contextmanager
def writer_lock(store: str, wait: bool = True):
    """Own the store while planning and writing shards; yields the run's fence token.

    Two embed runs on one local store run one after the other instead of planning the same
    missing rows twice. On taking the lock the run writes a fresh epoch token to
    ``STORE/.writer.epoch`` (under the commit lock) before it plans anything; shard tasks
    pass the token to ``write_shard``, which commits only while it is current. So when a
    run's client dies (the kernel then releases its lock) but its workers keep embedding,
    the next run fences them off: none of their shards lands once it has planned.
    Object stores have no such lock: the token is None and nothing is fenced there; the
    deterministic shard keys and the readers' duplicate drop keep reads exactly-once.
    """
    fs, root = filesystem(store)
    if "file" not in fs.protocol:
        yield None
        return
    fs.makedirs(root, exist_ok=True)
    with ExitStack() as held:
        try:
            held.enter_context(flocked(f"{root}/{LOCK_FILE}", blocking=wait))
        except BlockingIOError:
            raise RuntimeError(f"another embed run holds {root}/{LOCK_FILE}; wait for it to finish") from None
        token = uuid.uuid4().hex
        with commit_lock(store):
            tmp = f"{root}/.tmp-{token}-{EPOCH_FILE}"
            with open(tmp, "w") as epoch:
                epoch.write(token)
            os.replace(tmp, f"{root}/{EPOCH_FILE}")
        yield token


@contextmanager
def commit_lock(store: str):
    """The short lock around a shard's commit and an epoch change (local stores; no-op elsewhere)."""
    fs, root = filesystem(store)
    if "file" not in fs.protocol:
        yield
        return
    fs.makedirs(root, exist_ok=True)
    with flocked(f"{root}/{COMMIT_LOCK_FILE}"):
        yield


def current_epoch(store: str) -> str | None:
    """The fence token of the run that owns the store now (None before any run took the lock)."""
    fs, root = filesystem(store)
    path = f"{root}/{EPOCH_FILE}"
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as handle:
        return handle.read().strip()
