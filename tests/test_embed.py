import hashlib

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import soundfile as sf
import torch
from helpers import write_tone
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from storage.embeddings import read_embeddings, read_rejects
from tasks.embed import shards as shards_module
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import RANDOM_PRESETS, EncoderSpec, EncoderUnavailableError
from tasks.embed.loading import load_encoder
from tasks.embed.run import embed_manifest
from tasks.ingest.common import finalize

SPEC = EncoderSpec("tiny-random", layers=(0, -1), pooling="mean")


def reference_embedding(path: str, layer: int, pooling: str = "mean") -> np.ndarray:
    """Independent computation: HF feature extractor + a freshly built model, one file, no padding."""
    wave, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    inputs = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)(
        wave, sampling_rate=16000, return_tensors="pt"
    )
    torch.manual_seed(0)
    model = Wav2Vec2Model(Wav2Vec2Config(**RANDOM_PRESETS["tiny-random"])).eval()
    with torch.no_grad():
        hidden = model(inputs.input_values, output_hidden_states=True).hidden_states[layer][0]
    if pooling == "mean":
        return hidden.mean(0).numpy()
    return np.concatenate([hidden.mean(0).numpy(), hidden.std(0, unbiased=False).numpy()])


def test_store_matches_independent_forward_and_masked_mean(audio_manifest, tmp_path):
    store = str(tmp_path / "store")
    summary = embed_manifest(audio_manifest, SPEC, store, batch_seconds=6, shard_seconds=3, progress=False)
    assert summary.utterances_embedded == len(audio_manifest) and summary.rejects == 0
    assert summary.random_weights and "RANDOM-WEIGHT" in summary.warnings[0]
    for layer in (0, 2):
        meta, X = read_embeddings(store, layer=layer)
        assert meta["random_weights"].all()
        by_id = dict(zip(meta["utt_id"], X))
        for _, row in audio_manifest.iterrows():
            np.testing.assert_allclose(
                by_id[row["utt_id"]], reference_embedding(row["path"], layer), rtol=1e-4, atol=1e-4
            )


def test_mean_std_pooling_matches_reference(audio_manifest, tmp_path):
    spec = EncoderSpec("tiny-random", layers=(-1,), pooling="mean+std")
    store = str(tmp_path / "store")
    embed_manifest(audio_manifest.head(4), spec, store, batch_seconds=4, progress=False)
    meta, X = read_embeddings(store)
    assert X.shape[1] == 2 * RANDOM_PRESETS["tiny-random"]["hidden_size"]
    row = audio_manifest.iloc[3]
    got = X[list(meta["utt_id"]).index(row["utt_id"])]
    np.testing.assert_allclose(got, reference_embedding(row["path"], -1, "mean+std"), rtol=1e-3, atol=1e-4)


def test_batched_equals_unbatched(audio_manifest):
    embedder = Embedder(load_encoder(SPEC))
    from tasks.embed.audio import load_audio

    waves = [load_audio(p) for p in audio_manifest["path"]]
    batched = embedder.embed(waves)
    for i, wave in enumerate(waves):
        single = embedder.embed([wave])
        for layer in embedder.layers:
            np.testing.assert_allclose(batched[layer][i], single[layer][0], rtol=1e-4, atol=1e-5)


def test_length_buckets_respect_budget_and_cover_every_index():
    lengths = [5, 100, 7, 60, 61, 3, 200, 20]
    batches = length_buckets(lengths, 130)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 130


def test_rerun_adds_nothing_and_new_rows_only_are_embedded(audio_manifest, tmp_path):
    store = str(tmp_path / "store")
    first_part = audio_manifest.iloc[:7]
    embed_manifest(first_part, SPEC, store, batch_seconds=4, shard_seconds=2, progress=False)
    again = embed_manifest(first_part, SPEC, store, batch_seconds=4, shard_seconds=2, progress=False)
    assert again.shards_planned == 0 and again.utterances_embedded == 0
    grown = embed_manifest(audio_manifest, SPEC, store, batch_seconds=4, shard_seconds=2, progress=False)
    assert grown.utterances_embedded == len(audio_manifest) - 7
    table = ds.dataset(store).to_table().to_pandas()
    assert len(table) == 2 * len(audio_manifest)  # two layers, each row exactly once
    assert not table.duplicated(subset=["dataset", "utt_id", "layer"]).any()


def test_run_killed_midway_resumes_to_exactly_once(audio_manifest, tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    real = shards_module.embed_shard
    calls = {"n": 0}

    def dies_on_third_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr("tasks.embed.run.embed_shard", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        embed_manifest(audio_manifest, SPEC, store, batch_seconds=4, shard_seconds=1.5, progress=False)
    partial = ds.dataset(store).count_rows()
    assert 0 < partial < 2 * len(audio_manifest)
    monkeypatch.setattr("tasks.embed.run.embed_shard", real)
    resumed = embed_manifest(audio_manifest, SPEC, store, batch_seconds=4, shard_seconds=1.5, progress=False)
    assert resumed.utterances_embedded == len(audio_manifest) - partial // 2
    table = ds.dataset(store).to_table().to_pandas()
    assert len(table) == 2 * len(audio_manifest)
    assert not table.duplicated(subset=["dataset", "utt_id", "layer"]).any()
    assert not list(tmp_path.rglob(".tmp-*"))


def test_bad_inputs_become_rejects_and_the_rest_continues(audio_manifest, tmp_path):
    good = audio_manifest.iloc[:3]
    short = write_tone(tmp_path / "short.wav", 0.01)
    nan_path = tmp_path / "nan.wav"
    wave = np.zeros(8000, dtype=np.float32)
    wave[100] = np.nan
    sf.write(str(nan_path), wave, 16000, subtype="FLOAT")
    corrupt = tmp_path / "corrupt.flac"
    bad_rows = finalize(
        "alpha",
        [
            {"utt_id": "short", "split": "train", "label": "spoof", "attack": None, "speaker": None, "path": short},
            {
                "utt_id": "nan",
                "split": "train",
                "label": "spoof",
                "attack": None,
                "speaker": None,
                "path": str(nan_path),
            },
        ],
        progress=False,
    ).manifest
    gone = write_tone(tmp_path / "gone.flac", 1.0)
    vanished = finalize(
        "alpha",
        [{"utt_id": "gone", "split": "train", "label": "spoof", "attack": None, "speaker": None, "path": gone}],
        progress=False,
    ).manifest
    gone_bytes = (tmp_path / "gone.flac").read_bytes()
    (tmp_path / "gone.flac").unlink()  # deleted between ingest and embed
    corrupt.write_bytes(b"fLaC" + b"\x00" * 50)  # a header and nothing decodable
    # its manifest hash matches its bytes: the decode failure, not the hash check, must reject it
    broken = vanished.assign(
        utt_id="corrupt", path=str(corrupt), sha256=hashlib.sha256(corrupt.read_bytes()).hexdigest()
    )
    manifest = pd.concat([good, bad_rows, vanished, broken], ignore_index=True)
    store = str(tmp_path / "store")
    summary = embed_manifest(manifest, SPEC, store, progress=False)
    assert summary.utterances_embedded == 3 and summary.rejects == 4
    table = read_rejects(store).set_index("utt_id")
    rejects = table["reason"]
    assert "too short" in rejects["short"]
    assert "NaN" in rejects["nan"]
    assert rejects["gone"] == "audio file missing"
    assert "decode" in rejects["corrupt"]
    assert table["kind"].to_dict() == {
        "short": "permanent",
        "nan": "permanent",
        "gone": "transient",
        "corrupt": "permanent",
    }
    assert summary.rejects_by_dataset["alpha"]["transient"] == 1
    assert summary.rejects_by_dataset["alpha"]["permanent"] == 3
    # Permanent rejects count as done: a re-run does not retry them every night. The missing
    # file is tried again on every run (the same shard key each time) until it is there.
    for _ in range(2):
        again = embed_manifest(manifest, SPEC, store, progress=False)
        assert again.shards_planned == 1 and again.rejects == 1 and again.utterances_embedded == 0
    (tmp_path / "gone.flac").write_bytes(gone_bytes)
    back = embed_manifest(manifest, SPEC, store, progress=False)
    assert back.shards_planned == 1 and back.utterances_embedded == 1 and back.rejects == 0
    assert back.rejects_by_dataset["alpha"] == {**back.rejects_by_dataset["alpha"], "rejected": 3, "transient": 0}
    assert embed_manifest(manifest, SPEC, store, progress=False).shards_planned == 0
    rows = ds.dataset(store).to_table(columns=["dataset", "layer", "utt_id"]).to_pandas()
    assert set(rows.groupby(["dataset", "layer"]).size()) == {4}


def test_float16_storage_and_filtered_reads(audio_manifest, tmp_path):
    spec = EncoderSpec("tiny-random", layers=(0, 1, 2), storage_dtype="float16")
    store = str(tmp_path / "store")
    embed_manifest(audio_manifest, spec, store, progress=False)
    schema = ds.dataset(store).schema
    assert str(schema.field("embedding").type.value_type) == "halffloat"
    meta, X = read_embeddings(store, layer=1, datasets=["beta"])
    assert set(meta["dataset"]) == {"beta"} and set(meta["layer"]) == {1}
    assert X.dtype == np.float32 and len(X) == (audio_manifest["dataset"] == "beta").sum()


def test_offline_hub_id_gives_a_clear_error():
    with pytest.raises(EncoderUnavailableError) as error:
        load_encoder(EncoderSpec("facebook/wav2vec2-xls-r-300m"))
    message = str(error.value)
    assert "facebook/wav2vec2-xls-r-300m" in message and "--local-dir" in message and "tiny-random" in message


def test_local_directory_without_config_is_refused(tmp_path):
    with pytest.raises(EncoderUnavailableError, match=r"no config\.json"):
        load_encoder(EncoderSpec(str(tmp_path)))


def test_local_checkpoint_directory_loads(tmp_path, audio_manifest):
    """A checkpoint saved with save_pretrained (what users download) is loaded from its directory."""
    from tasks.embed.loading import build_random_encoder

    build_random_encoder("tiny-random").save_pretrained(tmp_path / "ckpt")
    store = str(tmp_path / "store")
    spec = EncoderSpec(str(tmp_path / "ckpt"), layers=(-1,))
    embed_manifest(audio_manifest.head(2), spec, store, progress=False)
    meta, X = read_embeddings(store)
    assert not meta["random_weights"].any()  # a user checkpoint is not flagged as a random preset
    row = audio_manifest.iloc[0]
    np.testing.assert_allclose(
        X[list(meta["utt_id"]).index(row["utt_id"])], reference_embedding(row["path"], -1), rtol=1e-4, atol=1e-4
    )
