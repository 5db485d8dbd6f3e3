"""TIMIT-TTS (Salvi et al., IEEE Access 2023; Zenodo record 6560159) with VidTIMIT as bona fide.

Fakes come from ``<subset>/{single_speaker,multi_speaker}/<tts_system>/`` (``CLEAN`` by
default; ``AUG``, ``DTW``, ``DTW_AUG`` are post-processed variants), ``attack`` = the TTS system
folder; bona fide is VidTIMIT's audio, given as a second root (option ``bonafide_root``). Every
row is split ``eval``. Layout, columns and options (and how to read a copy laid out otherwise,
with ``protocol_csv``): docs/ingest.md, "``timit_tts``".
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, require_dir
from tasks.ingest.scan import list_audio, rel_posix, strip_extension, subdirs, walk_audio

MODES = ("single_speaker", "multi_speaker")


def _is_subset(folder: Path) -> bool:
    return any((folder / m).is_dir() for m in MODES)


def find_subsets(root: Path) -> dict[str, Path]:
    if _is_subset(root):
        return {root.name: root}
    for base in (root, root / "TIMIT-TTS"):
        found = {d.name: d for d in subdirs(base) if _is_subset(d)}
        if found:
            return found
    return {}


def ingest(
    root: str | os.PathLike,
    dataset: str = "timit_tts",
    *,
    subsets: list[str] | tuple[str, ...] | str = ("CLEAN",),
    bonafide_root: str | os.PathLike | None = None,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    root = require_dir(root, "TIMIT-TTS")
    available = find_subsets(root)
    if not available:
        raise LayoutError(
            f"{root} is not a TIMIT-TTS root: expected <SUBSET>/single_speaker/<system>/*.wav and/or "
            f"<SUBSET>/multi_speaker/<system>/<speaker>/*.wav (SUBSET: CLEAN, AUG, DTW, DTW_AUG); found: {listing(root)}"
        )
    if subsets == "all" or list(subsets) == ["all"] or (len(available) == 1 and _is_subset(root)):
        chosen = available
    else:
        names = [subsets] if isinstance(subsets, str) else list(subsets)
        by_upper = {k.upper(): k for k in available}
        missing = [n for n in names if n.upper() not in by_upper]
        if missing:
            raise LayoutError(f"{root}: no TIMIT-TTS subset folder(s) {missing}; found {sorted(available)}")
        chosen = {by_upper[n.upper()]: available[by_upper[n.upper()]] for n in names}

    candidates: list[dict] = []
    for subset, folder in chosen.items():
        for system in subdirs(folder / "single_speaker"):
            for name, path_str in list_audio(system).items():
                candidates.append(
                    {
                        "utt_id": f"{subset}/single_speaker/{system.name}/{strip_extension(name)}",
                        "split": split,
                        "label": SPOOF,
                        "attack": system.name,
                        "speaker": None,
                        "path": path_str,
                        "subset": subset,
                        "speaker_mode": "single_speaker",
                    }
                )
        for system in subdirs(folder / "multi_speaker"):
            for path in walk_audio(system):
                rel = path.relative_to(system).parts
                candidates.append(
                    {
                        "utt_id": f"{subset}/multi_speaker/{system.name}/{strip_extension('/'.join(rel))}",
                        "split": split,
                        "label": SPOOF,
                        "attack": system.name,
                        "speaker": rel[0] if len(rel) > 1 else None,
                        "path": str(path),
                        "subset": subset,
                        "speaker_mode": "multi_speaker",
                    }
                )

    if bonafide_root is not None:
        vid = require_dir(bonafide_root, "VidTIMIT (the bona fide side of TIMIT-TTS)")
        speakers = [d for d in subdirs(vid) if (d / "audio").is_dir()]
        if not speakers:
            raise LayoutError(f"{vid} is not a VidTIMIT root: expected <speaker>/audio/*.wav; found: {listing(vid)}")
        for speaker in speakers:
            for path in walk_audio(speaker / "audio"):
                candidates.append(
                    {
                        "utt_id": f"vidtimit/{speaker.name}/{strip_extension(rel_posix(path, speaker / 'audio'))}",
                        "split": split,
                        "label": BONAFIDE,
                        "attack": None,
                        "speaker": speaker.name,
                        "path": str(path),
                        "subset": "vidtimit",
                        "speaker_mode": None,
                    }
                )
    return finalize(dataset, candidates, [], workers=workers, progress=progress)
