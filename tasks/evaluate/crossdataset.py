"""Cross-dataset evaluation: every detector on every eval corpus, with CIs, breakdowns and selective prediction.

``evaluate_scores`` turns a score table (``storage.reports.SCORE_COLUMNS``: one row per
(detector, utterance), ``score`` = LLR) and each detector's train setting into an
:class:`Evaluation` of plain DataFrames: per-cell metrics with bootstrap CIs, the headline
average over eval corpora (by the training-overlap policy) next to the pooled figure, per-attack and
per-condition breakdowns, robustness against clean, selective prediction. Pure computation:
nothing is read or written. What each table holds: docs/reports.md, "Python API".
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from addgp.metrics import METRIC_SPECS, metrics_by, pooled_and_averaged
from storage.reports import CONDITION_COLUMNS, TRAIN_DATASET_SEPARATOR, UNKNOWN_SETTING, train_setting
from tasks.evaluate.bootstrap import bootstrap_distributions, speaker_units
from tasks.evaluate.overlap import OVERLAP_POLICIES, averaged_cells, mark_training_overlap
from tasks.evaluate.robustness import clean_rows, robustness_tables
from tasks.evaluate.selective import coverage_at_error, coverage_error_curve, entropy_uncertainty

MISSING_ATTACK = "(no attack id)"


def default_ci_metrics() -> tuple[str, ...]:
    """The metrics whose spec asks for bootstrap CIs (``MetricSpec.ci``)."""
    return tuple(key for key, spec in METRIC_SPECS.items() if spec.ci)


def headline_metrics() -> tuple[str, ...]:
    """The metrics of the short tables (``MetricSpec.headline``)."""
    return tuple(key for key, spec in METRIC_SPECS.items() if spec.headline)


@dataclass(frozen=True)
class EvaluationSettings:
    n_boot: int = 1000
    alpha: float = 0.05
    ci_metrics: tuple[str, ...] = field(default_factory=default_ci_metrics)
    target_error: float = 0.05
    seed: int = 0
    training_overlap: str = "exclude"  # tasks.evaluate.overlap: exclude or mark eval sets a detector trained on

    def __post_init__(self) -> None:
        if self.training_overlap not in OVERLAP_POLICIES:
            raise ValueError(
                f"training_overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {self.training_overlap!r}"
            )
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0 (0 = no confidence intervals), got {self.n_boot}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        unknown = set(self.ci_metrics) - set(METRIC_SPECS)
        if unknown:
            raise ValueError(f"ci_metrics {sorted(unknown)} are not metrics; choose from {list(METRIC_SPECS)}")
        if not 0 <= self.target_error < 1:
            raise ValueError(f"target_error must lie in [0, 1), got {self.target_error}")

    def as_dict(self) -> dict:
        return {
            "n_boot": self.n_boot,
            "alpha": self.alpha,
            "ci_metrics": list(self.ci_metrics),
            "target_error": self.target_error,
            "seed": self.seed,
            "training_overlap": self.training_overlap,
        }


@dataclass
class Evaluation:
    """What :func:`evaluate_scores` computes; see the module docstring for each table."""

    cells: pd.DataFrame
    summary: pd.DataFrame
    aggregates: pd.DataFrame
    attacks: pd.DataFrame
    conditions: pd.DataFrame
    selective: pd.DataFrame
    selective_curves: pd.DataFrame
    datasets: list[str]
    settings: EvaluationSettings = field(default_factory=EvaluationSettings)
    robustness: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # per (detector, condition); empty without conditions
    robustness_cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (detector, corpus, condition)

    def matrix(self, metric: str = "eer") -> pd.DataFrame:
        """Rows (detector, train_setting), columns the eval corpora in evaluation order."""
        return cross_dataset_matrix(self.cells, metric, self.datasets)

    def headline_cells(self) -> pd.DataFrame:
        """``cells`` cut to the headline metrics (with their CIs where computed), class counts and note."""
        columns = ["detector", "dataset"]
        for key in headline_metrics():
            columns += [c for c in (key, f"{key}_ci_low", f"{key}_ci_high") if c in self.cells.columns]
        return self.cells[[*columns, "n_bonafide", "n_spoof", "note"]]


# ------------------------------------------------------------------ train settings


def with_train_columns(scores: pd.DataFrame, cards: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """``scores`` with ``train_setting`` and ``train_datasets`` columns (from ``cards`` by detector name).

    Columns already present are kept for detectors not in ``cards``; detectors known
    nowhere get ``UNKNOWN_SETTING``.
    """
    out = scores.copy()
    if "train_setting" not in out.columns:
        out["train_setting"] = UNKNOWN_SETTING
    if "train_datasets" not in out.columns:
        out["train_datasets"] = ""
    out["train_setting"] = out["train_setting"].fillna(UNKNOWN_SETTING).astype(str)
    out["train_datasets"] = out["train_datasets"].fillna("").astype(str)
    for name, card in (cards or {}).items():
        label, datasets = train_setting(card)
        rows = out["detector"] == name
        out.loc[rows, "train_setting"] = label
        out.loc[rows, "train_datasets"] = TRAIN_DATASET_SEPARATOR.join(datasets)
    return out


# ------------------------------------------------------------------ the matrix


def cross_dataset_matrix(
    cells: pd.DataFrame, metric: str = "eer", datasets: Sequence[str] | None = None
) -> pd.DataFrame:
    """Wide matrix of ``metric``: rows (detector, train_setting) in first-seen order, columns the eval corpora.

    ``datasets`` fixes the column order (default: first-seen order in ``cells``); a cell
    not evaluated is NaN. The averages are in :attr:`Evaluation.summary`, not a column, so
    no corpus name can collide with them.
    """
    datasets = list(datasets) if datasets is not None else list(pd.unique(cells["dataset"]))
    keys = cells[["detector", "train_setting"]].drop_duplicates()
    matrix = cells.pivot_table(
        index=["detector", "train_setting"], columns="dataset", values=metric, aggfunc="first", dropna=False
    )
    index = pd.MultiIndex.from_frame(keys)
    return matrix.reindex(index=index, columns=datasets)


def _cell_seed(seed: int, detector: str, dataset: str) -> int:
    """A per-cell seed that does not depend on the order cells are evaluated in."""
    return (seed * 1_000_003 + zlib.crc32(f"{detector}\0{dataset}".encode())) % (2**32)


def evaluate_scores(
    scores: pd.DataFrame,
    settings: EvaluationSettings | None = None,
    condition_columns: Sequence[str] = CONDITION_COLUMNS,
) -> Evaluation:
    """Cross-dataset metrics, CIs, breakdowns and selective prediction of a score table.

    Parameters
    ----------
    scores : the score table (``detector``, ``dataset``, ``score``, ``label`` at least).
    settings : bootstrap size, CI level and metrics, selective-prediction target, seed.
    condition_columns : columns to break down by where the scores carry them (non-null).
    """
    settings = settings or EvaluationSettings()
    missing = [c for c in ("detector", "dataset", "score", "label") if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; found {list(scores.columns)}")
    if scores.empty:
        raise ValueError("score table is empty: nothing to evaluate")
    clean = clean_rows(scores)  # every table but the robustness ones describes audio as shipped
    robustness_cells, robustness = robustness_tables(scores, settings.n_boot, settings.alpha, settings.seed)
    scores = with_train_columns(clean)
    datasets = [str(d) for d in pd.unique(scores["dataset"])]
    detectors = [str(d) for d in pd.unique(scores["detector"])]
    settings_of = scores.groupby("detector", sort=False)[["train_setting", "train_datasets"]].first()

    cell_rows, draws = [], {}
    attack_frames, condition_frames, selective_rows, curve_frames = [], [], [], []
    groups = dict(list(scores.groupby(["detector", "dataset"], sort=False)))  # GroupBy.keys is no mapping's keys()
    for detector in detectors:
        setting, train_datasets = settings_of.loc[detector]
        trained_on = set(filter(None, str(train_datasets).split(TRAIN_DATASET_SEPARATOR)))
        for dataset in datasets:
            cell = groups.get((detector, dataset))
            if cell is None:
                continue
            base = {
                "detector": detector,
                "train_setting": setting,
                "dataset": dataset,
                "in_domain": dataset in trained_on,
            }
            values = metrics_by(cell.assign(_all=0), "_all").drop(columns="_all").iloc[0].to_dict()
            unit = "speaker" if speaker_units(cell, "speaker") is not None else "utterance"
            cis = {}
            dists = {}
            if values["note"] is None and settings.n_boot > 0 and settings.ci_metrics:
                # every CI metric from the same resamples (one seed per cell): one pass of draws, not one per metric
                dists = bootstrap_distributions(
                    cell,
                    tuple(settings.ci_metrics),
                    settings.n_boot,
                    cluster_col="speaker",
                    seed=_cell_seed(settings.seed, detector, dataset),
                )
            for metric in settings.ci_metrics:
                low = high = float("nan")
                if metric in dists:
                    dist = dists[metric]
                    low, high = (float(q) for q in np.quantile(dist, [settings.alpha / 2, 1 - settings.alpha / 2]))
                    draws[(detector, dataset, metric)] = dist
                cis[f"{metric}_ci_low"], cis[f"{metric}_ci_high"] = low, high
            cell_rows.append({**base, **values, **cis, "ci_unit": unit if settings.n_boot > 0 else None})
            if values["note"] is None:
                attack_frames.append(_attack_breakdown(cell, base))
                condition_frames.append(_condition_breakdown(cell, base, condition_columns))
                row, curve = _selective(cell, base, settings.target_error)
                selective_rows.append(row)
                curve_frames.append(curve)

    cells = mark_training_overlap(pd.DataFrame(cell_rows), scores, settings.training_overlap)
    summary = _summary(scores, cells, draws, detectors, settings)
    aggregates = pd.concat(
        [
            pooled_and_averaged(scores[scores["detector"] == d]).assign(
                detector=d, train_setting=settings_of.loc[d, "train_setting"]
            )
            for d in detectors
        ],
        ignore_index=True,
    )
    aggregates = aggregates[
        ["detector", "train_setting", *[c for c in aggregates.columns if c not in ("detector", "train_setting")]]
    ]
    return Evaluation(
        cells=cells,
        summary=summary,
        aggregates=aggregates,
        attacks=_concat(attack_frames, ["detector", "train_setting", "dataset", "attack"]),
        conditions=_concat(condition_frames, ["detector", "train_setting", "dataset", "factor", "value"]),
        selective=pd.DataFrame(selective_rows),
        selective_curves=_concat(curve_frames, ["detector", "dataset", "coverage", "error"]),
        datasets=datasets,
        settings=settings,
        robustness=robustness,
        robustness_cells=robustness_cells,
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def attack_metrics(cell: pd.DataFrame) -> pd.DataFrame | None:
    """Each attack's spoofs against all of the cell's bona fide rows (ASVspoof's per-attack EER):
    ``metrics_by`` rows per attack, spoofs without an id under MISSING_ATTACK; None when no
    spoof row names an attack."""
    if "attack" not in cell.columns:
        return None
    spoof = cell["label"] == "spoof"
    if cell.loc[spoof, "attack"].isna().all():
        return None
    per_attack = metrics_by(cell, "attack", shared_bonafide=True)
    per_attack["attack"] = per_attack["attack"].astype(object).where(per_attack["attack"].notna(), MISSING_ATTACK)
    return per_attack


def _attack_breakdown(cell: pd.DataFrame, base: dict) -> pd.DataFrame | None:
    per_attack = attack_metrics(cell)
    if per_attack is None:
        return None
    return per_attack.assign(**{k: v for k, v in base.items() if k != "in_domain"})[
        ["detector", "train_setting", "dataset", *list(per_attack.columns)]
    ]


def _condition_breakdown(cell: pd.DataFrame, base: dict, columns: Sequence[str]) -> pd.DataFrame | None:
    frames = []
    for column in columns:
        if column not in cell.columns or cell[column].isna().all():
            continue
        part = metrics_by(cell, column).rename(columns={column: "value"})
        part["value"] = part["value"].astype(object).where(part["value"].notna(), "(none)").astype(str)
        frames.append(part.assign(factor=column))
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True).assign(
        detector=base["detector"], train_setting=base["train_setting"], dataset=base["dataset"]
    )
    return out[
        [
            "detector",
            "train_setting",
            "dataset",
            "factor",
            "value",
            *[c for c in out.columns if c not in ("detector", "train_setting", "dataset", "factor", "value")],
        ]
    ]


def uncertainty_of(cell: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(per-row uncertainty, its kind): the GP variance where every row has one, else the entropy of P(spoof)."""
    if "variance" in cell.columns:
        variance = cell["variance"].to_numpy(dtype=np.float64)
        if np.isfinite(variance).all():
            return variance, "gp_variance"
    return entropy_uncertainty(cell["score"].to_numpy(dtype=np.float64)), "entropy"


def _selective(cell: pd.DataFrame, base: dict, target_error: float) -> tuple[dict, pd.DataFrame]:
    uncertainty, kind = uncertainty_of(cell)
    curve = coverage_error_curve(cell["score"].to_numpy(), cell["label"], uncertainty)
    row = {
        "detector": base["detector"],
        "train_setting": base["train_setting"],
        "dataset": base["dataset"],
        "uncertainty": kind,
        "target_error": target_error,
        "coverage_at_target": coverage_at_error(curve, target_error),
        "error_at_full_coverage": float(curve["error"].iloc[0]),
    }
    return row, curve[["coverage", "error"]].assign(detector=base["detector"], dataset=base["dataset"])[
        ["detector", "dataset", "coverage", "error"]
    ]


def _summary(scores, cells, draws, detectors, settings: EvaluationSettings) -> pd.DataFrame:
    """The headline row per (detector, train setting): average EER over corpora (with CI) and pooled EER.

    Every headline metric is averaged over the usable corpora; a metric with bootstrap CIs
    gets the CI of its average (the per-corpus resamples averaged draw by draw).
    """
    rows = []
    n_total = cells["dataset"].nunique() if len(cells) else 0
    for detector in detectors:
        mine = cells[cells["detector"] == detector]
        usable = averaged_cells(mine)
        out_of_domain = usable[~usable["in_domain"].astype(bool)]
        pooled = pooled_and_averaged(scores[scores["detector"] == detector]).set_index("aggregate")
        averages: dict[str, float] = {}
        for key in dict.fromkeys(("eer", *headline_metrics(), *settings.ci_metrics)):
            averages[f"average_{key}"] = float(usable[key].mean()) if len(usable) else float("nan")
            if key in settings.ci_metrics or key == "eer":  # the headline EER always has its CI columns
                low = high = float("nan")
                stacked = [draws[(detector, d, key)] for d in usable["dataset"] if (detector, d, key) in draws]
                if stacked and len(stacked) == len(usable):
                    mean_draws = np.mean(np.vstack(stacked), axis=0)
                    low, high = (
                        float(q) for q in np.quantile(mean_draws, [settings.alpha / 2, 1 - settings.alpha / 2])
                    )
                averages[f"average_{key}_ci_low"], averages[f"average_{key}_ci_high"] = low, high
        row: dict[str, object] = {
            "detector": detector,
            "train_setting": mine["train_setting"].iloc[0] if len(mine) else UNKNOWN_SETTING,
            **{
                k: averages.pop(k)
                for k in ("average_eer", "average_eer_ci_low", "average_eer_ci_high")
                if k in averages
            },
            "n_corpora": int(len(usable)),
            "n_corpora_evaluated": int(n_total),
            "corpora": [str(d) for d in usable["dataset"]],
            "excluded_for_overlap": [str(d) for d in mine.loc[mine["excluded_from_average"].astype(bool), "dataset"]],
            "overlap_policy": settings.training_overlap,
            "out_of_domain_average_eer": float(out_of_domain["eer"].mean()) if len(out_of_domain) else float("nan"),
            "n_out_of_domain": int(len(out_of_domain)),
            "pooled_eer": float(pooled.loc["pooled", "eer"]),
            **averages,
        }
        rows.append(row)
    return pd.DataFrame(rows)
