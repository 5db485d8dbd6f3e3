"""The nightly report: what came in, champion vs challenger, the decision, and forgetting.

Returns file contents (report.md, index.html, metrics.json); storage publishes them. The
report is a :class:`~tasks.report.model.Document` rendered by the same HTML (Jinja2,
autoescaped) and Markdown (every value escaped) renderers as the run report, so values
from data - dataset names, batch ids, generators, conditions - stay text in both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from addgp import __version__
from addgp.drift import NightDrift, VarianceTest
from addgp.nightly import (
    ChallengerSummary,
    ChampionEvaluation,
    ChampionRecord,
    GatedDecision,
    GateRecord,
    InboxBatch,
    InboxFolder,
    StepCost,
)
from storage.inbox_ledger import batch_to_json
from storage.night_state import champion_to_json
from storage.nightly_records import night_drift_to_json
from storage.score_cache import CACHED
from tasks.report import html, markdown
from tasks.report.format import ci_pct, fmt, pct, signed_pp
from tasks.report.model import Block, Cell, Column, Document, Inline, Paragraph, Section, Span, Table
from tasks.report.nightly_intake import inbox_section, night_checks_section
from tasks.report.sections import count_cell, name_cell, rate_cell


@dataclass
class NightlyOutcome:
    config_name: str
    run_id: str
    batches: list[InboxBatch]  # new inbox batches absorbed tonight
    decision: GatedDecision | None = None  # None on a night with nothing new
    eer: pd.DataFrame | None = None  # dataset × {champion, challenger}
    forgetting: pd.DataFrame | None = None
    champion: ChampionRecord | None = None  # the champion record after tonight
    warnings: list[str] = field(default_factory=list)
    # how tonight's challenger was made (step: tasks/nightly/consolidation.py)
    challenger: ChallengerSummary | None = None
    # per slice: dataset, n_bonafide, n_spoof, champion_eer, challenger_eer, difference,
    # difference_ci_low/high, bonafide_from (tasks.nightly.compare.held_out_evidence)
    evidence: pd.DataFrame | None = None
    # a night without new data: the champion per eval corpus: dataset, n_bonafide, n_spoof, eer,
    # eer_ci_low/high, eer_at_promotion, change (tasks.nightly.compare.reevaluate_champion)
    reevaluation: pd.DataFrame | None = None
    # the champion's recorded measurements of the last nights, oldest first (storage.champions)
    champion_history: list[ChampionEvaluation] = field(default_factory=list)
    # the champion chain: every model promoted, oldest first, each with the step that made it and
    # its cost (tasks.nightly.night.champion_chain)
    chain: list[ChampionRecord] = field(default_factory=list)
    # the inbox's rejects per reason: reason, count, examples (tasks.nightly.rejects)
    rejects: pd.DataFrame | None = None
    # the champion detector the night is about (its reports live under reports/nightly/<detector>/)
    detector: str | None = None
    # the drop folder read tonight (tasks.nightly.intake.inbox_folder)
    inbox: InboxFolder | None = None
    # data checks of the corpora + tonight's new rows, and the new rows excluded from learning
    # (tasks.nightly.intake.night_data_checks)
    data_checks: pd.DataFrame | None = None
    excluded: pd.DataFrame | None = None
    # per (model, eval corpus): detector, dataset, rows, source (reused from the score cache or scored;
    # tasks.evaluate.scoring.ScoredSets.sources). A quiet night's come from reevaluation["scores"].
    score_sources: pd.DataFrame | None = None
    # the promotion gate's record: rule, outcome, reason, counts, CI, nights pooled (tasks.nightly.gate)
    gate: GateRecord | None = None
    # drift records of recent nights, tonight last (tasks.nightly.drift)
    drift: list[NightDrift] = field(default_factory=list)

    @property
    def nothing_new(self) -> bool:
        return not self.batches


def _average(eer: dict | None) -> float | None:
    return float(sum(eer.values()) / len(eer)) if eer else None


def headline(outcome: NightlyOutcome) -> str:
    if outcome.nothing_new or outcome.decision is None:
        if outcome.reevaluation is None or outcome.reevaluation.empty:
            return "Nothing new in the inbox tonight and no champion yet: no model was trained or evaluated."
        now = _average(dict(zip(outcome.reevaluation["dataset"], outcome.reevaluation["eer"])))
        then = _average(outcome.champion.eer if outcome.champion is not None else None)
        since = f" ({pct(then)} % at its promotion)" if then is not None else ""
        return (
            f"No new data; champion re-evaluated: average EER {pct(now)} % on the eval corpora{since}. "
            "No model was trained and the champion is unchanged."
        )
    if not outcome.decision.decided:  # the promotion gate could not decide (tasks/nightly/gate.py)
        return f"NOT ENOUGH EVIDENCE YET, champion kept: {outcome.decision.reason}."
    verdict = "PROMOTED" if outcome.decision.promote else "NOT PROMOTED"
    return f"Challenger {verdict}: {outcome.decision.reason}."


def _model_ref(path) -> str:
    """``NAME/vN`` of a model folder: a report names models, never where they live."""
    return "/".join(str(path).replace("\\", "/").rstrip("/").split("/")[-2:])


def _rate(value) -> Cell:
    return rate_cell(value, digits=2, heat=False)


STRATEGY_WORDS = {
    "adapt": "conditioned the champion on the new rows (adaptation: no refit of its feature extractor)",
    "retrain": "fitted a fresh detector on the configured training data plus the new rows",
}
# What each step of the champion chain is (tasks/nightly/consolidation.py).
STEP_WORDS = {
    "fit": "the baseline, fitted on the configured training data",
    "update": "the champion's own update on tonight's new rows (no refit of its feature extractor)",
    "retrain": "a fresh fit on the configured training data plus tonight's new rows",
    "consolidate": "a scheduled consolidation: a fresh fit on the configured training data plus every inbox "
    "row learnt so far",
}


def _cost(cost: StepCost | None) -> str:
    """``12.3 s, 2 140 rows learnt``: what a chain step cost (the baseline's time is not measured)."""
    if cost is None:
        return "not recorded"
    seconds = "time not measured" if cost.wall_s is None else f"{cost.wall_s:.1f} s"
    return f"{seconds}, {fmt(cost.rows_learnt)} rows learnt"


def _challenger_paragraph(outcome: NightlyOutcome) -> list[Paragraph]:
    """Which strategy and step ran tonight, on what and at what cost, so a reader knows what the challenger is."""
    made = outcome.challenger
    if made is None:
        return []
    step = made.step
    if step is None:  # a night resumed from a record written before steps were recorded
        what = f"Strategy {made.strategy}: {STRATEGY_WORDS.get(made.strategy, made.strategy)}."
    else:
        what = f"Tonight's step: {step}, {STEP_WORDS.get(step, step)} ({_cost(made.cost)})."
    paragraphs = [
        Paragraph(
            [
                f"{what} Tonight: {made.new_rows} new rows to learn from (with those of undecided nights), "
                f"{made.held_out_rows} held out to test on; challenger {_model_ref(made.model)}."
            ]
        )
    ]
    if step == "consolidate" and outcome.decision is not None and not outcome.decision.promote:
        paragraphs.append(
            Paragraph(
                [
                    "The consolidation was not promoted: the champion chain is unchanged, so the next night "
                    "with new data consolidates again (on its rows too) until one is promoted."
                ]
            )
        )
    return paragraphs


def _chain_section(chain: list[ChampionRecord]) -> Section | None:
    """Every model promoted, oldest first: which step made it and what it cost."""
    if not chain:
        return None
    rows = [
        [
            count_cell(record.version),
            name_cell(record.step or "not recorded"),
            name_cell(record.promoted_at or record.run_id or ""),
            Cell(fmt(record.cost.wall_s if record.cost is not None else None, 1)),
            count_cell(record.cost.rows_learnt if record.cost is not None else None),
        ]
        for record in chain
    ]
    columns = [
        Column("version"),
        Column("step", True),
        Column("promoted (run)", True),
        Column("wall s"),
        Column("rows learnt"),
    ]
    intro = Paragraph(
        [
            "Every model promoted, oldest first, with the step that made it (fit, update, retrain, or a scheduled "
            "consolidate) and its cost: wall seconds of the build and the rows it learnt (an update: tonight's "
            "new rows; a fit: the configured training rows plus the inbox rows learnt so far)."
        ]
    )
    return Section("chain", "Champion chain", [intro, Table("chain", columns, rows)])


def _evidence_section(evidence: pd.DataFrame | None) -> Section | None:
    if evidence is None or evidence.empty:
        return None
    rows = []
    for _, row in evidence.iterrows():
        difference = row["difference"]
        rows.append(
            [
                name_cell(row["dataset"], strong=row["dataset"] == "new_fakes"),
                count_cell(int(row["n_bonafide"])),
                count_cell(int(row["n_spoof"])),
                _rate(row["champion_eer"]),
                _rate(row["challenger_eer"]),
                Cell(
                    signed_pp(difference),
                    ci=ci_pct(row["difference_ci_low"], row["difference_ci_high"], digits=2),
                    css="good" if difference > 0 else "bad" if difference < 0 else "",
                ),
                name_cell(row["bonafide_from"] if isinstance(row["bonafide_from"], str) else ""),
            ]
        )
    columns = [
        Column("slice", True),
        Column("bona fide"),
        Column("spoof"),
        Column("champion EER (%)"),
        Column("challenger EER (%)"),
        Column("champion − challenger (pp), 95 % CI"),
        Column("bona fide from", True),
    ]
    intro = Paragraph(
        [
            "The rows both models were scored on, per slice, and the EER difference champion − challenger "
            "(positive = the challenger is better) with its 95 % interval from a bootstrap paired by row "
            "(one resample draws a row for both models). new_fakes is the held-out share of tonight's batches (and of the nights the promotion gate pooled), "
            "which neither model trained on; an interval that straddles 0 means the rows cannot tell the models apart."
        ]
    )
    return Section("evidence", "Held-out evidence", [intro, Table("evidence", columns, rows)])


def _gate_section(gate: GateRecord | None) -> Section | None:
    if gate is None:
        return None

    def need(have: int, want: int) -> Cell:
        return Cell(f"{have} (needs {want})", css="bad" if have < want else "good")

    ci = (
        ci_pct(gate.difference_ci_low, gate.difference_ci_high, digits=2)
        if gate.difference_ci_low is not None
        else "no held-out spoof"
    )
    level = (
        f"{pct(gate.ci_level, 0)} % CI (the gate's)"
        if gate.ci_level is not None
        else "95 % CI (shown; the gate does not use it)"
    )
    rows = [
        [name_cell("outcome"), Cell(gate.outcome, text_column=True, strong=True)],
        [name_cell("held-out spoof rows"), need(gate.n_spoof, gate.min_spoof)],
        [name_cell("bona fide rows of the new fakes"), need(gate.n_bonafide, gate.min_bonafide)],
        [name_cell(f"champion − challenger EER on the new fakes (pp), {level}"), Cell(ci)],
        [name_cell("nights of pooled evidence"), Cell(f"{gate.nights_pooled} (at most {gate.max_nights})")],
    ]
    intro = Paragraph(
        [
            f'Rule: {gate.rule}. Below it the night ends "not enough evidence yet": the champion is kept and '
            "tonight's rows (held out and learnt) are pooled with the next nights' until the gate can decide."
        ]
    )
    return Section(
        "gate",
        "Promotion gate",
        [intro, Table("gate-table", [Column("figure", True), Column("tonight")], rows), Paragraph([gate.reason])],
    )


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


# Nights of drift the report's trend shows (the state keeps nightly.drift.history_nights).
DRIFT_TREND_NIGHTS = 14


def _variance_above_q95(r: NightDrift) -> str:
    variance = r.measured.variance
    return f"{pct(variance.share_above_q95, 0)} %" if isinstance(variance, VarianceTest) else "–"


def _drift_section(drift: list[NightDrift]) -> Section | None:
    if not drift:
        return None
    tonight = drift[-1]
    mmd, variance = tonight.measured.mmd, tonight.measured.variance
    if mmd.mmd2 is None:
        mmd_words = f"too few rows for the MMD test ({mmd.n_tonight} tonight, {mmd.n_reference} reference)"
    else:
        mmd_words = (
            f"MMD² {_num(mmd.mmd2)} against a permutation threshold of {_num(mmd.threshold)} at "
            f"α = {mmd.alpha:g} (p = {_num(mmd.p_value, 3)}; {mmd.n_tonight} tonight vs "
            f"{mmd.n_reference} training rows, RBF bandwidth {_num(mmd.bandwidth, 3)})"
        )
    if isinstance(variance, VarianceTest):
        variance_words = (
            f"{pct(variance.share_above_q95, 0)} % of tonight's rows have a GP predictive variance above the 95th "
            f"percentile of the {tonight.variance_reference} (about 5 % without drift; "
            f"p = {_num(variance.p_value, 3)}); median variance {_num(variance.tonight_median, 3)} tonight vs "
            f"{_num(variance.reference_median, 3)}"
        )
    else:
        variance_words = f"predictive variance: not measured ({variance.why})"
    verdict = "DRIFT: tonight's inbox lies beyond the threshold" if tonight.drifted else "within the thresholds"
    blocks: list[Block] = [
        Paragraph(
            [
                Span(f"Drift tonight: {verdict}.", "b"),
                f" Measured before any label was read, on all {tonight.measured.n_rows} rows of tonight's batches against "
                f"the champion (version {tonight.champion_version})'s training data: {mmd_words}; {variance_words}.",
            ],
            note=False,
        )
    ]
    trend = [
        [
            name_cell(r.run_id),
            count_cell(r.champion_version),
            count_cell(r.measured.n_rows),
            Cell(_num(r.measured.mmd.mmd2)),
            Cell(_num(r.measured.mmd.threshold)),
            Cell(_variance_above_q95(r)),
            Cell("yes" if r.drifted else "no", css="bad" if r.drifted else ""),
        ]
        for r in drift[-DRIFT_TREND_NIGHTS:]
    ]
    blocks.append(Paragraph([f"Trend over the last {len(trend)} recorded night(s), tonight last:"]))
    blocks.append(
        Table(
            "drift-trend",
            [
                Column("night (run)", True),
                Column("champion version"),
                Column("rows"),
                Column("MMD²"),
                Column("threshold"),
                Column("variance above q95"),
                Column("drifted", True),
            ],
            trend,
        )
    )
    return Section("drift", "Drift of the inbox before labels", blocks)


def _since(champion: ChampionRecord) -> str:
    """`` in service since 2026-12-03 (run R)``: the promotion's date (records from before it was
    kept have none) and run."""
    parts = [str(champion.promoted_on)[:10]] if champion.promoted_on else []
    run = champion.promoted_at or champion.run_id
    if run:
        parts.append(f"(run {run})")
    return f" in service since {' '.join(parts)}" if parts else ""


def _champion_section(outcome: NightlyOutcome) -> Section:
    champion = outcome.champion
    if champion is None:
        return Section(
            "champion",
            "Champion in service",
            [Paragraph(["No champion yet: the first night with new data trains the baseline."], note=False)],
        )
    at_promotion = _average(champion.eer)
    tonight = outcome.champion_history[-1] if outcome.champion_history else None
    if tonight is not None and tonight.run_id != outcome.run_id:
        tonight = None
    figures = []
    if at_promotion is not None:
        figures.append(f"average EER {pct(at_promotion)} % at its promotion")
    if tonight is not None and tonight.average_eer is not None:
        figures.append(f"{pct(tonight.average_eer)} % tonight")
    blocks: list[Block] = [
        Paragraph(
            [
                Span(_model_ref(champion.model_path), "code"),
                f" (version {champion.version}){_since(champion)}"
                + (f"; {', '.join(figures)}" if figures else "")
                + ".",
            ],
            note=False,
        )
    ]
    table = outcome.reevaluation
    if table is not None and not table.empty:
        blocks.append(
            Paragraph(["Re-evaluated tonight on the eval corpora (no new data); 95 % CI by a speaker bootstrap."])
        )
        blocks.append(
            Table(
                "champion-reevaluation",
                [
                    Column("dataset", True),
                    Column("bona fide"),
                    Column("spoof"),
                    Column("EER (%), 95 % CI"),
                    Column("EER at promotion (%)"),
                    Column("change (pp)"),
                ],
                [
                    [
                        name_cell(row["dataset"]),
                        count_cell(int(row["n_bonafide"])),
                        count_cell(int(row["n_spoof"])),
                        rate_cell(
                            row["eer"], digits=2, ci=ci_pct(row["eer_ci_low"], row["eer_ci_high"], 2), heat=False
                        ),
                        _rate(row["eer_at_promotion"]),
                        Cell(
                            signed_pp(row["change"]),
                            css="bad" if (row["change"] or 0) > 0 else "good" if (row["change"] or 0) < 0 else "",
                        ),
                    ]
                    for _, row in table.iterrows()
                ],
            )
        )
    if outcome.champion_history:
        blocks.append(Paragraph(["The model in service as measured on each recent night (its drift):"]))
        blocks.append(
            Table(
                "champion-history",
                [Column("night (run)", True), Column("version"), Column("average EER (%)")],
                [[name_cell(e.run_id), count_cell(e.version), _rate(e.average_eer)] for e in outcome.champion_history],
            )
        )
    return Section("champion", "Champion in service", blocks)


def score_sources_of(outcome: NightlyOutcome) -> pd.DataFrame | None:
    """Where tonight's eval-set scores came from, per (model, eval corpus)."""
    if outcome.score_sources is not None:
        return outcome.score_sources
    table = outcome.reevaluation
    if table is None or table.empty or "scores" not in table.columns:
        return None
    return pd.DataFrame(
        {
            "detector": "champion",
            "dataset": table["dataset"],
            "rows": table["n_bonafide"] + table["n_spoof"],
            "source": table["scores"],
        }
    )


def _score_sources_section(outcome: NightlyOutcome) -> Section | None:
    sources = score_sources_of(outcome)
    if sources is None or sources.empty:
        return None
    reused = sources[sources["source"] == CACHED]
    intro = Paragraph(
        [
            f"{len(reused)} of {len(sources)} (model, eval corpus) score sets ({int(reused['rows'].sum()):,} of "
            f"{int(sources['rows'].sum()):,} rows) were reused from the score cache: neither the model nor the "
            "corpus's rows and embeddings changed since they were scored. The others were scored tonight."
        ],
        note=False,
    )
    rows = [
        [name_cell(row["detector"]), name_cell(row["dataset"]), count_cell(int(row["rows"])), Cell(row["source"])]
        for _, row in sources.iterrows()
    ]
    columns = [Column("model", True), Column("eval corpus", True), Column("rows"), Column("scores")]
    return Section("score-sources", "Scores reused", [intro, Table("score-sources", columns, rows)])


def _rejects_section(rejects: pd.DataFrame | None) -> Section | None:
    if rejects is None:
        return None
    if rejects.empty:
        return Section("rejects", "Inbox rejects", [Paragraph(["No file in the drop folder was rejected."])])
    total = int(rejects["count"].sum())
    intro = Paragraph(
        [
            f"{total} file(s) or sidecar entries in the drop folder could not be ingested and are in no batch; "
            "fix them (the reason says how) and they join the next night's batch."
        ]
    )
    rows = [
        [name_cell(row["reason"]), count_cell(int(row["count"])), name_cell(", ".join(row["examples"]))]
        for _, row in rejects.iterrows()
    ]
    table = Table("rejects", [Column("reason", True), Column("files"), Column("examples", True)], rows)
    return Section("rejects", "Inbox rejects", [intro, table])


def nightly_document(outcome: NightlyOutcome) -> Document:
    promoted = outcome.decision is not None and outcome.decision.promote
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
                name_cell(b.batch_id),
                Cell(fmt(b.n_files)),
                Cell(fmt(b.n_bonafide)),
                Cell(fmt(b.n_spoof)),
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
                _drift_section(outcome.drift),
                _gate_section(outcome.gate),
                _evidence_section(outcome.evidence),
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
    sections.append(_champion_section(outcome))
    chain = _chain_section(outcome.chain)
    if chain is not None:
        sections.append(chain)
    sections += [
        section
        for section in (
            inbox_section(outcome.inbox),
            night_checks_section(outcome.data_checks, outcome.excluded),
            _score_sources_section(outcome),
            _rejects_section(outcome.rejects),
        )
        if section is not None
    ]
    about = f" · detector {outcome.detector}" if outcome.detector else ""
    meta: list[Inline] = ["Run ", Span(outcome.run_id, "code"), f"{about} · addgp {__version__}"]
    return Document(
        f"addgp nightly: {outcome.config_name}{about}", outcome.run_id, meta, list(outcome.warnings), sections
    )


def render_markdown(outcome: NightlyOutcome) -> str:
    return markdown.render_markdown(nightly_document(outcome))


def render_html(outcome: NightlyOutcome) -> str:
    return html.render_page(nightly_document(outcome))


def render_nightly_report(outcome: NightlyOutcome) -> dict[str, str]:
    sources = score_sources_of(outcome)
    document = {
        "kind": "nightly",
        "config": outcome.config_name,
        "run_id": outcome.run_id,
        "created": datetime.now(UTC).isoformat(),
        "addgp_version": __version__,
        "nothing_new": outcome.nothing_new,
        "batches": [batch_to_json(b) for b in outcome.batches],
        "decision": None if outcome.decision is None else outcome.decision.as_dict(),
        "eer": None if outcome.eer is None else json.loads(outcome.eer.to_json(orient="index")),
        "forgetting": None if outcome.forgetting is None else json.loads(outcome.forgetting.to_json(orient="records")),
        "evidence": None if outcome.evidence is None else json.loads(outcome.evidence.to_json(orient="records")),
        "champion": None if outcome.champion is None else champion_to_json(outcome.champion),
        "champion_reevaluation": None
        if outcome.reevaluation is None
        else json.loads(outcome.reevaluation.to_json(orient="records")),
        "champion_history": [asdict(e) for e in outcome.champion_history],
        "champion_chain": [
            {
                "version": r.version,
                "model": _model_ref(r.model_path),
                "step": r.step,
                "promoted_at": r.promoted_at,
                "cost": None if r.cost is None else asdict(r.cost),
            }
            for r in outcome.chain
        ],
        "inbox_rejects": None if outcome.rejects is None else json.loads(outcome.rejects.to_json(orient="records")),
        "detector": outcome.detector,
        "challenger": None
        if outcome.challenger is None
        else {**asdict(outcome.challenger), "model": _model_ref(outcome.challenger.model)},
        "inbox": None if outcome.inbox is None else asdict(outcome.inbox),
        "data_checks": None
        if outcome.data_checks is None
        else json.loads(outcome.data_checks.to_json(orient="records")),
        "excluded_rows": None if outcome.excluded is None else json.loads(outcome.excluded.to_json(orient="records")),
        "score_sources": None if sources is None else json.loads(sources.to_json(orient="records")),
        "gate": None if outcome.gate is None else outcome.gate.as_dict(),
        "drift": [night_drift_to_json(r) for r in outcome.drift],
        "warnings": outcome.warnings,
    }
    return {
        "report.md": render_markdown(outcome),
        "index.html": render_html(outcome),
        "metrics.json": json.dumps(document, indent=2, default=str),
    }
