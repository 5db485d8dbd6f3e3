"""Model registry: every trained detector as a versioned folder of tensors and a JSON model card.

Layout::

    ROOT/NAME/v1/weights.safetensors   numpy arrays only (safetensors never executes code, unlike pickle)
    ROOT/NAME/v1/model_card.json       what the model is, what it was trained on, how to rebuild it
    ROOT/NAME/v2/...

A version is written into a temporary folder and renamed to ``vN`` in one step, so readers
never see half a model; two writers racing for the same N both succeed, one as N+1. (On
object stores, which have no rename, the move is not atomic.)

The registry knows nothing of detector classes (storage/ imports nothing of tasks/): it
stores whatever ``detector.to_state()`` returns, ``(dict of arrays, JSON-able params)``, and
gives back the same pair. ``tasks.train.detectors.load_detector`` turns it into a
detector again.

Loading checks, with a ``ModelRegistryError`` saying what is wrong and naming the file: the
card's ``digest`` — one sha256 over the whole card except the digest itself, so over every
field that affects scores (encoder, layer, pooling, hyper-parameters, fitted values such as
``log_prior_odds``, and the weights through their recorded sha256), including fields added
to cards later — against the card (an edited card); the sha256 of the weights against the
card (a modified or replaced file); that the weights parse as safetensors; the tensor names,
shapes and dtypes against the card (a card that belongs to other weights); and, when asked,
that the model was trained on the same embeddings (``EmbeddingSetting``: encoder, layer,
pooling, crop) as those it is about to score. A model that is not there raises ``ModelNotFoundError`` (the CLI's exit code
3); every other refusal is a ``ModelRegistryError`` (exit code 2).

A model argument is resolved by ``resolve_model``: ``ROOT/NAME/vN`` is that version (one
that is not there is refused naming the versions there are); ``ROOT/NAME`` is the champion
in service when ``WORKDIR/state/champion-NAME.json`` records one, else the latest version,
and the result says which and why.

A card of an earlier format (``addgp-model/1``, written before the digest) is an
``OldFormatError``; ``addgp migrate`` seals it (storage/migrations.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import PurePath
from typing import Any, Protocol

import numpy as np
import safetensors
import safetensors.numpy

from storage.paths import OldFormatError, filesystem, join

FORMAT = "addgp-model/2"
OLD_FORMATS = ("addgp-model/1",)  # no card digest; ``addgp migrate`` adds it
DIGEST_KEY = "digest"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "model_card.json"
# What the caller must say about the embeddings the model was trained on (EmbeddingSetting's
# required fields, plus whether the encoder had random weights).
REQUIRED_CARD_KEYS = ("encoder", "layer", "pooling", "random_weight_encoder")
# What save_model writes itself; a caller's card may not set these.
GENERATED_CARD_KEYS = (
    "format",
    "name",
    "version",
    "model_type",
    "detector_params",
    "library_versions",
    "created_utc",
    "weights",
    "warning",
    DIGEST_KEY,
)
RANDOM_ENCODER_WARNING = (
    "This model was trained on embeddings from an encoder with random (untrained) weights. Its scores "
    "carry no evidence about real deepfakes: use it only to test the pipeline."
)
_LIBRARIES = ("addgp", "numpy", "torch", "gpytorch", "scikit-learn", "safetensors")
_VERSION_DIR = re.compile(r"^v(\d+)$")


class ModelRegistryError(ValueError):
    """A model that cannot be saved or loaded as asked; the message says which file and why."""


class ModelNotFoundError(ModelRegistryError):
    """No model at the path given: nothing saved there (the CLI exits 3, "not on this machine")."""


def card_digest(card: dict) -> str:
    """sha256 of the card without its digest field, over canonical JSON (sorted keys, no spaces).

    Generic on purpose: whatever fields a card carries — now or added later — are covered.
    """
    body = {k: v for k, v in card.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EmbeddingSetting:
    """Which embeddings a model reads: the store rows it was trained on and must be scored on.

    Recorded on the model card, one card key per field (``to_card``), and read back with
    ``of_card``; training, scoring, adaptation and the nightly loop all select store rows
    through it. A new way embeddings can differ (e.g. an encoder variant) is one more field
    with a default, so that cards written before it still load.
    """

    encoder: str  # the store's encoder column: id, or id@revision
    layer: int
    pooling: str
    crop_s: float | None = None  # seconds each file was cropped to before encoding; None = full length

    def to_card(self) -> dict:
        return asdict(self)

    @classmethod
    def of_card(cls, card: dict) -> EmbeddingSetting:
        missing = [f.name for f in fields(cls) if f.name in REQUIRED_CARD_KEYS and f.name not in card]
        if missing:
            raise ModelRegistryError(f"model card {card.get('name', '?')} v{card.get('version', '?')} lacks {missing}")
        return cls(**{f.name: card[f.name] for f in fields(cls) if f.name in card})


@dataclass(frozen=True)
class ModelRef:
    """One saved version: ``path`` is the ``ROOT/NAME/vN`` folder."""

    path: str
    name: str
    version: int


@dataclass(frozen=True)
class ModelState:
    """What ``load_model_state`` returns: the arrays and params of ``to_state()``, and the card."""

    path: str
    arrays: dict[str, np.ndarray]
    params: dict
    card: dict


class SupportsState(Protocol):
    kind: str

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]: ...


def save_model(root: str | os.PathLike, name: str, detector: SupportsState, card: dict) -> ModelRef:
    """Save ``detector`` as the next version of ``ROOT/NAME``; returns its ``ModelRef``.

    ``card`` is the caller's description of the model, kept verbatim in model_card.json. It
    must hold ``encoder`` (id), ``layer`` (int), ``pooling`` (str) and ``random_weight_encoder``
    (bool), and should hold ``training_data`` (a description of the data snapshot) and
    ``dev_metrics`` (a dict). NaN and infinite numbers become JSON null.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ModelRegistryError(f"model name {name!r}: use letters, digits, '.', '_' and '-' only")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ModelRegistryError(f"model card for {name!r} lacks {missing}; it needs {list(REQUIRED_CARD_KEYS)}")
    reserved = [k for k in GENERATED_CARD_KEYS if k in card]
    if reserved:
        raise ModelRegistryError(f"model card for {name!r} sets {reserved}, which save_model writes itself")
    if not isinstance(card["random_weight_encoder"], bool):
        raise ModelRegistryError(f"model card for {name!r}: random_weight_encoder must be true or false")

    arrays, params = detector.to_state()
    arrays = {str(k): np.ascontiguousarray(v) for k, v in arrays.items()}
    weights = safetensors.numpy.save(arrays)
    full_card = {
        "format": FORMAT,
        "name": name,
        "version": None,  # set once the version number is taken
        "model_type": detector.kind,
        **_jsonable(card, "card"),
        "detector_params": _jsonable(params, "detector_params"),
        "library_versions": _library_versions(),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "weights": {
            "file": WEIGHTS_FILE,
            "sha256": hashlib.sha256(weights).hexdigest(),
            "bytes": len(weights),
            "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(arrays.items())},
        },
    }
    if card["random_weight_encoder"]:
        full_card["warning"] = RANDOM_ENCODER_WARNING

    fs, model_dir = filesystem(join(root, name))
    fs.makedirs(model_dir, exist_ok=True)
    tmp = f"{model_dir}/.tmp-{uuid.uuid4().hex}"
    fs.makedirs(tmp, exist_ok=True)
    try:
        with fs.open(f"{tmp}/{WEIGHTS_FILE}", "wb") as handle:
            handle.write(weights)
        version = max((ref.version for ref in list_versions(root, name)), default=0) + 1
        while True:
            full_card["version"] = version
            full_card[DIGEST_KEY] = card_digest(full_card)
            with fs.open(f"{tmp}/{CARD_FILE}", "w") as handle:
                json.dump(full_card, handle, indent=2, allow_nan=False)
            final = f"{model_dir}/v{version}"
            if _rename_dir(fs, tmp, final):
                return ModelRef(path=join(root, name, f"v{version}"), name=name, version=version)
            version += 1  # another writer took this number first
    finally:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)


def _rename_dir(fs, src: str, dst: str) -> bool:
    """Move folder src to dst unless dst exists; False when it does."""
    if "file" in fs.protocol:
        try:
            os.rename(src, dst)  # atomic; fails if dst exists and is not empty
            return True
        except OSError:
            if os.path.exists(dst):
                return False
            raise
    if fs.exists(dst):
        return False
    fs.mv(src, dst, recursive=True)
    return True


def list_versions(root: str | os.PathLike, name: str) -> list[ModelRef]:
    """All saved versions of ``ROOT/NAME``, oldest first (empty when there are none)."""
    fs, model_dir = filesystem(join(root, name))
    if not fs.exists(model_dir):
        return []
    refs = []
    for entry in fs.ls(model_dir, detail=False):
        match = _VERSION_DIR.match(PurePath(entry).name)
        if match:
            refs.append(ModelRef(path=join(root, name, match.group(0)), name=name, version=int(match.group(1))))
    return sorted(refs, key=lambda ref: ref.version)


def latest(root: str | os.PathLike, name: str) -> ModelRef:
    """The newest version of ``ROOT/NAME``."""
    refs = list_versions(root, name)
    if not refs:
        raise ModelNotFoundError(f"no saved versions of model {name!r} under {root}")
    return refs[-1]


@dataclass(frozen=True)
class ResolvedModel:
    """The version folder a ``--model`` argument stands for, and why that version."""

    path: str
    reason: str


def resolve_model(
    path_or_ref: str | os.PathLike | ModelRef, state_dir: str | os.PathLike | None = None
) -> ResolvedModel:
    """The version a model argument names: ``ROOT/NAME/vN`` is that version; ``ROOT/NAME`` is the
    champion in service when the nightly loop recorded one for NAME, else the latest version.

    The champion record is ``STATE/champion-NAME.json`` (storage/champions.py); ``state_dir``
    defaults to the workspace's ``state`` folder beside ROOT (``WORKDIR/models`` →
    ``WORKDIR/state``). A ``vN`` that does not exist raises ``ModelNotFoundError`` naming the
    versions there are; a champion whose folder is gone raises ``ChampionMissingError``.
    """
    from storage import champions  # storage/champions.py is the champion record's one reader

    if isinstance(path_or_ref, ModelRef):
        return ResolvedModel(path_or_ref.path, f"v{path_or_ref.version}, as given")
    path = str(path_or_ref).rstrip("/")
    parent, name = path.rsplit("/", 1) if "/" in path else (".", path)
    fs, p = filesystem(path)
    if fs.exists(f"{p}/{CARD_FILE}"):
        return ResolvedModel(path, f"{name}, as given")
    asked = _VERSION_DIR.match(name)
    if asked and not fs.exists(p):
        model_root, model = parent.rsplit("/", 1) if "/" in parent else (".", parent)
        there = list_versions(model_root, model)
        if there:
            raise ModelNotFoundError(
                f"model {model} has no version {name} under {model_root}; it has "
                f"{', '.join(f'v{ref.version}' for ref in there)}: pass one of those, or {parent} for the one in service"
            )
    versions = list_versions(parent, name) if fs.isdir(p) else []
    if not versions:
        raise ModelNotFoundError(
            f"no model at {path}: expected a version folder with {CARD_FILE} (ROOT/NAME/vN) or a model folder with v1, v2, …"
        )
    workdir = parent.rsplit("/", 1)[0] if "/" in parent else "."
    state = str(state_dir) if state_dir is not None else join(workdir, "state")
    record = champions.current_champion(state, name)
    if record is not None:
        # The record names the folder as the nightly run saw it; the workspace may have moved since.
        champion = PurePath(str(record.get("model_path", "")))
        if champion.parent.name == name and _VERSION_DIR.match(champion.name):
            here = join(path, champion.name)
            champions.require_champion_model(state, name, {**record, "model_path": here})
            return ResolvedModel(here, f"the champion in service, recorded in {join(state, f'champion-{name}.json')}")
    newest = versions[-1]
    return ResolvedModel(
        newest.path, f"the latest of {len(versions)} version(s): no champion in service recorded under {state}"
    )


def _resolve(path_or_ref: str | os.PathLike | ModelRef) -> str:
    """A version folder from a ModelRef, a version folder, or a model folder (``resolve_model``)."""
    return resolve_model(path_or_ref).path


def read_card(path_or_ref: str | os.PathLike | ModelRef) -> dict:
    """The model card of a version (or of a model folder's latest version)."""
    path = _resolve(path_or_ref)
    fs, p = filesystem(path)
    try:
        with fs.open(f"{p}/{CARD_FILE}", "r") as handle:
            card = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelRegistryError(f"{path}/{CARD_FILE} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise ModelRegistryError(f"{path}/{CARD_FILE} is not a JSON object")
    if card.get("format") in OLD_FORMATS:
        raise OldFormatError(f"{path}/{CARD_FILE}", f"a model card of format {card['format']!r} (no digest)")
    if card.get("format") != FORMAT:
        raise ModelRegistryError(f"{path}/{CARD_FILE}: format {card.get('format')!r} is not {FORMAT!r}")
    recorded, actual = card.get(DIGEST_KEY), card_digest(card)
    if recorded != actual:
        raise ModelRegistryError(
            f"{path}/{CARD_FILE} was changed after saving (digest {actual} does not match the recorded {recorded}); "
            "its fields decide the scores, so it is refused: restore the file, or train/adapt a new version"
        )
    missing = [k for k in ("model_type", "detector_params", "weights") if k not in card]
    if missing:
        raise ModelRegistryError(f"{path}/{CARD_FILE} lacks {missing}")
    return card


def load_model_state(path_or_ref: str | os.PathLike | ModelRef, expect: EmbeddingSetting | None = None) -> ModelState:
    """Read and verify a saved model; ``expect``, when given, must be the embedding setting on the card."""
    path = _resolve(path_or_ref)
    card = read_card(path)
    if expect is not None:
        recorded = EmbeddingSetting.of_card(card).to_card()
        wrong = [f"{k} {recorded[k]!r} (expected {v!r})" for k, v in expect.to_card().items() if recorded[k] != v]
        if wrong:
            raise ModelRegistryError(
                f"{path} was trained on other embeddings: {', '.join(wrong)}; "
                "score it only with embeddings of the same setting (encoder, layer, pooling, crop)"
            )

    fs, p = filesystem(path)
    with fs.open(f"{p}/{WEIGHTS_FILE}", "rb") as handle:
        weights = handle.read()
    recorded = card["weights"]["sha256"]
    actual = hashlib.sha256(weights).hexdigest()
    if actual != recorded:
        raise ModelRegistryError(
            f"{path}/{WEIGHTS_FILE} has sha256 {actual} but {CARD_FILE} records {recorded}: "
            "the weights were modified or replaced after saving; refusing to load them"
        )
    try:
        arrays = safetensors.numpy.load(weights)
    except (safetensors.SafetensorError, ValueError) as exc:
        raise ModelRegistryError(
            f"{path}/{WEIGHTS_FILE} is not a readable safetensors file ({exc}); restore it or retrain"
        ) from None
    found = {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(arrays.items())}
    if found != card["weights"]["tensors"]:
        differing = sorted(set(found) ^ set(card["weights"]["tensors"]))
        differing += sorted(
            k for k in set(found) & set(card["weights"]["tensors"]) if found[k] != card["weights"]["tensors"][k]
        )
        raise ModelRegistryError(
            f"{path}: {WEIGHTS_FILE} and {CARD_FILE} do not belong together "
            f"(tensors differing in name, shape or dtype: {differing[:5]})"
        )
    return ModelState(path=path, arrays=arrays, params=card["detector_params"], card=card)


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for library in _LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = None
    return versions


def _jsonable(value: Any, where: str) -> Any:
    """``value`` with numpy scalars/arrays and tuples made JSON-native; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(list(value))]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (os.PathLike, datetime)):
        return str(value)
    raise ModelRegistryError(f"{where}: a {type(value).__name__} cannot be written to a JSON model card")
