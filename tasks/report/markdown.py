"""Markdown renderer: a :class:`~tasks.report.model.Document` as report.md (or its short summary).

Every piece of text goes through :func:`~tasks.report.format.md_escape` (HTML characters,
table pipes, emphasis, link and code markers), fixed wording included, so no value from
data can open a link, an image, a table cell or raw HTML. Figures are linked by their
relative file names; the run notes are left to metrics.json.
"""

from __future__ import annotations

from tasks.report.format import md_escape
from tasks.report.model import Cards, Details, Document, Figure, FigureGrid, Heading, Inline, Paragraph, Span, Table


def _inline(parts: list[Inline]) -> str:
    out = []
    for part in parts:
        span = part if isinstance(part, Span) else Span(part)
        text = md_escape(span.text)
        out.append(f"**{text}**" if span.style in ("b", "bad") and text.strip() else text)
    return "".join(out)


def _cell(cell) -> str:
    text = md_escape(cell.text)
    if cell.strong and text.strip():
        text = f"**{text}**"
    if cell.ci:
        text += f" {md_escape(cell.ci)}"
    return text + md_escape(cell.mark)


def table_lines(table: Table) -> list[str]:
    headers = [md_escape(c.label) for c in table.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return lines


def _figure(figure: Figure) -> str:
    return f"![{md_escape(figure.caption)}]({figure.name})"  # the name is a slug inside plots/


def _block(block, figures: bool) -> list[str]:
    if isinstance(block, Paragraph):
        return [_inline(block.parts), ""]
    if isinstance(block, Heading):
        return [f"### {md_escape(block.text)}", ""]
    if isinstance(block, Table):
        return [*table_lines(block), ""]
    if isinstance(block, Figure):
        return [_figure(block), ""] if figures else []
    if isinstance(block, FigureGrid):
        return [*(_figure(f) for f in block.figures), ""] if figures and block.figures else []
    if isinstance(block, Cards):
        lines = [
            f"- **{md_escape(c.title)}** ({md_escape(c.subtitle)}): **{md_escape(c.value)}** — "
            + " · ".join(_inline(line) for line in c.lines)
            for c in block.cards
        ]
        return [*lines, ""]
    if isinstance(block, Details):
        return []  # run notes: metrics.json holds them, a fenced block could be broken out of by data
    raise TypeError(f"no Markdown layout for {type(block).__name__}")


def render_markdown(document: Document, summary_only: bool = False, figures: bool = True) -> str:
    """report.md; ``summary_only`` keeps the sections marked ``summary`` (the Prefect artifact), without figures."""
    lines = [f"# {md_escape(document.title)}", "", _inline(document.meta), ""]
    lines += [f"> **WARNING:** {md_escape(w)}" for w in document.warnings] + ([""] if document.warnings else [])
    for section in document.sections:
        if summary_only and not section.summary:
            continue
        lines += [f"## {md_escape(section.title)}", ""]
        for block in section.blocks:
            lines += _block(block, figures and not summary_only)
    return "\n".join(lines).rstrip("\n") + "\n"
