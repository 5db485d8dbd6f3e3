"""Robustness to degradations: every detector's EER and Cllr under every condition, and the change against clean.

When the score table's ``condition`` column (``clean`` = audio as shipped) holds more than one
condition: ``cells`` per (detector, eval corpus, condition) with the change against clean and a
bootstrap CI **paired by utterance** (an utterance scored clean and degraded is one resampling
unit, so the shared between-utterance spread does not inflate the CI), and ``summary`` per
(detector, condition) averaged over corpora with each detector's worst condition marked. Pure
computation on DataFrames. The tables and the bootstrap: docs/reports.md, "Robustness".
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from addgp.metrics import bonafide_mask, compute_metrics, group_by_score, metrics_from_counts, validated
from tasks.degrade.registry import CLEAN
from tasks.evaluate.bootstrap import BATCH_CELLS, draw_counts, unit_counter

CONDITION_COLUMN = "condition"
ROBUSTNESS_METRICS = ("eer", "cllr")


def condition_labels(scores: pd.DataFrame) -> pd.Series:
    """The condition of every row: the ``condition`` column with missing values as ``clean`` (all clean without it)."""
    if CONDITION_COLUMN not in scores.columns:
        return pd.Series(CLEAN, index=scores.index, dtype=object)
    return scores[CONDITION_COLUMN].astype(object).where(scores[CONDITION_COLUMN].notna(), CLEAN).astype(str)


def conditions_of(scores: pd.DataFrame) -> list[str]:
    """The conditions present: ``clean`` first (when present), then the others in first-seen order."""
    seen = list(pd.unique(condition_labels(scores)))
    return ([CLEAN] if CLEAN in seen else []) + [c for c in seen if c != CLEAN]


def has_conditions(scores: pd.DataFrame) -> bool:
    """True when the table holds more than one condition: then the report gets a robustness section."""
    return len(conditions_of(scores)) > 1


def clean_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of audio as shipped when the table holds several conditions; the whole table otherwise.

    ValueError when there are several conditions but no clean row: the cross-dataset tables
    describe clean audio and would be empty.
    """
    if not has_conditions(scores):
        return scores
    labels = condition_labels(scores)
    clean = (labels == CLEAN).to_numpy()
    if not clean.any():
        raise ValueError(
            f"score table has a 'condition' column with {sorted(set(labels))} but no 'clean' rows; "
            "score the eval sets as shipped too (condition 'clean' or empty)"
        )
    return scores[clean]


def _seed(seed: int, *names: str) -> int:
    return (seed * 1_000_003 + zlib.crc32("\0".join(names).encode())) % (2**32)


def paired_delta_distribution(
    clean: pd.DataFrame,
    degraded: pd.DataFrame,
    metrics: tuple[str, ...] = ROBUSTNESS_METRICS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``metric(degraded) - metric(clean)`` on ``n_boot`` paired bootstrap resamples, per metric.

    Both frames hold ``utt_id``, ``score`` and ``label`` rows of one detector on one corpus.
    Utterances in both are resampled together (one draw counts the utterance on both
    sides); the others on their own side. Deterministic for a given seed and data.
    """
    c_scores, c_bona = validated(clean["score"].to_numpy(), clean["label"])
    d_scores, d_bona = validated(degraded["score"].to_numpy(), degraded["label"])
    codes, uniques = pd.factorize(pd.concat([clean["utt_id"], degraded["utt_id"]], ignore_index=True).astype(str))
    n_units = len(uniques)
    c_units, d_units = codes[: len(clean)], codes[len(clean) :]
    in_clean = np.bincount(c_units, minlength=n_units) > 0
    in_degraded = np.bincount(d_units, minlength=n_units) > 0
    unit_bona = np.zeros(n_units, dtype=bool)
    unit_bona[c_units[c_bona]] = True
    unit_bona[d_units[d_bona]] = True
    # stratum of a unit: its label and the sides it appears on, so each side keeps its class sizes
    stratum = unit_bona.astype(int) * 4 + in_clean.astype(int) * 2 + in_degraded.astype(int)
    pools = [np.flatnonzero(stratum == s) for s in np.unique(stratum)]
    sides = []
    for scores, bona, units in ((c_scores, c_bona, c_units), (d_scores, d_bona, d_units)):
        groups = group_by_score(scores, bona)
        sides.append((groups, unit_counter(groups, bona, units), unit_counter(groups, ~bona, units)))
    rng = np.random.default_rng(seed)
    batch = max(1, BATCH_CELLS // (len(clean) + len(degraded)))
    out: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_boot, batch):
        unit_counts = draw_counts(pools, n_units, min(batch, n_boot - start), rng)
        values = [
            metrics_from_counts(groups.scores, count_bona(unit_counts), count_spoof(unit_counts), metrics)
            for groups, count_bona, count_spoof in sides
        ]
        for m in metrics:
            out[m].append(values[1][m] - values[0][m])
    return {m: np.concatenate(v) for m, v in out.items()}


def _both_classes(frame: pd.DataFrame) -> bool:
    bona = bonafide_mask(frame["label"])
    return bool(bona.any() and (~bona).any())


def robustness_tables(
    scores: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, summary) of a score table with conditions; see the module docstring.

    Empty frames when the table holds one condition only.
    """
    if not has_conditions(scores):
        return pd.DataFrame(), pd.DataFrame()
    frame = scores.assign(_condition=condition_labels(scores).to_numpy())
    conditions = conditions_of(scores)
    rows, draws = [], {}
    quantiles = [alpha / 2, 1 - alpha / 2]
    for (detector, dataset), cell in frame.groupby(["detector", "dataset"], sort=False):
        by_condition = dict(list(cell.groupby("_condition", sort=False)))  # GroupBy.keys is no mapping's keys()
        clean = by_condition.get(CLEAN, cell.iloc[:0])
        clean_ok = _both_classes(clean) if len(clean) else False
        clean_values = compute_metrics(clean["score"].to_numpy(), clean["label"]) if clean_ok else {}
        for condition in conditions:
            part = by_condition.get(condition)
            if part is None:
                continue
            row = {"detector": detector, "dataset": dataset, "condition": condition, "n": int(len(part))}
            if not _both_classes(part):
                rows.append({**row, **dict.fromkeys(ROBUSTNESS_METRICS, np.nan), "note": "one class missing"})
                continue
            values = compute_metrics(part["score"].to_numpy(), part["label"])
            row.update({m: values[m] for m in ROBUSTNESS_METRICS})
            if condition == CLEAN:  # the reference: no change, by definition
                deltas = {
                    f"delta_{m}{suffix}": (0.0 if not suffix else np.nan)
                    for m in ROBUSTNESS_METRICS
                    for suffix in ("", "_ci_low", "_ci_high")
                }
                rows.append({**row, "n_paired": int(len(part)), "note": None, **deltas})
                continue
            row["n_paired"] = int(part["utt_id"].astype(str).isin(set(clean["utt_id"].astype(str))).sum())
            row["note"] = None if clean_ok else "no clean scores with both classes to compare with"
            dist = None
            if clean_ok and n_boot > 0:
                dist = paired_delta_distribution(
                    clean, part, ROBUSTNESS_METRICS, n_boot, _seed(seed, str(detector), str(dataset), condition)
                )
            for m in ROBUSTNESS_METRICS:
                row[f"delta_{m}"] = values[m] - clean_values[m] if clean_ok else np.nan
                low = high = np.nan
                if dist is not None:
                    low, high = (float(q) for q in np.quantile(dist[m], quantiles))
                    draws[(detector, dataset, condition, m)] = dist[m]
                row[f"delta_{m}_ci_low"], row[f"delta_{m}_ci_high"] = low, high
            rows.append(row)
    columns = ["detector", "dataset", "condition", *ROBUSTNESS_METRICS, "n", "n_paired", "note"]
    for m in ROBUSTNESS_METRICS:
        columns += [f"delta_{m}", f"delta_{m}_ci_low", f"delta_{m}_ci_high"]
    cells = pd.DataFrame(rows).reindex(columns=columns)
    return cells, _summary(cells, draws, conditions, quantiles)


def _summary(cells: pd.DataFrame, draws: dict, conditions: list[str], quantiles: list[float]) -> pd.DataFrame:
    rows = []
    for detector in pd.unique(cells["detector"]):
        mine = cells[cells["detector"] == detector]
        clean_ok = set(mine.loc[(mine["condition"] == CLEAN) & mine["note"].isna(), "dataset"])
        for condition in conditions:
            part = mine[(mine["condition"] == condition) & mine["note"].isna()]
            if condition != CLEAN:
                part = part[part["dataset"].isin(clean_ok)]  # the change is averaged where it is defined
            if part.empty:
                continue
            row = {
                "detector": detector,
                "condition": condition,
                "n_corpora": int(len(part)),
                "corpora": [str(d) for d in part["dataset"]],
            }
            for m in ROBUSTNESS_METRICS:
                row[m] = float(part[m].mean())
                if condition == CLEAN:
                    row[f"delta_{m}"] = 0.0
                    row[f"delta_{m}_ci_low"] = row[f"delta_{m}_ci_high"] = np.nan
                    continue
                row[f"delta_{m}"] = float(part[f"delta_{m}"].mean())
                stacked = [
                    draws[(detector, d, condition, m)] for d in part["dataset"] if (detector, d, condition, m) in draws
                ]
                low = high = np.nan
                if stacked and len(stacked) == len(part):
                    low, high = (float(q) for q in np.quantile(np.mean(np.vstack(stacked), axis=0), quantiles))
                row[f"delta_{m}_ci_low"], row[f"delta_{m}_ci_high"] = low, high
            rows.append(row)
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    degraded = summary[summary["condition"] != CLEAN].dropna(subset=["delta_eer"])
    worst = degraded.loc[degraded.groupby("detector", sort=False)["delta_eer"].idxmax()] if len(degraded) else degraded
    summary["worst"] = summary.index.isin(worst.index)
    return summary
