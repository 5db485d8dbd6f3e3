"""Score audio files people bring with a registered model: decode → encoder → detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from addgp.contracts import p_spoof_from_score
from storage.models import EmbeddingSetting
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_paths
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


def encoder_spec_of_setting(setting: EmbeddingSetting) -> EncoderSpec:
    """The encoder run that makes the embeddings a model reads."""
    encoder, _, revision = setting.encoder.partition("@")
    return EncoderSpec(id=encoder, revision=revision or None, layers=(setting.layer,), pooling=setting.pooling, crop_seconds=setting.crop_s)


def score_files(items: list[str], model_path: str, batch_seconds: float = 64.0) -> pd.DataFrame:
    """One row per file: path, score (LLR), p_spoof, variance (GP models), error (files that could not be read)."""
    detector, card = load_detector(model_path)
    paths = expand_audio_paths(items)
    kept, X, failures = embed_paths(paths, encoder_spec_of_setting(EmbeddingSetting.of_card(card)), batch_seconds)
    rows = []
    if kept:
        score = np.asarray(detector.score_llr(X), dtype=np.float64)
        variance = detector.predict_variance(X) if hasattr(detector, "predict_variance") else np.full(len(kept), np.nan)
        rows = [
            {"path": p, "score": float(s), "p_spoof": float(q), "variance": float(v), "error": None}
            for p, s, q, v in zip(kept, score, p_spoof_from_score(score), variance)
        ]
    rows += [{"path": p, "score": None, "p_spoof": None, "variance": None, "error": reason} for p, reason in failures.items()]
    order = {p: i for i, p in enumerate(paths)}
    return pd.DataFrame(rows).sort_values("path", key=lambda s: s.map(order)).reset_index(drop=True)
