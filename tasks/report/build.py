"""Turn a run's evaluation into the report folder's files: index.html, report.md, metrics.json, plots/*.png.

Pure: :func:`render_report` returns ``{file name: str | bytes}`` and
``storage.reports.publish_report`` writes them. The run is compared with the previous
published report (regressions beyond the bootstrap CI, at the top of the report) and with
all earlier ones (EER trends); the caller passes their ``metrics.json`` documents in.

Safety rules, enforced here and tested:

- every value that comes from data (dataset, detector, attack, file and run names, notes)
  is escaped before it reaches HTML (``html.escape``) or Markdown (:func:`md_escape`);
- ``index.html`` is self-contained: plots are embedded as ``data:image/png;base64`` URIs,
  styles are inline, there is no script; a Content-Security-Policy forbids loading anything
  else; no path outside the report folder appears (model and manifest paths are reduced to
  their last component);
- file names made from data are slugs (:func:`slug`): ASCII letters, digits and dashes, plus
  a hash when the name had to change, so they cannot collide, climb out of ``plots/`` or be
  absolute.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from addgp import __version__
from tasks.evaluate.crossdataset import Evaluation, evaluate_scores
from tasks.report import plots
from tasks.report.compare import AVERAGE_LABEL, Comparison, compare_with_previous, trend_table

FORMAT = "addgp-report/2"
HEADLINE_METRICS = ["eer", "min_dcf", "act_dcf", "cllr", "ece", "auc", "n_bonafide", "n_spoof"]
TREND_RUNS = 50  # at most this many reports in the trend plot


@dataclass
class ReportInput:
    """What a report is made of.

    ``evaluation`` is the source of every number; without it the report evaluates
    ``scores`` with default settings. ``previous`` is the metrics.json of
    the report to compare with (None for the first report), ``history`` those of earlier
    reports for the trends (run-id order). ``data_checks`` (optional) is the long table of
    tasks/ingest/checks.py (check, scope, count, severity, examples).
    """

    title: str
    run_id: str
    models: list[dict]
    encoder: str
    warnings: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # e.g. ingest/embed summaries
    evaluation: Evaluation | None = None
    scores: pd.DataFrame | None = None
    previous: dict | None = None
    history: list[dict] = field(default_factory=list)
    created: str | None = None
    data_checks: pd.DataFrame | None = None


# ------------------------------------------------------------------ small helpers


def slug(name) -> str:
    """A file-name-safe, collision-free form of ``name``: ``[a-z0-9-]``, a short hash appended when changed."""
    text = str(name)
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"
    if base != text:
        base = f"{base}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return base


def md_escape(value) -> str:
    """Data text for Markdown: HTML-escaped, table pipes and emphasis/link/code markers escaped, one line."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    text = re.sub(r"([\\`*\[\]|#~])", r"\\\1", text)
    # an underscore inside a word never starts emphasis (CommonMark), so demo_studio stays greppable
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def _truthy(value) -> bool:
    """True for True / numpy True only (not NaN, not None)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _isnum(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}".replace(",", " ")
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _pct(value, digits: int = 2) -> str:
    return f"{100 * float(value):.{digits}f}" if _isnum(value) else "–"


def _ci(low, high, pct: bool = True, digits: int = 1) -> str:
    if not (_isnum(low) and _isnum(high)):
        return ""
    f = (lambda v: f"{100 * float(v):.{digits}f}") if pct else (lambda v: f"{float(v):.{digits + 2}f}")
    return f"[{f(low)}, {f(high)}]"


def _jsonable(value):
    """JSON-native copy: numpy scalars unwrapped, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [_jsonable(v) for v in list(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_jsonable(row) for row in frame.to_dict("records")] if frame is not None and len(frame) else []


_PATHLIKE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|/|~|[A-Za-z]:[\\/]|\\\\)")


def without_paths(value):
    """``value`` with every string that looks like a path or URL cut to its last component.

    Reports show names, never where files live: a report must not point outside its folder.
    """
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_paths(v) for v in value]
    if isinstance(value, str) and _PATHLIKE.match(value):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or "…"
    return value


def _model_record(model: dict, settings: dict[str, str]) -> dict:
    name = str(model.get("name", "?"))
    dev = model.get("dev_metrics") or {}
    return {
        "name": name,
        "kind": model.get("kind"),
        "version": model.get("version"),
        "ref": f"{name}/v{model.get('version')}" if model.get("version") is not None else name,
        "train_setting": settings.get(name, model.get("train_setting")),
        "dev_eer": dev.get("eer") if isinstance(dev, dict) else None,
    }


def _valid_text(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# ------------------------------------------------------------------ the report's content


@dataclass
class ReportContent:
    """Everything the renderers need, computed once."""

    report: ReportInput
    evaluation: Evaluation
    document: dict
    comparison: Comparison
    trends: pd.DataFrame
    images: dict[str, bytes]  # plots/<name>.png -> bytes
    figures: dict[str, list[tuple[str, str]]]  # section -> [(file name, caption)]


def _evaluation_of(report: ReportInput) -> Evaluation:
    if report.evaluation is not None:
        return report.evaluation
    if report.scores is not None:
        return evaluate_scores(report.scores)
    raise ValueError("a report needs an evaluation or the scores to evaluate (ReportInput.evaluation / .scores)")


def metrics_document(report: ReportInput, evaluation: Evaluation | None = None, comparison: Comparison | None = None) -> dict:
    """The metrics.json document: every number of the report, CIs included, for tools and the next run's diff."""
    evaluation = evaluation or _evaluation_of(report)
    settings = dict(zip(evaluation.summary["detector"], evaluation.summary["train_setting"])) if len(evaluation.summary) else {}
    matrix = evaluation.matrix("eer")
    eer_by_detector = {}
    for (detector, _setting), row in matrix.iterrows():
        summary = evaluation.summary[evaluation.summary["detector"] == detector]
        eer_by_detector[str(detector)] = {
            **{str(k): v for k, v in row.items()},
            "average": float(summary["average_eer"].iloc[0]) if len(summary) else None,
        }
    document = {
        "format": FORMAT,
        "title": report.title,
        "run_id": report.run_id,
        "created": report.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "addgp_version": __version__,
        "encoder": without_paths(report.encoder),
        "warnings": list(report.warnings),
        "settings": evaluation.settings.as_dict(),
        "datasets": list(evaluation.datasets),
        "models": [_model_record(m, settings) for m in report.models],
        "metrics": _records(evaluation.cells),
        "summary": _records(evaluation.summary),
        "eer_matrix": eer_by_detector,
        "aggregates": _records(evaluation.aggregates),
        "attacks": _records(evaluation.attacks),
        "conditions": _records(evaluation.conditions),
        "selective": _records(evaluation.selective),
        "selective_curves": _records(evaluation.selective_curves),
        "notes": without_paths(report.notes),
    }
    document = _jsonable(document)
    if comparison is not None:
        document["comparison"] = _jsonable(comparison.as_dict())
    return document


def _scores_of(scores: pd.DataFrame | None, detector: str, dataset: str) -> pd.DataFrame | None:
    if scores is None:
        return None
    cell = scores[(scores["detector"] == detector) & (scores["dataset"] == dataset)]
    labels = set(cell["label"])
    return cell if {"bonafide", "spoof"} <= labels else None


def _make_plots(report: ReportInput, evaluation: Evaluation, trends: pd.DataFrame) -> tuple[dict[str, bytes], dict[str, list]]:
    images: dict[str, bytes] = {}
    figures: dict[str, list[tuple[str, str]]] = {"matrix": [], "corpora": [], "selective": [], "trends": []}
    summary = evaluation.summary
    if len(evaluation.cells):
        matrix = evaluation.matrix("eer")
        in_domain = np.vectorize(_truthy, otypes=[bool])(evaluation.matrix("in_domain").to_numpy(dtype=object))
        rows = [f"{d} · {s}" for d, s in matrix.index]
        averages = [float(summary.loc[summary["detector"] == d, "average_eer"].iloc[0]) for d, _ in matrix.index]
        name = "plots/eer_heatmap.png"
        images[name] = plots.heatmap_plot(matrix.to_numpy(dtype=float), rows, list(matrix.columns), averages, in_domain, "average")
        figures["matrix"].append((name, "EER (%) of every detector on every eval corpus; the last column is the unweighted average over corpora. Dashed outline: in-domain."))
    scores = report.scores
    detectors = list(summary["detector"]) if len(summary) else []
    for dataset in evaluation.datasets:
        cells = {d: _scores_of(scores, d, dataset) for d in detectors}
        cells = {d: c for d, c in cells.items() if c is not None}
        if not cells:
            continue
        key = slug(dataset)
        by_detector = {d: (c["score"].to_numpy(dtype=float), c["label"].to_numpy()) for d, c in cells.items()}
        calibration = {d: (c["p_spoof"].to_numpy(dtype=float) if "p_spoof" in c else 1 / (1 + np.exp(c["score"].to_numpy(dtype=float))),
                           (c["label"] == "spoof").to_numpy()) for d, c in cells.items()}  # fmt: skip
        det, rel, hist = f"plots/det_{key}.png", f"plots/reliability_{key}.png", f"plots/scores_{key}.png"
        images[det] = plots.det_plot(by_detector, dataset)
        images[rel] = plots.reliability_plot(calibration, dataset)
        images[hist] = plots.histogram_plot(by_detector, dataset)
        figures["corpora"] += [(det, f"DET curves on {dataset}"), (rel, f"Reliability diagram on {dataset}"), (hist, f"Score histograms per class on {dataset}")]
    if len(evaluation.selective_curves):
        name = "plots/selective.png"
        images[name] = plots.selective_plot(evaluation.selective_curves, evaluation.settings.target_error, evaluation.datasets)
        figures["selective"].append((name, "Error on the decided utterances as the most uncertain ones are deferred."))
    if trends["run_id"].nunique() >= 2:
        name = "plots/trend_eer.png"
        images[name] = plots.trend_plot(trends, evaluation.datasets, AVERAGE_LABEL, report.run_id)
        figures["trends"].append((name, "EER per eval corpus (and the average over corpora, black) across the published reports."))
    return images, figures


def build_content(report: ReportInput) -> ReportContent:
    """Evaluate (if needed), compare with the previous report, collect the trends and draw the plots."""
    evaluation = _evaluation_of(report)
    document = metrics_document(report, evaluation)
    comparison = compare_with_previous(document, report.previous)
    document["comparison"] = _jsonable(comparison.as_dict())
    history = [d for d in report.history if str(d.get("run_id")) != report.run_id][-(TREND_RUNS - 1):]
    trends = trend_table([*history, document])
    images, figures = _make_plots(report, evaluation, trends)
    document["plots"] = sorted(images)
    return ReportContent(report, evaluation, document, comparison, trends, images, figures)


# ------------------------------------------------------------------ Markdown


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _regression_lines(content: ReportContent, link_images: bool = True) -> list[str]:
    c = content.comparison
    if c.previous_run_id is None:
        return ["## Regressions", "", "First report: nothing to compare with yet.", ""]
    lines = [f"## Regressions since {md_escape(c.previous_run_id)}", ""]
    if not c.regressions:
        lines.append(f"None: no EER got worse beyond its bootstrap CI ({c.n_compared} cells compared).")
    else:
        lines.append(f"**{len(c.regressions)} regression(s)** among {c.n_compared} cells compared (EER worse by more than the CI half-width):")
        lines.append("")
        lines += _md_table(
            ["detector", "eval corpus", "EER before (%)", "EER now (%)", "change (pp)", "CI half-width (pp)"],
            [[md_escape(r.detector), md_escape(r.dataset), _pct(r.old), _pct(r.new), f"+{100 * r.delta:.2f}", f"{100 * r.tolerance:.2f} ({r.tolerance_from})"] for r in c.regressions],
        )
    if c.improvements:
        lines += ["", "Improved beyond the CI: " + ", ".join(f"{md_escape(i.detector)} on {md_escape(i.dataset)} ({_pct(i.old)} → {_pct(i.new)} %)" for i in c.improvements)]
    if c.added:
        lines += ["", "New cells: " + ", ".join(f"{md_escape(d)} on {md_escape(s)}" for d, s in c.added)]
    if c.removed:
        lines += ["", "No longer evaluated: " + ", ".join(f"{md_escape(d)} on {md_escape(s)}" for d, s in c.removed)]
    return lines + [""]


def _headline_md(content: ReportContent) -> list[str]:
    s = content.evaluation.summary
    rows = []
    for _, r in s.iterrows():
        rows.append([
            md_escape(r["detector"]), md_escape(r["train_setting"]),
            f"**{_pct(r['average_eer'])}** {_ci(r['average_eer_ci_low'], r['average_eer_ci_high'])}",
            f"{r['n_corpora']} of {r['n_corpora_evaluated']}", _pct(r["out_of_domain_average_eer"]), _pct(r["pooled_eer"]),
        ])  # fmt: skip
    return _md_table(
        ["detector", "train setting", "average EER over eval corpora (%) [95 % CI]", "corpora", "out-of-domain average (%)", "pooled EER (%)"], rows
    )


def _matrix_md(content: ReportContent) -> list[str]:
    ev = content.evaluation
    matrix, summary = ev.matrix("eer"), ev.summary.set_index("detector")
    in_domain = ev.matrix("in_domain")
    headers = ["detector", "train setting", *[md_escape(d) for d in matrix.columns], "**average**"]
    rows = []
    for (detector, setting), row in matrix.iterrows():
        cells = [_pct(v) + (" ◦" if _truthy(in_domain.loc[(detector, setting), d]) else "") for d, v in row.items()]
        rows.append([md_escape(detector), md_escape(setting), *cells, f"**{_pct(summary.loc[detector, 'average_eer'])}**"])
    return _md_table(headers, rows)


def summary_markdown(content: ReportContent) -> str:
    """The short Markdown for the Prefect UI: regressions, the headline, the cross-dataset matrix."""
    r = content.report
    lines = [f"# {md_escape(r.title)}", "", f"Run {md_escape(r.run_id)} · encoder {md_escape(content.document['encoder'])} · addgp {__version__}", ""]
    lines += [f"> **WARNING:** {md_escape(w)}" for w in r.warnings] + ([""] if r.warnings else [])
    lines += _regression_lines(content)
    lines += ["## Headline: average EER over eval corpora (unweighted)", ""] + _headline_md(content) + [""]
    lines += ["## Cross-dataset EER (%)", "", "◦ marks in-domain cells (the detector trained on that corpus).", ""] + _matrix_md(content)
    return "\n".join(lines) + "\n"


def render_markdown(report: ReportInput | ReportContent) -> str:
    """report.md: the summary, then every table; plots referenced by their relative file names."""
    content = report if isinstance(report, ReportContent) else build_content(report)
    ev = content.evaluation
    lines = summary_markdown(content).rstrip("\n").split("\n") + [""]
    for name, caption in content.figures["matrix"]:
        lines += [f"![{md_escape(caption)}]({name})", ""]
    lines += ["## Pooled and averaged over corpora", "",
              "*pooled*: all corpora's scores as one set; *average*: unweighted mean of the per-corpus values.", ""]  # fmt: skip
    agg_rows = [[md_escape(a["detector"]), a["aggregate"], _pct(a["eer"]), _fmt(a["min_dcf"]), _fmt(a["act_dcf"]), _fmt(a["cllr"]), _fmt(a["ece"]), str(a["n_datasets"])]
                for _, a in ev.aggregates.iterrows()]  # fmt: skip
    lines += _md_table(["detector", "aggregate", "EER (%)", "minDCF", "actDCF", "Cllr", "ECE", "corpora"], agg_rows) + [""]
    lines += ["## All metrics per detector and eval corpus", ""]
    rows = []
    for _, c in ev.cells.iterrows():
        rows.append([md_escape(c["detector"]), md_escape(c["dataset"]), f"{_pct(c['eer'])} {_ci(c.get('eer_ci_low'), c.get('eer_ci_high'))}".strip(),
                     _fmt(c["min_dcf"]), _fmt(c["act_dcf"]), _fmt(c["cllr"]), _fmt(c["min_cllr"]), _fmt(c["ece"]), _fmt(c["auc"]),
                     _fmt(c["n_bonafide"]), _fmt(c["n_spoof"]), md_escape(c["note"]) if isinstance(c["note"], str) else ""])  # fmt: skip
    lines += _md_table(["detector", "corpus", "EER (%) [95 % CI]", "minDCF", "actDCF", "Cllr", "minCllr", "ECE", "AUC", "bona fide", "spoof", "note"], rows) + [""]
    if content.figures["corpora"]:
        lines += ["## Per corpus: DET, reliability, score histograms", ""]
        lines += [f"![{md_escape(caption)}]({name})" for name, caption in content.figures["corpora"]] + [""]
    lines += ["## Selective prediction", "", f"Share of utterances decided with at most {100 * ev.settings.target_error:g} % errors when the most uncertain are deferred.", ""]
    sel_rows = [[md_escape(s["detector"]), md_escape(s["dataset"]), s["uncertainty"], _pct(s["error_at_full_coverage"]), _pct(s["coverage_at_target"], 0)]
                for _, s in ev.selective.iterrows()]  # fmt: skip
    lines += _md_table(["detector", "corpus", "uncertainty", "error, all decided (%)", "coverage at target (%)"], sel_rows) + [""]
    lines += [f"![{md_escape(c)}]({n})" for n, c in content.figures["selective"]] + [""]
    if len(ev.attacks):
        lines += ["## EER (%) per attack", "", "Each attack's spoofs against all bona fide utterances of the corpus.", ""]
        pivot = ev.attacks.pivot_table(index=["dataset", "attack"], columns="detector", values="eer", aggfunc="first", sort=False)
        lines += _md_table(["corpus", "attack", *[md_escape(d) for d in pivot.columns]],
                           [[md_escape(k[0]), md_escape(k[1]), *[_pct(v) for v in row]] for k, row in pivot.iterrows()]) + [""]  # fmt: skip
    if len(ev.conditions):
        lines += ["## EER (%) per condition", ""]
        pivot = ev.conditions.pivot_table(index=["dataset", "factor", "value"], columns="detector", values="eer", aggfunc="first", sort=False)
        lines += _md_table(["corpus", "factor", "value", *[md_escape(d) for d in pivot.columns]],
                           [[*(md_escape(x) for x in k), *[_pct(v) for v in row]] for k, row in pivot.iterrows()]) + [""]  # fmt: skip
    lines += ["## Trends", ""]
    lines += [f"![{md_escape(c)}]({n})" for n, c in content.figures["trends"]] or ["First report: no history yet."]
    lines += ["", "## Models", ""]
    for m in content.document["models"]:
        lines.append(f"- {md_escape(m['ref'])} ({md_escape(m['kind'])}), trained on {md_escape(m['train_setting'] or 'unknown data')}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ HTML

_CSS = """
:root{--ink:#1b1f23;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa;--bad:#b42318;--good:#067647}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#fff}
main{max-width:78rem;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.55rem;margin:.2rem 0}
h2{font-size:1.2rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta{color:var(--muted);margin:.1rem 0 .6rem;font-size:.9rem}
nav{font-size:.88rem;margin:.4rem 0 1rem;display:flex;flex-wrap:wrap;gap:.3rem .9rem}
nav a{color:#0b57d0;text-decoration:none}
.warning{background:#fff4e5;border-left:5px solid #d97706;padding:.55rem .9rem;margin:.6rem 0;font-size:.92rem}
.status{border-radius:8px;padding:.8rem 1rem;margin:1rem 0;border:1px solid}
.status h2{border:0;margin:0 0 .3rem;padding:0}
.status.ok{background:#ecfdf3;border-color:#abefc6}
.status.regress{background:#fef3f2;border-color:#fda29b}
.status.regress h2{color:var(--bad)}
.status.first{background:var(--soft);border-color:var(--line)}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:.6rem 0 1rem}
.card{border:1px solid var(--line);border-radius:8px;padding:.7rem 1rem;min-width:15rem;flex:1 1 15rem;max-width:24rem}
.card .who{font-weight:600}
.card .setting{color:var(--muted);font-size:.85rem}
.card .big{font-size:2rem;font-weight:700;margin:.2rem 0 0}
.card .ci{color:var(--muted);font-size:.85rem}
.card .small{font-size:.85rem;color:var(--ink);margin-top:.3rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums;font-size:.88rem}
th,td{border:1px solid var(--line);padding:.3rem .6rem;text-align:right;vertical-align:top;white-space:nowrap}
th{background:var(--soft);font-weight:600}
td.t,th.t{text-align:left;white-space:normal}
th{white-space:normal}
td .ci{display:block;color:var(--muted);font-size:.75rem}
td.avg,th.avg{border-left:3px solid #8c959f;font-weight:700}
td.indomain{outline:2px dashed #444;outline-offset:-4px}
.note{color:var(--muted);font-size:.85rem}
figure{margin:0}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2;border-radius:4px}
.grid figure img{width:100%}
figcaption{color:var(--muted);font-size:.8rem;margin-top:.2rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:1rem;align-items:start}
.bad{color:var(--bad);font-weight:600}
.good{color:var(--good)}
details{margin:1rem 0}
pre{background:var(--soft);padding:.6rem;overflow-x:auto;font-size:.8rem}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _e(value) -> str:
    return html.escape(_valid_text(str(value)), quote=True)


def _heat_style(value) -> str:
    if not _isnum(value):
        return ""
    share = min(max(float(value) / 0.5, 0.0), 1.0)
    hue = int(round(120 * (1 - share)))
    return f" style='background:hsl({hue},65%,88%)'"


def _img(content: ReportContent, name: str, caption: str, cls: str = "") -> str:
    data = base64.b64encode(content.images[name]).decode("ascii")
    return (
        f"<figure class='{cls}'><img src='data:image/png;base64,{data}' alt='{_e(caption)}' data-file='{_e(name)}'>"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _table(headers: list[tuple[str, str]], rows: list[str], table_id: str) -> str:
    head = "".join(f"<th class='{cls}'>{text}</th>" for text, cls in headers)
    return f"<div class='scroll'><table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _regressions_html(content: ReportContent) -> str:
    c = content.comparison
    if c.previous_run_id is None:
        return "<section id='regressions' class='status first'><h2>Regressions</h2><p>First report: nothing to compare with yet.</p></section>"
    cls = "regress" if c.regressions else "ok"
    parts = [f"<section id='regressions' class='status {cls}'><h2>Regressions since {_e(c.previous_run_id)}</h2>"]
    if not c.regressions:
        parts.append(f"<p><strong>None.</strong> No EER got worse beyond its bootstrap CI ({c.n_compared} cells compared).</p>")
    else:
        parts.append(f"<p><strong>{len(c.regressions)} regression(s)</strong> among {c.n_compared} cells compared: EER worse by more than the half-width of the 95 % CI.</p>")
        rows = [
            f"<tr><td class='t'>{_e(r.detector)}</td><td class='t'>{_e(r.dataset)}</td><td>{_pct(r.old)}</td><td>{_pct(r.new)}</td>"
            f"<td class='bad'>+{100 * r.delta:.2f}</td><td>{100 * r.tolerance:.2f} <span class='note'>({_e(r.tolerance_from)})</span></td></tr>"
            for r in c.regressions
        ]
        parts.append(_table([("detector", "t"), ("eval corpus", "t"), ("EER before (%)", ""), ("EER now (%)", ""), ("change (pp)", ""), ("CI half-width (pp)", "")], rows, "regression-table"))
    extra = []
    if c.improvements:
        extra.append("Improved beyond the CI: " + ", ".join(f"<span class='good'>{_e(i.detector)} on {_e(i.dataset)} ({_pct(i.old)} → {_pct(i.new)} %)</span>" for i in c.improvements))
    if c.added:
        extra.append("New cells: " + ", ".join(f"{_e(d)} on {_e(s)}" for d, s in c.added))
    if c.removed:
        extra.append("No longer evaluated: " + ", ".join(f"{_e(d)} on {_e(s)}" for d, s in c.removed))
    parts += [f"<p class='note'>{x}</p>" for x in extra]
    parts.append("</section>")
    return "".join(parts)


def _headline_html(content: ReportContent) -> str:
    cards = []
    for _, r in content.evaluation.summary.iterrows():
        ci = _ci(r["average_eer_ci_low"], r["average_eer_ci_high"])
        partial = "" if r["n_corpora"] == r["n_corpora_evaluated"] else f" <span class='bad'>(only {r['n_corpora']} of {r['n_corpora_evaluated']})</span>"
        cards.append(
            f"<div class='card'><div class='who'>{_e(r['detector'])}</div><div class='setting'>trained on {_e(r['train_setting'])}</div>"
            f"<div class='big'>{_pct(r['average_eer'], 1)} %</div>"
            f"<div class='ci'>average EER over {r['n_corpora']} eval corpora (unweighted){partial}{' · 95 % CI ' + ci if ci else ''}</div>"
            f"<div class='small'>pooled EER {_pct(r['pooled_eer'], 1)} % · out-of-domain average {_pct(r['out_of_domain_average_eer'], 1)} %<br>"
            f"average minDCF {_fmt(r['average_min_dcf'])} · actDCF {_fmt(r['average_act_dcf'])} · Cllr {_fmt(r['average_cllr'])} bits</div></div>"
        )
    return f"<section id='headline'><h2>Headline</h2><div class='cards'>{''.join(cards)}</div></section>"


def _matrix_html(content: ReportContent) -> str:
    ev = content.evaluation
    matrix, in_domain = ev.matrix("eer"), ev.matrix("in_domain")
    low, high = ev.matrix("eer_ci_low") if "eer_ci_low" in ev.cells else None, ev.matrix("eer_ci_high") if "eer_ci_high" in ev.cells else None
    summary = ev.summary.set_index("detector")
    headers = [("detector", "t"), ("train setting", "t"), *[(_e(d), "") for d in matrix.columns], ("average", "avg"), ("pooled", "")]
    rows = []
    for key, row in matrix.iterrows():
        detector, setting = key
        cells = []
        for dataset, value in row.items():
            ci = _ci(low.loc[key, dataset], high.loc[key, dataset]) if low is not None else ""
            cls = " class='indomain' title='in-domain: trained on this corpus'" if _truthy(in_domain.loc[key, dataset]) else ""
            cells.append(f"<td{cls}{_heat_style(value)}>{_pct(value, 1)}<span class='ci'>{ci}</span></td>")
        s = summary.loc[detector]
        avg_ci = _ci(s["average_eer_ci_low"], s["average_eer_ci_high"])
        rows.append(
            f"<tr><td class='t'>{_e(detector)}</td><td class='t'>{_e(setting)}</td>{''.join(cells)}"
            f"<td class='avg'{_heat_style(s['average_eer'])}>{_pct(s['average_eer'], 1)}<span class='ci'>{avg_ci}</span></td>"
            f"<td>{_pct(s['pooled_eer'], 1)}</td></tr>"
        )
    parts = [
        "<section id='matrix'><h2>Cross-dataset EER (%)</h2>",
        "<p class='note'>Rows: detector and the data it was trained on; columns: eval corpora. "
        "<b>average</b> = unweighted mean over the eval corpora (the headline); <b>pooled</b> = all corpora's scores as one set. "
        "Small numbers: bootstrap 95 % CI. Dashed outline: in-domain (the detector trained on that corpus).</p>",
        _table(headers, rows, "eer-matrix"),
    ]
    parts += [_img(content, name, caption, "heat") for name, caption in content.figures["matrix"]]
    parts.append("</section>")
    return "".join(parts)


def _metrics_html(content: ReportContent) -> str:
    ev = content.evaluation
    ci_cols = [m for m in ("eer", "min_dcf", "act_dcf", "cllr")]
    headers = [("detector", "t"), ("eval corpus", "t"), ("EER (%)", ""), ("minDCF", ""), ("actDCF", ""), ("Cllr (bits)", ""),
               ("minCllr", ""), ("ECE", ""), ("Brier", ""), ("AUC", ""), ("bona fide", ""), ("spoof", ""), ("CI by", "t"), ("note", "t")]  # fmt: skip
    rows = []
    for _, c in ev.cells.iterrows():
        cells = []
        for m in ci_cols:
            value = _pct(c[m]) if m == "eer" else _fmt(c[m])
            ci = _ci(c.get(f"{m}_ci_low"), c.get(f"{m}_ci_high"), pct=(m == "eer"), digits=1)
            cells.append(f"<td>{value}<span class='ci'>{ci}</span></td>")
        note = c["note"] if isinstance(c["note"], str) else ""
        rows.append(
            f"<tr><td class='t'>{_e(c['detector'])}</td><td class='t'>{_e(c['dataset'])}</td>{''.join(cells)}"
            + "".join(f"<td>{_fmt(c[m])}</td>" for m in ("min_cllr", "ece", "brier", "auc", "n_bonafide", "n_spoof"))
            + f"<td class='t'>{_e(c.get('ci_unit') or '–')}</td><td class='t'>{_e(note)}</td></tr>"
        )
    agg_rows = [
        f"<tr><td class='t'>{_e(a['detector'])}</td><td class='t'><b>{_e(a['aggregate'])}</b></td><td>{_pct(a['eer'])}</td><td>{_fmt(a['min_dcf'])}</td>"
        f"<td>{_fmt(a['act_dcf'])}</td><td>{_fmt(a['cllr'])}</td><td>{_fmt(a['ece'])}</td><td>{_fmt(a['auc'])}</td><td>{_fmt(a['n_datasets'])}</td>"
        f"<td class='t'>{_e(a['note']) if isinstance(a['note'], str) else ''}</td></tr>"
        for _, a in ev.aggregates.iterrows()
    ]
    return (
        "<section id='metrics'><h2>All metrics</h2>"
        f"<p class='note'>Per detector and eval corpus. Rates are shown in % for EER, as fractions elsewhere; DCF with P(spoof) = 0.05, C_miss = 1, C_fa = 10. "
        f"CIs: percentile bootstrap, {ev.settings.n_boot} resamples, resampling speakers where the corpus names them.</p>"
        + _table(headers, rows, "metrics")
        + "<h3>Pooled and averaged over eval corpora</h3><p class='note'><b>pooled</b>: all corpora's scores as one set; "
        "<b>average</b>: unweighted mean of the per-corpus values.</p>"
        + _table([("detector", "t"), ("aggregate", "t"), ("EER (%)", ""), ("minDCF", ""), ("actDCF", ""), ("Cllr", ""), ("ECE", ""), ("AUC", ""), ("corpora", ""), ("note", "t")], agg_rows, "aggregates")
        + "</section>"
    )


def _corpora_html(content: ReportContent) -> str:
    if not content.figures["corpora"]:
        return "<section id='corpora'><h2>Per corpus</h2><p class='note'>No scores with both classes to plot.</p></section>"
    parts = ["<section id='corpora'><h2>Per corpus: DET, reliability, score histograms</h2>"]
    by_dataset: dict[str, list] = {}
    for dataset in content.evaluation.datasets:
        key = slug(dataset)
        mine = [(n, c) for n, c in content.figures["corpora"] if n.endswith(f"_{key}.png")]
        if mine:
            by_dataset[dataset] = mine
    for dataset, figures in by_dataset.items():
        parts.append(f"<h3 id='corpus-{slug(dataset)}'>{_e(dataset)}</h3><div class='grid'>")
        parts += [_img(content, name, caption) for name, caption in figures]
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _selective_html(content: ReportContent) -> str:
    ev = content.evaluation
    target = ev.settings.target_error
    rows = [
        f"<tr><td class='t'>{_e(s['detector'])}</td><td class='t'>{_e(s['dataset'])}</td><td class='t'>{_e(s['uncertainty'])}</td>"
        f"<td>{_pct(s['error_at_full_coverage'], 1)}</td><td><b>{_pct(s['coverage_at_target'], 0)}</b></td></tr>"
        for _, s in ev.selective.iterrows()
    ]
    parts = [
        "<section id='selective'><h2>Selective prediction</h2>",
        f"<p class='note'>Share of utterances a detector decides with at most {100 * target:g} % errors (decision at LLR 0) when it may defer "
        "the most uncertain ones: GP predictive variance where the detector has one, otherwise the entropy of P(spoof).</p>",
        _table([("detector", "t"), ("eval corpus", "t"), ("uncertainty", "t"), ("error, all decided (%)", ""), (f"coverage at {100 * target:g} % error (%)", "")], rows, "selective-table"),
    ]
    parts += [_img(content, n, c, "wide") for n, c in content.figures["selective"]]
    parts.append("</section>")
    return "".join(parts)


def _breakdowns_html(content: ReportContent) -> str:
    ev = content.evaluation
    parts = ["<section id='breakdowns'><h2>Breakdowns</h2>"]
    if len(ev.attacks):
        pivot = ev.attacks.pivot_table(index=["dataset", "attack"], columns="detector", values="eer", aggfunc="first", sort=False)
        counts = ev.attacks.groupby(["dataset", "attack"], sort=False)["n_spoof"].first()
        rows = [
            f"<tr><td class='t'>{_e(k[0])}</td><td class='t'>{_e(k[1])}</td><td>{_fmt(counts.get(k))}</td>"
            + "".join(f"<td{_heat_style(v)}>{_pct(v, 1)}</td>" for v in row)
            + "</tr>"
            for k, row in pivot.iterrows()
        ]
        parts.append("<h3>EER (%) per attack</h3><p class='note'>Each attack's spoofs against all bona fide utterances of the corpus (as ASVspoof reports it).</p>")
        parts.append(_table([("eval corpus", "t"), ("attack", "t"), ("spoofs", ""), *[(_e(d), "") for d in pivot.columns]], rows, "attacks"))
    else:
        parts.append("<p class='note'>No attack ids in these corpora.</p>")
    if len(ev.conditions):
        pivot = ev.conditions.pivot_table(index=["dataset", "factor", "value"], columns="detector", values="eer", aggfunc="first", sort=False)
        counts = ev.conditions.assign(n=ev.conditions["n_bonafide"] + ev.conditions["n_spoof"]).groupby(["dataset", "factor", "value"], sort=False)["n"].first()
        rows = [
            f"<tr><td class='t'>{_e(k[0])}</td><td class='t'>{_e(k[1])}</td><td class='t'>{_e(k[2])}</td><td>{_fmt(counts.get(k))}</td>"
            + "".join(f"<td{_heat_style(v)}>{_pct(v, 1)}</td>" for v in row)
            + "</tr>"
            for k, row in pivot.iterrows()
        ]
        parts.append("<h3>EER (%) per condition</h3>")
        parts.append(_table([("eval corpus", "t"), ("factor", "t"), ("value", "t"), ("utterances", ""), *[(_e(d), "") for d in pivot.columns]], rows, "conditions"))
    parts.append("</section>")
    return "".join(parts)


def _trends_html(content: ReportContent) -> str:
    if not content.figures["trends"]:
        return "<section id='trends'><h2>Trends</h2><p class='note'>First report: no history yet.</p></section>"
    runs = content.trends["run_id"].nunique()
    return (
        f"<section id='trends'><h2>Trends</h2><p class='note'>EER over the last {runs} published reports, in run-id order.</p>"
        + "".join(_img(content, n, c, "wide") for n, c in content.figures["trends"])
        + "</section>"
    )


def _models_html(content: ReportContent) -> str:
    rows = [
        f"<tr><td class='t'>{_e(m['ref'])}</td><td class='t'>{_e(m['kind'])}</td><td class='t'>{_e(m['train_setting'] or 'unknown')}</td><td>{_pct(m['dev_eer'])}</td></tr>"
        for m in content.document["models"]
    ]
    notes = json.dumps(content.document.get("notes") or {}, indent=2, ensure_ascii=False, default=str)
    return (
        "<section id='models'><h2>Models</h2>"
        + _table([("model", "t"), ("kind", "t"), ("train setting", "t"), ("dev EER (%)", "")], rows, "models")
        + f"<details><summary>Run notes (ingest, embed)</summary><pre>{_e(notes)}</pre></details></section>"
    )


def render_html(report: ReportInput | ReportContent) -> str:
    """index.html: one self-contained page (inline CSS, embedded PNGs, no script)."""
    content = report if isinstance(report, ReportContent) else build_content(report)
    r = content.report
    compared = content.comparison.previous_run_id
    nav = [("regressions", "Regressions"), ("headline", "Headline"), ("matrix", "Cross-dataset matrix"), ("metrics", "All metrics"),
           ("corpora", "Per corpus"), ("selective", "Selective prediction"), ("breakdowns", "Breakdowns"), ("trends", "Trends"), ("models", "Models")]  # fmt: skip
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(r.title)} · {_e(r.run_id)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(r.title)}</h1>",
        f"<p class='meta'>Run <b>{_e(r.run_id)}</b> · {_e(content.document['created'])} · encoder {_e(content.document['encoder'])} · addgp {_e(__version__)}"
        + (f" · compared with {_e(compared)}" if compared else "")
        + "</p>",
        "<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in nav) + "</nav>",
    ]
    parts += [f"<div class='warning'><strong>WARNING:</strong> {_e(w)}</div>" for w in r.warnings]
    parts += [
        _regressions_html(content),
        _headline_html(content),
        _matrix_html(content),
        _metrics_html(content),
        _corpora_html(content),
        _selective_html(content),
        _breakdowns_html(content),
        _trends_html(content),
        _models_html(content),
        "</main></body></html>",
    ]
    return "\n".join(parts)


def render_report(report: ReportInput | ReportContent) -> dict[str, str | bytes]:
    """The report's files by name (index.html, report.md, metrics.json, plots/*.png); storage writes them."""
    content = report if isinstance(report, ReportContent) else build_content(report)
    return {
        "index.html": render_html(content),
        "report.md": render_markdown(content),
        "metrics.json": json.dumps(content.document, indent=1, allow_nan=False, ensure_ascii=False),
        **content.images,
    }
