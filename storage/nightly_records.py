"""What the nightly loop carries from night to night besides the champion: the held-out
evidence pooled until the promotion gate can decide, and the drift scores of recent nights.

``STATE/evidence-<detector>.json`` — the rows of nights that ended "not enough evidence yet",
kept for the champion they were gathered against::

    {"champion": MODEL_PATH, "nights": [RUN_ID, …],
     "held_out": [[dataset, utt_id], …], "learn": [[dataset, utt_id], …]}

Only row keys are kept (the rows themselves stay in the inbox manifest and the embedding
store). A pool gathered against another champion is not this champion's evidence and reads
as empty; a decided night clears the pool.

``STATE/drift-<detector>.json`` — ``{"nights": [drift record, …]}``, oldest first, at most
``keep`` nights (``nightly.drift.history_nights``), one per run id.

``STATE/learnt-<detector>.json`` — ``{"rows": [[dataset, utt_id], …]}``: every inbox row a
challenger of this detector was built to learn from (never a held-out row, never an eval copy),
in the order taken in, each once. A scheduled consolidation refits on the configured training
data plus these rows (tasks/nightly/consolidation.py). Row keys only: about 60 bytes a row,
like the batch ledger's list of files.
"""

from __future__ import annotations

import os

from storage.state import read_state, remove_state, state_lock, state_path, write_state

EMPTY_POOL: dict = {"champion": None, "nights": [], "held_out": [], "learn": []}


def _evidence_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"evidence-{detector}.json")


def _learnt_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"learnt-{detector}.json")


def _drift_path(state_dir: str | os.PathLike, detector: str) -> str:
    return state_path(state_dir, f"drift-{detector}.json")


def read_evidence_pool(state_dir: str | os.PathLike, detector: str, champion_path: str) -> dict:
    """The pooled evidence gathered against the champion at ``champion_path`` (empty for another)."""
    fix = "move it away: the pooled rows of undecided nights are then forgotten and the next night starts a new pool"
    pool = read_state(_evidence_path(state_dir, detector), None, fix=fix)
    if pool is None or pool.get("champion") != champion_path:
        return {**EMPTY_POOL, "champion": champion_path}
    return {**EMPTY_POOL, **pool}


def save_evidence_pool(state_dir: str | os.PathLike, detector: str, pool: dict) -> None:
    write_state(_evidence_path(state_dir, detector), pool)


def clear_evidence_pool(state_dir: str | os.PathLike, detector: str) -> None:
    remove_state(_evidence_path(state_dir, detector))


def read_drift_history(state_dir: str | os.PathLike, detector: str) -> list[dict]:
    fix = "move it away: the report's drift trend then starts again from tonight"
    return read_state(_drift_path(state_dir, detector), {"nights": []}, fix=fix)["nights"]


def record_drift(state_dir: str | os.PathLike, detector: str, record: dict, keep: int) -> list[dict]:
    """Add tonight's drift ``record`` (keyed by ``run_id``; a resumed night's repeat replaces it); the history."""
    with state_lock(state_dir, f"drift-{detector}.json"):
        nights = [r for r in read_drift_history(state_dir, detector) if r.get("run_id") != record["run_id"]]
        nights = [*nights, record][-keep:]
        write_state(_drift_path(state_dir, detector), {"nights": nights})
    return nights


def read_learnt_rows(state_dir: str | os.PathLike, detector: str) -> list[list[str]]:
    """The keys ``[dataset, utt_id]`` of every inbox row learnt so far, oldest first."""
    fix = (
        "restore it from a backup; moving it away makes the next consolidation refit on the configured "
        "training data and tonight's rows only"
    )
    return read_state(_learnt_path(state_dir, detector), {"rows": []}, fix=fix)["rows"]


def record_learnt_rows(state_dir: str | os.PathLike, detector: str, keys: list[list[str]]) -> list[list[str]]:
    """Add ``keys`` not yet recorded (a resumed night's repeat adds nothing); every key, oldest first."""
    with state_lock(state_dir, f"learnt-{detector}.json"):
        rows = read_learnt_rows(state_dir, detector)
        known = {tuple(k) for k in rows}
        added = [list(k) for k in dict.fromkeys(tuple(k) for k in keys) if k not in known]
        if added:
            rows = [*rows, *added]
            write_state(_learnt_path(state_dir, detector), {"rows": rows})
    return rows
