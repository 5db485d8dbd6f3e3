"""The degraded-audio cache: content-keyed audio files, each written once.

Layout::

    CACHE/<condition-slug>/<key[:2]>/<key>.wav

A file's key hashes what determines its samples: the source audio's sha256, the
condition's parameters, the seed, the working sample rate and (for babble / noise-folder
conditions) the digest of the audio mixed in. The same source content under the same
condition is therefore one file however many datasets or utt_ids point at it, a re-run
finds every file in place and writes nothing, and a killed run resumes where it stopped:
each file appears by an atomic rename, whole or not at all. Files are 32-bit float RF64 (the
64-bit WAV), so a gain or noise condition is stored without re-quantising or clipping it a
second time; RF64 rather than plain WAV because libsndfile stamps the time into a float WAV's
PEAK chunk, and the same samples must give the same bytes (the derived manifest's sha256).
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import soundfile as sf

from storage.paths import atomic_write, filesystem, join

SUFFIX = ".wav"


def cache_key(source_sha256: str, condition_spec: str, seed: int, sample_rate: int, context_digest: str = "") -> str:
    text = f"{source_sha256}\0{condition_spec}\0{seed}\0{sample_rate}\0{context_digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def condition_slug(condition: str, condition_spec: str) -> str:
    """Folder of one condition: readable name plus a hash of its parameters (a changed preset gets a new folder)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", condition).strip("._-")[:60] or "condition"
    return f"{readable}--{hashlib.sha256(condition_spec.encode()).hexdigest()[:10]}"


def cached_path(cache_root: str, condition: str, condition_spec: str, key: str) -> str:
    return join(cache_root, condition_slug(condition, condition_spec), key[:2], f"{key}{SUFFIX}")


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), sample_rate, format="RF64", subtype="FLOAT")
    return buffer.getvalue()


def write_audio(path: str, wave: np.ndarray, sample_rate: int) -> str:
    """Write one degraded file atomically; returns the sha256 of its bytes (the derived manifest's sha256)."""
    data = encode_wav(wave, sample_rate)
    with atomic_write(path) as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def cached_sha256(path: str) -> str | None:
    """sha256 of a cached file that exists and decodes, else None (then it is made again)."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        return None
    with fs.open(p, "rb") as handle:
        data = handle.read()
    try:
        sf.info(io.BytesIO(data))
    except (RuntimeError, sf.LibsndfileError):
        return None
    return hashlib.sha256(data).hexdigest()
