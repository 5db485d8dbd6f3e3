"""Issue 23 item 2: one missing split folder must not cost the whole run's report.

An ingest that loses a split (every row the layout lists rejected) or more than
``embed.max_reject_fraction`` of a corpus says so at ingest (exit 7); ``addgp run`` leaves that
corpus out of the role that needed the split, publishes the report of the rest with a
"Corpora left out" section, and exits 7.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from addgp.config import load_config
from flows.cli import app
from flows.cli.common import EXIT_TOO_MANY_REJECTS, exit_code_of
from tasks.demo_corpus import generate_demo_corpus
from tasks.ingest.losses import IngestLossError, ingest_losses, plan_corpora
from tasks.ingest.registry import ingest_dataset

SIZES = {"train": 40, "dev": 12, "eval": 30}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    generate_demo_corpus(root, seed=3, conditions=("studio", "phone"), utterances_per_split=SIZES, progress=False)
    return root


def without_eval_audio(corpus: Path, folder: Path, name: str = "demo_phone") -> Path:
    """A copy of one corpus whose eval audio folder is absent (unmounted, not yet copied)."""
    shutil.copytree(corpus / name, folder / name)
    shutil.rmtree(folder / name / "ASVspoof2019_LA_eval")
    return folder / name


def test_a_lost_split_is_said_at_ingest_and_the_cli_exits_7(corpus, tmp_path):
    root = without_eval_audio(corpus, tmp_path)
    summary = ingest_dataset("asvspoof2019_la", root, dataset="demo_phone", progress=False).summary()
    assert summary.lost_splits == ["eval"] and summary.expected_rows["eval"] == SIZES["eval"]
    losses = ingest_losses(summary, max_reject_fraction=1.0)  # even with no limit on the share
    assert len(losses) == 1 and "split 'eval'" in losses[0] and "audio file missing" in losses[0]

    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(app, ["ingest", "asvspoof2019_la", str(root), "-o", str(out)])
    assert result.exit_code == EXIT_TOO_MANY_REJECTS, result.output
    assert "split 'eval'" in result.output and "_rejects" in result.output
    assert out.is_file(), "the manifest of what could be read is written first"

    healthy = ingest_dataset("asvspoof2019_la", corpus / "demo_studio", dataset="demo_studio", progress=False)
    assert ingest_losses(healthy.summary(), 0.0) == []


def test_more_rejects_than_the_limit_is_a_loss(corpus, tmp_path):
    root = tmp_path / "demo_studio"
    shutil.copytree(corpus / "demo_studio", root)
    flacs = sorted((root / "ASVspoof2019_LA_train" / "flac").glob("*.flac"))[:10]
    for flac in flacs:
        flac.unlink()
    summary = ingest_dataset("asvspoof2019_la", root, progress=False).summary()
    assert summary.lost_splits == [] and summary.reject_fraction == pytest.approx(10 / sum(SIZES.values()))
    assert ingest_losses(summary, 0.2) == []
    (loss,) = ingest_losses(summary, 0.05)
    assert "10 of 82 rows rejected" in loss and "embed.max_reject_fraction 0.05" in loss


def run_config(folder: Path, corpus_roots: dict[str, Path]) -> Path:
    config = {
        "name": "lossy",
        "workdir": str(folder / "work"),
        "datasets": [{"name": n, "adapter": "asvspoof2019_la", "root": str(r)} for n, r in corpus_roots.items()],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 20},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {"datasets": ["demo_studio"], "layer": -1, "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"n_boot": 50},
    }
    path = folder / "lossy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_plan_leaves_out_only_the_role_that_lost_its_split(corpus, tmp_path):
    config = load_config(run_config(tmp_path, {"demo_studio": corpus / "demo_studio", "demo_phone": tmp_path}))
    studio = ingest_dataset("asvspoof2019_la", corpus / "demo_studio", dataset="demo_studio", progress=False)
    phone = ingest_dataset(
        "asvspoof2019_la", without_eval_audio(corpus, tmp_path), dataset="demo_phone", progress=False
    )
    plan = plan_corpora(config, {"demo_studio": studio.summary(), "demo_phone": phone.summary()})
    assert plan.train_datasets == ["demo_studio"] and plan.eval_datasets == ["demo_studio"]
    (record,) = plan.left_out
    assert record.dataset == "demo_phone" and record.role == "eval" and "'eval' (30 listed" in record.reason
    assert plan.uses("demo_phone")  # its other splits stay usable (nothing else needs them here)
    assert plan.applied_to(config).eval_datasets == ["demo_studio"]
    # Nothing left to train on: the run stops before training, exit 7.
    with pytest.raises(IngestLossError) as error:
        plan_corpora(config, {"demo_studio": replace(studio.summary(), by_split={}), "demo_phone": phone.summary()})
    assert "nothing left to train on" in str(error.value) and exit_code_of(error.value) == EXIT_TOO_MANY_REJECTS


@pytest.mark.integration
@pytest.mark.slow
def test_addgp_run_publishes_the_healthy_corpora_and_names_the_lost_one(corpus, tmp_path, monkeypatch):
    config = run_config(
        tmp_path, {"demo_studio": corpus / "demo_studio", "demo_phone": without_eval_audio(corpus, tmp_path)}
    )
    # The command's own temporary server is replaced by the test harness' server.
    monkeypatch.setattr("flows.cli.server.prefect_api", contextlib.nullcontext)
    with prefect_test_harness(server_startup_timeout=180):
        result = CliRunner().invoke(app, ["run", str(config), "--run-id", "r1"])
    assert result.exit_code == EXIT_TOO_MANY_REJECTS, result.output
    assert "left out: demo_phone (eval)" in result.output and "report:" in result.output
    report = tmp_path / "work" / "reports" / "r1"
    document = json.loads((report / "metrics.json").read_text())
    assert [(r["dataset"], r["role"]) for r in document["left_out"]] == [("demo_phone", "eval")]
    assert document["datasets"] == ["demo_studio"], "the healthy corpus is evaluated and reported"
    assert "Corpora left out" in (report / "report.md").read_text()
