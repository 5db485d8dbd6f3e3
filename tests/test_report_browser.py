"""Open a published report in headless Chromium: every image loads, the tables are there, data stays text.

Drives Debian's ``chromium`` over the DevTools protocol (``websockets``, a Prefect
dependency) with networking features off; the page is a local file and needs nothing
else. Saves a full-page screenshot as ``report.png`` in the test's tmp dir (run pytest with
``--basetemp DIR`` to keep it somewhere known). Skipped only where chromium is absent;
``.ci/run`` installs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_crossdataset import make_scores
from test_report import EVIL_DATASET, data_checks_frame, degrade, report_input, with_conditions

from tasks.report.task import publish_run_report

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and os.path.exists(p)
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed here (.ci/run installs it: apt-get install chromium)"
)

WIDTH = 1280

PAGE_CHECK = """
(() => {
  const images = Array.from(document.images);
  return {
    images: images.length,
    all_loaded: images.every(i => i.complete && i.naturalWidth > 0),
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.dataset.file),
    external: images.filter(i => !i.src.startsWith('data:image/png;base64,')).length,
    tables: Array.from(document.querySelectorAll('table')).map(t => t.id),
    matrix_rows: document.querySelectorAll('#eer-matrix tbody tr').length,
    scripts: document.scripts.length,
    first_section: document.querySelector('main section').id,
    first_heading: document.querySelector('main section h2').textContent,
    text: document.body.innerText,
    robustness_rows: document.querySelectorAll('#robustness-table tbody tr').length,
    worst: Array.from(document.querySelectorAll('#robustness-table td.worst')).map(td => td.textContent),
    robustness_heatmap: !!document.querySelector("#robustness img[data-file='plots/robustness.png']"),
    checks_rows: document.querySelectorAll('#data-checks-table tbody tr').length,
    checks_first: document.querySelector('#data-checks-table tbody tr td:nth-child(4)').textContent,
    warn_backgrounds: Array.from(document.querySelectorAll('#data-checks-table td.warn, #data-checks-table td.error'))
      .map(td => getComputedStyle(td).backgroundColor),
    plain_background: getComputedStyle(document.querySelector('#data-checks-table tbody tr:last-child td:nth-child(3)')).backgroundColor,
    width: document.documentElement.scrollWidth,
  };
})()
"""


class DevTools:
    """A headless Chromium and one page, over the DevTools protocol."""

    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start (exit code {self.process.returncode})")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.socket = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10)
        self.next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 30) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.events:
                if seen.get("method") == event:
                    return seen
            self.events.append(json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.01))))

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group of the chromium this test started
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def published(tmp_path) -> Path:
    """The second of two reports (so the regression section and the trend plot have content), with conditions and data checks."""
    scores = with_conditions(make_scores(detectors=("lr", "gp"), datasets=("studio", EVIL_DATASET, "far"), n=120))
    root = str(tmp_path / "reports")
    publish_run_report(report_input(scores, "20250101T000000Z-demo"), scores, root)
    worse = degrade(scores, "lr", "far")
    report = report_input(worse, "20250102T000000Z-demo", data_checks=data_checks_frame())
    return Path(publish_run_report(report, worse, root).folder)


def test_report_opens_in_headless_chromium(published, tmp_path):
    url = (published / "index.html").resolve().as_uri()
    browser = DevTools(tmp_path / "profile")
    try:
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        browser.call("Page.navigate", {"url": url}, session=True)
        browser.wait_for("Page.loadEventFired")
        page = browser.call("Runtime.evaluate", {"expression": PAGE_CHECK, "returnByValue": True}, session=True)[
            "result"
        ]["value"]
        height = browser.call("Page.getLayoutMetrics", session=True)["cssContentSize"]["height"]
        shot = browser.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
            },
            session=True,
        )
    finally:
        browser.close()
    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))

    plots = sorted(p.relative_to(published).as_posix() for p in (published / "plots").glob("*.png"))
    assert (
        page["images"] == len(plots) == 3 * 3 + 4
    )  # DET, reliability, histogram per corpus; heatmap, robustness, selective, trend
    assert page["all_loaded"], f"images that did not load: {page['broken']}"
    assert page["external"] == 0
    for table in (
        "regression-table",
        "data-checks-table",
        "eer-matrix",
        "robustness-table",
        "robustness-cells",
        "metrics",
        "aggregates",
        "selective-table",
        "attacks",
        "conditions",
        "models",
    ):
        assert table in page["tables"], table
    assert page["matrix_rows"] == 2
    # the regression section is the first thing on the page and names the previous run
    assert page["first_section"] == "regressions" and page["first_heading"] == "Regressions since 20250101T000000Z-demo"
    # the dataset named <script>alert(1)</script> is text, not markup: no script ran or exists
    assert EVIL_DATASET in page["text"]
    assert page["scripts"] == 0
    assert not [
        e for e in browser.events if e.get("method") in ("Page.javascriptDialogOpening", "Runtime.exceptionThrown")
    ]
    assert page["width"] <= WIDTH  # nothing forces horizontal scrolling at this width
    # robustness: 2 detectors x 3 conditions; each detector's worst condition is marked and drawn
    assert page["robustness_rows"] == 6 and page["robustness_heatmap"]
    assert len(page["worst"]) == 2 and all(w == "telephony" for w in page["worst"])
    assert "Worst condition per detector" in page["text"]
    # data checks: errors first, warnings and errors highlighted, the info row not
    assert page["checks_rows"] == 3 and page["checks_first"] == "error"
    assert len(page["warn_backgrounds"]) == 4 and page["plain_background"] not in page["warn_backgrounds"]
    assert "Data checks" in page["text"] and "a.flac = b.flac" in page["text"] and "/data/corpora" not in page["text"]
    assert screenshot.read_bytes().startswith(b"\x89PNG") and height > 2000
