"""Every named condition: one line each. A chain is several names joined by ``+``.

A condition is a tuple of transforms applied in order. Presets are conditions built from
other entries (``telephony`` is a band-pass, G.711 and a little noise). In a config,
``a+b`` chains registered conditions ``a`` and ``b`` (``mp3_64k+noise_pink_snr10``).
To add a condition: write the transform in its own file under tasks/degrade/ (a frozen
dataclass subclassing ``base.Transform``) and add its line to ``CONDITIONS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.degrade.base import Transform, canonical
from tasks.degrade.channel import BandLimit, Clipping, Gain, PacketLoss, Resample
from tasks.degrade.codecs import Codec
from tasks.degrade.noise import Babble, ColouredNoise, NoiseFolder
from tasks.degrade.reverb import Reverb

CLEAN = "clean"  # audio as shipped; never a registry entry
CHAIN_SEPARATOR = "+"
CBR = (("vbr", "off"),)  # constant bitrate: the condition's bitrate is the one on the wire

SNRS = (0, 5, 10, 20)

CONDITIONS: dict[str, tuple[Transform, ...]] = {
    # codecs (FFmpeg through PyAV)
    "mp3_32k": (Codec("libmp3lame", "mp3", 16000, 32000),),
    "mp3_64k": (Codec("libmp3lame", "mp3", 16000, 64000),),
    "mp3_128k": (Codec("libmp3lame", "mp3", 16000, 128000),),
    "aac_32k": (Codec("aac", "adts", 16000, 32000),),
    "aac_64k": (Codec("aac", "adts", 16000, 64000),),
    "opus_8k": (Codec("libopus", "ogg", 48000, 8000, CBR),),
    "opus_16k": (Codec("libopus", "ogg", 48000, 16000, CBR),),
    "opus_32k": (Codec("libopus", "ogg", 48000, 32000, CBR),),
    "g711_mulaw": (Codec("pcm_mulaw", "wav", 8000),),
    "g711_alaw": (Codec("pcm_alaw", "wav", 8000),),
    "amr_nb_12k2": (Codec("libopencore_amrnb", "amr", 8000, 12200),),
    "amr_nb_4k75": (Codec("libopencore_amrnb", "amr", 8000, 4750),),
    "gsm_fr": (Codec("libgsm", "gsm", 8000, 13000),),
    # channel
    "resample_8k": (Resample(8000),),
    "bandpass_telephone": (BandLimit(300.0, 3400.0),),
    "lowpass_4k": (BandLimit(0.0, 4000.0),),
    "packet_loss_5": (PacketLoss(0.05),),
    "packet_loss_10": (PacketLoss(0.10),),
    "packet_loss_20": (PacketLoss(0.20),),
    "clip_1pct": (Clipping(0.01),),
    "clip_5pct": (Clipping(0.05),),
    "gain_m20db": (Gain(-20.0),),
    "gain_p10db": (Gain(10.0),),
    # rooms
    "reverb_rt03": (Reverb(0.3),),
    "reverb_rt06": (Reverb(0.6),),
    "reverb_rt10": (Reverb(1.0),),
    # additive noise at 0 / 5 / 10 / 20 dB SNR
    **{
        f"noise_{colour}_snr{snr}": (ColouredNoise(colour, float(snr)),)
        for colour in ("white", "pink", "brown")
        for snr in SNRS
    },
    **{f"babble_snr{snr}": (Babble(float(snr)),) for snr in SNRS},
    **{f"noisefolder_snr{snr}": (NoiseFolder(float(snr)),) for snr in SNRS},
}

PRESETS: dict[str, tuple[str, ...]] = {
    # a landline/PSTN call: telephone band, a quiet line hiss, G.711 μ-law at 8 kHz
    "telephony": ("bandpass_telephone", "noise_pink_snr20", "g711_mulaw"),
    # a mobile call: some lost frames (muted before coding, so the call stays narrowband), AMR-NB at its top rate
    "mobile": ("bandpass_telephone", "packet_loss_5", "amr_nb_12k2"),
    # a VoIP call: wideband Opus at 16 kbit/s, bursty packet loss, a small room
    "voip": ("opus_16k", "packet_loss_5", "reverb_rt03"),
    # downloaded and re-uploaded: AAC at 64 kbit/s (platform transcode), then MP3 at 128 kbit/s
    "social-media": ("aac_64k", "mp3_128k"),
}


@dataclass(frozen=True)
class Condition:
    """A resolved condition: its name (as configured) and the transforms it applies in order."""

    name: str
    transforms: tuple[Transform, ...]

    def params(self) -> list[dict]:
        return [t.params() for t in self.transforms]

    def spec(self) -> str:
        """Canonical text of the parameters: what the cache key and the derived manifest record."""
        return canonical(self.params())

    @property
    def uses_context(self) -> bool:
        return any(t.uses_context for t in self.transforms)

    def check_available(self) -> None:
        for transform in self.transforms:
            transform.check_available()


def known_names() -> list[str]:
    return sorted(CONDITIONS) + sorted(PRESETS)


def _parts(name: str) -> list[str]:
    return [part.strip() for part in name.split(CHAIN_SEPARATOR)]


def unknown_parts(name: str) -> list[str]:
    """The parts of a (chained) condition name that are neither conditions nor presets."""
    return [part for part in _parts(name) if part not in CONDITIONS and part not in PRESETS]


def resolve(name: str) -> Condition:
    """The transforms of a condition, preset or ``+`` chain of them; KeyError naming the known names."""
    if name == CLEAN:
        raise KeyError(f"'{CLEAN}' is the audio as shipped, not a condition to apply")
    unknown = unknown_parts(name)
    if unknown:
        raise KeyError(f"unknown condition(s) {unknown} in {name!r}; known: {', '.join(known_names())}")
    transforms: list[Transform] = []
    for part in _parts(name):
        for step in PRESETS.get(part, (part,)):
            transforms.extend(CONDITIONS[step])
    return Condition(name, tuple(transforms))
