"""The frame cache: per-utterance frame-level hidden states, for detectors that read frames, not pooled vectors.

The last-block detector (tasks/train/dkl_gp_lastblock.py) fine-tunes a copy of an encoder layer,
so it needs that layer's *input*, every frame. The frames live inside the embedding store under
``STORE/_frames/`` (hidden from the embedding readers), keyed like the embeddings, one float16
row per utterance, exactly-once and resumable as the store (atomic shard files under its writer
lock and epoch fence). Layout, columns and the rules: docs/embedding.md, "Frame cache".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from storage.embeddings import (
    ROW_IDENTITY,
    SOURCE_FIELDS,
    commit_files,
    dataset_folder,
    encoder_slug,
    shard_files,
)
from storage.paths import exists, filesystem, join

FRAMES_DIR = "_frames"
# The "pooling" of a frame cache setting in its folder name and shard keys: none, every frame kept.
FRAME_POOLING = "frames"
FLOAT16_MAX = float(np.finfo(np.float16).max)

META_FIELDS = [
    *SOURCE_FIELDS,
    pa.field("hidden_state", pa.int32()),
    pa.field("crop_s", pa.float64()),
    pa.field("n_frames", pa.int32()),
    pa.field("dim", pa.int32()),
    pa.field("reason", pa.string()),  # null for a row with frames; why there are none otherwise
]
SCHEMA = pa.schema([*META_FIELDS, pa.field("frames", pa.list_(pa.float16()))])


def frames_slug(encoder: str, crop_s: float | None) -> str:
    return encoder_slug(encoder, FRAME_POOLING, crop_s)


@dataclass(frozen=True)
class FrameShardLocation:
    store: str
    encoder: str
    crop_s: float | None
    dataset: str
    key: str

    @property
    def path(self) -> str:
        folder = join(self.store, FRAMES_DIR, frames_slug(self.encoder, self.crop_s), dataset_folder(self.dataset))
        return join(folder, f"frames-{self.key}.parquet")


def frame_shard_exists(location: FrameShardLocation) -> bool:
    return exists(location.path)


def write_frame_shard(
    location: FrameShardLocation, rows: pd.DataFrame, frames: list[np.ndarray | None], fence: str | None = None
) -> None:
    """Write one shard: ``rows`` holds the META_FIELDS columns, ``frames[i]`` row i's (n_frames, dim) array or None.

    The file is written under a temporary name and renamed into place under the commit
    lock, only while ``fence`` is the store's current epoch (``storage.embeddings.writer_lock``);
    otherwise nothing is written and ``StaleWriterError`` is raised.
    """
    values = [
        None if f is None else np.clip(f, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16).reshape(-1) for f in frames
    ]
    # pandas holds a missing reason or crop as NaN; Parquet wants null.
    columns = [pa.array([None if pd.isna(v) else v for v in rows[f.name]], type=f.type) for f in META_FIELDS]
    columns.append(pa.array(values, type=pa.list_(pa.float16())))
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    commit_files(
        location.store,
        [(location.path, lambda handle: pq.write_table(table, handle))],
        fence,
        f"frame shard {location.key}",
    )


def _dataset(store: str, encoder: str, crop_s: float | None) -> ds.Dataset | None:
    base = join(store, FRAMES_DIR, frames_slug(encoder, crop_s))
    if not exists(base):
        return None
    fs, root = filesystem(base)
    files = shard_files(fs, root, "frames-")
    return ds.dataset(files, filesystem=fs, format="parquet", schema=SCHEMA) if files else None


def _filter(encoder: str, hidden_state: int, crop_s: float | None) -> pc.Expression:
    crop = pc.field("crop_s").is_null() if crop_s is None else pc.field("crop_s") == crop_s
    return (pc.field("encoder") == encoder) & (pc.field("hidden_state") == hidden_state) & crop


def completed_keys(store: str, encoder: str, hidden_state: int, crop_s: float | None) -> set[tuple[str, str, str]]:
    """(dataset, utt_id, sha256) the cache holds for this setting, with frames or as a reject."""
    dataset = _dataset(store, encoder, crop_s)
    if dataset is None:
        return set()
    table = dataset.to_table(columns=list(ROW_IDENTITY), filter=_filter(encoder, hidden_state, crop_s))
    return set(zip(*(table.column(c).to_pylist() for c in ROW_IDENTITY)))


def read_frames(
    store: str, encoder: str, hidden_state: int, crop_s: float | None, keys: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """The cached frames of the ``keys`` rows (columns dataset, utt_id, sha256) that the cache holds.

    Returns (metadata of the found rows, in ``keys`` order; an (n, T, dim) float16 array,
    T the longest row, each row padded with NaN past its ``n_frames``). NaN padding lets
    one plain array carry frames and lengths through every step that slices or passes X.
    Rejected and absent keys are left out; a missing cache raises FileNotFoundError.
    """
    dataset = _dataset(store, encoder, crop_s)
    if dataset is None:
        raise FileNotFoundError(
            f"no frame cache for encoder {encoder}, crop {crop_s} s under {join(store, FRAMES_DIR)}; "
            "it is filled by tasks/embed/frames.py cache_frames (the train stage does so for frame-level detectors)"
        )
    expression = (
        _filter(encoder, hidden_state, crop_s)
        & pc.field("reason").is_null()
        & pc.field("dataset").isin(sorted(keys["dataset"].unique()))
        & pc.field("utt_id").isin(sorted(keys["utt_id"].unique()))  # only the asked rows' frames are read
    )
    table = dataset.to_table(filter=expression)
    meta = table.drop_columns(["frames"]).to_pandas()
    meta["_row"] = np.arange(len(meta))
    meta = meta.drop_duplicates(subset=list(ROW_IDENTITY))
    found = keys[list(ROW_IDENTITY)].merge(meta, on=list(ROW_IDENTITY), how="inner")
    column = table.column("frames").combine_chunks()
    offsets = column.offsets.to_numpy()
    flat = column.values.to_numpy(zero_copy_only=False)
    counts = found["n_frames"].to_numpy()
    dims = found["dim"].unique()
    if len(dims) > 1:
        raise ValueError(f"frame cache {store} mixes hidden sizes {sorted(dims)} for encoder {encoder}; it is corrupt")
    dim = int(dims[0]) if len(dims) else 0
    out = np.full((len(found), int(counts.max()) if len(found) else 0, dim), np.nan, dtype=np.float16)
    for i, (row, count) in enumerate(zip(found["_row"].to_numpy(), counts)):
        out[i, :count] = flat[offsets[row] : offsets[row + 1]].reshape(count, dim)
    return found.drop(columns=["_row"]).reset_index(drop=True), out


def frame_cache_bytes(store: str, encoder: str, crop_s: float | None) -> int:
    """Bytes on disk of one setting's frame cache (for docs/embedding.md's size per hour of audio)."""
    base = join(store, FRAMES_DIR, frames_slug(encoder, crop_s))
    if not exists(base):
        return 0
    fs, root = filesystem(base)
    return int(sum(fs.size(path) for path in shard_files(fs, root, "frames-")))
