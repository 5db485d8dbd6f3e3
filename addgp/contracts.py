"""The contracts of docs/architecture.md that every stage and every outside tool relies on.

Labels are the strings ``bonafide`` and ``spoof``. A score is a log-likelihood ratio
``log p(x | bonafide) - log p(x | spoof)``: higher means more bona fide. Probabilities
shown to people are P(spoof) = sigmoid(-score) (equal priors).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

BONAFIDE = "bonafide"
SPOOF = "spoof"
LABELS = (BONAFIDE, SPOOF)

# Required manifest columns, in the order they are written. Adapters may add
# corpus-specific columns (codec, language, ...) after these.
MANIFEST_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("label", pa.string()),
        ("attack", pa.string()),
        ("speaker", pa.string()),
        ("path", pa.string()),
        ("duration_s", pa.float64()),
        ("sha256", pa.string()),
    ]
)
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)
NULLABLE_MANIFEST_COLUMNS = frozenset({"attack", "speaker"})

# One row per audio file that an ingest adapter could not accept, with the reason.
REJECTS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("source", pa.string()),  # the file or protocol line the problem was found in
        ("utt_id", pa.string()),
        ("reason", pa.string()),
    ]
)

# Key columns of the embedding store: one row per (utterance, encoder, layer, pooling).
EMBEDDING_KEY_COLUMNS = ("utt_id", "dataset", "encoder", "layer", "pooling")

# Encoder variants: fp32 (the weights as trained) and int8 (dynamic int8 quantisation). An
# encoder's name (the store's ``encoder`` column, a model card's ``encoder``) ends in
# ``+<variant>`` unless the variant is fp32.
ENCODER_VARIANTS = ("fp32", "int8")


def split_encoder_variant(name: str) -> tuple[str, str]:
    """(name without the variant suffix, variant) of an encoder name: ``x@rev+int8`` → (``x@rev``, ``int8``)."""
    for variant in ENCODER_VARIANTS[1:]:
        if name.endswith(f"+{variant}"):
            return name[: -len(variant) - 1], variant
    return name, ENCODER_VARIANTS[0]


def is_bonafide(labels) -> np.ndarray:
    """Boolean array, True where the label is ``bonafide``; any label outside LABELS is an error."""
    labels = np.asarray(labels, dtype=object)
    unknown = sorted({str(x) for x in labels if x not in LABELS})
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}: labels must be one of {list(LABELS)}")
    return labels == BONAFIDE


def p_spoof_from_score(score) -> np.ndarray:
    """P(spoof) = sigmoid(-LLR), computed without overflow for large |score|."""
    score = np.asarray(score, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, score))


def looks_like_path(encoder_id: str) -> bool:
    """An encoder id written as a folder path (``/…``, ``./…``, ``../…``, ``~…``) rather than a hub id or preset."""
    return encoder_id.startswith(("/", "./", "../", "~"))
