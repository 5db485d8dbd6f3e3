"""Labelled inputs of a detector: manifest rows (labels, splits) joined with store rows (vectors or frames).

The join is on (dataset, utt_id, sha256): a file whose content changed since it was
embedded does not silently pick up its old vector.

Which store a detector reads is its kind's ``input`` (tasks/train/base.py): pooled embeddings
from the embedding store, or frames from the frame cache (storage/frames.py), which is filled
here on first use. ``labelled_inputs`` and ``fit_params`` are the one place that routes on it;
training and scoring call them, so a new frame-level kind needs no change elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from storage.embeddings import ROW_IDENTITY, iter_embeddings
from storage.frames import read_frames
from storage.models import EmbeddingSetting
from tasks.embed.encoder import EncoderSpec
from tasks.embed.frames import cache_frames, encoder_block, frame_spec
from tasks.train.base import EMBEDDINGS_INPUT, FRAMES_INPUT, LLRDetector


@dataclass
class LabelledEmbeddings:
    rows: pd.DataFrame  # manifest columns of the selected rows, in matrix order
    X: np.ndarray  # (len(rows), dim) float32; frames: (len(rows), T, hidden) float16, NaN-padded
    missing: int  # manifest rows selected but absent from the store (rejected at embed time)

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy()


def labelled_inputs(
    detector: object,
    manifest: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    *,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
) -> LabelledEmbeddings:
    """What ``detector`` reads for the selected manifest rows: ``labelled_embeddings`` or ``labelled_frames``.

    An object without ``input`` (a scikit-learn-style model from elsewhere) reads embeddings.
    """
    if getattr(detector, "input", EMBEDDINGS_INPUT) == FRAMES_INPUT:
        assert isinstance(detector, LLRDetector)  # the kinds that read frames are detectors of the registry
        return labelled_frames(manifest, store_root, setting, detector.crop_seconds, datasets=datasets, splits=splits)
    return labelled_embeddings(manifest, store_root, setting, datasets=datasets, splits=splits)


def fit_params(detector: LLRDetector, setting: EmbeddingSetting) -> dict:
    """Keyword arguments of ``detector.fit`` beyond the data: the encoder layer a frame-level kind starts from."""
    if detector.input == FRAMES_INPUT:
        return {"block": encoder_block(EncoderSpec.from_name(setting.encoder), setting.layer)}
    return {}


def _select(manifest: pd.DataFrame, datasets: list[str] | None, splits: list[str] | None) -> pd.DataFrame:
    selected = manifest
    if datasets is not None:
        selected = selected[selected["dataset"].isin(datasets)]
    if splits is not None:
        selected = selected[selected["split"].isin(splits)]
    if selected.empty:
        raise ValueError(f"the manifests have no rows for datasets={datasets}, splits={splits}")
    return selected


def labelled_frames(
    manifest: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    crop_s: float | None,
    *,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
) -> LabelledEmbeddings:
    """The input frames of transformer layer ``setting.layer`` for the selected rows, filling the frame cache first.

    Frames come from the encoder of ``setting``; rows the cache could not decode are left out (``missing``).
    """
    selected = _select(manifest, datasets, splits)
    spec = EncoderSpec.from_name(setting.encoder)
    cache_frames(selected, spec, store_root, setting.layer, crop_s)
    fspec = frame_spec(spec, setting.layer, crop_s)
    meta, X = read_frames(store_root, fspec.name, fspec.layers[0], crop_s, selected)
    return _aligned(
        selected,
        meta,
        X,
        f"none of the {len(selected)} selected manifest rows (datasets={datasets}, splits={splits}) could be "
        f"decoded into frames for {setting}; see the reasons in the frame cache under {store_root}/_frames",
    )


def labelled_embeddings(
    manifest: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    *,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
) -> LabelledEmbeddings:
    """The store vectors of ``setting`` for the manifest rows in ``datasets`` × ``splits`` (None = all).

    Read in record batches straight into one float32 matrix of the selected rows (manifest
    order): peak memory is that matrix plus one batch, whatever else the store holds (other
    splits, datasets, layers).
    """
    selected = _select(manifest, datasets, splits)
    found = _read_selected(selected, store_root, setting)
    if found is None:
        raise ValueError(_none_found(selected, store_root, setting, datasets, splits))
    return found


def embeddings_of_rows(rows: pd.DataFrame, store_root: str, setting: EmbeddingSetting) -> LabelledEmbeddings:
    """The store vectors of exactly these manifest ``rows`` (in their order), the rows the store
    lacks counted ``missing``; none there is an empty selection, not an error (asked for tonight's
    rows, their absence is data: the caller says what it means).

    The store read is filtered on the rows' utt_ids and only they are held: the cost follows the
    rows asked for, not the size of their datasets (an inbox dataset holds every night so far).
    """
    found = _read_selected(rows, store_root, setting, utt_ids=set(rows["utt_id"])) if len(rows) else None
    if found is None:
        return LabelledEmbeddings(rows.iloc[:0].reset_index(drop=True), np.empty((0, 0), np.float32), len(rows))
    return found


def _read_selected(
    selected: pd.DataFrame, store_root: str, setting: EmbeddingSetting, utt_ids: set[str] | None = None
) -> LabelledEmbeddings | None:
    """The stored rows of ``selected`` in manifest order (None: the store holds none of them)."""
    positions = _RowPositions(selected)
    X: np.ndarray | None = None
    for meta, values in _store_batches(store_root, setting, selected, utt_ids=utt_ids):
        where, keep = positions.claim(meta)
        if X is None:
            X = np.empty((len(selected), values.shape[1]), dtype=np.float32)
        X[where] = values[keep]
    if X is None or not positions.found.any():
        return None
    return positions.compacted(selected, X)


def stream_labelled_embeddings(
    manifest: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    *,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
    files: list[str] | None = None,
) -> Iterator[tuple[np.ndarray, LabelledEmbeddings]]:
    """``labelled_embeddings`` one record batch at a time: (positions of the batch's rows in the
    selection's manifest order, the batch), every selected row at most once.

    For scoring: memory is one batch. Sorting the per-batch results by the positions gives the
    manifest order ``labelled_embeddings`` returns. Raises ``ValueError`` when the store holds
    none of the selected rows. With ``files`` (a fragment of the store: some of its shard
    files) only those are read, and a fragment holding none of the rows yields nothing.
    """
    selected = _select(manifest, datasets, splits)
    positions = _RowPositions(selected)
    for meta, values in _store_batches(store_root, setting, selected, files):
        where, keep = positions.claim(meta)
        if where.size:
            rows = selected.iloc[where].reset_index(drop=True)
            yield where, LabelledEmbeddings(rows=rows, X=values[keep], missing=0)
    if files is None and not positions.found.any():
        raise ValueError(_none_found(selected, store_root, setting, datasets, splits))


def _store_batches(
    store_root: str,
    setting: EmbeddingSetting,
    selected: pd.DataFrame,
    files: list[str] | None = None,
    utt_ids: set[str] | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    return iter_embeddings(
        store_root,
        encoder=setting.encoder,
        layer=setting.layer,
        pooling=setting.pooling,
        crop_s=setting.crop_s,
        datasets=sorted(selected["dataset"].unique()),
        files=files,
        utt_ids=utt_ids,
    )


def _none_found(selected, store_root, setting, datasets, splits) -> str:
    return (
        f"none of the {len(selected)} selected manifest rows (datasets={datasets}, splits={splits}) are in the store "
        f"{store_root} for {setting}; run `addgp embed` first"
    )


def _identity_keys(frame: pd.DataFrame) -> pd.Index:
    """One string per row identity (dataset, utt_id, sha256); NUL never occurs inside them."""
    return pd.Index(
        frame["dataset"].astype(str) + "\0" + frame["utt_id"].astype(str) + "\0" + frame["sha256"].astype(str)
    )


class _RowPositions:
    """Where stored rows go among the selected manifest rows, each filled once (a duplicate stored row is skipped)."""

    def __init__(self, selected: pd.DataFrame):
        self.index = _identity_keys(selected)
        self.found = np.zeros(len(selected), dtype=bool)

    def claim(self, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(positions to fill, mask of ``meta``'s rows that fill them): selected and not filled before."""
        where = self.index.get_indexer(_identity_keys(meta))
        keep = where >= 0
        keep[keep] = ~self.found[where[keep]]
        # the same row twice within one batch: the first one
        first = np.zeros(len(where), dtype=bool)
        first[np.unique(where, return_index=True)[1]] = True
        keep &= first
        self.found[where[keep]] = True
        return where[keep], keep

    def compacted(self, selected: pd.DataFrame, X: np.ndarray) -> LabelledEmbeddings:
        """The filled rows of ``X`` (allocated for every selected row) moved to the front, in order."""
        filled = np.flatnonzero(self.found)
        n = filled.size
        if n < len(selected):
            # in place, chunk by chunk: a source row is never before its destination
            for start in range(0, n, 65_536):
                sources = filled[start : start + 65_536]
                X[start : start + sources.size] = X[sources]
            X = X[:n]
        rows = selected.iloc[filled].reset_index(drop=True)
        return LabelledEmbeddings(rows=rows, X=X, missing=len(selected) - n)


def _aligned(selected: pd.DataFrame, meta: pd.DataFrame, values: np.ndarray, none_found: str) -> LabelledEmbeddings:
    """The manifest rows of ``selected`` that ``meta`` (the stored rows, in ``values`` order) holds, with their
    values in manifest order; ``ValueError(none_found)`` when it holds none of them."""
    keys = list(ROW_IDENTITY)
    joined = selected.merge(meta[keys].assign(_row=np.arange(len(meta))), on=keys, how="inner")
    if joined.empty:
        raise ValueError(none_found)
    X = values[joined.pop("_row").to_numpy()]
    return LabelledEmbeddings(rows=joined.reset_index(drop=True), X=X, missing=len(selected) - len(joined))
