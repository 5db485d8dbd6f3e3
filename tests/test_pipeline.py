"""The pipeline flow end to end on a tiny generated corpus: Prefect + a Dask LocalCluster of processes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import pipeline_flow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_backend():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def tiny_config(folder: Path) -> Path:
    config = {
        "name": "tiny",
        "workdir": str(folder / "work"),
        "demo_corpus": {
            "root": str(folder / "corpus"),
            "seed": 3,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 40, "dev": 12, "eval": 30},
        },
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_studio")},
            {"name": "demo_phone", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_phone")},
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 20},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {
            "datasets": ["demo_studio"],
            "layer": -1,
            "detectors": [{"name": "lr", "kind": "logreg"}],
            "augment": {"conditions": ["noise_white_snr10"], "fraction": 0.5},
        },
        "evaluate": {"conditions": ["resample_8k", "mp3_32k"]},
        "data_checks": {"near_duplicate_cosine": 0.9999},  # exercises the check after embedding
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_pipeline_end_to_end(tmp_path, prefect_backend):
    folder = Path(pipeline_flow(str(tiny_config(tmp_path)), run_id="first"))
    assert folder == tmp_path / "work" / "reports" / "first"
    for name in ("report.md", "index.html", "metrics.json", "scores.parquet"):
        assert (folder / name).is_file(), name

    document = json.loads((folder / "metrics.json").read_text())
    assert any("RANDOM-WEIGHT" in w for w in document["warnings"])
    rows = {(m["detector"], m["dataset"]): m for m in document["metrics"]}
    assert set(rows) == {("lr", "demo_studio"), ("lr", "demo_phone")}
    own = rows[("lr", "demo_studio")]["eer"]
    assert 0.0 < own < 0.5, f"EER of the trained model on its own data: {own}"

    report = (folder / "report.md").read_text()
    assert "demo_studio" in report and "demo_phone" in report and "RANDOM-WEIGHT" in report
    scores = pd.read_parquet(folder / "scores.parquet")
    assert set(scores["dataset"]) == {"demo_studio", "demo_phone"} and scores["score"].notna().all()
    assert set(scores["split"]) == {"eval"}
    # Every eval utterance is scored as shipped and under each condition, on its own degraded copy.
    assert set(scores["condition"]) == {"clean", "resample_8k", "mp3_32k"}
    per_condition = scores.groupby("condition").size()
    assert per_condition.nunique() == 1, per_condition
    clean = scores[scores["condition"] == "clean"].set_index(["dataset", "utt_id"])["score"]
    degraded = scores[scores["condition"] == "mp3_32k"].set_index(["dataset", "utt_id"])["score"]
    assert not np.allclose(clean.sort_index(), degraded.sort_index())
    card = json.loads((tmp_path / "work" / "models" / "lr" / "v1" / "model_card.json").read_text())
    assert card["training_data"]["datasets"] == ["demo_studio", "demo_studio@noise_white_snr10"]
    # The card lists every set it saw by name and content; no eval set is among them, so the
    # report's headline averages both corpora, says none is excluded, and names the policy.
    assert set(card["training_data"]["sets"]) == {
        "demo_studio/train",
        "demo_studio/dev",
        "demo_studio@noise_white_snr10/train",
    }
    assert "excluded for training overlap: none" in report and "policy: exclude" in report
    assert "averaged: demo_studio, demo_phone" in report
    assert set(scores["train_sets"]) == {"\n".join(sorted(card["training_data"]["sets"]))}
    # Every score row says which model and encoder made it (storage.reports.PROVENANCE_COLUMNS).
    assert set(scores["model_name"]) == {"lr"} and set(scores["model_version"]) == {1}
    assert set(scores["model_digest"]) == {card["digest"]} and set(scores["encoder"]) == {card["encoder"]}
    assert set(scores["encoder_weights_digest"]) == {card["encoder_weights_digest"]} and scores["random_weights"].all()
    degrade_note = document["notes"]["degrade"]
    assert {d["dataset"] for d in degrade_note} >= {
        "demo_studio@resample_8k",
        "demo_phone@mp3_32k",
        "demo_studio@noise_white_snr10",
    }
    assert all(d["rejects"] == 0 and d["written"] == d["files"] for d in degrade_note)

    # A second run re-embeds nothing, registers no identical model version (issue 23 item 11:
    # same data and config, the same model) and publishes a second report.
    second = Path(pipeline_flow(str(tiny_config(tmp_path)), run_id="second"))
    notes = json.loads((second / "metrics.json").read_text())["notes"]
    assert notes["embed"]["utterances_embedded"] == 0
    assert sum(d["written"] for d in notes["degrade"]) == 0
    assert not (tmp_path / "work" / "models" / "lr" / "v2").exists()
    assert [m["version"] for m in json.loads((second / "metrics.json").read_text())["models"]] == [1]
    assert (tmp_path / "work" / "reports" / "LATEST").read_text() == "second"


def test_train_eval_overlap_configured_as_error_stops_before_embedding(tmp_path, prefect_backend):
    """Evaluating on the training split is the plainest overlap: with `data_checks.train_eval_overlap:
    error` the run stops right after ingest, naming the key, before any embedding or training."""
    from tasks.ingest.checks import DataCheckError

    path = tiny_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["demo_corpus"]["utterances_per_split"] = {"train": 8, "dev": 4, "eval": 4}
    config["evaluate"] = {"splits": ["train", "eval"]}
    config["data_checks"] = {"train_eval_overlap": "error", "near_duplicate_cosine": 0.9999}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(
        DataCheckError,
        match=r"data_checks.train_eval_overlap is 'error'.*\n.*demo_studio/train → demo_studio/train\]: 8",
    ):
        pipeline_flow(str(path), run_id="leaky")
    assert (tmp_path / "work" / "manifests" / "demo_studio.parquet").is_file()
    assert not (tmp_path / "work" / "embeddings").exists() and not (tmp_path / "work" / "reports").exists()


@pytest.mark.slow
def test_a_run_with_too_many_embed_rejects_fails_after_embedding_with_exit_code_7(tmp_path, prefect_backend):
    """Every file over `embed.max_seconds`: the embed task writes all its rejects, is not retried,
    and the flow fails with TooManyRejectsError (which `addgp run` turns into exit code 7)."""
    from flows.cli.common import EXIT_TOO_MANY_REJECTS, exit_code_of
    from storage.embeddings import read_rejects
    from tasks.embed.summary import TooManyRejectsError

    path = tiny_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["demo_corpus"] = {**config["demo_corpus"], "conditions": ["studio"]}
    config["demo_corpus"]["utterances_per_split"] = {"train": 6, "dev": 2, "eval": 4}
    config["datasets"] = config["datasets"][:1]
    config["train"].pop("augment")
    config["evaluate"] = {}
    config["embed"] = {"max_seconds": 0.01, "max_reject_fraction": 0.5}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(TooManyRejectsError, match=r"dataset demo_studio: 12 of 12 rows not embedded") as caught:
        pipeline_flow(str(path), run_id="rejected")
    assert "commonest reason 'header declares N s (N frames at N Hz), over the limit of N s" in str(caught.value)
    assert "(12 rows, e.g." in str(caught.value) and "permanent" in str(caught.value)
    assert exit_code_of(caught.value) == EXIT_TOO_MANY_REJECTS
    rejects = read_rejects(str(tmp_path / "work" / "embeddings"))
    assert len(rejects) == 12 and set(rejects["kind"]) == {"permanent"}
    assert not (tmp_path / "work" / "models").exists() and not (tmp_path / "work" / "reports").exists()
