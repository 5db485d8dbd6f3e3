"""The report stage: files, HTML escaping and self-containment, the regression diff, trends, storage, artifacts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_crossdataset import make_scores
from test_report_notes import ingested_corpus

from addgp.runs import artifact_key
from storage.reports import list_reports, previous_report, publish_report, report_history
from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.report.build import ReportInput, render_report
from tasks.report.compare import AVERAGE_LABEL, compare_with_previous, trend_table
from tasks.report.format import md_escape, slug, without_paths
from tasks.report.notes import RunNotes
from tasks.report.task import publish_run_report
from tasks.train.trained import TrainedModel

SETTINGS = EvaluationSettings(n_boot=100)
EVIL_DATASET = "<script>alert(1)</script>"
EVIL_DETECTOR = 'lr"><img src=x onerror=alert(2)>'
MODEL_PATH = "/secret/place/models/lr/v1"
MANIFEST_PATH = "/data/corpora/demo_studio.parquet"
PNG = b"\x89PNG\r\n\x1a\n"


def report_input(scores: pd.DataFrame, run_id: str = "20250101T000000Z-demo", **kwargs) -> ReportInput:
    detectors = list(pd.unique(scores["detector"]))
    models = [TrainedModel(d, "logreg", MODEL_PATH, 1, {"eer": 0.05}, "", None, reused=False) for d in detectors]
    return ReportInput(
        title="addgp report: test",
        run_id=run_id,
        models=models,
        encoder="/models/wav2vec2-xls-r-300m",
        warnings=["RANDOM-WEIGHT ENCODER: test run"],
        notes=RunNotes(ingest={"demo_studio": ingested_corpus("demo_studio", MANIFEST_PATH, rows=10)}),
        evaluation=evaluate_scores(scores, SETTINGS),
        scores=scores,
        **kwargs,
    )


@pytest.fixture(scope="module")
def small_scores() -> pd.DataFrame:
    return make_scores(detectors=("lr", "gp"), datasets=("studio", "phone"), n=120)


@pytest.fixture(scope="module")
def files(small_scores) -> dict:
    return render_report(report_input(small_scores))


# ------------------------------------------------------------------ files


def test_report_has_every_file_and_plot(files):
    assert {"index.html", "report.md", "metrics.json"} <= set(files)
    plots = sorted(name for name in files if name.startswith("plots/"))
    expected = {"plots/eer_heatmap.png", "plots/selective.png"}
    for dataset in ("studio", "phone"):
        expected |= {f"plots/det_{dataset}.png", f"plots/reliability_{dataset}.png", f"plots/scores_{dataset}.png"}
    assert set(plots) == expected  # no trend plot in a first report
    for name in plots:
        assert files[name].startswith(PNG), name
    markdown = files["report.md"]
    for name in plots:
        assert f"]({name})" in markdown  # report.md links the plots by relative name


def test_metrics_json_is_strict_json_with_cis_for_the_next_run(files):
    def no_nan(token):
        raise AssertionError(f"non-JSON number {token}")

    document = json.loads(files["metrics.json"], parse_constant=no_nan)
    assert document["format"] == "addgp-report/3"
    cell = next(m for m in document["metrics"] if m["detector"] == "lr" and m["dataset"] == "phone")
    assert 0 < cell["eer_ci_low"] <= cell["eer"] <= cell["eer_ci_high"] < 1
    assert {"average_eer", "average_eer_ci_low", "pooled_eer", "corpora"} <= set(document["summary"][0])
    assert document["comparison"]["status"] == "first report"
    assert document["settings"]["n_boot"] == 100
    assert document["eer_matrix"]["lr"]["phone"] == cell["eer"]
    assert {"attacks", "conditions", "selective", "selective_curves", "aggregates"} <= set(document)


def test_html_is_self_contained(files):
    page = files["index.html"]
    references = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", page, flags=re.I)
    assert references
    for ref in references:
        assert ref.startswith("data:image/png;base64,") or ref.startswith("#"), ref[:80]
    assert "<script" not in page.lower()
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page
    assert page.count("<img ") == sum(1 for name in files if name.startswith("plots/"))


def test_no_path_outside_the_report_folder_appears(files):
    for name in ("index.html", "report.md", "metrics.json"):
        text = files[name]
        for secret in (MODEL_PATH, MANIFEST_PATH, "/secret/", "/data/corpora", "/models/wav2vec2"):
            assert secret not in text, (name, secret)
    document = json.loads(files["metrics.json"])
    assert document["encoder"] == "wav2vec2-xls-r-300m"
    assert document["notes"]["ingest"]["demo_studio"]["manifest"] == "demo_studio.parquet"
    assert document["models"][0]["ref"] == "lr/v1" and "path" not in document["models"][0]


def test_regressions_section_comes_first(files):
    page = files["index.html"]
    assert page.index("id='regressions'") < page.index("id='headline'") < page.index("id='eer-matrix'")
    assert "First report" in page
    markdown = files["report.md"]
    assert markdown.index("## Regressions") < markdown.index("## Headline")


# ------------------------------------------------------------------ escaping


def evil_scores() -> pd.DataFrame:
    scores = make_scores(detectors=("lr",), datasets=(EVIL_DATASET, "plain"), n=80)
    scores["detector"] = EVIL_DETECTOR
    scores["attack"] = scores["attack"].map(lambda a: None if a is None else f"<b>{a}</b>|`x`")
    scores["train_setting"] = f"{EVIL_DATASET} (train)"
    scores["train_datasets"] = EVIL_DATASET
    scores["codec"] = "<i>mp3</i>"
    return scores


def test_data_values_are_escaped_in_html_and_markdown():
    scores = evil_scores()
    files = render_report(report_input(scores, run_id="run<1>"))
    page = files["index.html"]
    assert "<script" not in page.lower()
    assert "<img src=x" not in page and "<b>A0" not in page and "<i>mp3" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "lr&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;b&gt;A01&lt;/b&gt;" in page
    assert "run&lt;1&gt;" in page
    markdown = files["report.md"]
    assert "<script>" not in markdown and "<img" not in markdown and "<b>" not in markdown
    assert md_escape(EVIL_DATASET) in markdown
    # file names made from data are slugs inside plots/
    for name in files:
        if name.startswith("plots/"):
            assert re.fullmatch(r"plots/[a-z]+_[a-z0-9-]+\.png|plots/[a-z_]+\.png", name), name
    assert f"plots/det_{slug(EVIL_DATASET)}.png" in files


def test_slugs_are_safe_and_do_not_collide():
    names = ["../../etc/passwd", "/abs/path", "a/b", "a_b", "A B", "a-b", "", "..", "データ", EVIL_DATASET]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    for s in slugs:
        assert re.fullmatch(r"[a-z0-9-]+", s), s
    assert slug("studio") == "studio"


def test_without_paths_keeps_names_only():
    value = {
        "a": "/x/y/z.parquet",
        "b": ["s3://bucket/k/m.parquet", "plain", "C:\\data\\f.wav"],
        "c": 3,
        "d": "~/home/f",
    }
    assert without_paths(value) == {"a": "z.parquet", "b": ["m.parquet", "plain", "f.wav"], "c": 3, "d": "f"}


# ------------------------------------------------------------------ regression diff


def document(cells: dict, run_id: str, cis: dict | None = None, averages: dict | None = None) -> dict:
    metrics = []
    for (detector, dataset), eer in cells.items():
        record = {"detector": detector, "dataset": dataset, "eer": eer}
        if cis and (detector, dataset) in cis:
            record["eer_ci_low"], record["eer_ci_high"] = cis[(detector, dataset)]
        metrics.append(record)
    summary = [
        {"detector": d, "average_eer": a, "average_eer_ci_low": lo, "average_eer_ci_high": hi, "corpora": corpora}
        for d, (a, lo, hi, corpora) in (averages or {}).items()
    ]
    return {"run_id": run_id, "metrics": metrics, "summary": summary}


def test_first_report_and_no_change():
    current = document({("lr", "a"): 0.10}, "r2", {("lr", "a"): (0.08, 0.12)})
    assert compare_with_previous(current, None).status == "first report"
    same = compare_with_previous(current, document({("lr", "a"): 0.10}, "r1", {("lr", "a"): (0.08, 0.12)}))
    assert same.status == "none" and same.n_compared == 1 and same.previous_run_id == "r1"


def test_regression_beyond_the_previous_ci_half_width_is_flagged():
    previous = document(
        {("lr", "a"): 0.10, ("lr", "b"): 0.20, ("gp", "a"): 0.30},
        "r1",
        {("lr", "a"): (0.08, 0.12), ("lr", "b"): (0.15, 0.25), ("gp", "a"): (0.25, 0.35)},
    )
    current = document(
        {("lr", "a"): 0.125, ("lr", "b"): 0.24, ("gp", "a"): 0.20},
        "r2",
        {("lr", "a"): (0.124, 0.126), ("lr", "b"): (0.2, 0.28), ("gp", "a"): (0.15, 0.25)},
    )
    comparison = compare_with_previous(current, previous)
    assert comparison.status == "regressions"
    assert [(c.detector, c.dataset) for c in comparison.regressions] == [
        ("lr", "a")
    ]  # +2.5 pp > 2 pp; lr/b +4 pp < 5 pp
    change = comparison.regressions[0]
    assert change.tolerance == pytest.approx(0.02) and change.tolerance_from == "previous CI"
    assert change.delta == pytest.approx(0.025)
    assert [(c.detector, c.dataset) for c in comparison.improvements] == [("gp", "a")]


def test_without_previous_ci_the_current_ci_is_the_tolerance_and_old_reports_are_read():
    previous = {
        "run_id": "old",
        "metrics": [{"detector": "lr", "dataset": "a", "eer": 0.10, "min_dcf": 0.3}],
        "eer_matrix": {},
    }
    current = document({("lr", "a"): 0.13, ("lr", "new"): 0.2}, "r2", {("lr", "a"): (0.12, 0.14)})
    comparison = compare_with_previous(current, previous)
    assert comparison.regressions[0].tolerance_from == "this run's CI"
    assert comparison.added == [("lr", "new")]
    no_ci = compare_with_previous(document({("lr", "a"): 0.1001}, "r2"), document({("lr", "a"): 0.10}, "r1"))
    assert no_ci.regressions[0].tolerance_from == "no CI"


def test_average_is_compared_only_over_the_same_corpora():
    previous = document({("lr", "a"): 0.1}, "r1", averages={"lr": (0.10, 0.09, 0.11, ["a", "b"])})
    worse_same = document({("lr", "a"): 0.1}, "r2", averages={"lr": (0.20, 0.19, 0.21, ["b", "a"])})
    worse_other = document({("lr", "a"): 0.1}, "r2", averages={"lr": (0.20, 0.19, 0.21, ["a", "c"])})
    assert [c.dataset for c in compare_with_previous(worse_same, previous).regressions] == [AVERAGE_LABEL]
    assert compare_with_previous(worse_other, previous).regressions == []


def test_trend_table_orders_runs():
    docs = [
        document({("lr", "a"): 0.3}, "r2", averages={"lr": (0.3, None, None, ["a"])}),
        document({("lr", "a"): 0.1}, "r1"),
    ]
    trends = trend_table(docs)
    assert trends["run_id"].tolist() == ["r1", "r2", "r2"]
    assert set(trends["dataset"]) == {"a", AVERAGE_LABEL}


# ------------------------------------------------------------------ publishing, history, trends


def degrade(scores: pd.DataFrame, detector: str, dataset: str, factor: float = 0.2, seed: int = 9) -> pd.DataFrame:
    """Shrink one cell's class separation and add noise: its EER rises far beyond any CI."""
    out = scores.copy()
    rows = (out["detector"] == detector) & (out["dataset"] == dataset)
    noise = np.random.default_rng(seed).normal(0, 1.0, int(rows.sum()))
    out.loc[rows, "score"] = out.loc[rows, "score"] * factor + noise
    out.loc[rows, "p_spoof"] = 1 / (1 + np.exp(out.loc[rows, "score"]))
    return out


def test_published_reports_diff_against_the_previous_and_plot_trends(tmp_path, small_scores):
    root = str(tmp_path / "reports")
    first = publish_run_report(report_input(small_scores, "20250101T000000Z-demo"), small_scores, root)
    assert first.content.comparison.status == "first report"
    assert Path(first.folder, "scores.parquet").is_file() and Path(first.folder, "plots", "det_studio.png").is_file()

    second = publish_run_report(report_input(small_scores, "20250102T000000Z-demo"), small_scores, root)
    assert second.content.comparison.status == "none"
    page = Path(second.folder, "index.html").read_text()
    assert "Regressions since 20250102T000000Z-demo" not in page and "Regressions since 20250101T000000Z-demo" in page
    assert "None." in page
    assert "plots/trend_eer.png" in second.content.images

    worse = degrade(small_scores, "lr", "phone")
    third = publish_run_report(report_input(worse, "20250103T000000Z-demo"), worse, root)
    comparison = third.content.comparison
    assert comparison.previous_run_id == "20250102T000000Z-demo"
    assert ("lr", "phone") in [(c.detector, c.dataset) for c in comparison.regressions]
    page = Path(third.folder, "index.html").read_text()
    top = page[: page.index("id='headline'")]
    assert "Regressions since 20250102T000000Z-demo" in top and "regression-table" in top and "phone" in top
    saved = json.loads(Path(third.folder, "metrics.json").read_text())
    assert saved["comparison"]["status"] == "regressions"
    trends = third.content.trends
    assert trends["run_id"].nunique() == 3

    # Re-publishing the same run id compares with the report before it, not with itself.
    again = publish_run_report(report_input(worse, "20250103T000000Z-demo"), worse, root)
    assert again.content.comparison.previous_run_id == "20250102T000000Z-demo"
    assert list_reports(root) == ["20250101T000000Z-demo", "20250102T000000Z-demo", "20250103T000000Z-demo"]
    assert (Path(root) / "LATEST").read_text() == "20250103T000000Z-demo"


def test_storage_lists_only_published_reports(tmp_path):
    root = tmp_path / "reports"
    publish_report({"metrics.json": json.dumps({"run_id": "b"})}, root, "b")
    publish_report({"metrics.json": json.dumps({"run_id": "a"})}, root, "a")
    (root / ".building-xyz").mkdir()
    (root / "c").mkdir()  # no metrics.json: not a report
    (root / "d").mkdir()
    (root / "d" / "metrics.json").write_text("{broken")
    assert list_reports(root) == ["a", "b", "d"]
    assert [d["run_id"] for d in report_history(root)] == ["a", "b"]  # the broken one is skipped
    assert [d["run_id"] for d in report_history(root, exclude="b")] == ["a"]
    assert [d["run_id"] for d in report_history(root, limit=1)] == []  # the newest (d) is unreadable
    assert previous_report(root, "b").endswith("/a")  # LATEST
    assert previous_report(root, "a").endswith("/d")  # LATEST is this run: the newest other one
    assert previous_report(tmp_path / "none", "a") is None
    assert oct((root / "a").stat().st_mode & 0o777) == oct(0o755)


@pytest.mark.parametrize("name", ["../x.html", "/etc/x", "plots/../../x", "a//b", "C:/x"])
def test_publish_refuses_names_outside_the_folder(tmp_path, name):
    with pytest.raises(ValueError, match="leave the report folder"):
        publish_report({name: "x"}, tmp_path, "run")


@pytest.mark.parametrize("run_id", ["../up", "a/b", ".hidden", ""])
def test_publish_refuses_bad_run_ids(tmp_path, run_id):
    with pytest.raises(ValueError, match="run id"):
        publish_report({"index.html": "x"}, tmp_path, run_id)


# ------------------------------------------------------------------ Prefect artifacts


def test_report_task_publishes_three_artifacts_with_stable_keys(tmp_path, small_scores, monkeypatch):
    import tasks.report.task as report_module

    calls = []
    monkeypatch.setattr(
        report_module,
        "create_markdown_artifact",
        lambda markdown, key, description=None: calls.append(("md", key, markdown)),
    )
    monkeypatch.setattr(
        report_module, "create_table_artifact", lambda table, key, description=None: calls.append(("table", key, table))
    )
    monkeypatch.setattr(
        report_module, "create_link_artifact", lambda link, link_text=None, key=None: calls.append(("link", key, link))
    )
    folder = report_module.report_task.fn(report_input(small_scores), small_scores, str(tmp_path), "Demo Config_1")
    assert [(kind, key) for kind, key, _ in calls] == [
        ("md", "addgp-demo-config-1-summary"),
        ("table", "addgp-demo-config-1-eer-matrix"),
        ("link", "addgp-demo-config-1-html"),
    ]
    markdown = calls[0][2]
    assert markdown.index("Regressions") < markdown.index("Headline") < markdown.index("Cross-dataset")
    table = calls[1][2]
    assert [row["detector"] for row in table] == ["lr", "gp"]
    assert {"train setting", "eval: studio", "eval: phone", "average over corpora (unweighted)", "pooled"} <= set(
        table[0]
    )
    assert calls[2][2] == f"file://{folder}/index.html"
    assert artifact_key("<script>", "summary") == "addgp-script-summary"


def test_a_previous_report_of_another_kind_is_skipped_for_the_diff(tmp_path, small_scores):
    root = tmp_path / "reports"
    publish_run_report(report_input(small_scores, "r1"), small_scores, str(root))
    publish_report({"metrics.json": json.dumps({"kind": "nightly", "run_id": "r2"})}, root, "r2")
    third = publish_run_report(report_input(small_scores, "r3"), small_scores, str(root))
    assert third.content.comparison.previous_run_id == "r1" and third.content.comparison.status == "none"


# ------------------------------------------------------------------ shared inputs: conditions, data checks


def with_conditions(scores: pd.DataFrame, shrink: dict | None = None, seed: int = 3) -> pd.DataFrame:
    """``scores`` as clean plus degraded copies of every utterance (class separation shrunk, noise added)."""
    rng = np.random.default_rng(seed)
    frames = [scores.assign(condition="clean")]
    for name, factor in (shrink or {"mp3_32k": 0.8, "telephony": 0.35}).items():
        degraded = scores.copy()
        degraded["score"] = degraded["score"] * factor + rng.normal(0, 0.5, len(degraded))
        degraded["p_spoof"] = 1 / (1 + np.exp(degraded["score"]))
        frames.append(degraded.assign(condition=name))
    return pd.concat(frames, ignore_index=True)


def data_checks_frame() -> pd.DataFrame:
    """The long data-checks table the inputs stage hands to the report."""
    return pd.DataFrame(
        [
            {"check": "duplicate utt_id", "scope": "all manifests", "count": 0, "severity": "info", "examples": ""},
            {
                "check": "duplicate audio (sha256) within a manifest",
                "scope": "studio",
                "count": 3,
                "severity": "warning",
                "examples": "/data/corpora/studio/a.flac = /data/corpora/studio/b.flac",
            },
            {
                "check": "train/eval overlap (sha256)",
                "scope": f"studio train × {EVIL_DATASET} eval",
                "count": 2,
                "severity": "error",
                "examples": "<b>u1</b>|u2",
            },
        ]
    )


def test_the_report_flow_validates_a_report_input_of_typed_stage_values(small_scores):
    """``addgp report --artifacts`` runs ``report_flow``, whose parameters Prefect validates with
    pydantic: every type a ``ReportInput`` names must resolve at run time (not only for mypy)."""
    from flows.pipeline import report_flow
    from tasks.ingest.losses import LeftOut
    from tasks.report.content import ModelEntry

    report = report_input(small_scores, left_out=[LeftOut("demo_phone", "eval", "no rows in split 'eval'")])
    report.models = [*report.models, ModelEntry("from-card", "logreg", "2")]
    checked = report_flow.validate_parameters(
        {"report": report, "scores": small_scores, "reports_root": "/tmp", "artifact_name": "a"}
    )
    assert checked["report"].models == report.models and checked["report"].left_out == report.left_out
