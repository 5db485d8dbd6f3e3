"""The evidence pool of undecided nights, as pure functions over manifest rows and the pool
(``addgp.nightly.EvidencePool``): tonight's rows joined to the pooled ones, and the pool a
night leaves behind.

A night the promotion gate cannot decide (tasks/nightly/gate.py) keeps the champion; its
held-out rows stay test rows for the next night's challenger (no model in the chain ever
trains on a held-out row: the split is a fixed hash of the utterance id), and its learn
rows are learnt by the next challenger too, so nothing an undecided night brought is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from addgp.nightly import EvidencePool


def row_keys(rows: pd.DataFrame) -> list[list[str]]:
    return [[str(d), str(u)] for d, u in zip(rows["dataset"], rows["utt_id"])]


def rows_of_keys(manifest: pd.DataFrame, keys: list[list[str]], tonight: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows named by ``keys`` that are not among ``tonight``'s, then ``tonight``'s."""
    wanted = {tuple(k) for k in keys} - {tuple(k) for k in row_keys(tonight)}
    mask = [(str(d), str(u)) in wanted for d, u in zip(manifest["dataset"], manifest["utt_id"])]
    return pd.concat([manifest[mask], tonight], ignore_index=True)


@dataclass(frozen=True)
class PooledRows:
    """Tonight's rows joined to the pool of undecided nights: manifest rows to learn from and to
    test on, and the nights they came from (run ids, tonight last)."""

    learn: pd.DataFrame
    held_out: pd.DataFrame
    nights: list[str]


def pool_rows(
    pool: EvidencePool, inbox: pd.DataFrame, learn_rows: pd.DataFrame, holdout_rows: pd.DataFrame, run_id: str
) -> PooledRows:
    """The pooled manifest rows plus tonight's.

    Pooled rows no longer in the inbox manifest drop out; a resumed night whose rows are
    already pooled counts them once.
    """
    return PooledRows(
        learn=rows_of_keys(inbox, pool.learn, learn_rows),
        held_out=rows_of_keys(inbox, pool.held_out, holdout_rows),
        nights=[n for n in pool.nights if n != run_id] + [run_id],
    )


def settled_pool(champion_path: str, decided: bool, pooled: PooledRows) -> EvidencePool | None:
    """The pool tonight leaves: None (start over) after a ``decided`` night, else the pooled rows' keys."""
    if decided:
        return None
    return EvidencePool(
        champion=champion_path, nights=pooled.nights, held_out=row_keys(pooled.held_out), learn=row_keys(pooled.learn)
    )
