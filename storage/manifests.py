"""Manifests and rejects tables: the Parquet files ingest writes and every later stage reads.

A manifest has one row per audio file with the columns of ``addgp.contracts.MANIFEST_SCHEMA``
plus optional corpus-specific columns. ``validate_manifest`` is the single place that checks
the contract; writers call it so that no invalid manifest ever reaches disk.

The rejects of manifest ``DIR/X.parquet`` live in ``DIR/_rejects/X.rejects.parquet``: out of
reach of a manifest glob (``addgp embed DIR/*.parquet``), and skipped by
``pyarrow.dataset.dataset(DIR)`` like every ``_``-prefixed path.

Paths: every manifest holds absolute audio paths (``write_manifest`` resolves relative ones
against the working directory of the process that ingested them), so a Dask worker started
in any directory opens the same files.

Files in the formats of earlier versions (rejects beside the manifest, relative audio paths)
are refused with an ``OldFormatError`` naming the file; ``addgp migrate`` brings them up to
date (storage/migrations.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from addgp.contracts import LABELS, MANIFEST_COLUMNS, MANIFEST_SCHEMA, NULLABLE_MANIFEST_COLUMNS, REJECTS_SCHEMA
from storage.paths import OldFormatError, absolute, atomic_write, exists, filesystem, is_url, join, read_parquet_table

REJECTS_DIR = "_rejects"
REJECTS_SUFFIX = ".rejects.parquet"


class ManifestError(ValueError):
    """A manifest that breaks the contract of docs/architecture.md."""


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


def relative_paths(df: pd.DataFrame) -> pd.Series:
    """Which rows' ``path`` is relative (URLs count as absolute)."""
    return pd.Series([not (is_url(p) or os.path.isabs(p)) for p in df["path"]], index=df.index, dtype=bool)


def absolute_paths(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every relative ``path`` resolved against the working directory (a copy when any was)."""
    relative = relative_paths(df)
    if not relative.any():
        return df
    df = df.copy()
    df.loc[relative, "path"] = [absolute(p) for p in df.loc[relative, "path"]]
    return df


def _to_table(df: pd.DataFrame) -> pa.Table:
    fields = list(MANIFEST_SCHEMA) + [
        pa.field(c, pa.Table.from_pandas(df[[c]], preserve_index=False).schema.field(c).type)
        for c in df.columns
        if c not in MANIFEST_COLUMNS
    ]
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Validate and write a manifest atomically, its audio paths made absolute; returns the path written."""
    df = absolute_paths(validate_manifest(df, source=str(path)))
    table = _to_table(df)
    with atomic_write(path) as handle:
        pq.write_table(table, handle)
    return str(path)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a manifest; a missing file is a FileNotFoundError naming it, one of an
    earlier version (relative audio paths) an ``OldFormatError``."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"manifest {path} does not exist; create it with `addgp ingest DATASET ROOT -o {path}`")
    df = read_parquet_table(
        path,
        "manifest",
        f"re-ingest it (`addgp ingest DATASET ROOT -o {path}`) or pass the manifest written by `addgp ingest`",
    ).to_pandas()
    df = validate_manifest(df, source=str(path))
    relative = relative_paths(df)
    if relative.any():
        raise OldFormatError(
            path, f"{int(relative.sum())} relative audio path(s), e.g. {df.loc[relative, 'path'].iloc[0]!r}"
        )
    return df


def is_rejects_table(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a rejects table (by name, confirmed by its columns), not a manifest."""
    if not str(path).endswith(REJECTS_SUFFIX):
        return False
    if not exists(path):
        return False
    fs, p = filesystem(path)
    with fs.open(p, "rb") as handle:
        names = pq.read_schema(handle).names
    return set(REJECTS_SCHEMA.names) <= set(names) and not set(MANIFEST_COLUMNS) <= set(names)


def read_manifests(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Several manifests as one frame (e.g. all eval corpora of a benchmark).

    A rejects table among ``paths`` (a glob over a folder where an earlier version wrote
    rejects beside the manifests) is an ``OldFormatError``.
    """
    for path in paths:
        if is_rejects_table(path):
            raise OldFormatError(
                path, f"a rejects table beside the manifests, not a manifest (rejects live in {REJECTS_DIR}/)"
            )
    if not paths:
        raise ManifestError("no manifest given")
    frames = [read_manifest(p) for p in paths]
    return validate_manifest(pd.concat(frames, ignore_index=True), source=", ".join(map(str, paths)))


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


def _split(manifest_path: str | os.PathLike) -> tuple[str, str]:
    """(folder, stem) of a manifest path, local or fsspec URL."""
    folder, _, name = str(manifest_path).rstrip("/").rpartition("/")
    stem = name[: -len(".parquet")] if name.endswith(".parquet") else name
    return folder or ".", stem


def rejects_path_for(manifest_path: str | os.PathLike) -> str:
    """Where the rejects of a manifest are written: ``DIR/X.parquet`` → ``DIR/_rejects/X.rejects.parquet``."""
    folder, stem = _split(manifest_path)
    return join(folder, REJECTS_DIR, f"{stem}{REJECTS_SUFFIX}")


def old_rejects_path(manifest_path: str | os.PathLike) -> str:
    """Where earlier versions wrote the rejects of a manifest: beside it, ``DIR/X.rejects.parquet``."""
    folder, stem = _split(manifest_path)
    return join(folder, f"{stem}{REJECTS_SUFFIX}")


def find_rejects(manifest_path: str | os.PathLike) -> str | None:
    """The rejects table of a manifest, None when there is none; one only at the place of earlier
    versions (``old_rejects_path``) is an ``OldFormatError``."""
    path = rejects_path_for(manifest_path)
    if exists(path):
        return path
    old = old_rejects_path(manifest_path)
    if exists(old):
        raise OldFormatError(old, f"the rejects of {manifest_path} beside it (they live in {REJECTS_DIR}/ now)")
    return None
