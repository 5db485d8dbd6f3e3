"""Training overlap: which eval sets a detector has already seen, and which its headline average leaves out.

As the Speech Anti-Spoofing Arena does, each model is averaged over the eval sets it did not
train on. An eval set overlaps a detector's training data when its ``(dataset, split)`` is one
of the model card's ``training_data.sets`` or its content digest equals one of theirs (the same
audio under another name). In-domain is not overlap. Policy ``evaluate.training_overlap``:
``exclude`` (default) or ``mark``. The rule, the policy and the score-table columns it reads:
docs/reports.md, "Definitions" (*Training overlap*).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tasks.train.training_sets import content_digest

OVERLAP_POLICIES = ("exclude", "mark")
SEPARATOR = "\n"


def card_overlap_columns(card: Mapping | None) -> dict[str, str]:
    """The ``train_sets`` / ``train_digests`` values of a detector's scores, from its model card
    (empty for cards written before ``training_data.sets``: overlap then by nothing)."""
    sets = ((card or {}).get("training_data") or {}).get("sets") or {}
    return {
        "train_sets": SEPARATOR.join(sorted(sets)),
        "train_digests": SEPARATOR.join(sorted(str(v.get("content_sha256") or "") for v in sets.values())),
    }


def eval_set_digests(rows: pd.DataFrame) -> pd.Series:
    """Per row, the content digest of its (dataset, split) among ``rows`` (manifest rows with sha256)."""
    digests = {key: content_digest(group["sha256"]) for key, group in rows.groupby(["dataset", "split"], sort=False)}
    return pd.Series([digests[key] for key in zip(rows["dataset"], rows["split"])], index=rows.index, dtype=object)


def with_card_overlap_columns(scores: pd.DataFrame, cards: Mapping[str, Mapping] | None) -> pd.DataFrame:
    """``scores`` with ``train_sets`` / ``train_digests`` filled from ``cards`` by detector (kept
    where a row already has them)."""
    out = scores.copy()
    for column in ("train_sets", "train_digests"):
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].fillna("").astype(str)
    for detector, card in (cards or {}).items():
        rows = (out["detector"] == detector) & (out["train_sets"] == "")
        for column, value in card_overlap_columns(card).items():
            out.loc[rows, column] = value
    return out


def overlap_of(cell: pd.DataFrame) -> str | None:
    """Why a (detector, eval corpus) cell overlaps the detector's training data, or None."""
    if "train_sets" not in cell.columns or cell.empty:
        return None
    trained = set(filter(None, str(cell["train_sets"].iloc[0]).split(SEPARATOR)))
    digests = set(filter(None, str(cell.get("train_digests", pd.Series([""])).iloc[0]).split(SEPARATOR)))
    splits = cell["split"].dropna().astype(str).unique() if "split" in cell.columns else []
    dataset = str(cell["dataset"].iloc[0])
    named = sorted(f"{dataset}/{s}" for s in splits if f"{dataset}/{s}" in trained)
    if named:
        return f"trained on {', '.join(named)}"
    if "eval_set_digest" in cell.columns:
        same = sorted(str(d) for d in cell["eval_set_digest"].dropna().unique() if str(d) in digests)
        if same:
            return f"same audio as a training set (content digest {same[0][:12]}…)"
    return None


def mark_training_overlap(cells: pd.DataFrame, scores: pd.DataFrame, policy: str) -> pd.DataFrame:
    """``cells`` (one row per detector × eval corpus) with ``training_overlap`` (the reason, or
    None) and ``excluded_from_average`` (overlapping and ``policy`` is ``exclude``)."""
    if policy not in OVERLAP_POLICIES:
        raise ValueError(f"training_overlap policy must be one of {', '.join(OVERLAP_POLICIES)}, got {policy!r}")
    if cells.empty:
        return cells.assign(training_overlap=pd.Series(dtype=object), excluded_from_average=pd.Series(dtype=bool))
    groups = dict(list(scores.groupby(["detector", "dataset"], sort=False)))
    reasons = [
        overlap_of(groups[(d, s)]) if (d, s) in groups else None for d, s in zip(cells["detector"], cells["dataset"])
    ]
    out = cells.copy()
    out["training_overlap"] = pd.Series(reasons, index=cells.index, dtype=object)
    out["excluded_from_average"] = out["training_overlap"].notna() & (policy == "exclude")
    return out


def averaged_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells a detector's headline average covers: usable (no note) and not excluded for overlap."""
    usable = cells[cells["note"].isna()]
    if "excluded_from_average" in usable.columns:
        usable = usable[~usable["excluded_from_average"].astype(bool)]
    return usable
