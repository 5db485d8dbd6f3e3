"""Turn a run's metrics into the report folder: report.md, index.html, metrics.json.

Every value that comes from data (dataset names, attack ids, detector names) is escaped
before it reaches HTML, and the HTML is self-contained: no external assets, no paths
outside its folder.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from addgp import __version__

HEADLINE_METRICS = ["eer", "min_dcf", "act_dcf", "cllr", "ece", "auc", "n_bonafide", "n_spoof"]


@dataclass
class ReportInput:
    title: str
    run_id: str
    metrics: pd.DataFrame  # one row per (detector, dataset)
    models: list[dict]
    encoder: str
    warnings: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # e.g. ingest/embed summaries, shown as a table


def eer_matrix(metrics: pd.DataFrame) -> pd.DataFrame:
    """Detectors × datasets EER, with the unweighted average over datasets as the last column."""
    matrix = metrics.pivot(index="detector", columns="dataset", values="eer")
    matrix["average"] = matrix.mean(axis=1)
    return matrix


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


def render_markdown(report: ReportInput) -> str:
    lines = [f"# {report.title}", "", f"Run `{report.run_id}` · encoder `{report.encoder}` · addgp {__version__}", ""]
    for warning in report.warnings:
        lines += [f"> **WARNING:** {warning}", ""]
    matrix = eer_matrix(report.metrics)
    lines += ["## EER by detector and dataset", "", "| detector | " + " | ".join(matrix.columns) + " |"]
    lines.append("|---" * (len(matrix.columns) + 1) + "|")
    for detector, row in matrix.iterrows():
        lines.append(f"| {detector} | " + " | ".join(_pct(v) for v in row) + " |")
    lines += ["", "## All metrics", "", "| detector | dataset | " + " | ".join(HEADLINE_METRICS) + " |"]
    lines.append("|---" * (len(HEADLINE_METRICS) + 2) + "|")
    for _, row in report.metrics.iterrows():
        lines.append(f"| {row['detector']} | {row['dataset']} | " + " | ".join(_fmt(row.get(m)) for m in HEADLINE_METRICS) + " |")
    lines += ["", "## Models", ""]
    for model in report.models:
        lines.append(f"- `{model['name']}` ({model['kind']}) version {model['version']}: `{model['path']}`")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f23;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} .meta{color:#57606a;margin-top:0}
.warning{background:#fff4e5;border-left:4px solid #d97706;padding:.6rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:1rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.35rem .7rem;text-align:right} th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}
"""


def render_html(report: ReportInput) -> str:
    e = html.escape
    matrix = eer_matrix(report.metrics)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        f"<p class='meta'>Run <code>{e(report.run_id)}</code> · encoder <code>{e(report.encoder)}</code> · addgp {e(__version__)}</p>",
    ]
    parts += [f"<div class='warning'><strong>WARNING:</strong> {e(w)}</div>" for w in report.warnings]
    parts.append("<h2>EER by detector and dataset</h2><table id='eer-matrix'><thead><tr><th>detector</th>")
    parts += [f"<th>{e(str(c))}</th>" for c in matrix.columns]
    parts.append("</tr></thead><tbody>")
    for detector, row in matrix.iterrows():
        parts.append(f"<tr><td>{e(str(detector))}</td>" + "".join(f"<td>{e(_pct(v))}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table><h2>All metrics</h2><table id='metrics'><thead><tr><th>detector</th><th>dataset</th>")
    parts += [f"<th>{e(m)}</th>" for m in HEADLINE_METRICS]
    parts.append("</tr></thead><tbody>")
    for _, row in report.metrics.iterrows():
        cells = "".join(f"<td>{e(_fmt(row.get(m)))}</td>" for m in HEADLINE_METRICS)
        parts.append(f"<tr><td>{e(str(row['detector']))}</td><td>{e(str(row['dataset']))}</td>{cells}</tr>")
    parts.append("</tbody></table><h2>Models</h2><ul>")
    parts += [f"<li><code>{e(m['name'])}</code> ({e(m['kind'])}) version {e(str(m['version']))}</li>" for m in report.models]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def metrics_document(report: ReportInput) -> dict:
    matrix = eer_matrix(report.metrics)
    return {
        "title": report.title,
        "run_id": report.run_id,
        "created": datetime.now(timezone.utc).isoformat(),
        "addgp_version": __version__,
        "encoder": report.encoder,
        "warnings": report.warnings,
        "models": report.models,
        "metrics": json.loads(report.metrics.to_json(orient="records")),
        "eer_matrix": json.loads(matrix.to_json(orient="index")),
        "notes": report.notes,
    }


def render_report(report: ReportInput) -> dict[str, str | bytes]:
    """The report's files by name; storage.reports.publish_report writes them."""
    return {
        "report.md": render_markdown(report),
        "index.html": render_html(report),
        "metrics.json": json.dumps(metrics_document(report), indent=2, default=str),
    }
