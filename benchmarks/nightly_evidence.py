"""Cost of the nightly decision's held-out evidence: the paired bootstrap of champion − challenger EER per slice.

A score table of ``--slices`` slices x ``--n`` rows, scored by a champion and a challenger
that share each row's difficulty (tasks.nightly.compare.held_out_evidence). Times, best of
``--repeat``, for each ``--n``. Prints a table; writes nothing.

    python benchmarks/nightly_evidence.py                      # 3 slices, 2 000 / 20 000 / 200 000 rows, 200 resamples
    python benchmarks/nightly_evidence.py --n 5000 --boot 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from tasks.nightly.compare import held_out_evidence


def score_table(slices: int, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(slices):
        bona = rng.random(n) < 0.3
        difficulty = rng.normal(0, 1, n)
        for detector, gap in (("champion", 2.0), ("challenger", 2.4)):
            frames.append(
                pd.DataFrame(
                    {
                        "utt_id": [f"u{i}" for i in range(n)],
                        "dataset": f"corpus{s}",
                        "label": np.where(bona, "bonafide", "spoof"),
                        "detector": detector,
                        "score": np.where(bona, gap / 2, -gap / 2) + difficulty + rng.normal(0, 0.5, n),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--n", type=int, nargs="+", default=[2_000, 20_000, 200_000])
    parser.add_argument("--boot", type=int, default=200, help="resamples (nightly.n_boot; default 200)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"{args.slices} slices, {args.boot} paired resamples, best of {args.repeat}")
    print("| rows per slice | seconds (all slices) |")
    print("|---:|---:|")
    for n in args.n:
        scores = score_table(args.slices, n)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            held_out_evidence(scores, args.boot)
            best = min(best, time.perf_counter() - start)
        print(f"| {n:,} | {best:.2f} |")


if __name__ == "__main__":
    main()
