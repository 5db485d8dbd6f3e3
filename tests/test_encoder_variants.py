"""Only what is used is run: layer truncation keeps the kept layers' outputs; the int8 variant
is its own encoder identity, and a model refuses to score with another variant's embeddings."""

import functools
import json

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from typer.testing import CliRunner

from flows.cli import app
from storage.embeddings import read_embeddings
from storage.manifests import write_manifest
from tasks.embed.embedder import Embedder
from tasks.embed.encoder import EncoderSpec, EncoderVariantMismatchError, resolve_layers
from tasks.embed.loading import build_random_encoder, load_encoder
from tasks.embed.run import embed_manifest, embed_paths
from tasks.evaluate.score_files import score_files

runner = CliRunner()

TINY = dict(
    hidden_size=32,
    num_hidden_layers=4,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    apply_spec_augment=False,
    vocab_size=32,
)
# (model_type, extra config): wav2vec2 in both layer-norm arrangements ("stable" = XLS-R's:
# a final layer norm after the last layer; the other: a layer norm before the first), and
# the other families truncation claims to handle.
ARCHITECTURES = {
    "wav2vec2-stable": ("wav2vec2", dict(do_stable_layer_norm=True, feat_extract_norm="layer")),
    "wav2vec2-post-norm": ("wav2vec2", dict(do_stable_layer_norm=False, feat_extract_norm="group")),
    "hubert-stable": ("hubert", dict(do_stable_layer_norm=True, feat_extract_norm="layer")),
    "wavlm-post-norm": (
        "wavlm",
        dict(do_stable_layer_norm=False, feat_extract_norm="group", num_buckets=32, max_bucket_distance=64),
    ),
    "data2vec-audio": (
        "data2vec-audio",
        dict(
            feat_extract_norm="layer",
            num_conv_pos_embeddings=5,
            conv_pos_kernel_size=5,
            num_conv_pos_embedding_groups=4,
        ),
    ),
}


@functools.cache
def embedded(folder: str, layers: tuple[int, ...]) -> tuple[int, list[int], dict[int, np.ndarray], nn.Module]:
    """(transformer layers kept, hidden-state indices, pooled outputs on ``waves()``, the model) for one setting."""
    loaded = load_encoder(EncoderSpec(folder, layers=layers, device="cpu"))
    return loaded.kept_layers, loaded.layer_indices(), Embedder(loaded).embed(waves()), loaded.model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A small random checkpoint directory per architecture (loaded like a downloaded one)."""
    folders = {}
    for name, (model_type, extra) in ARCHITECTURES.items():
        torch.manual_seed(0)
        config = AutoConfig.for_model(model_type, **{**TINY, **extra})
        folder = tmp_path_factory.mktemp(name)
        AutoModel.from_config(config).save_pretrained(folder)
        folders[name] = str(folder)
    return folders


def waves(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal(int(16000 * s)).astype(np.float32) * 0.1 for s in (0.5, 1.3, 0.9)[:count]]


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize("layers", [(1,), (2,), (-3,), (0, 2), (3,)])
def test_truncated_encoder_gives_the_full_models_pooled_layers(checkpoints, architecture, layers):
    full_kept, _, expected, _ = embedded(checkpoints[architecture], (0, 1, 2, 3, 4))
    assert full_kept == 4
    kept, wanted, got, model = embedded(checkpoints[architecture], layers)
    assert kept == max(max(wanted), 1) < 4 and len(model.encoder.layers) == kept
    assert sorted(got) == wanted
    for layer in wanted:
        np.testing.assert_allclose(got[layer], expected[layer], rtol=1e-5, atol=1e-5)


def test_stable_layer_norm_is_dropped_only_with_the_last_layer(checkpoints):
    stable = checkpoints["wav2vec2-stable"]
    assert isinstance(
        load_encoder(EncoderSpec(stable, layers=(2,), device="cpu")).model.encoder.layer_norm, torch.nn.Identity
    )
    assert isinstance(
        load_encoder(EncoderSpec(stable, layers=(-1,), device="cpu")).model.encoder.layer_norm, torch.nn.LayerNorm
    )
    # The other arrangement normalises before the first layer: that norm is always needed.
    post = load_encoder(EncoderSpec(checkpoints["wav2vec2-post-norm"], layers=(1,), device="cpu"))
    assert isinstance(post.model.encoder.layer_norm, torch.nn.LayerNorm)


def test_last_layer_runs_the_whole_model_and_matches_the_hidden_state(checkpoints):
    """-1 keeps every layer: the stored last layer is what the untouched model reports."""
    spec = EncoderSpec(checkpoints["wav2vec2-stable"], layers=(-1,), device="cpu")
    loaded = load_encoder(spec)
    assert loaded.kept_layers == 4 and loaded.layer_indices() == [4]
    reference = AutoModel.from_pretrained(checkpoints["wav2vec2-stable"]).eval()
    wave = waves(1)[0]
    with torch.inference_mode():
        normalised = torch.from_numpy((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7))[None]
        hidden = reference(normalised, output_hidden_states=True).hidden_states[4][0].mean(0).numpy()
    np.testing.assert_allclose(Embedder(loaded).embed([wave])[4][0], hidden, rtol=1e-5, atol=1e-5)


def test_store_rows_of_a_truncated_run_equal_the_full_runs(audio_manifest, tmp_path):
    """Identical stored rows: layer 1 alone (one layer run) against layers 1 and 2 (all run)."""
    alone, both = str(tmp_path / "alone"), str(tmp_path / "both")
    embed_manifest(audio_manifest, EncoderSpec("tiny-random", layers=(1,)), alone, progress=False)
    embed_manifest(audio_manifest, EncoderSpec("tiny-random", layers=(1, 2)), both, progress=False)
    meta_a, X_a = read_embeddings(alone, layer=1)
    meta_b, X_b = read_embeddings(both, layer=1)
    order_a, order_b = np.argsort(meta_a["utt_id"].to_numpy()), np.argsort(meta_b["utt_id"].to_numpy())
    assert list(meta_a["utt_id"].to_numpy()[order_a]) == list(meta_b["utt_id"].to_numpy()[order_b])
    np.testing.assert_allclose(X_a[order_a], X_b[order_b], rtol=1e-5, atol=1e-6)


def test_variant_is_part_of_the_encoder_identity():
    spec = EncoderSpec("facebook/wav2vec2-xls-r-300m", revision="abc123", variant="int8")
    assert spec.name == "facebook/wav2vec2-xls-r-300m@abc123+int8"
    assert EncoderSpec.from_name(spec.name) == EncoderSpec(
        "facebook/wav2vec2-xls-r-300m", revision="abc123", variant="int8"
    )
    assert EncoderSpec.from_name("tiny-random") == EncoderSpec("tiny-random")
    assert EncoderSpec.from_name("tiny-random+int8").random_weights
    assert spec.run_key() != EncoderSpec("facebook/wav2vec2-xls-r-300m", revision="abc123").run_key()
    with pytest.raises(ValueError, match="int4"):
        EncoderSpec("tiny-random", variant="int4")
    # int8 has CPU kernels only: "auto" picks the CPU for it, an explicit GPU is refused.
    assert EncoderSpec("tiny-random", variant="int8").resolved_device() == "cpu"
    with pytest.raises(ValueError, match="CPU only"):
        load_encoder(EncoderSpec("tiny-random", variant="int8", device="cuda"))


def test_int8_encoder_quantises_linear_layers_and_stays_close():
    fp32 = load_encoder(EncoderSpec("tiny-random", layers=(2,)))
    int8 = load_encoder(EncoderSpec("tiny-random", layers=(2,), variant="int8"))
    linear = [m for m in int8.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert linear and not any(type(m) is torch.nn.Linear for m in int8.model.modules())
    batch = waves()
    a, b = Embedder(fp32).embed(batch)[2], Embedder(int8).embed(batch)[2]
    assert not np.allclose(a, b, atol=1e-6)  # it is another encoder…
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99  # …whose embeddings point the same way


def test_int8_rows_are_stored_apart_from_fp32_rows(audio_manifest, tmp_path):
    store = str(tmp_path / "store")
    embed_manifest(audio_manifest.head(4), EncoderSpec("tiny-random", layers=(1,)), store, progress=False)
    summary = embed_manifest(
        audio_manifest.head(4), EncoderSpec("tiny-random", layers=(1,), variant="int8"), store, progress=False
    )
    assert summary.utterances_embedded == 4 and summary.encoder == "tiny-random+int8"  # fp32 rows do not count as done
    fp32_meta, fp32 = read_embeddings(store, encoder="tiny-random", layer=1)
    int8_meta, int8 = read_embeddings(store, encoder="tiny-random+int8", layer=1)
    assert len(fp32_meta) == len(int8_meta) == 4 and not np.allclose(fp32, int8, atol=1e-7)
    with pytest.raises(ValueError, match="mixes encoder settings"):
        read_embeddings(store, layer=1)  # a reader must say which variant it wants


def test_embed_cli_refuses_an_unknown_variant(tmp_path):
    result = runner.invoke(
        app,
        [
            "embed",
            str(tmp_path / "m.parquet"),
            "--encoder",
            "tiny-random",
            "--variant",
            "int4",
            "--store",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "--variant" in result.output


def test_config_selects_the_variant_and_refuses_int8_on_cuda():
    from pydantic import ValidationError

    from addgp.config import EncoderConfig
    from tasks.embed.encoder import spec_from_config

    assert spec_from_config(EncoderConfig(id="tiny-random", variant="int8")).name == "tiny-random+int8"
    with pytest.raises(ValidationError, match="CPU only"):
        EncoderConfig(id="tiny-random", variant="int8", device="cuda")


@pytest.fixture
def fp32_model(tmp_path, audio_manifest):
    """A logistic regression trained through the CLI on fp32 layer-1 embeddings."""
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest.assign(split=["train"] * 8 + ["dev"] * 4), manifest)
    store, models = tmp_path / "store", tmp_path / "models"
    for variant in ("fp32", "int8"):
        embedded = runner.invoke(
            app,
            [
                "embed",
                str(manifest),
                "--encoder",
                "tiny-random",
                "--layers",
                "1",
                "--variant",
                variant,
                "--store",
                str(store),
            ],
        )
        assert embedded.exit_code == 0, embedded.output
    for name, encoder in (("lr", "tiny-random"), ("lr8", "tiny-random+int8")):
        result = runner.invoke(
            app,
            [
                "train",
                str(manifest),
                "--store",
                str(store),
                "--models",
                str(models),
                "--name",
                name,
                "--encoder",
                encoder,
                "--layer",
                "1",
                "--datasets",
                "alpha,beta",
            ],
        )
        assert result.exit_code == 0, result.output
    return models


def test_score_refuses_embeddings_of_another_variant(fp32_model, audio_manifest):
    files = list(audio_manifest["path"][:2])
    refused = runner.invoke(app, ["score", *files, "--model", str(fp32_model / "lr"), "--encoder-variant", "int8"])
    assert refused.exit_code == 5
    assert "fp32" in refused.output and "int8" in refused.output and "--encoder-variant fp32" in refused.output
    with pytest.raises(EncoderVariantMismatchError):
        score_files(files, str(fp32_model / "lr8"), variant="fp32")
    unknown = runner.invoke(app, ["score", *files, "--model", str(fp32_model / "lr"), "--encoder-variant", "int4"])
    assert unknown.exit_code == 2 and "int4" in unknown.output
    # Asking for the model's own variant (or nothing) scores.
    for model, variant in (("lr", "fp32"), ("lr8", "int8"), ("lr8", None)):
        args = ["score", *files, "--model", str(fp32_model / model), "--json"]
        ok = runner.invoke(app, args + (["--encoder-variant", variant] if variant else []))
        assert ok.exit_code == 0, ok.output
        assert all(json.loads(line)["error"] is None for line in ok.stdout.strip().split("\n"))


def test_int8_model_card_records_the_variant_and_scores_with_it(fp32_model, audio_manifest):
    """The card's encoder names the variant; scoring rebuilds that variant and reproduces the stored rows' scores."""
    card = json.loads((fp32_model / "lr8" / "v1" / "model_card.json").read_text())
    assert card["encoder"] == "tiny-random+int8" and card["random_weight_encoder"] is True
    files = list(audio_manifest["path"][:3])
    int8, fp32 = score_files(files, str(fp32_model / "lr8")), score_files(files, str(fp32_model / "lr"))
    assert not np.allclose(int8["score"].to_numpy(float), fp32["score"].to_numpy(float), atol=1e-7)


def test_embed_paths_runs_only_to_the_requested_layer(audio_manifest):
    spec = resolve_layers(EncoderSpec("tiny-random", layers=(1,)))
    embedder = Embedder(load_encoder(spec))
    assert embedder.encoder.kept_layers == 1
    _, X, _ = embed_paths(list(audio_manifest["path"][:3]), spec, embedder=embedder)
    full = Embedder(load_encoder(EncoderSpec("tiny-random", layers=(1, 2))))
    _, X_full, _ = embed_paths(list(audio_manifest["path"][:3]), spec, embedder=full)
    np.testing.assert_allclose(X, X_full, rtol=1e-5, atol=1e-6)
    assert build_random_encoder("tiny-random").config.num_hidden_layers == 2  # presets untouched by truncation
