"""Shared fixtures: small audio written by the tests, never downloaded."""

from __future__ import annotations

import os
import tempfile

# Tests never reach a hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Local checkpoints' digests (tasks/embed/encoder.py) are cached per test run, not in ~/.cache.
os.environ.setdefault("ADDGP_CACHE_DIR", tempfile.mkdtemp(prefix="addgp-test-cache-"))

import pandas as pd
import pytest
from helpers import write_tone

from tasks.ingest.common import finalize


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
