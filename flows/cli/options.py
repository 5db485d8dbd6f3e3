"""KEY=VALUE options of the command line (``addgp ingest --option``, ``addgp train --param``): one parser."""

from __future__ import annotations

import contextlib
import json

from flows.cli.common import fail


def key_values(items: list[str], option: str, *, json_values: bool = False, list_hint: str = "a,b") -> dict:
    """``KEY=VALUE`` items as a dict; exit 2 naming ``option`` for an item without ``=`` or a key given twice
    (a second value would silently replace the first).

    Values stay text for the consumer to convert against its signature (ingest adapters'
    ``coerce_option``), or with ``json_values`` are read as JSON where they are JSON (numbers,
    lists, true/false/null), else kept as text.
    """
    values: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            fail(f"{option} {item!r} is not KEY=VALUE")
        if key in values:
            fail(f"{option} {key} given twice ({values[key]!r}, {text!r}); give it once, lists as {list_hint}")
        value: object = text
        if json_values:
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(text)
        values[key] = value
    return values
