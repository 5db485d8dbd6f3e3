"""Degradation throughput per condition, next to the decode and embed rates of the same files.

Generates a small demo corpus (speech-like audio, 16 kHz FLAC), then for each condition
degrades every file into a fresh cache (files/s and audio-s/s, wall time including the
decode of the source and the write of the copy) and, for comparison, times the embed
stage's decoder alone and the embed stage with the ``tiny-random`` encoder on the clean
files. One thread per stage so that the numbers are per core.

    python benchmarks/degrade_throughput.py                         # every runnable condition + presets
    python benchmarks/degrade_throughput.py --files 40 --conditions mp3_64k telephony
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from storage.workspace import Workspace
from tasks.degrade.base import CodecUnavailable
from tasks.degrade.registry import CONDITIONS, PRESETS, resolve
from tasks.degrade.run import build_context, degrade_rows
from tasks.demo_corpus import generate_demo_corpus
from tasks.embed.audio import load_audio
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
from tasks.ingest.registry import ingest_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="eval utterances of the generated corpus")
    parser.add_argument(
        "--conditions", nargs="*", default=None, help="default: every condition but the noise folder, then the presets"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    names = args.conditions or [n for n in CONDITIONS if not n.startswith("noisefolder_")] + sorted(PRESETS)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_demo_corpus(
            root / "corpus",
            conditions=["studio"],
            utterances_per_split={"train": 2, "dev": 2, "eval": args.files},
            progress=False,
        )
        manifest = ingest_dataset("asvspoof2019_la", root / "corpus" / "demo_studio", dataset="demo_studio").manifest
        manifest = manifest[manifest["split"] == "eval"].reset_index(drop=True)
        audio_s = float(manifest["duration_s"].sum())
        workspace = Workspace.at(root / "work")
        context = build_context(manifest, 16000, None)
        print(
            f"# {len(manifest)} files, {audio_s:.1f} s of audio; {platform.processor() or platform.machine()}, threads={args.threads}"
        )

        started = time.perf_counter()
        for path in manifest["path"]:
            load_audio(path)
        decode_s = time.perf_counter() - started
        spec = EncoderSpec("tiny-random", layers=(-1,), pooling="mean")
        embed_manifest(manifest.head(2), spec, str(root / "warm"), progress=False)  # build the encoder once
        embed = embed_manifest(manifest, spec, str(root / "store"), batch_seconds=16, progress=False)
        results = [
            {
                "condition": "(decode only)",
                "files_per_s": len(manifest) / decode_s,
                "audio_s_per_s": audio_s / decode_s,
            },
            {
                "condition": "(embed, tiny-random)",
                "files_per_s": len(manifest) / embed.wall_s,
                "audio_s_per_s": embed.audio_seconds_per_second,
            },
        ]
        for name in names:
            condition = resolve(name)
            try:
                _, rejects, summary = degrade_rows(
                    manifest,
                    condition,
                    workspace.degraded,
                    context=context if condition.uses_context else None,
                    threads=args.threads,
                    progress=False,
                )
            except CodecUnavailable as exc:
                results.append({"condition": name, "unavailable": str(exc).split(".")[0]})
                continue
            assert rejects.empty, rejects
            results.append(
                {
                    "condition": name,
                    "files_per_s": summary.files_per_second,
                    "audio_s_per_s": summary.audio_seconds_per_second,
                }
            )
        print("| condition | files/s | audio-s/s |\n|---|---:|---:|")
        for row in results:
            if "unavailable" in row:
                print(f"| `{row['condition']}` | — | — ({row['unavailable']}) |")
            else:
                print(f"| `{row['condition']}` | {row['files_per_s']:.1f} | {row['audio_s_per_s']:.0f} |")
        print(json.dumps({"files": len(manifest), "audio_s": audio_s, "results": results}, default=float))


if __name__ == "__main__":
    main()
