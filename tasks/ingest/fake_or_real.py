"""Fake-or-Real (FoR; Reimao & Tzerpos 2019), any of its four versions.

Each version unpacks to ``training/``, ``validation/`` and ``testing/`` (→ train, dev, eval), each
with ``real/`` and ``fake/``. ROOT may be a version folder, a folder holding it (as the Kaggle
copy nests them) or several versions; the version is read from the folder names into the
``version`` column (option ``version`` forces or selects one). FoR publishes no speaker or
attack per file. Layout and ``utt_id``: docs/ingest.md, "``fake_or_real``".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, require_dir
from tasks.ingest.scan import rel_posix, strip_extension, subdirs, walk_audio

SPLITS = {"training": "train", "validation": "dev", "testing": "eval"}
LABEL_DIRS = {"real": BONAFIDE, "fake": SPOOF}
VERSIONS = ("for-original", "for-norm", "for-2sec", "for-rerecorded")
VERSION_ALIASES = {
    "for-2seconds": "for-2sec",
    "for-rerec": "for-rerecorded",
    "original": "for-original",
    "norm": "for-norm",
    "2sec": "for-2sec",
    "rerec": "for-rerecorded",
    "rerecorded": "for-rerecorded",
}
_VERSION_PATTERNS = (
    (re.compile(r"2[-_ ]?sec", re.IGNORECASE), "for-2sec"),
    (re.compile(r"rerec", re.IGNORECASE), "for-rerecorded"),
    (re.compile(r"norm", re.IGNORECASE), "for-norm"),
    (re.compile(r"orig", re.IGNORECASE), "for-original"),
)


def version_of(path: Path) -> str | None:
    """The FoR version named by the innermost folder of PATH that names one."""
    for part in reversed(path.parts):
        for pattern, version in _VERSION_PATTERNS:
            if pattern.search(part):
                return version
    return None


def _is_version_root(folder: Path) -> bool:
    return any((folder / s).is_dir() for s in SPLITS)


def find_version_roots(root: Path, depth: int = 3) -> list[Path]:
    """Folders (ROOT or up to ``depth`` levels below) that hold training/validation/testing."""
    if _is_version_root(root):
        return [root]
    found: list[Path] = []
    frontier = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for folder in frontier:
            for child in subdirs(folder):
                (found if _is_version_root(child) else nxt).append(child)
        if found:
            return found
        frontier = nxt
    return found


def ingest(
    root: str | os.PathLike,
    dataset: str = "fake_or_real",
    *,
    version: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    root = require_dir(root, "Fake-or-Real")
    if version is not None and version not in VERSIONS:
        if version not in VERSION_ALIASES:
            raise OptionError(f"fake_or_real: version must be one of {list(VERSIONS)}, got {version!r}")
        version = VERSION_ALIASES[version]
    roots = find_version_roots(root)
    if not roots:
        raise LayoutError(
            f"{root} is not a Fake-or-Real root: expected training/, validation/ and testing/ folders with real/ "
            f"and fake/ inside (in ROOT or a for-* folder below it); found: {listing(root)}"
        )
    # Detect each version from ROOT's own name and the folders below it (not from ROOT's
    # parents, whose names are none of our business).
    tagged = [(r, version_of(Path(root.name, *r.relative_to(root).parts))) for r in roots]
    if version is not None:
        if len(tagged) == 1:
            tagged = [(tagged[0][0], version)]
        else:
            tagged = [(r, v) for r, v in tagged if v == version]
            if not tagged:
                raise LayoutError(f"{root}: no Fake-or-Real version {version!r} here; found {[str(r) for r in roots]}")
    versions = [v for _, v in tagged]
    if len(tagged) > 1 and len(set(versions)) < len(versions):
        raise LayoutError(
            f"{root}: several Fake-or-Real folders ({[str(r) for r, _ in tagged]}) map to the versions {versions}; "
            f"point ROOT at one of them or pass version=…"
        )

    candidates: list[dict] = []
    for version_root, name in tagged:
        for subset, split in SPLITS.items():
            for label_dir, label in LABEL_DIRS.items():
                folder = version_root / subset / label_dir
                if not folder.is_dir():
                    continue
                for path in walk_audio(folder):
                    rel = strip_extension(rel_posix(path, version_root))
                    candidates.append(
                        {
                            "utt_id": f"{name or 'for'}/{rel}",
                            "split": split,
                            "label": label,
                            "attack": None,
                            "speaker": None,
                            "path": str(path),
                            "version": name,
                            "subset": subset,
                        }
                    )
    if not candidates:
        raise LayoutError(
            f"{root}: found {[str(r) for r, _ in tagged]} but no audio in its {{training,validation,testing}}/{{real,fake}}/ folders"
        )
    return finalize(dataset, candidates, [], workers=workers, progress=progress)
