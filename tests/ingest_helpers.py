"""Small builders for the ingest tests: real (tiny) audio files and bad ones."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_normal(int(round(seconds * SR)))).astype("float32")


def audio_bytes(seconds: float = 0.2, fmt: str = "WAV", seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _clip(seconds, seed), SR, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def write_audio(path: str | Path, seconds: float = 0.2, seed: int | None = None) -> Path:
    """A real audio file (format from the extension: .wav, .flac, .ogg …), ``seconds`` long."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".flac": "FLAC", ".ogg": "OGG", ".wav": "WAV"}.get(path.suffix.lower(), "WAV")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    sf.write(
        path, _clip(seconds, seed if seed is not None else abs(hash(path.name)) % 1000), SR, format=fmt, subtype=subtype
    )
    return path


def write_empty(path: str | Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_garbage(path: str | Path) -> Path:
    """A file with an audio extension that no decoder can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all " * 20)
    return path


def write_silent_header(path: str | Path) -> Path:
    """A valid WAV header with no samples (zero-length audio)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(0, dtype="float32"), SR, format="WAV", subtype="PCM_16")
    return path


def reasons(result) -> dict[str, str]:
    """{utt_id or source: reason} of an IngestResult's rejects."""
    import pandas as pd

    return {(r.source if pd.isna(r.utt_id) else r.utt_id): r.reason for r in result.rejects.itertuples()}


def row(result, utt_id: str) -> dict:
    m = result.manifest
    hits = m[m["utt_id"] == utt_id]
    assert len(hits) == 1, f"{utt_id!r} not in manifest: {sorted(m['utt_id'])[:20]}"
    return hits.iloc[0].to_dict()


def isnull(value) -> bool:
    """Null as a manifest cell can hold it (None, or NaN in pandas' string columns)."""
    import pandas as pd

    return value is None or bool(pd.isna(value))
