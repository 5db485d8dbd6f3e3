"""``addgp datasets --config CONFIG``: a pipeline's own workspace checked as ``addgp run`` checks
it before training — each configured dataset's manifest (rows per split and label, rejects),
the splits the config trains or evaluates on that have no row (what ``addgp run`` would leave
out, tasks/ingest/losses.py), and the data checks (duplicates, train/eval overlap with the
config's roles and severity; tasks/ingest/checks.py). Reads only what ingest wrote."""

from __future__ import annotations

from typing import Any

import pandas as pd

from storage.manifests import find_rejects, read_manifest, read_rejects
from storage.paths import exists
from storage.workspace import Workspace
from tasks.ingest.catalog import manifest_counts
from tasks.ingest.checks import CHECK_COLUMNS, content_checks, pipeline_roles


def workspace_datasets(config) -> tuple[list[dict], pd.DataFrame]:
    """(one ``describe_registry``-shaped row per configured dataset, the data-checks table) of a
    PipelineConfig's workspace. A dataset not ingested yet has a note saying so, and is not checked."""
    workspace = Workspace.at(config.workdir)
    train, evaluate = pipeline_roles(config)
    rows: list[dict[str, Any]] = []
    frames = []
    for dataset in config.datasets:
        path = workspace.manifest(dataset.name)
        info: dict[str, Any] = {
            "name": dataset.name,
            "adapter": dataset.adapter,
            "root": str(dataset.root),
            "on_disk": exists(str(dataset.root)),
            "manifest": path,
            "manifest_exists": exists(path),
            "counts_from": None,
            "rows": None,
            "by_split": None,
            "by_label": None,
            "by_attack": None,
            "rejects": None,
            "reject_reasons": None,
            "note": None,
        }
        if not info["manifest_exists"]:
            info["note"] = f"not ingested yet (no {path}): `addgp run` writes it"
            rows.append(info)
            continue
        manifest = read_manifest(path)
        rejects_file = find_rejects(path)
        info.update(manifest_counts(manifest, read_rejects(rejects_file) if rejects_file else None))
        info["counts_from"] = "manifest"
        needed = {s for d, s in [*train, *evaluate] if d == dataset.name}
        missing = sorted(needed - set(manifest["split"].unique()))
        if missing:
            info["note"] = f"no rows in split(s) {', '.join(missing)} the config uses: `addgp run` leaves it out there"
        rows.append(info)
        frames.append(manifest)
    if not frames:
        return rows, pd.DataFrame(columns=list(CHECK_COLUMNS))
    checks = content_checks(
        pd.concat(frames, ignore_index=True),
        train=train,
        evaluate=evaluate,
        overlap=config.data_checks.train_eval_overlap,
    )
    return rows, checks
