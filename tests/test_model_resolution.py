"""Which version `--model ROOT/NAME` means: the champion in service, else the latest; `ROOT/NAME/vN` exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.champions import ChampionMissingError, promote
from storage.models import ModelNotFoundError, resolve_model, save_model
from storage.workspace import Workspace
from tasks.train.logreg import LogRegDetector

runner = CliRunner()
CARD = {"encoder": "tiny-random", "layer": 2, "pooling": "mean", "random_weight_encoder": True}


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """A workspace whose registry holds lr/v1, lr/v2 and lr/v3."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), np.array(["bonafide", "spoof"] * 20)
    ws = Workspace.at(tmp_path / "ws")
    for _ in range(3):
        save_model(ws.models, "lr", LogRegDetector().fit(X, y), CARD)
    return ws


def test_a_model_folder_is_its_latest_version_when_no_champion_is_recorded(workspace):
    resolved = resolve_model(f"{workspace.models}/lr")
    assert resolved.path.endswith("lr/v3")
    assert "latest" in resolved.reason and "no champion" in resolved.reason


def test_a_model_folder_is_the_champion_in_service_when_one_is_recorded(workspace):
    promote(workspace.state, "lr", {"model_path": f"{workspace.models}/lr/v2", "version": 2, "eer": None})
    resolved = resolve_model(f"{workspace.models}/lr")
    assert resolved.path.endswith("lr/v2") and "champion in service" in resolved.reason
    assert "champion-lr.json" in resolved.reason
    assert resolve_model(f"{workspace.models}/lr/v3").path.endswith("lr/v3")  # a version asked for is that one


def test_a_champion_whose_folder_is_gone_is_an_error_not_the_latest(workspace):
    promote(workspace.state, "lr", {"model_path": f"{workspace.models}/lr/v7", "version": 7, "eer": None})
    with pytest.raises(ChampionMissingError, match=r"champion-lr\.json"):
        resolve_model(f"{workspace.models}/lr")


def test_an_unknown_version_names_the_versions_there_are(workspace):
    with pytest.raises(ModelNotFoundError, match=r"no version v9 .* it has v1, v2, v3"):
        resolve_model(f"{workspace.models}/lr/v9")


def test_the_cli_says_which_version_it_took_and_why_and_exits_3_on_an_unknown_one(workspace, tmp_path):
    promote(workspace.state, "lr", {"model_path": f"{workspace.models}/lr/v2", "version": 2, "eer": None})
    scores = tmp_path / "s.csv"
    pd.DataFrame(
        {"detector": "lr", "dataset": "d", "score": np.linspace(-2, 2, 20), "label": ["spoof"] * 10 + ["bonafide"] * 10}
    ).to_csv(scores, index=False)
    args = ["report", str(scores), "--reports-root", str(tmp_path / "r"), "--n-boot", "0", "--model"]
    result = runner.invoke(app, [*args, f"{workspace.models}/lr"])
    assert result.exit_code == 0, result.output
    assert f"using {workspace.models}/lr/v2 (the champion in service" in result.stderr
    metrics = json.loads((Path(json.loads(result.stdout)["report"]) / "metrics.json").read_text())
    assert [m["version"] for m in metrics["models"]] == [2]
    unknown = runner.invoke(app, [*args, f"{workspace.models}/lr/v9"])
    assert unknown.exit_code == 3 and "v1, v2, v3" in unknown.stderr


def test_a_chain_of_adaptations_stays_on_the_newest_card(workspace):
    """Adapting an adapted model keeps the parent's adaptations and adds its own (nightly challengers too)."""
    from storage.models import read_card
    from tasks.nightly.challenger import derived_card

    shots = pd.DataFrame(
        {
            "dataset": ["beta", "beta", "gamma"],
            "utt_id": ["b1", "b2", "g1"],
            "sha256": ["1" * 64, "2" * 64, "3" * 64],
            "label": ["spoof", "bonafide", "spoof"],
        }
    )
    v1 = read_card(f"{workspace.models}/lr/v1")
    first = derived_card({**v1, "training_data": {"datasets": ["alpha"], "splits": ["train"]}}, shots[:2], {})
    second = derived_card(
        {**first, "name": "lr", "version": 2, "digest": "d2"}, shots[2:], {"nightly_strategy": "adapt"}
    )
    data = second["training_data"]
    assert data["datasets"] == ["alpha"] and data["splits"] == ["train"]  # the base the replay draws from
    assert [(a["parent"]["version"], a["datasets"], a["rows"]) for a in data["adaptations"]] == [
        (1, ["beta"], 2),
        (2, ["gamma"], 1),
    ]
    assert data["adaptations"][0]["parent"]["digest"] == v1["digest"]
    assert (data["adaptations"][1]["n_spoof"], data["adaptations"][1]["nightly_strategy"]) == (1, "adapt")
