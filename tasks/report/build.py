"""The run report's files: index.html, report.md, metrics.json, plots/*.png.

Pure: :func:`render_report` returns ``{file name: str | bytes}`` and
``storage.reports.publish_report`` writes them. The work is split by output:
:mod:`tasks.report.content` (what the report is made of, computed once),
:mod:`tasks.report.sections` (the document), :mod:`tasks.report.html` /
:mod:`tasks.report.markdown` (its two layouts) and :mod:`tasks.report.format` (formatting and
escaping both share). Data never reaches HTML or Markdown unescaped, ``index.html`` is
self-contained with no script, and file names made from data are slugs: docs/reports.md,
"How the report is built" and "Safety of the HTML".
"""

from __future__ import annotations

import json

from tasks.report import html, markdown
from tasks.report.content import TREND_RUNS, ReportContent, ReportInput, build_content
from tasks.report.sections import run_document

__all__ = ["TREND_RUNS", "ReportContent", "ReportInput", "build_content", "render_report", "summary_markdown"]


def _content(report: ReportInput | ReportContent) -> ReportContent:
    return report if isinstance(report, ReportContent) else build_content(report)


def summary_markdown(report: ReportInput | ReportContent) -> str:
    """The short Markdown for the Prefect UI: regressions, data checks, the headline, the cross-dataset matrix."""
    return markdown.render_markdown(run_document(_content(report)), summary_only=True)


def render_report(report: ReportInput | ReportContent) -> dict[str, str | bytes]:
    """The report's files by name (index.html, report.md, metrics.json, plots/*.png); storage writes them."""
    content = _content(report)
    document = run_document(content)
    return {
        "index.html": html.render_page(document),
        "report.md": markdown.render_markdown(document),
        "metrics.json": json.dumps(content.document, indent=1, allow_nan=False, ensure_ascii=False),
        **content.images,
    }
