"""DFADD (Du et al., SLT 2024; Hugging Face ``isjwdu/DFADD``): VCTK speech and five diffusion /
flow-matching TTS systems.

Layout, as the Speech DF Arena's ``protocol_files/dfadd.csv`` names the test files::

    DFADD/                                   ROOT
      test_converted2/wav/p228_364.wav              → bona fide (VCTK speaker p228)
      test_converted2/wav/p227_164_GradTTS.wav      → spoof, attack GradTTS
      …/p227_164_NaturalSpeech2.wav  _StyleTTS2  _matcha  _pflow

A file ``<speaker>_<utt>.wav`` is bona fide; ``<speaker>_<utt>_<System>.wav`` is spoof with
``attack`` = System. The split comes from the folders on the way (``train`` → train,
``dev``/``valid``/``validation`` → dev, ``test``/``eval`` → eval; option ``split`` for the rest,
default eval). ``speaker`` is the VCTK id; ``utt_id`` is the path below ROOT without extension.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, reject, require_dir
from tasks.ingest.scan import rel_posix, strip_extension, walk_audio

# <VCTK speaker>_<utterance>[_<system>]: p227_164, p227_164_GradTTS
NAME = re.compile(r"^(?P<speaker>p\d+)_(?P<utt>\d+)(?:_(?P<system>[A-Za-z][A-Za-z0-9-]*))?$")
FOLDER_SPLITS = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "test": "eval", "eval": "eval"}


def _split(parts: tuple[str, ...], default: str) -> str:
    for part in parts:
        for word in re.split(r"[^a-z]+", part.lower()):
            if word in FOLDER_SPLITS:
                return FOLDER_SPLITS[word]
    return default


def ingest(
    root: str | os.PathLike,
    dataset: str = "dfadd",
    *,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    base = require_dir(root, "DFADD")
    rows = []
    unmatched: list[Path] = []
    for path in walk_audio(base):
        match = NAME.match(strip_extension(path.name))
        if match is None:
            unmatched.append(path)
            continue
        system = match["system"]
        rel = rel_posix(path, base)
        rows.append(
            {
                "utt_id": strip_extension(rel),
                "split": _split(Path(rel).parts[:-1], split),
                "label": SPOOF if system else BONAFIDE,
                "attack": system,
                "speaker": match["speaker"],
                "path": str(path),
            }
        )
    if not rows:
        example = f" (e.g. {rel_posix(unmatched[0], base)})" if unmatched else ""
        raise LayoutError(
            f"{base} is not a DFADD root: expected wav files named <speaker>_<utt>.wav (bona fide) and "
            f"<speaker>_<utt>_<System>.wav (spoof), e.g. p227_164_GradTTS.wav; found {len(unmatched)} other "
            f"audio file(s){example}; top level: {listing(base)}"
        )
    rejects = [
        reject(dataset, str(p), None, "file name is not <speaker>_<utt>[_<System>] (e.g. p227_164_GradTTS.wav)")
        for p in unmatched
    ]
    return finalize(dataset, rows, rejects, workers=workers, progress=progress)
