"""SpoofCeleb (Jung et al. 2024; Hugging Face ``jungjee/spoofceleb``): TITW speech and 23 TTS systems.

Layout::

    spoofceleb/                                  ROOT (or the folder holding spoofceleb/)
      flac/{train,development,evaluation}/aXX/idXXXXX/<clip>.flac
      metadata/{train,development,evaluation}.csv    file,speaker,attack
                                                     a00/id10318/YYsxcZ5saac-00002-006.flac,id10318,a00

``a00`` is bona fide (TITW speech), every other ``aXX`` a TTS system (spoof, ``attack`` = aXX).
Splits ``train``/``development``/``evaluation`` → ``train``/``dev``/``eval``. With the metadata
CSVs the rows are theirs (a listed file that is absent is rejected ``audio file missing``);
without them the folders are walked and the attack and speaker read from the path. ``utt_id``
is ``<split>/<file without extension>``. Option ``splits`` (default all three).
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.scan import none_if_dash, read_table, rel_posix, strip_extension, walk_audio

SPLITS = {"train": "train", "development": "dev", "evaluation": "eval"}
BONAFIDE_ATTACK = "a00"


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "spoofceleb", root / "SpoofCeleb"):
        if (candidate / "flac").is_dir() or (candidate / "metadata").is_dir():
            return candidate
    raise LayoutError(
        f"{root} is not a SpoofCeleb root: expected flac/{{train,development,evaluation}}/aXX/idXXXXX/*.flac "
        f"and metadata/{{train,development,evaluation}}.csv (in ROOT or ROOT/spoofceleb); found: {listing(root)}"
    )


def _row(split_folder: str, rel: str, speaker: str | None, attack: str | None, path: Path, source: str) -> dict:
    parts = Path(rel).parts
    attack = attack or (parts[0] if parts else None)
    speaker = speaker or (parts[1] if len(parts) > 2 else None)
    bona = attack == BONAFIDE_ATTACK
    return {
        "utt_id": f"{split_folder}/{strip_extension(rel)}",
        "split": SPLITS[split_folder],
        # an attack id other than aNN is kept, and finalize rejects the label it cannot read
        "label": BONAFIDE if bona else (SPOOF if attack and attack.startswith("a") else attack),
        "attack": None if bona else attack,
        "speaker": speaker,
        "path": str(path),
        "_source": source,
    }


def ingest(
    root: str | os.PathLike,
    dataset: str = "spoofceleb",
    *,
    splits: tuple[str, ...] | list[str] = ("train", "dev", "eval"),
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    base = _find_root(require_dir(root, "SpoofCeleb"))
    unknown = [s for s in splits if s not in SPLITS.values()]
    if unknown:
        raise OptionError(f"spoofceleb: unknown split(s) {unknown}; known: {list(SPLITS.values())}")
    candidates: list[dict] = []
    rejects: list[dict] = []
    found = []
    for folder, split in SPLITS.items():
        if split not in splits:
            continue
        audio = base / "flac" / folder
        meta = base / "metadata" / f"{folder}.csv"
        if meta.is_file():
            found.append(meta.name)
            table = read_table(meta, delimiter=",")
            missing = [c for c in ("file", "attack") if c not in table.columns]
            if missing:
                raise LayoutError(
                    f"{meta}: missing column(s) {missing}; expected file,speaker,attack, found {table.columns}"
                )
            rejects += [
                reject(dataset, f"{meta}:{n}", None, f"unparseable protocol line: {why}") for n, why in table.bad
            ]
            for number, record in table.rows:
                rel = record["file"].strip()
                candidates.append(
                    _row(
                        folder,
                        rel,
                        none_if_dash(record.get("speaker")),
                        none_if_dash(record["attack"]),
                        audio / rel,
                        f"{meta}:{number}",
                    )
                )
        elif audio.is_dir():
            found.append(f"flac/{folder}")
            for path in walk_audio(audio):
                candidates.append(_row(folder, rel_posix(path, audio), None, None, path, str(path)))
    if not found:
        raise LayoutError(
            f"{base}: no SpoofCeleb split among {list(SPLITS)} (metadata/<split>.csv or flac/<split>/); "
            f"found: {listing(base)}, flac/: {listing(base / 'flac')}"
        )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
