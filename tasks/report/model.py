"""The document model both renderers read: a report is sections of paragraphs, tables, figures and cards.

A section's tables are built once, from the evaluation, as rows of :class:`Cell`; the
HTML renderer (:mod:`tasks.report.html`) and the Markdown renderer
(:mod:`tasks.report.markdown`) only lay them out. Everything held here is plain text -
data or fixed wording alike - and every renderer escapes all of it; emphasis is a
:class:`Span` style, never markup inside a string.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A run of text with a style: ``b`` (bold), ``bad``, ``good``, ``code`` or ``""``."""

    text: str
    style: str = ""


Inline = str | Span  # a plain string is a Span without style


@dataclass
class Paragraph:
    parts: list[Inline]
    note: bool = True  # small muted text (explanations) rather than body text


@dataclass
class Heading:
    text: str
    anchor: str = ""  # HTML id


@dataclass
class Cell:
    """One table cell: its text, an optional CI line, and how it is highlighted."""

    text: str
    ci: str = ""
    text_column: bool = False  # left-aligned text (names) rather than a number
    heat: float | None = None  # an error rate as a fraction: background green (0) to red (>= 0.5)
    css: str = ""  # extra HTML classes: avg, indomain, bad, good, warn
    title: str = ""  # HTML tooltip
    strong: bool = False
    mark: str = ""  # appended in Markdown, where there is no highlight (e.g. " ◦" for in-domain)


@dataclass
class Column:
    label: str
    text_column: bool = False
    css: str = ""
    title: str = ""  # HTML tooltip (e.g. a metric's description)


@dataclass
class Table:
    id: str
    columns: list[Column]
    rows: list[list[Cell]]


@dataclass
class Figure:
    name: str  # file name inside the report folder (plots/x.png)
    caption: str
    data: bytes
    css: str = ""  # wide, heat


@dataclass
class Card:
    title: str
    subtitle: str
    value: str
    lines: list[list[Inline]]


@dataclass
class Cards:
    cards: list[Card]


@dataclass
class Details:
    """A folded block of preformatted text."""

    summary: str
    text: str


@dataclass
class FigureGrid:
    figures: list[Figure]


Block = Paragraph | Heading | Table | Figure | FigureGrid | Cards | Details


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    nav: str = ""  # label in the page's navigation; empty = not listed
    css: str = ""  # HTML classes of the section (status ok / regress / first, decision ...)
    summary: bool = False  # part of the short Markdown summary (Prefect artifact)


@dataclass
class Document:
    title: str
    subtitle: str  # the HTML <title> suffix (run id)
    meta: list[Inline]
    warnings: list[str]
    sections: list[Section]
