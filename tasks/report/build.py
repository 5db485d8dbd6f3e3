"""The run report's files: index.html, report.md, metrics.json, plots/*.png.

Pure: :func:`render_report` returns ``{file name: str | bytes}`` and
``storage.reports.publish_report`` writes them. The work is split by output:

- :mod:`tasks.report.content` - what the report is made of, computed once (evaluation,
  metrics.json, comparison with the previous report, trends, plots);
- :mod:`tasks.report.sections` - the document: sections and tables built once;
- :mod:`tasks.report.html` / :mod:`tasks.report.markdown` - the two layouts of it;
- :mod:`tasks.report.format` - formatting and escaping both share.

Safety rules, enforced there and tested:

- every value that comes from data (dataset, detector, attack, file and run names, notes)
  is escaped before it reaches HTML (Jinja2 autoescaping) or Markdown (``md_escape``);
- ``index.html`` is self-contained: plots are embedded as ``data:image/png;base64`` URIs,
  the stylesheet is inlined, there is no script; a Content-Security-Policy forbids loading
  anything else; no path outside the report folder appears (model and manifest paths are
  reduced to their last component);
- file names made from data are slugs (``slug``): ASCII letters, digits and dashes, plus a
  hash when the name had to change, so they cannot collide, climb out of ``plots/`` or be
  absolute.
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
