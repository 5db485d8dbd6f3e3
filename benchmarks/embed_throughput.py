"""Embedding throughput: the bare encoder forward against addgp's whole embed stage.

One run reports, for one encoder setting (encoder, variant, layers, batch size, attention):

* ``bare``: the encoder's forward alone, as loaded by addgp (run up to the deepest requested
  layer), on the same length-bucketed, already-decoded batches — the ceiling;
* ``pipeline``: ``embed_manifest`` end to end — shard planning, decoding on threads, batching,
  the forward, masked pooling, Parquet shard writes;
* ``ratio`` = pipeline / bare throughput (1.0: the pipeline costs nothing beyond the model).

Throughputs are audio seconds per wall second; each is measured ``--repeat`` times,
alternating, after a warm-up, and the median (min–max) is shown. The 1-minute load average
is recorded before and after, since the machine may be shared.

    python benchmarks/embed_throughput.py --encoder tiny-random --files 64
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --layers 9 --files 8 --repeat 3
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --layers 9 --files 8 --full-depth   # "before": every layer runs
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --layers 9 --files 8 --variant int8
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --layers 9 --files 8 --attention eager
    # on a GPU (a dask-cuda worker per GPU, bf16 autocast):
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --layers 9 --files 2000 --device cuda --dask
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tasks.embed import encoder as encoder_module
from tasks.embed import loading as loading_module
from tasks.embed import shards as shards_module
from tasks.embed.audio import load_audio, normalise
from tasks.embed.embedder import Embedder, length_buckets
from tasks.embed.encoder import EncoderSpec, resolve_layers
from tasks.embed.run import embed_manifest
from tasks.ingest.common import finalize


def make_files(folder: Path, count: int, seed: int = 0) -> list[dict]:
    """Speech-length clips (2–8 s, like ASVspoof utterances) as 16 kHz FLAC."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        seconds = rng.uniform(2.0, 8.0)
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.1 * np.sin(2 * np.pi * rng.uniform(90, 250) * t) + 0.02 * rng.standard_normal(len(t))
        path = folder / f"b{i:05d}.flac"
        sf.write(str(path), wave.astype(np.float32), 16000)
        rows.append(
            {"utt_id": path.stem, "split": "eval", "label": "spoof", "attack": None, "speaker": None, "path": str(path)}
        )
    return rows


def bare_forward_seconds(embedder: Embedder, waves: list[np.ndarray], batch_seconds: float) -> tuple[float, float]:
    """(wall, process CPU) seconds of the encoder forward alone over ``waves`` (decoded, normalised, padded beforehand)."""
    model = embedder.encoder.model
    batches = []
    for batch in length_buckets([len(w) for w in waves], int(batch_seconds * 16000)):
        lengths = torch.tensor([len(waves[i]) for i in batch])
        values = torch.zeros(len(batch), int(lengths.max()))
        for row, index in enumerate(batch):
            values[row, : lengths[row]] = torch.from_numpy(normalise(waves[index]))
        mask = (torch.arange(values.shape[1])[None, :] < lengths[:, None]).long()
        batches.append((values.to(embedder.device), mask.to(embedder.device)))
    synchronise = torch.cuda.synchronize if embedder.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        synchronise()
        started, cpu_started = time.perf_counter(), time.process_time()
        for values, mask in batches:
            with embedder.autocast:
                model(values, attention_mask=mask, output_hidden_states=True)
        synchronise()
    return time.perf_counter() - started, time.process_time() - cpu_started


def run_without_truncation() -> None:
    """Emulate the embed stage before truncation existed: every transformer layer runs."""
    loading_module.truncate_encoder = lambda model, deepest: model.config.num_hidden_layers


def set_attention(implementation: str) -> None:
    """Random presets are built with ``encoder.ATTENTION``; switch it for an eager/SDPA comparison."""
    loading_module.ATTENTION = implementation


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="tiny-random")
    parser.add_argument(
        "--layers", default="-1", help="comma-separated hidden-state indices, as `addgp embed --layers`"
    )
    parser.add_argument("--variant", default="fp32", choices=encoder_module.VARIANTS)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--batch-seconds", type=float, default=None, help="default: the device's (encoder.DEFAULT_BATCH_SECONDS)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--attention", default=loading_module.ATTENTION, choices=["sdpa", "eager"], help="random presets only"
    )
    parser.add_argument("--full-depth", action="store_true", help="run every layer (the behaviour before truncation)")
    parser.add_argument(
        "--dask",
        action="store_true",
        help="run the pipeline on the cluster `addgp run` starts (flows/cluster.py): one dask-cuda worker per GPU where there are GPUs",
    )
    args = parser.parse_args()
    if args.dask and (args.full_depth or args.attention != loading_module.ATTENTION):
        parser.error("--full-depth and --attention change this process only; Dask workers would not see them")

    if args.full_depth:
        run_without_truncation()
    set_attention(args.attention)
    spec = resolve_layers(
        EncoderSpec(
            args.encoder, layers=tuple(int(x) for x in args.layers.split(",")), variant=args.variant, device=args.device
        )
    )
    batch_seconds = spec.batch_seconds(args.batch_seconds)
    load_before = load_average()
    with contextlib.ExitStack() as stack:
        client = None
        if args.dask:
            from addgp.config import ClusterConfig
            from flows.cluster import dask_cluster
            from tasks.embed.task import dask_client

            client = stack.enter_context(dask_client(stack.enter_context(dask_cluster(ClusterConfig()))))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        folder = Path(tmp)
        manifest = finalize("bench", make_files(folder, args.files), progress=False).manifest
        audio_s = float(manifest["duration_s"].sum())
        waves = [load_audio(p) for p in manifest["path"]]

        # Warm-up: the encoder is built once per process (as a long-lived worker keeps it) and run once.
        embedder = shards_module.worker_encoder(spec)
        embed_manifest(
            manifest.head(2), spec, str(folder / "warm"), batch_seconds=batch_seconds, client=client, progress=False
        )
        bare_forward_seconds(embedder, waves[:2], batch_seconds)

        bare, pipeline, model_share, bare_cpu, pipeline_cpu = [], [], [], [], []
        for repeat in range(args.repeat):
            wall_s, cpu_s = bare_forward_seconds(embedder, waves, batch_seconds)
            bare.append(audio_s / wall_s)
            bare_cpu.append(cpu_s / audio_s)
            cpu_started = time.process_time()
            summary = embed_manifest(
                manifest,
                spec,
                str(folder / f"store{repeat}"),
                batch_seconds=batch_seconds,
                client=client,
                progress=False,
            )
            pipeline_cpu.append((time.process_time() - cpu_started) / audio_s)
            pipeline.append(audio_s / summary.wall_s)
            model_share.append(summary.model_s / summary.wall_s)

    def spread(values: list[float]) -> dict:
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    loaded = embedder.encoder
    result = {
        "encoder": spec.name,
        "layers": list(spec.layers),
        "transformer_layers_run": loaded.kept_layers,
        "of_layers": loaded.num_layers,
        "attention": args.attention,
        "device": spec.resolved_device(),
        "dask": args.dask,
        "batch_seconds": batch_seconds,
        "files": args.files,
        "audio_s": round(audio_s, 1),
        "repeats": args.repeat,
        "bare_audio_s_per_s": spread(bare),
        "pipeline_audio_s_per_s": spread(pipeline),
        "pipeline_over_bare": round(statistics.median(pipeline) / statistics.median(bare), 3),
        "pipeline_model_share": round(statistics.median(model_share), 3),
        # CPU seconds this process spent per audio second: steadier than wall time on a shared
        # machine (it does not count time spent waiting for a core); meaningless with --dask.
        "bare_cpu_s_per_audio_s": spread(bare_cpu),
        "pipeline_cpu_s_per_audio_s": spread(pipeline_cpu),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name()}" if spec.resolved_device().startswith("cuda") else ""),
        "load_avg_1min": [load_before, load_average()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
