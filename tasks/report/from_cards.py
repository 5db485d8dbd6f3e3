"""A run report's input from score tables and model cards (``addgp report`` on another tool's scores)."""

from __future__ import annotations

from storage.models import RANDOM_ENCODER_WARNING
from tasks.evaluate.crossdataset import Evaluation
from tasks.report.build import ReportInput


def report_input_from_cards(
    title: str, run_id: str, detectors: list[str], cards: dict[str, dict], evaluation: Evaluation, notes: dict
) -> ReportInput:
    """The models table, encoder and warnings come from the cards; a detector without a card is listed bare."""
    models = [
        {
            "name": d,
            "kind": (cards.get(d) or {}).get("model_type"),
            "version": (cards.get(d) or {}).get("version"),
            "dev_metrics": (cards.get(d) or {}).get("dev_metrics"),
        }
        for d in detectors
    ]
    encoders = sorted({str(c.get("encoder")) for c in cards.values() if c.get("encoder")})
    warnings = [RANDOM_ENCODER_WARNING] if any(c.get("random_weight_encoder") for c in cards.values()) else []
    return ReportInput(
        title=title,
        run_id=run_id,
        models=models,
        encoder=", ".join(encoders) or "not recorded",
        warnings=warnings,
        notes=notes,
        evaluation=evaluation,
    )
