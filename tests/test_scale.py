"""Evaluation at scale (issue 21): each eval set is read from the store once per run, whatever the
number of models; a night without new data scores nothing again (the score cache); training
reads only its rows, in batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tasks.train.data as data_module
from storage.embeddings import META_FIELDS, REJECTS_SCHEMA, ShardLocation, encoder_slug, write_shard
from storage.manifests import write_manifest
from storage.models import EmbeddingSetting, save_model
from storage.score_cache import CACHED, SCORED
from tasks.evaluate.scoring import score_rows, score_sets
from tasks.nightly.challenger import rows_embeddings
from tasks.nightly.compare import (
    NEW_FAKES,
    compare_champion_and_challenger,
    reevaluate_champion,
    score_champion_and_challenger,
)
from tasks.train.data import labelled_embeddings
from tasks.train.detectors import load_detector

ENCODER, LAYER, POOLING, DIM = "tiny-random", 2, "mean", 8
SETTING = EmbeddingSetting(encoder=ENCODER, layer=LAYER, pooling=POOLING, crop_s=None)
DATASETS = ("clean", "noisy", "far")


def _write(store, manifest: pd.DataFrame, matrix: np.ndarray, dataset: str, key: str) -> None:
    mask = (manifest["dataset"] == dataset).to_numpy()
    meta = manifest.loc[mask, ["utt_id", "dataset", "sha256"]].assign(
        encoder=ENCODER, random_weights=True, layer=LAYER, pooling=POOLING, crop_s=None
    )
    write_shard(
        ShardLocation(str(store), encoder_slug(ENCODER, POOLING, None), dataset, key),
        meta[[f.name for f in META_FIELDS]].reset_index(drop=True),
        matrix[mask],
        "float32",
        pd.DataFrame(columns=REJECTS_SCHEMA.names),
    )


@pytest.fixture
def workspace(tmp_path) -> dict:
    """Three corpora (train + eval splits) in the store, two logistic regressions trained on the first."""
    from tasks.train.logreg import LogRegDetector

    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for d, dataset in enumerate(DATASETS):
        for split, n in (("train", 50), ("eval", 70)):
            for i in range(n):
                bona = i % 3 == 0
                vectors.append(rng.normal(0.5 * d, 1, DIM) + (1.0 if bona else -1.0))
                rows.append(
                    {
                        "utt_id": f"{dataset}-{split}-{i}",
                        "dataset": dataset,
                        "split": split,
                        "label": "bonafide" if bona else "spoof",
                        "attack": None if bona else f"A0{i % 4}",
                        "speaker": f"{dataset}-spk{i % 9}",
                        "path": f"/{dataset}/{i}.wav",
                        "duration_s": 1.0,
                        "sha256": f"{dataset}{split}{i:04d}".ljust(64, "0"),
                    }
                )
    manifest = pd.DataFrame(rows)
    write_manifest(manifest, tmp_path / "manifest.parquet")
    matrix = np.asarray(vectors, dtype=np.float32)
    store = tmp_path / "store"
    for dataset in DATASETS:
        _write(store, manifest, matrix, dataset, "k0")
    train = ((manifest["dataset"] == "clean") & (manifest["split"] == "train")).to_numpy()
    card = {
        "encoder": ENCODER,
        "layer": LAYER,
        "pooling": POOLING,
        "crop_s": None,
        "random_weight_encoder": True,
        "training_data": {"datasets": ["clean"], "splits": ["train"]},
    }
    models = {}
    for name, c in (("strong", 1.0), ("weak", 0.01)):
        detector = LogRegDetector(C=c).fit(matrix[train], manifest.loc[train, "label"].to_numpy())
        models[name] = str(save_model(tmp_path / "models", name, detector, card).path)
    return {"manifest": manifest, "matrix": matrix, "store": str(store), "models": models}


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, ...]]:
    """Every streaming pass over the store, as the datasets it reads; batches of 16 rows."""
    passes: list[tuple[str, ...]] = []
    real = data_module.iter_embeddings

    def counting(store, **kwargs):
        passes.append(tuple(kwargs["datasets"]))
        return real(store, **{**kwargs, "batch_rows": 16})  # several batches per corpus

    monkeypatch.setattr(data_module, "iter_embeddings", counting)
    return passes


def _loaded(workspace) -> dict:
    return {name: load_detector(path) for name, path in workspace["models"].items()}


def test_each_eval_set_is_read_once_for_all_models(workspace, reads):
    detectors = _loaded(workspace)
    result = score_sets(workspace["manifest"], workspace["store"], detectors, list(DATASETS), ["eval"], cache=False)
    assert sorted(reads) == sorted((d,) for d in DATASETS)  # one pass per eval set, not one per (model, set)
    assert set(result.sources["source"]) == {SCORED}
    # the streamed scores are those of scoring the whole selection at once, in manifest order
    for name, (detector, card) in detectors.items():
        for dataset in DATASETS:
            whole = labelled_embeddings(
                workspace["manifest"], workspace["store"], SETTING, datasets=[dataset], splits=["eval"]
            )
            expected = score_rows(detector, name, whole, card)
            got = result.scores[(result.scores["detector"] == name) & (result.scores["dataset"] == dataset)]
            assert got["utt_id"].tolist() == expected["utt_id"].tolist()
            np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy())
            # the eval set's content digest is the whole set's, not a batch's
            assert got["eval_set_digest"].tolist() == expected["eval_set_digest"].tolist()


def test_quiet_night_scores_nothing_again(workspace, reads):
    manifest, store = workspace["manifest"], workspace["store"]
    champion = load_detector(workspace["models"]["strong"])
    first = reevaluate_champion(champion, manifest, store, list(DATASETS), ["eval"], 50, None)
    assert set(first["scores"]) == {SCORED} and len(reads) == len(DATASETS)
    reads.clear()
    again = reevaluate_champion(champion, manifest, store, list(DATASETS), ["eval"], 50, None)
    assert reads == []  # nothing read from the store, nothing scored
    assert set(again["scores"]) == {CACHED}
    pd.testing.assert_frame_equal(first.drop(columns="scores"), again.drop(columns="scores"))


def test_new_rows_or_another_model_miss_the_cache(workspace, reads):
    manifest, store, matrix = workspace["manifest"], workspace["store"], workspace["matrix"]
    detectors = _loaded(workspace)
    score_sets(manifest, store, {"strong": detectors["strong"]}, list(DATASETS), ["eval"])
    # another model (its card digest) misses; the cached one is reused
    again = score_sets(manifest, store, detectors, list(DATASETS), ["eval"])
    sources = again.sources.set_index(["detector", "dataset"])["source"]
    assert (sources.loc["strong"] == CACHED).all() and (sources.loc["weak"] == SCORED).all()
    # a new shard in one corpus (new or re-embedded rows) is a new snapshot of that corpus only
    extra = manifest[manifest["dataset"] == "far"].assign(utt_id=lambda f: f["utt_id"] + "-new")
    extra = extra.assign(sha256=[f"new{i:04d}".ljust(64, "0") for i in range(len(extra))])
    grown = pd.concat([manifest, extra], ignore_index=True)
    _write(store, grown, np.vstack([matrix, matrix[(manifest["dataset"] == "far").to_numpy()]]), "far", "k1")
    reads.clear()
    third = score_sets(grown, store, detectors, list(DATASETS), ["eval"])
    assert reads == [("far",)]
    by_set = third.sources.set_index(["detector", "dataset"])["source"]
    assert by_set.loc[("strong", "far")] == SCORED and by_set.loc[("strong", "clean")] == CACHED
    assert by_set.loc[("weak", "far")] == SCORED
    assert len(third.scores[third.scores["dataset"] == "far"]) == 2 * 2 * 70


def test_champion_side_of_a_night_reuses_its_scores(workspace, reads):
    manifest, store = workspace["manifest"], workspace["store"]
    models = {"champion": load_detector(workspace["models"]["strong"])}
    reevaluate_champion(models["champion"], manifest, store, list(DATASETS), ["eval"], 20, None)
    reads.clear()
    models["challenger"] = load_detector(workspace["models"]["weak"])
    result = compare_champion_and_challenger(
        models, manifest, store, list(DATASETS), ["eval"], pd.DataFrame(), 20, None
    )
    sources = result.score_sources.set_index(["detector", "dataset"])["source"]
    assert (sources.loc["champion"] == CACHED).all() and (sources.loc["challenger"] == SCORED).all()
    assert sorted(reads) == sorted((d,) for d in DATASETS)  # the challenger's one pass per eval set


def test_training_rows_are_read_once_each_and_in_manifest_order(workspace):
    manifest, store, matrix = workspace["manifest"], workspace["store"], workspace["matrix"]
    # the same rows committed twice (an object store has no writer lock): still one row each
    _write(store, manifest, matrix, "clean", "k0-copy")
    data = labelled_embeddings(manifest, store, SETTING, datasets=["clean", "noisy"], splits=["train"])
    wanted = manifest["split"].eq("train") & manifest["dataset"].isin(["clean", "noisy"])
    assert data.rows["utt_id"].tolist() == manifest.loc[wanted, "utt_id"].tolist()
    np.testing.assert_array_equal(data.X, matrix[wanted.to_numpy()])
    assert data.missing == 0


def test_rows_missing_from_the_store_are_counted_and_left_out(workspace):
    manifest, store = workspace["manifest"], workspace["store"]
    ghost = manifest.iloc[:3].assign(utt_id=lambda f: f["utt_id"] + "-ghost", sha256="f" * 64)
    data = labelled_embeddings(
        pd.concat([ghost, manifest], ignore_index=True), store, SETTING, datasets=["clean"], splits=["train"]
    )
    assert data.missing == 3 and len(data.X) == 50
    np.testing.assert_array_equal(data.X, workspace["matrix"][:50])


def test_held_out_rows_the_embed_step_rejected_test_no_new_fakes_instead_of_failing(workspace):
    manifest, store = workspace["manifest"], workspace["store"]
    models = {
        name: load_detector(workspace["models"][m]) for name, m in (("champion", "strong"), ("challenger", "weak"))
    }
    rejected = manifest.iloc[:4].assign(dataset="inbox", utt_id=lambda f: "night-1/" + f["utt_id"], label="spoof")
    grown = pd.concat([manifest, rejected], ignore_index=True)
    scores, _ = score_champion_and_challenger(models, grown, store, list(DATASETS), ["eval"], rejected)
    assert NEW_FAKES not in set(scores["dataset"]) and set(scores["dataset"]) == set(DATASETS)
    # one held-out row in the store: the slice is there, with that row and the borrowed bona fide ones
    held = pd.concat([rejected, manifest[manifest["label"] == "spoof"].iloc[:1]], ignore_index=True)
    scores, _ = score_champion_and_challenger(models, grown, store, list(DATASETS), ["eval"], held)
    new_fakes = scores[(scores["dataset"] == NEW_FAKES) & scores["borrowed"].ne(True)]
    assert len(new_fakes) == 2  # the one row, for each model


def test_a_nights_rows_are_read_without_the_rest_of_their_dataset(workspace, monkeypatch):
    """Tonight's rows of an inbox that holds every night so far: the store yields only them."""
    manifest, store, matrix = workspace["manifest"], workspace["store"], workspace["matrix"]
    yielded: list[int] = []
    real = data_module.iter_embeddings

    def counting(store, **kwargs):
        for meta, values in real(store, **{**kwargs, "batch_rows": 16}):
            yielded.append(len(meta))
            yield meta, values

    monkeypatch.setattr(data_module, "iter_embeddings", counting)
    tonight = manifest[manifest["dataset"] == "noisy"].iloc[[60, 2, 5]]
    data = rows_embeddings(SETTING, manifest, store, tonight)
    in_manifest_order = sorted(tonight.index)
    assert data.rows["utt_id"].tolist() == manifest.loc[in_manifest_order, "utt_id"].tolist()
    np.testing.assert_array_equal(data.X, matrix[in_manifest_order])
    assert sum(yielded) == 3 and data.missing == 0, "the other 117 rows of the dataset are not read out"
    # rows the store lacks are counted missing; none of them there is an empty selection, not an error
    ghost = tonight.assign(utt_id=lambda f: f["utt_id"] + "-ghost", sha256="f" * 64)
    both = rows_embeddings(SETTING, pd.concat([manifest, ghost], ignore_index=True), store, pd.concat([tonight, ghost]))
    assert len(both.rows) == 3 and both.missing == 3
    none = rows_embeddings(SETTING, pd.concat([manifest, ghost], ignore_index=True), store, ghost)
    assert len(none.rows) == 0 and none.missing == 3


@pytest.mark.integration
def test_scoring_on_a_dask_cluster_gives_the_same_table(workspace):
    from distributed import Client, LocalCluster

    detectors = _loaded(workspace)
    args = (workspace["manifest"], workspace["store"], detectors, list(DATASETS), ["eval"])
    here = score_sets(*args, cache=False).scores
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        # a second shard per corpus: one task per shard file, reassembled in manifest order
        manifest, matrix = workspace["manifest"], workspace["matrix"]
        _write(workspace["store"], manifest, matrix, "noisy", "k0-copy")
        there = score_sets(*args, cache=False, client=client).scores
    pd.testing.assert_frame_equal(here, there)


def test_the_nightly_report_says_what_was_reused(workspace):
    import json

    from tasks.report.nightly import NightlyOutcome, render_nightly_report

    manifest, store = workspace["manifest"], workspace["store"]
    champion = load_detector(workspace["models"]["strong"])
    reevaluate_champion(champion, manifest, store, list(DATASETS), ["eval"], 20, None)
    table = reevaluate_champion(champion, manifest, store, list(DATASETS), ["eval"], 20, None)
    files = render_nightly_report(NightlyOutcome("demo", "night-2", [], reevaluation=table))
    assert "Scores reused" in files["report.md"]
    assert "3 of 3 (model, eval corpus) score sets (210 of 210 rows) were reused" in files["report.md"]
    sources = json.loads(files["metrics.json"])["score_sources"]
    assert {s["source"] for s in sources} == {CACHED} and sum(s["rows"] for s in sources) == 210
