"""What a run report is made of, computed once: the evaluation, metrics.json, the comparison, the trends, the plots.

:func:`build_content` evaluates (if needed), compares with the previous published report
(regressions beyond the bootstrap CI) and with all earlier ones (EER trends), and draws the
plots; :mod:`tasks.report.sections` turns the result into the document both renderers
read. Everything here is pure: earlier reports come in as their ``metrics.json`` documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from addgp import __version__
from tasks.evaluate.crossdataset import Evaluation, evaluate_scores
from tasks.evaluate.robustness import clean_rows
from tasks.ingest.losses import LeftOut
from tasks.report import plots
from tasks.report.compare import AVERAGE_LABEL, Comparison, compare_with_previous, trend_table
from tasks.report.format import jsonable, records, slug, truthy, without_paths, without_paths_in_text
from tasks.report.notes import RunNotes
from tasks.train.trained import TrainedModel

FORMAT = "addgp-report/3"
TREND_RUNS = 50  # at most this many reports in the trend plot
DATA_CHECK_COLUMNS = ("check", "scope", "count", "severity", "examples")
SEVERITIES = ("error", "warning", "info")  # most severe first: the section's order


@dataclass(frozen=True)
class ModelEntry:
    """A model row of a report made from model cards (``addgp report``): what a
    ``TrainedModel`` tells the report, any of it possibly unknown."""

    name: str
    kind: str | None = None
    version: int | str | None = None  # the card's, else the one version the score table names (a string)
    dev_metrics: dict[str, float] | None = None
    summary: str = ""
    train_attacks: list[str] | None = None


@dataclass
class ReportInput:
    """What a report is made of.

    ``evaluation`` is the source of every number; without it the report evaluates
    ``scores`` with default settings. ``previous`` is the metrics.json of
    the report to compare with (None for the first report), ``history`` those of earlier
    reports for the trends (run-id order). ``data_checks`` (optional) is the long table of
    the input checks (columns DATA_CHECK_COLUMNS, one row per check and scope), shown as
    the "Data checks" section.
    """

    title: str
    run_id: str
    models: Sequence[TrainedModel | ModelEntry]
    encoder: str
    warnings: list[str] = field(default_factory=list)
    notes: RunNotes = field(default_factory=RunNotes)  # into metrics.json's "notes" (tasks/report/notes.py)
    evaluation: Evaluation | None = None
    scores: pd.DataFrame | None = None
    previous: dict | None = None
    history: list[dict] = field(default_factory=list)
    created: str | None = None
    data_checks: pd.DataFrame | None = None
    # corpora (or their train/eval role) the run left out after ingest lost rows
    # (tasks/ingest/losses.py), shown as "Corpora left out"
    left_out: list[LeftOut] = field(default_factory=list)


def _model_record(model: TrainedModel | ModelEntry, settings: dict[str, str]) -> dict:
    dev = model.dev_metrics or {}
    return {
        "name": model.name,
        "kind": model.kind,
        "version": model.version,
        "ref": f"{model.name}/v{model.version}" if model.version is not None else model.name,
        "train_setting": settings.get(model.name),
        "dev_eer": dev.get("eer"),
        # Non-default hyper-parameters and the fitted calibration (tasks.train.detectors.detector_summary).
        "settings": model.summary or "",
        # attack ids it was trained on (None: not recorded), for the per-attack table's eval-only mark
        "train_attacks": model.train_attacks,
    }


# ------------------------------------------------------------------ the report's content


@dataclass
class ReportContent:
    """Everything the renderers need, computed once."""

    report: ReportInput
    evaluation: Evaluation
    document: dict
    comparison: Comparison
    trends: pd.DataFrame
    images: dict[str, bytes]  # plots/<name>.png -> bytes
    figures: dict[str, list[tuple[str, str]]]  # section -> [(file name, caption)]


def data_checks_of(report: ReportInput) -> pd.DataFrame | None:
    """The data-checks table, validated and sorted (errors, then warnings, then info); None when absent."""
    return None if report.data_checks is None else ordered_data_checks(report.data_checks)


def ordered_data_checks(checks: pd.DataFrame) -> pd.DataFrame:
    """A data-checks table (tasks/ingest/checks.py), validated and sorted (errors, then warnings, then info)."""
    missing = [c for c in DATA_CHECK_COLUMNS if c not in checks.columns]
    if missing:
        raise ValueError(f"ReportInput.data_checks lacks column(s) {missing}; it needs {list(DATA_CHECK_COLUMNS)}")
    unknown = sorted(set(checks["severity"].astype(str)) - set(SEVERITIES))
    if unknown:
        raise ValueError(f"ReportInput.data_checks: unknown severity {unknown}; use one of {list(SEVERITIES)}")
    rank = checks["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    ordered = checks.assign(_rank=rank).sort_values(["_rank", "check", "scope"], kind="stable").drop(columns="_rank")
    ordered = ordered[list(DATA_CHECK_COLUMNS)].reset_index(drop=True)
    for column in ("scope", "examples"):  # examples name files: show names, never where they live
        ordered[column] = ordered[column].map(
            lambda v: "" if v is None or (isinstance(v, float) and v != v) else without_paths_in_text(v)
        )
    return ordered


def _evaluation_of(report: ReportInput) -> Evaluation:
    if report.evaluation is not None:
        return report.evaluation
    if report.scores is not None:
        return evaluate_scores(report.scores)
    raise ValueError("a report needs an evaluation or the scores to evaluate (ReportInput.evaluation / .scores)")


def metrics_document(
    report: ReportInput, evaluation: Evaluation | None = None, comparison: Comparison | None = None
) -> dict:
    """The metrics.json document: every number of the report, CIs included, for tools and the next run's diff."""
    evaluation = evaluation or _evaluation_of(report)
    settings = (
        dict(zip(evaluation.summary["detector"], evaluation.summary["train_setting"]))
        if len(evaluation.summary)
        else {}
    )
    matrix = evaluation.matrix("eer")
    eer_by_detector = {}
    for (detector, _setting), row in matrix.iterrows():
        summary = evaluation.summary[evaluation.summary["detector"] == detector]
        eer_by_detector[str(detector)] = {
            **{str(k): v for k, v in row.items()},
            "average": float(summary["average_eer"].iloc[0]) if len(summary) else None,
        }
    document = {
        "format": FORMAT,
        "title": report.title,
        "run_id": report.run_id,
        "created": report.created or datetime.now(UTC).isoformat(timespec="seconds"),
        "addgp_version": __version__,
        "encoder": without_paths(report.encoder),
        "warnings": list(report.warnings),
        "settings": evaluation.settings.as_dict(),
        "datasets": list(evaluation.datasets),
        "models": [_model_record(m, settings) for m in report.models],
        "metrics": records(evaluation.cells),
        "summary": records(evaluation.summary),
        "eer_matrix": eer_by_detector,
        "aggregates": records(evaluation.aggregates),
        "attacks": records(evaluation.attacks),
        "conditions": records(evaluation.conditions),
        "robustness": records(evaluation.robustness),
        "robustness_cells": records(evaluation.robustness_cells),
        "selective": records(evaluation.selective),
        "selective_curves": records(evaluation.selective_curves),
        "notes": without_paths(report.notes.as_dict()),
        "data_checks": records(data_checks_of(report)) if report.data_checks is not None else None,
        "left_out": [{**asdict(r), "reason": without_paths_in_text(r.reason)} for r in report.left_out],
    }
    document = jsonable(document)
    if comparison is not None:
        document["comparison"] = jsonable(comparison.as_dict())
    return document


def _scores_of(scores: pd.DataFrame | None, detector: str, dataset: str) -> pd.DataFrame | None:
    if scores is None:
        return None
    cell = scores[(scores["detector"] == detector) & (scores["dataset"] == dataset)]
    labels = set(cell["label"])
    return cell if {"bonafide", "spoof"} <= labels else None


def _make_plots(
    report: ReportInput, evaluation: Evaluation, trends: pd.DataFrame
) -> tuple[dict[str, bytes], dict[str, list]]:
    images: dict[str, bytes] = {}
    figures: dict[str, list[tuple[str, str]]] = {
        "matrix": [],
        "robustness": [],
        "corpora": [],
        "selective": [],
        "trends": [],
    }
    summary = evaluation.summary
    if len(evaluation.cells):
        matrix = evaluation.matrix("eer")
        in_domain = np.vectorize(truthy, otypes=[bool])(evaluation.matrix("in_domain").to_numpy(dtype=object))
        rows = [f"{d} · {s}" for d, s in matrix.index]
        averages = [float(summary.loc[summary["detector"] == d, "average_eer"].iloc[0]) for d, _ in matrix.index]
        name = "plots/eer_heatmap.png"
        images[name] = plots.heatmap_plot(
            matrix.to_numpy(dtype=float), rows, list(matrix.columns), averages, in_domain, "average"
        )
        figures["matrix"].append(
            (
                name,
                "EER (%) of every detector on every eval corpus; the last column is the unweighted average over corpora. Dashed outline: in-domain.",
            )
        )
    if len(evaluation.robustness):
        name = "plots/robustness.png"
        images[name] = _robustness_plot(evaluation.robustness)
        figures["robustness"].append(
            (
                name,
                "EER (%) per detector and condition (average over eval corpora) and its change against clean; outlined: each detector's worst condition.",
            )
        )
    scores = (
        None if report.scores is None else clean_rows(report.scores)
    )  # as the evaluation's tables: audio as shipped
    detectors = list(summary["detector"]) if len(summary) else []
    for dataset in evaluation.datasets:
        found = {d: _scores_of(scores, d, dataset) for d in detectors}
        cells = {d: c for d, c in found.items() if c is not None}
        if not cells:
            continue
        key = slug(dataset)
        by_detector = {d: (c["score"].to_numpy(dtype=float), c["label"].to_numpy()) for d, c in cells.items()}
        calibration = {
            d: (
                c["p_spoof"].to_numpy(dtype=float)
                if "p_spoof" in c
                else 1 / (1 + np.exp(c["score"].to_numpy(dtype=float))),
                (c["label"] == "spoof").to_numpy(),
            )
            for d, c in cells.items()
        }
        det, rel, hist = f"plots/det_{key}.png", f"plots/reliability_{key}.png", f"plots/scores_{key}.png"
        images[det] = plots.det_plot(by_detector, dataset)
        images[rel] = plots.reliability_plot(calibration, dataset)
        images[hist] = plots.histogram_plot(by_detector, dataset)
        figures["corpora"] += [
            (det, f"DET curves on {dataset}"),
            (rel, f"Reliability diagram on {dataset}"),
            (hist, f"Score histograms per class on {dataset}"),
        ]
    if len(evaluation.selective_curves):
        name = "plots/selective.png"
        images[name] = plots.selective_plot(
            evaluation.selective_curves, evaluation.settings.target_error, evaluation.datasets
        )
        figures["selective"].append((name, "Error on the decided utterances as the most uncertain ones are deferred."))
    if trends["run_id"].nunique() >= 2:
        name = "plots/trend_eer.png"
        images[name] = plots.trend_plot(trends, evaluation.datasets, AVERAGE_LABEL, report.run_id)
        figures["trends"].append(
            (name, "EER per eval corpus (and the average over corpora, black) across the published reports.")
        )
    return images, figures


def _robustness_plot(robustness: pd.DataFrame) -> bytes:
    def wide(column: str) -> pd.DataFrame:
        table = robustness.pivot_table(
            index="detector", columns="condition", values=column, aggfunc="first", sort=False
        )
        return table.reindex(
            index=list(pd.unique(robustness["detector"])), columns=list(pd.unique(robustness["condition"]))
        )

    eer, delta = wide("eer"), wide("delta_eer")
    worst = wide("worst").fillna(False).astype(bool)
    return plots.robustness_plot(
        eer.to_numpy(dtype=float), delta.to_numpy(dtype=float), list(eer.index), list(eer.columns), worst.to_numpy()
    )


def build_content(report: ReportInput) -> ReportContent:
    """Evaluate (if needed), compare with the previous report, collect the trends and draw the plots."""
    evaluation = _evaluation_of(report)
    document = metrics_document(report, evaluation)
    comparison = compare_with_previous(document, report.previous)
    document["comparison"] = jsonable(comparison.as_dict())
    history = [d for d in report.history if str(d.get("run_id")) != report.run_id][-(TREND_RUNS - 1) :]
    trends = trend_table([*history, document])
    images, figures = _make_plots(report, evaluation, trends)
    document["plots"] = sorted(images)
    return ReportContent(report, evaluation, document, comparison, trends, images, figures)
