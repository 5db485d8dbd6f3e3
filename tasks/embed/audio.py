"""Decode audio files to the encoder's input: 16 kHz mono float32, optionally cropped.

Together with the ingest adapters this is the only code that reads corpus files.
soundfile decodes WAV/FLAC/OGG (libsndfile); soxr resamples. Both release the GIL, so a
thread pool keeps several files decoding while the model runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat

import numpy as np
import soundfile as sf
import soxr

# The longest file embedded whole when the caller sets no limit: a header claiming more (a
# 32 KB WAV declaring 1 Hz decodes to hours at 16 kHz) is rejected before any sample is read.
DEFAULT_MAX_SECONDS = 1800.0


class AudioError(ValueError):
    """A file that cannot be turned into encoder input; the message is the reject reason.

    ``transient``: the file could not be read (missing, no permission, an I/O error), which
    may be over when the next run looks again; otherwise its bytes are unusable as they are
    (cannot be decoded, too long, empty, silent, changed since ingest) and stay so. A path that
    is not a regular file (a folder, FIFO, device, socket; links followed) is transient: it
    may be replaced by the file it stands for.
    """

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.transient = transient


def load_audio(
    path: str,
    sample_rate: int = 16000,
    crop_seconds: float | None = None,
    *,
    expected_sha256: str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate``, first ``crop_seconds`` only when given.

    The file's bytes are read once: hashed and compared with ``expected_sha256`` (the
    manifest's, when given: a file changed since ingest is rejected, naming both hashes),
    then decoded from memory. ``max_seconds`` bounds what the header may declare (frames /
    rate) when the whole file would be decoded; with ``crop_seconds`` only the crop is read,
    so a long file is cropped rather than rejected.
    """
    data = _read_regular_file(path)
    if not data:
        raise AudioError("empty file (0 bytes)")
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise AudioError(
                f"file changed since ingest: sha256 {actual} on disk, {expected_sha256} in the manifest; re-ingest it"
            )
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            native_rate = handle.samplerate
            if crop_seconds is None and max_seconds is not None and handle.frames > max_seconds * native_rate:
                raise AudioError(
                    f"header declares {handle.frames / native_rate:.0f} s ({handle.frames} frames at {native_rate} Hz), "
                    f"over the limit of {max_seconds:g} s (embed.max_seconds); raise it or set encoder.crop_seconds"
                )
            frames = -1 if crop_seconds is None else int(np.ceil(crop_seconds * native_rate))
            audio = handle.read(frames=frames, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        # libsndfile's own text names the in-memory buffer ("Error opening <_io.BytesIO object at 0x…>:"),
        # not the file: keep only its reason.
        raise AudioError(f"failed to decode: {exc.error_string.strip() or 'not audio libsndfile can read'}") from None
    except RuntimeError as exc:
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


def _read_regular_file(path: str) -> bytes:
    """The bytes of ``path`` (links followed) when it is a regular file; ``AudioError`` otherwise.

    A FIFO would block the open (or the read) forever and a link to ``/dev/zero`` would read
    until memory runs out, and opening a device may itself act on it: the path is checked
    before it is opened, then opened non-blocking and checked again on the open descriptor
    (it may have been swapped in between) before any byte is read.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise AudioError(f"not a regular file ({_file_kind(mode)})", transient=True)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise AudioError("audio file missing", transient=True) from None
    except OSError as exc:
        raise AudioError(f"unreadable audio: {exc.strerror or exc}", transient=True) from None
    with os.fdopen(fd, "rb") as raw:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise AudioError(f"not a regular file ({_file_kind(mode)})", transient=True)
        os.set_blocking(fd, True)
        try:
            return raw.read()
        except OSError as exc:
            raise AudioError(f"unreadable audio: {exc.strerror or exc}", transient=True) from None


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def normalise(wave: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the utterance, as Wav2Vec2FeatureExtractor(do_normalize=True)."""
    return ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)).astype(np.float32, copy=False)
