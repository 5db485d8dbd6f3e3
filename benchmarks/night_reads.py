"""What reading one night's inbox rows costs as the inbox grows over a season.

The nightly loop's drift, challenger and compare steps each read tonight's (or the pooled)
inbox rows from the embedding store. The inbox is one dataset that holds every night so far,
so a read of the whole dataset followed by a subset (what those steps did before
``tasks.nightly.challenger.rows_embeddings``) grows with the nights, while a read of the rows
themselves (``rows_embeddings``: the store scan filtered on their utt_ids) should not.

``build`` writes a schema-valid store through the project's own ``write_shard``: one inbox
dataset, ``--rows-per-night`` rows a night, each night's rows in their own shard as a night's
embed run writes them (d = 1,024, float16 as ``encoder.storage_dtype: float16`` stores them),
utt ids ``<night folder>/<file>`` as the inbox names them; the manifest also lists
``--corpus-rows`` rows of the configured corpora (eight corpora's manifests at full size hold
about 2 M rows; their embeddings are not needed here), which the rows must be matched against.
``run`` grows the store to each of
``--nights`` in turn and measures, each in a fresh child process, reading the last night's rows
both ways: wall time of the read and the child's peak RSS during it over its RSS before it
(the peak reset after the manifest is loaded).

Usage (from the repository root, with PYTHONPATH=.):
    nice -n 10 python benchmarks/night_reads.py run --workdir /tmp/night-reads --nights 1,30,90,180,365
"""

from __future__ import annotations

import argparse
import json
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


def _corpus_rows(n: int) -> pd.DataFrame:
    rows = _night_rows(0, n).assign(dataset=np.where(np.arange(n) % 2 == 0, "asvspoof2019_la", "in_the_wild"))
    return rows.assign(batch_id=None, utt_id=[f"LA_T_{i:08d}" for i in range(n)])


def grow(workdir: Path, nights: int, rows_per_night: int, corpus_rows: int) -> None:
    """Write the nights not yet in ``workdir``'s store, up to ``nights``; the manifest of them all
    after ``corpus_rows`` rows of other corpora."""
    store, done = workdir / "store", workdir / "nights.json"
    have = json.loads(done.read_text())["nights"] if done.exists() else 0
    rng = np.random.default_rng(have)
    for night in range(have + 1, nights + 1):
        _write_night(store, _night_rows(night, rows_per_night), night, rng)
    nights_rows = [_night_rows(n, rows_per_night) for n in range(1, nights + 1)]
    manifest = pd.concat([_corpus_rows(corpus_rows), *nights_rows], ignore_index=True)
    manifest.to_parquet(workdir / "manifest.parquet")
    done.write_text(json.dumps({"nights": nights}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark measures memory on Linux")


def _reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS (Linux: ``clear_refs`` 5), so the peak after
    the read is the read's, not loading the manifest's; the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def measure(workdir: Path, method: str) -> dict:
    """In this (child) process: read the last night's rows by ``method`` (matching them to the
    manifest included); wall s and peak RSS growth."""
    from storage.models import EmbeddingSetting
    from tasks.nightly.challenger import rows_embeddings
    from tasks.train.data import labelled_embeddings

    manifest = pd.read_parquet(workdir / "manifest.parquet")
    tonight = manifest[manifest["batch_id"] == manifest["batch_id"].iloc[-1]]
    setting = EmbeddingSetting(encoder=ENCODER, layer=LAYER, pooling=POOLING, crop_s=None)
    store = str(workdir / "store")
    base_kib = _reset_peak_rss()
    started = time.perf_counter()
    if method == "whole_dataset":  # every row of the inbox, then tonight's picked out
        everything = labelled_embeddings(manifest, store, setting, datasets=[DATASET])
        keys = set(zip(tonight["dataset"], tonight["utt_id"]))
        mask = np.array([k in keys for k in zip(everything.rows["dataset"], everything.rows["utt_id"])])
        n = int(mask.sum())
    else:
        n = len(rows_embeddings(setting, manifest, store, tonight).rows)
    wall = time.perf_counter() - started
    peak_kib = _status_kib("VmHWM")
    return {
        "method": method,
        "store_rows": int(manifest["dataset"].eq(DATASET).sum()),
        "manifest_rows": len(manifest),
        "rows_read": n,
        "wall_s": round(wall, 3),
        "rss_growth_mib": round((peak_kib - base_kib) / 1024, 1),
    }


def run(workdir: Path, nights: list[int], rows_per_night: int, corpus_rows: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for n in nights:
        grow(workdir, n, rows_per_night, corpus_rows)
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
    parser.add_argument("--corpus-rows", type=int, default=2_000_000, help="manifest rows of the other corpora")
    parser.add_argument("--method", choices=("whole_dataset", "rows"), default="rows")
    args = parser.parse_args()
    if args.command == "measure":
        print(json.dumps(measure(args.workdir, args.method)))
    else:
        run(args.workdir, [int(n) for n in args.nights.split(",")], args.rows_per_night, args.corpus_rows)


if __name__ == "__main__":
    main()
