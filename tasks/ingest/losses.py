"""What an ingest lost, said at ingest: a split the layout lists that ended with no rows (its
audio folder absent, unmounted, misnamed), or more of a corpus rejected than
``embed.max_reject_fraction`` allows — the same limit and exit code (7) as embed rejects.

``ingest_losses`` reads one ingest summary (``IngestResult.summary``); ``addgp ingest`` exits 7
on any loss, after writing the manifest and its rejects. ``plan_corpora`` is the run's rule
(docs/operations.md#a-corpus-that-lost-rows-at-ingest): a corpus that lost more than the
limit is left out of the run; one with no rows in a split the config trains or evaluates on
is left out of that role (training: its train and dev splits; evaluation: its eval splits).
The run goes on with the rest, publishes its report with a "Corpora left out" section, and
``addgp run`` exits 7; when nothing is left to train or evaluate on, it stops before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from addgp.config import PipelineConfig
from tasks.ingest.common import IngestedCorpus, IngestSummary


class IngestLossError(RuntimeError):
    """A corpus lost a split or too many rows at ingest (exit code 7); the message names each
    dataset, what it lost and the fix."""


def ingest_losses(summary: IngestSummary, max_reject_fraction: float) -> list[str]:
    """What ``summary`` (``IngestResult.summary``) lost, one sentence each; empty when nothing."""
    losses = []
    for split in summary.lost_splits:
        listed = summary.expected_rows.get(split, 0)
        losses.append(
            f"split {split!r}: all {listed} row(s) the layout lists were rejected "
            f"({_commonest(summary)}); is its audio folder there?"
        )
    rejected, total = _outside_lost_splits(summary)
    if total and rejected / total > max_reject_fraction:
        rest = " outside the lost split(s)" if summary.lost_splits else ""
        losses.append(
            f"{rejected} of {total} rows rejected{rest} "
            f"({rejected / total:.1%} > embed.max_reject_fraction {max_reject_fraction:g}; {_commonest(summary)})"
        )
    return losses


def _outside_lost_splits(summary: IngestSummary) -> tuple[int, int]:
    """(rows rejected, rows in all) leaving out the lost splits' rows: a lost split is its own
    finding, and the share of rejects is judged on the rest of the corpus."""
    lost = sum(summary.expected_rows.get(s, 0) for s in summary.lost_splits)
    return summary.rejects - lost, summary.rows + summary.rejects - lost


def _commonest(summary: IngestSummary) -> str:
    reasons = summary.reject_reasons
    if not reasons:
        return "no reject recorded"
    reason, count = max(reasons.items(), key=lambda item: item[1])
    return f"commonest reason {reason!r}, {count} row(s)"


def loss_message(losses: dict[str, list[str]], where: str) -> str:
    """The one error message for the datasets in ``losses``; ``where`` says where the rejects are."""
    lines = "; ".join(f"dataset {name}: {', '.join(what)}" for name, what in losses.items())
    return (
        f"{lines}. The rejects are in {where}. Fix the corpus (mount or restore the missing folders) and "
        "ingest again; a share of rejects over the limit may instead be accepted by raising "
        "embed.max_reject_fraction (--max-reject-fraction)."
    )


@dataclass(frozen=True)
class LeftOut:
    """A corpus left out of the run (``role`` "all") or of one role ("train": its train and dev
    splits, "eval": its eval splits), and why."""

    dataset: str
    role: Literal["train", "eval", "all"]
    reason: str


@dataclass(frozen=True)
class CorpusPlan:
    """The run's datasets after the ingest checks: what it trains and evaluates on, what it left out."""

    train_datasets: list[str]
    eval_datasets: list[str]
    left_out: list[LeftOut] = field(default_factory=list)

    def uses(self, dataset: str) -> bool:
        return not any(r.dataset == dataset and r.role == "all" for r in self.left_out)

    def manifests(self, ingests: dict[str, IngestedCorpus]) -> list[str]:
        """The manifests of the corpora the run uses, in ``ingests`` order."""
        return [ingested.manifest for name, ingested in ingests.items() if self.uses(name)]

    def applied_to(self, config: PipelineConfig) -> PipelineConfig:
        """``config`` (a PipelineConfig) training and evaluating on the planned datasets only."""
        return config.model_copy(
            update={
                "train": config.train.model_copy(update={"datasets": self.train_datasets}),
                "evaluate": config.evaluate.model_copy(update={"datasets": self.eval_datasets}),
            }
        )


def plan_corpora(config: PipelineConfig, summaries: dict[str, IngestSummary]) -> CorpusPlan:
    """Apply the run's rule (module docstring) to the ingest ``summaries`` of a PipelineConfig.

    Raises IngestLossError when no training or no eval dataset is left.
    """
    limit = config.embed.max_reject_fraction
    train_roles = [*config.train.splits, *config.train.dev_splits]
    roles: tuple[tuple[Literal["train", "eval"], list[str], list[str]], ...] = (
        ("train", train_roles, config.train.datasets),
        ("eval", config.evaluate.splits, config.eval_datasets),
    )
    left_out: list[LeftOut] = []
    dropped: dict[str, set[str]] = {}
    for name, summary in summaries.items():
        rejected, total = _outside_lost_splits(summary)
        if total and rejected / total > limit:
            reason = ingest_losses(summary, limit)[-1]
            left_out.append(LeftOut(name, "all", reason))
            dropped[name] = {"train", "eval"}
            continue
        present = set(summary.by_split)
        for role, splits, members in roles:
            missing = [s for s in splits if s not in present]
            if name in members and missing:
                listed = summary.expected_rows
                why = ", ".join(
                    f"{s!r} ({listed[s]} listed, all rejected: {_commonest(summary)})" if s in listed else f"{s!r}"
                    for s in missing
                )
                left_out.append(LeftOut(name, role, f"no rows in split {why}"))
                dropped.setdefault(name, set()).add(role)
    train = [d for d in config.train.datasets if "train" not in dropped.get(d, set())]
    evaluate = [d for d in config.eval_datasets if "eval" not in dropped.get(d, set())]
    if left_out and (not train or not evaluate):
        nothing = "to train on" if not train else "to evaluate on"
        losses = {r.dataset: [f"{r.role}: {r.reason}"] for r in left_out}
        raise IngestLossError(
            f"nothing left {nothing} after the ingest checks: "
            + loss_message(losses, "the manifests' _rejects/ folder")
        )
    return CorpusPlan(train, evaluate, left_out)
