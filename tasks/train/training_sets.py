"""What a model card records of the sets its training saw, by name and by content.

``training_data.sets`` maps ``"<dataset>/<split>"`` to ``{"rows": n, "content_sha256": …}`` for
every training and dev split; the evaluate stage compares eval sets against it to find the
ones a detector has already seen (:mod:`tasks.evaluate.overlap`). It lives with training
because the card is written here and a stage may only import earlier stages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd


def content_digest(sha256s: Iterable[str]) -> str:
    """One sha256 over the set of the files' sha256 (sorted, duplicates once): the same audio
    gives the same digest whatever its ids, paths, order or dataset name."""
    digest = hashlib.sha256()
    for value in sorted({str(s) for s in sha256s}):
        digest.update(value.encode() + b"\n")
    return digest.hexdigest()


def training_sets(rows: pd.DataFrame) -> dict[str, dict]:
    """``"<dataset>/<split>"`` → ``{"rows": n, "content_sha256": digest}`` of manifest rows (the card's record)."""
    return {
        f"{dataset}/{split}": {"rows": int(len(group)), "content_sha256": content_digest(group["sha256"])}
        for (dataset, split), group in rows.groupby(["dataset", "split"], sort=True)
    }
