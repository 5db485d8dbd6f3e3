"""Fit time and peak memory of the detectors as the training set grows (CPU).

For each size n the embeddings (n x dim float32, Gaussian clusters: bona fide at the origin,
four spoof attacks displaced along random directions) are generated chunk by chunk into a
``.npy`` memmap under --workdir and reused by later runs. Every (model, n) is then measured in
a fresh child process, so that its peak memory is its own:

* ``fit_s`` / ``adapt_s``: wall-clock seconds; ``fit_cpu_s``: CPU seconds of the process (all
  threads). On a shared machine both grow with the load (``load_avg_1min`` is recorded);
* ``peak_rss_mib``: peak resident set (``resource.getrusage``). It counts the memmap's pages
  that were read, which are file-backed and reclaimable;
* ``peak_anon_mib``: peak private (anonymous) memory, sampled every 50 ms from
  /proc/self/status: the memory the fit itself holds, the number to watch for "bounded";
* ``py_peak_mib``: peak of tracemalloc (Python and numpy allocations; torch's allocator is
  invisible to it).

Models: ``lr`` (C fixed at 1, no dev grid), ``lr_grid`` (C chosen on a dev set from the default
grid of 7 values), ``exact`` (Dirichlet DKL GP, a fixed number of full-batch steps; only up to
--exact-max rows), ``svgp`` (variational DKL GP, a fixed number of epochs, so its time should
grow linearly in n). After each fit, few-shot adaptation is timed for each K in --adapt-k with
--replay replay rows.

Usage:
    python benchmarks/train_scale.py --sizes 10000,100000 --models lr,exact,svgp
    python benchmarks/train_scale.py --sizes 1000000 --models lr,svgp --out big.jsonl
    python benchmarks/train_scale.py --sizes 50000 --dim 1920 --models lr,lr_grid
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

CHUNK_ROWS = 50_000
N_ATTACKS = 4
MIB = 1024 * 1024


def data_paths(workdir: Path, n: int, dim: int) -> tuple[Path, Path]:
    return workdir / f"X_{n}x{dim}.npy", workdir / f"is_spoof_{n}.npy"


def generate(workdir: Path, n: int, dim: int, seed: int = 0) -> None:
    """Write n x dim float32 embeddings into a memmap chunk by chunk (never all in memory)."""
    x_path, y_path = data_paths(workdir, n, dim)
    if x_path.exists() and y_path.exists():
        return
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((N_ATTACKS, dim)).astype(np.float32)
    centres = 3.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)  # 3 sd from bona fide
    is_spoof = rng.random(n) < 0.7  # spoof-heavy, as in ASVspoof training sets
    attack = rng.integers(0, N_ATTACKS, size=n)
    tmp = x_path.with_suffix(".tmp.npy")
    X = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        chunk = rng.standard_normal((stop - start, dim), dtype=np.float32)
        chunk += is_spoof[start:stop, None] * centres[attack[start:stop]]
        X[start:stop] = chunk
    X.flush()
    del X
    os.replace(tmp, x_path)
    np.save(y_path, is_spoof)


class AnonPeak:
    """Samples the process's private memory (RssAnon) in a thread and keeps the peak."""

    def __init__(self, every_s: float = 0.05):
        self.every_s, self.peak_kib, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.current_kib())
            time.sleep(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.current_kib())


def make(model: str, args, n: int):
    from tasks.train.dkl_gp import DKLGPDetector
    from tasks.train.logreg import LogRegDetector

    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    g = dict(feature_extractor="mlp", hidden_dims=hidden) if hidden else dict(feature_extractor="identity")
    if model == "lr":
        return LogRegDetector(C=1.0)
    if model == "lr_grid":
        return LogRegDetector()
    if model == "exact":
        return DKLGPDetector(mode="exact", **g, max_steps=args.exact_steps, progress=False)
    if model == "svgp":
        return DKLGPDetector(
            mode="variational",
            **g,
            n_inducing=args.inducing,
            batch_size=args.batch_size,
            max_steps=args.svgp_epochs * -(-n // args.batch_size),
            progress=False,
        )
    raise ValueError(f"unknown model {model!r}")


def measure_one(model: str, n: int, args) -> dict:
    """Runs in a child process: load the memmap, fit, adapt, score; report times and peaks."""
    import torch

    if args.threads:  # this child process only
        torch.set_num_threads(args.threads)

    x_path, y_path = data_paths(Path(args.workdir), n, args.dim)
    X = np.load(x_path, mmap_mode="r")
    is_spoof = np.load(y_path)
    fit_kwargs = {}
    if model == "lr_grid":  # a dev set of 10% of n, drawn from the same distribution
        rows = np.sort(np.random.default_rng(1).choice(n, size=max(n // 10, 100), replace=False))
        fit_kwargs = {"X_dev": np.asarray(X[rows]), "y_dev": is_spoof[rows]}
    # Warm-up on 256 rows: torch's and gpytorch's one-time start-up costs (~2 s) are not fit time.
    warm = np.sort(np.random.default_rng(3).choice(n, size=min(256, n), replace=False))
    make(model, args, n).set_params(**({"max_steps": 1} if model in ("exact", "svgp") else {})).fit(
        X[warm], is_spoof[warm]
    )
    detector = make(model, args, n)
    result = {"model": model, "n": n, "dim": args.dim, "torch_threads": torch.get_num_threads()}
    if model == "exact":
        result["steps"] = args.exact_steps
    if model == "svgp":
        result["epochs"] = args.svgp_epochs
    baseline_kib = AnonPeak.current_kib()
    tracemalloc.start()
    with AnonPeak() as anon:
        start, cpu_start = time.perf_counter(), time.process_time()
        detector.fit(X, is_spoof, **fit_kwargs)
        result["fit_s"] = round(time.perf_counter() - start, 2)
        result["fit_cpu_s"] = round(time.process_time() - cpu_start, 2)
    result["py_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 1)
    tracemalloc.stop()
    result["peak_anon_mib"] = round(anon.peak_kib / 1024, 1)
    result["anon_before_fit_mib"] = round(baseline_kib / 1024, 1)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if model == "lr_grid":
        result["C_chosen"] = detector.C_
    if model in ("exact", "svgp"):
        result["steps_run"] = detector.steps_run_

    test = np.asarray(X[: min(n, 10_000)])
    start = time.perf_counter()
    detector.score_llr(test)
    result["score_rows_per_s"] = round(len(test) / (time.perf_counter() - start))

    rng = np.random.default_rng(2)
    replay = np.sort(rng.choice(n, size=min(args.replay, n), replace=False))
    X_replay, y_replay = np.asarray(X[replay]), is_spoof[replay]
    new_attack = 3.0 * rng.standard_normal(args.dim).astype(np.float32) / np.sqrt(args.dim)
    for k in args.adapt_k:
        shots = rng.standard_normal((k, args.dim)).astype(np.float32) + new_attack
        start = time.perf_counter()
        detector.adapt(shots, np.ones(k, dtype=bool), X_replay, y_replay)
        result[f"adapt_K{k}_s"] = round(time.perf_counter() - start, 2)
    result["load_avg_1min"] = round(os.getloadavg()[0], 1)  # the CPU may be shared: context for the times
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated training-set sizes")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--models", default="lr,exact,svgp", help="from lr, lr_grid, exact, svgp")
    parser.add_argument(
        "--exact-max", type=int, default=10_000, help="largest n for the exact GP (it refuses > 20,000)"
    )
    parser.add_argument("--exact-steps", type=int, default=10, help="full-batch steps of the exact GP")
    parser.add_argument("--svgp-epochs", type=int, default=1)
    parser.add_argument("--hidden", default="256,64", help="MLP feature extractor widths for both GPs ('' = identity)")
    parser.add_argument("--inducing", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--adapt-k", default="10,100")
    parser.add_argument("--replay", type=int, default=2000, help="replay rows for adaptation")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads in the measuring process (0 = torch's default)"
    )
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "addgp-train-bench"))
    parser.add_argument("--out", default=None, help="append one JSON line per measurement to this file")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args(argv)
    args.adapt_k = [int(k) for k in args.adapt_k.split(",") if k]

    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args)), flush=True)
        return

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    models = args.models.split(",")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')} {platform.node()} {platform.processor() or platform.machine()} "
        f"cpus={os.cpu_count()} python={platform.python_version()} dim={args.dim}",
        flush=True,
    )
    for n in sizes:
        start = time.perf_counter()
        generate(workdir, n, args.dim)
        print(
            f"# data n={n}: ready in {time.perf_counter() - start:.1f} s ({n * args.dim * 4 / MIB:,.0f} MiB memmap)",
            flush=True,
        )
        for model in models:
            if model == "exact" and n > args.exact_max:
                reason = (
                    "refused: exact GP takes at most 20,000 rows"
                    if n > 20_000
                    else f"not run: n > --exact-max {args.exact_max}"
                )
                result = {"model": model, "n": n, "dim": args.dim, "skipped": reason}
            else:
                child = [
                    sys.executable,
                    __file__,
                    *(argv if argv is not None else sys.argv[1:]),
                    "--one",
                    model,
                    str(n),
                ]
                proc = subprocess.run(child, capture_output=True, text=True)
                if proc.returncode != 0:
                    result = {"model": model, "n": n, "dim": args.dim, "error": proc.stderr.strip().splitlines()[-1:]}
                else:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
