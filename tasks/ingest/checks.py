"""Data checks on a pipeline's manifests: the same audio twice, and the same audio in training and evaluation.

Ingest deduplicates on ``utt_id`` only; these checks compare the bytes (``sha256``), because real
corpora share audio and audio in both a training and an eval split makes the eval numbers look
better than they are. ``content_checks`` returns the long table the run report shows as "Data
checks" (one row per finding); ``near_duplicates`` adds near-copies by embedding after the embed
stage. The checks, their severities and where they show: docs/ingest.md, "Data checks".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from storage.embeddings import read_embeddings

CHECK_COLUMNS = ("check", "scope", "count", "severity", "examples")
SEVERITIES = ("info", "warning", "error")
MAX_EXAMPLES = 3
Role = tuple[str, str]  # (dataset, split)


class DataCheckError(ValueError):
    """A data check configured as an error failed; the message says which and how to proceed."""


def _hashed(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows with a sha256, plus ``_h``: the sha256 as an integer code (set operations on
    integers, not on millions of 64-character strings)."""
    sha = manifest["sha256"]
    hashed = manifest[sha.notna() & (sha.astype(str) != "")]
    return hashed.assign(_h=pd.factorize(hashed["sha256"])[0])


def _short(sha: str) -> str:
    return f"sha256 {str(sha)[:12]}…"


def _name(row: pd.Series | dict, with_dataset: bool = True) -> str:
    where = f"{row['dataset']}/{row['split']}:" if with_dataset else f"{row['split']}:"
    return f"{where}{row['utt_id']}"


def _examples(groups: Iterable[tuple[str, pd.DataFrame]], with_dataset: bool = True) -> str:
    """``a = b = c (sha256 …)`` for the first MAX_EXAMPLES groups of rows sharing bytes."""
    shown = []
    for sha, rows in groups:
        names = [_name(r, with_dataset) for r in rows.head(4).to_dict("records")]
        more = f" (+{len(rows) - 4})" if len(rows) > 4 else ""
        shown.append(f"{' = '.join(names)}{more} ({_short(sha)})")
        if len(shown) == MAX_EXAMPLES:
            break
    return "; ".join(shown)


def _row(check: str, scope: str, count: int, severity: str, examples: str = "") -> dict:
    return {
        "check": check,
        "scope": scope,
        "count": int(count),
        "severity": severity if count else "info",
        "examples": examples,
    }


def _within(manifest: pd.DataFrame, hashed: pd.DataFrame) -> list[dict]:
    out = []
    for dataset, rows in manifest.groupby("dataset", sort=True):
        own = hashed[hashed["dataset"] == dataset]
        missing = len(rows) - len(own)
        if missing:
            out.append(
                _row(
                    "not_hashed",
                    str(dataset),
                    missing,
                    "info",
                    "rows without sha256 (ingested without probing audio): run `addgp ingest` to check them",
                )
            )
        repeated = own[own.duplicated("_h", keep=False)]
        extra = int(own.duplicated("_h").sum())
        groups = repeated.sort_values(["sha256", "split", "utt_id"]).groupby("sha256", sort=False)
        out.append(_row("duplicate_audio", str(dataset), extra, "warning", _examples(groups, with_dataset=False)))
    return out


def _across(hashed: pd.DataFrame) -> list[dict]:
    """Audio shared by two datasets, whatever their roles (the overlap check judges those)."""
    out = []
    per_dataset = {d: rows["_h"].unique() for d, rows in hashed.groupby("dataset", sort=True)}
    names = sorted(per_dataset)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(per_dataset[a], per_dataset[b], assume_unique=True)
            if not len(shared):
                continue
            rows = hashed[hashed["dataset"].isin((a, b)) & hashed["_h"].isin(shared)]
            groups = rows.sort_values(["sha256", "dataset", "utt_id"]).groupby("sha256", sort=False)
            out.append(_row("shared_audio", f"{a} ∩ {b}", len(shared), "info", _examples(groups)))
    return out


def _in(rows: pd.DataFrame, roles: Sequence[Role]) -> np.ndarray:
    return pd.MultiIndex.from_frame(rows[["dataset", "split"]]).isin(list(set(roles)))


def _overlap(hashed: pd.DataFrame, train: Sequence[Role], evaluate: Sequence[Role], severity: str) -> list[dict]:
    train_rows = hashed[_in(hashed, train)]
    eval_rows = hashed[_in(hashed, evaluate)]
    out = []
    eval_groups = [(key, rows, rows["_h"].unique()) for key, rows in eval_rows.groupby(["dataset", "split"], sort=True)]
    for (td, ts), t_rows in train_rows.groupby(["dataset", "split"], sort=True):
        t_hashes = t_rows["_h"].unique()
        for (ed, es), e_rows, e_hashes in eval_groups:
            shared = np.intersect1d(t_hashes, e_hashes, assume_unique=True)
            if not len(shared):
                continue
            rows = pd.concat([t_rows[t_rows["_h"].isin(shared)], e_rows[e_rows["_h"].isin(shared)]])
            groups = rows.drop_duplicates(["dataset", "split", "utt_id"]).groupby("sha256", sort=True)
            out.append(_row("train_eval_overlap", f"{td}/{ts} → {ed}/{es}", len(shared), severity, _examples(groups)))
    if not out and train and evaluate:
        out.append(_row("train_eval_overlap", _roles_scope(train, evaluate), 0, severity))
    return out


def _roles_scope(train: Sequence[Role], evaluate: Sequence[Role]) -> str:
    return f"{', '.join(f'{d}/{s}' for d, s in sorted(set(train)))} → {', '.join(f'{d}/{s}' for d, s in sorted(set(evaluate)))}"


def _label_conflicts(hashed: pd.DataFrame) -> list[dict]:
    labels = hashed.groupby("_h")["label"].nunique()
    conflicting = labels[labels > 1].index
    if not len(conflicting):
        return []
    rows = hashed[hashed["_h"].isin(conflicting)].sort_values(["sha256", "label", "dataset", "utt_id"])
    examples = _examples(
        (sha, g.assign(utt_id=g["utt_id"] + "(" + g["label"] + ")")) for sha, g in rows.groupby("sha256", sort=False)
    )
    return [_row("label_conflict", "all manifests", len(conflicting), "warning", examples)]


def content_checks(
    manifest: pd.DataFrame,
    *,
    train: Sequence[Role] = (),
    evaluate: Sequence[Role] = (),
    overlap: Literal["warning", "error"] = "warning",
) -> pd.DataFrame:
    """The data-checks table of one or more manifests (concatenated; ``dataset`` tells them apart).

    ``train`` and ``evaluate`` are the (dataset, split) pairs a pipeline trains on (train and
    dev splits: both shape the model) and evaluates on; ``overlap`` is the severity of audio
    found in both. Without roles only duplicates, shared audio and label conflicts are checked.
    """
    if overlap not in ("warning", "error"):
        raise ValueError(f"overlap severity must be 'warning' or 'error', not {overlap!r}")
    hashed = _hashed(manifest)
    rows = (
        _within(manifest, hashed)
        + _overlap(hashed, train, evaluate, overlap)
        + _across(hashed)
        + _label_conflicts(hashed)
    )
    table = pd.DataFrame(rows, columns=list(CHECK_COLUMNS))
    return table.astype({"count": "int64"})


def near_duplicates(
    rows: pd.DataFrame,
    X: np.ndarray,
    *,
    train: Sequence[Role],
    evaluate: Sequence[Role],
    threshold: float,
    max_block_cells: int = 1 << 25,
) -> pd.DataFrame:
    """Eval clips with a training clip whose embedding is at cosine similarity ≥ ``threshold``.

    ``rows`` (dataset, split, utt_id, sha256) are the rows of ``X``, one embedding each.
    Pairs with the same sha256 are left out (``train_eval_overlap`` reports those). One check
    row per (train split, eval split) with something found: ``count`` is the number of eval
    clips with such a neighbour, ``examples`` the closest pairs; severity ``warning`` (a
    threshold is a judgement, not proof). The similarity matrix is computed a block of eval
    rows at a time, at most ``max_block_cells`` similarities (128 MiB of float32) at once.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"data_checks.near_duplicate_cosine must be in (0, 1], not {threshold}")
    is_train, is_eval = _in(rows, train), _in(rows, evaluate)
    if not is_train.any() or not is_eval.any():
        return pd.DataFrame(columns=list(CHECK_COLUMNS))
    unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    train_idx, eval_idx = np.flatnonzero(is_train), np.flatnonzero(is_eval)
    sha = pd.factorize(rows["sha256"])[0]
    best_sim = np.full(len(eval_idx), -np.inf, dtype=np.float32)
    best_train = np.zeros(len(eval_idx), dtype=np.int64)
    train_unit = unit[train_idx].astype(np.float32, copy=False)
    block = max(1, max_block_cells // len(train_idx))
    for start in range(0, len(eval_idx), block):
        chunk = eval_idx[start : start + block]
        sims = unit[chunk].astype(np.float32, copy=False) @ train_unit.T
        sims[sha[chunk][:, None] == sha[train_idx][None, :]] = -np.inf  # exact copies: not this check's
        j = sims.argmax(axis=1)
        best_sim[start : start + len(chunk)] = sims[np.arange(len(chunk)), j]
        best_train[start : start + len(chunk)] = train_idx[j]
    found = best_sim >= threshold
    pairs = pd.DataFrame(
        {
            "train": [_name(r) for r in rows.iloc[best_train[found]].to_dict("records")],
            "train_scope": (
                rows["dataset"].iloc[best_train[found]] + "/" + rows["split"].iloc[best_train[found]]
            ).to_numpy(),
            "eval": [_name(r) for r in rows.iloc[eval_idx[found]].to_dict("records")],
            "eval_scope": (
                rows["dataset"].iloc[eval_idx[found]] + "/" + rows["split"].iloc[eval_idx[found]]
            ).to_numpy(),
            "cos": best_sim[found],
        }
    )
    out = []
    for (t_scope, e_scope), group in pairs.groupby(["train_scope", "eval_scope"], sort=True):
        closest = group.sort_values("cos", ascending=False).head(MAX_EXAMPLES)
        examples = "; ".join(f"{r.train} ≈ {r.eval} (cos {r.cos:.4f})" for r in closest.itertuples())
        out.append(_row("near_duplicate_overlap", f"{t_scope} → {e_scope}", len(group), "warning", examples))
    if not out:  # checked, none found: say so, as the sha256 overlap check does
        out.append(
            _row("near_duplicate_overlap", _roles_scope(train, evaluate), 0, "warning", f"none at cosine ≥ {threshold}")
        )
    return pd.DataFrame(out, columns=list(CHECK_COLUMNS)).astype({"count": "int64"})


def embedding_near_duplicates(
    manifest: pd.DataFrame,
    store: str,
    *,
    encoder: str,
    layer: int,
    pooling: str,
    crop_s: float | None,
    train: Sequence[Role],
    evaluate: Sequence[Role],
    threshold: float,
) -> pd.DataFrame:
    """``near_duplicates`` on the store's embeddings of the manifest rows in ``train`` and
    ``evaluate`` (one encoder setting and layer, as the detectors use them)."""
    selected = manifest[_in(manifest, [*train, *evaluate])]
    if selected.empty:
        return pd.DataFrame(columns=list(CHECK_COLUMNS))
    meta, X = read_embeddings(
        store,
        encoder=encoder,
        layer=layer,
        pooling=pooling,
        crop_s=crop_s,
        datasets=sorted(selected["dataset"].unique()),
    )
    positions = meta[["dataset", "utt_id", "sha256"]].assign(_row=np.arange(len(meta)))
    joined = selected[["dataset", "split", "utt_id", "sha256"]].merge(
        positions, on=["dataset", "utt_id", "sha256"], how="inner"
    )
    return near_duplicates(
        joined.drop(columns="_row"), X[joined["_row"].to_numpy()], train=train, evaluate=evaluate, threshold=threshold
    )


def pipeline_roles(config) -> tuple[list[Role], list[Role]]:
    """(train, evaluate) (dataset, split) pairs of a PipelineConfig: what it trains and
    selects on, and what it reports."""
    train = [(d, s) for d in config.train.datasets for s in [*config.train.splits, *config.train.dev_splits]]
    evaluate = [(d, s) for d in config.eval_datasets for s in config.evaluate.splits]
    return train, evaluate


def problems(checks: pd.DataFrame, severity: str) -> pd.DataFrame:
    """Rows of ``checks`` at ``severity`` with something found."""
    return checks[(checks["severity"] == severity) & (checks["count"] > 0)]


def describe(row: pd.Series | dict) -> str:
    """One line per finding, for logs and terminals."""
    text = f"{row['check']} [{row['scope']}]: {row['count']}"
    return f"{text} — e.g. {row['examples']}" if row["examples"] else text


def enforce(checks: pd.DataFrame, config_path: str = "the pipeline config") -> None:
    """Raise DataCheckError when a check configured as an error found something."""
    errors = problems(checks, "error")
    if len(errors):
        lines = "\n".join(f"  {describe(r)}" for r in errors.to_dict("records"))
        raise DataCheckError(
            f"{config_path}: data_checks.train_eval_overlap is 'error' and the same audio is in a training and an eval split:\n"
            f"{lines}\nRemove the shared files from one side (or pick other splits), or set "
            f"data_checks.train_eval_overlap: warning to report it and go on."
        )
