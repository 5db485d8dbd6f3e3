"""Manifests and rejects tables: the Parquet files ingest writes and every later stage reads.

A manifest has one row per audio file with the columns of ``addgp.contracts.MANIFEST_SCHEMA``
plus optional corpus-specific columns. ``validate_manifest`` is the single place that checks
the contract; writers call it so that no invalid manifest ever reaches disk.

The rejects of manifest ``DIR/X.parquet`` live in ``DIR/_rejects/X.rejects.parquet``: out of
reach of a manifest glob (``addgp embed DIR/*.parquet``), and skipped by
``pyarrow.dataset.dataset(DIR)`` like every ``_``-prefixed path. Rejects written beside the
manifest by earlier versions (``DIR/X.rejects.parquet``) are still found, and a manifest
list that names one skips it with a warning.

Paths: every manifest written holds absolute audio paths (``write_manifest`` resolves
relative ones against the working directory of the process that ingested them), so a Dask
worker started in any directory opens the same files. A manifest written before that, from
a relative ROOT, is read with its relative paths resolved against the reader's working
directory (what every in-process run did when it opened them) and a warning naming it and
the fix: re-ingest it, which stores absolute paths.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from addgp.contracts import LABELS, MANIFEST_COLUMNS, MANIFEST_SCHEMA, NULLABLE_MANIFEST_COLUMNS, REJECTS_SCHEMA
from storage.paths import absolute, atomic_write, exists, filesystem, is_url, join, read_parquet_table

log = logging.getLogger(__name__)
REJECTS_DIR = "_rejects"
REJECTS_SUFFIX = ".rejects.parquet"


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


def _relative_paths(df: pd.DataFrame) -> pd.Series:
    """Which rows' ``path`` is relative (URLs count as absolute)."""
    return pd.Series([not (is_url(p) or os.path.isabs(p)) for p in df["path"]], index=df.index, dtype=bool)


def absolute_paths(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every relative ``path`` resolved against the working directory (a copy when any was)."""
    relative = _relative_paths(df)
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
    """Read and validate a manifest; a missing file is a FileNotFoundError naming it.

    Relative audio paths (manifests written by versions before paths were stored absolute)
    come back resolved against the working directory, with a warning saying so.
    """
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"manifest {path} does not exist; create it with `addgp ingest DATASET ROOT -o {path}`")
    df = read_parquet_table(
        path,
        "manifest",
        f"re-ingest it (`addgp ingest DATASET ROOT -o {path}`) or pass the manifest written by `addgp ingest`",
    ).to_pandas()
    df = validate_manifest(df, source=str(path))
    relative = _relative_paths(df)
    if relative.any():
        log.warning(
            "manifest %s holds %d relative audio path(s) (e.g. %r), written before manifests stored absolute paths: "
            "resolved against the current directory %s. If that is not where it was ingested, the files will be "
            "missing; re-ingest it (`addgp ingest DATASET ROOT -o %s`) to store absolute paths",
            path,
            int(relative.sum()),
            df.loc[relative, "path"].iloc[0],
            os.getcwd(),
            path,
        )
        df = absolute_paths(df)
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

    A rejects table among ``paths`` — a glob over a folder written before rejects moved to
    ``_rejects/`` — is skipped with a warning rather than failing the whole list.
    """
    kept = []
    for path in paths:
        if is_rejects_table(path):
            log.warning(
                "%s is a rejects table, not a manifest: skipped (newer ingests write rejects to %s/)", path, REJECTS_DIR
            )
        else:
            kept.append(path)
    if not kept:
        raise ManifestError(f"no manifest among {[str(p) for p in paths]}: only rejects tables")
    frames = [read_manifest(p) for p in kept]
    return validate_manifest(pd.concat(frames, ignore_index=True), source=", ".join(map(str, kept)))


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


def find_rejects(manifest_path: str | os.PathLike) -> str | None:
    """The rejects table of a manifest where it exists: ``_rejects/`` first, then the older
    place beside the manifest (``DIR/X.rejects.parquet``); None when there is none."""
    folder, stem = _split(manifest_path)
    for candidate in (rejects_path_for(manifest_path), join(folder, f"{stem}{REJECTS_SUFFIX}")):
        if exists(candidate):
            return candidate
    return None
