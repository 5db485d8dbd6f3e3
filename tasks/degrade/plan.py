"""Which manifest rows the run degrades, under which condition.

Evaluation degrades every row of the eval datasets' eval splits under every
``evaluate.conditions`` entry. Augmentation (``train.augment``) gives a ``fraction`` of the
training rows one degraded copy each, its condition drawn uniformly from the augment list.
Both choices hash (seed, dataset, utt_id), never the row order, so a row keeps its draw when
new rows arrive and a re-run selects the same rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from addgp.config import PipelineConfig
from tasks.degrade.run import derived_dataset


def _uniform(seed: int, salt: str, datasets: pd.Series, utt_ids: pd.Series) -> np.ndarray:
    """A number in [0, 1) per row, from the hash of (seed, salt, dataset, utt_id)."""
    values = [
        int.from_bytes(hashlib.sha256(f"{seed}\0{salt}\0{d}\0{u}".encode()).digest()[:8], "little") / 2**64
        for d, u in zip(datasets, utt_ids)
    ]
    return np.asarray(values, dtype=np.float64)


def augment_assignment(rows: pd.DataFrame, conditions: list[str], fraction: float, seed: int) -> pd.Series:
    """Per training row, the condition of its degraded copy, or None for rows that get none."""
    picked = _uniform(seed, "augment", rows["dataset"], rows["utt_id"]) < fraction
    which = (_uniform(seed, "augment-condition", rows["dataset"], rows["utt_id"]) * len(conditions)).astype(int)
    return pd.Series([conditions[w] if p else None for p, w in zip(picked, which)], index=rows.index, dtype=object)


def degrade_plan(manifest: pd.DataFrame, config: PipelineConfig) -> dict[tuple[str, str], pd.DataFrame]:
    """{(source dataset, condition): the rows to degrade}, the union of what evaluation and training need."""
    selected: dict[tuple[str, str], list[pd.DataFrame]] = {}
    evaluate = manifest[manifest["dataset"].isin(config.eval_datasets) & manifest["split"].isin(config.evaluate.splits)]
    for condition in config.evaluate.conditions:
        for dataset, rows in evaluate.groupby("dataset", sort=True):
            selected.setdefault((str(dataset), condition), []).append(rows)
    augment = config.train.augment
    if augment is not None:
        train = manifest[manifest["dataset"].isin(config.train.datasets) & manifest["split"].isin(config.train.splits)]
        assigned = augment_assignment(train, augment.conditions, augment.fraction, config.degrade.seed)
        for condition in augment.conditions:
            for dataset, rows in train[assigned == condition].groupby("dataset", sort=True):
                selected.setdefault((str(dataset), condition), []).append(rows)
    return {
        key: pd.concat(parts).drop_duplicates(["dataset", "utt_id"]).sort_values("utt_id").reset_index(drop=True)
        for key, parts in sorted(selected.items())
    }


def augmented_train_datasets(config: PipelineConfig) -> list[str]:
    """train.datasets plus their degraded copies named by train.augment (what the detectors learn from)."""
    augment = config.train.augment
    extra = [derived_dataset(d, c) for d in config.train.datasets for c in augment.conditions] if augment else []
    return [*config.train.datasets, *extra]
