"""A metric is one entry; the renderers lay out one document; the nightly report escapes data in HTML and Markdown."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from nightly_report_fixtures import decided, inbox_batch
from test_crossdataset import make_scores
from test_report import EVIL_DATASET, report_input
from test_report_cli import app, runner, workspace  # noqa: F401 (module fixtures reused)

from addgp.metrics import METRIC_SPECS, MetricSpec, compute_metrics
from addgp.nightly import ChallengerSummary, ChampionRecord
from tasks.report.build import render_report
from tasks.report.format import md_escape
from tasks.report.nightly import NightlyOutcome, render_nightly_report


def _accuracy_at_zero(c) -> np.ndarray:
    accepted = c.u >= 0  # decided bona fide at LLR 0
    return (c.nb[:, accepted].sum(axis=1) + c.ns[:, ~accepted].sum(axis=1)) / (c.Nb + c.Ns)


TOY = MetricSpec(
    "acc_llr0",
    "Accuracy@0",
    _accuracy_at_zero,
    unit="%",
    percent=True,
    digits=1,
    headline=True,
    higher_is_better=True,
    description="share decided right at LLR 0",
)


@pytest.fixture
def toy_metric(monkeypatch):
    monkeypatch.setitem(METRIC_SPECS, TOY.key, TOY)
    return TOY


def test_a_toy_metric_spec_appears_in_every_table(toy_metric):
    scores = make_scores(detectors=("lr",), datasets=("studio", "phone"), n=100)
    files = render_report(report_input(scores))
    document = json.loads(files["metrics.json"])
    cell = next(m for m in document["metrics"] if m["dataset"] == "phone")
    phone = scores[scores["dataset"] == "phone"]
    expected = float(np.mean((phone["score"] >= 0) == (phone["label"] == "bonafide")))
    assert cell["acc_llr0"] == pytest.approx(expected)
    assert compute_metrics(phone["score"], phone["label"])["acc_llr0"] == pytest.approx(expected)
    assert {"average_acc_llr0"} <= set(document["summary"][0])  # a headline metric is averaged over corpora
    shown = toy_metric.format(expected)
    page, text = files["index.html"], files["report.md"]
    for output in (page, text):
        assert "Accuracy@0 (%)" in output  # its header in "All metrics" and the pooled/averaged table
        assert shown in output
    metrics_table = page[
        page.index("<table id='metrics'>") : page.index("</table>", page.index("<table id='metrics'>"))
    ]
    assert "Accuracy@0 (%)" in metrics_table and f">{shown}<" in metrics_table
    assert "title='share decided right at LLR 0'>Accuracy@0 (%)</th>" in metrics_table  # its description as the tooltip
    assert re.search(r"averages: .*Accuracy@0 \d+\.\d %", page)  # the headline card


def test_a_toy_metric_spec_appears_in_the_cli_table(toy_metric, app, workspace, tmp_path):  # noqa: F811
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(workspace["manifest"]),
            "--store",
            str(workspace["store"]),
            "--model",
            workspace["model"],
            "-o",
            str(tmp_path / "s.parquet"),
            "--n-boot",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert all(0 <= c["acc_llr0"] <= 1 for c in cells) and len(cells) == 2


def test_without_the_toy_metric_nothing_mentions_it():
    scores = make_scores(detectors=("lr",), datasets=("studio",), n=60)
    files = render_report(report_input(scores))
    assert "Accuracy@0" not in files["index.html"] and "acc_llr0" not in files["metrics.json"]


def test_the_html_inlines_the_stylesheet_and_escapes_through_the_templates():
    scores = make_scores(detectors=("lr",), datasets=(EVIL_DATASET,), n=60)
    page = render_report(report_input(scores))["index.html"]
    assert "<style>" in page and "--ink:#1b1f23" in page and "td.worst{" in page  # report.css, inlined whole
    assert "<link" not in page and EVIL_DATASET not in page


# ------------------------------------------------------------------ nightly


EVIL_BATCH = "batch|`x`<img src=x onerror=alert(1)>"


def nightly_outcome() -> NightlyOutcome:
    datasets = ["demo_studio", EVIL_DATASET]
    eer = pd.DataFrame({"champion": [0.1, 0.2], "challenger": [0.08, 0.25]}, index=datasets)
    forgetting = pd.DataFrame(
        {"dataset": datasets, "eer_at_last_promotion": [0.1, 0.2], "eer_now": [0.08, 0.25], "change": [-0.02, 0.05]}
    )
    return NightlyOutcome(
        config_name="nightly <demo>",
        run_id="night-1",
        batches=[inbox_batch(EVIL_BATCH, n_spoof=12)],
        decision=decided(True, f"better on {EVIL_DATASET}"),
        eer=eer,
        forgetting=forgetting,
        champion=ChampionRecord("/secret/models/lr/v2", version=2),
    )


def test_nightly_report_escapes_data_in_html_and_markdown():
    files = render_nightly_report(nightly_outcome())
    page, text = files["index.html"], files["report.md"]
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "nightly &lt;demo&gt;" in page
    assert "<script>" not in text and "<img" not in text
    assert (
        md_escape(EVIL_BATCH) in text and "batch\\|\\`x\\`" in text
    )  # no pipe splits the table row, no code span opens
    assert md_escape(EVIL_DATASET) in text
    assert "/secret/" not in page and "/secret/" not in text and "lr/v2" in text
    assert "PROMOTED" in text and "id='decision'" in page


def test_nightly_report_says_which_strategy_made_the_challenger_and_on_how_many_rows():
    from dataclasses import replace

    made = ChallengerSummary("adapt", 21, 9, "/secret/models/lr/v3", step=None, cost=None)
    files = render_nightly_report(replace(nightly_outcome(), challenger=made))
    for text in (files["index.html"], files["report.md"]):
        assert "Strategy adapt: conditioned the champion on the new rows" in text
        assert "21 new rows" in text and "9 held out" in text and "lr/v3" in text and "/secret/" not in text
    quiet = render_nightly_report(nightly_outcome())
    assert "Strategy" not in quiet["report.md"]
