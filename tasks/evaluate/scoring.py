"""Score eval sets with registered detectors and compute the per-dataset metrics table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from addgp.contracts import p_spoof_from_score
from tasks.evaluate.crossdataset import CONDITION_COLUMNS, TRAIN_DATASET_SEPARATOR, train_setting
from storage.models import EmbeddingSetting
from tasks.train.data import labelled_embeddings


def score_rows(detector, name: str, data, card: dict | None = None) -> pd.DataFrame:
    """One detector's scores for a LabelledEmbeddings selection, in the score-table layout.

    Besides the contract columns (utt_id, dataset, split, label, attack, detector, score,
    p_spoof, variance) the table carries ``speaker`` (the bootstrap's resampling unit),
    the condition columns the manifest has (codec, transmission, language) and the
    detector's train setting from its model card (``train_setting``, ``train_datasets``).
    ``variance`` is the GP's predictive variance, NaN for detectors without one.
    """
    score = np.asarray(detector.score_llr(data.X), dtype=np.float64)
    variance = detector.predict_variance(data.X) if hasattr(detector, "predict_variance") else np.full(len(score), np.nan)
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
        }
    )
    for column in CONDITION_COLUMNS:
        if column in rows.columns and rows[column].notna().any():
            frame[column] = rows[column].to_numpy()
    return frame


def score_eval_sets(
    manifest: pd.DataFrame,
    store_root: str,
    detectors: dict[str, tuple[object, dict]],
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
            data = labelled_embeddings(manifest, store_root, EmbeddingSetting.of_card(card), datasets=[dataset], splits=splits)
            frames.append(score_rows(detector, name, data, card))
    return pd.concat(frames, ignore_index=True)
