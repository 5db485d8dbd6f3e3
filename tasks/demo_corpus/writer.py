"""Writing the demo corpus in the ASVspoof 2019 LA layout, with its stamp: idempotent and atomic."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from addgp.progress import progress_bar
from storage.paths import atomic_write
from tasks.demo_corpus.plan import (
    ATTACKS,
    CONDITIONS,
    DEFAULT_UTTERANCES,
    GENERATOR_VERSION,
    SPLITS,
    STAMP_NAME,
    UttPlan,
    dataset_name,
    plan_dataset,
    unknown_conditions_message,
)
from tasks.demo_corpus.render import render_utterance
from tasks.ingest.asvspoof2019 import PROTOCOL_DIR, PROTOCOLS


def _validate(
    conditions: Sequence[str], utterances_per_split: Mapping[str, int], sample_rate: int
) -> tuple[list[str], dict[str, int]]:
    if isinstance(conditions, str):
        conditions = [conditions]
    conditions = list(conditions)
    if not conditions:
        raise ValueError(f"no conditions given; known conditions: {', '.join(CONDITIONS)}")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(unknown_conditions_message(unknown))
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"conditions repeat a name: {conditions}")
    bad_splits = [s for s in utterances_per_split if s not in SPLITS]
    if bad_splits:
        raise ValueError(
            f"unknown split(s) {bad_splits} in utterances_per_split; ASVspoof 2019 LA has {', '.join(SPLITS)}"
        )
    counts: dict[str, int] = {}
    for split in SPLITS:
        if split in utterances_per_split:
            value = utterances_per_split[split]
            if not _is_int(value) or value < 1:
                raise ValueError(f"utterances_per_split[{split!r}] must be a positive integer, got {value!r}")
            counts[split] = int(value)
    if not counts:
        raise ValueError("utterances_per_split is empty: nothing to generate")
    if not _is_int(sample_rate) or not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate must be an integer between 8000 and 96000 Hz, got {sample_rate!r}")
    return conditions, counts


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _stamp_params(condition: str, seed: int, counts: Mapping[str, int], sample_rate: int) -> dict:
    return {
        "generator": "tasks.demo_corpus",
        "version": GENERATOR_VERSION,
        "condition": condition,
        "seed": int(seed),
        "utterances_per_split": dict(counts),
        "sample_rate": int(sample_rate),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_complete(root: Path, params: dict) -> bool:
    """True when ROOT holds a stamp for exactly these parameters and every file matches its hash."""
    try:
        stamp = json.loads((root / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("params") != params or not isinstance(stamp.get("files"), dict):
        return False
    try:
        return all(_sha256(root / rel) == digest for rel, digest in stamp["files"].items())
    except OSError:
        return False


def _generated_paths(root: Path) -> list[Path]:
    return [root / STAMP_NAME, root / PROTOCOL_DIR] + [root / f"ASVspoof2019_LA_{split}" for split in SPLITS]


def _clean(root: Path) -> None:
    """Remove what a previous run generated (and nothing else) — the stamp first."""
    for path in _generated_paths(root):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def generate_demo_corpus(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    conditions: Sequence[str] = CONDITIONS,
    utterances_per_split: Mapping[str, int] | None = None,
    sample_rate: int = 16000,
    progress: bool = True,
) -> dict[str, Path]:
    """Write (or reuse) one ASVspoof-2019-LA-shaped dataset per condition under ROOT.

    Returns ``{"demo_<condition>": ROOT/demo_<condition>}`` in the order of ``conditions``.
    Raises ValueError for an unknown condition (the message lists the known ones) or bad sizes.
    """
    conditions, counts = _validate(
        conditions, DEFAULT_UTTERANCES if utterances_per_split is None else utterances_per_split, sample_rate
    )
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed, sample_rate = int(seed), int(sample_rate)
    root = Path(root)
    out: dict[str, Path] = {}
    todo: list[tuple[Path, dict, list[UttPlan]]] = []
    for condition in conditions:
        name = dataset_name(condition)
        ds_root = root / name
        out[name] = ds_root
        params = _stamp_params(condition, seed, counts, sample_rate)
        if _is_complete(ds_root, params):
            continue
        todo.append((ds_root, params, plan_dataset(condition, seed, counts)))

    total = sum(len(plans) for _, _, plans in todo)
    with progress_bar(
        total=total, desc="demo corpus", unit="file", disable=not progress or total == 0, leave=False
    ) as bar:
        for ds_root, params, plans in todo:
            ds_root.mkdir(parents=True, exist_ok=True)
            _clean(ds_root)
            (ds_root / PROTOCOL_DIR).mkdir()
            for split in counts:
                (ds_root / f"ASVspoof2019_LA_{split}" / "flac").mkdir(parents=True)
            files: dict[str, str] = {}
            for plan in plans:
                rel = f"ASVspoof2019_LA_{plan.split}/flac/{plan.utt_id}.flac"
                sf.write(
                    ds_root / rel,
                    render_utterance(plan, seed, sample_rate),
                    sample_rate,
                    format="FLAC",
                    subtype="PCM_16",
                )
                files[rel] = _sha256(ds_root / rel)
                bar.update(1)
            for split in counts:
                rel = f"{PROTOCOL_DIR}/{PROTOCOLS[split]}"
                lines = [p.protocol_line() for p in plans if p.split == split]
                (ds_root / rel).write_text("\n".join(lines) + "\n")
                files[rel] = _sha256(ds_root / rel)
            stamp = {
                "params": params,
                "attacks": {k: ATTACKS[k] for k in sorted({p.attack for p in plans if p.attack})},
                "files": files,
            }
            with atomic_write(ds_root / STAMP_NAME, "w") as handle:
                handle.write(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return out
