"""Formatting shared by the report renderers: numbers as shown, escaping, safe names, JSON values.

Numbers of a metric are formatted by its spec (:class:`addgp.metrics.MetricSpec`); the
helpers here cover the rest (counts, plain rates, CIs of plain rates). Escaping:
:func:`html_text` for HTML (the Jinja2 environment applies it to every value),
:func:`md_escape` for Markdown (the Markdown renderer applies it to every value).
"""

from __future__ import annotations

import hashlib
import html
import math
import re

import numpy as np
import pandas as pd

MISSING = "–"


def is_number(value) -> bool:
    """A finite int or float (numpy included), not a bool."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


# The error-rate heat of tables and plots, one scale: hue 120 (green) at 0 % to 0 (red) at
# HEAT_RED_AT and above, light enough for dark text on every cell.
HEAT_RED_AT = 0.5
HEAT_SATURATION, HEAT_LIGHTNESS = 0.65, 0.88


def heat_hue(rate: float) -> int:
    """Hue in degrees of an error rate (a fraction) on the heat scale."""
    return int(round(120 * (1 - min(max(rate / HEAT_RED_AT, 0.0), 1.0))))


def truthy(value) -> bool:
    """True for True / numpy True only (not NaN, not None)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def fmt(value, digits: int = 3) -> str:
    """A value as shown in a table: ints with thin grouping, floats with ``digits`` decimals, ``–`` when missing."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}".replace(",", " ")
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def pct(value, digits: int = 2) -> str:
    """A fraction in percent (no sign), ``–`` when missing."""
    return f"{100 * float(value):.{digits}f}" if is_number(value) else MISSING


def signed_pp(value, digits: int = 2) -> str:
    """A change of a fraction in percentage points, signed: ``+1.20``."""
    return f"{100 * float(value):+.{digits}f}" if is_number(value) else MISSING


def ci_pct(low, high, digits: int = 1) -> str:
    """``[low, high]`` of a fraction in percent, ``""`` when either end is missing."""
    return f"[{pct(low, digits)}, {pct(high, digits)}]" if is_number(low) and is_number(high) else ""


def valid_text(text: str) -> str:
    """``text`` with lone surrogates replaced, so it can be encoded as UTF-8."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def html_text(value) -> str:
    """Data text for HTML: every markup character escaped, quotes included."""
    return html.escape(valid_text(str(value)), quote=True)


def md_escape(value) -> str:
    """Data text for Markdown: HTML-escaped, table pipes and emphasis/link/code markers escaped, one line."""
    text = html.escape(valid_text(str(value)), quote=False).replace("\r", " ").replace("\n", " ")
    text = re.sub(r"([\\`*\[\]|#~])", r"\\\1", text)
    # an underscore inside a word never starts emphasis (CommonMark), so demo_studio stays greppable
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def slug(name) -> str:
    """A file-name-safe, collision-free form of ``name``: ``[a-z0-9-]``, a short hash appended when changed."""
    text = str(name)
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x"
    if base != text:
        base = f"{base}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return base


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


def jsonable(value):
    """JSON-native copy: numpy scalars unwrapped, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [jsonable(v) for v in list(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def records(frame: pd.DataFrame | None) -> list[dict]:
    """A DataFrame as JSON-native records (an empty list for None or no rows)."""
    return [jsonable(row) for row in frame.to_dict("records")] if frame is not None and len(frame) else []


# a path starts a token: at the start or after a space, comma, semicolon, '=', quote or bracket
_PATH_IN_TEXT = re.compile(r"(?<![^\s,;=(\[\"'])(?:[A-Za-z][A-Za-z0-9+.-]*://|~/|/)[^\s,;]+")


def without_paths_in_text(text) -> str:
    """Free text (e.g. a data check's examples) with every path or URL in it cut to its last component."""
    return _PATH_IN_TEXT.sub(lambda m: without_paths(m.group(0)), str(text))
