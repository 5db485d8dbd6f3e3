"""The inbox's rejects as the nightly report shows them: counts per reason, with examples.

A file dropped in the inbox that ingest could not use (no sidecar entry, a path outside the
drop folder, a poison header, …) is in the inbox manifest's rejects table
(``manifests/_rejects/<inbox>.rejects.parquet``), rewritten by every ingest: it lists what
the drop folder holds tonight that did not make it into a batch.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["reason", "count", "examples"]


def _example(utt_id, source) -> str:
    """The file's id below the drop folder; for a sidecar line without one, the sidecar's
    ``folder/name:line`` (a report names files by where they sit in the inbox, not on disk)."""
    if isinstance(utt_id, str) and utt_id:
        return utt_id
    return "/".join(str(source).replace("\\", "/").split("/")[-2:])


def rejects_by_reason(rejects: pd.DataFrame, examples: int = 3, top: int = 10) -> pd.DataFrame:
    """One row per reason, most frequent first: ``reason``, ``count``, ``examples`` (up to
    ``examples`` files). Reasons past the ``top`` most frequent are summed in one last row."""
    if rejects.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows: list[tuple[str, int, list[str]]] = [
        (
            str(reason),
            int(len(group)),
            [_example(u, s) for u, s in zip(group["utt_id"][:examples], group["source"][:examples])],
        )
        for reason, group in rejects.groupby("reason", sort=False)
    ]
    rows.sort(key=lambda r: (-r[1], r[0]))
    if len(rows) > top:
        rest = rows[top:]
        rows = rows[:top] + [(f"{len(rest)} other reasons", sum(r[1] for r in rest), [])]
    return pd.DataFrame(rows, columns=COLUMNS)
