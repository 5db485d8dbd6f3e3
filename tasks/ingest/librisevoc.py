"""LibriSeVoc (Sun et al., CVPR 2023 "AI-synthesized voice detection using neural vocoder artifacts").

LibriTTS speech and the same utterances vocoded back by six neural vocoders, one folder each::

    LibriSeVoc/                        ROOT
      gt/<spk>_<chapter>_<utt>_<seg>.wav            → bona fide (ground truth)
      diffwave/ melgan/ parallel_wave_gan/ wavegrad/ wavenet/ wavernn/
        <spk>_<chapter>_<utt>_<seg>[_gen].wav      → vocoded, attack = the folder

``speaker`` is the LibriTTS speaker id (first ``_`` field of the name). Every row is split
``eval`` (option ``split``); the release has no protocol file of its own.

**Resynthesised audio.** Every vocoder folder holds bona fide speech analysed to a
mel-spectrogram and synthesised back: the rows are marked ``resynthesised`` and labelled by
option ``resynthesised`` (``spoof``, ``bonafide`` or ``excluded``; unset: spoof, the corpus'
label) — see :mod:`tasks.ingest.label_policy`.
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import SPOOF
from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, require_dir
from tasks.ingest.label_policy import apply_resynthesis_policy, check_resynthesis_option
from tasks.ingest.scan import system_folder_rows

BONAFIDE_FOLDER = "gt"
VOCODERS = ("diffwave", "melgan", "parallel_wave_gan", "wavegrad", "wavenet", "wavernn")


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "LibriSeVoc", root / "librisevoc"):
        if (candidate / BONAFIDE_FOLDER).is_dir():
            return candidate
    raise LayoutError(
        f"{root} is not a LibriSeVoc root: expected {BONAFIDE_FOLDER}/ (LibriTTS speech) beside the vocoder "
        f"folders {', '.join(VOCODERS)}; found: {listing(root)}"
    )


def ingest(
    root: str | os.PathLike,
    dataset: str = "librisevoc",
    *,
    split: str = "eval",
    resynthesised: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    check_resynthesis_option("librisevoc", resynthesised)
    base = _find_root(require_dir(root, "LibriSeVoc"))
    rows, systems = system_folder_rows(base, [BONAFIDE_FOLDER], split)
    if not systems:
        raise LayoutError(
            f"{base}: {BONAFIDE_FOLDER}/ but none of the vocoder folders {', '.join(VOCODERS)}; found: {listing(base)}"
        )
    for row in rows:
        row["speaker"] = Path(row["path"]).name.split("_")[0]
        row["resynthesised"] = row["label"] == SPOOF
    rejects: list[dict] = []
    rows = apply_resynthesis_policy(dataset, rows, rejects, resynthesised, SPOOF)
    return finalize(dataset, rows, rejects, workers=workers, progress=progress)
