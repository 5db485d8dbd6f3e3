"""A pipeline run's report input: what its stages handed on, besides the scores.

Apart from ``tasks/report/content.py`` (which ``addgp report`` loads without any encoder or
detector code), because it reads the encoder's random-weight banner and the degrade task's result.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.degrade.task import DegradedCopies
from tasks.embed.encoder import RANDOM_WEIGHT_WARNING
from tasks.embed.summary import EmbedSummary
from tasks.evaluate.crossdataset import Evaluation
from tasks.ingest.common import IngestedCorpus
from tasks.ingest.losses import LeftOut
from tasks.report.content import ReportInput
from tasks.report.notes import RunNotes
from tasks.train.trained import TrainedModel


@dataclass(frozen=True)
class RunStages:
    """What a pipeline run's stages handed on that its report shows besides the scores."""

    ingests: dict[str, IngestedCorpus]
    embed: EmbedSummary
    degraded: DegradedCopies | None
    models: list[TrainedModel]
    data_checks: pd.DataFrame
    left_out: list[LeftOut]

    def notes(self) -> RunNotes:
        """The run notes: the ingest, embed (and degrade) summaries."""
        return RunNotes(
            ingest=self.ingests,
            embed=self.embed,
            degrade=self.degraded.summaries if self.degraded is not None else None,
        )


def run_report_input(config_name: str, run_id: str, stages: RunStages, evaluation: Evaluation) -> ReportInput:
    """The report of a pipeline run: its models, encoder (the random-weight banner when so), run notes,
    data checks and the corpora it left out, around ``evaluation``."""
    return ReportInput(
        title=f"addgp report: {config_name}",
        run_id=run_id,
        models=stages.models,
        encoder=stages.embed.encoder,
        warnings=[RANDOM_WEIGHT_WARNING] if stages.embed.random_weights else [],
        notes=stages.notes(),
        evaluation=evaluation,
        data_checks=stages.data_checks,
        left_out=stages.left_out,
    )
