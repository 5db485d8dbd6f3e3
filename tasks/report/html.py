"""HTML renderer: a :class:`~tasks.report.model.Document` as one self-contained page.

Jinja2 with autoescaping: every value a template prints is escaped (by
:func:`~tasks.report.format.html_text`, quotes included), so data - dataset, detector,
attack, condition and run names, notes - can never become markup. The stylesheet
(``report.css``, package data beside the template ``page.html.j2``) is inlined and figures are embedded as ``data:``
URIs; a Content-Security-Policy forbids loading anything else, and there is no script.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from tasks.report.format import HEAT_LIGHTNESS, HEAT_SATURATION, heat_hue, html_text, is_number
from tasks.report.model import Document

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _escape(value) -> Markup:
    """The environment's finalize: every printed value escaped once (macro output is already Markup)."""
    if isinstance(value, Markup):
        return value
    return Markup(html_text("" if value is None else value))


def heat_color(value) -> str:
    """Background of an error-rate cell on the heat scale (format.heat_hue): green at 0 % to red at 50 % and above."""
    hue = heat_hue(float(value)) if is_number(value) else heat_hue(0.0)
    return f"hsl({hue},{HEAT_SATURATION:.0%},{HEAT_LIGHTNESS:.0%})"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        # the template sits beside this module: a data folder under the package would look
        # like an undeclared sub-package to setuptools
        loader=PackageLoader("tasks.report", ""),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["base64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["heat"] = heat_color
    env.filters["kind"] = lambda block: type(block).__name__
    return env


@lru_cache(maxsize=1)
def stylesheet() -> str:
    return files("tasks.report").joinpath("report.css").read_text(encoding="utf-8")


def render_page(document: Document) -> str:
    """index.html of ``document``."""
    template = environment().get_template("page.html.j2")
    return template.render(doc=document, css=Markup(stylesheet()), csp=CSP)
