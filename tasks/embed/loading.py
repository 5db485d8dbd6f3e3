"""Loading the frozen speech encoder an ``EncoderSpec`` names (tasks/embed/encoder.py: what it is).

Only what is used is run: the loaded model keeps the transformer layers up to the deepest
requested one (the encoder is > 90 % of a run's time, and middle layers are the ones that
generalise best), and the ``int8`` variant quantises its linear layers for CPU scoring.
Random-weight presets are built from their configs with a fixed seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn
from transformers import AutoModel, Wav2Vec2Config, Wav2Vec2Model

from tasks.embed.encoder import (
    PRESET_SEED,
    RANDOM_PRESETS,
    EncoderSpec,
    EncoderUnavailableError,
    layer_indices,
    pretrained_config,
    unavailable_error,
)

# Architectures whose encoder is `pos_conv → [layer_norm] → layers → [final layer_norm]` with
# hidden_states[i] the output of layer i, so dropping the layers after the deepest one needed
# leaves the kept ones untouched (checked against the full model in tests/test_encoder_variants.py).
# Others (conformer, SEW, …) run whole.
TRUNCATABLE_MODEL_TYPES = frozenset({"wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat"})
# Attention kernel: PyTorch's fused scaled-dot-product attention. On CUDA it is the fast path
# (flash / memory-efficient kernels under bf16); on CPU it measured the same CPU time as the
# eager matmul-softmax-matmul on 2–8 s clips (docs/benchmarks.md), so one choice serves both. Checkpoints get the
# same from transformers' default (SDPA wherever the architecture supports it, eager elsewhere).
ATTENTION = "sdpa"


@dataclass
class LoadedEncoder:
    spec: EncoderSpec
    model: Wav2Vec2Model
    revision: str | None
    device: str
    num_layers: int  # the checkpoint's transformer layers; its hidden_states would have num_layers + 1 entries
    kept_layers: int  # transformer layers this model still runs (the deepest requested layer, at least 1)

    def layer_indices(self) -> list[int]:
        """The requested layers as sorted non-negative indices into hidden_states."""
        return layer_indices(self.spec, self.num_layers)

    def min_samples(self) -> int:
        """Shortest input giving one output frame (the CNN's receptive field)."""
        length = 1
        for kernel, stride in reversed(list(zip(self.model.config.conv_kernel, self.model.config.conv_stride))):
            length = (length - 1) * stride + kernel
        return length


def build_random_encoder(preset: str) -> Wav2Vec2Model:
    """The preset's architecture with weights drawn from a fixed seed (identical on every worker)."""
    # transformers 5 configs take attn_implementation through **kwargs, which their typed
    # (dataclass_transform) signature leaves out.
    config = Wav2Vec2Config(**RANDOM_PRESETS[preset], attn_implementation=ATTENTION)  # type: ignore[call-arg]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(PRESET_SEED)
    try:
        model = Wav2Vec2Model(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def _load_pretrained(spec: EncoderSpec) -> tuple[Wav2Vec2Model, str | None]:
    """A wav2vec2-family checkpoint (wav2vec2, HuBERT, WavLM, …: ``load_encoder`` checks), used
    through Wav2Vec2Model's interface like ``LoadedEncoder.model``."""
    config = pretrained_config(spec)
    source = Path(os.path.expanduser(spec.id))
    try:
        if source.exists():
            return AutoModel.from_pretrained(source, config=config), spec.revision
        model = AutoModel.from_pretrained(spec.id, revision=spec.revision, config=config)
    except (OSError, ValueError) as exc:
        raise unavailable_error(spec, exc) from None
    return model, getattr(config, "_commit_hash", None) or spec.revision


def load_encoder(spec: EncoderSpec) -> LoadedEncoder:
    """Build or load the encoder in eval mode on the spec's device, gradients off.

    The model keeps only the transformer layers up to the deepest of ``spec.layers``, and the
    ``int8`` variant has its linear layers quantised.
    """
    device = spec.resolved_device()
    if spec.variant == "int8" and device != "cpu":
        raise ValueError(
            f"encoder variant int8 runs on CPU only (dynamic quantisation has no {device} kernels); "
            "set encoder.device to cpu or auto, or use variant fp32 on the GPU"
        )
    if spec.random_weights:
        model, revision = build_random_encoder(spec.id), None
    else:
        model, revision = _load_pretrained(spec)
    if not hasattr(model.config, "conv_kernel"):
        raise EncoderUnavailableError(f"encoder '{spec.id}' is a {type(model).__name__}, not a wav2vec2-family model")
    num_layers = model.config.num_hidden_layers
    kept = truncate_encoder(model, max(layer_indices(spec, num_layers)))
    if spec.variant == "int8":
        model = quantize_int8(model)
    # PreTrainedModel.to is wrapped by functools.wraps, whose typeshed type does not bind self.
    model = model.to(device).eval().requires_grad_(False)  # type: ignore[arg-type]
    return LoadedEncoder(
        spec=spec, model=model, revision=revision, device=device, num_layers=num_layers, kept_layers=kept
    )


def truncate_encoder(model: Wav2Vec2Model, deepest: int) -> int:
    """Drop the transformer layers after ``deepest`` (a hidden_states index); returns the layers kept.

    hidden_states[i] is the output of layer i (0: the projected CNN features entering layer 1),
    so layers 1..deepest give hidden_states[0..deepest] unchanged. One layer stays at least: the
    hidden states are recorded around the layers. The "stable layer norm" variant (XLS-R) ends
    with a layer norm after the last layer; transformers 5 leaves it out of hidden_states and
    transformers 4 folds it into the last entry, so once the last layer is gone it is dropped
    too (it would otherwise land on hidden_states[deepest] under transformers 4). The other
    variant's layer norm comes before the layers and stays.
    """
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if model.config.model_type not in TRUNCATABLE_MODEL_TYPES or not isinstance(layers, nn.ModuleList):
        return model.config.num_hidden_layers
    keep = max(deepest, 1)
    if keep >= len(layers):
        return len(layers)
    model.encoder.layers = nn.ModuleList(list(layers)[:keep])
    if getattr(model.config, "do_stable_layer_norm", False):
        model.encoder.layer_norm = nn.Identity()
    # transformers resolves negative hidden-state indices with this count.
    model.config.num_hidden_layers = keep
    return keep


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def quantize_int8(model: ModuleT) -> ModuleT:
    """Dynamic int8 quantisation of the linear layers (attention projections, feed-forward).

    The CNN feature extractor and the positional convolution stay fp32: dynamic quantisation
    has no kernels for convolutions, and they are a small share of the work past the first
    layers. ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao, but it
    is what runs on plain CPU torch 2.13 without another dependency (torchao's int8 path targets
    GPUs); its deprecation warnings are silenced here so they do not repeat on every worker.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        return torch.ao.quantization.quantize_dynamic(model.cpu(), {nn.Linear}, dtype=torch.qint8)
