"""Scores under degradation conditions: the score table's ``condition`` column.

Every eval set is scored as shipped (``condition`` = ``clean``) and, for each configured
condition, on its degraded copy (the derived dataset ``<dataset>@<condition>`` the degrade
stage wrote). Rows of a copy carry the source dataset's name in ``dataset`` and the
condition in ``condition``, so (detector, dataset, condition) indexes the robustness
matrix and the clean rows alone are the cross-dataset matrix as before (the analysis of
both is ``tasks.evaluate.crossdataset.evaluate_scores``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tasks.degrade.registry import CLEAN
from tasks.degrade.run import derived_dataset
from tasks.evaluate.scoring import score_eval_sets


def score_with_conditions(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: Mapping[str, tuple[object, dict]],
    datasets: list[str],
    splits: list[str],
    conditions: list[str],
    client=None,
) -> pd.DataFrame:
    """``score_eval_sets`` for the clean sets and every condition's copies, with a ``condition`` column
    (on the Dask ``client``'s cluster, one task per shard file, when given)."""
    frames = [score_eval_sets(manifest, store_root, detectors, datasets, splits, client=client).assign(condition=CLEAN)]
    for condition in conditions:
        names = {derived_dataset(dataset, condition): dataset for dataset in datasets}
        missing = sorted(set(names) - set(manifest["dataset"]))
        if missing:
            raise ValueError(
                f"no derived manifest for {missing}: run the degrade stage for condition {condition!r} first"
            )
        scores = score_eval_sets(manifest, store_root, detectors, list(names), splits, client=client)
        scores["dataset"] = scores["dataset"].map(names)
        frames.append(scores.assign(condition=condition))
    return pd.concat(frames, ignore_index=True)
