"""Lossy and narrowband codecs, run through real encoders: FFmpeg via PyAV.

Each codec condition encodes the waveform into an in-memory container, decodes it again
and resamples back to the working rate, exactly as a file re-encoded by a phone network,
a VoIP client or an upload pipeline would arrive. No codec is written here: PyAV's wheels
bundle FFmpeg with libmp3lame, libopus, FFmpeg's native AAC encoder, G.711 and
libopencore-amrnb. Encoders add a few milliseconds of priming delay (AAC 1024 samples,
AMR-NB a filter delay) that not every container trims; the decoded signal is aligned to
the input by cross-correlation over at most ``MAX_DELAY_S`` so that the output keeps the
input's length and timing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np
from scipy.signal import correlate

from tasks.degrade.base import (
    CodecUnavailable,
    DegradeContext,
    DegradeError,
    Transform,
    fit_length,
)

MAX_DELAY_S = 0.15

INSTALL_HINT = (
    "PyAV's wheels (`pip install 'av>=14'`, in pyproject.toml) bundle FFmpeg with libmp3lame, libopus, aac, "
    "G.711 and libopencore-amrnb; an encoder they lack (e.g. libgsm) needs PyAV built against a system FFmpeg "
    "that has it: install FFmpeg with that library (e.g. `apt-get install libavcodec-extra` or `./configure "
    "--enable-libgsm`), then `pip install av --no-binary av`"
)


@cache
def codec_available(name: str, mode: Literal["r", "w"]) -> bool:
    """Whether this machine's FFmpeg (inside PyAV) has encoder (mode 'w') or decoder ('r') ``name``."""
    import av

    try:
        av.codec.Codec(name, mode)
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Codec(Transform):
    """Encode with FFmpeg encoder ``encoder`` into ``container`` at ``codec_rate`` Hz, decode, resample back."""

    encoder: str
    container: str
    codec_rate: int
    bitrate: int | None = None  # bits per second; None for fixed-rate codecs (G.711)
    options: tuple[tuple[str, str], ...] = field(default=())  # encoder options, e.g. (("vbr", "off"),)

    kind = "codec"

    def check_available(self) -> None:
        if not codec_available(self.encoder, "w"):
            raise CodecUnavailable(
                f"the FFmpeg encoder {self.encoder!r} is not available on this machine. {INSTALL_HINT}"
            )

    def encode(self, wave: np.ndarray, sample_rate: int) -> tuple[bytes, int]:
        """(container bytes, payload bytes): the payload alone is what the bitrate claims."""
        import av

        self.check_available()
        buffer = io.BytesIO()
        payload = 0
        with av.open(buffer, "w", format=self.container) as output:
            stream = output.add_stream(self.encoder, rate=self.codec_rate, layout="mono")
            assert isinstance(stream, av.audio.stream.AudioStream)  # an audio encoder makes an audio stream
            if self.bitrate is not None:
                stream.bit_rate = self.bitrate
            if self.options:
                stream.codec_context.options = dict(self.options)
            native = stream.codec_context.codec.audio_formats
            sample_format = native[0].name if native else "s16"
            stream.format = sample_format
            resampler = av.AudioResampler(format=sample_format, layout="mono", rate=self.codec_rate)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(wave, dtype=np.float32)[None, :], format="flt", layout="mono"
            )
            frame.sample_rate = sample_rate
            for chunk in resampler.resample(frame) + resampler.resample(None):
                for packet in stream.encode(chunk):
                    payload += packet.size
                    output.mux(packet)
            for packet in stream.encode(None):
                payload += packet.size
                output.mux(packet)
        return buffer.getvalue(), payload

    def decode(self, data: bytes, sample_rate: int) -> np.ndarray:
        import av

        chunks: list[np.ndarray] = []
        try:
            with av.open(io.BytesIO(data), "r") as source:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                for frame in source.decode(source.streams.audio[0]):
                    chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
                chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
        except (av.error.FFmpegError, IndexError) as exc:
            raise DegradeError(f"the {self.encoder} copy failed to decode: {exc}") from None
        if not chunks:
            raise DegradeError(f"the {self.encoder} copy decoded to no audio")
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def apply(
        self, wave: np.ndarray, sample_rate: int, rng: np.random.Generator, context: DegradeContext
    ) -> np.ndarray:
        import av

        try:
            data, _ = self.encode(wave, sample_rate)
        except av.error.FFmpegError as exc:
            raise DegradeError(f"the {self.encoder} encoder failed: {exc}") from None
        decoded = self.decode(data, sample_rate)
        return fit_length(decoded[codec_delay(wave, decoded, int(MAX_DELAY_S * sample_rate)) :], len(wave))


def codec_delay(original: np.ndarray, decoded: np.ndarray, max_lag: int) -> int:
    """The lag in [0, max_lag] at which ``decoded`` best matches ``original`` (0 for silence)."""
    n = min(len(original), len(decoded))
    if n == 0 or not np.any(original[:n]):
        return 0
    padded = np.concatenate([decoded, np.zeros(max(0, n + max_lag - len(decoded)), dtype=np.float32)])
    scores = correlate(padded[: n + max_lag], original[:n], mode="valid", method="fft")
    return int(np.argmax(scores))
