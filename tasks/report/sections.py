"""The run report as a document: every section and table built once, from :class:`~tasks.report.content.ReportContent`.

Metric columns come from the metric table (:data:`addgp.metrics.METRIC_SPECS`): a metric
added there appears in "All metrics", the pooled/averaged table and - when it is a
headline metric - in the headline cards, with its label, unit and format. Both renderers
(:mod:`tasks.report.html`, :mod:`tasks.report.markdown`) read the :class:`Document` built
here.
"""

from __future__ import annotations

import json

import pandas as pd

from addgp import __version__
from addgp.metrics import METRIC_SPECS, MetricSpec
from tasks.evaluate.crossdataset import headline_metrics
from tasks.evaluate.robustness import CLEAN
from tasks.report.content import ReportContent, data_checks_of
from tasks.report.format import ci_pct, fmt, is_number, pct, slug, truthy
from tasks.report.model import (
    Block,
    Card,
    Cards,
    Cell,
    Column,
    Details,
    Document,
    Figure,
    FigureGrid,
    Heading,
    Inline,
    Paragraph,
    Section,
    Span,
    Table,
)

INDOMAIN_TITLE = "in-domain: trained on this corpus"


# ------------------------------------------------------------------ cells


def name_cell(value, strong: bool = False) -> Cell:
    """A name (detector, corpus, attack ...) from data: left-aligned text."""
    return Cell("" if value is None else str(value), text_column=True, strong=strong)


def count_cell(value) -> Cell:
    return Cell(fmt(value))


def metric_cell(spec: MetricSpec, record, digits: int | None = None, heat: bool = False) -> Cell:
    """``record[spec.key]`` formatted by its spec, with its CI when the record has one."""
    value = record.get(spec.key) if hasattr(record, "get") else record
    ci = (
        spec.format_ci(record.get(f"{spec.key}_ci_low"), record.get(f"{spec.key}_ci_high"))
        if hasattr(record, "get")
        else ""
    )
    return Cell(spec.format(value, digits), ci=ci, heat=float(value) if heat and is_number(value) else None)


def rate_cell(value, digits: int = 1, ci: str = "", css: str = "", heat: bool = True) -> Cell:
    """An error rate (fraction) in percent, coloured by its size."""
    return Cell(pct(value, digits), ci=ci, css=css, heat=float(value) if heat and is_number(value) else None)


def _figures(content: ReportContent, section: str, css: str = "") -> list[Figure]:
    return [Figure(name, caption, content.images[name], css) for name, caption in content.figures[section]]


def _note(value) -> str:
    return value if isinstance(value, str) else ""


def _metric_columns() -> list[Column]:
    return [Column(spec.header, title=spec.description) for spec in METRIC_SPECS.values()]


# ------------------------------------------------------------------ sections


def regressions_section(content: ReportContent) -> Section:
    c = content.comparison
    if c.previous_run_id is None:
        return Section(
            "regressions",
            "Regressions",
            [Paragraph(["First report: nothing to compare with yet."], note=False)],
            nav="Regressions",
            css="status first",
            summary=True,
        )
    blocks: list = []
    if not c.regressions:
        blocks.append(
            Paragraph(
                [
                    Span("None.", "b"),
                    f" Nothing got worse beyond its bootstrap CI ({c.n_compared} comparisons of a metric in a cell).",
                ],
                note=False,
            )
        )
    else:
        blocks.append(
            Paragraph(
                [
                    Span(f"{len(c.regressions)} regression(s)", "b"),
                    f" among {c.n_compared} comparisons of a metric in a cell: worse by more than the half-width of the 95 % CI.",
                ],
                note=False,
            )
        )
        rows = []
        for r in c.regressions:
            spec = r.spec
            unit = " pp" if spec.percent else ""
            rows.append(
                [
                    name_cell(r.detector),
                    name_cell(r.dataset),
                    name_cell(spec.header),
                    Cell(spec.format(r.old)),
                    Cell(spec.format(r.new)),
                    Cell(f"+{spec.format(r.delta)}{unit}", css="bad"),
                    Cell(f"{spec.format(r.tolerance)}{unit} ({r.tolerance_from})"),
                ]
            )
        columns = [
            Column("detector", True),
            Column("eval corpus", True),
            Column("metric", True),
            Column("before"),
            Column("now"),
            Column("change (worse by)"),
            Column("CI half-width"),
        ]
        blocks.append(Table("regression-table", columns, rows))
    if c.improvements:
        parts: list[Inline] = ["Improved beyond the CI: "]
        for i, change in enumerate(c.improvements):
            spec = change.spec
            unit = " %" if spec.percent else ""
            parts += [
                ", " if i else "",
                Span(
                    f"{change.detector} on {change.dataset} ({spec.label} {spec.format(change.old)} → {spec.format(change.new)}{unit})",
                    "good",
                ),
            ]
        blocks.append(Paragraph(parts))
    if c.added:
        blocks.append(Paragraph(["New cells: " + ", ".join(f"{d} on {s}" for d, s in c.added)]))
    if c.removed:
        blocks.append(Paragraph(["No longer evaluated: " + ", ".join(f"{d} on {s}" for d, s in c.removed)]))
    return Section(
        "regressions",
        f"Regressions since {c.previous_run_id}",
        blocks,
        nav="Regressions",
        css="status " + ("regress" if c.regressions else "ok"),
        summary=True,
    )


def data_checks_section(content: ReportContent) -> Section | None:
    checks = data_checks_of(content.report)
    return None if checks is None else checks_section(checks, "on the run's inputs")


def checks_section(checks: pd.DataFrame, inputs: str, extra: list[Block] | None = None) -> Section:
    """The "Data checks" section of an ordered checks table (``content.ordered_data_checks``);
    ``inputs`` says what was checked, ``extra`` blocks follow the table."""
    counts = checks["severity"].value_counts()
    errors, warnings = int(counts.get("error", 0)), int(counts.get("warning", 0))
    summary: list[Inline] = []
    if errors:
        summary.append(Span(f"{errors} error(s)", "bad"))
    if warnings:
        summary += [" · " if summary else "", Span(f"{warnings} warning(s)", "b")]
    if not summary:
        summary.append(Span("No warnings.", "b"))
    summary.append(
        f" {len(checks)} check result(s) {inputs} (duplicates, train/eval overlap, …); warnings and errors first."
    )
    rows = []
    for _, row in checks.iterrows():
        severity = str(row["severity"])
        css = {"error": "error", "warning": "warn"}.get(severity, "")
        rows.append(
            [
                name_cell(row["check"]),
                name_cell(row["scope"]),
                Cell(fmt(row["count"]), css=css),
                Cell(severity, text_column=True, css=css, strong=severity != "info"),
                name_cell(row["examples"]),
            ]
        )
    columns = [
        Column("check", True),
        Column("scope", True),
        Column("count"),
        Column("severity", True),
        Column("examples", True),
    ]
    css = "status " + ("regress" if errors else "warn" if warnings else "ok")
    return Section(
        "data-checks",
        "Data checks",
        [Paragraph(summary, note=False), Table("data-checks-table", columns, rows), *(extra or [])],
        nav="Data checks",
        css=css,
        summary=True,
    )


def left_out_section(content: ReportContent) -> Section | None:
    """The corpora (or roles) a run could not use because ingest lost their rows: named first,
    so nobody reads the tables below as the whole run."""
    left_out = content.document.get("left_out") or []
    if not left_out:
        return None
    roles = {"all": "the whole run", "train": "training", "eval": "evaluation"}
    rows = [
        [name_cell(r["dataset"]), name_cell(roles.get(r["role"], r["role"])), name_cell(r["reason"])] for r in left_out
    ]
    intro = Paragraph(
        [
            Span(f"{len(left_out)} corpus role(s) left out", "bad"),
            " — ingest lost their rows (a split with no row left, or more rejected than "
            "embed.max_reject_fraction allows); the tables below are about the rest. "
            "Fix the corpus and run again (`addgp run` exited 7).",
        ],
        note=False,
    )
    return Section(
        "left-out",
        "Corpora left out",
        [intro, Table("left-out", [Column("dataset", True), Column("left out of", True), Column("why", True)], rows)],
        nav="Left out",
        css="status regress",
        summary=True,
    )


def headline_section(content: ReportContent) -> Section:
    others = [METRIC_SPECS[k] for k in headline_metrics() if k != "eer"]
    cards = []
    for _, r in content.evaluation.summary.iterrows():
        ci = ci_pct(r["average_eer_ci_low"], r["average_eer_ci_high"])
        first: list[Inline] = [f"average EER over {r['n_corpora']} eval corpora (unweighted)"]
        excluded = list(r.get("excluded_for_overlap") or [])
        if r["n_corpora"] + len(excluded) != r["n_corpora_evaluated"]:
            first.append(Span(f" (only {r['n_corpora']} of {r['n_corpora_evaluated']})", "bad"))
        if ci:
            first.append(f" · 95 % CI {ci}")
        averages = " · ".join(
            f"{spec.label} {spec.format(r.get(f'average_{spec.key}'))}{' ' + spec.unit if spec.unit else ''}"
            for spec in others
        )
        cards.append(
            Card(
                str(r["detector"]),
                f"trained on {r['train_setting']}",
                f"{pct(r['average_eer'], 1)} %",
                [
                    first,
                    [
                        f"pooled EER {pct(r['pooled_eer'], 1)} % · out-of-domain average {pct(r['out_of_domain_average_eer'], 1)} %"
                    ],
                    [f"averages: {averages}"] if averages else [],
                    _overlap_line(r),
                ],
            )
        )
    policy = content.evaluation.settings.training_overlap
    intro = Paragraph(
        [
            "The unweighted average EER over the eval corpora per detector, with its bootstrap 95 % CI; "
            "pooled = all corpora's scores as one set. ",
            Span("Training overlap", "b"),
            f" (policy: {policy}): "
            + (
                "an eval set a detector trained on (by name or content digest on its model card) is left out of "
                "its average, as the Speech Anti-Spoofing Arena does."
                if policy == "exclude"
                else "eval sets a detector trained on stay in its average, marked."
            ),
        ]
    )
    return Section("headline", "Headline", [intro, *_label_policy(content), Cards(cards)], nav="Headline", summary=True)


def _label_policy(content: ReportContent) -> list[Paragraph]:
    """One line naming how each eval corpus with resynthesised audio labelled it (its ingest summary)."""
    ingest = (content.document.get("notes") or {}).get("ingest") or {}
    policies = {
        str(name): summary
        for name, summary in (ingest.items() if isinstance(ingest, dict) else [])
        if isinstance(summary, dict) and summary.get("label_policy")
    }
    if not policies:
        return []
    parts = "; ".join(
        f"{name}: {', '.join(summary['label_policy'])} ({summary.get('resynthesised_rows', 0)} resynthesised rows)"
        for name, summary in policies.items()
    )
    return [Paragraph([Span("Label policy for resynthesised audio", "b"), f" (docs/ingest.md): {parts}."])]


def _overlap_line(summary_row) -> list[Inline]:
    """Which corpora a detector's headline average covers, and which it leaves out for training overlap."""
    covered = ", ".join(str(d) for d in summary_row.get("corpora") or []) or "none"
    excluded = ", ".join(str(d) for d in summary_row.get("excluded_for_overlap") or [])
    line: list[Inline] = [f"averaged: {covered} · excluded for training overlap: "]
    line.append(Span(excluded, "bad") if excluded else "none")
    return line


def matrix_section(content: ReportContent) -> Section:
    ev = content.evaluation
    matrix, in_domain = ev.matrix("eer"), ev.matrix("in_domain")
    overlap = ev.matrix("training_overlap") if "training_overlap" in ev.cells else None
    low = ev.matrix("eer_ci_low") if "eer_ci_low" in ev.cells else None
    high = ev.matrix("eer_ci_high") if "eer_ci_high" in ev.cells else None
    summary = ev.summary.set_index("detector")
    columns = [
        Column("detector", True),
        Column("train setting", True),
        *[Column(str(d)) for d in matrix.columns],
        Column("average", css="avg"),
        Column("pooled"),
    ]
    rows = []
    for key, row in matrix.iterrows():
        detector, setting = key
        cells = [name_cell(detector), name_cell(setting)]
        for dataset, value in row.items():
            ci = ci_pct(low.loc[key, dataset], high.loc[key, dataset]) if low is not None and high is not None else ""
            own = truthy(in_domain.loc[key, dataset])
            cell = rate_cell(value, ci=ci, css="indomain" if own else "")
            cell.title, cell.mark = (INDOMAIN_TITLE, " ◦") if own else ("", "")
            seen = overlap.loc[key, dataset] if overlap is not None else None
            if isinstance(seen, str) and seen:
                cell.title, cell.mark = f"training overlap: {seen}", cell.mark + " ⊘"
            cells.append(cell)
        s = summary.loc[detector]
        cells.append(
            rate_cell(s["average_eer"], ci=ci_pct(s["average_eer_ci_low"], s["average_eer_ci_high"]), css="avg")
        )
        cells[-1].strong = True
        cells.append(rate_cell(s["pooled_eer"], heat=False))
        rows.append(cells)
    intro = Paragraph(
        [
            "Rows: detector and the data it was trained on; columns: eval corpora. ",
            Span("average", "b"),
            " = unweighted mean over the eval corpora (the headline); ",
            Span("pooled", "b"),
            " = all corpora's scores as one set. "
            "Small numbers: bootstrap 95 % CI. Dashed outline (◦ in Markdown): in-domain (the detector trained on that corpus). "
            f"⊘: training overlap (the detector trained on that eval set; policy {ev.settings.training_overlap}: "
            f"{'not in its average' if ev.settings.training_overlap == 'exclude' else 'kept in its average'}).",
        ]
    )
    return Section(
        "matrix",
        "Cross-dataset EER (%)",
        [intro, Table("eer-matrix", columns, rows), *_figures(content, "matrix", "heat")],
        nav="Cross-dataset matrix",
        summary=True,
    )


def _delta_cell(spec: MetricSpec, record, strong: bool = False) -> Cell:
    """The change of a metric against clean (positive = worse), with its CI; red when the CI excludes no change."""
    if record.get("condition") == CLEAN:
        return Cell("ref", title="clean is the reference of every change")
    key = f"delta_{spec.key}"
    value, low, high = record.get(key), record.get(f"{key}_ci_low"), record.get(f"{key}_ci_high")
    unit_scale = 100 if spec.percent else 1
    text = (
        f"{unit_scale * float(value):+.{spec.digits - 1 if spec.percent else spec.digits}f}"
        if is_number(value)
        else "–"
    )
    ci = spec.format_ci(low, high)
    worse = is_number(low) and (spec.worse(low, 0.0) > 0 if not spec.higher_is_better else spec.worse(high, 0.0) > 0)
    return Cell(text, ci=ci, css="bad" if worse else "", strong=strong)


def robustness_sections(content: ReportContent) -> list[Section]:
    """The robustness summary (in the short Markdown too) and its per-corpus detail; none without conditions."""
    ev = content.evaluation
    if ev.robustness is None or ev.robustness.empty:
        return []
    eer, cllr = METRIC_SPECS["eer"], METRIC_SPECS["cllr"]
    columns = [
        Column("detector", True),
        Column("condition", True),
        Column("corpora"),
        Column("EER (%)"),
        Column("ΔEER vs clean (pp)"),
        Column("Cllr (bits)"),
        Column("ΔCllr vs clean (bits)"),
    ]
    rows = []
    for _, r in ev.robustness.iterrows():
        worst = truthy(r.get("worst"))
        condition = name_cell(r["condition"], strong=worst)
        if worst:
            condition.css, condition.mark, condition.title = (
                "worst",
                " ▲ worst",
                "this detector's worst condition (largest EER increase)",
            )
        rows.append(
            [
                name_cell(r["detector"]),
                condition,
                count_cell(r["n_corpora"]),
                rate_cell(r["eer"], digits=2),
                _delta_cell(eer, r, strong=worst),
                metric_cell(cllr, r),
                _delta_cell(cllr, r),
            ]
        )
    detail_columns = [
        Column("detector", True),
        Column("eval corpus", True),
        Column("condition", True),
        Column("utterances"),
        Column("paired"),
        Column("EER (%)"),
        Column("ΔEER (pp)"),
        Column("Cllr (bits)"),
        Column("ΔCllr (bits)"),
        Column("note", True),
    ]
    detail = [
        [
            name_cell(c["detector"]),
            name_cell(c["dataset"]),
            name_cell(c["condition"]),
            count_cell(c["n"]),
            count_cell(c["n_paired"]),
            rate_cell(c["eer"], digits=2),
            _delta_cell(eer, c),
            metric_cell(cllr, c),
            _delta_cell(cllr, c),
            name_cell(_note(c["note"])),
        ]
        for _, c in ev.robustness_cells.iterrows()
    ]
    worst = ev.robustness[ev.robustness["worst"].map(truthy)]
    glance: list[Inline] = ["Worst condition per detector: "]
    for i, (_, w) in enumerate(worst.iterrows()):
        glance += [
            ", " if i else "",
            Span(f"{w['detector']}: {w['condition']} ({100 * w['delta_eer']:+.1f} pp EER)", "b"),
        ]
    intro = Paragraph(
        [
            "Every eval set scored under each degradation condition (clean = audio as shipped). Averages over the eval corpora scored "
            "under both the condition and clean; Δ = condition − clean (positive = worse), 95 % CI from a bootstrap paired by utterance "
            f"({ev.settings.n_boot} resamples; an utterance scored under both is resampled with both its scores). "
            "Red: the CI lies entirely on the worse side. The other sections describe clean audio only.",
        ]
    )
    blocks: list[Block] = [
        intro,
        Paragraph(glance if len(worst) else ["No degraded condition could be compared with clean."], note=False),
        Table("robustness-table", columns, rows),
        *_figures(content, "robustness", "heat"),
    ]
    detail_intro = Paragraph(
        ["The same per eval corpus; paired = utterances of the condition that were also scored clean."]
    )
    return [
        Section("robustness", "Robustness to degradations", blocks, nav="Robustness", summary=True),
        Section(
            "robustness-detail",
            "Robustness per eval corpus",
            [detail_intro, Table("robustness-cells", detail_columns, detail)],
        ),
    ]


def metrics_section(content: ReportContent) -> Section:
    ev = content.evaluation
    specs = list(METRIC_SPECS.values())
    columns = [
        Column("detector", True),
        Column("eval corpus", True),
        *_metric_columns(),
        Column("bona fide"),
        Column("spoof"),
        Column("CI by", True),
        Column("note", True),
    ]
    rows = [
        [
            name_cell(c["detector"]),
            name_cell(c["dataset"]),
            *[metric_cell(spec, c) for spec in specs],
            count_cell(c["n_bonafide"]),
            count_cell(c["n_spoof"]),
            name_cell(c.get("ci_unit") or "–"),
            name_cell(_note(c["note"])),
        ]
        for _, c in ev.cells.iterrows()
    ]
    agg_columns = [
        Column("detector", True),
        Column("aggregate", True),
        *_metric_columns(),
        Column("corpora"),
        Column("note", True),
    ]
    agg_rows = [
        [
            name_cell(a["detector"]),
            name_cell(a["aggregate"], strong=True),
            *[metric_cell(spec, a) for spec in specs],
            count_cell(a["n_datasets"]),
            name_cell(_note(a["note"])),
        ]
        for _, a in ev.aggregates.iterrows()
    ]
    return Section(
        "metrics",
        "All metrics",
        [
            Paragraph(
                [
                    "Per detector and eval corpus. Rates are shown in % where the header says so, as fractions elsewhere; "
                    "DCF with P(spoof) = 0.05, C_miss = 1, C_fa = 10. "
                    f"CIs: percentile bootstrap, {ev.settings.n_boot} resamples, resampling speakers where the corpus names them."
                ]
            ),
            Table("metrics", columns, rows),
            Heading("Pooled and averaged over eval corpora"),
            Paragraph(
                [
                    Span("pooled", "b"),
                    ": all corpora's scores as one set; ",
                    Span("average", "b"),
                    ": unweighted mean of the per-corpus values.",
                ]
            ),
            Table("aggregates", agg_columns, agg_rows),
        ],
        nav="All metrics",
    )


def corpora_section(content: ReportContent) -> Section:
    if not content.figures["corpora"]:
        return Section("corpora", "Per corpus", [Paragraph(["No scores with both classes to plot."])], nav="Per corpus")
    blocks: list = []
    for dataset in content.evaluation.datasets:
        key = slug(dataset)
        mine = [Figure(n, c, content.images[n]) for n, c in content.figures["corpora"] if n.endswith(f"_{key}.png")]
        if mine:
            blocks += [Heading(str(dataset), anchor=f"corpus-{key}"), FigureGrid(mine)]
    return Section("corpora", "Per corpus: DET, reliability, score histograms", blocks, nav="Per corpus")


def selective_section(content: ReportContent) -> Section:
    ev = content.evaluation
    target = ev.settings.target_error
    rows = [
        [
            name_cell(s["detector"]),
            name_cell(s["dataset"]),
            name_cell(s["uncertainty"]),
            rate_cell(s["error_at_full_coverage"], heat=False),
            Cell(pct(s["coverage_at_target"], 0), strong=True),
        ]
        for _, s in ev.selective.iterrows()
    ]
    columns = [
        Column("detector", True),
        Column("eval corpus", True),
        Column("uncertainty", True),
        Column("error, all decided (%)"),
        Column(f"coverage at {100 * target:g} % error (%)"),
    ]
    intro = Paragraph(
        [
            f"Share of utterances a detector decides with at most {100 * target:g} % errors (decision at LLR 0) when it may defer "
            "the most uncertain ones: GP predictive variance where the detector has one, otherwise the entropy of P(spoof)."
        ]
    )
    return Section(
        "selective",
        "Selective prediction",
        [intro, Table("selective-table", columns, rows), *_figures(content, "selective", "wide")],
        nav="Selective prediction",
    )


def _in_training(attack: str, trained_on: dict[str, set[str]]) -> str:
    """``eval-only`` when no model trained on ``attack``, ``yes`` when all did, else who did."""
    if not trained_on:
        return ""
    seen = sorted(name for name, attacks in trained_on.items() if attack in attacks)
    if not seen:
        return "eval-only"
    return "yes" if len(seen) == len(trained_on) else f"by {', '.join(seen)}"


def breakdowns_section(content: ReportContent) -> Section:
    ev = content.evaluation
    blocks: list = []
    if len(ev.attacks):
        pivot = ev.attacks.pivot_table(
            index=["dataset", "attack"], columns="detector", values="eer", aggfunc="first", sort=False
        )
        counts = ev.attacks.groupby(["dataset", "attack"], sort=False)["n_spoof"].first()
        trained_on = {
            m["name"]: set(m["train_attacks"])
            for m in content.document["models"]
            if m.get("train_attacks") is not None and m["name"] in set(map(str, pivot.columns))
        }
        rows = [
            [
                name_cell(k[0]),
                name_cell(k[1]),
                name_cell(_in_training(str(k[1]), trained_on)),
                count_cell(counts.get(k)),
                *[rate_cell(v) for v in row],
            ]
            for k, row in pivot.iterrows()
        ]
        blocks += [
            Heading("EER (%) per attack"),
            Paragraph(
                [
                    "Each attack's spoofs against all bona fide utterances of the corpus (as ASVspoof reports it). "
                    "In training: eval-only = no detector saw that attack id in its training rows (an unseen "
                    "attack); ids are compared by name; blank when the models' cards do not record their attacks."
                ]
            ),
            Table(
                "attacks",
                [
                    Column("eval corpus", True),
                    Column("attack", True),
                    Column("in training", True),
                    Column("spoofs"),
                    *[Column(str(d)) for d in pivot.columns],
                ],
                rows,
            ),
        ]
    else:
        blocks.append(Paragraph(["No attack ids in these corpora."]))
    if len(ev.conditions):
        pivot = ev.conditions.pivot_table(
            index=["dataset", "factor", "value"], columns="detector", values="eer", aggfunc="first", sort=False
        )
        counts = (
            ev.conditions.assign(n=ev.conditions["n_bonafide"] + ev.conditions["n_spoof"])
            .groupby(["dataset", "factor", "value"], sort=False)["n"]
            .first()
        )
        rows = [
            [name_cell(k[0]), name_cell(k[1]), name_cell(k[2]), count_cell(counts.get(k)), *[rate_cell(v) for v in row]]
            for k, row in pivot.iterrows()
        ]
        columns = [
            Column("eval corpus", True),
            Column("factor", True),
            Column("value", True),
            Column("utterances"),
            *[Column(str(d)) for d in pivot.columns],
        ]
        blocks += [Heading("EER (%) per condition"), Table("conditions", columns, rows)]
    return Section("breakdowns", "Breakdowns", blocks, nav="Breakdowns")


def trends_section(content: ReportContent) -> Section:
    if not content.figures["trends"]:
        return Section("trends", "Trends", [Paragraph(["First report: no history yet."])], nav="Trends")
    runs = content.trends["run_id"].nunique()
    return Section(
        "trends",
        "Trends",
        [
            Paragraph([f"EER over the last {runs} published reports, in run-id order."]),
            *_figures(content, "trends", "wide"),
        ],
        nav="Trends",
    )


def _run_notes_label(content: ReportContent) -> str:
    """The run notes' details label, naming what they hold (their keys in metrics.json)."""
    held = [str(key).replace("_", " ") for key in content.document.get("notes") or {}]
    return f"Run notes ({', '.join(held)})" if held else "Run notes (none)"


def models_section(content: ReportContent) -> Section:
    rows = [
        [
            name_cell(m["ref"]),
            name_cell(m["kind"]),
            name_cell(m.get("settings") or "unknown"),
            name_cell(m["train_setting"] or "unknown"),
            Cell(pct(m["dev_eer"])),
        ]
        for m in content.document["models"]
    ]
    notes = json.dumps(content.document.get("notes") or {}, indent=2, ensure_ascii=False, default=str)
    columns = [
        Column("model", True),
        Column("kind", True),
        Column("settings", True),
        Column("train setting", True),
        Column("dev EER (%), its own dev set"),
    ]
    dev_note = Paragraph(
        [
            "dev EER is measured on the dev splits each detector was fitted with: they chose its early stopping "
            "or regularisation and fitted its calibration. It is optimistic by construction (a GP often shows "
            "0.00 % there) and says nothing about new data; the eval corpora above do."
        ]
    )
    return Section(
        "models",
        "Models",
        [Table("models", columns, rows), dev_note, Details(_run_notes_label(content), notes)],
        nav="Models",
    )


def run_document(content: ReportContent) -> Document:
    """The run report's document: regressions first, then data checks, headline, matrix, robustness, the details."""
    r = content.report
    compared = content.comparison.previous_run_id
    meta: list[Inline] = [
        "Run ",
        Span(r.run_id, "b"),
        f" · {content.document['created']} · encoder {content.document['encoder']} · addgp {__version__}",
    ]
    if compared:
        meta.append(f" · compared with {compared}")
    sections = [
        regressions_section(content),
        left_out_section(content),
        data_checks_section(content),
        headline_section(content),
        matrix_section(content),
        *robustness_sections(content),
        metrics_section(content),
        corpora_section(content),
        selective_section(content),
        breakdowns_section(content),
        trends_section(content),
        models_section(content),
    ]
    return Document(r.title, r.run_id, meta, list(r.warnings), [s for s in sections if s is not None])
