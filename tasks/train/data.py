"""Labelled embedding matrices: manifest rows (labels, splits) joined with store rows (vectors).

The join is on (dataset, utt_id, sha256): a file whose content changed since it was
embedded does not silently pick up its old vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from storage.embeddings import read_embeddings
from storage.models import EmbeddingSetting


@dataclass
class LabelledEmbeddings:
    rows: pd.DataFrame  # manifest columns of the selected rows, in matrix order
    X: np.ndarray  # (len(rows), dim) float32
    missing: int  # manifest rows selected but absent from the store (rejected at embed time)

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy()


def labelled_embeddings(
    manifest: pd.DataFrame,
    store_root: str,
    setting: EmbeddingSetting,
    *,
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
) -> LabelledEmbeddings:
    """The store vectors of ``setting`` for the manifest rows in ``datasets`` × ``splits`` (None = all)."""
    selected = manifest
    if datasets is not None:
        selected = selected[selected["dataset"].isin(datasets)]
    if splits is not None:
        selected = selected[selected["split"].isin(splits)]
    if selected.empty:
        raise ValueError(f"the manifests have no rows for datasets={datasets}, splits={splits}")
    meta, matrix = read_embeddings(
        store_root,
        encoder=setting.encoder,
        layer=setting.layer,
        pooling=setting.pooling,
        crop_s=setting.crop_s,
        datasets=sorted(selected["dataset"].unique()),
    )
    positions = meta[["dataset", "utt_id", "sha256"]].assign(_row=np.arange(len(meta)))
    joined = selected.merge(positions, on=["dataset", "utt_id", "sha256"], how="inner")
    if joined.empty:
        raise ValueError(
            f"none of the {len(selected)} selected manifest rows (datasets={datasets}, splits={splits}) are in the store "
            f"{store_root} for {setting}; run `addgp embed` first"
        )
    X = matrix[joined.pop("_row").to_numpy()]
    return LabelledEmbeddings(rows=joined.reset_index(drop=True), X=X, missing=len(selected) - len(joined))
