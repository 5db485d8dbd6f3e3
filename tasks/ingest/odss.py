"""ODSS (Open Dataset of Synthetic Speech; Yaroshchuk et al., WIFS 2023).

The published folder layout could not be verified from a public copy, so this adapter reads the
corpus by what its folders *say* rather than by fixed depths: a ``natural``/``real``/… component
marks bona fide, a ``synthetic``/``fake``/… component or a known TTS system's folder marks a
spoof (and names the ``attack``), a language folder fills ``language``, and a file under none
of these is rejected. With a metadata table, option ``protocol`` reads it with
``protocol_csv``. The exact rules: docs/ingest.md, "``odss``".
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest import protocol_csv
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.scan import language_of, rel_posix, strip_extension, walk_audio

BONAFIDE_DIRS = frozenset({"natural", "real", "bonafide", "bona-fide", "bona_fide", "genuine", "original", "human"})
SPOOF_DIRS = frozenset({"synthetic", "fake", "spoof", "spoofed", "generated", "tts", "synthesized", "synthesised"})
KNOWN_SYSTEMS = ("fastpitch", "vits", "yourtts", "your_tts", "tacotron", "glow", "hifigan", "grad", "xtts", "bark")


def classify(parts: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """(label, attack, language) from the folder names of a path below ROOT (file name excluded)."""
    lowered = [p.lower() for p in parts]
    language = next((lang for lang in (language_of(p) for p in parts) if lang), None)
    for part in lowered:
        if part in BONAFIDE_DIRS:
            return BONAFIDE, None, language
    for i, part in enumerate(lowered):
        if part in SPOOF_DIRS:
            following = [p for p in parts[i + 1 :] if not language_of(p)]
            return SPOOF, (following[0] if following else None), language
    for part in parts:
        if any(system in part.lower() for system in KNOWN_SYSTEMS):
            return SPOOF, part, language
    return None, None, language


def ingest(
    root: str | os.PathLike,
    dataset: str = "odss",
    *,
    protocol: str | os.PathLike | None = None,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
    **protocol_options,
) -> IngestResult:
    root = require_dir(root, "ODSS")
    if protocol is not None:
        return protocol_csv.ingest(
            root, dataset, protocol=protocol, split=split, workers=workers, progress=progress, **protocol_options
        )
    if protocol_options:
        raise OptionError(f"odss: options {sorted(protocol_options)} are only accepted together with protocol=…")
    files = walk_audio(root)
    if not files:
        raise LayoutError(
            f"{root} holds no audio files; expected ODSS' natural/ and synthetic (TTS system) folders; found: {listing(root)}"
        )
    candidates: list[dict] = []
    rejects: list[dict] = []
    for path in files:
        rel = rel_posix(path, root)
        label, attack, language = classify(Path(rel).parts[:-1])
        utt_id = strip_extension(rel)
        if label is None:
            rejects.append(
                reject(
                    dataset,
                    str(path),
                    utt_id,
                    "cannot tell bona fide from spoof from the path (no natural/… or synthetic/TTS-system folder); "
                    "use protocol=… with a metadata table",
                )
            )
            continue
        candidates.append(
            {
                "utt_id": utt_id,
                "split": split,
                "label": label,
                "attack": attack,
                "speaker": None,
                "path": str(path),
                "language": language,
            }
        )
    if not candidates:
        raise LayoutError(
            f"{root}: none of its {len(files)} audio files is under a folder that says natural/real or synthetic/fake/<TTS system>; "
            f"read this copy with protocol_csv (docs/ingest.md); found: {listing(root)}"
        )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
