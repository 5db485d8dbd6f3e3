"""The frozen speech encoder: wav2vec2-family checkpoints, or random-weight presets.

``EncoderSpec`` says what to run (checkpoint, layers, pooling, crop); ``load_encoder``
builds it. Real checkpoints come from a local directory or the Hugging Face hub (pinned
revision recorded); presets build the real XLS-R architectures from their configs with
random weights — for tests and speed benchmarks only, and every output made with one
carries ``random_weights = True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, Wav2Vec2Config, Wav2Vec2Model

RANDOM_WEIGHT_WARNING = (
    "RANDOM-WEIGHT ENCODER: embeddings come from an untrained network built from its config; "
    "results measure the pipeline, not a deepfake detector"
)

# Real XLS-R shapes (facebook/wav2vec2-xls-r-{300m,1b,2b} configs), and a tiny one for tests.
_XLSR_COMMON = dict(
    conv_dim=(512,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=True,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    apply_spec_augment=False,
    vocab_size=32,
)
RANDOM_PRESETS: dict[str, dict] = {
    "tiny-random": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        conv_dim=(32,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        apply_spec_augment=False,
        vocab_size=32,
    ),
    "xlsr-300m-random": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, **_XLSR_COMMON),
    "xlsr-1b-random": dict(hidden_size=1280, num_hidden_layers=48, num_attention_heads=16, intermediate_size=5120, **_XLSR_COMMON),
    "xlsr-2b-random": dict(hidden_size=1920, num_hidden_layers=48, num_attention_heads=16, intermediate_size=7680, **_XLSR_COMMON),
}
PRESET_SEED = 0


class EncoderUnavailableError(RuntimeError):
    """The encoder's weights are not on this machine and cannot be fetched."""


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that determines an embedding: part of every store row's key."""

    id: str
    revision: str | None = None
    layers: tuple[int, ...] = (-1,)
    pooling: str = "mean"
    crop_seconds: float | None = None
    storage_dtype: str = "float32"
    device: str = "auto"
    sample_rate: int = field(default=16000)

    @property
    def random_weights(self) -> bool:
        return self.id in RANDOM_PRESETS

    @property
    def name(self) -> str:
        """The ``encoder`` column: id plus pinned revision when there is one."""
        return f"{self.id}@{self.revision}" if self.revision else self.id

    def run_key(self) -> str:
        """Short stable hash of what determines the numbers; device and storage dtype do not count."""
        text = f"{self.name}|{self.pooling}|{self.crop_seconds}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


@dataclass
class LoadedEncoder:
    spec: EncoderSpec
    model: Wav2Vec2Model
    revision: str | None
    device: str
    num_layers: int  # hidden_states has num_layers + 1 entries

    def layer_indices(self) -> list[int]:
        """The requested layers as sorted non-negative indices into hidden_states."""
        return _resolve(self.spec, self.num_layers)

    def min_samples(self) -> int:
        """Shortest input giving one output frame (the CNN's receptive field)."""
        length = 1
        for kernel, stride in reversed(list(zip(self.model.config.conv_kernel, self.model.config.conv_stride))):
            length = (length - 1) * stride + kernel
        return length


def build_random_encoder(preset: str) -> Wav2Vec2Model:
    """The preset's architecture with weights drawn from a fixed seed (identical on every worker)."""
    config = Wav2Vec2Config(**RANDOM_PRESETS[preset])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(PRESET_SEED)
    try:
        model = Wav2Vec2Model(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def _pretrained_config(spec: EncoderSpec):
    """The checkpoint's config (a few KB): from the local directory, the HF cache or the hub."""
    source = Path(os.path.expanduser(spec.id))
    if source.exists():
        if not (source / "config.json").is_file():
            raise EncoderUnavailableError(
                f"encoder directory {source} has no config.json; it should hold a Hugging Face checkpoint "
                "(config.json + model.safetensors), e.g. from `huggingface-cli download facebook/wav2vec2-xls-r-300m --local-dir DIR`"
            )
        return AutoConfig.from_pretrained(source)
    try:
        return AutoConfig.from_pretrained(spec.id, revision=spec.revision)
    except (OSError, ValueError) as exc:
        raise _unavailable(spec, exc) from None


def _unavailable(spec: EncoderSpec, exc: Exception) -> EncoderUnavailableError:
    return EncoderUnavailableError(
        f"cannot load encoder '{spec.id}' (revision {spec.revision or 'main'}): no local copy and the Hugging Face hub "
        f"is not reachable ({type(exc).__name__}). On a machine with network run "
        f"`huggingface-cli download {spec.id} --local-dir /models/{spec.id.split('/')[-1]}` and pass that directory "
        "as --encoder (or encoder.id in the config), or pre-fill HF_HOME's cache. "
        f"For tests and speed runs use a random-weight preset: {', '.join(RANDOM_PRESETS)}."
    )


def resolve_layers(spec: EncoderSpec) -> EncoderSpec:
    """The spec with layers as sorted, non-negative indices into hidden_states (-1 → last)."""
    if spec.random_weights:
        num_layers = RANDOM_PRESETS[spec.id]["num_hidden_layers"]
    else:
        num_layers = _pretrained_config(spec).num_hidden_layers
    return dataclasses.replace(spec, layers=tuple(_resolve(spec, num_layers)))


def resolve_layer(spec: EncoderSpec, layer: int) -> int:
    """One layer (e.g. ``train.layer: -1``) as its non-negative index for this encoder."""
    return resolve_layers(dataclasses.replace(spec, layers=(layer,))).layers[0]


def _resolve(spec: EncoderSpec, num_layers: int) -> list[int]:
    total = num_layers + 1  # hidden_states: CNN features after projection, then one per transformer layer
    resolved = set()
    for layer in spec.layers:
        index = layer if layer >= 0 else total + layer
        if not 0 <= index < total:
            raise ValueError(f"layer {layer} out of range for {spec.id}: it has hidden states 0..{total - 1}")
        resolved.add(index)
    return sorted(resolved)


def _load_pretrained(spec: EncoderSpec) -> tuple[torch.nn.Module, str | None]:
    config = _pretrained_config(spec)
    source = Path(os.path.expanduser(spec.id))
    try:
        if source.exists():
            return AutoModel.from_pretrained(source, config=config), spec.revision
        model = AutoModel.from_pretrained(spec.id, revision=spec.revision, config=config)
    except (OSError, ValueError) as exc:
        raise _unavailable(spec, exc) from None
    return model, getattr(config, "_commit_hash", None) or spec.revision


def load_encoder(spec: EncoderSpec) -> LoadedEncoder:
    """Build or load the encoder in eval mode on the spec's device, gradients off."""
    if spec.random_weights:
        model, revision = build_random_encoder(spec.id), None
    else:
        model, revision = _load_pretrained(spec)
    if not hasattr(model.config, "conv_kernel"):
        raise EncoderUnavailableError(f"encoder '{spec.id}' is a {type(model).__name__}, not a wav2vec2-family model")
    device = spec.resolved_device()
    model = model.to(device).eval().requires_grad_(False)
    return LoadedEncoder(spec=spec, model=model, revision=revision, device=device, num_layers=model.config.num_hidden_layers)


def spec_from_config(config) -> EncoderSpec:
    """EncoderSpec from the validated ``encoder:`` section of a pipeline config."""
    return EncoderSpec(
        id=config.id,
        revision=config.revision,
        layers=tuple(config.layers),
        pooling=config.pooling,
        crop_seconds=config.crop_seconds,
        storage_dtype=config.storage_dtype,
        device=config.device,
    )
