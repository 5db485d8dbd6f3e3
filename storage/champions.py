"""Which model version is in service (the champion), its history, the night in progress, and
the nightly run lock.

``STATE/champion-<detector>.json`` holds the current champion and every earlier one::

    {"current": {"model_path": …, "version": 3, "promoted_at": RUN_ID, "promoted_on": ISO time,
                 "run_id": …, "eer": {dataset: eer}},
     "history": [ …earlier "current" records, oldest first… ],
     "evaluations": [{"run_id", "evaluated_at", "version", "model_path", "eer": {dataset: eer},
                      "average_eer"}, … one per night, oldest first]}

The EERs recorded at promotion are what the next night's forgetting table compares with;
``evaluations`` holds the EERs of the model in service measured each night (after a decision,
or by re-evaluating it on a night without new data), so its drift shows night after night.
Records written before ``promoted_on`` and ``evaluations`` existed read as before.

``STATE/night-<detector>.json`` exists only while a night that absorbs batches is under way:
its run id, its batches, the champion it started from and each step done (baseline,
challenger, decision, report). A night killed part-way is resumed from it by the next run,
so a batch gets one challenger, one decision and one report however often the night is
restarted. Every file lands by atomic rename.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from storage.paths import exists, flocked, local_path
from storage.state import read_state, remove_state, state_lock, state_path, write_state


class RunInProgressError(RuntimeError):
    """Another run holds the lock; the message says which lock file and what to do."""


class ChampionMissingError(FileNotFoundError):
    """The champion record points at a model folder that is not there; the message says what to do."""


def _path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"champion-{detector}.json")


def _night_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"night-{detector}.json")


def read_champions(state_dir: str | os.PathLike, detector: str) -> dict:
    fix = (
        'restore it from a backup, or write {"current": {"model_path": MODELS/NAME/vN, "version": N, '
        '"eer": null}, "history": []} by hand naming the model in service (every version stays in the registry)'
    )
    record = read_state(_path(state_dir, detector), {"current": None, "history": []}, fix=fix)
    record.setdefault("history", [])
    record.setdefault("current", None)
    record.setdefault("evaluations", [])
    return record


def current_champion(state_dir: str | os.PathLike, detector: str) -> dict | None:
    return read_champions(state_dir, detector)["current"]


def require_champion_model(state_dir: str | os.PathLike, detector: str, champion: dict) -> None:
    """Stop with a clear message when the champion's model folder is gone (deleted, unmounted)."""
    if not exists(champion["model_path"]):
        raise ChampionMissingError(
            f"{_path(state_dir, detector)}: the champion model {champion['model_path']} is not on this machine. "
            'Restore or mount that folder; or make another registered version the champion (edit "current" in '
            "that file); or move the file away so that the next night trains a fresh baseline champion."
        )


def promote(state_dir: str | os.PathLike, detector: str, record: dict) -> None:
    """Make ``record`` the champion; the previous one moves to the history.

    A model is promoted at most once: promoting one that is or was the champion changes
    nothing, so a resumed night that repeats its promotions leaves the record as it was.
    (To roll back, edit ``current`` by hand; docs/operations.md.)
    """
    with state_lock(state_dir, f"champion-{detector}.json"):
        champions = read_champions(state_dir, detector)
        current = champions["current"]
        promoted = [r.get("model_path") for r in champions["history"] + [current] if r is not None]
        if record.get("model_path") in promoted:
            return
        if current is not None:
            champions["history"].append(current)
        champions["current"] = record
        write_state(_path(state_dir, detector), champions)


def record_evaluation(state_dir: str | os.PathLike, detector: str, evaluation: dict) -> None:
    """Add one night's measurement of the champion (keyed by its ``run_id``) to ``evaluations``.

    A night is recorded once: a resumed night repeating it leaves the record as it was.
    """
    with state_lock(state_dir, f"champion-{detector}.json"):
        champions = read_champions(state_dir, detector)
        if any(e.get("run_id") == evaluation["run_id"] for e in champions["evaluations"]):
            return
        champions["evaluations"].append(evaluation)
        write_state(_path(state_dir, detector), champions)


def night_in_progress(state_dir: str | os.PathLike, detector: str) -> dict | None:
    """The record of a night that started absorbing batches and did not finish, or None."""
    fix = "move it away: the next night then starts over on the batches not yet acknowledged (possibly training one more model version)"
    return read_state(_night_path(state_dir, detector), None, fix=fix)


def save_night(state_dir: str | os.PathLike, detector: str, night: dict) -> None:
    """Record the night's progress (after each step that wrote something)."""
    write_state(_night_path(state_dir, detector), night)


def finish_night(state_dir: str | os.PathLike, detector: str) -> None:
    remove_state(_night_path(state_dir, detector))


@contextmanager
def exclusive_run(state_dir: str | os.PathLike, name: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``STATE/<name>.lock`` for the block; a second holder waits ``wait_s`` then fails clearly.

    An OS-level lock (flock) is released by the kernel when its process dies, so a crashed
    run never leaves a stale lock behind.
    """
    directory = local_path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    lock_file = directory / f"{name}.lock"
    deadline = time.monotonic() + wait_s
    with ExitStack() as held:
        while True:
            try:
                handle = held.enter_context(flocked(lock_file, blocking=False))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = lock_file.read_text().strip() or "another process"
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
