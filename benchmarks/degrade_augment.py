"""Quality-agnostic training on the demo corpus: does augmentation narrow the clean-vs-degraded gap?

For each corpus seed: generate the demo corpus (``demo_studio``), ingest it, degrade the eval
split under every evaluation condition and (for the augmented runs) a share of the training
split under the augmentation conditions, embed everything with ``tiny-random``, train each
detector once on clean audio only and once with ``train.augment``, and score the eval split
clean and degraded. The gap of a condition is its EER minus the clean EER of the same model.
Conditions listed under ``--augment`` are "seen" in training; the others test whether the
robustness carries over to degradations the model never saw.

This is the pipeline's own code path (degrade_manifests, embed_manifest, fit_and_register,
score_with_conditions), run in-process. With a random-weight encoder the numbers describe the
pipeline, not a deployable detector.

    python benchmarks/degrade_augment.py --seeds 0 1 --detectors logreg
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from addgp.config import PipelineConfig
from addgp.metrics import compute_metrics
from storage.manifests import read_manifests, write_manifest
from storage.workspace import Workspace
from tasks.degrade.plan import augmented_train_datasets
from tasks.degrade.task import degrade_manifests
from tasks.demo_corpus import generate_demo_corpus
from tasks.embed.encoder import EncoderSpec, resolve_layers
from tasks.embed.run import embed_manifest
from tasks.evaluate.degraded_scores import score_with_conditions
from tasks.ingest.registry import ingest_dataset
from tasks.train.detectors import load_detector
from tasks.train.fit import TrainingSelection, fit_and_register

AUGMENT = ["mp3_32k", "noise_pink_snr10", "reverb_rt06"]
UNSEEN = ["telephony", "opus_16k", "babble_snr5"]
DETECTOR_PARAMS = {"logreg": {}, "dkl_gp": {"mode": "exact", "hidden_dims": [32], "progress": False}}


def run_seed(
    root: Path, seed: int, detectors: list[str], augment: list[str], unseen: list[str], fraction: float
) -> pd.DataFrame:
    corpus = generate_demo_corpus(root / "corpus", seed=seed, conditions=["studio"], progress=False)
    workspace = Workspace.at(root / "work")
    clean_path = write_manifest(
        ingest_dataset("asvspoof2019_la", corpus["demo_studio"], dataset="demo_studio").manifest,
        workspace.manifest("demo_studio"),
    )
    conditions = augment + unseen
    config = PipelineConfig.model_validate(
        {
            "name": "qad",
            "workdir": str(root / "work"),
            "datasets": [{"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(corpus["demo_studio"])}],
            "encoder": {"id": "tiny-random"},
            "train": {
                "datasets": ["demo_studio"],
                "detectors": [{"name": d, "kind": d} for d in detectors],
                "augment": {"conditions": augment, "fraction": fraction},
            },
            "evaluate": {"conditions": conditions},
        }
    )
    degraded = degrade_manifests([clean_path], config, workspace, progress=False)
    paths = [clean_path, *degraded.manifests]
    manifest = read_manifests(paths)
    spec = resolve_layers(EncoderSpec("tiny-random", layers=(-1,), pooling="mean"))
    embed_manifest(manifest, spec, workspace.embeddings, batch_seconds=16, progress=False)
    rows = []
    for setting, datasets in (("clean", ["demo_studio"]), ("augmented", augmented_train_datasets(config))):
        selection = TrainingSelection(
            datasets=tuple(datasets), splits=("train",), dev_splits=("dev",), layer=spec.layers[0]
        )
        for kind in detectors:
            name = f"{kind}-{setting}"
            model = fit_and_register(
                manifest,
                workspace.embeddings,
                workspace.models,
                spec,
                selection,
                name,
                kind,
                dict(DETECTOR_PARAMS[kind]),
            )
            scores = score_with_conditions(
                manifest,
                workspace.embeddings,
                {name: load_detector(model.path)},
                ["demo_studio"],
                ["eval"],
                conditions,
            )
            for condition, cell in scores.groupby("condition"):
                metrics = compute_metrics(cell["score"].to_numpy(), cell["label"].to_numpy())
                rows.append(
                    {
                        "seed": seed,
                        "detector": kind,
                        "training": setting,
                        "condition": condition,
                        "seen": condition in augment,
                        "eer": metrics["eer"],
                        "cllr": metrics["cllr"],
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--detectors", nargs="+", default=["logreg"], choices=sorted(DETECTOR_PARAMS))
    parser.add_argument("--fraction", type=float, default=1.0, help="train.augment.fraction")
    args = parser.parse_args()
    frames = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            frames.append(run_seed(Path(tmp), seed, args.detectors, AUGMENT, UNSEEN, args.fraction))
    table = pd.concat(frames, ignore_index=True)
    clean = table[table["condition"] == "clean"].set_index(["seed", "detector", "training"])["eer"]
    table["gap"] = table["eer"] - table.set_index(["seed", "detector", "training"]).index.map(clean)
    mean = table.groupby(["detector", "condition", "seen", "training"])[["eer", "gap"]].mean().unstack("training")
    print(f"# mean over seeds {args.seeds}; augment {AUGMENT} (seen), fraction {args.fraction}; unseen {UNSEEN}")
    print("| detector | condition | seen | EER clean-trained | EER augmented | gap clean-trained | gap augmented |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (detector, condition, seen), row in mean.iterrows():
        print(
            f"| {detector} | `{condition}` | {'yes' if seen else ('—' if condition == 'clean' else 'no')} | "
            f"{row[('eer', 'clean')]:.3f} | {row[('eer', 'augmented')]:.3f} | {row[('gap', 'clean')]:+.3f} | {row[('gap', 'augmented')]:+.3f} |"
        )
    degraded = table[table["condition"] != "clean"]
    for subset, rows in (("seen", degraded[degraded["seen"]]), ("unseen", degraded[~degraded["seen"]])):
        gaps = rows.groupby(["detector", "training"])["gap"].mean().unstack("training")
        for detector, gap in gaps.iterrows():
            print(
                f"mean gap over {subset} conditions, {detector}: clean-trained {gap['clean']:+.3f}, augmented {gap['augmented']:+.3f}"
            )
    print(json.dumps(table.to_dict("records"), default=float))


if __name__ == "__main__":
    main()
