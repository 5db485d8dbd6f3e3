"""The run report's "Data checks" section, made from tasks/ingest/checks.py, in headless Chromium.

The section is rendered by the report stage (tasks/report/sections.py, `data_checks_section`);
until that renderer is in the tree this test is skipped with that reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from test_crossdataset import make_scores
from test_data_checks import manifest
from test_report import report_input
from test_report_browser import CHROMIUM, WIDTH, DevTools

from tasks.ingest.checks import content_checks
from tasks.report.task import publish_run_report


def _renders_data_checks() -> bool:
    if importlib.util.find_spec("tasks.report.sections") is None:
        return False
    return hasattr(importlib.import_module("tasks.report.sections"), "data_checks_section")


pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed here (.ci/run installs it: apt-get install chromium)",
    ),
    pytest.mark.skipif(
        not _renders_data_checks(),
        reason="the report's Data checks renderer (tasks/report/sections.py) is not in this tree yet",
    ),
]

SECTION = """
(() => {
  const section = document.getElementById('data-checks');
  const rows = section ? Array.from(section.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.innerText.trim())) : [];
  return {present: !!section, heading: section ? section.querySelector('h2').textContent : null,
          visible: !!section && section.getBoundingClientRect().height > 0, rows: rows};
})()
"""


def test_data_checks_section_in_headless_chromium(tmp_path):
    frames = [
        manifest(
            tmp_path,
            "studio",
            [("s1", "train", "bonafide", 1), ("s1_copy", "train", "bonafide", 1), ("s2", "train", "spoof", 2)],
        ),
        manifest(tmp_path, "far", [("f1", "eval", "spoof", 2), ("f2", "eval", "bonafide", 3)]),
    ]
    checks = content_checks(
        pd.concat(frames, ignore_index=True), train=[("studio", "train")], evaluate=[("far", "eval")]
    )
    scores = make_scores(detectors=("lr",), datasets=("studio", "far"), n=60)
    folder = Path(
        publish_run_report(
            report_input(scores, "20250101T000000Z-demo", data_checks=checks), scores, str(tmp_path / "reports")
        ).folder
    )
    browser = DevTools(tmp_path / "profile")
    try:
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        browser.call("Page.navigate", {"url": (folder / "index.html").resolve().as_uri()}, session=True)
        browser.wait_for("Page.loadEventFired")
        page = browser.call("Runtime.evaluate", {"expression": SECTION, "returnByValue": True}, session=True)["result"][
            "value"
        ]
    finally:
        browser.close()
    assert page["present"] and page["visible"] and page["heading"] == "Data checks"
    cells = {(row[0], row[1]): row for row in page["rows"]}
    overlap = cells[("train_eval_overlap", "studio/train → far/eval")]
    assert overlap[2] == "1" and overlap[3] == "warning" and "studio/train:s2 = far/eval:f1" in overlap[4]
    assert (
        cells[("duplicate_audio", "studio")][2] == "1"
        and "train:s1 = train:s1_copy" in cells[("duplicate_audio", "studio")][4]
    )
    assert len(page["rows"]) == len(checks)
