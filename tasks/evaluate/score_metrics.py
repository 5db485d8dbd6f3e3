"""What ``addgp metrics`` prints: the metrics of a score table, one score set at a time.

A score table may hold several detectors, corpora or robustness conditions; their scores are
never pooled unless asked (a pooled EER of two corpora answers another question than either
corpus' EER). The metrics are those of :data:`addgp.metrics.METRIC_SPECS`, computed by
:func:`addgp.metrics.compute_metrics` / :func:`addgp.metrics.metrics_by`; the per-attack
breakdown is the report's (:func:`tasks.evaluate.crossdataset.attack_metrics`). Values are
Python and numpy numbers, NaN where a set lacks a class; the CLI makes them JSON.
"""

from __future__ import annotations

import pandas as pd

from addgp.metrics import compute_metrics, metrics_by
from tasks.evaluate.crossdataset import attack_metrics
from tasks.evaluate.interchange import ATTACK, group_columns


def _set_metrics(rows: pd.DataFrame) -> dict:
    """Every metric of one score set, with ``note`` saying why they are NaN (a class missing)."""
    return metrics_by(rows.assign(_all=0), "_all").drop(columns="_all").to_dict("records")[0]


def breakdown(rows: pd.DataFrame, by: str) -> list[dict]:
    """Metrics per value of column ``by``: per attack, each attack's spoofs against all bona fide
    rows (as ASVspoof); any other column (codec, language, …) splits both classes.

    ValueError when the column is missing, or, for ``attack``, no spoof row names one.
    """
    if by not in rows.columns:
        raise ValueError(f"--by {by}: the score table has no column {by!r}; it has {list(rows.columns)}")
    if by == ATTACK:
        per_attack = attack_metrics(rows)
        if per_attack is None:
            raise ValueError("--by attack: no spoof row names an attack (the attack column is empty)")
        return per_attack.to_dict("records")
    return metrics_by(rows, by).to_dict("records")


def metrics_summary(scores: pd.DataFrame, by: str | None = None, pool: bool = False) -> dict:
    """The ``addgp metrics`` document of a score table (``score``, ``label``; optional
    ``detector``, ``dataset``, ``condition``, ``attack``).

    One score set and neither ``by`` nor ``pool``: the flat object of docs/architecture.md, every
    metric at top level (plus the set's detector/dataset/condition where the table names
    them); MetricsError if a class is missing. Otherwise ``{"groups": [...]}``, one entry per
    (detector, dataset, condition) in first-seen order with its metrics and ``note``, each with
    ``by_<column>`` (:func:`breakdown`) when ``by`` is given; ``pool`` adds ``pooled``: the
    metrics of all rows as one set, with ``n_groups``.
    """
    columns = group_columns(scores)
    groups = list(scores.groupby(columns, dropna=False, sort=False)) if columns else [((), scores)]
    if len(groups) == 1 and by is None and not pool:
        key, rows = groups[0]
        named = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        metrics = compute_metrics(rows["score"].to_numpy(dtype=float), rows["label"].astype(str).to_numpy())
        return {**named, **metrics}
    entries = []
    for key, rows in groups:
        entry = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        entry.update(_set_metrics(rows))
        if by is not None:
            entry[f"by_{by}"] = breakdown(rows, by)
        entries.append(entry)
    document: dict = {"groups": entries}
    if pool:
        document["pooled"] = {"n_groups": len(groups), **_set_metrics(scores)}
    return document
