"""Data-check time: tasks.ingest.checks.content_checks on large synthetic manifests.

Builds manifests of the size of the eight-corpus benchmark (default 1.5M rows over eight
datasets, the first one with train/dev/eval splits, the others eval only), with a chosen
share of rows that copy another row's sha256 — within a dataset and across datasets,
including train → eval overlap — and times the checks `addgp datasets` and the pipeline run.
No audio is read: the checks work on the manifest columns only.

    python benchmarks/data_checks.py                  # 1.5M rows, 1 % duplicated
    python benchmarks/data_checks.py --rows 200000 --duplicate-share 0.05
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd

from tasks.ingest.checks import content_checks


def synthetic_manifests(rows: int, datasets: int, duplicate_share: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array([f"corpus{i}" for i in range(datasets)])
    dataset = names[rng.integers(0, datasets, rows)]
    split = np.where(dataset == names[0], rng.choice(["train", "dev", "eval"], rows, p=[0.5, 0.2, 0.3]), "eval")
    sha = np.array([f"{i:064x}" for i in range(rows)], dtype=object)
    copies = rng.random(rows) < duplicate_share
    sha[copies] = sha[rng.integers(0, rows, int(copies.sum()))]  # the bytes of another row, anywhere
    return pd.DataFrame(
        {
            "utt_id": [f"u{i}" for i in range(rows)],
            "dataset": dataset,
            "split": split,
            "label": rng.choice(["bonafide", "spoof"], rows),
            "sha256": sha,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--datasets", type=int, default=8)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    frame = synthetic_manifests(args.rows, args.datasets, args.duplicate_share)
    train = [("corpus0", "train"), ("corpus0", "dev")]
    evaluate = [(f"corpus{i}", "eval") for i in range(args.datasets)]
    times, cpu = [], []
    for _ in range(args.repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        checks = content_checks(frame, train=train, evaluate=evaluate)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    found = checks[checks["count"] > 0].groupby("check")["count"].sum().to_dict()
    print(
        json.dumps(
            {
                "rows": args.rows,
                "datasets": args.datasets,
                "duplicate_share": args.duplicate_share,
                "check_rows": len(checks),
                "found": {k: int(v) for k, v in found.items()},
                "seconds_best": round(min(times), 2),
                "seconds_all": [round(t, 2) for t in times],
                # CPU seconds of this process: what the checks cost when the machine is shared.
                "cpu_seconds_best": round(min(cpu), 2),
                "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}, pandas {pd.__version__}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
