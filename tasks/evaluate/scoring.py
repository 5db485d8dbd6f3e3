"""Score eval sets with registered detectors and compute the per-dataset metrics table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from addgp.contracts import p_spoof_from_score
from storage.models import EmbeddingSetting
from storage.reports import provenance_of_card
from tasks.evaluate.crossdataset import CONDITION_COLUMNS, TRAIN_DATASET_SEPARATOR, train_setting
from tasks.evaluate.overlap import card_overlap_columns, eval_set_digests
from tasks.train.data import labelled_inputs


class EmbeddingWidthError(ValueError):
    """A model asked to score embeddings it cannot take (another width: other encoder or pooling)."""


def detector_scores(detector, X: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(LLR scores, variance or NaN) of ``detector`` on ``X``; ``model`` names it in errors.

    A model fitted on embeddings of another width fails inside numpy or torch with a shape
    traceback; here it becomes an ``EmbeddingWidthError`` saying what does not fit.
    """
    X = np.asarray(X)
    expected = getattr(detector, "n_features_in_", None)
    mismatch = (
        f"{model} cannot score {X.shape[1]}-dimensional embeddings"
        + (f" (it was fitted on {expected}-dimensional ones)" if expected is not None else "")
        + ": they come from another encoder, layer width or pooling than the model was trained on; "
        "embed with the model card's encoder and pooling, or score with a model trained on these embeddings"
    )
    if expected is not None and X.ndim == 2 and X.shape[1] != expected:
        raise EmbeddingWidthError(mismatch)
    try:
        score = np.asarray(detector.score_llr(X), dtype=np.float64)
        variance = (
            detector.predict_variance(X) if hasattr(detector, "predict_variance") else np.full(len(score), np.nan)
        )
    except (ValueError, RuntimeError) as exc:
        if "shape" in str(exc) or "broadcast" in str(exc) or "dimension" in str(exc):
            raise EmbeddingWidthError(f"{mismatch} ({type(exc).__name__}: {exc})") from None
        raise
    return score, np.asarray(variance, dtype=np.float64)


def score_rows(detector, name: str, data, card: dict | None = None) -> pd.DataFrame:
    """One detector's scores for a LabelledEmbeddings selection, in the score-table layout.

    Besides the contract columns (utt_id, dataset, split, label, attack, detector, score,
    p_spoof, variance) the table carries ``speaker`` (the bootstrap's resampling unit),
    the condition columns the manifest has (codec, transmission, language), the
    detector's train setting from its model card (``train_setting``, ``train_datasets``; the
    sets and content digests it trained on, ``train_sets``/``train_digests``, and the content
    digest of each row's eval set, ``eval_set_digest``, for the training-overlap check)
    and the provenance of its scores (``storage.reports.PROVENANCE_COLUMNS``: model name,
    version and card digest, encoder, its weights digest and variant, random-weights flag).
    ``variance`` is the GP's predictive variance, NaN for detectors without one.
    """
    label = f"model {name}" + (f" v{card.get('version')}" if card and card.get("version") is not None else "")
    score, variance = detector_scores(detector, data.X, label)
    rows = data.rows
    setting, datasets = train_setting(card)
    frame = pd.DataFrame(
        {
            "utt_id": rows["utt_id"].to_numpy(),
            "dataset": rows["dataset"].to_numpy(),
            "split": rows["split"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "attack": rows["attack"].to_numpy(),
            "speaker": rows["speaker"].to_numpy(),
            "detector": name,
            "score": score,
            "p_spoof": p_spoof_from_score(score),
            "variance": np.asarray(variance, dtype=np.float64),
            "train_setting": setting,
            "train_datasets": TRAIN_DATASET_SEPARATOR.join(datasets),
            # what the card says the detector trained on, and what these rows are (tasks/evaluate/overlap.py)
            **card_overlap_columns(card),
            "eval_set_digest": eval_set_digests(rows).to_numpy() if "sha256" in rows.columns else None,
            **provenance_of_card(card),
        }
    )
    for column in CONDITION_COLUMNS:
        if column in rows.columns and rows[column].notna().any():
            frame[column] = rows[column].to_numpy()
    return frame


def score_eval_sets(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: Mapping[str, tuple[object, dict]],
    datasets: list[str],
    splits: list[str],
) -> pd.DataFrame:
    """Scores of every detector on every dataset's eval splits (the cross-dataset matrix rows).

    ``detectors`` maps name → (detector, model card); each is scored on the store rows of
    its own encoder, layer and pooling.
    """
    frames = []
    for name, (detector, card) in detectors.items():
        for dataset in datasets:
            data = labelled_inputs(
                detector, manifest, store_root, EmbeddingSetting.of_card(card), datasets=[dataset], splits=splits
            )
            frames.append(score_rows(detector, name, data, card))
    return pd.concat(frames, ignore_index=True)
