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
    resolve_layers,
    spec_of_card_encoder,
)
from tasks.embed.loading import load_encoder
from tasks.embed.run import embed_paths
from tasks.evaluate.scoring import detector_scores
from tasks.ingest.scan import AUDIO_EXTENSIONS
from tasks.train.detectors import load_detector

OK, ERROR = "ok", "error"
# path, score, P(spoof) first and in that order: the CLI contract (docs/architecture.md) that scripts parse by position.
SCORE_FILE_COLUMNS = ["path", "score", "p_spoof", "variance", "status", "error"]


NO_AUDIO_IN_FOLDER = f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder or below"


def expand_audio_paths(items: list[str]) -> tuple[list[str], list[str]]:
    """(files as given and folders expanded to the audio-named entries below them, sorted; the folders
    holding none). Entries are taken by name, not by kind: a FIFO or a link to a device named like
    audio is scored too, so that it gets its own error row (``not a regular file``) instead of
    vanishing."""
    paths, empty = [], []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and not f.is_dir())
            paths += found
            if not found:
                empty.append(str(p))
        else:
            paths.append(str(p))
    return paths, empty


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
    provenance (``storage.reports.PROVENANCE_COLUMNS``, the same on every row). A folder holding
    no audio file is an error row of its own (``NO_AUDIO_IN_FOLDER``), after the files.

    The audio is embedded with the encoder variant of the model's card; ``variant``, when
    given, must be that one (``EncoderVariantMismatchError`` otherwise). ``embedder``: that
    encoder already loaded (:func:`model_embedder`), for a caller scoring request after request.
    """
    detector, card = load_detector(model_path)
    check_variant(card, variant, model_path)
    paths, empty_folders = expand_audio_paths(items)
    kept, X, failures = embed_paths(paths, encoder_spec_of_card(card), batch_seconds, embedder)
    failures.update(dict.fromkeys(empty_folders, NO_AUDIO_IN_FOLDER))
    paths += empty_folders
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


# The escapes of a TSV path field: the backslash itself first, so that unescaping is unambiguous.
_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def tsv_path(path: str) -> str:
    """A path as one TSV field, C-style escaped: ``\\`` → ``\\\\``, tab → ``\\t``, newline → ``\\n``,
    carriage return → ``\\r``, any other control character (below U+0020, and U+007F) and each byte
    of a name that is not UTF-8 → ``\\xHH``; everything else as is. So every file is one line of
    six fields and the name can be recovered exactly (``--json`` prints names unescaped)."""
    out = []
    for char in path:
        if char in _TSV_ESCAPES:
            out.append(_TSV_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif 0xDC80 <= ord(char) <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode carries it
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(char)
    return "".join(out)


def score_table_lines(table: pd.DataFrame) -> list[str]:
    """What ``addgp score`` prints for a :func:`score_files` table, tab-separated: a header line
    (:data:`SCORE_FILE_COLUMNS`), then one line per file; the path escaped by :func:`tsv_path`,
    ``score``, ``p_spoof`` and ``variance`` empty where missing and ``error`` empty on ``ok`` rows
    (its runs of whitespace, tabs and newlines included, become one space), so every line has the
    same six columns whatever the file is called."""
    lines = ["\t".join(SCORE_FILE_COLUMNS)]
    for row in table[SCORE_FILE_COLUMNS].to_dict("records"):
        error = " ".join(str(row["error"]).split()) if row["status"] == ERROR else ""
        cells = [
            tsv_path(str(row["path"])),
            _cell(row["score"], ".4f"),
            _cell(row["p_spoof"], ".4f"),
            _cell(row["variance"], ".4g"),
            str(row["status"]),
            error,
        ]
        lines.append("\t".join(cells))
    return lines
