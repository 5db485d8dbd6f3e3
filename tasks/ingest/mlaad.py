"""MLAAD (Müller et al., Multi-Language Audio Anti-Spoofing Dataset) with M-AILABS as bona fide.

Fakes come from MLAAD's ``fake/<language>/<model_name>/`` folders and their pipe-separated
``meta.csv`` (``attack`` = ``model_name``); bona fide from M-AILABS, given as a second root
(option ``bonafide_root``). Every row is split ``eval``: MLAAD has no official partition.
Layouts, columns and options: docs/ingest.md, "``mlaad``".
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.scan import (
    language_of,
    list_audio,
    none_if_dash,
    read_table,
    rel_posix,
    strip_extension,
    subdirs,
    walk_audio,
)

META = "meta.csv"
BONAFIDE_CHOICES = ("all", "referenced")  # option bonafide: all M-AILABS clips, or those the fakes name


def find_fake_root(root: Path) -> Path:
    """ROOT/fake, or ROOT itself when it already is the fake folder (<language>/<model>/…)."""
    for candidate in (root / "fake", root):
        for language in subdirs(candidate):
            for model in subdirs(language):
                if (model / META).is_file() or list_audio(model):
                    return candidate
    raise LayoutError(
        f"{root} is not an MLAAD root: expected fake/<language>/<model_name>/ folders holding meta.csv and wav files "
        f"(in ROOT or ROOT/fake); found: {listing(root)}"
    )


def _reference_keys(path: str) -> set[str]:
    """Keys under which an M-AILABS clip and an MLAAD ``original_file`` meet: the path from
    ``<locale>/by_book/`` on (whatever prefix the MLAAD release used)."""
    parts = Path(path.replace("\\", "/")).parts
    if "by_book" in parts:
        i = parts.index("by_book")
        return {"/".join(parts[max(0, i - 1) :])}
    return {"/".join(parts[-4:])}


def _mailabs_clips(root: Path) -> list[dict]:
    """Every M-AILABS clip under ROOT (``<locale>/by_book/<gender>/[<speaker>/]<book>/wavs/*.wav``)."""
    locales = [d for d in subdirs(root) if (d / "by_book").is_dir()]
    if not locales:
        if (root / "by_book").is_dir():  # ROOT is one locale
            locales = [root]
        else:
            raise LayoutError(
                f"{root} is not an M-AILABS root: expected <locale>/by_book/<gender>/<speaker>/<book>/wavs/*.wav "
                f"(e.g. de_DE/by_book/female/eva_k/…); found: {listing(root)}"
            )
    clips = []
    for locale in locales:
        by_book = locale / "by_book"
        for path in walk_audio(by_book):
            parts = path.relative_to(by_book).parts  # gender/speaker/book/wavs/clip or mix/book/wavs/clip
            gender = parts[0] if len(parts) >= 4 else None
            speaker = parts[1] if gender in ("female", "male") and len(parts) >= 5 else None
            book = parts[-3] if len(parts) >= 3 and parts[-2] == "wavs" else None
            clips.append(
                {
                    "path": path,
                    "rel": rel_posix(path, root) if locale != root else f"{root.name}/{rel_posix(path, root)}",
                    "locale": locale.name if locale != root else root.name,
                    "gender": gender,
                    "speaker": speaker,
                    "book": book,
                }
            )
    return clips


def ingest(
    root: str | os.PathLike,
    dataset: str = "mlaad",
    *,
    bonafide_root: str | os.PathLike | None = None,
    bonafide: str = "all",
    languages: list[str] | tuple[str, ...] | None = None,
    keep_transcript: bool = False,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    if bonafide not in BONAFIDE_CHOICES:
        raise OptionError(f"mlaad: bonafide must be 'all' or 'referenced', got {bonafide!r}")
    root = require_dir(root, "MLAAD")
    fake_root = find_fake_root(root)
    mlaad_root = fake_root.parent if fake_root.name == "fake" else fake_root
    wanted = {str(language).lower() for language in languages} if languages else None

    candidates: list[dict] = []
    rejects: list[dict] = []
    referenced: set[str] = set()
    for language_dir in subdirs(fake_root):
        language = language_dir.name
        if wanted is not None and language.lower() not in wanted and (language_of(language) or "") not in wanted:
            continue
        for model_dir in subdirs(language_dir):
            wavs = list_audio(model_dir)
            meta_rows: dict[str, tuple[int, dict]] = {}
            meta_path = model_dir / META
            if meta_path.is_file():
                table = read_table(meta_path, join_overflow=True)
                if "path" not in table.columns:
                    rejects.append(
                        reject(
                            dataset, str(meta_path), None, f"unparseable protocol: no 'path' column in {table.columns}"
                        )
                    )
                rejects += [
                    reject(dataset, f"{meta_path}:{n}", None, f"unparseable protocol line: {why}")
                    for n, why in table.bad
                ]
                for number, record in table.rows if "path" in table.columns else []:
                    name = Path(record["path"]).name
                    if name in meta_rows:
                        rejects.append(
                            reject(dataset, f"{meta_path}:{number}", None, f"duplicate meta.csv row for {name}")
                        )
                        continue
                    meta_rows[name] = (number, record)
            for name in sorted(set(wavs) | set(meta_rows)):
                meta_number: int | None
                meta_number, record = meta_rows.get(name, (None, {}))
                path: str | Path
                if name in wavs:
                    path = wavs[name]
                else:  # listed in meta.csv but not in the folder: let finalize report it missing
                    given = record.get("path", name)
                    path = mlaad_root / given if not Path(given).is_absolute() else Path(given)
                original = none_if_dash(record.get("original_file"))
                if original:
                    referenced |= _reference_keys(original)
                row = {
                    "utt_id": f"fake/{language}/{model_dir.name}/{strip_extension(name)}",
                    "split": split,
                    "label": SPOOF,
                    "attack": none_if_dash(record.get("model_name")) or model_dir.name,
                    "speaker": None,
                    "path": str(path),
                    "language": none_if_dash(record.get("language")) or language,
                    "architecture": none_if_dash(record.get("architecture")),
                    "training_data": none_if_dash(record.get("training_data")),
                    "is_original_language": none_if_dash(record.get("is_original_language")),
                    "original_file": original,
                    "_source": f"{meta_path}:{meta_number}" if meta_number else str(path),
                }
                if keep_transcript:
                    row["transcript"] = record.get("transcript")
                candidates.append(row)

    if bonafide_root is not None:
        mailabs = require_dir(bonafide_root, "M-AILABS (the bona fide side of MLAAD)")
        for clip in _mailabs_clips(mailabs):
            language = language_of(clip["locale"]) or clip["locale"]
            if wanted is not None and language not in wanted and clip["locale"].lower() not in wanted:
                continue
            if bonafide == "referenced" and not (_reference_keys(clip["rel"]) & referenced):
                continue
            candidates.append(
                {
                    "utt_id": f"mailabs/{strip_extension(clip['rel'])}",
                    "split": split,
                    "label": BONAFIDE,
                    "attack": None,
                    "speaker": clip["speaker"],
                    "path": str(clip["path"]),
                    "language": language,
                    "locale": clip["locale"],
                    "gender": clip["gender"],
                    "book": clip["book"],
                }
            )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
