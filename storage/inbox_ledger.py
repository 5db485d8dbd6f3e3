"""The inbox batch ledger ``STATE/inbox_batches.json``: which inbox files were seen, in which
batch (named after its delivery folder by tasks/ingest/inbox.py), and which consumer (the
nightly loop of one champion detector) has used which batch.

::

    {"version": 2, "dataset": "inbox", "root": "/data/inbox",
     "files": {utt_id: {"batch_id", "sha256"}},
     "batches": [{"batch_id", "folder", "created_at", "n_files", "n_bonafide", "n_spoof", "hours"}, …],
     "consumers": {"nightly:lr": [batch_id, …], "nightly:gp": [batch_id, …]}}

Batches are acknowledged per consumer: two champions in one workdir (say an LR and a GP,
each with its own nightly config) each absorb every batch once, whichever runs first. The
nightly's consumer is ``nightly:<detector>`` (``nightly_consumer``).

A ledger of version 1 (one list, ``"nightly"``, from when every nightly shared one consumer)
is an ``OldFormatError``; ``addgp migrate`` gives that list to each detector with a champion
record (storage/migrations.py).

Every change is a read-modify-write under ``STATE/.inbox_batches.json.lock`` and lands by
atomic rename, so a killed writer leaves the previous ledger intact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict

from addgp.nightly import InboxBatch
from storage.paths import OldFormatError
from storage.state import parse_state, read_state, state_lock, state_path, write_state

LEDGER_NAME = "inbox_batches.json"
LEDGER_VERSION = 2
_FIX = (
    "restore it from a backup; deleting it makes every file in the inbox a new batch again "
    "(the next night retrains on all of them)"
)


def nightly_consumer(detector: str) -> str:
    """The ledger consumer of ``detector``'s nightly: each champion acknowledges its own batches."""
    return f"nightly:{detector}"


def ledger_path(state_dir: str | os.PathLike) -> str:
    """``<state_dir>/inbox_batches.json`` (a local path or an fsspec URL such as ``s3://…``)."""
    return state_path(state_dir, LEDGER_NAME)


def _empty_ledger() -> dict:
    return {"version": LEDGER_VERSION, "dataset": None, "files": {}, "batches": [], "consumers": {}}


def read_ledger(state_dir: str | os.PathLike) -> dict:
    """The batch ledger (an empty one when none was written yet); a damaged one is a StateFileError,
    one of an earlier version an OldFormatError."""
    ledger = read_state(ledger_path(state_dir), _empty_ledger(), fix=_FIX)
    if isinstance(ledger, dict) and ledger.get("version", LEDGER_VERSION) != LEDGER_VERSION:
        raise OldFormatError(ledger_path(state_dir), f"an inbox ledger of version {ledger.get('version')}")
    for key, default in _empty_ledger().items():
        ledger.setdefault(key, default)
    return ledger


@contextlib.contextmanager
def ledger_transaction(state_dir: str | os.PathLike) -> Iterator[dict]:
    """The ledger, locked for the block; written back (atomically) only when the block succeeds."""
    with state_lock(state_dir, LEDGER_NAME):
        ledger = read_ledger(state_dir)
        yield ledger
        write_state(ledger_path(state_dir), ledger)


def batch_to_json(batch: InboxBatch) -> dict:
    """A batch as the ledger (and a night's record, and the nightly report's metrics.json) holds it."""
    return asdict(batch)


def batch_from_json(record: dict) -> InboxBatch:
    """A batch of the ledger; ``folder`` is absent in batches written before delivery folders named them."""
    return InboxBatch(
        batch_id=record["batch_id"],
        folder=record.get("folder"),
        created_at=record["created_at"],
        n_files=record["n_files"],
        n_bonafide=record["n_bonafide"],
        n_spoof=record["n_spoof"],
        hours=record["hours"],
    )


def new_inbox_batches(state_dir: str | os.PathLike, *, consumer: str) -> list[InboxBatch]:
    """Batches (oldest first) that ``consumer`` has not acknowledged yet; the manifest rows of a
    batch are those whose ``batch_id`` column equals it."""
    ledger = read_ledger(state_dir)
    seen = set(ledger["consumers"].get(consumer, []))
    return parse_state(
        ledger_path(state_dir),
        ledger["batches"],
        lambda batches: [batch_from_json(b) for b in batches if b["batch_id"] not in seen],
        fix=_FIX,
    )


def acknowledge_inbox_batches(state_dir: str | os.PathLike, batch_ids: Iterable[str], *, consumer: str) -> None:
    """Record that ``consumer`` has used these batches (unknown ids are an error; repeats are no-ops)."""
    batch_ids = list(batch_ids)
    with ledger_transaction(state_dir) as ledger:
        known = {b["batch_id"] for b in ledger["batches"]}
        unknown = [b for b in batch_ids if b not in known]
        if unknown:
            raise KeyError(f"{ledger_path(state_dir)}: no batch(es) {unknown}; known: {sorted(known)}")
        done = ledger["consumers"].setdefault(consumer, [])
        done.extend(b for b in batch_ids if b not in done)
