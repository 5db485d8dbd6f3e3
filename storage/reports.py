"""Score tables and report folders.

A report folder is built in a temporary sibling and renamed into place, so readers (the
team's browser, the next run's regression diff) never see half a report. ``LATEST`` names
the newest published run, for comparisons with the previous report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from addgp.storage.paths import atomic_write, filesystem, join

SCORE_COLUMNS = ["utt_id", "dataset", "split", "label", "attack", "detector", "score", "p_spoof", "variance"]


def write_scores(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Scores as Parquet: utt_id, dataset, split, label, attack, detector, score (LLR), p_spoof, variance."""
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"score table for {path} lacks column(s) {missing}")
    table = pa.Table.from_pandas(df[SCORE_COLUMNS + [c for c in df.columns if c not in SCORE_COLUMNS]], preserve_index=False)
    with atomic_write(path) as handle:
        pq.write_table(table, handle)
    return str(path)


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """A score table from Parquet or CSV (for `addgp metrics` on other tools' output)."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"score file {path} does not exist")
    with fs.open(p, "rb") as handle:
        if str(path).endswith((".csv", ".tsv", ".txt")):
            return pd.read_csv(handle, sep=None, engine="python")
        return pq.read_table(handle).to_pandas()


def publish_report(
    files: dict[str, str | bytes], reports_root: str | os.PathLike, run_id: str, scores: pd.DataFrame | None = None
) -> str:
    """Write a report's files (and ``scores.parquet``) to ``reports_root/run_id`` at once; point LATEST at it.

    The files are assembled in a hidden sibling folder and renamed into place, so a reader
    never sees half a report; a report of the same run id is replaced whole.
    """
    fs, root = filesystem(reports_root)
    target = join(root, run_id)
    fs.makedirs(root, exist_ok=True)
    local = "file" in fs.protocol
    build = Path(tempfile.mkdtemp(prefix=".building-", dir=root if local else None))
    try:
        for name, content in files.items():
            path = build / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        if scores is not None:
            write_scores(scores, build / "scores.parquet")
        if local:
            if Path(target).exists():
                shutil.rmtree(target)
            os.replace(build, target)
        else:
            fs.put(str(build), target, recursive=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    with atomic_write(join(root, "LATEST"), "w") as handle:
        handle.write(run_id)
    return target


def latest_report(reports_root: str | os.PathLike) -> str | None:
    """The folder of the newest published report, or None before the first one."""
    fs, root = filesystem(reports_root)
    pointer = join(root, "LATEST")
    if not fs.exists(pointer):
        return None
    with fs.open(pointer, "r") as handle:
        run_id = handle.read().strip()
    return join(root, run_id)


def read_report_metrics(report_dir: str | os.PathLike) -> dict:
    fs, p = filesystem(join(report_dir, "metrics.json"))
    with fs.open(p, "r") as handle:
        return json.load(handle)
