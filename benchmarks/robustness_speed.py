"""Cost of the robustness tables: the paired bootstrap of EER and Cllr changes against clean.

A score table of ``--detectors`` detectors x ``--corpora`` eval corpora x ``--n`` utterances,
scored clean and under ``--conditions`` degraded conditions (every utterance under every
condition, so every degraded row is paired with a clean one). Times, best of ``--repeat``:

- ``robustness_tables`` alone (``--boot`` paired resamples per (detector, corpus, condition));
- ``evaluate_scores`` on the clean rows only (the report without conditions) and on the
  whole table (with the robustness tables), so the difference is what conditions add.

Prints a table; writes nothing.

    python benchmarks/robustness_speed.py                     # 2 detectors x 4 corpora x 5000 utts, 3 conditions, 1000 resamples
    python benchmarks/robustness_speed.py --n 1000 --boot 200 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.evaluate.robustness import robustness_tables


def score_table(detectors: int, corpora: int, n: int, conditions: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(detectors):
        for c in range(corpora):
            bona = rng.random(n) < 0.3
            clean = np.where(bona, 1.5, -1.5) + rng.normal(0, 1, n)
            base = pd.DataFrame(
                {
                    "utt_id": [f"c{c}-{i}" for i in range(n)],
                    "dataset": f"corpus{c}",
                    "detector": f"det{d}",
                    "label": np.where(bona, "bonafide", "spoof"),
                    "speaker": [f"s{i % 200}" for i in range(n)],
                }
            )
            frames.append(base.assign(score=clean, condition="clean"))
            for k in range(conditions):
                degraded = clean * (0.9 - 0.2 * k) + rng.normal(0, 0.3 + 0.2 * k, n)
                frames.append(base.assign(score=degraded, condition=f"cond{k}"))
    return pd.concat(frames, ignore_index=True)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", type=int, default=2)
    parser.add_argument("--corpora", type=int, default=4)
    parser.add_argument("--n", type=int, default=5000, help="utterances per corpus")
    parser.add_argument("--conditions", type=int, default=3, help="degraded conditions besides clean")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--repeat", type=int, default=2, help="runs per step; the best is shown")
    args = parser.parse_args()

    table = score_table(args.detectors, args.corpora, args.n, args.conditions)
    clean = table[table["condition"] == "clean"]
    settings = EvaluationSettings(n_boot=args.boot)
    cells = args.detectors * args.corpora * args.conditions
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"# {args.detectors} detectors x {args.corpora} corpora x {args.n} utterances, clean + {args.conditions} conditions "
        f"({len(table):,} rows), {args.boot} resamples"
    )
    rows = [
        (f"robustness_tables ({cells} paired cells)", best(lambda: robustness_tables(table, args.boot), args.repeat)),
        ("evaluate_scores, clean rows only", best(lambda: evaluate_scores(clean, settings), args.repeat)),
        ("evaluate_scores, with conditions", best(lambda: evaluate_scores(table, settings), args.repeat)),
    ]
    print(f"{'step':<44} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:<44} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
