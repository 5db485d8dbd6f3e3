"""SONAR (Li et al. 2024, github.com/Jessegator/SONAR): a folder per generator plus ``real_samples``.

Layout (as the Speech DF Arena's ``protocol_files/sonar.csv`` names the files)::

    SONAR_dataset/                   ROOT (or the folder holding SONAR_dataset/)
      real_samples/4077_13754_000002_000000.wav     → bona fide
      AudioGen/ FlashSpeech/ NaturalSpeech3/ OpenAI_fixed/ PromptTTS2/ VALLE/ VoiceBox/ xTTS/
        <clip>.wav                                  → spoof, attack = the folder

Every row is split ``eval`` (option ``split``): SONAR is an evaluation set. ``speaker`` of a
bona fide clip is the first ``_`` field of its LibriTTS-style name. ``utt_id`` is the path
below ROOT without extension.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, require_dir
from tasks.ingest.scan import system_folder_rows

BONAFIDE_FOLDER = "real_samples"


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "SONAR_dataset", root / "SONAR" / "SONAR_dataset"):
        if (candidate / BONAFIDE_FOLDER).is_dir():
            return candidate
    raise LayoutError(
        f"{root} is not a SONAR root: expected {BONAFIDE_FOLDER}/ beside one folder per generator "
        f"(AudioGen/, VALLE/, xTTS/, …), in ROOT or ROOT/SONAR_dataset/; found: {listing(root)}"
    )


def ingest(
    root: str | os.PathLike,
    dataset: str = "sonar",
    *,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    base = _find_root(require_dir(root, "SONAR"))
    rows, systems = system_folder_rows(base, [BONAFIDE_FOLDER], split)
    if not systems:
        raise LayoutError(f"{base}: {BONAFIDE_FOLDER}/ but no generator folder beside it; found: {listing(base)}")
    for row in rows:
        if row["attack"] is None:
            row["speaker"] = Path(row["path"]).name.split("_")[0]
    return finalize(dataset, rows, [], workers=workers, progress=progress)
