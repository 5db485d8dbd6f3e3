"""The last-block detector on the demo corpus: frame-cache size and time, fit time, EER next to ``dkl_gp``.

Generates the demo corpus (three conditions), ingests and embeds it with a random-weight
preset, fills the frame cache (the input of the last transformer layer, first
``--crop`` seconds of every file, float16), then fits ``dkl_gp`` (variational, residual g on
pooled embeddings) and ``dkl_gp_lastblock`` (g = the encoder's last layer on the frames) with
the same GP head and budget on ``demo_studio`` train (early stopping on its dev split), and
scores the eval split of every condition. The pipeline's own code path
(embed_manifest, cache_frames, fit_and_register, score_eval_sets), run in-process.

Cache size: bytes on disk per second of audio are measured for the preset and scaled to the
XLS-R sizes by hidden size (a frame is ``hidden`` float16 values; the per-row metadata is
negligible), at the encoder's measured frames per second of audio.

With a random-weight encoder the EERs describe the pipeline, not a deepfake detector.

    python benchmarks/lastblock.py --seed 0 --steps 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from addgp.metrics import compute_metrics
from storage.frames import frame_cache_bytes, read_frames
from storage.manifests import read_manifests, write_manifest
from storage.workspace import Workspace
from tasks.demo_corpus import generate_demo_corpus
from tasks.embed.encoder import RANDOM_PRESETS, EncoderSpec, resolve_layers
from tasks.embed.frames import cache_frames, frame_spec
from tasks.embed.run import embed_manifest
from tasks.evaluate.scoring import score_eval_sets
from tasks.ingest.registry import ingest_dataset
from tasks.train.detectors import load_detector
from tasks.train.fit import TrainingSelection, fit_and_register

CONDITIONS = ["studio", "phone", "far"]
XLSR = {"300m": "xlsr-300m-random", "1b": "xlsr-1b-random", "2b": "xlsr-2b-random"}


def run(root: Path, seed: int, preset: str, crop: float, steps: int) -> dict:
    corpus = generate_demo_corpus(root / "corpus", seed=seed, conditions=CONDITIONS, progress=False)
    workspace = Workspace.at(root / "work")
    paths = [
        write_manifest(ingest_dataset("asvspoof2019_la", corpus[name], dataset=name).manifest, workspace.manifest(name))
        for name in corpus
    ]
    manifest = read_manifests(paths)
    spec = resolve_layers(EncoderSpec(preset, layers=(-1,), pooling="mean"))
    layer = spec.layers[0]
    started = time.perf_counter()
    embed_manifest(manifest, spec, workspace.embeddings, progress=False)
    embed_s = time.perf_counter() - started

    started = time.perf_counter()
    summary = cache_frames(manifest, spec, workspace.embeddings, layer, crop, progress=False)
    cache_s = time.perf_counter() - started
    fspec = frame_spec(spec, layer, crop)
    meta, _ = read_frames(workspace.embeddings, fspec.name, layer - 1, crop, manifest)
    size = frame_cache_bytes(workspace.embeddings, fspec.name, crop)
    hidden = RANDOM_PRESETS[preset]["hidden_size"]
    frames = int(meta["n_frames"].sum())
    bytes_per_value = size / (frames * hidden)
    frames_per_s = frames / summary.audio_s
    per_hour = {
        size_name: bytes_per_value * frames_per_s * RANDOM_PRESETS[p]["hidden_size"] * 3600
        for size_name, p in XLSR.items()
    }

    selection = TrainingSelection(datasets=("demo_studio",), splits=("train",), dev_splits=("dev",), layer=layer)
    head = {"n_inducing": 64, "max_steps": steps, "batch_size": 32, "lr": 0.05, "progress": False}
    kinds = {
        "dkl_gp": {**head, "mode": "variational", "hidden_dims": [32], "device": "cpu"},
        "dkl_gp_lastblock": {**head, "crop_seconds": crop, "feature_lr": 1e-4, "device": "cpu"},
    }
    rows = []
    for kind, params in kinds.items():
        started = time.perf_counter()
        model = fit_and_register(
            manifest, workspace.embeddings, workspace.models, spec, selection, kind, kind, dict(params)
        )
        fit_s = time.perf_counter() - started
        detector, card = load_detector(model.path)
        started = time.perf_counter()
        scores = score_eval_sets(manifest, workspace.embeddings, {kind: (detector, card)}, list(corpus), ["eval"])
        score_s = time.perf_counter() - started
        for dataset, cell in scores.groupby("dataset"):
            metrics = compute_metrics(cell["score"].to_numpy(), cell["label"].to_numpy())
            rows.append(
                {
                    "detector": kind,
                    "dataset": dataset,
                    "eer": metrics["eer"],
                    "cllr": metrics["cllr"],
                    "fit_s": fit_s,
                    "score_s": score_s,
                    "steps_run": detector.steps_run_,
                }
            )
    return {
        "preset": preset,
        "utterances": int(len(manifest)),
        "audio_s_cropped": summary.audio_s,
        "embed_s": embed_s,
        "frame_cache_s": cache_s,
        "frame_cache_bytes": size,
        "frames_per_audio_s": frames_per_s,
        "bytes_per_value": bytes_per_value,
        "gb_per_audio_hour": {k: v / 1e9 for k, v in per_hour.items()},
        "results": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="tiny-random", choices=sorted(RANDOM_PRESETS))
    parser.add_argument("--crop", type=float, default=4.0, help="frame crop in seconds")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps of both GPs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = run(Path(tmp), args.seed, args.preset, args.crop, args.steps)
    print(
        f"# {out['preset']}, {out['utterances']} utterances, {out['audio_s_cropped']:.0f} s of cropped audio: "
        f"embed {out['embed_s']:.1f} s, frame cache {out['frame_cache_s']:.1f} s, {out['frame_cache_bytes']:,} bytes, "
        f"{out['frames_per_audio_s']:.2f} frames per audio second, {out['bytes_per_value']:.3f} bytes per value"
    )
    print("| XLS-R | GB per hour of audio |")
    print("|---|---:|")
    for size, gb in out["gb_per_audio_hour"].items():
        print(f"| {size} | {gb:.2f} |")
    table = pd.DataFrame(out["results"])
    print("| detector | fit s | steps | score s (3 eval sets) | " + " | ".join(f"EER {c}" for c in CONDITIONS) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(CONDITIONS))
    for kind, rows in table.groupby("detector", sort=False):
        eers = rows.set_index("dataset")["eer"]
        cells = " | ".join(f"{eers[f'demo_{c}']:.3f}" for c in CONDITIONS)
        print(
            f"| {kind} | {rows['fit_s'].iloc[0]:.1f} | {rows['steps_run'].iloc[0]} | {rows['score_s'].iloc[0]:.1f} | {cells} |"
        )
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
