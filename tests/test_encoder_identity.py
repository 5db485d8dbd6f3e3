"""A local checkpoint folder is identified by a digest of its config and weights, not by its path."""

from __future__ import annotations

import shutil

import pytest
import safetensors.torch

import tasks.embed.encoder as encoder_module
from storage.embeddings import read_embeddings
from tasks.embed.encoder import EncoderSpec, EncoderUnavailableError, checkpoint_digest, spec_of_card_encoder
from tasks.embed.loading import build_random_encoder
from tasks.embed.run import embed_manifest


@pytest.fixture(autouse=True)
def digest_cache(tmp_path, monkeypatch):
    """A cache of this test's own, and no digest remembered from another test."""
    monkeypatch.setenv(encoder_module.DIGEST_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(encoder_module, "_DIGESTS", {})
    return tmp_path / "cache"


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "site-a" / "xlsr"
    build_random_encoder("tiny-random").save_pretrained(folder)
    return folder


def test_a_copied_checkpoint_keeps_its_identity_and_reuses_the_embeddings(checkpoint, tmp_path, audio_manifest):
    copy = tmp_path / "site-b" / "elsewhere"
    shutil.copytree(checkpoint, copy)
    original, moved = EncoderSpec(str(checkpoint)), EncoderSpec(str(copy))
    assert original.name == moved.name
    assert original.name.startswith("local-wav2vec2@sha256-") and str(tmp_path) not in original.name
    store = str(tmp_path / "store")
    first = embed_manifest(audio_manifest.head(3), original, store, progress=False)
    again = embed_manifest(audio_manifest.head(3), moved, store, progress=False)
    assert (first.utterances_embedded, again.utterances_embedded, again.shards_planned) == (3, 0, 0)
    # A model card written when local checkpoints were named by their path finds no rows, and is told why.
    with pytest.raises(ValueError, match="folder path: the identity local checkpoints had before"):
        read_embeddings(store, encoder=str(checkpoint))


def test_changing_one_weight_is_a_new_encoder_and_embeds_again(checkpoint, tmp_path, audio_manifest):
    store = str(tmp_path / "store")
    before = EncoderSpec(str(checkpoint)).name  # the name is the folder's identity now
    embed_manifest(audio_manifest.head(2), EncoderSpec(str(checkpoint)), store, progress=False)
    weights = checkpoint / "model.safetensors"
    tensors = safetensors.torch.load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1e-3
    safetensors.torch.save_file(tensors, weights, metadata={"format": "pt"})
    after = EncoderSpec(str(checkpoint))
    assert after.name != before
    assert embed_manifest(audio_manifest.head(2), after, store, progress=False).utterances_embedded == 2


def test_the_digest_is_cached_by_size_and_time_not_read_again(checkpoint, digest_cache, monkeypatch):
    monkeypatch.setattr(encoder_module, "RACY_NS", 0)  # the checkpoint was just written: cache it all the same
    digest = checkpoint_digest(checkpoint)
    assert (digest_cache / "checkpoint-digests.json").is_file()
    monkeypatch.setattr(encoder_module, "_DIGESTS", {})  # a new process: only the cache file is left

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached file was hashed again")

    monkeypatch.setattr(encoder_module.hashlib, "file_digest", no_reading)
    assert checkpoint_digest(checkpoint) == digest


def test_a_card_encoder_is_found_through_its_recorded_source_and_checked(checkpoint, tmp_path):
    name = EncoderSpec(str(checkpoint)).name
    spec = spec_of_card_encoder(name, str(checkpoint), layers=(1,))
    assert spec.id == str(checkpoint) and spec.name == name and spec.layers == (1,)
    with pytest.raises(EncoderUnavailableError, match="not on this machine"):
        spec_of_card_encoder(name, str(tmp_path / "gone"))
    other = tmp_path / "other"
    build_random_encoder("tiny-random").save_pretrained(other)
    (other / "config.json").write_text(
        (other / "config.json").read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 1')
    )
    with pytest.raises(EncoderUnavailableError, match="other weights or config"):
        spec_of_card_encoder(name, str(other))
    assert spec_of_card_encoder("tiny-random", None).id == "tiny-random"  # presets and hub ids as before


def test_only_path_identities_get_the_identity_change_hint():
    """The nightly challenger and the store readers explain missing rows of a path-named (pre-digest) encoder."""
    from storage.embeddings import path_identity_hint

    assert "folder path" in path_identity_hint("/models/xlsr") and "retrain" in path_identity_hint("~/xlsr")
    assert path_identity_hint("facebook/wav2vec2-xls-r-300m") == path_identity_hint(None) == ""
