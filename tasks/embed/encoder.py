"""What the frozen speech encoder is: wav2vec2-family checkpoints or random-weight presets, by name.

``EncoderSpec`` says what to run (checkpoint, variant, layers, pooling, crop) and is part of every
store row's key; ``tasks/embed/loading.py`` builds it. Presets are the real XLS-R architectures
with random weights, for tests and speed benchmarks only (their outputs carry ``random_weights =
True``). The identity (``name``) is what decides the numbers: a hub id with its pinned revision,
a preset's name, or for a local folder a digest of its config and weights (``checkpoint_digest``,
cached per file version), never its path; the variant (int8) is part of it. The identities and
the digest cache: docs/embedding.md, "Encoder identity".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig

from addgp.contracts import ENCODER_VARIANTS, split_encoder_variant

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
    "xlsr-300m-random": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, **_XLSR_COMMON
    ),
    "xlsr-1b-random": dict(
        hidden_size=1280, num_hidden_layers=48, num_attention_heads=16, intermediate_size=5120, **_XLSR_COMMON
    ),
    "xlsr-2b-random": dict(
        hidden_size=1920, num_hidden_layers=48, num_attention_heads=16, intermediate_size=7680, **_XLSR_COMMON
    ),
}
PRESET_SEED = 0

# fp32: the weights as trained. int8: dynamic int8 quantisation of every nn.Linear (weights
# int8 per tensor, activations quantised per batch at run time), CPU only.
VARIANTS = ENCODER_VARIANTS
# Padded audio seconds per encoder batch when the config does not say. On CPU a forward is
# compute-bound already at one utterance: 64 s batches cost the same CPU time per audio second
# as 16 s ones (docs/benchmarks.md), so the smaller one, with less padding and memory, is the
# default; GPUs need large batches to fill.
DEFAULT_BATCH_SECONDS = {"cpu": 16.0, "cuda": 64.0}


# What a local checkpoint's identity digest covers: its config and its weights files (sharded
# or not). Tokenizer, preprocessor and README files do not change the embeddings.
CHECKPOINT_CONFIG = "config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
LOCAL_REVISION_PREFIX = "sha256-"  # the revision part of a local checkpoint's name
NAME_DIGEST_CHARS = 16  # of the digest in the name (64 bits); cards keep the whole digest
DIGEST_CACHE_ENV = "ADDGP_CACHE_DIR"
RACY_NS = 2_000_000_000  # a file changed less than this long ago is not cached (see checkpoint_digest)
log = logging.getLogger(__name__)


class EncoderUnavailableError(RuntimeError):
    """The encoder's weights are not on this machine and cannot be fetched."""


class EncoderVariantMismatchError(ValueError):
    """A model would score embeddings of another encoder variant than it was trained on."""


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
    variant: str = "fp32"  # one of VARIANTS; last, so positional uses of the fields above stay valid

    @property
    def random_weights(self) -> bool:
        return self.id in RANDOM_PRESETS

    @property
    def local_dir(self) -> Path | None:
        """The checkpoint folder this spec loads from, when its id names a folder on this machine
        (None for presets, hub ids, and names already carrying a local checkpoint's digest)."""
        if self.random_weights or (self.revision or "").startswith(LOCAL_REVISION_PREFIX):
            return None
        source = Path(os.path.expanduser(self.id))
        return source if source.is_dir() else None

    def weights_digest(self) -> str | None:
        """sha256 of what fixes the encoder's weights: a local checkpoint's config and weights files;
        a preset's config and seed (its weights are drawn from them); None for a hub id, whose
        pinned revision (in ``name``) identifies them."""
        if self.random_weights:
            recipe = json.dumps({"config": RANDOM_PRESETS[self.id], "seed": PRESET_SEED}, sort_keys=True)
            return hashlib.sha256(recipe.encode()).hexdigest()
        local = self.local_dir
        return checkpoint_digest(local)[0] if local is not None else None

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"encoder variant {self.variant!r} is not one of {list(VARIANTS)}")

    @property
    def name(self) -> str:
        """The ``encoder`` column: id, pinned revision when there is one, ``+variant`` unless fp32;
        a local checkpoint folder by the digest of its config and weights, wherever it lies.

        ``xlsr-300m-random``, ``facebook/wav2vec2-xls-r-300m@1a2b3c``, ``…@1a2b3c+int8``,
        ``local-wav2vec2@sha256-0f1e2d3c4b5a6978``.
        """
        local = self.local_dir
        if local is not None:
            digest, model_type = checkpoint_digest(local)
            name = f"local-{model_type}@{LOCAL_REVISION_PREFIX}{digest[:NAME_DIGEST_CHARS]}"
        else:
            name = f"{self.id}@{self.revision}" if self.revision else self.id
        return name if self.variant == "fp32" else f"{name}+{self.variant}"

    @classmethod
    def from_name(cls, name: str, **fields) -> EncoderSpec:
        """The spec whose ``name`` is ``name`` (the ``encoder`` of a store row or model card)."""
        name, variant = split_encoder_variant(name)
        encoder, _, revision = name.partition("@")
        return cls(id=encoder, revision=revision or None, variant=variant, **fields)

    def run_key(self) -> str:
        """Short stable hash of what determines the numbers; device and storage dtype do not count."""
        text = f"{self.name}|{self.pooling}|{self.crop_seconds}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def resolved_device(self) -> str:
        if self.device == "auto":
            # Dynamic int8 has CPU kernels only.
            return "cuda" if torch.cuda.is_available() and self.variant == "fp32" else "cpu"
        return self.device

    def batch_seconds(self, configured: float | None = None) -> float:
        """Padded audio seconds per batch: the configured value, else the measured default for the device."""
        if configured is not None:
            return configured
        return DEFAULT_BATCH_SECONDS["cuda" if self.resolved_device().startswith("cuda") else "cpu"]


def checkpoint_files(folder: Path) -> list[Path]:
    """The files of a checkpoint folder its identity covers (config and weights), sorted; hidden ones skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and (path.name == CHECKPOINT_CONFIG or path.name.endswith(WEIGHT_SUFFIXES))
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


_DIGESTS: dict[tuple, tuple[str, str]] = {}  # (folder, file stats) -> (digest, model type), this process


def checkpoint_digest(folder: str | os.PathLike) -> tuple[str, str]:
    """(sha256 over a checkpoint folder's config and weights files, its config's ``model_type``).

    The digest covers each file's name relative to the folder and its sha256, so it is the
    same wherever the folder is copied. Each file's sha256 is cached under its path, size
    and modification time (``ADDGP_CACHE_DIR``); a file whose size or time changed is read again.
    """
    root = Path(os.path.expanduser(folder)).resolve()
    files = checkpoint_files(root)
    if not (root / CHECKPOINT_CONFIG).is_file():
        raise _no_config(root)
    stats = tuple((path, path.stat()) for path in files)
    key = (str(root), tuple((str(path), st.st_size, st.st_mtime_ns) for path, st in stats))
    if key in _DIGESTS:
        return _DIGESTS[key]
    cache = _read_digest_cache()
    total = hashlib.sha256()
    changed = racy = False
    for path, st in stats:
        # A file written moments ago may be written again within the file system's timestamp
        # granularity, keeping size and time: such a file is hashed but not remembered (as git does).
        recent = time.time_ns() - st.st_mtime_ns < RACY_NS
        racy |= recent
        entry = None if recent else cache.get(str(path))
        if not (
            isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        ):
            log.info("hashing %s (%.1f MB) for the encoder's identity", path, st.st_size / 1e6)
            with open(path, "rb") as handle:
                entry = {
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                    "sha256": hashlib.file_digest(handle, "sha256").hexdigest(),
                }
            if not recent:
                cache[str(path)] = entry
                changed = True
        total.update(f"{path.relative_to(root).as_posix()}\t{entry['sha256']}\n".encode())
    if changed:
        _write_digest_cache(cache)
    config = json.loads((root / CHECKPOINT_CONFIG).read_text(encoding="utf-8"))
    model_type = re.sub(r"[^A-Za-z0-9._-]+", "-", str(config.get("model_type") or "checkpoint"))
    result = (total.hexdigest(), model_type)
    if not racy:
        _DIGESTS[key] = result
    return result


def _digest_cache_file() -> Path:
    base = os.environ.get(DIGEST_CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "addgp"
    )
    return Path(base) / "checkpoint-digests.json"


def _read_digest_cache() -> dict:
    try:
        cache = json.loads(_digest_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: the files are hashed again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_digest_cache(cache: dict) -> None:
    """Replace the cache file at once; a cache that cannot be written only costs a re-hash next time."""
    target = _digest_cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        log.warning(
            "could not write the checkpoint digest cache %s (%s); checkpoints are hashed again next run", target, exc
        )


def spec_of_card_encoder(name: str, source: str | None, **fields) -> EncoderSpec:
    """The spec that runs a model card's encoder ``name``; ``source`` is the card's ``encoder_source``.

    A local checkpoint's name carries only its digest, so its folder comes from ``source``
    (where it was at training time), and must hold the same config and weights.
    """
    spec = EncoderSpec.from_name(name, **fields)
    if not (spec.revision or "").startswith(LOCAL_REVISION_PREFIX):
        return spec
    if source is None or not Path(source).is_dir():
        raise EncoderUnavailableError(
            f"encoder {name} is a local checkpoint folder identified by the digest of its config and weights; "
            f"it was at {source or '(not recorded)'}, which is not on this machine. Copy the checkpoint folder "
            "there (any copy with the same config and weights files will do)"
        )
    local = dataclasses.replace(spec, id=source, revision=None)
    if local.name != spec.name:
        raise EncoderUnavailableError(
            f"{source} holds other weights or config than encoder {name} (it is {local.name}); "
            "restore the checkpoint the model was trained with, or train a model on the new one"
        )
    return local


def pretrained_config(spec: EncoderSpec):
    """The checkpoint's config (a few KB): from the local directory, the HF cache or the hub."""
    source = Path(os.path.expanduser(spec.id))
    if source.exists():
        if not (source / CHECKPOINT_CONFIG).is_file():
            raise _no_config(source)
        return AutoConfig.from_pretrained(source)
    try:
        return AutoConfig.from_pretrained(spec.id, revision=spec.revision)
    except (OSError, ValueError) as exc:
        raise unavailable_error(spec, exc) from None


def _no_config(folder: Path) -> EncoderUnavailableError:
    return EncoderUnavailableError(
        f"encoder directory {folder} has no {CHECKPOINT_CONFIG}; it should hold a Hugging Face checkpoint "
        "(config.json + model.safetensors), e.g. from `hf download facebook/wav2vec2-xls-r-300m --local-dir DIR`"
    )


def unavailable_error(spec: EncoderSpec, exc: Exception) -> EncoderUnavailableError:
    return EncoderUnavailableError(
        f"cannot load encoder '{spec.id}' (revision {spec.revision or 'main'}): no local copy and the Hugging Face hub "
        f"is not reachable ({type(exc).__name__}). On a machine with network run "
        f"`hf download {spec.id} --local-dir /models/{spec.id.split('/')[-1]}` and pass that directory "
        "as --encoder (or encoder.id in the config), or pre-fill HF_HOME's cache. "
        f"For tests and speed runs use a random-weight preset: {', '.join(RANDOM_PRESETS)}."
    )


def resolve_layers(spec: EncoderSpec) -> EncoderSpec:
    """The spec with layers as sorted, non-negative indices into hidden_states (-1 → last)."""
    if spec.random_weights:
        num_layers = RANDOM_PRESETS[spec.id]["num_hidden_layers"]
    else:
        num_layers = pretrained_config(spec).num_hidden_layers
    return dataclasses.replace(spec, layers=tuple(layer_indices(spec, num_layers)))


def resolve_layer(spec: EncoderSpec, layer: int) -> int:
    """One layer (e.g. ``train.layer: -1``) as its non-negative index for this encoder."""
    return resolve_layers(dataclasses.replace(spec, layers=(layer,))).layers[0]


def layer_indices(spec: EncoderSpec, num_layers: int) -> list[int]:
    total = num_layers + 1  # hidden_states: CNN features after projection, then one per transformer layer
    resolved = set()
    for layer in spec.layers:
        index = layer if layer >= 0 else total + layer
        if not 0 <= index < total:
            raise ValueError(f"layer {layer} out of range for {spec.id}: it has hidden states 0..{total - 1}")
        resolved.add(index)
    return sorted(resolved)


def spec_from_config(config) -> EncoderSpec:
    """EncoderSpec from the validated ``encoder:`` section of a pipeline config."""
    return EncoderSpec(
        id=config.id,
        revision=config.revision,
        variant=config.variant,
        layers=tuple(config.layers),
        pooling=config.pooling,
        crop_seconds=config.crop_seconds,
        storage_dtype=config.storage_dtype,
        device=config.device,
    )
