"""The embedding store: a directory of Parquet shards, one row per (utterance, encoder, layer, pooling).

Layout::

    STORE/<encoder-slug>/<dataset>/part-<shard-key>.parquet          embeddings
    STORE/_rejects/<encoder-slug>/<dataset>/rejects-<shard-key>.parquet   what could not be embedded

``pyarrow.dataset.dataset(STORE)`` reads every embedding shard: it skips paths starting with
``_`` or ``.``, so rejects and in-flight temporary files never show up as rows. A shard's key
is a hash of its rows' identities and the encoder settings, and each shard is written by an
atomic rename, so a shard is either wholly present or absent and writing it twice gives
the same file: a re-run adds nothing and a killed run resumes at the first missing shard.
Readers still drop duplicate keys, which covers two overlapping runs on object stores
without atomic renames.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from addgp.contracts import EMBEDDING_KEY_COLUMNS
from storage.paths import atomic_write, exists, filesystem, join

REJECTS_DIR = "_rejects"
ROW_IDENTITY = ("dataset", "utt_id", "sha256")
# crop_s is part of a row's key too: the same audio cropped differently is another embedding.
DEDUPE_COLUMNS = (*EMBEDDING_KEY_COLUMNS, "crop_s", "sha256")

# What the embed stage could not use, keyed like the rows it replaces so a re-run skips it.
REJECTS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("utt_id", pa.string()),
        ("sha256", pa.string()),
        ("path", pa.string()),
        ("reason", pa.string()),
    ]
)

META_FIELDS = [
    pa.field("utt_id", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("encoder", pa.string()),
    pa.field("random_weights", pa.bool_()),
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
        return join(self.store, self.slug, _safe(self.dataset), f"part-{self.key}.parquet")

    @property
    def rejects_path(self) -> str:
        return join(self.store, REJECTS_DIR, self.slug, _safe(self.dataset), f"rejects-{self.key}.parquet")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def write_shard(location: ShardLocation, rows: pd.DataFrame, embeddings: np.ndarray, dtype: str, rejects: pd.DataFrame) -> None:
    """Write one shard's embeddings and rejects; each file appears atomically or not at all.

    ``rows`` holds the META_FIELDS columns, ``embeddings`` the matching (n, dim) matrix.
    Rows are grouped by layer into separate row groups so that a layer filter reads only
    its own pages. The rejects file is written first: the embeddings file is the marker
    that the shard is complete.
    """
    reject_table = pa.Table.from_pandas(rejects[REJECTS_SCHEMA.names], schema=REJECTS_SCHEMA, preserve_index=False)
    with atomic_write(location.rejects_path) as handle:
        pq.write_table(reject_table, handle)
    dim = embeddings.shape[1] if embeddings.ndim == 2 and len(embeddings) else 0
    schema = embedding_schema(dim, dtype)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    with atomic_write(location.embeddings_path) as handle:
        with pq.ParquetWriter(handle, schema) as writer:
            for layer in sorted(rows["layer"].unique()) if len(rows) else []:
                mask = (rows["layer"] == layer).to_numpy()
                values = np.ascontiguousarray(embeddings[mask], dtype=np_dtype)
                flat = pa.array(values.reshape(-1), type=schema.field("embedding").type.value_type)
                columns = [pa.array(rows.loc[mask, f.name].tolist(), type=f.type) for f in META_FIELDS]
                columns.append(pa.FixedSizeListArray.from_arrays(flat, dim))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            if not len(rows):
                writer.write_table(schema.empty_table())


def _dataset(store: str) -> ds.Dataset | None:
    if not exists(store):
        return None
    fs, root = filesystem(store)
    files = [f for f in fs.find(root) if f.endswith(".parquet") and not _hidden(f, root)]
    if not files:
        return None
    return ds.dataset(files, filesystem=fs, format="parquet")


def _hidden(path: str, root: str) -> bool:
    relative = path[len(root) :].lstrip("/")
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def completed_keys(store: str, encoder: str, pooling: str, crop_s: float | None, layers: list[int]) -> set[tuple[str, str, str]]:
    """(dataset, utt_id, sha256) already embedded for every layer in ``layers``, or rejected."""
    done: set[tuple[str, str, str]] = set()
    dataset = _dataset(store)
    if dataset is not None:
        table = dataset.to_table(
            columns=[*ROW_IDENTITY, "layer"],
            filter=_setting_filter(encoder, pooling, crop_s) & pc.field("layer").isin(layers),
        ).to_pandas()
        counts = table.drop_duplicates().groupby(list(ROW_IDENTITY)).size()
        done.update(counts[counts >= len(set(layers))].index)
    rejects = read_rejects(store, encoder_slug(encoder, pooling, crop_s))
    if len(rejects):
        done.update(zip(rejects["dataset"], rejects["utt_id"], rejects["sha256"]))
    return done


def _setting_filter(encoder: str, pooling: str, crop_s: float | None) -> pc.Expression:
    crop = pc.field("crop_s").is_null() if crop_s is None else pc.field("crop_s") == crop_s
    return (pc.field("encoder") == encoder) & (pc.field("pooling") == pooling) & crop


def read_rejects(store: str, slug: str | None = None) -> pd.DataFrame:
    """Every embed rejects row of the store, or of one encoder setting's folder."""
    base = join(store, REJECTS_DIR, slug) if slug else join(store, REJECTS_DIR)
    empty = REJECTS_SCHEMA.empty_table().to_pandas()
    if not exists(base):
        return empty
    fs, root = filesystem(base)
    files = [f for f in fs.find(root) if f.endswith(".parquet") and not _hidden(f, root)]
    if not files:
        return empty
    return ds.dataset(files, filesystem=fs, format="parquet").to_table().to_pandas().drop_duplicates()


def read_embeddings(
    store: str,
    *,
    encoder: str | None = None,
    layer: int | None = None,
    pooling: str | None = None,
    crop_s: float | None | str = "any",
    datasets: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows matching the filters as (metadata frame, float32 matrix), duplicates dropped.

    Filters are pushed down to Parquet: only the matching row groups are read.
    Raises ValueError when the selection mixes encoder settings (the rows would not be
    comparable) or is empty.
    """
    dataset = _dataset(store)
    if dataset is None:
        raise FileNotFoundError(f"embedding store {store} holds no shards; fill it with `addgp embed MANIFEST --store {store}`")
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


def store_summary(store: str) -> pd.DataFrame:
    """Row counts per encoder setting, dataset and layer (for `addgp embed` and reports)."""
    dataset = _dataset(store)
    if dataset is None:
        return pd.DataFrame(columns=["encoder", "pooling", "crop_s", "dataset", "layer", "rows", "random_weights"])
    meta = dataset.to_table(columns=[c for c in DEDUPE_COLUMNS] + ["random_weights"]).to_pandas()
    meta = meta.drop_duplicates(subset=list(DEDUPE_COLUMNS))
    grouped = meta.groupby(["encoder", "pooling", "crop_s", "dataset", "layer"], dropna=False)
    return grouped.agg(rows=("utt_id", "size"), random_weights=("random_weights", "any")).reset_index()


def shard_exists(location: ShardLocation) -> bool:
    return exists(location.embeddings_path)


@contextmanager
def writer_lock(store: str, wait: bool = True):
    """Hold the store's advisory lock while planning and writing shards.

    Two embed runs on one local store then run one after the other instead of planning
    the same missing rows twice. Object stores have no such lock; there the deterministic
    shard keys and the readers' duplicate drop keep the result exactly-once.
    """
    fs, root = filesystem(store)
    if "file" not in fs.protocol:
        yield
        return
    fs.makedirs(root, exist_ok=True)
    with open(f"{root}/.writer.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RuntimeError(f"another embed run holds {root}/.writer.lock; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
