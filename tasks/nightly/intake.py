"""What a night takes in, checked before the challenger learns it: the drop folder itself
(named, its files counted) and tonight's new rows against the eval sets.

The rule for new rows (docs/operations.md#data-checks-of-a-night): a new inbox row whose
audio bytes (``sha256``) are also in an eval split the night is judged on is excluded from
tonight's rows — neither learnt from nor held out — and listed in the report. Learning an
eval file makes the challenger look better on exactly the rows that decide its promotion.
The same checks as ``addgp run`` runs before training (tasks/ingest/checks.py: duplicate
audio, shared audio, train/eval overlap, label conflicts) are run on the configured corpora
plus tonight's rows, and shown in the nightly report's "Data checks" section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from addgp.nightly import InboxFolder
from tasks.ingest.checks import CHECK_COLUMNS, MAX_EXAMPLES, Role, content_checks

EXCLUDED_COLUMNS = ("utt_id", "batch_id", "label", "sha256", "also_in")


def inbox_folder(root: str | Path, created: bool = False) -> InboxFolder:
    folder = Path(root).resolve()
    n_files = sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else 0
    return InboxFolder(str(folder), int(n_files), bool(created))


def night_data_checks(
    corpora: pd.DataFrame,
    new_rows: pd.DataFrame,
    *,
    inbox: str,
    train: Sequence[Role],
    evaluate: Sequence[Role],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(checks table, excluded rows) for tonight's ``new_rows`` of dataset ``inbox``.

    ``corpora``: the manifests of the configured datasets (the inbox's own rows are replaced
    by tonight's); ``train``/``evaluate``: the pipeline's roles (tasks.ingest.checks.pipeline_roles).
    The excluded rows (``EXCLUDED_COLUMNS``; ``also_in`` names the eval rows with the same
    bytes) are what the caller drops from tonight's rows; the checks table gets one
    ``excluded_from_learning`` row saying how many.
    """
    others = corpora[corpora["dataset"] != inbox]
    tonight = new_rows.assign(dataset=inbox)
    night_train = [*train, *((inbox, str(s)) for s in sorted(tonight["split"].unique()))]
    checks = content_checks(pd.concat([others, tonight], ignore_index=True), train=night_train, evaluate=evaluate)

    roles = pd.MultiIndex.from_frame(others[["dataset", "split"]])
    eval_rows = others[roles.isin(list(set(evaluate)))]
    eval_rows = eval_rows[eval_rows["sha256"].notna()]
    where = (eval_rows["dataset"] + "/" + eval_rows["split"] + ":" + eval_rows["utt_id"]).groupby(eval_rows["sha256"])
    also_in = where.agg(lambda names: ", ".join(sorted(names)))
    hit = tonight["sha256"].isin(also_in.index)
    excluded = tonight.loc[hit].assign(also_in=tonight.loc[hit, "sha256"].map(also_in))
    if "batch_id" not in excluded.columns:
        excluded = excluded.assign(batch_id=None)
    excluded = excluded[list(EXCLUDED_COLUMNS)].sort_values("utt_id").reset_index(drop=True)
    examples = "; ".join(f"{r.utt_id} = {r.also_in}" for r in excluded.head(MAX_EXAMPLES).itertuples())
    summary = {
        "check": "excluded_from_learning",
        "scope": f"{inbox} (tonight) → eval",
        "count": len(excluded),
        "severity": "warning" if len(excluded) else "info",
        "examples": examples,
    }
    checks = pd.concat([checks, pd.DataFrame([summary], columns=list(CHECK_COLUMNS))], ignore_index=True)
    return checks.astype({"count": "int64"}), excluded


def without_excluded(rows: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """``rows`` less the excluded ones (by utt_id)."""
    return rows[~rows["utt_id"].isin(excluded["utt_id"])].reset_index(drop=True)
