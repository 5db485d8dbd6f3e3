"""The stages after the encoder at the eight-corpus benchmark's real row counts (issue 21).

``build`` writes a schema-valid workspace through the project's own storage functions
(``storage.manifests.write_manifest``, ``storage.embeddings.write_shard``): one manifest per
corpus and an embedding store of class-dependent Gaussian embeddings (d = 1,024, float16 as
``encoder.storage_dtype: float16`` stores them, encoder ``xlsr-300m-random`` layer 9, mean
pooling); no encoder runs. ``FRACTION`` scales every count below (1 % = 0.01). Each corpus has
its own offset (domain shift, shared by both classes) and its own attacks (spoof centres drawn
from one pool, so a detector trained on ASVspoof 2019 LA partly generalises); speakers hold
about 50 utterances each, so the bootstrap resamples speakers as on the real corpora.

``run`` then measures each step in a child process (wall time, CPU time of the child and its
children, peak RSS from ``resource.getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper process):

* ``train_logreg`` / ``train_dkl_gp``: ``addgp train`` on ASVspoof 2019 LA train (+ dev);
  the GP with ``max_steps=100`` (a fixed number of mini-batch steps: its cost does not grow
  with the rows, only its data read does);
* ``evaluate``: ``addgp evaluate`` of both models on every eval corpus (``--n-boot 0``: the
  CIs are the report's job) with an empty score cache, so everything is scored;
* ``report``: ``addgp report`` of those scores (1,000 bootstrap resamples per cell);
* ``startup``: the nights' script up to its first step (imports of numpy, pandas, torch and
  the stages): the fixed cost every step's child process pays, whatever the size;
* ``first_quiet_night`` / ``quiet_night``: the first night without new data after the
  evaluation (scores from the cache, EER intervals resampled once), then the next one (the
  steady state: scores and intervals from the cache); ``tasks.nightly.compare.reevaluate_champion``,
  the nightly flow's step, champion = the GP, 200 resamples;
* ``batch_night``: a night with a batch (1 % of the training rows as new fakes of a new
  attack): challenger = logreg retrained on old + new rows, then champion vs challenger on
  every eval set and the held-out rows (``tasks.nightly``'s challenger and compare steps).

Prefect's task wrappers are not used for the nights (their server start would dominate small
sizes); the functions they call are. Results go to ``WORKDIR/scale-<fraction>.jsonl``, one line
per step; ``table`` prints docs/benchmarks.md's table from several such files with each step's
growth exponent (log CPU-time ratio / log row ratio between consecutive fractions), also net of
the ``startup`` step's CPU (the fixed cost of a child process).

Usage (from the repository root, with PYTHONPATH=.):
    nice -n 10 python benchmarks/scale.py build --fraction 0.01 --workdir /tmp/scale-1
    nice -n 10 python benchmarks/scale.py run --fraction 0.01 --workdir /tmp/scale-1
    nice -n 10 python benchmarks/scale.py run --fraction 1 --workdir /tmp/scale-100 \
        --steps evaluate,report,quiet_night --models-from /tmp/scale-10
    python benchmarks/scale.py table /tmp/scale-1/scale-0.01.jsonl /tmp/scale-10/scale-0.1.jsonl ...
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ENCODER = "xlsr-300m-random"
LAYER = 9
POOLING = "mean"
DIM = 1024
DTYPE = "float16"
SHARD_ROWS = 20_000
TRAIN_SET = "asvspoof2019_la"
# (train, dev, eval) rows at their published sizes; the eight corpora sum to the issue's ~2 M eval rows
# (FoR, MLAAD and TIMIT-TTS rounded so that they do).
COUNTS = {
    "asvspoof2019_la": (25_380, 24_844, 71_237),
    "asvspoof2021_la": (0, 0, 181_566),
    "asvspoof2021_df": (0, 0, 611_829),
    "asvspoof5": (0, 0, 680_774),
    "in_the_wild": (0, 0, 31_779),
    "fake_or_real": (0, 0, 69_300),
    "mlaad": (0, 0, 230_000),
    "timit_tts": (0, 0, 124_000),
}
EVAL_SETS = list(COUNTS)
N_ATTACK_POOL = 24
ATTACKS_PER_CORPUS = 8
UTTERANCES_PER_SPEAKER = 50
STEPS = (
    "startup",
    "train_logreg",
    "train_dkl_gp",
    "evaluate",
    "report",
    "first_quiet_night",
    "quiet_night",
    "batch_night",
)


def eval_rows(fraction: float) -> int:
    return sum(round(c[2] * fraction) for c in COUNTS.values())


# ------------------------------------------------------------------ build


def _corpus_rows(name: str, fraction: float, rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for split, count in zip(("train", "dev", "eval"), COUNTS[name]):
        n = round(count * fraction)
        if n == 0:
            continue
        is_spoof = rng.random(n) < 0.8
        attack_ids = rng.integers(0, ATTACKS_PER_CORPUS, size=n)
        n_speakers = max(2, n // UTTERANCES_PER_SPEAKER)
        utt = [f"{name}-{split}-{i:07d}" for i in range(n)]
        frames.append(
            pd.DataFrame(
                {
                    "utt_id": utt,
                    "dataset": name,
                    "split": split,
                    "label": np.where(is_spoof, "spoof", "bonafide"),
                    "attack": pd.Series([f"{name}-A{a:02d}" for a in attack_ids]).where(is_spoof, None),
                    "speaker": [f"{name}-{split}-spk{i % n_speakers:05d}" for i in range(n)],
                    "path": [f"/synthetic/{name}/{u}.flac" for u in utt],
                    "duration_s": 3.0,
                    "sha256": [hashlib.sha256(u.encode()).hexdigest() for u in utt],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _embeddings(rows: pd.DataFrame, corpus: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bona fide ~ N(offset, I); a spoof of attack a ~ N(offset + centre_a, I)."""
    offset = 0.8 * pool[(corpus * 7 + 3) % N_ATTACK_POOL] * (corpus > 0)
    X = rng.standard_normal((len(rows), DIM), dtype=np.float32)
    X += offset
    spoof = (rows["label"] == "spoof").to_numpy()
    attack = rows["attack"].str.rsplit("A", n=1).str[-1].fillna("0").astype(int).to_numpy()
    centres = pool[(corpus * 3 + attack) % N_ATTACK_POOL]
    X[spoof] += 1.6 * centres[spoof]
    return X


def build(workdir: Path, fraction: float, seed: int = 0) -> dict:
    from storage.embeddings import ShardLocation, encoder_slug, write_shard
    from storage.manifests import write_manifest
    from storage.workspace import Workspace

    workspace = Workspace.at(workdir)
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((N_ATTACK_POOL, DIM)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    slug = encoder_slug(ENCODER, POOLING, None)
    no_rejects = pd.DataFrame(columns=["dataset", "utt_id", "sha256", "path", "reason", "kind"])
    counts = {}
    for corpus, name in enumerate(COUNTS):
        done = Path(workspace.manifest(name))
        rows = _corpus_rows(name, fraction, np.random.default_rng([seed, corpus]))
        counts[name] = len(rows)
        if done.exists():
            continue  # the manifest is written last: a corpus with one is complete
        for start in range(0, len(rows), SHARD_ROWS):
            part = rows.iloc[start : start + SHARD_ROWS]
            X = _embeddings(part, corpus, pool, np.random.default_rng([seed, corpus, start]))
            meta = part[["utt_id", "dataset", "sha256"]].assign(
                encoder=ENCODER, random_weights=True, layer=LAYER, pooling=POOLING, crop_s=None
            )
            key = hashlib.sha256(f"{name}|{start}|{len(part)}|{seed}".encode()).hexdigest()[:16]
            write_shard(ShardLocation(workspace.embeddings, slug, name, key), meta, X, DTYPE, no_rejects)
        write_manifest(rows, done)
        print(f"built {name}: {len(rows)} rows", flush=True)
    return counts


# ------------------------------------------------------------------ measure


def measure(command: list[str], log: Path) -> dict:
    """Run ``command`` in a fresh wrapper process; wall, CPU (user + sys of the step and its
    children) and peak RSS (the largest of them) as that wrapper's RUSAGE_CHILDREN sees them."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.time()\n"
        "with open(sys.argv[1], 'w') as out:\n"
        "    rc = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': rc, 'wall_s': time.time() - t, 'cpu_s': u.ru_utime + u.ru_stime,"
        " 'peak_rss_mib': u.ru_maxrss / 1024}))\n"
    )
    result = subprocess.run([sys.executable, "-c", wrapper, str(log), *command], capture_output=True, text=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["rc"] != 0:
        raise RuntimeError(f"step {command} failed (rc {measured['rc']}); see {log}")
    return measured


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", *args]


NIGHT_SCRIPT = """
import json, sys, time
import numpy as np, pandas as pd
from storage.manifests import read_manifests
from storage.workspace import Workspace
from tasks.nightly.compare import compare_champion_and_challenger, reevaluate_champion
from tasks.nightly.challenger import build_challenger, split_new_rows
from tasks.train.detectors import load_detector
workdir, kind, eval_sets, champion_path, challenger_path = sys.argv[1:6]
workspace = Workspace.at(workdir)
eval_sets = eval_sets.split(",")
paths = [workspace.manifest(d) for d in eval_sets]
if kind == "startup":
    table = pd.DataFrame({"imports": ["done"]})
elif kind == "quiet":
    table = reevaluate_champion(load_detector(champion_path), read_manifests(paths), workspace.embeddings,
                                eval_sets, ["eval"], 200, None)
else:
    from storage.models import save_model
    from tasks.nightly.challenger import derived_card
    manifest = read_manifests(paths + [workspace.manifest("inbox")])
    learn, held = split_new_rows(manifest[manifest["dataset"] == "inbox"], 0.3)
    champion, card = load_detector(champion_path)
    challenger = build_challenger(champion, card, "retrain", manifest, workspace.embeddings, learn, 0)
    ref = save_model(workspace.models, "night_challenger", challenger, derived_card(card, learn, {}))
    result = compare_champion_and_challenger(
        {"champion": (champion, card), "challenger": load_detector(str(ref.path))},
        manifest, workspace.embeddings, eval_sets, ["eval"], held, 200, None)
    table = result.eer
print(table.to_string())
"""


def add_batch(workdir: Path, fraction: float, seed: int = 1) -> int:
    """A new inbox batch: 1 % of the training rows' count, new fakes of an unseen attack (+ bona fide)."""
    from storage.embeddings import ShardLocation, encoder_slug, write_shard
    from storage.manifests import write_manifest
    from storage.workspace import Workspace

    workspace = Workspace.at(workdir)
    if Path(workspace.manifest("inbox")).exists():
        return len(pd.read_parquet(workspace.manifest("inbox")))
    n = max(40, round(0.01 * sum(COUNTS[TRAIN_SET][:2]) * fraction))
    rng = np.random.default_rng(seed)
    utt = [f"inbox-{i:06d}" for i in range(n)]
    is_spoof = rng.random(n) < 0.7
    rows = pd.DataFrame(
        {
            "utt_id": utt,
            "dataset": "inbox",
            "split": "train",
            "label": np.where(is_spoof, "spoof", "bonafide"),
            "attack": pd.Series(["inbox-A00"] * n).where(is_spoof, None),
            "speaker": [f"inbox-spk{i % 20:03d}" for i in range(n)],
            "path": [f"/synthetic/inbox/{u}.flac" for u in utt],
            "duration_s": 3.0,
            "sha256": [hashlib.sha256(u.encode()).hexdigest() for u in utt],
            "batch_id": "batch-0001",
        }
    )
    X = rng.standard_normal((n, DIM), dtype=np.float32)
    direction = rng.standard_normal(DIM).astype(np.float32)
    X[is_spoof] += 1.6 * direction / np.linalg.norm(direction)
    meta = rows[["utt_id", "dataset", "sha256"]].assign(
        encoder=ENCODER, random_weights=True, layer=LAYER, pooling=POOLING, crop_s=None
    )
    no_rejects = pd.DataFrame(columns=["dataset", "utt_id", "sha256", "path", "reason", "kind"])
    write_shard(
        ShardLocation(workspace.embeddings, encoder_slug(ENCODER, POOLING, None), "inbox", "batch0001"),
        meta,
        X,
        DTYPE,
        no_rejects,
    )
    write_manifest(rows, workspace.manifest("inbox"))
    return n


def run(workdir: Path, fraction: float, steps: list[str], models_from: Path | None) -> list[dict]:
    from storage.workspace import Workspace

    workspace = Workspace.at(workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    models = Path(workspace.models)
    if models_from is not None and not models.exists():
        shutil.copytree(Path(Workspace.at(models_from).models), models)
    train_manifest = workspace.manifest(TRAIN_SET)
    eval_manifests = [workspace.manifest(d) for d in EVAL_SETS]
    scores = workdir / "scores.parquet"
    common = ["--store", workspace.embeddings, "--models", str(models), "--encoder", ENCODER, "--layer", str(LAYER)]
    commands = {
        "train_logreg": _cli("train", train_manifest, *common, "--name", "logreg", "--kind", "logreg"),
        "train_dkl_gp": _cli(
            "train", train_manifest, *common, "--name", "dkl_gp", "--kind", "dkl_gp",
            "--param", "max_steps=100", "--param", "progress=false",
        ),
        "evaluate": _cli(
            "evaluate", *eval_manifests, "--store", workspace.embeddings, "--model", str(models / "logreg"),
            "--model", str(models / "dkl_gp"), "-o", str(scores), "--n-boot", "0",
        ),
        "report": _cli(
            "report", str(scores), "--reports-root", workspace.reports, "--model", str(models / "logreg"),
            "--model", str(models / "dkl_gp"), "--no-fail-on-regression",
        ),
        "startup": [sys.executable, "-c", NIGHT_SCRIPT, str(workdir), "startup", ",".join(EVAL_SETS), "", ""],
        "first_quiet_night": [
            sys.executable, "-c", NIGHT_SCRIPT, str(workdir), "quiet", ",".join(EVAL_SETS), str(models / "dkl_gp"), "",
        ],
        "quiet_night": [
            sys.executable, "-c", NIGHT_SCRIPT, str(workdir), "quiet", ",".join(EVAL_SETS), str(models / "dkl_gp"), "",
        ],
        "batch_night": [
            sys.executable, "-c", NIGHT_SCRIPT, str(workdir), "batch", ",".join(EVAL_SETS), str(models / "logreg"), "",
        ],
    }  # fmt: skip
    results = []
    out = workdir / f"scale-{fraction:g}.jsonl"
    for step in steps:
        if step == "evaluate":
            shutil.rmtree(
                Path(workspace.embeddings) / "_scores", ignore_errors=True
            )  # a full evaluation: nothing cached
        if step == "first_quiet_night":  # the intervals kept by an earlier night go: the first night resamples
            for kept in (Path(workspace.embeddings) / "_scores").rglob("*.json"):
                kept.unlink()
        if step == "batch_night":
            add_batch(workdir, fraction)
        measured = measure(commands[step], logs / f"{step}.log")
        row = {"step": step, "fraction": fraction, "eval_rows": eval_rows(fraction), **measured}
        row["load_avg_1min"] = os.getloadavg()[0]
        print(json.dumps(row), flush=True)
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        results.append(row)
    return results


# ------------------------------------------------------------------ table


def table(files: list[Path]) -> str:
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows).drop_duplicates(["step", "fraction"], keep="last")
    fractions = sorted(frame["fraction"].unique())
    header = "| step | " + " | ".join(f"{f:.0%} ({eval_rows(f):,} eval rows)" for f in fractions)
    header += " | growth exponent | net of start-up |\n|---|" + "---|" * (len(fractions) + 2) + "\n"
    startup = frame.loc[frame["step"] == "startup", "cpu_s"].min() if (frame["step"] == "startup").any() else 0.0
    lines = []
    for step in STEPS:
        mine = frame[frame["step"] == step].set_index("fraction")
        if mine.empty:
            continue
        cells = []
        for f in fractions:
            if f in mine.index:
                r = mine.loc[f]
                cells.append(f"{r.wall_s:,.0f} s wall, {r.cpu_s:,.0f} s CPU, {r.peak_rss_mib / 1024:.2f} GiB peak RSS")
            else:
                cells.append("–")
        measured = [f for f in fractions if f in mine.index]
        exponents = [
            f"{math.log(mine.loc[b, 'cpu_s'] / mine.loc[a, 'cpu_s']) / math.log(b / a):.2f} ({a:.0%}→{b:.0%})"
            for a, b in itertools.pairwise(measured)
        ]
        net = [
            f"{math.log((mine.loc[b, 'cpu_s'] - startup) / (mine.loc[a, 'cpu_s'] - startup)) / math.log(b / a):.2f}"
            for a, b in itertools.pairwise(measured)
            if step != "startup" and min(mine.loc[a, "cpu_s"], mine.loc[b, "cpu_s"]) > startup
        ]
        lines.append(
            f"| {step} | " + " | ".join(cells) + f" | {', '.join(exponents) or '–'} | {', '.join(net) or '–'} |"
        )
    return header + "\n".join(lines) + "\n\n" + "\n".join(_night_budgets(frame, fractions))


def _night_budgets(frame: pd.DataFrame, fractions: list[float]) -> list[str]:
    """The issue's two budgets per fraction, in CPU seconds: a quiet night against a full evaluation,
    a night with a batch against the challenger's training plus one scoring pass (the evaluate
    step: one pass over every eval corpus); raw, and net of the child process's start-up."""
    cpu = frame.set_index(["step", "fraction"])["cpu_s"]
    startup = frame.loc[frame["step"] == "startup", "cpu_s"].min() if (frame["step"] == "startup").any() else 0.0
    out = []
    for f in fractions:
        have = {step for step, frac in cpu.index if frac == f}
        if {"quiet_night", "evaluate"} <= have:
            quiet, full = cpu["quiet_night", f], cpu["evaluate", f]
            out.append(
                f"- {f:.0%}: quiet night / full evaluation = {quiet / full:.1%} of CPU"
                f" ({(quiet - startup) / (full - startup):.1%} net of {startup:.1f} s start-up)"
            )
        if {"batch_night", "evaluate", "train_logreg"} <= have:
            night, budget = cpu["batch_night", f], cpu["train_logreg", f] + cpu["evaluate", f]
            out.append(
                f"- {f:.0%}: night with a batch / (challenger training + one scoring pass) = {night / budget:.2f}"
                f" ({(night - startup) / (budget - 2 * startup):.2f} net of start-up)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "run"):
        p = sub.add_parser(name)
        p.add_argument("--fraction", type=float, required=True)
        p.add_argument("--workdir", type=Path, required=True)
        if name == "run":
            p.add_argument("--steps", default=",".join(STEPS))
            p.add_argument("--models-from", type=Path, default=None)
    t = sub.add_parser("table")
    t.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "build":
        started = time.time()
        counts = build(args.workdir, args.fraction)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"rows": counts, "wall_s": time.time() - started, "peak_rss_mib": usage.ru_maxrss / 1024}))
    elif args.command == "run":
        steps = [s for s in args.steps.split(",") if s]
        unknown = set(steps) - set(STEPS)
        if unknown:
            parser.error(f"unknown steps {sorted(unknown)}; choose from {STEPS}")
        run(args.workdir, args.fraction, steps, args.models_from)
    else:
        print(table(args.files))


if __name__ == "__main__":
    main()
