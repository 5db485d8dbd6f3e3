"""The `addgp evaluate` and `addgp report` verbs (flows/cli/evaluate.py) on a small synthetic store and model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from test_crossdataset import make_scores
from test_report import degrade
from typer.testing import CliRunner

from flows.cli import app as addgp_app
from flows.cli.common import EXIT_REGRESSIONS
from storage.embeddings import META_FIELDS, REJECTS_SCHEMA, ShardLocation, encoder_slug, write_shard
from storage.manifests import write_manifest
from storage.models import save_model
from storage.reports import write_scores

runner = CliRunner()
ENCODER, LAYER, POOLING, DIM = "tiny-random", 4, "mean", 8


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return addgp_app


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Two corpora in a manifest and the store, and a logistic regression trained on the first one."""
    from tasks.train.logreg import LogRegDetector

    root = tmp_path_factory.mktemp("ws")
    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for dataset, shift in (("clean", 0.0), ("noisy", 1.5)):
        for split, n in (("train", 80), ("eval", 60)):
            for i in range(n):
                bona = i % 2 == 0
                vector = rng.normal(0, 1 + shift, DIM) + (1.2 if bona else -1.2)
                rows.append(
                    {
                        "utt_id": f"{dataset}-{split}-{i}",
                        "dataset": dataset,
                        "split": split,
                        "label": "bonafide" if bona else "spoof",
                        "attack": None if bona else f"A0{i % 3}",
                        "speaker": f"spk{i % 7}",
                        "path": f"{dataset}/{i}.wav",
                        "duration_s": 1.0,
                        "sha256": f"{dataset}{split}{i:04d}".ljust(64, "0"),
                    }
                )
                vectors.append(vector)
    manifest = pd.DataFrame(rows)
    write_manifest(manifest, root / "manifest.parquet")
    matrix = np.asarray(vectors, dtype=np.float32)
    meta = manifest[["utt_id", "dataset", "sha256"]].assign(
        encoder=ENCODER, random_weights=True, layer=LAYER, pooling=POOLING, crop_s=None
    )
    meta = meta[[f.name for f in META_FIELDS]]
    slug = encoder_slug(ENCODER, POOLING, None)
    for dataset in ("clean", "noisy"):
        mask = (manifest["dataset"] == dataset).to_numpy()
        rejects = pd.DataFrame(columns=REJECTS_SCHEMA.names)
        write_shard(
            ShardLocation(str(root / "store"), slug, dataset, "k0"),
            meta[mask].reset_index(drop=True),
            matrix[mask],
            "float32",
            rejects,
        )
    train = (manifest["dataset"] == "clean") & (manifest["split"] == "train")
    detector = LogRegDetector(C=1.0).fit(matrix[train.to_numpy()], manifest.loc[train, "label"].to_numpy())
    card = {
        "encoder": ENCODER,
        "layer": LAYER,
        "pooling": POOLING,
        "crop_s": None,
        "random_weight_encoder": True,
        "training_data": {"datasets": ["clean"], "splits": ["train"]},
    }
    ref = save_model(root / "models", "lr", detector, card)
    return {"root": root, "manifest": root / "manifest.parquet", "store": root / "store", "model": ref.path}


def test_evaluate_scores_every_corpus_and_prints_the_matrix(app, workspace, tmp_path):
    out = tmp_path / "scores.parquet"
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
            str(out),
            "--n-boot",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 120
    (row,) = summary["matrix"]
    assert row["detector"] == "lr" and row["train setting"] == "clean (train)"
    assert row["eval: clean"] < row["eval: noisy"]  # trained on clean: the noisy corpus is harder
    assert row["average over corpora (unweighted)"] == pytest.approx(
        (row["eval: clean"] + row["eval: noisy"]) / 2, abs=1e-4
    )
    scores = pd.read_parquet(out)
    assert {"utt_id", "dataset", "detector", "score", "p_spoof", "variance", "train_setting", "speaker"} <= set(
        scores.columns
    )
    assert set(scores["split"]) == {"eval"}


def test_evaluate_refuses_missing_models_and_unknown_datasets(app, workspace, tmp_path):
    args = [
        "evaluate",
        str(workspace["manifest"]),
        "--store",
        str(workspace["store"]),
        "-o",
        str(tmp_path / "s.parquet"),
    ]
    missing = runner.invoke(app, [*args, "--model", str(tmp_path / "no-model")])
    assert missing.exit_code == 3 and "no-model" in missing.output
    unknown = runner.invoke(app, [*args, "--model", workspace["model"], "--dataset", "nope"])
    assert unknown.exit_code == 2 and "nope" in unknown.output


def test_report_publishes_and_flags_regressions(app, workspace, tmp_path):
    scores = make_scores(detectors=("lr",), datasets=("clean", "noisy"), n=100)
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    write_scores(scores, first)
    write_scores(degrade(scores, "lr", "noisy"), second)
    root = tmp_path / "reports"
    common = ["--reports-root", str(root), "--n-boot", "100", "--model", workspace["model"]]
    result = runner.invoke(app, ["report", str(first), "--run-id", "r1", *common])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "first report"
    result = runner.invoke(app, ["report", str(second), "--run-id", "r2", "--title", "Nightly <test>", *common])
    assert result.exit_code == EXIT_REGRESSIONS, result.output  # published, and it regressed
    summary = json.loads(result.stdout)
    assert f"{len(summary['regressions'])} regression(s) against the previous report" in result.stderr
    assert summary["status"] == "regressions" and summary["previous_run_id"] == "r1"
    assert (summary["regressions"][0]["detector"], summary["regressions"][0]["dataset"]) == ("lr", "noisy")
    page = Path(summary["html"]).read_text()
    assert "Nightly &lt;test&gt;" in page and "random (untrained) weights" in page  # the model card's warning
    assert "clean (train)" in page  # train setting from the card
    assert "C=1.0 · uncalibrated" in page  # the card's non-default hyper-parameters and calibration
    # Back to the good scores (an improvement: exit 0), then the same regression, allowed.
    assert runner.invoke(app, ["report", str(first), "--run-id", "r3", *common]).exit_code == 0
    allowed = runner.invoke(app, ["report", str(second), "--run-id", "r4", "--no-fail-on-regression", *common])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["status"] == "regressions"


def test_report_accepts_a_plain_csv_and_refuses_bad_input(app, tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "detector": "x",
            "dataset": "d",
            "score": np.r_[rng.normal(2, 1, 50), rng.normal(-2, 1, 50)],
            "label": ["bonafide"] * 50 + ["spoof"] * 50,
        }
    )
    frame.to_csv(tmp_path / "s.csv", index=False)
    result = runner.invoke(
        app, ["report", str(tmp_path / "s.csv"), "--reports-root", str(tmp_path / "r"), "--n-boot", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (Path(json.loads(result.stdout)["report"]) / "index.html").is_file()
    frame.drop(columns="detector").to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["report", str(tmp_path / "bad.csv"), "--reports-root", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "detector" in bad.output
    missing = runner.invoke(app, ["report", str(tmp_path / "none.parquet"), "--reports-root", str(tmp_path / "r")])
    assert missing.exit_code == 2 and "none.parquet" in missing.output


def test_verbs_have_help(app):
    for verb in ("evaluate", "report"):
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def _evaluate(app, workspace, out: Path) -> pd.DataFrame:
    args = ["evaluate", str(workspace["manifest"]), "--store", str(workspace["store"]), "--model", workspace["model"]]
    result = runner.invoke(app, [*args, "-o", str(out), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


def test_score_files_carry_the_provenance_of_every_detector(app, workspace, tmp_path):
    from storage.models import read_card
    from storage.reports import PROVENANCE_COLUMNS, score_provenance

    scores = _evaluate(app, workspace, tmp_path / "scores.parquet")
    card = read_card(workspace["model"])
    (record,) = score_provenance(scores).to_dict("records")
    assert set(PROVENANCE_COLUMNS) <= set(scores.columns)
    assert record == {
        "detector": "lr",
        "model_name": "lr",
        "model_version": card["version"],
        "model_digest": card["digest"],
        "encoder": ENCODER,
        "encoder_weights_digest": None,  # this card (written by hand in the fixture) records none
        "encoder_variant": "fp32",
        "random_weights": True,
    }
    # Columns, not file metadata: they survive a CSV export.
    scores.to_csv(tmp_path / "scores.csv", index=False)
    from storage.reports import read_scores

    assert score_provenance(read_scores(tmp_path / "scores.csv")).to_dict("records") == [record]


def test_report_without_model_keeps_the_random_weight_banner(app, workspace, tmp_path):
    """The banner comes from the score file's provenance when no --model card is given."""
    from storage.models import RANDOM_ENCODER_WARNING

    out = tmp_path / "scores.parquet"
    _evaluate(app, workspace, out)
    result = runner.invoke(app, ["report", str(out), "--reports-root", str(tmp_path / "r"), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["report"])
    html, markdown = (folder / "index.html").read_text(), (folder / "report.md").read_text()
    assert "random (untrained) weights" in html and RANDOM_ENCODER_WARNING in markdown
    assert "lr/v1" in markdown and ENCODER in markdown  # version and encoder from the provenance columns


def test_report_of_an_old_score_file_shows_provenance_unknown(app, workspace, tmp_path):
    from storage.reports import PROVENANCE_COLUMNS

    scores = _evaluate(app, workspace, tmp_path / "scores.parquet")
    old = tmp_path / "old.parquet"
    write_scores(scores.drop(columns=PROVENANCE_COLUMNS), old)  # as written before the provenance columns
    result = runner.invoke(app, ["report", str(old), "--reports-root", str(tmp_path / "r"), "--n-boot", "0"])
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["report"])
    notes = json.loads((folder / "metrics.json").read_text())["notes"]
    assert notes["score_provenance"] == [{"detector": "lr", **dict.fromkeys(PROVENANCE_COLUMNS, "unknown")}]
    assert "random (untrained) weights" not in (folder / "index.html").read_text()  # unknown is not claimed


def test_metrics_and_report_refuse_a_trial_listed_twice_naming_it_and_the_files(app, tmp_path):
    """Issue 22, case 3: a table listing an utterance twice gave another EER and trial count with exit
    0, and `report A B` over overlapping files counted 83 + 83 trials instead of 40 + 40."""
    frame = make_scores(seed=3, detectors=("lr",), n=40, codec=False)
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole)
    repeated = tmp_path / "repeated.parquet"
    pd.concat([frame, frame.iloc[[5]]], ignore_index=True).to_parquet(repeated)
    utt = frame["utt_id"].iat[5]
    result = runner.invoke(app, ["metrics", str(repeated)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "1 score row(s) repeat a trial" in message and repr(utt) in message and "repeated.parquet" in message

    half = tmp_path / "half.parquet"
    frame[frame["dataset"] == frame["dataset"].iat[0]].to_parquet(half)  # overlaps whole.parquet
    reports = str(tmp_path / "reports")
    result = runner.invoke(app, ["report", str(whole), str(half), "--reports-root", reports, "--n-boot", "0"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "whole.parquet and " in message and "half.parquet" in message and "repeat a trial" in message
    assert not Path(reports).exists() or not any(Path(reports).iterdir()), "a report was published"

    # The same utterance under another detector or condition is another trial: accepted.
    other = tmp_path / "other.parquet"
    frame.assign(detector="gp").to_parquet(other)
    both = tmp_path / "both.parquet"
    pd.concat([frame, frame.assign(detector="gp"), frame.assign(condition="codec-mp3")]).to_parquet(both)
    assert runner.invoke(app, ["metrics", str(both)]).exit_code == 0
    result = runner.invoke(app, ["report", str(whole), str(other), "--reports-root", reports, "--n-boot", "0"])
    assert result.exit_code == 0, result.output
