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
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from addgp.contracts import p_spoof_from_score, split_encoder_variant
from storage.models import DIGEST_KEY
from storage.paths import atomic_write, exists, filesystem, join, read_parquet_table

SCORE_COLUMNS = ["utt_id", "dataset", "split", "label", "attack", "detector", "score", "p_spoof", "variance"]
# Which model and encoder made each score, repeated on every row of a detector. Columns rather
# than Parquet key-value metadata: they survive what people do with score files — concatenating
# or pooling several (`addgp report A B`, `addgp metrics`), CSV export, conversion to other
# tools' formats — where file-level metadata would be lost or ambiguous. A null is "unknown"
# (score files written before these columns, other tools' scores).
PROVENANCE_COLUMNS = [
    "model_name",  # the registry name (ROOT/NAME)
    "model_version",  # N of ROOT/NAME/vN
    "model_digest",  # the model card's digest (storage.models.card_digest): which exact card and weights
    "encoder",  # the encoder's name as on the card and in the embedding store (id, @revision or @digest, +variant)
    "encoder_weights_digest",  # the encoder weights' digest recorded at training (null when not recorded)
    "encoder_variant",  # fp32 or int8
    "random_weights",  # the encoder had random (untrained) weights: the scores only test the pipeline
]


def provenance_of_card(card: Mapping | None) -> dict:
    """The ``PROVENANCE_COLUMNS`` values of a detector's scores, from its model card (None = unknown)."""
    card = card or {}
    encoder = card.get("encoder")
    return {
        "model_name": card.get("name"),
        "model_version": card.get("version"),
        "model_digest": card.get(DIGEST_KEY),
        "encoder": encoder,
        "encoder_weights_digest": card.get("encoder_weights_digest"),
        "encoder_variant": split_encoder_variant(str(encoder))[1] if encoder else None,
        "random_weights": card.get("random_weight_encoder"),
    }


def score_provenance(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (detector, provenance) of a score table: ``detector`` and ``PROVENANCE_COLUMNS``.

    Columns a table lacks (old score files, other tools' scores) are null, i.e. unknown; a
    detector whose rows came from several models (pooled files) has one row per model.
    """
    table = scores.reindex(columns=["detector", *PROVENANCE_COLUMNS]).astype(object)
    table = table.where(table.notna(), None)
    # A version column with nulls reads back as floats (3.0); a flag as numpy booleans.
    table["model_version"] = [None if v is None else int(v) for v in table["model_version"]]
    table["random_weights"] = [None if v is None else bool(v) for v in table["random_weights"]]
    return table.drop_duplicates().reset_index(drop=True)


def write_scores(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Scores as Parquet: utt_id, dataset, split, label, attack, detector, score (LLR), p_spoof, variance,
    then the rest of the table's columns as they are (``PROVENANCE_COLUMNS``, train setting, conditions)."""
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"score table for {path} lacks column(s) {missing}")
    table = pa.Table.from_pandas(
        df[SCORE_COLUMNS + [c for c in df.columns if c not in SCORE_COLUMNS]], preserve_index=False
    )
    with atomic_write(path) as handle:
        pq.write_table(table, handle)
    return str(path)


def complete_score_table(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A score table from another tool (``source`` names it in errors), made whole for evaluation.

    ``detector``, ``dataset``, ``score`` and ``label`` are required; a missing ``p_spoof`` is
    sigmoid(−score), missing ``split``/``attack`` are null, a missing ``utt_id`` numbers the
    rows, a missing ``variance`` is NaN, missing ``PROVENANCE_COLUMNS`` are null (unknown).
    """
    missing = [c for c in ("detector", "dataset", "score", "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} lack column(s) {missing}; found {list(frame.columns)}")
    frame = frame.copy()
    if "p_spoof" not in frame.columns:
        frame["p_spoof"] = p_spoof_from_score(frame["score"].to_numpy(dtype=float))
    for column in ("split", "attack"):
        if column not in frame.columns:
            frame[column] = None
    if "utt_id" not in frame.columns:
        frame["utt_id"] = [str(i) for i in range(len(frame))]
    if "variance" not in frame.columns:
        frame["variance"] = float("nan")
    for column in PROVENANCE_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """A score table from Parquet or CSV (for `addgp metrics` on other tools' output)."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"score file {path} does not exist")
    if str(path).endswith((".csv", ".tsv", ".txt")):
        with fs.open(p, "rb") as handle:
            return pd.read_csv(handle, sep=None, engine="python")
    fix = "pass the Parquet table `addgp evaluate -o` wrote, a report's scores.parquet, or a .csv/.tsv score table"
    return read_parquet_table(path, "score table", fix).to_pandas()


def new_run_id(reports_root: str | os.PathLike, name: str) -> str:
    """``<UTC time>-<name>``, with ``-2``, ``-3``, … appended when a report of that id exists.

    Two runs started in the same second get different ids as long as the second one asks
    after the first published (the nightly flow asks under its lock).
    """
    base = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"
    run_id, n = base, 2
    while exists(join(reports_root, run_id)):
        run_id, n = f"{base}-{n}", n + 1
    return run_id


def publish_report(
    files: Mapping[str, str | bytes],
    reports_root: str | os.PathLike,
    run_id: str,
    scores: pd.DataFrame | None = None,
    *,
    replace: bool = True,
) -> str:
    """Write a report's files (and ``scores.parquet``) to ``reports_root/run_id`` at once; point LATEST at it.

    The files are assembled in a hidden sibling folder and renamed into place, so a reader
    never sees half a report. A report of the same run id is replaced whole, or, with
    ``replace=False``, kept (FileExistsError).
    """
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise ValueError(f"run id {run_id!r} cannot name a report folder: no '/', '\\' or leading '.'")
    for name in files:
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ":" in parts[0] or any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                f"report file name {name!r} would leave the report folder; use a relative name like plots/x.png"
            )
    fs, root = filesystem(reports_root)
    target = join(root, run_id)
    if not replace and fs.exists(target):
        raise FileExistsError(f"report {target} exists and is never overwritten; publish under another run id")
    fs.makedirs(root, exist_ok=True)
    local = "file" in fs.protocol
    build = Path(tempfile.mkdtemp(prefix=".building-", dir=root if local else None))
    try:
        os.chmod(build, 0o755)  # mkdtemp makes it private; a published report is for the team to read
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
    """The ``metrics.json`` document of a published report folder."""
    fs, p = filesystem(join(report_dir, "metrics.json"))
    with fs.open(p, "r") as handle:
        return json.load(handle)


def list_reports(reports_root: str | os.PathLike) -> list[str]:
    """Run ids of every published report under ``reports_root``, in run-id order.

    A published report is a visible folder holding ``metrics.json``; folders still being
    assembled (hidden ``.building-*``) never count. Default run ids start with the UTC
    time (``20250101T000000Z-demo``), so run-id order is publication order.
    """
    fs, root = filesystem(reports_root)
    if not fs.exists(root):
        return []
    run_ids = []
    for entry in fs.ls(root, detail=True):
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "directory" or name.startswith((".", "_")):
            continue
        if fs.exists(f"{root}/{name}/metrics.json"):
            run_ids.append(name)
    return sorted(run_ids)


def previous_report(reports_root: str | os.PathLike, run_id: str | None = None) -> str | None:
    """The report a new run ``run_id`` compares with: LATEST, unless LATEST is ``run_id`` itself
    (a re-run of the same id), then the newest other report; None before the first one."""
    latest = latest_report(reports_root)
    if latest is not None and run_id is not None and latest.rstrip("/").rsplit("/", 1)[-1] == run_id:
        others = [r for r in list_reports(reports_root) if r != run_id]
        latest = join(reports_root, others[-1]) if others else None
    if latest is not None and not exists(join(latest, "metrics.json")):
        return None
    return latest


def report_history(reports_root: str | os.PathLike, exclude: str | None = None, limit: int | None = None) -> list[dict]:
    """``metrics.json`` of the published reports (the newest ``limit`` of them), in run-id order.

    ``exclude`` leaves out one run id (the run being published). Unreadable documents are
    skipped: one broken old report must not stop a new one.
    """
    run_ids = [r for r in list_reports(reports_root) if r != exclude]
    if limit is not None:
        run_ids = run_ids[-limit:] if limit > 0 else []
    documents = []
    for run_id in run_ids:
        try:
            document = read_report_metrics(join(reports_root, run_id))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            documents.append({**document, "run_id": run_id})
    return documents
