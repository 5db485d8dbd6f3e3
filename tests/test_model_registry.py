"""Model registry: versioned safetensors + model card, exact round trips, and refusal of bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from storage.models import (
    RANDOM_ENCODER_WARNING,
    EmbeddingSetting,
    ModelRef,
    ModelRegistryError,
    card_digest,
    latest,
    list_versions,
    load_model_state,
    read_card,
    save_model,
)
from tasks.train.detectors import load_detector
from tasks.train.dkl_gp import DKLGPDetector
from tasks.train.logreg import LogRegDetector

DIM = 12
CARD = {
    "encoder": "facebook/wav2vec2-xls-r-300m",
    "layer": 6,
    "pooling": "mean",
    "random_weight_encoder": False,
    "training_data": {"datasets": ["asvspoof2019_la"], "splits": ["train"], "n_bonafide": 100, "n_spoof": 100},
    "dev_metrics": {"eer": 0.05, "cllr": float("nan")},
}


def make_set(seed: int, n: int = 100):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n, DIM)), rng.normal(size=(n, DIM)) + 3.0 * np.eye(DIM)[0]])
    return X.astype(np.float32), np.array(["bonafide"] * n + ["spoof"] * n)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny problems: intra-op threads only cost time on a shared 2-core machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detectors():
    X, y = make_set(0)
    Xd, yd = make_set(1, 40)
    fast = dict(lr=0.05, max_steps=20, progress=False)
    exact = DKLGPDetector(mode="exact", hidden_dims=(8,), **fast).fit(X, y, X_dev=Xd, y_dev=yd)
    return {
        "logreg": LogRegDetector(calibration="affine").fit(X, y, X_dev=Xd, y_dev=yd),
        "exact": exact,
        "variational": DKLGPDetector(
            mode="variational",
            feature_extractor="mlp",
            hidden_dims=(16, 4),
            n_inducing=16,
            batch_size=50,
            calibration="temperature",
            **fast,
        ).fit(X, y, X_dev=Xd, y_dev=yd),
        # An adapted GP carries the shots it is conditioned on, which the saved state must keep.
        "exact_adapted": exact.adapt(*make_set(5, 3), X, y),
    }


@pytest.mark.parametrize("name", ["logreg", "exact", "variational", "exact_adapted"])
def test_save_load_round_trip_gives_identical_scores(tmp_path, detectors, name):
    detector = detectors[name]
    X, _ = make_set(2)
    ref = save_model(tmp_path, name.replace("_", "-"), detector, CARD)
    loaded, card = load_detector(ref, expect=EmbeddingSetting(encoder=CARD["encoder"], layer=6, pooling="mean"))
    assert type(loaded) is type(detector)
    assert loaded.get_params() == detector.get_params()
    # Equal to float64 rounding: the conditioned GP's variance can differ in the last bit
    # between two copies of the same numbers (BLAS paths depend on memory alignment).
    np.testing.assert_allclose(loaded.score_llr(X), detector.score_llr(X), rtol=1e-12, atol=1e-12)
    if isinstance(detector, DKLGPDetector):
        np.testing.assert_allclose(loaded.predict_variance(X), detector.predict_variance(X), rtol=1e-12, atol=1e-12)
    assert card["model_type"] == detector.kind


def test_model_card_records_what_the_model_is(tmp_path, detectors):
    ref = save_model(tmp_path, "gp", detectors["exact"], CARD)
    card = json.loads((tmp_path / "gp" / "v1" / "model_card.json").read_text())
    assert card == read_card(ref)
    assert card["name"] == "gp" and card["version"] == 1 and card["model_type"] == "dkl_gp"
    assert card["encoder"] == CARD["encoder"] and card["layer"] == 6 and card["pooling"] == "mean"
    assert card["training_data"] == CARD["training_data"]
    assert card["dev_metrics"] == {"eer": 0.05, "cllr": None}  # NaN is not JSON: written as null
    assert card["detector_params"]["hyper_parameters"]["mode"] == "exact"
    assert card["detector_params"]["hyper_parameters"]["hidden_dims"] == [8]
    assert {"python", "numpy", "torch", "gpytorch", "scikit-learn", "safetensors"} <= set(card["library_versions"])
    assert card["created_utc"].endswith("Z")
    assert len(card["weights"]["sha256"]) == 64
    assert card["random_weight_encoder"] is False and "warning" not in card
    assert sorted(p.name for p in (tmp_path / "gp" / "v1").iterdir()) == ["model_card.json", "weights.safetensors"]


def test_random_weight_encoder_models_carry_a_warning(tmp_path, detectors):
    ref = save_model(tmp_path, "demo", detectors["logreg"], {**CARD, "random_weight_encoder": True})
    assert read_card(ref)["warning"] == RANDOM_ENCODER_WARNING


def test_versions_count_up_and_latest_is_the_newest(tmp_path, detectors):
    assert list_versions(tmp_path, "lr") == []
    first = save_model(tmp_path, "lr", detectors["logreg"], CARD)
    second = save_model(tmp_path, "lr", detectors["logreg"], {**CARD, "dev_metrics": {"eer": 0.04}})
    assert (first.version, second.version) == (1, 2)
    assert list_versions(tmp_path, "lr") == [first, second]
    assert latest(tmp_path, "lr") == second
    assert isinstance(second, ModelRef) and second.path.endswith("lr/v2")
    _, card = load_detector(tmp_path / "lr")  # a model folder means its latest version
    assert card["version"] == 2 and card["dev_metrics"] == {"eer": 0.04}
    assert not [p for p in (tmp_path / "lr").iterdir() if p.name.startswith(".tmp")]  # no temp leftovers


def test_tampered_weights_are_refused(tmp_path, detectors):
    ref = save_model(tmp_path, "lr", detectors["logreg"], CARD)
    weights = tmp_path / "lr" / "v1" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip the bits of one byte of tensor data
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelRegistryError, match=r"sha256.*modified or replaced"):
        load_detector(ref)


def test_weights_of_another_model_are_refused_even_with_a_matching_hash(tmp_path, detectors):
    """Someone copies v1's weights over v2's and 'fixes' the hash in v2's card: the tensor list still disagrees."""
    save_model(tmp_path, "m", detectors["logreg"], CARD)
    save_model(tmp_path, "m", detectors["exact"], CARD)
    v1, v2 = tmp_path / "m" / "v1", tmp_path / "m" / "v2"
    (v2 / "weights.safetensors").write_bytes((v1 / "weights.safetensors").read_bytes())
    card = json.loads((v2 / "model_card.json").read_text())
    card["weights"]["sha256"] = json.loads((v1 / "model_card.json").read_text())["weights"]["sha256"]
    card["digest"] = card_digest(card)  # a forger who also re-seals the card
    (v2 / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelRegistryError, match="do not belong together"):
        load_detector(v2)


@pytest.mark.parametrize(
    "expect, message",
    [
        (
            {"encoder": "microsoft/wavlm-large"},
            "encoder 'facebook/wav2vec2-xls-r-300m' .expected 'microsoft/wavlm-large'",
        ),
        ({"layer": 12}, "layer 6 .expected 12"),
        ({"pooling": "mean+std"}, "pooling 'mean' .expected 'mean\\+std'"),
        ({"crop_s": 4.0}, "crop_s None .expected 4.0"),
    ],
)
def test_loading_for_other_embeddings_says_which_differs(tmp_path, detectors, expect, message):
    ref = save_model(tmp_path, "lr", detectors["logreg"], CARD)
    with pytest.raises(ModelRegistryError, match=message):
        load_model_state(ref, replace(EmbeddingSetting.of_card(CARD), **expect))


def test_incomplete_or_overreaching_cards_are_refused(tmp_path, detectors):
    card = {k: v for k, v in CARD.items() if k != "random_weight_encoder"}
    with pytest.raises(ModelRegistryError, match="random_weight_encoder"):
        save_model(tmp_path, "lr", detectors["logreg"], card)
    with pytest.raises(ModelRegistryError, match="writes itself"):
        save_model(tmp_path, "lr", detectors["logreg"], {**CARD, "model_type": "svm"})
    with pytest.raises(ModelRegistryError, match="model name"):
        save_model(tmp_path, "../escape", detectors["logreg"], CARD)
    with pytest.raises(ModelRegistryError, match="no model at"):
        load_detector(tmp_path / "nothing-here")


def test_a_failed_save_leaves_no_version_behind(tmp_path, detectors, monkeypatch):
    class Unwritable:
        kind = "logreg"

        def to_state(self):
            return {"coef": np.zeros(3)}, {"hyper_parameters": {}, "fitted": {"when": object()}}

    with pytest.raises(ModelRegistryError, match="cannot be written"):
        save_model(tmp_path, "broken", Unwritable(), CARD)

    def crash(*args):  # the machine dies between writing the files and publishing the version
        raise OSError("disk went away")

    monkeypatch.setattr("storage.models._rename_dir", crash)
    with pytest.raises(OSError, match="disk went away"):
        save_model(tmp_path, "broken", detectors["logreg"], CARD)
    assert list_versions(tmp_path, "broken") == []
    assert list((tmp_path / "broken").iterdir()) == []  # the temporary folder is gone too


def test_unknown_model_type_is_refused(tmp_path, detectors):
    ref = save_model(tmp_path, "lr", detectors["logreg"], CARD)
    card_path = tmp_path / "lr" / "v1" / "model_card.json"
    card = json.loads(card_path.read_text()) | {"model_type": "svm"}
    card_path.write_text(json.dumps(card | {"digest": card_digest(card)}))  # re-sealed: only the type is wrong
    with pytest.raises(ModelRegistryError, match="model_type 'svm'"):
        load_detector(ref)


def test_storage_does_not_import_tasks():
    code = "import sys, storage.models; print(sorted(m for m in sys.modules if m.startswith('tasks')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_version_number_taken_by_a_concurrent_writer_is_skipped(tmp_path, detectors, monkeypatch):
    save_model(tmp_path, "lr", detectors["logreg"], CARD)
    # The second writer looked before the first one published v1, so it also tries v1 first.
    monkeypatch.setattr("storage.models.list_versions", lambda root, name: [])
    ref = save_model(tmp_path, "lr", detectors["logreg"], CARD)
    assert ref.version == 2 and read_card(ref)["version"] == 2
