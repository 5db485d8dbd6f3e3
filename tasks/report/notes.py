"""A report's run notes: what the stages of a pipeline run (or the score files of ``addgp report``)
said about themselves, kept as their own types until metrics.json's ``notes`` is written.

The stage types come from torch-free modules: ``addgp report`` loads this without encoder code,
and Prefect resolves every type a ``ReportInput`` names when ``report_flow`` validates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from tasks.degrade.run import DegradeSummary
from tasks.embed.summary import EmbedSummary
from tasks.ingest.common import IngestedCorpus


@dataclass(frozen=True)
class RunNotes:
    """The run notes of a report; a field left None is a key absent from metrics.json's ``notes``.

    A pipeline run sets ``ingest`` and ``embed`` (and ``degrade`` when it degraded audio);
    ``addgp report`` sets ``score_files`` and ``score_provenance``.
    """

    ingest: Mapping[str, IngestedCorpus] | None = None  # corpus -> what its ingest kept, lost and wrote
    embed: EmbedSummary | None = None
    degrade: Sequence[DegradeSummary] | None = None  # one per (dataset, condition)
    score_files: Sequence[str] | None = None  # names of the score files the report evaluated
    # storage.reports.score_provenance of the score table: one row per (detector, provenance)
    score_provenance: pd.DataFrame | None = None

    def as_dict(self) -> dict:
        """metrics.json's ``notes`` (paths still whole: ``metrics_document`` cuts them), keys in this order."""
        notes: dict = {}
        if self.ingest is not None:
            notes["ingest"] = {name: corpus.as_dict() for name, corpus in self.ingest.items()}
        if self.embed is not None:
            notes["embed"] = self.embed.as_dict()
        if self.degrade is not None:
            notes["degrade"] = [summary.as_dict() for summary in self.degrade]
        if self.score_files is not None:
            notes["scores"] = list(self.score_files)
        if self.score_provenance is not None:
            # a column a score file lacks (older files, other tools) is unknown, said so
            notes["score_provenance"] = [
                {k: ("unknown" if v is None else v) for k, v in record.items()}
                for record in self.score_provenance.to_dict("records")
            ]
        return notes
