"""Shared fixtures: small audio written by the tests, never downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

# Tests never reach a hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Local checkpoints' digests (tasks/embed/encoder.py) are cached per test run, not in ~/.cache.
os.environ.setdefault("ADDGP_CACHE_DIR", tempfile.mkdtemp(prefix="addgp-test-cache-"))

import pandas as pd
import pytest
from helpers import free_loopback_port, stop_process, wait_for, write_tone

from tasks.ingest.common import finalize


@pytest.fixture
def audio_manifest(tmp_path) -> pd.DataFrame:
    """A valid manifest of 12 short files of varied length (two datasets, both labels)."""
    rows = []
    for i in range(12):
        dataset = "alpha" if i < 8 else "beta"
        seconds = 0.4 + 0.23 * i
        path = write_tone(tmp_path / f"utt{i:02d}.flac", seconds, seed=i)
        rows.append(
            {
                "utt_id": f"utt{i:02d}",
                "split": "train",
                "label": "bonafide" if i % 2 else "spoof",
                "attack": None if i % 2 else "A01",
                "speaker": f"s{i % 3}",
                "path": path,
                "dataset": dataset,
            }
        )
    frames = []
    for dataset in ("alpha", "beta"):
        result = finalize(dataset, [r for r in rows if r["dataset"] == dataset], progress=False)
        frames.append(result.manifest)
    return pd.concat(frames, ignore_index=True)


# How long a `dask scheduler` / `dask worker` process may take to come up on a loaded 2-core machine.
DASK_START_TIMEOUT_S = 60


@pytest.fixture
def cli_cluster(tmp_path):
    """`dask scheduler` + two `dask worker` processes (no nanny: a killed worker stays dead), their cwd ``tmp_path``."""
    from distributed import Client  # only the tests that start a cluster pay for the import

    logs = tmp_path / "dask-logs"
    logs.mkdir()
    env = {
        **os.environ,
        # two cores for everything: one torch thread per worker
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    }
    scheduler_file = tmp_path / "scheduler.json"
    port = free_loopback_port()
    procs: list[subprocess.Popen] = []
    handles = []

    def start(name: str, *args: str) -> subprocess.Popen:
        handle = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (the process writes to it; closed at teardown)
        handles.append(handle)
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", *args], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path
        )
        procs.append(proc)
        return proc

    try:
        scheduler = start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        )
        wait_for(
            lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0,
            DASK_START_TIMEOUT_S,
            "scheduler file",
            [scheduler],
        )
        address = json.loads(scheduler_file.read_text())["address"]
        assert address == f"tcp://127.0.0.1:{port}"
        workers = [
            start(
                f"worker{i}",
                "worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"w{i}",
                "--memory-limit",
                "2GiB",
                "--death-timeout",
                "60",
            )
            for i in range(2)
        ]
        with Client(address, timeout=DASK_START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=DASK_START_TIMEOUT_S)
            worker_pids = set(client.run(os.getpid).values())
        # --no-nanny: the worker runs in the CLI process itself, so the Popen pid is the worker.
        assert worker_pids == {w.pid for w in workers}
        yield {"address": address, "scheduler": scheduler, "workers": workers, "logs": logs}
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for handle in handles:
            handle.close()
