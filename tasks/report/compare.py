"""This run against earlier published reports: the regression diff and the EER trends.

Both read earlier reports only through their ``metrics.json`` documents (passed in as
dicts; ``storage.reports`` reads them), so they are pure and testable on hand-made
documents. Documents of older report formats (no CIs, no summary) are accepted: what
they lack is simply not compared.

A **regression** is a (detector, eval corpus) whose EER got worse than in the previous
report by more than the half-width of the bootstrap 95 % CI - the previous report's CI of
that cell when it has one, else this run's. The average EER over corpora is compared the
same way when both runs averaged over the same corpora.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

AVERAGE_LABEL = "average over corpora"


@dataclass(frozen=True)
class Change:
    detector: str
    dataset: str  # an eval corpus, or AVERAGE_LABEL
    old: float
    new: float
    tolerance: float  # the CI half-width the change had to exceed
    tolerance_from: str  # "previous CI", "this run's CI" or "no CI"
    train_setting: str | None = None

    @property
    def delta(self) -> float:
        return self.new - self.old

    def as_dict(self) -> dict:
        return {"detector": self.detector, "dataset": self.dataset, "train_setting": self.train_setting,
                "old_eer": self.old, "new_eer": self.new, "delta": self.delta,
                "tolerance": self.tolerance, "tolerance_from": self.tolerance_from}  # fmt: skip


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


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _half_width(record: dict, low_key: str, high_key: str) -> float | None:
    low, high = record.get(low_key), record.get(high_key)
    return (high - low) / 2 if _finite(low) and _finite(high) else None


def _cells_of(document: dict) -> dict[tuple[str, str], dict]:
    """(detector, dataset) -> {eer, half_width, train_setting} from a metrics.json document."""
    cells = {}
    for record in document.get("metrics") or []:
        if not isinstance(record, dict) or "detector" not in record or "dataset" not in record:
            continue
        eer = record.get("eer")
        if not _finite(eer):
            continue
        cells[(str(record["detector"]), str(record["dataset"]))] = {
            "eer": float(eer),
            "half_width": _half_width(record, "eer_ci_low", "eer_ci_high"),
            "train_setting": record.get("train_setting"),
            "corpora": None,
        }
    for record in document.get("summary") or []:
        if not isinstance(record, dict) or not _finite(record.get("average_eer")):
            continue
        cells[(str(record["detector"]), AVERAGE_LABEL)] = {
            "eer": float(record["average_eer"]),
            "half_width": _half_width(record, "average_eer_ci_low", "average_eer_ci_high"),
            "train_setting": record.get("train_setting"),
            "corpora": tuple(sorted(str(c) for c in record.get("corpora") or [])),
        }
    return cells


def compare_with_previous(current: dict, previous: dict | None) -> Comparison:
    """Regressions and improvements of the ``current`` metrics document against ``previous``.

    Both are metrics.json documents (``current`` may be the one about to be published).
    """
    if previous is None:
        return Comparison(previous_run_id=None)
    now, before = _cells_of(current), _cells_of(previous)
    comparison = Comparison(previous_run_id=str(previous.get("run_id", "previous report")))
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
        change = Change(key[0], key[1], old["eer"], new["eer"], tolerance, source, new["train_setting"])
        comparison.n_compared += 1
        if change.delta > tolerance:
            comparison.regressions.append(change)
        elif -change.delta > tolerance:
            comparison.improvements.append(change)
    comparison.regressions.sort(key=lambda c: -c.delta)
    comparison.improvements.sort(key=lambda c: c.delta)
    comparison.added = sorted(k for k in now.keys() - before.keys() if k[1] != AVERAGE_LABEL)
    comparison.removed = sorted(k for k in before.keys() - now.keys() if k[1] != AVERAGE_LABEL)
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
        for (detector, dataset), cell in _cells_of(document).items():
            rows.append({"run_id": run_id, "detector": detector, "dataset": dataset, "eer": cell["eer"]})
    frame = pd.DataFrame(rows, columns=["run_id", "detector", "dataset", "eer"])
    return frame.sort_values("run_id", kind="stable").reset_index(drop=True)
