"""Which model version is in service (the champion), its history, and the nightly run lock.

``STATE/champion-<detector>.json`` holds the current champion and every earlier one::

    {"current": {"model_path": …, "version": 3, "promoted_at": …, "run_id": …, "eer": {dataset: eer}},
     "history": [ …earlier "current" records, oldest first… ]}

The EERs recorded at promotion are what the next night's forgetting table compares with.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from typing import Iterator

from storage.paths import atomic_write, filesystem, join, local_path


class RunInProgressError(RuntimeError):
    """Another run holds the lock; the message says which lock file and what to do."""


def _path(state_dir: str, detector: str) -> str:
    return join(state_dir, f"champion-{detector}.json")


def read_champions(state_dir: str | os.PathLike, detector: str) -> dict:
    fs, p = filesystem(_path(str(state_dir), detector))
    if not fs.exists(p):
        return {"current": None, "history": []}
    with fs.open(p, "r") as handle:
        return json.load(handle)


def current_champion(state_dir: str | os.PathLike, detector: str) -> dict | None:
    return read_champions(state_dir, detector)["current"]


def promote(state_dir: str | os.PathLike, detector: str, record: dict) -> None:
    """Make ``record`` the champion; the previous one moves to the history."""
    champions = read_champions(state_dir, detector)
    if champions["current"] is not None:
        champions["history"].append(champions["current"])
    champions["current"] = record
    with atomic_write(_path(str(state_dir), detector), "w") as handle:
        json.dump(champions, handle, indent=2, default=str)


@contextmanager
def exclusive_run(state_dir: str | os.PathLike, name: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``STATE/<name>.lock`` for the block; a second holder waits ``wait_s`` then fails clearly.

    An OS-level lock (flock) is released by the kernel when its process dies, so a crashed
    run never leaves a stale lock behind.
    """
    directory = local_path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    lock_file = directory / f"{name}.lock"
    with open(lock_file, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise RunInProgressError(
                        f"another {name} run is in progress ({holder}; lock {lock_file}); this one stops without "
                        "changing anything. Wait for it to finish, or set nightly.wait_for_lock_s to queue behind it."
                    ) from None
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
