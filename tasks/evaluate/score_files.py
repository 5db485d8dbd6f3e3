"""Score audio files people bring with a registered model: decode → encoder → detector."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from addgp.contracts import p_spoof_from_score
from storage.models import EmbeddingSetting, read_card
from storage.reports import provenance_of_card
from tasks.embed.embedder import Embedder
from tasks.embed.encoder import (
    EncoderSpec,
    EncoderVariantMismatchError,
    load_encoder,
    resolve_layers,
    spec_of_card_encoder,
)
from tasks.embed.run import embed_paths
from tasks.evaluate.scoring import detector_scores
from tasks.ingest.scan import AUDIO_EXTENSIONS
from tasks.train.detectors import load_detector

OK, ERROR = "ok", "error"
# path, score, P(spoof) first and in that order: the CLI contract (ARCHITECTURE.md) that scripts parse by position.
SCORE_FILE_COLUMNS = ["path", "score", "p_spoof", "variance", "status", "error"]


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


def model_embedder(model_path: str) -> Embedder:
    """The encoder a model's embeddings come from, loaded once for many :func:`score_files` calls."""
    return Embedder(load_encoder(resolve_layers(encoder_spec_of_card(read_card(model_path)))))


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
    items: list[str],
    model_path: str,
    batch_seconds: float | None = None,
    variant: str | None = None,
    embedder: Embedder | None = None,
) -> pd.DataFrame:
    """One row per file, in the order given: path, score (LLR), p_spoof, variance (GP models), status
    (``ok`` / ``error``), error (why a file could not be scored; None on ``ok`` rows), then the model's
    provenance (``storage.reports.PROVENANCE_COLUMNS``, the same on every row).

    The audio is embedded with the encoder variant of the model's card; ``variant``, when
    given, must be that one (``EncoderVariantMismatchError`` otherwise). ``embedder``: that
    encoder already loaded (:func:`model_embedder`), for a caller scoring request after request.
    """
    detector, card = load_detector(model_path)
    check_variant(card, variant, model_path)
    paths = expand_audio_paths(items)
    kept, X, failures = embed_paths(paths, encoder_spec_of_card(card), batch_seconds, embedder)
    rows = []
    if kept:
        score, variance = detector_scores(detector, X, f"model {model_path}")
        rows = [
            {"path": p, "status": OK, "score": float(s), "p_spoof": float(q), "variance": float(v), "error": None}
            for p, s, q, v in zip(kept, score, p_spoof_from_score(score), variance)
        ]
    rows += [
        {"path": p, "status": ERROR, "score": None, "p_spoof": None, "variance": None, "error": reason}
        for p, reason in failures.items()
    ]
    order = {p: i for i, p in enumerate(paths)}
    table = pd.DataFrame(rows, columns=SCORE_FILE_COLUMNS)
    table = table.sort_values("path", key=lambda s: s.map(order)).reset_index(drop=True)
    # A column mixing texts and None turns the None into NaN; good rows have no error, not "nan".
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    return table.assign(**provenance_of_card(card))


def _cell(value: object, fmt: str) -> str:
    """A number as ``fmt``, or empty for a missing one (error rows, variance of non-GP models)."""
    if pd.isna(value):
        return ""
    return format(value, fmt)


def score_table_lines(table: pd.DataFrame) -> list[str]:
    """What ``addgp score`` prints for a :func:`score_files` table, tab-separated: a header line
    (:data:`SCORE_FILE_COLUMNS`), then one line per file; ``score``, ``p_spoof`` and ``variance``
    are empty where missing and ``error`` is empty on ``ok`` rows (its tabs and newlines become
    spaces, so every line has the same columns)."""
    lines = ["\t".join(SCORE_FILE_COLUMNS)]
    for row in table[SCORE_FILE_COLUMNS].to_dict("records"):
        error = " ".join(str(row["error"]).split()) if row["status"] == ERROR else ""
        cells = [
            str(row["path"]),
            _cell(row["score"], ".4f"),
            _cell(row["p_spoof"], ".4f"),
            _cell(row["variance"], ".4g"),
            str(row["status"]),
            error,
        ]
        lines.append("\t".join(cells))
    return lines
