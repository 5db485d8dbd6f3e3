"""DiffSSD (Bhagtani et al. 2024, arXiv 2409.13049): LibriSpeech / LJ Speech bona fide and ten
diffusion-based generators, with train / validation / test splits, released with a label table.

**Layout: a guess.** No public listing of the release was found; the paper describes one label
table for the whole corpus, so the adapter reads the one ``.csv`` in ROOT (or option
``protocol``) with ``protocol_csv`` and recognises its path, label, generator and split columns
by name; every ``protocol_csv`` option may override that. The column names recognised:
docs/ingest.md, "``diffssd``".
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.ingest import protocol_csv
from tasks.ingest.common import IngestResult, LayoutError, listing, require_dir
from tasks.ingest.scan import pick_column, read_table

ATTACK_CANDIDATES = ("generator", "method", "system", "model", "source", "attack")
SPLIT_CANDIDATES = ("split", "subset", "partition", "set")
SPLIT_MAP = {
    "train": "train",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "dev": "dev",
    "test": "eval",
    "eval": "eval",
}


def ingest(
    root: str | os.PathLike,
    dataset: str = "diffssd",
    *,
    protocol: str | os.PathLike | None = None,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
    **protocol_options,
) -> IngestResult:
    base = require_dir(root, "DiffSSD")
    if protocol is None:
        tables = sorted(p for p in base.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if len(tables) != 1:
            raise LayoutError(
                f"{base}: expected one label table (*.csv) in ROOT, or protocol=… naming it "
                f"({'several: ' + ', '.join(p.name for p in tables) if tables else 'none found'}); found: {listing(base)}"
            )
        protocol = tables[0].name
    table_path = Path(protocol) if Path(protocol).is_absolute() else base / protocol
    columns = read_table(table_path).columns if table_path.is_file() else []
    guessed: dict = {}
    attack = pick_column(columns, None, ATTACK_CANDIDATES, "attack", table_path)
    split_column = pick_column(columns, None, SPLIT_CANDIDATES, "split", table_path)
    if attack:
        guessed["attack_column"] = attack
    if split_column:
        guessed.update(split_column=split_column, split_map=SPLIT_MAP)
    return protocol_csv.ingest(
        base,
        dataset,
        protocol=protocol,
        split=split,
        workers=workers,
        progress=progress,
        **{**guessed, **protocol_options},
    )
