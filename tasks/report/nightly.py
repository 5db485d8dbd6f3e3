"""The nightly report: what came in, champion vs challenger, the decision, and forgetting.

Returns file contents (report.md, index.html, metrics.json); storage publishes them. The
report is a :class:`~tasks.report.model.Document` rendered by the same HTML (Jinja2,
autoescaped) and Markdown (every value escaped) renderers as the run report, so values
from data - dataset names, batch ids, generators, conditions - stay text in both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from addgp import __version__
from tasks.report import html, markdown
from tasks.report.format import fmt, signed_pp
from tasks.report.model import Cell, Column, Document, Inline, Paragraph, Section, Span, Table
from tasks.report.sections import name_cell, rate_cell


@dataclass
class NightlyOutcome:
    config_name: str
    run_id: str
    batches: list[dict]  # new inbox batches absorbed tonight
    decision: dict | None = None  # PromotionDecision.as_dict(), None on a night with nothing new
    eer: pd.DataFrame | None = None  # dataset × {champion, challenger}
    forgetting: pd.DataFrame | None = None
    champion: dict | None = None  # the champion record after tonight
    warnings: list[str] = field(default_factory=list)
    # long table: dataset, condition, champion, challenger (EER per degradation condition;
    # tasks.evaluate.robustness.condition_eer_table). Shown when it holds more than one condition.
    eer_by_condition: pd.DataFrame | None = None
    # how tonight's challenger was made: {"strategy", "new_rows", "held_out_rows", "model"}
    challenger: dict | None = None

    @property
    def nothing_new(self) -> bool:
        return not self.batches


def headline(outcome: NightlyOutcome) -> str:
    if outcome.nothing_new or outcome.decision is None:
        return "Nothing new in the inbox tonight: no model was trained and the champion is unchanged."
    verdict = "PROMOTED" if outcome.decision["promote"] else "NOT PROMOTED"
    return f"Challenger {verdict}: {outcome.decision['reason']}."


def _model_ref(path) -> str:
    """``NAME/vN`` of a model folder: a report names models, never where they live."""
    return "/".join(str(path).replace("\\", "/").rstrip("/").split("/")[-2:])


def _rate(value) -> Cell:
    return rate_cell(value, digits=2, heat=False)


def _condition_section(by_condition: pd.DataFrame | None) -> Section | None:
    if by_condition is None or by_condition.empty or by_condition["condition"].nunique() < 2:
        return None
    rows = []
    for _, row in by_condition.iterrows():
        change = row["challenger"] - row["champion"]
        rows.append(
            [
                name_cell(row["dataset"]),
                name_cell(row["condition"]),
                _rate(row["champion"]),
                _rate(row["challenger"]),
                Cell(signed_pp(change), css="bad" if change > 0 else "good" if change < 0 else ""),
            ]
        )
    columns = [
        Column("dataset", True),
        Column("condition", True),
        Column("champion EER (%)"),
        Column("challenger EER (%)"),
        Column("change (pp)"),
    ]
    intro = Paragraph(
        [
            "EER of both models on the same eval sets under every degradation condition scored tonight (clean = audio as shipped)."
        ]
    )
    return Section(
        "eer-conditions", "EER per condition: champion vs challenger", [intro, Table("eer-conditions", columns, rows)]
    )


STRATEGY_WORDS = {
    "adapt": "conditioned the champion on the new rows (adaptation: no refit of its feature extractor)",
    "retrain": "fitted a fresh detector on the configured training data plus the new rows",
}


def _challenger_paragraph(outcome: NightlyOutcome) -> list[Paragraph]:
    """Which strategy ran tonight and on what, so a reader knows what the challenger is."""
    made = outcome.challenger
    if not made:
        return []
    what = STRATEGY_WORDS.get(made["strategy"], made["strategy"])
    return [
        Paragraph(
            [
                f"Strategy {made['strategy']}: {what}. Learnt from {made['new_rows']} new rows, "
                f"{made['held_out_rows']} held out to test on; challenger {_model_ref(made['model'])}."
            ]
        )
    ]


def nightly_document(outcome: NightlyOutcome) -> Document:
    promoted = bool(outcome.decision and outcome.decision["promote"])
    sections = [
        Section(
            "decision",
            "Decision",
            [Paragraph([Span(headline(outcome), "b")], note=False), *_challenger_paragraph(outcome)],
            css="decision " + ("promoted" if promoted else "kept"),
        )
    ]
    if not outcome.nothing_new:
        batches = [
            [
                name_cell(b["batch_id"]),
                Cell(fmt(b.get("n_files", ""))),
                Cell(fmt(b.get("n_bonafide", ""))),
                Cell(fmt(b.get("n_spoof", ""))),
            ]
            for b in outcome.batches
        ]
        eer_table = outcome.eer if outcome.eer is not None else pd.DataFrame(columns=["champion", "challenger"])
        eer = [
            [name_cell(dataset), _rate(row.get("champion")), _rate(row.get("challenger"))]
            for dataset, row in eer_table.iterrows()
        ]
        forgetting_table = (
            outcome.forgetting
            if outcome.forgetting is not None
            else pd.DataFrame(columns=["dataset", "eer_at_last_promotion", "eer_now", "change"])
        )
        forgetting = [
            [
                name_cell(row["dataset"]),
                _rate(row["eer_at_last_promotion"]),
                _rate(row["eer_now"]),
                Cell(signed_pp(row["change"])),
            ]
            for _, row in forgetting_table.iterrows()
        ]
        sections += [
            section
            for section in (
                Section(
                    "batches",
                    "New inbox batches",
                    [
                        Table(
                            "batches",
                            [Column("batch", True), Column("files"), Column("bona fide"), Column("spoof")],
                            batches,
                        )
                    ],
                ),
                Section(
                    "eer",
                    "EER: champion vs challenger",
                    [
                        Table(
                            "eer",
                            [Column("dataset", True), Column("champion EER (%)"), Column("challenger EER (%)")],
                            eer,
                        )
                    ],
                ),
                _condition_section(outcome.eer_by_condition),
                Section(
                    "forgetting",
                    "Forgetting since the last promotion",
                    [
                        Table(
                            "forgetting",
                            [
                                Column("dataset", True),
                                Column("EER then (%)"),
                                Column("EER now (%)"),
                                Column("change (pp)"),
                            ],
                            forgetting,
                        )
                    ],
                ),
            )
            if section is not None
        ]
        if outcome.champion:
            sections.append(
                Section(
                    "champion",
                    "Champion in service",
                    [
                        Paragraph(
                            [
                                Span(_model_ref(outcome.champion["model_path"]), "code"),
                                f" (version {outcome.champion['version']}).",
                            ],
                            note=False,
                        )
                    ],
                )
            )
    meta: list[Inline] = ["Run ", Span(outcome.run_id, "code"), f" · addgp {__version__}"]
    return Document(f"addgp nightly: {outcome.config_name}", outcome.run_id, meta, list(outcome.warnings), sections)


def render_markdown(outcome: NightlyOutcome) -> str:
    return markdown.render_markdown(nightly_document(outcome))


def render_html(outcome: NightlyOutcome) -> str:
    return html.render_page(nightly_document(outcome))


def render_nightly_report(outcome: NightlyOutcome) -> dict[str, str]:
    document = {
        "kind": "nightly",
        "config": outcome.config_name,
        "run_id": outcome.run_id,
        "created": datetime.now(UTC).isoformat(),
        "addgp_version": __version__,
        "nothing_new": outcome.nothing_new,
        "batches": outcome.batches,
        "decision": outcome.decision,
        "eer": None if outcome.eer is None else json.loads(outcome.eer.to_json(orient="index")),
        "eer_by_condition": None
        if outcome.eer_by_condition is None
        else json.loads(outcome.eer_by_condition.to_json(orient="records")),
        "forgetting": None if outcome.forgetting is None else json.loads(outcome.forgetting.to_json(orient="records")),
        "champion": outcome.champion,
        "warnings": outcome.warnings,
    }
    return {
        "report.md": render_markdown(outcome),
        "index.html": render_html(outcome),
        "metrics.json": json.dumps(document, indent=2, default=str),
    }
