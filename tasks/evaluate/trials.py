"""One row per trial: the duplicate check every verb that reads score tables shares.

A trial is one utterance scored by one detector in one condition of one dataset: the key
``TRIAL_COLUMNS`` (those of them a table has). A row listed twice — a score table that repeats
an utterance, or two score files that overlap — would be counted twice by every metric: the
EER, the trial counts and the bootstrap CIs all change, with nothing said. ``addgp metrics``,
``addgp report`` and ``addgp export-scores`` therefore refuse such input (exit 2), naming an
example trial and the files holding it; nothing is dropped silently, since which of two rows
is right (a re-run? another model under the same name?) is not for a metric to guess.
"""

from __future__ import annotations

import pandas as pd

TRIAL_COLUMNS = ("detector", "dataset", "condition", "utt_id")


class DuplicateTrialsError(ValueError):
    """Score rows that list a trial more than once; the message names an example and its files."""


def check_unique_trials(tables: list[tuple[str, pd.DataFrame]]) -> None:
    """Raise ``DuplicateTrialsError`` when a (detector, dataset, condition, utt_id) of the ``(source, table)``
    pairs appears more than once, within one table or across them.

    Only the key columns a table has count (a table without ``condition`` has one condition);
    a table without ``utt_id`` cannot be checked (its rows name no utterance) and passes.
    """
    frames = [table.assign(_source=source) for source, table in tables if len(table)]
    if not frames:
        return
    rows = pd.concat(frames, ignore_index=True)
    if "utt_id" not in rows.columns:
        return
    key = [c for c in TRIAL_COLUMNS if c in rows.columns]
    repeated = rows.duplicated(subset=key, keep=False)
    if not repeated.any():
        return
    extra = int(rows.duplicated(subset=key, keep="first").sum())
    values, same = next(iter(rows[repeated].groupby(key, dropna=False, sort=False)))
    values = values if isinstance(values, tuple) else (values,)
    trial = ", ".join(f"{c} {None if pd.isna(v) else v!r}" for c, v in zip(key, values))
    sources = list(dict.fromkeys(same["_source"]))
    where = f"in {sources[0]}" if len(sources) == 1 else "in " + " and ".join(sources)
    raise DuplicateTrialsError(
        f"{extra} score row(s) repeat a trial already listed: e.g. {trial} appears {len(same)} times ({where}). "
        f"A trial is one row per ({', '.join(key)}); counted twice it changes the EER and the trial counts. "
        "Remove the repeated rows or the overlapping score files, or give the runs their own detector "
        "(or condition) names"
    )
