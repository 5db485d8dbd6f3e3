"""Issue 23 item 11: `addgp models`, `runs`, `show`, `compare` on a generated workspace."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from flows.cli import app
from storage import champions
from storage.manifests import write_manifest
from storage.reports import publish_report

runner = CliRunner()


def run_document(run_id: str, eer: float, half_width: float = 0.01) -> dict:
    cell = {
        "detector": "lr",
        "dataset": "alpha",
        "eer": eer,
        "eer_ci_low": eer - half_width,
        "eer_ci_high": eer + half_width,
    }
    return {
        "kind": "run",
        "run_id": run_id,
        "created": f"2026-12-0{run_id[-1]}",
        "models": [{"ref": "lr/v1"}],
        "datasets": ["alpha"],
        "metrics": [cell],
    }


def test_models_runs_show_and_compare(tmp_path, audio_manifest):
    work = tmp_path / "work"
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest.assign(split=["train"] * 8 + ["dev"] * 4), manifest)
    store, models = tmp_path / "store", work / "models"
    assert (
        runner.invoke(app, ["embed", str(manifest), "--encoder", "tiny-random", "--store", str(store)]).exit_code == 0
    )
    common = ["--store", str(store), "--models", str(models)]
    trained = runner.invoke(
        app, ["train", str(manifest), *common, "--name", "lr", "--encoder", "tiny-random", "--datasets", "alpha,beta"]
    )
    assert trained.exit_code == 0, trained.output
    shots = ["--shots", str(manifest), "--where", "dataset=beta", "--training-manifest", str(manifest), "--replay", "6"]
    adapted = runner.invoke(app, ["adapt", str(models / "lr"), *shots, *common])
    assert adapted.exit_code == 0, adapted.output
    champions.promote(work / "state", "lr", {"model_path": str(models / "lr" / "v1"), "version": 1, "eer": None})

    listed = runner.invoke(app, ["models", "--workdir", str(work), "--json"])
    assert listed.exit_code == 0, listed.output
    records = {r["ref"]: r for r in json.loads(listed.stdout)}
    assert set(records) == {"lr/v1", "lr-adapt/v1"}
    assert records["lr/v1"]["champion"] and records["lr/v1"]["trained_on"] == "alpha,beta"
    assert records["lr-adapt/v1"]["parent"] == "lr/v1" and not records["lr-adapt/v1"]["champion"]
    assert "champion latest" in runner.invoke(app, ["models", "--workdir", str(work)]).stdout

    card = runner.invoke(app, ["show", "lr-adapt", "--workdir", str(work)])
    assert card.exit_code == 0, card.output
    assert (
        "parent     lr/v1" in card.stdout
        and "adaptation 1: adapt (manual) from lr/v1 on 4 row(s) of beta" in card.stdout
    )
    assert "trained on alpha, beta" in card.stdout
    champion = runner.invoke(app, ["show", "lr", "--workdir", str(work)])
    assert "the champion in service" in champion.stdout and "dev EER" in champion.stdout
    assert "early stopping" in champion.stdout
    assert runner.invoke(app, ["show", "nope", "--workdir", str(work)]).exit_code == 3

    reports = work / "reports"
    publish_report({"metrics.json": json.dumps(run_document("r1", 0.10))}, reports, "r1")
    publish_report({"metrics.json": json.dumps(run_document("r2", 0.20))}, reports, "r2")
    nightly = {"kind": "nightly", "run_id": "n1", "detector": "lr", "decision": {"promote": True}, "nothing_new": False}
    publish_report({"metrics.json": json.dumps(nightly)}, reports / "nightly" / "lr", "n1")
    runs = json.loads(runner.invoke(app, ["runs", "--workdir", str(work), "--json"]).stdout)
    assert [(r["run_id"], r["kind"]) for r in runs] == [("r1", "run"), ("r2", "run"), ("n1", "nightly")]
    assert runs[1]["latest"] and runs[2]["decision"] == "promoted" and runs[2]["detector"] == "lr"

    diff = runner.invoke(app, ["compare", "r1", "r2", "--workdir", str(work), "--json"])
    assert diff.exit_code == 0, diff.output
    answer = json.loads(diff.stdout)
    assert (answer["before"], answer["after"]) == ("r1", "r2")
    assert [(c["metric"], c["dataset"]) for c in answer["regressions"]] == [("eer", "alpha")]
    assert answer["eer"] == [{"detector": "lr", "dataset": "alpha", "eer_before": 0.10, "eer_after": 0.20}]
    text = runner.invoke(app, ["compare", "r1", "r2", "--workdir", str(work)]).stdout
    assert "+10.00" in text and "1 regressions" in text
    missing = runner.invoke(app, ["compare", "r1", "r9", "--workdir", str(work)])
    assert missing.exit_code == 2 and "r9" in missing.output
