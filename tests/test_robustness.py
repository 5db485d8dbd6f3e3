"""The robustness tables (tasks/evaluate/robustness.py) and the report's robustness and data-checks sections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_crossdataset import make_scores
from test_report import EVIL_DATASET, data_checks_frame, report_input, with_conditions

from addgp.metrics import compute_metrics
from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.evaluate.robustness import paired_delta_distribution, robustness_tables
from tasks.report.build import render_report, summary_markdown
from tasks.report.format import md_escape

FAST = EvaluationSettings(n_boot=200)


@pytest.fixture(scope="module")
def clean_scores() -> pd.DataFrame:
    return make_scores(detectors=("lr", "gp"), datasets=("studio", "phone"), n=150)


@pytest.fixture(scope="module")
def conditioned(clean_scores) -> pd.DataFrame:
    return with_conditions(clean_scores)


def test_without_conditions_nothing_changes(clean_scores):
    plain = evaluate_scores(clean_scores, FAST)
    assert plain.robustness.empty and plain.robustness_cells.empty
    all_clean = evaluate_scores(clean_scores.assign(condition="clean"), FAST)
    pd.testing.assert_frame_equal(plain.cells, all_clean.cells)
    files = render_report(report_input(clean_scores))
    assert "id='robustness'" not in files["index.html"] and "Robustness" not in files["report.md"]
    assert "plots/robustness.png" not in files and json.loads(files["metrics.json"])["robustness"] == []


def test_the_other_tables_describe_clean_audio_and_the_deltas_are_the_metric_differences(clean_scores, conditioned):
    evaluation = evaluate_scores(conditioned, FAST)
    pd.testing.assert_frame_equal(evaluation.cells, evaluate_scores(clean_scores, FAST).cells)
    summary = evaluation.robustness
    assert len(summary) == 2 * 3 and list(summary["condition"][:3]) == ["clean", "mp3_32k", "telephony"]
    cells = evaluation.robustness_cells.set_index(["detector", "dataset", "condition"])
    for detector in ("lr", "gp"):
        for dataset in ("studio", "phone"):

            def eer(condition, detector=detector, dataset=dataset):
                part = conditioned[
                    (conditioned["detector"] == detector)
                    & (conditioned["dataset"] == dataset)
                    & (conditioned["condition"] == condition)
                ]
                return compute_metrics(part["score"], part["label"])["eer"]

            row = cells.loc[(detector, dataset, "telephony")]
            assert row["eer"] == pytest.approx(eer("telephony"))
            assert row["delta_eer"] == pytest.approx(eer("telephony") - eer("clean"))
            assert row["delta_eer_ci_low"] <= row["delta_eer_ci_high"] and row["n_paired"] == 150
        mine = summary[summary["detector"] == detector].set_index("condition")
        assert mine.loc["telephony", "delta_eer"] == pytest.approx(
            cells.loc[(detector, slice(None), "telephony"), "delta_eer"].mean()
        )
        # the strongest degradation is every detector's worst condition, and only one is marked
        assert mine["worst"].sum() == 1 and mine.loc["telephony", "worst"]
        assert mine.loc["telephony", "delta_eer_ci_low"] > 0  # a large degradation: the CI excludes no change


def test_per_corpus_plots_show_clean_audio_only(clean_scores, conditioned):
    with_degraded = render_report(report_input(conditioned))
    clean_only = render_report(report_input(clean_scores))
    for name in (
        "plots/det_phone.png",
        "plots/reliability_phone.png",
        "plots/scores_studio.png",
        "plots/eer_heatmap.png",
    ):
        assert with_degraded[name] == clean_only[name], name


def test_the_paired_bootstrap_is_tighter_than_an_unpaired_one_and_deterministic():
    rng = np.random.default_rng(0)
    n = 400
    label = np.where(rng.random(n) < 0.5, "bonafide", "spoof")
    score = np.where(label == "bonafide", 1.0, -1.0) + rng.normal(0, 1.2, n)
    clean = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "score": score, "label": label})
    degraded = clean.assign(score=score + rng.normal(0, 0.05, n))  # nearly the same scores
    paired = paired_delta_distribution(clean, degraded, ("eer",), n_boot=300, seed=1)["eer"]
    unpaired = paired_delta_distribution(
        clean, degraded.assign(utt_id=[f"v{i}" for i in range(n)]), ("eer",), n_boot=300, seed=1
    )["eer"]
    width = lambda d: np.subtract(*np.quantile(d, [0.975, 0.025]))  # noqa: E731
    assert width(paired) < 0.5 * width(unpaired)
    again = paired_delta_distribution(clean, degraded, ("eer",), n_boot=300, seed=1)["eer"]
    np.testing.assert_array_equal(paired, again)


def test_a_table_of_degraded_scores_only_is_refused(clean_scores):
    with pytest.raises(ValueError, match="no 'clean' rows"):
        evaluate_scores(with_conditions(clean_scores).query("condition != 'clean'"), FAST)


def test_missing_condition_values_count_as_clean(clean_scores, conditioned):
    blank = conditioned.assign(condition=conditioned["condition"].where(conditioned["condition"] != "clean", None))
    cells, summary = robustness_tables(blank, n_boot=50)
    assert set(summary["condition"]) == {"clean", "mp3_32k", "telephony"}
    pd.testing.assert_frame_equal(cells, robustness_tables(conditioned, n_boot=50)[0])


def test_report_robustness_section_in_html_and_markdown_escapes_condition_names(clean_scores):
    evil = "<i>codec</i>|x"
    scores = with_conditions(clean_scores, {evil: 0.3})
    files = render_report(report_input(scores))
    page, text = files["index.html"], files["report.md"]
    assert "id='robustness'" in page and "<table id='robustness-table'>" in page and "plots/robustness.png" in files
    assert "<i>codec" not in page and "&lt;i&gt;codec&lt;/i&gt;|x" in page
    assert "## Robustness to degradations" in text and md_escape(evil) in text and "<i>" not in text
    assert "](plots/robustness.png)" in text
    assert page.index("id='matrix'") < page.index("id='robustness'") < page.index("id='metrics'")
    document = json.loads(files["metrics.json"])
    assert {r["condition"] for r in document["robustness"]} == {"clean", evil}
    summary = summary_markdown(
        report_input(scores)
    )  # the Prefect artifact: the robustness table, not the per-corpus detail
    assert "## Robustness to degradations" in summary and "Robustness per eval corpus" not in summary
    assert "Robustness per eval corpus" in text and "<table id='robustness-cells'>" in page


# ------------------------------------------------------------------ data checks


def test_data_checks_section_lists_errors_first_highlights_and_cuts_paths(clean_scores):
    files = render_report(report_input(clean_scores, data_checks=data_checks_frame()))
    page, text = files["index.html"], files["report.md"]
    section = page[
        page.index("<section id='data-checks'") : page.index("</section>", page.index("<section id='data-checks'"))
    ]
    assert "class='status regress'" in section  # an error makes the section red
    rows = section[section.index("<tbody>") :].split("<tr>")[1:]
    assert [("error" in r, "warning" in r, ">info<" in r) for r in rows] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert (
        "class='error'" in rows[0]
        and "class='warn'" in rows[1]
        and "class='warn'" not in rows[2]
        and "class='error'" not in rows[2]
    )
    assert "a.flac = b.flac" in section and "/data/corpora" not in page and "/data/corpora" not in text
    assert "&lt;b&gt;u1&lt;/b&gt;|u2" in section and "<b>u1" not in page
    assert (
        "## Data checks" in text
        and md_escape("<b>u1</b>|u2") in text
        and md_escape(f"studio train × {EVIL_DATASET} eval") in text
    )
    assert page.index("id='regressions'") < page.index("id='data-checks'") < page.index("id='headline'")
    document = json.loads(files["metrics.json"])
    assert [c["severity"] for c in document["data_checks"]] == ["error", "warning", "info"]


def test_without_data_checks_there_is_no_section_and_a_bad_table_is_refused(clean_scores):
    files = render_report(report_input(clean_scores))
    assert "data-checks" not in files["index.html"] and "Data checks" not in files["report.md"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['severity'\]"):
        render_report(report_input(clean_scores, data_checks=data_checks_frame().drop(columns="severity")))
    with pytest.raises(ValueError, match="unknown severity"):
        render_report(report_input(clean_scores, data_checks=data_checks_frame().assign(severity="fatal")))
