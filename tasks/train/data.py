"""Labelled inputs of a detector: manifest rows (labels, splits) joined with store rows (vectors or frames).

The join is on (dataset, utt_id, sha256): a file whose content changed since it was
embedded does not silently pick up its old vector.

Which store a detector reads is its kind's ``input`` (tasks/train/base.py): pooled embeddings
from the embedding store, or frames from the frame cache (storage/frames.py), which is filled
here on first use. ``labelled_inputs`` and ``fit_params`` are the one place that routes on it;
training and scoring call them, so a new frame-level kind needs no change elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from storage.embeddings import ROW_IDENTITY, read_embeddings
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
    """The store vectors of ``setting`` for the manifest rows in ``datasets`` × ``splits`` (None = all)."""
    selected = _select(manifest, datasets, splits)
    meta, matrix = read_embeddings(
        store_root,
        encoder=setting.encoder,
        layer=setting.layer,
        pooling=setting.pooling,
        crop_s=setting.crop_s,
        datasets=sorted(selected["dataset"].unique()),
    )
    return _aligned(
        selected,
        meta,
        matrix,
        f"none of the {len(selected)} selected manifest rows (datasets={datasets}, splits={splits}) are in the store "
        f"{store_root} for {setting}; run `addgp embed` first",
    )


def _aligned(selected: pd.DataFrame, meta: pd.DataFrame, values: np.ndarray, none_found: str) -> LabelledEmbeddings:
    """The manifest rows of ``selected`` that ``meta`` (the stored rows, in ``values`` order) holds, with their
    values in manifest order; ``ValueError(none_found)`` when it holds none of them."""
    keys = list(ROW_IDENTITY)
    joined = selected.merge(meta[keys].assign(_row=np.arange(len(meta))), on=keys, how="inner")
    if joined.empty:
        raise ValueError(none_found)
    X = values[joined.pop("_row").to_numpy()]
    return LabelledEmbeddings(rows=joined.reset_index(drop=True), X=X, missing=len(selected) - len(joined))
