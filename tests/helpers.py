"""Builders the tests share: real (tiny) audio files, bad ones, and a nightly set-up on a generated corpus.

Nothing is downloaded: every file is written by the test that needs it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from tasks.demo_corpus import generate_demo_corpus

SR = 16000


def _clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_normal(int(round(seconds * SR)))).astype("float32")


def audio_bytes(seconds: float = 0.2, fmt: str = "WAV", seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _clip(seconds, seed), SR, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def write_audio(path: str | Path, seconds: float = 0.2, seed: int | None = None) -> Path:
    """A real audio file (format from the extension: .wav, .flac, .ogg …), ``seconds`` long."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".flac": "FLAC", ".ogg": "OGG", ".wav": "WAV"}.get(path.suffix.lower(), "WAV")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    # Seeded by the file name through CRC-32, the same in every process (str hash() is salted per
    # process, so the audio changed from run to run).
    seed = zlib.crc32(path.name.encode()) if seed is None else seed
    sf.write(path, _clip(seconds, seed), SR, format=fmt, subtype=subtype)
    return path


def write_empty(path: str | Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_garbage(path: str | Path) -> Path:
    """A file with an audio extension that no decoder can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all " * 20)
    return path


def write_silent_header(path: str | Path) -> Path:
    """A valid WAV header with no samples (zero-length audio)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(0, dtype="float32"), SR, format="WAV", subtype="PCM_16")
    return path


def reasons(result) -> dict[str, str]:
    """{utt_id or source: reason} of an IngestResult's rejects."""
    import pandas as pd

    return {(r.source if pd.isna(r.utt_id) else r.utt_id): r.reason for r in result.rejects.itertuples()}


def row(result, utt_id: str) -> dict:
    m = result.manifest
    hits = m[m["utt_id"] == utt_id]
    assert len(hits) == 1, f"{utt_id!r} not in manifest: {sorted(m['utt_id'])[:20]}"
    return hits.iloc[0].to_dict()


def isnull(value) -> bool:
    """Null as a manifest cell can hold it (None, or NaN in pandas' string columns)."""
    import pandas as pd

    return value is None or bool(pd.isna(value))


def write_tone(path, seconds: float, sample_rate: int = 16000, seed: int = 0, fmt: str | None = None) -> str:
    """A harmonic tone with noise: cheap, deterministic, speech-band audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 100 + 80 * rng.random()
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.random() * 6) / k for k in range(1, 6))
    wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(len(t))
    sf.write(str(path), wave.astype(np.float32), sample_rate, format=fmt)
    return str(path)


# The promotion gate off: these tests check the point rule on one small batch (the gate's own
# tests set it, tests/test_nightly_season.py and tests/test_nightly_gate_drift.py).
GATE_OFF = {"min_spoof": 0, "min_bonafide": 0, "ci_level": None}


def nightly_config(folder: Path, strategy: str = "retrain", gate: dict | None = None) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    config = {
        "name": "night",
        "workdir": str(folder / "work"),
        "demo_corpus": {
            "root": str(folder / "corpus"),
            "seed": 5,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 40, "dev": 12, "eval": 30},
        },
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_studio")},
            {"name": "demo_phone", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_phone")},
            {"name": "inbox", "adapter": "inbox", "root": str(inbox)},
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 30},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {"datasets": ["demo_studio"], "layer": -1, "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"datasets": ["demo_studio", "demo_phone"], "n_boot": 50},
        "nightly": {
            "inbox": "inbox",
            "detector": "lr",
            "strategy": strategy,
            "holdout_fraction": 0.4,
            "n_boot": 50,
            "gate": GATE_OFF if gate is None else gate,
        },
    }
    path = folder / "night.yaml"
    path.write_text(yaml.safe_dump(config))
    generate_demo_corpus(
        folder / "corpus",
        seed=5,
        conditions=("studio", "phone", "far"),
        utterances_per_split={"train": 40, "dev": 12, "eval": 30},
        progress=False,
    )
    return path


def drop_new_generator_batch(folder: Path) -> int:
    """Copy the far-field corpus' unseen-attack (A04) spoofs and some bona fide into the inbox, with a sidecar."""
    far = folder / "corpus" / "demo_far"
    protocol = far / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    batch = folder / "inbox" / "2026-11-20-tipline"
    batch.mkdir(parents=True)
    rows = []
    for line in protocol.read_text().split("\n"):
        if not line.strip():
            continue
        _speaker, utt, _, attack, label = line.split()
        if attack == "A04" or (label == "bonafide" and len(rows) % 3 == 0):
            shutil.copy(far / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac", batch / f"{utt}.flac")
            rows.append(
                {
                    "file": f"{utt}.flac",
                    "label": label,
                    "generator": "" if label == "bonafide" else "newgen",
                    "source": "tip line",
                    "collected": "2026-11-20",
                }
            )
    with open(batch / "sidecar.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: no process a test started outlives it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def wait_for(predicate, timeout: float, what: str, procs=()) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` on timeout or when one of ``procs`` exits early."""
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"{what}: a process exited early: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


class WebhookReceiver:
    """A real HTTP server on loopback that records the JSON bodies POSTed to it (``bodies``);
    ``status`` is what it answers. Use as a context manager: it serves on a thread until exit."""

    def __init__(self, status: int = 204):
        import http.server
        import threading

        receiver = self
        self.bodies: list[dict] = []
        self.status = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # the name http.server calls
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_migrate(workdir: str | Path, *options: str) -> tuple[int, dict, str]:
    """``addgp migrate WORKDIR [options]``: its exit code, JSON summary and progress lines."""
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["migrate", str(workdir), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


def changed(summary: dict) -> list[str]:
    """Every line of a migrate summary's ``changed`` lists."""
    return [line for lines in summary["changed"].values() for line in lines]
