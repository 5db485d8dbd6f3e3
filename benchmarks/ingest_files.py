"""Ingest throughput: files probed (header + sha256) per second on a generated corpus.

Generates N short audio files (0.2 s FLAC by default, 64 distinct clips cycled so the
bytes differ) in a temporary folder, in the ``protocol_csv`` or ASVspoof 2019 LA layout,
then times ``ingest_dataset`` end to end — protocol parsing, probing, manifest frame — and,
for comparison, the probe alone with the per-file thread map that ``finalize`` used before
(one ``ThreadPoolExecutor.map`` task per file and ``soundfile.info``).

    python benchmarks/ingest_files.py                       # 100k files, protocol_csv layout
    python benchmarks/ingest_files.py --files 20000 --layout asvspoof2019 --workers 4
    python benchmarks/ingest_files.py --files 100000 --cold  # drop the page cache first (root only)

The generated tree lives in a temporary folder removed at the end (``--keep`` keeps it).
The files are in the page cache after generation, so the figures are for warm metadata
and data: the probe's CPU cost, not the disk's. ``--cold`` asks the kernel to drop caches
first (needs root; skipped with a note otherwise) — this empties the page cache of the
whole machine, so do not use it on a machine shared with running jobs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from tasks.ingest.registry import ingest_dataset


def clips(n: int = 64, seconds: float = 0.2, sr: int = 16000, fmt: str = "FLAC") -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        sf.write(
            buffer, (0.1 * rng.standard_normal(int(seconds * sr))).astype("float32"), sr, format=fmt, subtype="PCM_16"
        )
        out.append(buffer.getvalue())
    return out


def generate(root: Path, files: int, layout: str, seconds: float) -> Path:
    """Write the corpus; returns the ROOT to ingest."""
    data = clips(seconds=seconds)
    labels = ("bonafide", "spoof")
    if layout == "protocol_csv":
        lines = ["path,label,attack,speaker,split"]
        for i in range(files):
            rel = f"audio/{i // 1000:03d}/u{i:07d}.flac"
            if i % 1000 == 0:
                (root / "audio" / f"{i // 1000:03d}").mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data[i % len(data)])
            label = labels[i % 2]
            lines.append(f"{rel},{label},{'-' if label == 'bonafide' else f'A{i % 6 + 1:02d}'},s{i % 40},train")
        (root / "protocol.csv").write_text("\n".join(lines) + "\n")
        return root / "protocol.csv"
    la = root / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    flac = la / "ASVspoof2019_LA_train" / "flac"
    flac.mkdir(parents=True)
    lines = []
    for i in range(files):
        utt = f"LA_T_{i:07d}"
        (flac / f"{utt}.flac").write_bytes(data[i % len(data)])
        label = labels[i % 2]
        lines.append(f"LA_{i % 40:04d} {utt} - {'-' if label == 'bonafide' else f'A{i % 6 + 1:02d}'} {label}")
    (protocols / "ASVspoof2019.LA.cm.train.trn.txt").write_text("\n".join(lines) + "\n")
    return la


def legacy_probe(paths: list[str], workers: int) -> float:
    """The probe as finalize ran it before: one executor task per file, soundfile.info."""

    def probe(path: str):
        info = sf.info(path)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return info.frames / info.samplerate, digest.hexdigest()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(probe, paths):
            pass
    return time.perf_counter() - start


def drop_caches() -> str:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "page cache dropped"
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not drop the page cache ({exc}); figures are warm-cache"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--layout", choices=("protocol_csv", "asvspoof2019"), default="protocol_csv")
    parser.add_argument("--workers", type=int, default=16, help="probe threads (finalize's default: 16)")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of each clip")
    parser.add_argument("--no-legacy", action="store_true", help="skip the old per-file probe for comparison")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each timed run (root only)")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    parser.add_argument("--dir", default=None, help="where to create the temporary tree (default: system temp)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="addgp-ingest-bench-", dir=args.dir))
    report: dict = {
        "files": args.files,
        "layout": args.layout,
        "workers": args.workers,
        "clip_seconds": args.seconds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    try:
        start = time.perf_counter()
        root = generate(tmp, args.files, args.layout, args.seconds)
        report["generate_s"] = round(time.perf_counter() - start, 2)
        report["bytes"] = sum(p.stat().st_size for p in tmp.rglob("*.flac"))

        if args.cold:
            report["cache"] = drop_caches()
        start = time.perf_counter()
        adapter = "protocol_csv" if args.layout == "protocol_csv" else "asvspoof2019_la"
        result = ingest_dataset(adapter, root, dataset="bench", workers=args.workers, progress=sys.stderr.isatty())
        elapsed = time.perf_counter() - start
        assert len(result.manifest) == args.files, (len(result.manifest), result.rejects.head())
        report["ingest_s"] = round(elapsed, 2)
        report["ingest_files_per_s"] = round(args.files / elapsed)

        if not args.no_legacy:
            paths = list(result.manifest["path"])
            if args.cold:
                drop_caches()
            legacy = legacy_probe(paths, args.workers)
            report["legacy_probe_s"] = round(legacy, 2)
            report["legacy_probe_files_per_s"] = round(args.files / legacy)
    finally:
        if args.keep:
            report["tree"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=1))
    print(
        f"ingest: {report['ingest_files_per_s']} files/s ({args.files} files in {report['ingest_s']} s, "
        f"{args.workers} threads, {report['cpus']} CPUs)"
        + (
            f"; old per-file probe alone: {report['legacy_probe_files_per_s']} files/s"
            if "legacy_probe_files_per_s" in report
            else ""
        )
    )
    return report


if __name__ == "__main__":
    main()
