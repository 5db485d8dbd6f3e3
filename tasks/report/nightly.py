"""The nightly report: what came in, champion vs challenger, the decision, and forgetting.

Returns file contents (report.md, index.html, metrics.json); storage publishes them. Values
from data (dataset names, batch ids, generators) are escaped in HTML.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from addgp import __version__

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f23;padding:0 1rem}
.meta{color:#57606a} .warning{background:#fff4e5;border-left:4px solid #d97706;padding:.6rem 1rem;margin:1rem 0}
.decision{padding:.8rem 1rem;margin:1rem 0;border-left:6px solid} .promoted{background:#e6f4ea;border-color:#1a7f37}
.kept{background:#f6f8fa;border-color:#57606a}
table{border-collapse:collapse;margin:1rem 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.35rem .7rem;text-align:right} th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}
"""


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

    @property
    def nothing_new(self) -> bool:
        return not self.batches


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.2f} %"


def _signed_pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:+.2f} pp"


def headline(outcome: NightlyOutcome) -> str:
    if outcome.nothing_new:
        return "Nothing new in the inbox tonight: no model was trained and the champion is unchanged."
    verdict = "PROMOTED" if outcome.decision["promote"] else "NOT PROMOTED"
    return f"Challenger {verdict}: {outcome.decision['reason']}."


def render_markdown(outcome: NightlyOutcome) -> str:
    lines = [f"# addgp nightly: {outcome.config_name}", "", f"Run `{outcome.run_id}` · addgp {__version__}", ""]
    lines += [f"> **WARNING:** {w}" for w in outcome.warnings] + ([""] if outcome.warnings else [])
    lines += [f"**{headline(outcome)}**", ""]
    if outcome.nothing_new:
        return "\n".join(lines) + "\n"
    lines += ["## New inbox batches", "", "| batch | files | bona fide | spoof |", "|---|---|---|---|"]
    lines += [f"| {b['batch_id']} | {b.get('n_files', '')} | {b.get('n_bonafide', '')} | {b.get('n_spoof', '')} |" for b in outcome.batches]
    lines += ["", "## EER: champion vs challenger", "", "| dataset | champion | challenger |", "|---|---|---|"]
    for dataset, row in outcome.eer.iterrows():
        lines.append(f"| {dataset} | {_pct(row.get('champion'))} | {_pct(row.get('challenger'))} |")
    lines += ["", "## Forgetting since the last promotion", "", "| dataset | EER then | EER now | change |", "|---|---|---|---|"]
    for _, row in outcome.forgetting.iterrows():
        lines.append(f"| {row['dataset']} | {_pct(row['eer_at_last_promotion'])} | {_pct(row['eer_now'])} | {_signed_pct(row['change'])} |")
    if outcome.champion:
        lines += ["", f"Champion in service: `{outcome.champion['model_path']}` (version {outcome.champion['version']})."]
    return "\n".join(lines) + "\n"


def render_html(outcome: NightlyOutcome) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>addgp nightly: {e(outcome.config_name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>addgp nightly: {e(outcome.config_name)}</h1>",
        f"<p class='meta'>Run <code>{e(outcome.run_id)}</code> · addgp {e(__version__)}</p>",
    ]
    parts += [f"<div class='warning'><strong>WARNING:</strong> {e(w)}</div>" for w in outcome.warnings]
    promoted = bool(outcome.decision and outcome.decision["promote"])
    parts.append(f"<div class='decision {'promoted' if promoted else 'kept'}' id='decision'>{e(headline(outcome))}</div>")
    if not outcome.nothing_new:
        parts.append("<h2>New inbox batches</h2><table id='batches'><tr><th>batch</th><th>files</th><th>bona fide</th><th>spoof</th></tr>")
        parts += [
            f"<tr><td>{e(str(b['batch_id']))}</td><td>{e(str(b.get('n_files', '')))}</td>"
            f"<td>{e(str(b.get('n_bonafide', '')))}</td><td>{e(str(b.get('n_spoof', '')))}</td></tr>"
            for b in outcome.batches
        ]
        parts.append("</table><h2>EER: champion vs challenger</h2><table id='eer'><tr><th>dataset</th><th>champion</th><th>challenger</th></tr>")
        for dataset, row in outcome.eer.iterrows():
            parts.append(f"<tr><td>{e(str(dataset))}</td><td>{e(_pct(row.get('champion')))}</td><td>{e(_pct(row.get('challenger')))}</td></tr>")
        parts.append("</table><h2>Forgetting since the last promotion</h2><table id='forgetting'><tr><th>dataset</th><th>EER then</th><th>EER now</th><th>change</th></tr>")
        for _, row in outcome.forgetting.iterrows():
            parts.append(
                f"<tr><td>{e(str(row['dataset']))}</td><td>{e(_pct(row['eer_at_last_promotion']))}</td>"
                f"<td>{e(_pct(row['eer_now']))}</td><td>{e(_signed_pct(row['change']))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_nightly_report(outcome: NightlyOutcome) -> dict[str, str]:
    document = {
        "kind": "nightly",
        "config": outcome.config_name,
        "run_id": outcome.run_id,
        "created": datetime.now(timezone.utc).isoformat(),
        "addgp_version": __version__,
        "nothing_new": outcome.nothing_new,
        "batches": outcome.batches,
        "decision": outcome.decision,
        "eer": None if outcome.eer is None else json.loads(outcome.eer.to_json(orient="index")),
        "forgetting": None if outcome.forgetting is None else json.loads(outcome.forgetting.to_json(orient="records")),
        "champion": outcome.champion,
        "warnings": outcome.warnings,
    }
    return {
        "report.md": render_markdown(outcome),
        "index.html": render_html(outcome),
        "metrics.json": json.dumps(document, indent=2, default=str),
    }
