"""Decode audio files to the encoder's input: 16 kHz mono float32, optionally cropped.

Together with the ingest adapters this is the only code that reads corpus files.
soundfile decodes WAV/FLAC/OGG (libsndfile); soxr resamples. Both release the GIL, so a
thread pool keeps several files decoding while the model runs.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """A file that cannot be turned into encoder input; the message is the reject reason."""


def load_audio(path: str, sample_rate: int = 16000, crop_seconds: float | None = None) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate``, first ``crop_seconds`` only when given."""
    try:
        with sf.SoundFile(path) as handle:
            native_rate = handle.samplerate
            frames = -1 if crop_seconds is None else int(np.ceil(crop_seconds * native_rate))
            audio = handle.read(frames=frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError("audio file missing") from None
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"failed to decode: {exc}") from None
    if audio.size == 0:
        raise AudioError("zero-length audio")
    if not np.isfinite(audio).all():
        raise AudioError("audio contains NaN or infinite samples")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if native_rate != sample_rate:
        mono = soxr.resample(mono, native_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if crop_seconds is not None:
        mono = mono[: int(round(crop_seconds * sample_rate))]
    return np.ascontiguousarray(mono, dtype=np.float32)


def normalise(wave: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the utterance, as Wav2Vec2FeatureExtractor(do_normalize=True)."""
    return ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)).astype(np.float32, copy=False)
