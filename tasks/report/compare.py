"""This run against earlier published reports: the regression diff and the EER trends.

Both read earlier reports only through their ``metrics.json`` documents (passed in as
dicts; ``storage.reports`` reads them), so they are pure and testable on hand-made
documents. Documents of older report formats (no CIs, no summary) are accepted: what
they lack is simply not compared.

A **regression** is a (detector, eval corpus, metric) whose value got worse than in the
previous report by more than the half-width of the bootstrap 95 % CI - the previous
report's CI of that cell when it has one, else this run's. The metrics watched are those
whose spec asks for CIs (``MetricSpec.ci`` in :mod:`addgp.metrics`: EER, minDCF, actDCF,
Cllr); "worse" follows the spec's direction. The averages over corpora are compared the
same way when both runs averaged over the same corpora.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeGuard

import pandas as pd

from addgp.metrics import METRIC_SPECS, MetricSpec

AVERAGE_LABEL = "average over corpora"


def watched_metrics() -> tuple[str, ...]:
    """The metrics the regression check compares: those with bootstrap CIs (``MetricSpec.ci``)."""
    return tuple(key for key, spec in METRIC_SPECS.items() if spec.ci)


@dataclass(frozen=True)
class Change:
    detector: str
    dataset: str  # an eval corpus, or AVERAGE_LABEL
    old: float
    new: float
    tolerance: float  # the CI half-width the change had to exceed
    tolerance_from: str  # "previous CI", "this run's CI" or "no CI"
    train_setting: str | None = None
    metric: str = "eer"

    @property
    def spec(self) -> MetricSpec:
        return METRIC_SPECS[self.metric]

    @property
    def delta(self) -> float:
        """How much worse the metric got (negative: better), in its own units."""
        return self.spec.worse(self.new, self.old)

    def as_dict(self) -> dict:
        return {
            "detector": self.detector,
            "dataset": self.dataset,
            "train_setting": self.train_setting,
            "metric": self.metric,
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "tolerance": self.tolerance,
            "tolerance_from": self.tolerance_from,
        }


@dataclass
class Comparison:
    previous_run_id: str | None
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    n_compared: int = 0
    added: list[tuple[str, str]] = field(default_factory=list)  # cells new in this run
    removed: list[tuple[str, str]] = field(default_factory=list)  # cells the previous run had and this one lacks

    @property
    def status(self) -> str:
        """``first report``, ``none`` (no regression) or ``regressions``."""
        if self.previous_run_id is None:
            return "first report"
        return "regressions" if self.regressions else "none"

    def as_dict(self) -> dict:
        return {
            "previous_run_id": self.previous_run_id,
            "status": self.status,
            "n_compared": self.n_compared,
            "regressions": [c.as_dict() for c in self.regressions],
            "improvements": [c.as_dict() for c in self.improvements],
            "added": [list(k) for k in self.added],
            "removed": [list(k) for k in self.removed],
        }


def _finite(value) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _half_width(record: dict, low_key: str, high_key: str) -> float | None:
    low, high = record.get(low_key), record.get(high_key)
    return (high - low) / 2 if _finite(low) and _finite(high) else None


def metric_cells(document: dict, metric: str = "eer") -> dict[tuple[str, str], dict]:
    """(detector, dataset) -> {value, half_width, train_setting, corpora} of one metric from a metrics.json document."""
    cells = {}
    for record in document.get("metrics") or []:
        if not isinstance(record, dict) or "detector" not in record or "dataset" not in record:
            continue
        value = record.get(metric)
        if not _finite(value):
            continue
        cells[(str(record["detector"]), str(record["dataset"]))] = {
            "value": float(value),
            "half_width": _half_width(record, f"{metric}_ci_low", f"{metric}_ci_high"),
            "train_setting": record.get("train_setting"),
            "corpora": None,
        }
    for record in document.get("summary") or []:
        if not isinstance(record, dict) or not _finite(record.get(f"average_{metric}")):
            continue
        cells[(str(record["detector"]), AVERAGE_LABEL)] = {
            "value": float(record[f"average_{metric}"]),
            "half_width": _half_width(record, f"average_{metric}_ci_low", f"average_{metric}_ci_high"),
            "train_setting": record.get("train_setting"),
            "corpora": tuple(sorted(str(c) for c in record.get("corpora") or [])),
        }
    return cells


def compare_with_previous(current: dict, previous: dict | None) -> Comparison:
    """Regressions and improvements of the ``current`` metrics document against ``previous``.

    Both are metrics.json documents (``current`` may be the one about to be published).
    Every watched metric (:func:`watched_metrics`) is compared cell by cell; ``n_compared``
    counts the (cell, metric) pairs compared.
    """
    if previous is None:
        return Comparison(previous_run_id=None)
    comparison = Comparison(previous_run_id=str(previous.get("run_id", "previous report")))
    keys_now: set[tuple[str, str]] = set()
    keys_before: set[tuple[str, str]] = set()
    for metric in watched_metrics():
        now, before = metric_cells(current, metric), metric_cells(previous, metric)
        keys_now |= now.keys()
        keys_before |= before.keys()
        for key in sorted(now.keys() & before.keys()):
            new, old = now[key], before[key]
            if key[1] == AVERAGE_LABEL and new["corpora"] != old["corpora"]:
                continue  # averages over different corpora are not comparable
            if old["half_width"] is not None:
                tolerance, source = old["half_width"], "previous CI"
            elif new["half_width"] is not None:
                tolerance, source = new["half_width"], "this run's CI"
            else:
                tolerance, source = 0.0, "no CI"
            change = Change(key[0], key[1], old["value"], new["value"], tolerance, source, new["train_setting"], metric)
            comparison.n_compared += 1
            if change.delta > tolerance:
                comparison.regressions.append(change)
            elif -change.delta > tolerance:
                comparison.improvements.append(change)
    order = {key: i for i, key in enumerate(METRIC_SPECS)}
    comparison.regressions.sort(key=lambda c: (order[c.metric], -c.delta))
    comparison.improvements.sort(key=lambda c: (order[c.metric], c.delta))
    comparison.added = sorted(k for k in keys_now - keys_before if k[1] != AVERAGE_LABEL)
    comparison.removed = sorted(k for k in keys_before - keys_now if k[1] != AVERAGE_LABEL)
    return comparison


def trend_table(documents: list[dict]) -> pd.DataFrame:
    """EER per (detector, dataset) - and the average over corpora - across reports, in run-id order.

    ``documents`` are metrics.json documents (earlier reports and, usually, the current
    one). Returns long rows ``run_id, detector, dataset, eer`` (``dataset`` is
    AVERAGE_LABEL for the average), sorted by run id.
    """
    rows = []
    for document in documents:
        run_id = str(document.get("run_id", ""))
        for (detector, dataset), cell in metric_cells(document, "eer").items():
            rows.append({"run_id": run_id, "detector": detector, "dataset": dataset, "eer": cell["value"]})
    frame = pd.DataFrame(rows, columns=["run_id", "detector", "dataset", "eer"])
    return frame.sort_values("run_id", kind="stable").reset_index(drop=True)
