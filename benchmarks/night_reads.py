"""What reading one night's inbox rows costs as the inbox grows over a season.

The nightly loop's drift, challenger and compare steps each read tonight's (or the pooled)
inbox rows from the embedding store. The inbox is one dataset that holds every night so far,
so a read of the whole dataset followed by a subset (what those steps did before
``tasks.nightly.challenger.rows_embeddings``) grows with the nights, while a read of the rows
themselves (``rows_embeddings``: the store scan filtered on their utt_ids) should not.

``build`` writes a schema-valid store through the project's own ``write_shard``: one inbox
dataset, ``--rows-per-night`` rows a night, each night's rows in their own shard as a night's
embed run writes them (d = 1,024, float16 as ``encoder.storage_dtype: float16`` stores them),
utt ids ``<night folder>/<file>`` as the inbox names them. ``run`` grows the store to each of
``--nights`` in turn and measures, each in a fresh child process, reading the last night's rows
both ways: wall time of the read and the child's peak RSS over its RSS after imports.

Usage (from the repository root, with PYTHONPATH=.):
    nice -n 10 python benchmarks/night_reads.py run --workdir /tmp/night-reads --nights 1,30,90,180,365
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DIM = 1024
ENCODER, LAYER, POOLING = "xlsr-300m-random", 9, "mean"
DATASET = "inbox"


def _night_rows(night: int, n: int) -> pd.DataFrame:
    folder = f"night-{night:04d}"
    return pd.DataFrame(
        {
            "utt_id": [f"{folder}/{i:05d}.flac" for i in range(n)],
            "dataset": DATASET,
            "split": "train",
            "label": np.where(np.arange(n) % 4 == 0, "bonafide", "spoof"),
            "attack": np.where(np.arange(n) % 4 == 0, None, "new-gen"),
            "speaker": [f"spk{i % 50}" for i in range(n)],
            "path": [f"/inbox/{folder}/{i:05d}.flac" for i in range(n)],
            "duration_s": 3.0,
            "sha256": [f"{night:04d}{i:05d}".ljust(64, "0") for i in range(n)],
            "batch_id": folder,
        }
    )


def _write_night(store: Path, rows: pd.DataFrame, night: int, rng: np.random.Generator) -> None:
    from storage.embeddings import META_FIELDS, REJECTS_SCHEMA, ShardLocation, encoder_slug, write_shard

    meta = rows[["utt_id", "dataset", "sha256"]].assign(
        encoder=ENCODER, random_weights=True, layer=LAYER, pooling=POOLING, crop_s=None
    )
    write_shard(
        ShardLocation(str(store), encoder_slug(ENCODER, POOLING, None), DATASET, f"night-{night:04d}"),
        meta[[f.name for f in META_FIELDS]].reset_index(drop=True),
        rng.normal(size=(len(rows), DIM)).astype(np.float32),
        "float16",
        pd.DataFrame(columns=REJECTS_SCHEMA.names),
    )


def grow(workdir: Path, nights: int, rows_per_night: int) -> None:
    """Write the nights not yet in ``workdir``'s store, up to ``nights``; the manifest of them all."""
    store, done = workdir / "store", workdir / "nights.json"
    have = json.loads(done.read_text())["nights"] if done.exists() else 0
    rng = np.random.default_rng(have)
    for night in range(have + 1, nights + 1):
        _write_night(store, _night_rows(night, rows_per_night), night, rng)
    manifest = pd.concat([_night_rows(n, rows_per_night) for n in range(1, nights + 1)], ignore_index=True)
    manifest.to_parquet(workdir / "manifest.parquet")
    done.write_text(json.dumps({"nights": nights}))


def measure(workdir: Path, method: str) -> dict:
    """In this (child) process: read the last night's rows by ``method``; wall s and peak RSS growth."""
    from storage.models import EmbeddingSetting
    from tasks.nightly.challenger import rows_embeddings
    from tasks.train.data import labelled_embeddings

    manifest = pd.read_parquet(workdir / "manifest.parquet")
    tonight = manifest[manifest["batch_id"] == manifest["batch_id"].iloc[-1]]
    setting = EmbeddingSetting(encoder=ENCODER, layer=LAYER, pooling=POOLING, crop_s=None)
    store = str(workdir / "store")
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if method == "whole_dataset":  # every row of the inbox, then tonight's picked out
        everything = labelled_embeddings(manifest, store, setting, datasets=[DATASET])
        keys = set(zip(tonight["dataset"], tonight["utt_id"]))
        mask = np.array([k in keys for k in zip(everything.rows["dataset"], everything.rows["utt_id"])])
        n = int(mask.sum())
    else:
        n = len(rows_embeddings(setting, manifest, store, tonight).rows)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "store_rows": len(manifest),
        "rows_read": n,
        "wall_s": round(wall, 3),
        "rss_growth_mib": round((peak_kib - base_kib) / 1024, 1),
    }


def run(workdir: Path, nights: list[int], rows_per_night: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for n in nights:
        grow(workdir, n, rows_per_night)
        for method in ("whole_dataset", "rows"):
            child = subprocess.run(
                [sys.executable, __file__, "measure", "--workdir", str(workdir), "--method", method],
                check=True,
                capture_output=True,
                text=True,
            )
            result = {"nights": n, **json.loads(child.stdout.strip().splitlines()[-1])}
            print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "measure"))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--nights", default="1,30,90,180,365", help="store sizes to measure at, in nights")
    parser.add_argument("--rows-per-night", type=int, default=1000)
    parser.add_argument("--method", choices=("whole_dataset", "rows"), default="rows")
    args = parser.parse_args()
    if args.command == "measure":
        print(json.dumps(measure(args.workdir, args.method)))
    else:
        run(args.workdir, [int(n) for n in args.nights.split(",")], args.rows_per_night)


if __name__ == "__main__":
    main()
