"""Filesystem access for everything storage/ writes: local paths and fsspec URLs alike."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import fsspec


def filesystem(path: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``path`` and the path within it (``s3://b/k`` works like ``/tmp/k``)."""
    fs, _, (resolved,) = fsspec.get_fs_token_paths(str(path))
    return fs, resolved


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts, keeping URL schemes intact (``os.path.join`` would on ``s3://``)."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a location by URL (``s3://…``, ``file://…``) rather than a local path."""
    return "://" in str(path)


def absolute(path: str | os.PathLike) -> str:
    """``path`` made absolute against this process's working directory; URLs unchanged.

    Work shipped to Dask workers must carry absolute paths: a worker's working directory is
    wherever it was started, so a relative path there names another file, or none.
    """
    return str(path) if is_url(path) else os.path.abspath(os.path.expanduser(str(path)))


def exists(path: str | os.PathLike) -> bool:
    fs, p = filesystem(path)
    return fs.exists(p)


def makedirs(path: str | os.PathLike) -> None:
    fs, p = filesystem(path)
    fs.makedirs(p, exist_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write to a temporary sibling and move it into place only when the block succeeds.

    A crash mid-write leaves a ``.tmp-*`` file that readers never match, never a
    half-written ``path``. On local disks the final rename is atomic.
    """
    fs, final = filesystem(path)
    parent = final.rsplit("/", 1)[0] if "/" in final else "."
    fs.makedirs(parent, exist_ok=True)
    name = final.rsplit("/", 1)[-1]
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"
    try:
        with fs.open(tmp, mode) as handle:
            yield handle
        if "file" in fs.protocol:
            os.replace(tmp, final)
        else:
            fs.mv(tmp, final)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def local_path(path: str | os.PathLike) -> Path:
    """A local Path, for the few consumers (audio decoders, browsers) that need one."""
    fs, p = filesystem(path)
    if "file" not in fs.protocol:
        raise ValueError(f"{path} is not on the local filesystem; copy it locally first")
    return Path(p)


# The folders of a workdir (storage/workspace.py) that its files sit in, for naming the workdir to migrate.
_WORKDIR_FOLDERS = ("manifests", "embeddings", "models", "reports", "state")


class OldFormatError(ValueError):
    """A file in a format of an earlier addgp version: readers accept only the current formats, and
    ``addgp migrate WORKDIR`` (storage/migrations.py) brings a workdir's files up to them."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        super().__init__(
            f"{path}: {what}, a format of an earlier addgp version; run `addgp migrate {workdir_of(path)}` "
            "to bring the workdir up to date (`--dry-run` lists what it would change; docs/operations.md, "
            "'Upgrading a workspace')"
        )


def workdir_of(path: str | os.PathLike) -> str:
    """The workdir a file of the layout sits in: the folder above its nearest ``manifests/``,
    ``embeddings/``, ``models/``, ``reports/`` or ``state/``; else the file's own folder."""
    parts = str(path).rstrip("/").split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _WORKDIR_FOLDERS:
            return "/".join(parts[:i]) or "/"
    return "/".join(parts[:-1]) or "."


class NotParquetError(ValueError):
    """A file that should be Parquet and is not (or is damaged); the message names it and the fix."""


def read_parquet_table(path: str | os.PathLike, what: str, fix: str, **options):
    """``pyarrow.parquet.read_table`` of ``path``; a file that is not Parquet raises ``NotParquetError``
    naming the file, what it should be and ``fix`` — pyarrow's own message names only ``'<Buffer>'``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, p = filesystem(path)
    with fs.open(p, "rb") as handle:
        try:
            return pq.read_table(handle, **options)
        except pa.ArrowInvalid as exc:
            detail = str(exc).split("'<Buffer>': ", 1)[-1].strip()
            raise NotParquetError(f"{path}: not a Parquet {what} ({detail}); {fix}") from None


@contextmanager
def flocked(path: str | os.PathLike, *, blocking: bool = True) -> Iterator[IO[str]]:
    """Hold an exclusive OS lock (flock) on the local file ``path`` (created if missing) for the block.

    Yields the open file (a holder may write who it is into it). ``blocking=False`` raises
    BlockingIOError at once when another process holds it. The kernel drops an flock when its
    process dies, so a killed holder never leaves a stale lock behind.
    """
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
