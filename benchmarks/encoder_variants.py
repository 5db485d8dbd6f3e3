"""The int8 encoder against fp32 on the demo corpus, and `addgp score` time before/after truncation.

On the demo corpus (generated; ``--conditions``, ``--per-split``) the script embeds every
file with the fp32 and the int8 variant of one encoder at one layer, and reports:

* embed speed of each variant (audio-s/s, ``embed_manifest`` end to end) and their ratio;
* fidelity: cosine between each utterance's int8 and fp32 embedding (mean, 5th percentile, min);
* |Δ score|: a logistic regression trained on fp32 train rows, scored on the eval rows with
  fp32 and with int8 embeddings — exactly what `addgp score` refuses (exit 5), measured here
  to show what the refusal protects against — and the EER of each; plus the EER of the
  same detector trained on int8 embeddings (the supported way to score with int8);
* `addgp score` (``score_files``) wall time for ``--score-files`` eval files with the fp32
  model: as it runs now (the encoder stops at the model's layer) and with every layer run
  (the behaviour before truncation), alternating, each best of ``--repeat``; model loading
  included (every `addgp score` loads its encoder).

    python benchmarks/encoder_variants.py --encoder tiny-random --layer -1                       # full demo, seconds
    python benchmarks/encoder_variants.py --encoder xlsr-300m-random --layer 9 --conditions studio --per-split 40,20,40
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from addgp.metrics import compute_metrics
from storage.models import EmbeddingSetting
from tasks.demo_corpus import generate_demo_corpus
from tasks.embed import loading as loading_module
from tasks.embed import shards as shards_module
from tasks.embed.encoder import EncoderSpec, resolve_layer
from tasks.embed.loading import load_encoder
from tasks.embed.run import embed_manifest
from tasks.evaluate.score_files import encoder_spec_of_setting, score_files
from tasks.ingest.registry import ingest_dataset
from tasks.train.data import labelled_embeddings
from tasks.train.detectors import load_detector
from tasks.train.fit import TrainingSelection, fit_and_register


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="tiny-random")
    parser.add_argument("--layer", type=int, default=-1)
    parser.add_argument("--conditions", default="studio,phone,far")
    parser.add_argument("--per-split", default="60,30,60", help="utterances per dataset in train,dev,eval")
    parser.add_argument("--score-files", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    train_n, dev_n, eval_n = (int(x) for x in args.per_split.split(","))
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        roots = generate_demo_corpus(
            tmp / "demo",
            conditions=args.conditions.split(","),
            utterances_per_split={"train": train_n, "dev": dev_n, "eval": eval_n},
            progress=False,
        )
        manifest = pd.concat(
            [ingest_dataset("asvspoof2019_la", root, name).manifest for name, root in roots.items()], ignore_index=True
        )
        datasets = sorted(roots)
        layer = resolve_layer(EncoderSpec(args.encoder), args.layer)
        store, models = str(tmp / "store"), str(tmp / "models")

        speed, detectors, evals = {}, {}, {}
        for variant in ("fp32", "int8"):
            spec = EncoderSpec(args.encoder, layers=(layer,), variant=variant)
            shards_module.worker_encoder(spec)  # built before timing, as a long-lived worker has it
            summary = embed_manifest(manifest, spec, store, progress=False)
            speed[variant] = summary.audio_s / summary.wall_s
            result = fit_and_register(
                manifest,
                store,
                models,
                spec,
                TrainingSelection(tuple(datasets), ("train",), ("dev",), layer),
                f"lr-{variant}",
                "logreg",
                {},
            )
            detectors[variant] = load_detector(result.path)[0]
            evals[variant] = labelled_embeddings(
                manifest,
                store,
                encoder=spec.name,
                layer=layer,
                pooling="mean",
                crop_s=None,
                datasets=datasets,
                splits=["eval"],
            )
        fp32, int8 = evals["fp32"], evals["int8"]
        assert fp32.rows["utt_id"].tolist() == int8.rows["utt_id"].tolist()
        cos = cosines(fp32.X, int8.X)
        score_fp32 = detectors["fp32"].score_llr(fp32.X)
        score_cross = detectors["fp32"].score_llr(int8.X)
        score_int8 = detectors["int8"].score_llr(int8.X)
        delta = np.abs(score_cross - score_fp32)
        eer = {
            "fp32_model_fp32_embeddings": compute_metrics(score_fp32, fp32.y)["eer"],
            "fp32_model_int8_embeddings": compute_metrics(score_cross, fp32.y)["eer"],
            "int8_model_int8_embeddings": compute_metrics(score_int8, fp32.y)["eer"],
        }

        files = list(manifest[manifest["split"] == "eval"]["path"][: args.score_files])
        model = str(Path(models) / "lr-fp32")
        score_files(files[:2], model)  # warm-up: imports, allocator
        truncate = loading_module.truncate_encoder

        def every_layer(model, deepest):  # the behaviour before truncation
            return model.config.num_hidden_layers

        # Alternating, best of each: the load on a shared machine drifts between runs.
        truncated, full_depth = [], []
        for _ in range(args.repeat):
            truncated.append(_timed(lambda: score_files(files, model)))
            loading_module.truncate_encoder = every_layer
            try:
                full_depth.append(_timed(lambda: score_files(files, model)))
            finally:
                loading_module.truncate_encoder = truncate
        truncated, full_depth = min(truncated), min(full_depth)
        # The share of each `addgp score` call that is building the encoder (a random preset is
        # initialised from its seed, a checkpoint read from disk), the same with or without truncation.
        load_s = min(
            _timed(lambda: load_encoder(encoder_spec_of_setting(EmbeddingSetting.of_card(load_detector(model)[1]))))
            for _ in range(2)
        )
        score_audio_s = float(manifest.set_index("path").loc[files, "duration_s"].sum())

    result = {
        "encoder": args.encoder,
        "layer": layer,
        "corpus": {"datasets": datasets, "per_split": [train_n, dev_n, eval_n], "eval_rows": len(fp32.rows)},
        "embed_audio_s_per_s": {k: round(v, 2) for k, v in speed.items()},
        "int8_speedup": round(speed["int8"] / speed["fp32"], 2),
        "cosine_int8_fp32": {
            "mean": round(float(cos.mean()), 5),
            "p5": round(float(np.percentile(cos, 5)), 5),
            "min": round(float(cos.min()), 5),
        },
        "abs_delta_score": {
            "mean": round(float(delta.mean()), 4),
            "median": round(float(np.median(delta)), 4),
            "max": round(float(delta.max()), 4),
            "fp32_score_std": round(float(score_fp32.std()), 4),
        },
        "eer": {k: round(v, 4) for k, v in eer.items()},
        "score_files": {
            "files": len(files),
            "audio_s": round(score_audio_s, 1),
            "truncated_s": round(truncated, 2),
            "full_depth_s": round(full_depth, 2),
            "speedup": round(full_depth / truncated, 2),
            "encoder_load_s": round(load_s, 2),
        },
        "load_avg_1min": [load_before, round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
