"""A season of nights at the embedding level: how each nightly strategy learns, forgets and costs.

What it generates (all from ``--seed``; nothing here is tuned to favour a strategy). The world of
benchmarks/shift.py (speaker groups, attack families A–G, the 8 corpora and their channels) plus
**new attack families** that arrive over the season, one every ``--arrive-every`` nights from
night 1 on. They alternate between sharing artefacts with known families and not:

* ``H``: linear, half of its signature along A's (shares with the trained families);
* ``I``: linear, a direction of its own (shares nothing);
* ``J``: subspace scaling like C/F plus half of E's direction (shares with an untrained family);
* ``K``: quadratic, its own direction (shares nothing);
* ``L``: linear, half along H's own part (shares with an earlier *new* family);
* ``M``: subspace scaling, its own direction.

Each family is recorded on one shifted channel, the channel of a corpus other than ``train``
(family i gets corpus i+1 of the 8, cycling). Night t brings ``--rows`` labelled rows: half bona
fide speech and half spoofs of the families arrived so far (half of them the newest family,
the rest spread over the earlier new ones), each through its family's channel; bona fide rows
through the channel of the newest family.

What it runs, side by side on the same nights (every GP is the default variational DKL GP with
the same reduced budget ``--gp-steps`` / ``--inducing``, the same for all GP strategies):

* ``chained``: today's behaviour before issue 20: condition on every row learnt so far
  (``adapt(update="condition", max_rows=None)``);
* ``stream`` (the new default update): ``adapt()``, the streaming update of q(u);
* ``retrain``: a fresh GP on the training set plus every night's rows, every night;
* ``weekly``: ``stream`` on most nights, a fresh GP on all rows every ``--retrain-every`` nights
  since the last fit (the nightly loop's ``nightly.consolidate_every_nights`` and its very rule,
  tasks/nightly/consolidation.py: nights 7, 14, … with the default 7);
* ``lr``: logistic regression refitted on all rows every night (cheap, so always a retrain).

What it reports per strategy and night (JSON lines to ``--out``; Markdown on stdout): the EER of
the arrived new families and of those not yet arrived (each family's held-out spoofs against the
bona fide eval rows of its channel's corpus, averaged over families; each arrived family's own
in the JSON rows, ``new_eer_by_family``, and in a last table for nights 10 and the last); the 8-corpus average EER
and its change from night 0 (forgetting); update (or fit) time; time to score the 8 eval sets;
the saved state's size (``to_state`` arrays, bytes); and for GPs a drift score computed before
any label: the median predictive variance of tonight's rows over the median of the training
rows' (``drift_var``).

``--flat``: the flat-cost check instead ("30 nights × 500 rows"): the default strategy only,
``--nights`` nights of ``--rows`` rows, reporting per night the time to score ``--score-rows`` rows
and the saved state size, relative to night 1.

Default run: ``--nights 20 --n-train 1000 --dim 32``, about 15 minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from addgp.metrics import compute_metrics
from benchmarks.shift import CORPORA, World
from tasks.nightly.consolidation import FIT, RETRAIN, UPDATE, tonight_step
from tasks.train.dkl_gp import DKLGPDetector
from tasks.train.logreg import LogRegDetector

NEW_FAMILIES = "HIJKLM"
STRATEGIES = ("chained", "stream", "retrain", "weekly", "lr")


class SeasonWorld(World):
    """shift.py's world plus the new families of the module docstring, each on its own shifted channel."""

    def __init__(self, dim: int, seed: int):
        super().__init__(dim, seed)
        rng = np.random.default_rng(seed + 100)

        def unit():
            return (v := rng.normal(size=dim)) / np.linalg.norm(v)

        own = {f: unit() for f in NEW_FAMILIES}
        shared = {"H": self.direction["A"], "J": self.direction["E"], "L": own["H"]}
        kinds = {"H": "linear", "I": "linear", "J": "subspace", "K": "quadratic", "L": "linear", "M": "subspace"}
        for f in NEW_FAMILIES:
            d = own[f] + shared[f] if f in shared else own[f]
            self.direction[f] = d / np.linalg.norm(d)
            self.kind[f] = kinds[f]
            self.amplitude[f] = rng.uniform(2.5, 3.5)
            self.subspace[f] = np.linalg.qr(rng.normal(size=(dim, 8)))[0]
            self.quad[f] = unit()
        shifted = [c for c in CORPORA if c != "train"]
        self.family_channel = {f: shifted[i % len(shifted)] for i, f in enumerate(NEW_FAMILIES)}

    def through(self, corpus: str, X: np.ndarray) -> np.ndarray:
        gain, offset = self.channels[corpus]
        return (X * gain + offset).astype(np.float32)

    def night(self, arrived: str, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """A night's labelled rows: n/2 bona fide (newest family's channel), n/2 spoofs (half the newest family)."""
        newest = arrived[-1]
        n_spoof = n // 2
        n_newest = n_spoof if len(arrived) == 1 else n_spoof // 2
        parts = [self.through(self.family_channel[newest], self.speech(n - n_spoof, rng))]
        parts.append(self.through(self.family_channel[newest], self.attack(newest, n_newest, rng)))
        for f, rows in zip(arrived[:-1], np.array_split(np.arange(n_spoof - n_newest), max(len(arrived) - 1, 1))):
            parts.append(self.through(self.family_channel[f], self.attack(f, len(rows), rng)))
        return np.concatenate(parts), np.array(["bonafide"] * (n - n_spoof) + ["spoof"] * n_spoof)


def eer(scores, labels) -> float:
    return float(compute_metrics(scores, labels)["eer"])


def state_bytes(detector) -> int:
    arrays, _ = detector.to_state()
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


class Strategy:
    """One nightly strategy: a detector and how it learns a night's rows."""

    def __init__(self, name: str, args, X, y, Xd, yd):
        self.name, self.args = name, args
        self.X, self.y, self.Xd, self.yd = X, y, Xd, yd  # everything seen so far (for the retraining ones)
        self.detector = self.fit()
        self.chain_steps = [FIT]  # the steps that made each model in turn (no gate here: all kept)

    def make(self):
        if self.name == "lr":
            return LogRegDetector()
        return DKLGPDetector(max_steps=self.args.gp_steps, n_inducing=self.args.inducing, progress=False)

    def fit(self):
        return self.make().fit(self.X, self.y, X_dev=self.Xd, y_dev=self.yd)

    def learn(self, night: int, X_new, y_new) -> str:
        """Learn tonight's rows; returns which step ran."""
        self.X, self.y = np.concatenate([self.X, X_new]), np.concatenate([self.y, y_new])
        if self.name in ("retrain", "lr"):
            step = RETRAIN
        elif self.name == "weekly":  # the nightly loop's own rule (nightly.consolidate_every_nights)
            step = tonight_step(self.chain_steps, self.args.retrain_every)
        else:
            step = UPDATE
        if step != UPDATE:
            self.detector = self.fit()
        elif self.name == "chained":
            self.detector = self.detector.adapt(
                X_new, y_new, update="condition", max_rows=None, shot_weight=self.args.shot_weight
            )
        else:
            self.detector = self.detector.adapt(X_new, y_new, shot_weight=self.args.shot_weight)
        self.chain_steps.append(step)
        return step


def run(args) -> list[dict]:
    world = SeasonWorld(args.dim, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    X, y = world.corpus("train", args.n_train, rng)
    Xd, yd = world.corpus("train", args.n_dev, rng)
    evals = {name: world.corpus(name, args.n_eval, rng) for name in CORPORA}
    families = {  # each new family's held-out spoofs against the bona fide eval rows of its channel
        f: (
            np.concatenate(
                [
                    evals[world.family_channel[f]][0][evals[world.family_channel[f]][1] == "bonafide"],
                    world.through(world.family_channel[f], world.attack(f, args.n_eval // 2, rng)),
                ]
            ),
            np.r_[
                np.full((evals[world.family_channel[f]][1] == "bonafide").sum(), "bonafide"),
                np.full(args.n_eval // 2, "spoof"),
            ],
        )
        for f in NEW_FAMILIES
    }
    nights = []
    for t in range(1, args.nights + 1):
        arrived = NEW_FAMILIES[: min(len(NEW_FAMILIES), 1 + (t - 1) // args.arrive_every)]
        nights.append((arrived, *world.night(arrived, args.rows, rng)))
    X_train_sample = X[rng.choice(len(X), min(500, len(X)), replace=False)]

    rows = []
    for name in args.strategies:
        start = time.perf_counter()
        strategy = Strategy(name, args, X, y, Xd, yd)
        fit_s = time.perf_counter() - start
        base = None
        for t in range(args.nights + 1):
            step, update_s, arrived = "fit", fit_s, ""
            drift = None
            if t > 0:
                arrived, X_new, y_new = nights[t - 1]
                if hasattr(strategy.detector, "predict_variance"):  # before any label is used
                    v_new = np.median(strategy.detector.predict_variance(X_new))
                    drift = float(v_new / np.median(strategy.detector.predict_variance(X_train_sample)))
                start = time.perf_counter()
                step = strategy.learn(t, X_new, y_new)
                update_s = time.perf_counter() - start
            start = time.perf_counter()
            scores = {c: strategy.detector.score_llr(Xe) for c, (Xe, _) in evals.items()}
            score_s = time.perf_counter() - start
            mean_eer = float(np.mean([eer(scores[c], ye) for c, (_, ye) in evals.items()]))
            base = mean_eer if base is None else base
            fam = {f: eer(strategy.detector.score_llr(Xf), yf) for f, (Xf, yf) in families.items()}
            seen = [fam[f] for f in NEW_FAMILIES if f in arrived]
            unseen = [fam[f] for f in NEW_FAMILIES if f not in arrived]
            row = {
                "strategy": name,
                "night": t,
                "step": step,
                "arrived": arrived,
                "new_eer_arrived": round(float(np.mean(seen)), 4) if seen else None,
                "new_eer_not_yet": round(float(np.mean(unseen)), 4) if unseen else None,
                "new_eer_by_family": {f: round(fam[f], 4) for f in arrived},
                "mean_eer": round(mean_eer, 4),
                "forgetting": round(mean_eer - base, 4),
                "update_s": round(update_s, 2),
                "score_s": round(score_s, 3),
                "state_bytes": state_bytes(strategy.detector),
                "drift_var": None if drift is None else round(drift, 3),
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def flat(args) -> list[dict]:
    """The default update night after night: scoring time and saved state against night 1."""
    world = SeasonWorld(args.dim, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    X, y = world.corpus("train", args.n_train, rng)
    X_score, _ = world.corpus("in_the_wild", args.score_rows, rng)
    detector = DKLGPDetector(max_steps=args.gp_steps, n_inducing=args.inducing, progress=False).fit(X, y)
    rows: list[dict] = []
    for t in range(1, args.nights + 1):
        arrived = NEW_FAMILIES[: min(len(NEW_FAMILIES), 1 + (t - 1) // args.arrive_every)]
        X_new, y_new = world.night(arrived, args.rows, rng)
        start = time.perf_counter()
        detector = detector.adapt(X_new, y_new, shot_weight=args.shot_weight)
        update_s = time.perf_counter() - start
        start = time.perf_counter()
        detector.score_llr(X_score)
        score_s = time.perf_counter() - start
        row = {"night": t, "update_s": round(update_s, 2), "score_s": round(score_s, 3)}
        row["state_bytes"] = state_bytes(detector)
        if rows:
            row["score_vs_night1"] = round(score_s / rows[0]["score_s"], 2)
            row["state_vs_night1"] = round(row["state_bytes"] / rows[0]["state_bytes"], 3)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [
        f"nights={args.nights}, rows/night={args.rows}, n_train={args.n_train}, dim={args.dim}, seed={args.seed}, "
        f"eval rows per corpus={args.n_eval}, GP steps={args.gp_steps}, inducing={args.inducing}, "
        f"new family every {args.arrive_every} nights, weekly consolidates every {args.retrain_every} nights since "
        "its last fit, "
        f"shot weight {args.shot_weight:g}",
        "",
        "| strategy | night | step | arrived | new EER arrived | new EER not yet | 8-corpus EER | forgetting "
        "| update s | score s | state bytes | drift (var ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in rows:
        if r["night"] % args.print_every and r["night"] not in (0, 1, args.nights):
            continue
        lines.append(
            f"| {r['strategy']} | {r['night']} | {r['step']} | {r['arrived'] or '—'} | "
            f"{cell(r['new_eer_arrived'], '.3f')} | {cell(r['new_eer_not_yet'], '.3f')} | {r['mean_eer']:.3f} | "
            f"{r['forgetting']:+.3f} | {r['update_s']:.2f} | {r['score_s']:.3f} | {r['state_bytes']:,} | "
            f"{cell(r['drift_var'], '.2f')} |"
        )
    lines += [
        "",
        "| strategy | total update s | forgetting after 10 nights | new EER arrived after 10 nights "
        "| last night: new EER arrived | max forgetting | full fits on nights |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for name in args.strategies:
        own = [r for r in rows if r["strategy"] == name]
        at10 = next((r for r in own if r["night"] == min(10, args.nights)), own[-1])
        fits = [str(r["night"]) for r in own if r["night"] > 0 and r["step"] != "update"]
        fit_nights = "every night" if len(fits) == args.nights else ", ".join(fits) or "none"
        lines.append(
            f"| {name} | {sum(r['update_s'] for r in own if r['night'] > 0):.1f} | {at10['forgetting']:+.3f} | "
            f"{cell(at10['new_eer_arrived'], '.3f')} | {cell(own[-1]['new_eer_arrived'], '.3f')} | "
            f"{max(r['forgetting'] for r in own):+.3f} | {fit_nights} |"
        )
    families = [f for f in NEW_FAMILIES if any(f in r["arrived"] for r in rows)]
    lines += ["", "| strategy | night | " + " | ".join(f"EER {f}" for f in families) + " |"]
    lines.append("|---|---|" + "---|" * len(families))
    for name in args.strategies:
        own = [r for r in rows if r["strategy"] == name]
        for r in {r["night"]: r for r in own if r["night"] in (min(10, args.nights), args.nights)}.values():
            by_family = r["new_eer_by_family"]
            cells = " | ".join(cell(by_family.get(f), ".3f") for f in families)
            lines.append(f"| {name} | {r['night']} | {cells} |")
    return "\n".join(lines)


def flat_markdown(rows: list[dict], args) -> str:
    lines = [
        f"default update, nights={args.nights}, rows/night={args.rows}, n_train={args.n_train}, dim={args.dim}, "
        f"inducing={args.inducing}, scored rows={args.score_rows}",
        "",
        "| night | update s | score s | × night 1 | state bytes | × night 1 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['night']} | {r['update_s']:.2f} | {r['score_s']:.3f} | {r.get('score_vs_night1', 1.0):.2f} | "
            f"{r['state_bytes']:,} | {r.get('state_vs_night1', 1.0):.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100, help="labelled rows per night (half bona fide)")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-dev", type=int, default=300)
    parser.add_argument("--n-eval", type=int, default=400, help="eval rows per corpus (balanced)")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arrive-every", type=int, default=3, help="nights between new families")
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=7,
        help="the weekly strategy's consolidation period (nightly.consolidate_every_nights)",
    )
    parser.add_argument("--gp-steps", type=int, default=150, help="max_steps of every GP fit (all strategies alike)")
    parser.add_argument("--inducing", type=int, default=128, help="n_inducing of every GP (all strategies alike)")
    parser.add_argument(
        "--shot-weight",
        type=float,
        default=5.0,
        help="adapt's shot_weight for every updating strategy (default: adapt's)",
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--print-every", type=int, default=5, help="nights between printed table rows")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--flat", action="store_true", help="run the flat-cost check instead (default update only)")
    parser.add_argument("--score-rows", type=int, default=20000, help="--flat: rows scored each night")
    parser.add_argument("--out", default=None, help="append the JSON rows to this file")
    args = parser.parse_args(argv)
    args.strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(args.strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {list(STRATEGIES)}")
    torch.set_num_threads(args.threads)
    rows = flat(args) if args.flat else run(args)
    if args.out:
        with open(args.out, "a") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    print(flat_markdown(rows, args) if args.flat else markdown(rows, args))


if __name__ == "__main__":
    main()
