"""Frame-level features for detectors that fine-tune an encoder layer: fill the frame cache, hand out the layer.

The last-block detector (tasks/train/dkl_gp_lastblock.py) learns g = a copy of transformer layer
L. Running the frozen encoder up to layer L - 1 at every training step would cost the whole
encoder per step, so ``hidden_states[L - 1]`` of every utterance (its first ``crop_s`` seconds,
4 s by default) is computed once into the frame cache (storage/frames.py), planned, keyed and
committed like the embedding store's shards (a re-run extracts only the missing rows). Why the
crop, and how the cache is filled: docs/embedding.md, "Frame cache".
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn
from transformers import Wav2Vec2Config
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    Wav2Vec2EncoderLayer,
    Wav2Vec2EncoderLayerStableLayerNorm,
)

from storage import frames as cache
from storage.embeddings import StaleWriterError, writer_lock
from tasks.embed.audio import DEFAULT_MAX_SECONDS, AudioError, load_audio
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import EncoderSpec
from tasks.embed.loading import load_encoder
from tasks.embed.run import EmbedProgress
from tasks.embed.shards import Shard, plan_shards

DEFAULT_CROP_SECONDS = 4.0
log = logging.getLogger(__name__)


@dataclass
class FrameSummary:
    encoder: str
    hidden_state: int
    crop_s: float | None
    shards_planned: int
    utterances: int
    rejects: int
    audio_s: float
    wall_s: float
    shards_fenced: int = 0


@dataclass
class EncoderBlock:
    """A trainable copy of transformer layer ``layer`` (1-based) of ``encoder``, with the config that builds it."""

    module: nn.Module
    config: Wav2Vec2Config
    encoder: str
    layer: int


def frame_spec(spec: EncoderSpec, layer: int, crop_s: float | None) -> EncoderSpec:
    """The encoder setting of layer ``layer``'s input frames: hidden state ``layer - 1``, no pooling, cropped."""
    if layer < 1:
        raise ValueError(
            f"layer {layer} is the CNN output, not a transformer layer: a last-block detector needs train.layer ≥ 1 "
            "(or a negative index such as -1 for the last layer)"
        )
    return dataclasses.replace(spec, layers=(layer - 1,), pooling=cache.FRAME_POOLING, crop_seconds=crop_s)


def cache_frames(
    manifest: pd.DataFrame,
    spec: EncoderSpec,
    store_root: str,
    layer: int,
    crop_s: float | None = DEFAULT_CROP_SECONDS,
    *,
    shard_seconds: float = 600.0,
    batch_seconds: float | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    progress: bool = True,
) -> FrameSummary:
    """Fill the frame cache with the input frames of transformer ``layer`` (1-based) for every manifest row it lacks.

    ``spec``'s layers are ignored; ``layer`` must be a resolved (non-negative) index.
    """
    started = time.perf_counter()
    fspec = frame_spec(spec, layer, crop_s)
    with writer_lock(store_root) as fence:
        done = cache.completed_keys(store_root, fspec.name, fspec.layers[0], crop_s)
        identity = zip(manifest["dataset"], manifest["utt_id"], manifest["sha256"])
        todo = manifest[[key not in done for key in identity]]
        # No embedding row ever has the frame "pooling", so the planner sees every todo row as missing.
        shards = plan_shards(todo, fspec, store_root, shard_seconds)
        bar = EmbedProgress(
            shards, f"frames {fspec.name} hidden state {fspec.layers[0]}", disable=not (progress and shards)
        )
        embedder = Embedder(load_encoder(fspec)) if shards else None
        results = []
        for shard in shards:
            assert embedder is not None  # loaded whenever there is a shard
            results.append(extract_frame_shard(shard, fspec, store_root, embedder, batch_seconds, fence, max_seconds))
            bar.advance(shard)
        bar.close()
    return FrameSummary(
        encoder=fspec.name,
        hidden_state=fspec.layers[0],
        crop_s=crop_s,
        shards_planned=len(shards),
        utterances=sum(r[0] for r in results),
        rejects=sum(r[1] for r in results),
        audio_s=sum(r[2] for r in results),
        wall_s=time.perf_counter() - started,
        shards_fenced=sum(r[3] for r in results),
    )


def extract_frame_shard(
    shard: Shard,
    fspec: EncoderSpec,
    store_root: str,
    embedder: Embedder,
    batch_seconds: float | None = None,
    fence: str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> tuple[int, int, float, bool]:
    """Decode, encode and write one shard's frames; returns (utterances, rejects, audio seconds, fenced)."""
    location = cache.FrameShardLocation(store_root, fspec.name, fspec.crop_seconds, shard.dataset, shard.key)
    if cache.frame_shard_exists(location):
        return 0, 0, 0.0, False
    frame = shard.frame()
    hidden_state = fspec.layers[0]
    waves: dict[int, np.ndarray] = {}
    reasons: dict[int, str] = {}
    min_samples = embedder.encoder.min_samples()
    for i, (path, sha) in enumerate(zip(frame["path"], frame["sha256"])):
        try:
            wave = load_audio(path, fspec.sample_rate, fspec.crop_seconds, expected_sha256=sha, max_seconds=max_seconds)
            if len(wave) < min_samples:
                raise AudioError(f"too short for the encoder: {len(wave)} samples < receptive field {min_samples}")
            waves[i] = wave
        except AudioError as exc:
            reasons[i] = str(exc)
    kept = sorted(waves)
    states: list[np.ndarray | None] = [None] * len(frame)
    budget = int(fspec.batch_seconds(batch_seconds) * fspec.sample_rate)
    for batch in length_buckets([len(waves[i]) for i in kept], budget):
        indices = [kept[b] for b in batch]
        hidden, counts = embedder.hidden_states([waves[i] for i in indices])
        values = hidden[hidden_state].float().cpu().numpy()
        for j, i in enumerate(indices):
            states[i] = values[j, : int(counts[j])]
    rows = frame[["utt_id", "dataset", "sha256"]].assign(
        encoder=fspec.name,
        random_weights=fspec.random_weights,
        hidden_state=hidden_state,
        crop_s=fspec.crop_seconds,
        n_frames=[0 if s is None else len(s) for s in states],
        dim=embedder.encoder.model.config.hidden_size,
        reason=[reasons.get(i) for i in range(len(frame))],
    )
    try:
        cache.write_frame_shard(location, rows, states, fence=fence)
    except StaleWriterError as exc:
        log.warning("frame shard not committed: %s", exc)
        return 0, 0, 0.0, True
    audio_s = sum(len(w) for w in waves.values()) / fspec.sample_rate
    return len(kept), len(reasons), audio_s, False


def block_class(config: Wav2Vec2Config) -> type[nn.Module]:
    """The transformer layer class of ``config`` (XLS-R's pre-norm "stable layer norm" variant or the post-norm one)."""
    return Wav2Vec2EncoderLayerStableLayerNorm if config.do_stable_layer_norm else Wav2Vec2EncoderLayer


def encoder_block(spec: EncoderSpec, layer: int) -> EncoderBlock:
    """A trainable fp32 copy of transformer ``layer`` (1-based, resolved) of the encoder, on the CPU.

    Random-weight presets give their (seeded) random layer, checkpoints their trained one.
    """
    if spec.variant != "fp32":
        raise ValueError(
            f"encoder variant {spec.variant} cannot seed a trainable layer (its weights are quantised); "
            "use the fp32 variant for a last-block detector"
        )
    loaded = load_encoder(dataclasses.replace(spec, layers=(layer,), device="cpu"))
    model = loaded.model
    if model.config.model_type != "wav2vec2":
        raise ValueError(
            f"encoder {spec.name} is a {model.config.model_type} model; the last-block detector supports "
            "wav2vec2-architecture encoders (wav2vec2, XLS-R)"
        )
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = loaded.num_layers
    module = copy.deepcopy(model.encoder.layers[layer - 1]).requires_grad_(True)
    if type(module) is not block_class(config):
        raise ValueError(f"encoder {spec.name}: layer {layer} is a {type(module).__name__}, not a wav2vec2 layer")
    return EncoderBlock(module=module, config=config, encoder=spec.name, layer=layer)
