"""Manifests and rejects tables: the Parquet files ingest writes and every later stage reads.

A manifest has one row per audio file with the columns of ``addgp.contracts.MANIFEST_SCHEMA``
plus optional corpus-specific columns. ``validate_manifest`` is the single place that checks
the contract; writers call it so that no invalid manifest ever reaches disk.
"""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from addgp.contracts import LABELS, MANIFEST_COLUMNS, MANIFEST_SCHEMA, NULLABLE_MANIFEST_COLUMNS, REJECTS_SCHEMA
from storage.paths import atomic_write, filesystem


class ManifestError(ValueError):
    """A manifest that breaks the contract of ARCHITECTURE.md."""


def validate_manifest(df: pd.DataFrame, source: str = "manifest") -> pd.DataFrame:
    """Check the manifest contract and return the frame with the required columns first.

    Raises ManifestError naming ``source`` and what is wrong: missing columns, nulls in
    required columns, labels outside bonafide/spoof, or a utt_id repeated within a dataset.
    """
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s) {missing}; a manifest needs {list(MANIFEST_COLUMNS)}")
    for column in MANIFEST_COLUMNS:
        if column in NULLABLE_MANIFEST_COLUMNS:
            continue
        n_null = int(df[column].isna().sum())
        if n_null:
            raise ManifestError(f"{source}: column '{column}' has {n_null} null value(s)")
    bad_labels = sorted(set(df["label"]) - set(LABELS))
    if bad_labels:
        raise ManifestError(f"{source}: unknown label(s) {bad_labels}; labels must be one of {list(LABELS)}")
    duplicated = df.duplicated(subset=["dataset", "utt_id"], keep=False)
    if duplicated.any():
        examples = df.loc[duplicated, ["dataset", "utt_id"]].head(3).to_dict("records")
        raise ManifestError(f"{source}: {int(duplicated.sum())} rows repeat a (dataset, utt_id), e.g. {examples}")
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return df[list(MANIFEST_COLUMNS) + extra].reset_index(drop=True)


def _to_table(df: pd.DataFrame) -> pa.Table:
    fields = list(MANIFEST_SCHEMA) + [
        pa.field(c, pa.Table.from_pandas(df[[c]], preserve_index=False).schema.field(c).type)
        for c in df.columns
        if c not in MANIFEST_COLUMNS
    ]
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Validate and write a manifest atomically; returns the path written."""
    df = validate_manifest(df, source=str(path))
    table = _to_table(df)
    with atomic_write(path) as handle:
        pq.write_table(table, handle)
    return str(path)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a manifest; a missing file is a FileNotFoundError naming it."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"manifest {path} does not exist; create it with `addgp ingest DATASET ROOT -o {path}`")
    with fs.open(p, "rb") as handle:
        df = pq.read_table(handle).to_pandas()
    return validate_manifest(df, source=str(path))


def read_manifests(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Several manifests as one frame (e.g. all eval corpora of a benchmark)."""
    frames = [read_manifest(p) for p in paths]
    return validate_manifest(pd.concat(frames, ignore_index=True), source=", ".join(map(str, paths)))


def empty_rejects() -> pd.DataFrame:
    return REJECTS_SCHEMA.empty_table().to_pandas()


def write_rejects(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write a rejects table (dataset, source, utt_id, reason) atomically."""
    missing = [c for c in REJECTS_SCHEMA.names if c not in df.columns]
    if missing:
        raise ValueError(f"rejects table for {path} lacks column(s) {missing}")
    table = pa.Table.from_pandas(df[REJECTS_SCHEMA.names], schema=REJECTS_SCHEMA, preserve_index=False)
    with atomic_write(path) as handle:
        pq.write_table(table, handle)
    return str(path)


def read_rejects(path: str | os.PathLike) -> pd.DataFrame:
    fs, p = filesystem(path)
    with fs.open(p, "rb") as handle:
        return pq.read_table(handle).to_pandas()


def rejects_path_for(manifest_path: str | os.PathLike) -> str:
    """Where the rejects of a manifest live: ``X.parquet`` → ``X.rejects.parquet``."""
    text = str(manifest_path)
    stem = text[: -len(".parquet")] if text.endswith(".parquet") else text
    return f"{stem}.rejects.parquet"
