"""Bootstrap confidence intervals for the metrics of :mod:`addgp.metrics`.

Resampling units are speakers when a speaker column is given and filled (a cluster
bootstrap: utterances of one speaker are not independent), otherwise single rows. Units
are drawn with replacement within strata, so every resample holds both classes: rows are
stratified by label; speakers by what they carry (bona fide only, spoof only, both), each
stratum keeping its size. Rows without a speaker are units of their own.

No resample is materialised: the scores are sorted into tie groups once and a batch of
resamples becomes per-group class counts (one bincount of the draws; for speakers, one
more gather and segmented sum), which
:func:`~addgp.metrics.metrics_from_counts` evaluates all at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from addgp.metrics import (
    ScoreGroups,
    group_by_score,
    metric_spec,
    metrics_from_counts,
    validated,
)

# Per-batch budget of (resamples x rows) cells; keeps a batch's arrays to some tens of MB
# whatever the data size.
BATCH_CELLS = 4_000_000

# A resampler draws k resamples: (k, G) bona fide and spoof counts per tie group.
Resampler = Callable[[int], tuple[np.ndarray, np.ndarray]]


def speaker_units(df: pd.DataFrame, cluster_col: str | None) -> np.ndarray | None:
    """Resampling unit per row from ``cluster_col``; None (resample rows) when it is absent or empty.

    Rows with a null speaker are units of their own.
    """
    if cluster_col is None or cluster_col not in df.columns or df[cluster_col].isna().all():
        return None
    codes, uniques = pd.factorize(df[cluster_col])
    unassigned = codes < 0
    codes[unassigned] = len(uniques) + np.arange(int(unassigned.sum()))
    return codes


def draw_counts(pools: list[np.ndarray], n_cells: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n_cells) counts: k times, every pool drawn with replacement to its own size.

    A pool lists the cell (tie group, or unit) of each of its members.
    """
    counts = np.zeros(k * n_cells, dtype=np.int64)
    offsets = n_cells * np.arange(k)[:, None]  # resample r counts into cells r*n_cells + c
    for pool in pools:
        cells = pool[rng.integers(0, pool.size, size=(k, pool.size))] + offsets
        counts += np.bincount(cells.ravel(), minlength=k * n_cells)
    return counts.reshape(k, n_cells)


def _row_resampler(groups: ScoreGroups, bona: np.ndarray, rng: np.random.Generator) -> Resampler:
    n_groups = groups.scores.size
    bona_pool, spoof_pool = groups.index[bona], groups.index[~bona]
    return lambda k: (
        draw_counts([bona_pool], n_groups, k, rng),
        draw_counts([spoof_pool], n_groups, k, rng),
    )


def unit_counter(groups: ScoreGroups, mask: np.ndarray, units: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Unit draw counts (k, n_units) -> (k, G) counts of the ``mask`` rows per tie group.

    A row drawn through its unit: a unit drawn twice counts each of its rows twice.
    """
    n_groups = groups.scores.size
    rows = np.flatnonzero(mask)
    rows = rows[np.argsort(groups.index[rows])]  # by tie group
    row_group, row_unit = groups.index[rows], units[rows]
    starts = np.flatnonzero(np.r_[True, row_group[1:] != row_group[:-1]]) if rows.size else np.zeros(0, dtype=np.intp)

    def count(unit_counts: np.ndarray) -> np.ndarray:
        out = np.zeros((unit_counts.shape[0], n_groups), dtype=np.int64)
        if rows.size:
            out[:, row_group[starts]] = np.add.reduceat(unit_counts[:, row_unit], starts, axis=1)
        return out

    return count


def _speaker_resampler(groups: ScoreGroups, bona: np.ndarray, units: np.ndarray, rng: np.random.Generator) -> Resampler:
    n_units = int(units.max()) + 1
    carries = (np.bincount(units[bona], minlength=n_units) > 0) + 2 * (np.bincount(units[~bona], minlength=n_units) > 0)
    strata = [np.flatnonzero(carries == kind) for kind in (1, 2, 3) if (carries == kind).any()]
    count_bona, count_spoof = unit_counter(groups, bona, units), unit_counter(groups, ~bona, units)

    def resample(k: int) -> tuple[np.ndarray, np.ndarray]:
        unit_counts = draw_counts(strata, n_units, k, rng)
        return count_bona(unit_counts), count_spoof(unit_counts)

    return resample


def bootstrap_distribution(
    df: pd.DataFrame,
    metric: str = "eer",
    n_boot: int = 1000,
    cluster_col: str | None = "speaker",
    seed: int = 0,
    score_col: str = "score",
    label_col: str = "label",
) -> np.ndarray:
    """The metric on ``n_boot`` stratified (cluster) bootstrap resamples of ``df``.

    Returns
    -------
    (n_boot,) float array, deterministic for a given ``seed`` and data.
    """
    return bootstrap_distributions(df, (metric,), n_boot, cluster_col, seed, score_col, label_col)[metric]


def bootstrap_distributions(
    df: pd.DataFrame,
    metrics: tuple[str, ...],
    n_boot: int = 1000,
    cluster_col: str | None = "speaker",
    seed: int = 0,
    score_col: str = "score",
    label_col: str = "label",
) -> dict[str, np.ndarray]:
    """Each of ``metrics`` on the same ``n_boot`` resamples: one pass of draws for all of them.

    Per metric the values equal ``bootstrap_distribution(df, metric, …, seed)``'s (the same
    seed draws the same resamples), at the cost of one metric's draws.
    """
    for metric in metrics:
        metric_spec(metric)  # ValueError naming the known metrics
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    scores, bona = validated(df[score_col].to_numpy(), df[label_col])
    groups = group_by_score(scores, bona)
    units = speaker_units(df, cluster_col)
    rng = np.random.default_rng(seed)
    resample = _row_resampler(groups, bona, rng) if units is None else _speaker_resampler(groups, bona, units, rng)
    # a batch holds (resamples x rows) draws or gathered counts, and (resamples x groups) counts
    batch = max(1, BATCH_CELLS // scores.size)
    values: dict[str, list[np.ndarray]] = {metric: [] for metric in metrics}
    for start in range(0, n_boot, batch):
        n_bona, n_spoof = resample(min(batch, n_boot - start))
        computed = metrics_from_counts(groups.scores, n_bona, n_spoof, tuple(metrics))
        for metric in metrics:
            values[metric].append(computed[metric])
    return {metric: np.concatenate(parts) for metric, parts in values.items()}


def bootstrap_ci(
    df: pd.DataFrame,
    metric: str = "eer",
    n_boot: int = 1000,
    alpha: float = 0.05,
    cluster_col: str | None = "speaker",
    seed: int = 0,
    score_col: str = "score",
    label_col: str = "label",
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) confidence interval of one metric.

    Parameters
    ----------
    df : rows with ``score_col`` and ``label_col`` (and ``cluster_col`` for a speaker
        bootstrap; absent or all-null means resampling rows).
    metric : a key of addgp.metrics.METRIC_SPECS.

    Returns
    -------
    (low, high)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    values = bootstrap_distribution(df, metric, n_boot, cluster_col, seed, score_col, label_col)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
