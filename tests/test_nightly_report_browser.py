"""The nightly report's promotion gate and drift sections in headless Chromium (issue 20).

Skipped only where chromium is absent (``.ci/run`` installs it), like tests/test_report_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nightly_report_fixtures import EVIL, undecided_night
from test_report_browser import CHROMIUM, WIDTH, DevTools

from storage.reports import publish_report
from tasks.report.nightly import render_nightly_report

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed here (.ci/run installs it: apt-get install chromium)"
)

PAGE = """
(() => {
  const rows = id => Array.from(document.querySelectorAll('#' + id + ' tbody tr'))
    .map(r => Array.from(r.cells).map(c => c.innerText.trim()));
  const section = id => document.getElementById(id);
  return {
    decision: section('decision').innerText,
    gate_visible: !!section('gate') && section('gate').getBoundingClientRect().height > 0,
    gate: rows('gate-table'),
    gate_text: section('gate') ? section('gate').innerText : '',
    drift_visible: !!section('drift') && section('drift').getBoundingClientRect().height > 0,
    drift_text: section('drift') ? section('drift').innerText : '',
    trend: rows('drift-trend'),
    scripts: document.scripts.length,
    text: document.body.innerText,
    width: document.documentElement.scrollWidth,
  };
})()
"""


def test_gate_and_drift_sections_in_headless_chromium(tmp_path):
    folder = Path(publish_report(render_nightly_report(undecided_night()), str(tmp_path / "nightly"), "night-3"))
    browser = DevTools(tmp_path / "profile")
    try:
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        browser.call("Page.navigate", {"url": (folder / "index.html").resolve().as_uri()}, session=True)
        browser.wait_for("Page.loadEventFired")
        page = browser.call("Runtime.evaluate", {"expression": PAGE, "returnByValue": True}, session=True)["result"][
            "value"
        ]
    finally:
        browser.close()
    assert "NOT ENOUGH EVIDENCE YET, champion kept" in page["decision"]
    assert page["gate_visible"] and page["drift_visible"]
    gate = {row[0]: row[1] for row in page["gate"]}
    assert gate["outcome"] == "not enough evidence yet"
    assert gate["held-out spoof rows"] == "3 (needs 50)" and gate["bona fide rows of the new fakes"] == "12 (needs 50)"
    assert any("[-4.00, 33.00]" in value for value in gate.values())
    assert "Rule: at least 50 held-out spoof and 50 bona fide rows" in page["gate_text"]
    assert "DRIFT: tonight's inbox lies beyond the threshold" in page["drift_text"]
    # the trend: one row per recorded night, tonight last and marked
    assert [row[0] for row in page["trend"]] == ["night-1", "night-2", "night-3"]
    assert [row[-1] for row in page["trend"]] == ["no", "no", "yes"]
    # a batch named like markup is text, not a script
    assert EVIL in page["text"] and page["scripts"] == 0
    assert page["width"] <= WIDTH
