"""Embedding throughput: addgp's embed stage against a naive per-file fp32 loop.

Reports audio seconds embedded per wall second, and for addgp the share of wall time
spent in the model forward. Both paths embed the same generated files with the same
encoder; both are warmed up (encoder built, first forward run) before timing.

    python benchmarks/embed_throughput.py --encoder tiny-random --files 64
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --files 16
    python benchmarks/embed_throughput.py --encoder xlsr-300m-random --files 2000 --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tasks.embed.audio import load_audio, normalise
from tasks.embed.encoder import EncoderSpec, load_encoder
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
        rows.append({"utt_id": path.stem, "split": "eval", "label": "spoof", "attack": None, "speaker": None, "path": str(path)})
    return rows


def naive_loop(paths: list[str], spec: EncoderSpec) -> float:
    """What a one-off script does: one file at a time, fp32, no overlap of decode and model."""
    encoder = load_encoder(spec)
    model = encoder.model
    with torch.inference_mode():
        model(torch.zeros(1, 16000, device=encoder.device))  # warm-up
        started = time.perf_counter()
        for path in paths:
            wave = torch.from_numpy(normalise(load_audio(path)))[None].to(encoder.device)
            hidden = model(wave, output_hidden_states=True).hidden_states[-1]
            hidden.mean(dim=1).cpu()
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="tiny-random")
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--batch-seconds", type=float, default=64.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    spec = EncoderSpec(args.encoder, layers=(-1,), device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = finalize("bench", make_files(folder, args.files), progress=False).manifest
        audio_s = float(manifest["duration_s"].sum())

        # Warm-up: build the encoder once in this process (as a long-lived worker has) and run one shard.
        embed_manifest(manifest.head(2), spec, str(folder / "warm"), batch_seconds=args.batch_seconds, progress=False)
        summary = embed_manifest(manifest, spec, str(folder / "store"), batch_seconds=args.batch_seconds, progress=False)
        naive_s = None if args.skip_naive else naive_loop(list(manifest["path"]), spec)

    result = {
        "encoder": args.encoder,
        "device": spec.resolved_device(),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "files": args.files,
        "audio_s": round(audio_s, 1),
        "addgp_wall_s": round(summary.wall_s, 2),
        "addgp_audio_s_per_s": round(audio_s / summary.wall_s, 1),
        "addgp_model_fraction": round(summary.model_s / summary.wall_s, 3),
        "addgp_decode_cpu_s": round(summary.decode_s, 2),
        "naive_wall_s": None if naive_s is None else round(naive_s, 2),
        "naive_audio_s_per_s": None if naive_s is None else round(audio_s / naive_s, 1),
        "speedup": None if naive_s is None else round(naive_s / summary.wall_s, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
