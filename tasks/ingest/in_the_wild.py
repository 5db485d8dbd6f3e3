"""In-the-Wild (Müller et al., Interspeech 2022; ``release_in_the_wild.zip``).

One folder of wav files and a ``meta.csv`` (``file,speaker,label``; labels ``bona-fide`` /
``spoof``). Every row is split ``eval`` (the corpus has no official partition) and ``attack`` is
null (the generators are not published). ROOT is the folder with ``meta.csv`` or the one that
contains ``release_in_the_wild/``. Layout: docs/ingest.md, "``in_the_wild``".
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, reject, require_dir
from tasks.ingest.scan import none_if_dash, normalise_label, read_table, resolve_path, strip_extension

META = "meta.csv"


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "release_in_the_wild", root / "in_the_wild"):
        if (candidate / META).is_file():
            return candidate
    raise LayoutError(
        f"{root} is not an In-the-Wild root: expected {META} (columns file,speaker,label) beside the wav files, "
        f"in ROOT or ROOT/release_in_the_wild/; found: {listing(root)}"
    )


def ingest(
    root: str | os.PathLike,
    dataset: str = "in_the_wild",
    *,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    base = _find_root(require_dir(root, "In-the-Wild"))
    table = read_table(base / META, delimiter=",")
    missing = [c for c in ("file", "label") if c not in table.columns]
    if missing:
        raise LayoutError(
            f"{base / META}: missing column(s) {missing}; expected file,speaker,label, found {table.columns}"
        )
    rejects = [reject(dataset, f"{base / META}:{n}", None, f"unparseable protocol line: {why}") for n, why in table.bad]
    candidates = []
    for number, record in table.rows:
        name = record["file"]
        candidates.append(
            {
                "utt_id": strip_extension(os.path.normpath(name)),
                "split": split,
                "label": normalise_label(record["label"]),
                "attack": None,
                "speaker": none_if_dash(record.get("speaker")),
                "path": resolve_path(name, base),
                "_source": f"{base / META}:{number}",
            }
        )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
