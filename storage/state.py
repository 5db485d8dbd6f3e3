"""Small JSON state files of ``WORKDIR/state/`` (the inbox batch ledger, champion records, the
night in progress): written atomically, read with an error that names the file and the fix,
and changed under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from storage.paths import atomic_write, filesystem, flocked, join, local_path

T = TypeVar("T")


class StateFileError(ValueError):
    """A state file exists but cannot be read; the message names the file and what to do."""


def read_state(path: str | os.PathLike, default: Any, *, fix: str) -> Any:
    """The JSON document at ``path`` (``default`` when there is none).

    ``fix`` says what the operator can do when the file is damaged (a truncated write by
    another tool, a disk that filled up): it ends the error message.
    """
    fs, target = filesystem(path)
    if not fs.exists(target):
        return default
    with fs.open(target, "rb") as handle:
        raw = handle.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{path}: state file is damaged (not valid JSON: {exc}); {fix}") from None


def parse_state(path: str | os.PathLike, document: Any, parse: Callable[[Any], T], *, fix: str) -> T:
    """``parse(document)``, a document read from ``path``; one valid as JSON but not in the expected
    layout (hand-edited, written by another tool) is a StateFileError that names the file and ``fix``."""
    try:
        return parse(document)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateFileError(f"{path}: state file is damaged (not the expected layout: {exc!r}); {fix}") from None


def write_state(path: str | os.PathLike, document: Any) -> None:
    """Replace ``path`` with ``document`` at once: a reader sees the old file or the new one, never half."""
    with atomic_write(path) as handle:
        handle.write((json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode("utf-8"))


def remove_state(path: str | os.PathLike) -> None:
    fs, target = filesystem(path)
    if fs.exists(target):
        fs.rm(target)


@contextlib.contextmanager
def state_lock(state_dir: str | os.PathLike, name: str) -> Iterator[None]:
    """An exclusive lock (``STATE/.<name>.lock``, flock) for a read-modify-write of one state file.

    On object stores there is no lock: one writer (the nightly lock's holder) is assumed there.
    The kernel drops an flock when its process dies, so a killed writer leaves no stale lock.
    """
    fs, _ = filesystem(str(state_dir))
    if "file" not in fs.protocol:
        yield
        return
    directory = local_path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with flocked(directory / f".{name}.lock"):
        yield


def state_path(state_dir: str | os.PathLike, name: str) -> str:
    return join(str(state_dir), name)
