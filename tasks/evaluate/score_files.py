"""Score audio files people bring with a registered model: decode → encoder → detector."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from addgp.contracts import p_spoof_from_score
from storage.models import EmbeddingSetting
from storage.reports import provenance_of_card
from tasks.embed.encoder import EncoderSpec, EncoderVariantMismatchError, spec_of_card_encoder
from tasks.embed.run import embed_paths
from tasks.evaluate.scoring import detector_scores
from tasks.ingest.scan import AUDIO_EXTENSIONS
from tasks.train.detectors import load_detector


def expand_audio_paths(items: list[str]) -> list[str]:
    """Files as given, folders expanded to the audio files below them (sorted)."""
    paths = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            paths.append(str(p))
    return paths


def encoder_spec_of_card(card: dict) -> EncoderSpec:
    """The encoder run that makes the embeddings a model reads (only its layer is run up to);
    a local checkpoint is found through the card's ``encoder_source``."""
    setting = EmbeddingSetting.of_card(card)
    return spec_of_card_encoder(
        setting.encoder,
        card.get("encoder_source"),
        layers=(setting.layer,),
        pooling=setting.pooling,
        crop_seconds=setting.crop_s,
    )


def check_variant(card: dict, variant: str | None, model_path: str) -> None:
    """Refuse to score with embeddings of another encoder variant than the model was trained on.

    An int8 encoder's embeddings are close to the fp32 ones (docs/benchmarks.md) but not the
    same numbers, and a detector's calibration is fitted to the exact numbers it saw.
    """
    trained = EncoderSpec.from_name(card["encoder"]).variant
    if variant is not None and variant != trained:
        raise EncoderVariantMismatchError(
            f"{model_path} was trained on {trained} embeddings of {card['encoder']}, not {variant} ones; "
            f"score it with --encoder-variant {trained} (the default: the model's own), "
            f"or train a model on {variant} embeddings (encoder.variant: {variant})"
        )


def score_files(
    items: list[str], model_path: str, batch_seconds: float | None = None, variant: str | None = None
) -> pd.DataFrame:
    """One row per file: path, score (LLR), p_spoof, variance (GP models), error (files that could not be read),
    then the model's provenance (``storage.reports.PROVENANCE_COLUMNS``, the same on every row).

    The audio is embedded with the encoder variant of the model's card; ``variant``, when
    given, must be that one (``EncoderVariantMismatchError`` otherwise).
    """
    detector, card = load_detector(model_path)
    check_variant(card, variant, model_path)
    paths = expand_audio_paths(items)
    kept, X, failures = embed_paths(paths, encoder_spec_of_card(card), batch_seconds)
    rows = []
    if kept:
        score, variance = detector_scores(detector, X, f"model {model_path}")
        rows = [
            {"path": p, "score": float(s), "p_spoof": float(q), "variance": float(v), "error": None}
            for p, s, q, v in zip(kept, score, p_spoof_from_score(score), variance)
        ]
    rows += [
        {"path": p, "score": None, "p_spoof": None, "variance": None, "error": reason} for p, reason in failures.items()
    ]
    order = {p: i for i, p in enumerate(paths)}
    table = pd.DataFrame(rows).sort_values("path", key=lambda s: s.map(order)).reset_index(drop=True)
    return table.assign(**provenance_of_card(card))
