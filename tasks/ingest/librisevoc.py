"""LibriSeVoc (Sun et al., CVPR 2023 "AI-synthesized voice detection using neural vocoder artifacts").

LibriTTS speech (``gt/``, bona fide) and the same utterances vocoded back by six neural
vocoders, one folder each (``attack`` = the folder). The vocoded rows are bona fide speech
analysed and synthesised back, so they are marked ``resynthesised`` and labelled by option
``resynthesised`` (:mod:`tasks.ingest.label_policy`). Every row is split ``eval``. Layout and
what it was checked against: docs/ingest.md, "``librisevoc``".
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
