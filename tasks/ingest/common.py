"""What every ingest adapter shares: candidate rows → probed, validated manifest + rejects.

An adapter only knows its corpus layout: it turns protocol files and folders into
*candidate rows* (dicts with utt_id, split, label, attack, speaker, path and any extra
columns) and *rejects* for lines it could not parse. ``finalize`` then does the work that
is the same for every corpus: read each audio header (duration) and hash its bytes in
parallel threads, and move every bad row (missing file, unreadable or empty audio,
duplicate id, unknown label) to the rejects table with its reason.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from addgp.contracts import LABELS, MANIFEST_COLUMNS, REJECTS_SCHEMA

HASH_CHUNK_BYTES = 1 << 20


class LayoutError(ValueError):
    """ROOT does not look like the corpus the adapter reads: says what was expected and found."""


@dataclass
class IngestResult:
    dataset: str
    manifest: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=lambda: REJECTS_SCHEMA.empty_table().to_pandas())

    def summary(self) -> dict:
        """Counts for people and logs: rows per split × label, attacks, rejects by reason."""
        m = self.manifest
        by_split = {
            split: {label: int((group["label"] == label).sum()) for label in LABELS}
            for split, group in m.groupby("split", sort=True)
        }
        return {
            "dataset": self.dataset,
            "rows": int(len(m)),
            "rejects": int(len(self.rejects)),
            "by_split": by_split,
            "attacks": {str(k): int(v) for k, v in m["attack"].value_counts(dropna=True).sort_index().items()},
            "hours": round(float(m["duration_s"].sum()) / 3600.0, 3) if len(m) else 0.0,
            "reject_reasons": {str(k): int(v) for k, v in self.rejects["reason"].value_counts().items()},
        }


def reject(dataset: str, source: str, utt_id: str | None, reason: str) -> dict:
    return {"dataset": dataset, "source": source, "utt_id": utt_id, "reason": reason}


def probe_audio(path: str) -> tuple[float, str]:
    """Duration in seconds from the header and the sha256 of the bytes, streamed.

    Raises ValueError with a reason for files that cannot be used.
    """
    try:
        info = sf.info(path)
    except FileNotFoundError:
        raise ValueError("audio file missing") from None
    except (RuntimeError, sf.LibsndfileError) as exc:
        if not os.path.exists(path):
            raise ValueError("audio file missing") from None
        raise ValueError(f"unreadable audio: {exc}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError("zero-length audio")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return info.frames / info.samplerate, digest.hexdigest()


def finalize(
    dataset: str,
    candidates: Iterable[dict],
    rejects: Iterable[dict] = (),
    *,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    """Probe every candidate's audio and split good rows from rejects.

    I/O-bound work (header reads, hashing) runs on ``workers`` threads: soundfile and
    hashlib release the GIL, so threads keep a disk or network filesystem busy.
    """
    rows = list(candidates)
    bad = list(rejects)

    good: list[dict] = []
    seen: set[str] = set()
    for row in rows:
        source = row.pop("_source", row.get("path", ""))
        if row.get("label") not in LABELS:
            bad.append(reject(dataset, source, row.get("utt_id"), f"unknown label {row.get('label')!r}"))
        elif row["utt_id"] in seen:
            bad.append(reject(dataset, source, row["utt_id"], "duplicate utt_id"))
        else:
            seen.add(row["utt_id"])
            good.append(row)

    def probe(row: dict) -> tuple[dict, float | None, str | None, str | None]:
        try:
            duration, digest = probe_audio(row["path"])
            return row, duration, digest, None
        except ValueError as exc:
            return row, None, None, str(exc)

    accepted: list[dict] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(probe, good)
        for row, duration, digest, problem in tqdm(
            results, total=len(good), desc=f"ingest {dataset}", unit="file", disable=not progress, leave=False
        ):
            if problem is not None:
                bad.append(reject(dataset, row["path"], row["utt_id"], problem))
                continue
            accepted.append({**row, "dataset": dataset, "duration_s": duration, "sha256": digest})

    manifest = pd.DataFrame(accepted)
    if manifest.empty:
        manifest = pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    for column in ("attack", "speaker"):
        if column not in manifest:
            manifest[column] = None
    manifest["duration_s"] = manifest["duration_s"].astype("float64")
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest[list(MANIFEST_COLUMNS) + extra]
    rejects_df = pd.DataFrame(bad, columns=REJECTS_SCHEMA.names)
    return IngestResult(dataset=dataset, manifest=manifest, rejects=rejects_df)


def require_dir(root: str | os.PathLike, what: str) -> Path:
    """ROOT as a Path, or a LayoutError saying what was expected."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a directory; expected the root of {what}")
    return root


def listing(root: Path, limit: int = 8) -> str:
    """A short listing of what ROOT holds, for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    except OSError:
        return "(unreadable)"
    shown = ", ".join(names[:limit]) or "(empty)"
    return shown + (f", … ({len(names)} entries)" if len(names) > limit else "")
