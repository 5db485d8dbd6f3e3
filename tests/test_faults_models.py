"""Models that gave silently different scores or crashed with a traceback (issue 14, cases 6 and 7).

One digest over the model card (and through the weights' sha256, the arrays) refuses every
edit that changes scores; a width mismatch and forged weights give a clear message and exit
code 2; a model that is not there exits 3, as the README says.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from helpers import changed, run_migrate, write_tone
from typer.testing import CliRunner

from flows.cli import app
from storage.embeddings import META_FIELDS, REJECTS_SCHEMA, ShardLocation, encoder_slug, write_shard
from storage.manifests import write_manifest
from storage.models import (
    ModelNotFoundError,
    ModelRegistryError,
    card_digest,
    save_model,
)
from storage.paths import OldFormatError
from tasks.train.detectors import load_detector
from tasks.train.logreg import LogRegDetector

runner = CliRunner()
CARD = {
    "encoder": "tiny-random",
    "layer": 2,
    "pooling": "mean",
    "crop_s": None,
    "random_weight_encoder": True,
    "training_data": {"datasets": ["d"]},
}


def _fitted(dim: int, seed: int = 0) -> LogRegDetector:
    rng = np.random.default_rng(seed)
    y = np.array(["bonafide", "spoof"] * 40)
    X = rng.normal(size=(80, dim)) + np.where(y == "bonafide", 1.0, -1.0)[:, None]
    return LogRegDetector(C=1.0).fit(X, y)


def _edit_card(folder, change) -> None:
    path = folder / "model_card.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card, indent=2))


@pytest.mark.parametrize(
    "what, change",
    [
        ("layer 2 → 1 (same width)", lambda c: c.update(layer=1)),
        ("fitted log_prior_odds", lambda c: c["detector_params"]["fitted"].update(log_prior_odds=5.4)),
        ("hyper-parameter C", lambda c: c["detector_params"]["hyper_parameters"].update(C=100.0)),
        ("a field added to cards later", lambda c: c.setdefault("embedding", {}).update(dim=7)),
        ("the digest removed", lambda c: c.pop("digest")),
    ],
)
def test_every_card_edit_is_refused_naming_the_file(tmp_path, what, change):
    ref = save_model(tmp_path, "lr", _fitted(4), CARD)
    load_detector(ref)  # intact: loads
    _edit_card(tmp_path / "lr" / "v1", change)
    with pytest.raises(ModelRegistryError, match=r"v1/model_card\.json was changed after saving"):
        load_detector(ref)


def test_the_digest_covers_the_arrays_through_the_weights_hash(tmp_path):
    ref = save_model(tmp_path, "lr", _fitted(4), CARD)
    card = json.loads((tmp_path / "lr" / "v1" / "model_card.json").read_text())
    assert card["digest"] == card_digest(card) and "sha256" in card["weights"]
    changed = dict(card, weights=dict(card["weights"], sha256="0" * 64))
    assert card_digest(changed) != card["digest"]
    assert load_detector(ref)[1]["digest"] == card["digest"]


@pytest.fixture
def workspace(tmp_path):
    """A manifest and a store of 8-dimensional embeddings; a model fitted on 16 dimensions under the same names."""
    rows = [
        {
            "utt_id": f"u{i}",
            "dataset": "d",
            "split": "eval",
            "label": "bonafide" if i % 2 else "spoof",
            "attack": None if i % 2 else "A1",
            "speaker": "s",
            "path": f"/x/u{i}.wav",
            "duration_s": 1.0,
            "sha256": f"{i:064d}",
        }
        for i in range(20)
    ]
    manifest = pd.DataFrame(rows)
    write_manifest(manifest, tmp_path / "m.parquet")
    meta = manifest[["utt_id", "dataset", "sha256"]].assign(
        encoder="tiny-random", random_weights=True, layer=2, pooling="mean", crop_s=None
    )
    location = ShardLocation(str(tmp_path / "store"), encoder_slug("tiny-random", "mean", None), "d", "k0")
    empty = pd.DataFrame(columns=REJECTS_SCHEMA.names)
    write_shard(location, meta[[f.name for f in META_FIELDS]], np.ones((20, 8), np.float32), "float32", empty)
    ref = save_model(tmp_path / "models", "wide", _fitted(16), CARD)
    return {"root": tmp_path, "model": ref.path}


def test_a_model_of_another_width_gets_a_clear_message_and_exit_2(workspace):
    root = workspace["root"]
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(root / "m.parquet"),
            "--store",
            str(root / "store"),
            "--model",
            workspace["model"],
            "-o",
            str(root / "s.parquet"),
            "--n-boot",
            "0",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot score 8-dimensional embeddings" in result.output and "Traceback" not in result.output


def test_forged_weights_get_a_clear_message_and_exit_2(tmp_path):
    ref = save_model(tmp_path, "lr", _fitted(4), CARD)
    folder = tmp_path / "lr" / "v1"
    forged = b"\x00" * 64 + b"not safetensors"
    (folder / "weights.safetensors").write_bytes(forged)

    def reseal(card):  # a forger who fixes the hash and the digest too
        card["weights"]["sha256"] = hashlib.sha256(forged).hexdigest()
        card["digest"] = card_digest(card)

    _edit_card(folder, reseal)
    with pytest.raises(ModelRegistryError, match=r"weights\.safetensors is not a readable safetensors file"):
        load_detector(ref)
    audio = write_tone(tmp_path / "a.wav", 1.0)
    result = runner.invoke(app, ["score", audio, "--model", str(folder)])
    assert (
        result.exit_code == 2
        and "not a readable safetensors file" in result.output
        and "Traceback" not in result.output
    )


def test_a_missing_model_exits_3(tmp_path):
    audio = write_tone(tmp_path / "a.wav", 1.0)
    with pytest.raises(ModelNotFoundError):
        load_detector(tmp_path / "models" / "nothing")
    result = runner.invoke(app, ["score", audio, "--model", str(tmp_path / "models" / "nothing")])
    assert result.exit_code == 3, result.output
    assert "no model at" in result.output


def test_a_card_written_before_the_digest_is_refused_until_migrated(tmp_path):
    """Registries from before the digest (format addgp-model/1): refused naming the card and
    `addgp migrate`, which checks the weights and seals the card; then it loads with every check."""
    models = tmp_path / "models"
    ref = save_model(models, "lr", _fitted(4), CARD)
    sealed = json.loads((models / "lr" / "v1" / "model_card.json").read_text())
    _edit_card(models / "lr" / "v1", lambda c: (c.pop("digest"), c.update(format="addgp-model/1")))
    with pytest.raises(
        OldFormatError, match=f"model_card.json: a model card of format 'addgp-model/1'.*addgp migrate {tmp_path}"
    ):
        load_detector(ref)
    result = runner.invoke(app, ["show", str(models / "lr" / "v1")])
    assert result.exit_code == 2 and "addgp migrate" in result.output, result.output
    code, summary, _ = run_migrate(tmp_path)
    assert code == 0 and len(changed(summary)) == 1
    detector, card = load_detector(ref)
    assert card == sealed, "the sealed card is the card the current version would have written"
    assert len(detector.decision_function(np.zeros((2, 4)))) == 2
    save_model(models, "lr", _fitted(4), CARD)  # a card of this version beside it
    assert changed(run_migrate(tmp_path)[1]) == [], "a second migration changes nothing"
