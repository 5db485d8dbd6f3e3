"""A run report's input from score tables and model cards (``addgp report`` on another tool's scores)."""

from __future__ import annotations

import pandas as pd

from storage.models import RANDOM_ENCODER_WARNING
from storage.reports import score_provenance
from tasks.evaluate.crossdataset import Evaluation
from tasks.report.build import ReportInput
from tasks.report.content import ModelEntry
from tasks.report.notes import RunNotes
from tasks.train.detectors import detector_summary


def _known(values) -> list[str]:
    return sorted({str(v) for v in values if v is not None})


def report_input_from_cards(
    title: str,
    run_id: str,
    detectors: list[str],
    cards: dict[str, dict],
    evaluation: Evaluation,
    score_files: list[str],
    scores: pd.DataFrame | None = None,
) -> ReportInput:
    """The models table, encoder and warnings come from the cards and from the score table's
    provenance columns (``storage.reports.PROVENANCE_COLUMNS``), so a report made without
    ``--model`` still names the versions and encoders and still carries the random-weight
    banner. A detector known from neither is listed bare, its provenance "unknown"."""
    provenance = score_provenance(scores if scores is not None else pd.DataFrame({"detector": detectors}))
    by_detector = {d: provenance[provenance["detector"] == d] for d in detectors}
    models = []
    for d in detectors:
        card = cards.get(d) or {}
        versions = _known(by_detector[d]["model_version"])
        models.append(
            ModelEntry(
                name=d,
                kind=card.get("model_type"),
                version=card.get("version", versions[0] if len(versions) == 1 else None),
                dev_metrics=card.get("dev_metrics"),
                summary=detector_summary(card.get("model_type"), card.get("detector_params")),
            )
        )
    encoders = _known([c.get("encoder") for c in cards.values()] + list(provenance["encoder"]))
    random_weights = any(c.get("random_weight_encoder") for c in cards.values()) or any(
        bool(v) for v in provenance["random_weights"]
    )
    return ReportInput(
        title=title,
        run_id=run_id,
        models=models,
        encoder=", ".join(encoders) or "not recorded",
        warnings=[RANDOM_ENCODER_WARNING] if random_weights else [],
        notes=RunNotes(score_files=score_files, score_provenance=provenance),
        evaluation=evaluation,
    )
