"""The frame cache (storage/frames.py, tasks/embed/frames.py) and the last-block GP detector (dkl_gp_lastblock)."""

import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from helpers import write_audio, write_tone
from prefect.testing.utilities import prefect_test_harness

from addgp.config import ConfigError
from addgp.contracts import BONAFIDE, SPOOF
from addgp.metrics import compute_metrics
from flows.config import load_pipeline_config
from flows.pipeline import pipeline_flow
from storage import frames as cache
from storage.models import EmbeddingSetting, save_model
from tasks.embed import frames as frames_module
from tasks.embed.audio import load_audio
from tasks.embed.embedder import Embedder
from tasks.embed.encoder import EncoderSpec, resolve_layers
from tasks.embed.frames import cache_frames, encoder_block, frame_spec
from tasks.embed.loading import load_encoder
from tasks.ingest.common import finalize
from tasks.train.data import fit_params, labelled_inputs
from tasks.train.detectors import load_detector, make_detector
from tasks.train.dkl_gp_lastblock import LastBlockFeatures

SPEC = resolve_layers(EncoderSpec("tiny-random", layers=(-1,)))
LAYER = SPEC.layers[0]  # the last transformer layer: g's block; its input is hidden state LAYER - 1


def _shard_files(store: str) -> list[str]:
    return sorted(glob.glob(f"{store}/{cache.FRAMES_DIR}/**/frames-*.parquet", recursive=True))


def _nan_padded(hidden: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    x = hidden.clone()
    for row, count in enumerate(counts.tolist()):
        x[row, count:] = float("nan")
    return x


def test_frame_cache_holds_the_cropped_float16_input_of_the_block(audio_manifest, tmp_path):
    store = str(tmp_path / "store")
    crop = 1.0
    summary = cache_frames(audio_manifest, SPEC, store, LAYER, crop, shard_seconds=3, progress=False)
    assert summary.utterances == len(audio_manifest) and summary.rejects == 0
    assert summary.hidden_state == LAYER - 1
    for path in _shard_files(store):  # float16 on disk, not only after reading
        assert pq.read_schema(path).field("frames").type == pa.list_(pa.float16())
    fspec = frame_spec(SPEC, LAYER, crop)
    meta, X = cache.read_frames(store, fspec.name, LAYER - 1, crop, audio_manifest)
    assert X.dtype == np.float16 and len(meta) == len(audio_manifest)
    embedder = Embedder(load_encoder(fspec))
    for i, row in audio_manifest.reset_index(drop=True).iterrows():
        assert meta.at[i, "utt_id"] == row["utt_id"]
        wave = load_audio(row["path"], crop_seconds=crop)
        hidden, counts = embedder.hidden_states([wave])
        expected = hidden[LAYER - 1][0, : int(counts[0])].numpy()
        n = int(meta.at[i, "n_frames"])
        assert n == len(expected) <= 50 * crop  # the crop holds: at most 50 frames per second of it
        np.testing.assert_allclose(X[i, :n].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
        assert np.isnan(X[i, n:]).all()  # padding past the row's length


def test_frame_cache_resumes_after_a_crash_and_holds_every_utterance_once(audio_manifest, tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    fspec = frame_spec(SPEC, LAYER, 1.0)
    commits = []
    real_write_table = cache.pq.write_table

    def crash_on_third_shard(table, handle):
        if len(commits) == 2:
            handle.write(b"PAR1 half a file")  # the process dies while writing the third shard
            raise KeyboardInterrupt("killed mid-shard")
        commits.append(table.num_rows)
        real_write_table(table, handle)

    monkeypatch.setattr(cache.pq, "write_table", crash_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        cache_frames(audio_manifest, SPEC, store, LAYER, 1.0, shard_seconds=2, progress=False)
    assert len(_shard_files(store)) == 2  # the shard being written left nothing behind
    partial = cache.completed_keys(store, fspec.name, LAYER - 1, 1.0)
    assert len(partial) == sum(commits)

    monkeypatch.setattr(cache.pq, "write_table", real_write_table)
    extracted = []
    real_extract = frames_module.extract_frame_shard

    def spy(shard, *args, **kwargs):
        extracted.append(shard)
        return real_extract(shard, *args, **kwargs)

    monkeypatch.setattr(frames_module, "extract_frame_shard", spy)
    summary = cache_frames(audio_manifest, SPEC, store, LAYER, 1.0, shard_seconds=2, progress=False)
    rerun_rows = {(s.dataset, r[0]) for s in extracted for r in s.rows}
    assert not rerun_rows & {(d, u) for d, u, _ in partial}  # only what the crash left undone
    assert summary.utterances == len(audio_manifest) - len(partial)
    meta, _ = cache.read_frames(store, fspec.name, LAYER - 1, 1.0, audio_manifest)
    assert sorted(meta["utt_id"]) == sorted(audio_manifest["utt_id"])  # every utterance exactly once
    stored = pd.concat([pq.read_table(p, columns=["utt_id"]).to_pandas() for p in _shard_files(store)])
    assert len(stored) == len(audio_manifest) and stored["utt_id"].is_unique

    extracted.clear()
    again = cache_frames(audio_manifest, SPEC, store, LAYER, 1.0, shard_seconds=2, progress=False)
    assert again.shards_planned == 0 and not extracted
    # Another crop (or encoder) is another setting: nothing of this one is reused for it.
    assert cache.completed_keys(store, fspec.name, LAYER - 1, 2.0) == set()


def test_undecodable_files_are_rejected_once(audio_manifest, tmp_path):
    store = str(tmp_path / "store")
    broken = audio_manifest.copy()
    broken.loc[0, "sha256"] = "0" * 64  # the file no longer matches its manifest row
    summary = cache_frames(broken, SPEC, store, LAYER, 1.0, progress=False)
    assert summary.rejects == 1 and summary.utterances == len(broken) - 1
    assert cache_frames(broken, SPEC, store, LAYER, 1.0, progress=False).shards_planned == 0
    meta, _ = cache.read_frames(store, frame_spec(SPEC, LAYER, 1.0).name, LAYER - 1, 1.0, broken)
    assert broken.loc[0, "utt_id"] not in set(meta["utt_id"])


def test_g_starts_as_the_encoders_last_layer(audio_manifest):
    """Same input, same output: the copied block on the cached layer's input gives the encoder's next hidden state."""
    embedder = Embedder(load_encoder(SPEC))
    waves = [load_audio(p) for p in audio_manifest["path"][:4]]  # different lengths: padding is masked
    hidden, counts = embedder.hidden_states(waves)
    block = encoder_block(SPEC, LAYER)
    g = LastBlockFeatures(block.module, block.config, projection_dim=None).eval()
    with torch.no_grad():
        out, _valid = g.frames(_nan_padded(hidden[LAYER - 1], counts))
        pooled = g.pooled(_nan_padded(hidden[LAYER - 1], counts))
    for row, count in enumerate(counts.tolist()):
        torch.testing.assert_close(out[row, :count], hidden[LAYER][row, :count], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled.numpy(), embedder.embed(waves)[LAYER], rtol=1e-5, atol=1e-5)
    assert all(p.requires_grad for p in g.block.parameters())  # a trainable copy of a frozen encoder


def _labelled_corpus(folder, n_per_split: int = 16) -> pd.DataFrame:
    """Bona fide = harmonic tones, spoof = broadband noise: a task any working detector separates."""
    rows = []
    for split in ("train", "dev", "eval"):
        for i in range(n_per_split):
            utt = f"{split}{i:02d}"
            seconds = 0.6 + 0.05 * (i % 7)
            if i % 2:
                path = write_tone(folder / f"{utt}.wav", seconds, seed=i)
            else:
                path = str(write_audio(folder / f"{utt}.wav", seconds, seed=i))
            label = BONAFIDE if i % 2 else SPOOF
            rows.append(
                {"utt_id": utt, "split": split, "label": label, "attack": None if i % 2 else "A01", "path": path}
            )
    return finalize("gen", rows, progress=False).manifest


def test_lastblock_fits_and_scores_llrs_on_a_random_weight_encoder(tmp_path):
    manifest = _labelled_corpus(tmp_path)
    store = str(tmp_path / "store")
    setting = EmbeddingSetting(encoder=SPEC.name, layer=LAYER, pooling="mean")
    detector = make_detector(
        "dkl_gp_lastblock", crop_seconds=1.0, max_steps=40, batch_size=8, n_inducing=16, device="cpu", progress=False
    )
    train = labelled_inputs(detector, manifest, store, setting, splits=["train"])
    dev = labelled_inputs(detector, manifest, store, setting, splits=["dev"])
    test = labelled_inputs(detector, manifest, store, setting, splits=["eval"])
    assert train.X.ndim == 3 and train.X.dtype == np.float16
    detector.fit(train.X, train.y, X_dev=dev.X, y_dev=dev.y, **fit_params(detector, setting))

    score = detector.score_llr(test.X)
    assert np.isfinite(score).all()
    is_bona = test.y == BONAFIDE
    assert score[is_bona].mean() > score[~is_bona].mean()  # higher = more bona fide
    assert compute_metrics(score, test.y)["eer"] < 0.25  # better than chance (0.5)
    np.testing.assert_allclose(detector.decision_function(test.X), -score)
    np.testing.assert_allclose(detector.predict_proba(test.X)[:, 1], 1 / (1 + np.exp(score)), rtol=1e-6)
    assert np.all(detector.predict_variance(test.X) > 0)

    ref = save_model(
        str(tmp_path / "models"), "lastblock", detector, {**setting.to_card(), "random_weight_encoder": True}
    )
    loaded, card = load_detector(ref)
    assert card["model_type"] == "dkl_gp_lastblock"
    np.testing.assert_allclose(loaded.score_llr(test.X), score, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="frame-level features"):
        loaded.score_llr(np.zeros((3, train.X.shape[2]), dtype=np.float32))
    with pytest.raises(NotImplementedError, match="does not support few-shot adaptation"):
        loaded.adapt(test.X[:2], test.y[:2])


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_trains_and_scores_the_lastblock_kind(tmp_path):
    """addgp run with a last-block detector: frames cached on first use, trained, scored, reported."""
    corpus = tmp_path / "corpus"
    config = {
        "name": "lastblock",
        "workdir": str(tmp_path / "work"),
        "demo_corpus": {
            "root": str(corpus),
            "seed": 1,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 24, "dev": 12, "eval": 16},
        },
        "datasets": [
            {"name": f"demo_{c}", "adapter": "asvspoof2019_la", "root": str(corpus / f"demo_{c}")}
            for c in ("studio", "phone")
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 20},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {
            "datasets": ["demo_studio"],
            "detectors": [
                {
                    "name": "lastblock",
                    "kind": "dkl_gp_lastblock",
                    "params": {
                        "crop_seconds": 2.0,
                        "max_steps": 20,
                        "batch_size": 8,
                        "n_inducing": 16,
                        "progress": False,
                    },
                }
            ],
        },
    }
    path = tmp_path / "lastblock.yaml"
    path.write_text(yaml.safe_dump(config))
    with prefect_test_harness(server_startup_timeout=120):
        folder = Path(pipeline_flow(str(path), run_id="first"))
    document = json.loads((folder / "metrics.json").read_text())
    assert any("RANDOM-WEIGHT" in w for w in document["warnings"])
    scores = pd.read_parquet(folder / "scores.parquet")
    assert set(scores["detector"]) == {"lastblock"} and set(scores["dataset"]) == {"demo_studio", "demo_phone"}
    assert np.isfinite(scores["score"]).all()
    store = tmp_path / "work" / "embeddings"
    assert _shard_files(str(store))  # the frame cache was filled inside the store


def test_config_checks_the_lastblock_kind_at_load(tmp_path):
    config = yaml.safe_load(Path("configs/lastblock-demo.yaml").read_text())
    config["encoder"]["layers"] = [0, -1]
    config["train"]["layer"] = 0
    config["train"]["detectors"][2]["params"]["crop_seconds"] = -1.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(path, check_paths=False)
    assert f"{path}: train.detectors.2.kind: dkl_gp_lastblock fine-tunes the encoder layer train.layer" in str(
        error.value
    )
    assert (
        f"{path}: train.detectors.2.params: dkl_gp_lastblock parameter 'crop_seconds': Input should be greater than 0"
        in str(error.value)
    )
    assert load_pipeline_config("configs/lastblock-demo.yaml", check_paths=False).train.detectors[2].kind == (
        "dkl_gp_lastblock"
    )


def test_config_refuses_a_lastblock_nightly_champion_at_load(tmp_path):
    # The nightly loop adapts and retrains on pooled embeddings: a frame detector as its champion
    # must stop the config at load, not fail mid-night after ingest, embed and a baseline fit.
    config = yaml.safe_load(Path("configs/lastblock-demo.yaml").read_text())
    config["datasets"].append({"name": "inbox", "adapter": "inbox", "root": str(tmp_path / "inbox")})
    config["nightly"] = {"inbox": "inbox", "detector": "lastblock"}
    path = tmp_path / "nightly.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(path, check_paths=False)
    assert f"{path}: train.detectors.2.kind: nightly.detector 'lastblock' is a dkl_gp_lastblock" in str(error.value)
    config["nightly"]["detector"] = "dkl_gp"
    path.write_text(yaml.safe_dump(config))
    assert load_pipeline_config(path, check_paths=False).nightly.detector == "dkl_gp"
