"""ADD 2022 and ADD 2023 (Audio Deep Synthesis Detection challenges; Zenodo 10843991, 12188055,
12175884, 12176326 for 2022 tracks 1 and 3 and 2023 track 1.2 rounds 1 and 2).

Each release is one folder of wav files plus label files (``<file>.wav genuine|fake`` a line);
the split comes from the label file's name and audio is found by file name anywhere below ROOT.
The releases do not name the generators, so ``attack`` is null. Registry names ``add2022`` and
``add2023`` read the same layout; its details: docs/ingest.md, "``add2022``, ``add2023``".
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from addgp.contracts import LABELS
from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, reject, require_dir
from tasks.ingest.scan import normalise_label, read_lines, read_table, rel_posix, strip_extension, walk_audio


def _looks_like_labels(path: Path) -> bool:
    """The first non-blank line reads ``<file>.<audio ext> <label>``."""
    lines, _ = read_lines(path)
    for _, line in lines:
        fields = line.split()
        if fields:
            return len(fields) >= 2 and strip_extension(fields[0]) != fields[0] and normalise_label(fields[1]) in LABELS
    return False


def _label_files(root: Path, labels: list[str] | str | None) -> list[Path]:
    if labels:
        named = [root / name for name in ([labels] if isinstance(labels, str) else labels)]
        missing = [str(p) for p in named if not p.is_file()]
        if missing:
            raise LayoutError(f"label file(s) {missing} not found; found in {root}: {listing(root)}")
        return named
    found = []
    for folder in (root / "label", root / "labels", root):
        if folder.is_dir():
            found += [p for p in sorted(folder.glob("*.txt")) if _looks_like_labels(p)]
    return found


def _split_of(name: str) -> str:
    lowered = name.lower()
    return "train" if "train" in lowered else "dev" if "dev" in lowered else "eval"


def _ingest(
    root: str | os.PathLike,
    dataset: str,
    *,
    labels: list[str] | str | None,
    split: str | None,
    workers: int,
    progress: bool,
) -> IngestResult:
    base = require_dir(root, f"{dataset} (ADD challenge release)")
    files = _label_files(base, labels)
    if not files:
        raise LayoutError(
            f"{base} is not an ADD challenge release: expected label files (*.txt under label/ or ROOT, lines "
            f"'<file>.wav genuine|fake') beside the wav files; found: {listing(base)}"
        )
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in walk_audio(base):
        by_name[path.name].append(path)
    candidates: list[dict] = []
    rejects: list[dict] = []
    for label_file in files:
        stem = label_file.stem.removesuffix("_label").removesuffix("label").rstrip("_")
        table = read_table(label_file, delimiter=None, header=False, columns=["file", "label"])
        rejects += [
            reject(dataset, f"{label_file}:{n}", None, f"unparseable protocol line: {why}") for n, why in table.bad
        ]
        for number, record in table.rows:
            name, source = record["file"], f"{label_file}:{number}"
            paths = by_name.get(Path(name).name, [])
            if len(paths) > 1:
                paths = [p for p in paths if stem and stem in rel_posix(p.parent, base).split("/")] or paths
            if len(paths) > 1:
                shown = ", ".join(rel_posix(p, base) for p in paths[:3])
                rejects.append(reject(dataset, source, strip_extension(name), f"ambiguous: {name} is at {shown}"))
                continue
            path = paths[0] if paths else base / name  # absent: finalize rejects it as missing
            extra = {k: v for k, v in record.items() if k.startswith("field_")}
            candidates.append(
                {
                    "utt_id": strip_extension(Path(name).name),
                    "split": split or _split_of(label_file.name),
                    "label": normalise_label(record["label"]),
                    "attack": None,
                    "speaker": None,
                    "path": str(path),
                    "label_file": label_file.name,
                    **extra,
                    "_source": source,
                }
            )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)


def ingest_2022(
    root: str | os.PathLike,
    dataset: str = "add2022",
    *,
    labels: list[str] | str | None = None,
    split: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    return _ingest(root, dataset, labels=labels, split=split, workers=workers, progress=progress)


def ingest_2023(
    root: str | os.PathLike,
    dataset: str = "add2023",
    *,
    labels: list[str] | str | None = None,
    split: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    return _ingest(root, dataset, labels=labels, split=split, workers=workers, progress=progress)
