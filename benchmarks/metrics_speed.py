"""Speed of the metrics library on large score sets.

Times, best of ``--repeat`` runs, on ``--n`` random scores (two overlapping Gaussians,
``--bona-share`` bona fide, labels as a pandas string column):

- the shared part: validating labels and scores, and the one sort into tie groups;
- EER, min DCF and Cllr, each on the sorted groups;
- EER + min DCF + Cllr from raw scores, and the full ``compute_metrics`` (all metrics);
- for comparison, the ASVspoof packages' own EER procedure (stable sort, per-trial
  curves), whose value must equal ours;
- the bootstrap: ``--boot`` resamples of a ``--boot-n``-row set, by row and by speaker
  (scores handled = rows x resamples).

Prints a table; writes nothing.

    python benchmarks/metrics_speed.py                 # 10M scores, 1000 x 100k bootstrap
    python benchmarks/metrics_speed.py --n 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from addgp.metrics import compute_metrics, group_by_score, metrics_from_counts, validated
from tasks.evaluate.bootstrap import bootstrap_ci


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def random_scores(n: int, bona_share: float, seed: int = 0) -> tuple[np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    bona = rng.random(n) < bona_share
    scores = np.where(bona, rng.normal(2.0, 1.5, n), rng.normal(-2.0, 1.5, n))
    return scores, pd.Series(np.where(bona, "bonafide", "spoof"), dtype="str")


def asvspoof_procedure_eer(bona: np.ndarray, spoof: np.ndarray) -> float:
    """The ASVspoof packages' EER, step by step: stable sort, per-trial FRR/FAR, argmin."""
    scores = np.concatenate([bona, spoof])
    is_bona = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
    bona_rejected = np.cumsum(is_bona[np.argsort(scores, kind="mergesort")])
    frr = np.concatenate([[0.0], bona_rejected / bona.size])
    far = np.concatenate([[1.0], (spoof.size - (np.arange(1, scores.size + 1) - bona_rejected)) / spoof.size])
    best = np.argmin(np.abs(frr - far))
    return float(np.mean((frr[best], far[best])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000_000, help="scores in the large set")
    parser.add_argument("--bona-share", type=float, default=0.1, help="fraction of bona fide scores")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best is shown")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--boot-n", type=int, default=100_000, help="rows of the bootstrapped set")
    args = parser.parse_args()

    scores, labels = random_scores(args.n, args.bona_share)
    s, bona = validated(scores, labels)
    groups = group_by_score(s, bona)

    def on_groups(*names):
        return lambda: metrics_from_counts(groups.scores, groups.n_bonafide, groups.n_spoof, names)

    rows = []

    def step(name, fn, repeat=args.repeat, n=args.n):
        seconds, result = best_time(fn, repeat)
        rows.append((name, n, seconds))
        return result

    step("validate labels + scores", lambda: validated(scores, labels))
    step("sort into tie groups", lambda: group_by_score(s, bona))
    ours = step("EER (on groups)", on_groups("eer"))["eer"][0]
    step("min DCF (on groups)", on_groups("min_dcf"))
    step("Cllr (on groups)", on_groups("cllr"))

    def eer_dcf_cllr():
        g = group_by_score(*validated(scores, labels))
        return metrics_from_counts(g.scores, g.n_bonafide, g.n_spoof, ("eer", "min_dcf", "cllr"))

    step("EER + min DCF + Cllr, end to end", eer_dcf_cllr)
    full = step("compute_metrics (all metrics)", lambda: compute_metrics(scores, labels))
    reference = step("ASVspoof package EER procedure", lambda: asvspoof_procedure_eer(s[bona], s[~bona]), repeat=1)
    if reference != ours or full["eer"] != ours:
        raise SystemExit(f"EER mismatch: ours {ours!r}, package procedure {reference!r}")

    boot_scores, boot_labels = random_scores(args.boot_n, 0.3, seed=1)
    speakers = np.random.default_rng(2).integers(0, 500, args.boot_n).astype(str)
    frame = pd.DataFrame({"score": boot_scores, "label": boot_labels, "speaker": speakers})
    for metric in ("eer", "min_dcf"):
        for unit, column in (("rows", None), ("speakers", "speaker")):
            step(
                f"bootstrap {metric}, {args.boot} x by {unit}",
                lambda metric=metric, column=column: bootstrap_ci(frame, metric, args.boot, cluster_col=column),
                repeat=1,
                n=args.boot_n * args.boot,
            )

    print(
        f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"# EER {ours:.6f} (equal to the package procedure), min DCF {full['min_dcf']:.4f}, Cllr {full['cllr']:.4f}")
    print(f"{'step':<44} {'scores handled':>14} {'seconds':>8} {'M scores/s':>11}")
    for name, n, seconds in rows:
        print(f"{name:<44} {n:>14,} {seconds:>8.2f} {n / seconds / 1e6:>11.2f}")


if __name__ == "__main__":
    main()
