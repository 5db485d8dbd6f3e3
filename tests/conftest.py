"""Shared fixtures: small audio written by the tests, never downloaded."""

from __future__ import annotations

import os

# Tests never reach a hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tasks.ingest.common import finalize


def write_tone(path, seconds: float, sample_rate: int = 16000, seed: int = 0, fmt: str | None = None) -> str:
    """A harmonic tone with noise: cheap, deterministic, speech-band audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 100 + 80 * rng.random()
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.random() * 6) / k for k in range(1, 6))
    wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(len(t))
    sf.write(str(path), wave.astype(np.float32), sample_rate, format=fmt)
    return str(path)


@pytest.fixture
def audio_manifest(tmp_path) -> pd.DataFrame:
    """A valid manifest of 12 short files of varied length (two datasets, both labels)."""
    rows = []
    for i in range(12):
        dataset = "alpha" if i < 8 else "beta"
        seconds = 0.4 + 0.23 * i
        path = write_tone(tmp_path / f"utt{i:02d}.flac", seconds, seed=i)
        rows.append(
            {
                "utt_id": f"utt{i:02d}",
                "split": "train",
                "label": "bonafide" if i % 2 else "spoof",
                "attack": None if i % 2 else "A01",
                "speaker": f"s{i % 3}",
                "path": path,
                "dataset": dataset,
            }
        )
    frames = []
    for dataset in ("alpha", "beta"):
        result = finalize(dataset, [r for r in rows if r["dataset"] == dataset], progress=False)
        frames.append(result.manifest)
    return pd.concat(frames, ignore_index=True)
