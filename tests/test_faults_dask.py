"""Exactly-once across a killed Dask client, and a file that kills its worker (issue 14, cases 2 and 4).

Real worker processes: a ``dask scheduler`` and two ``dask worker`` processes started from the
command line on loopback for the killed client (as in production, where the client — a flow
run — can die while the cluster lives on), and a LocalCluster with nannies (workers that are
restarted after a crash) for the poison file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import dask
import pandas as pd
import pyarrow.dataset as ds
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from helpers import stop_process, wait_for, write_tone

from storage.embeddings import current_epoch, read_rejects
from storage.manifests import write_manifest
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
from tasks.ingest.common import finalize

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
SPEC = EncoderSpec("tiny-random", layers=(-1,))
SHARD_SECONDS = 4.0
DECODE_PAUSE_S = 1.5  # per file while the flag file exists: shards of the doomed run stay in flight
START_TIMEOUT_S = 60


class PatchDecode(WorkerPlugin):
    """Wraps ``tasks.embed.shards.load_audio`` in every worker process, also in restarted ones.

    ``pause_flag``: while that file exists, each decode first sleeps ``DECODE_PAUSE_S``.
    ``crash_marker``: a path containing it kills the worker process, as an out-of-memory kill would.
    """

    name = "patch-decode"

    def __init__(self, pause_flag: str | None = None, crash_marker: str | None = None):
        self.pause_flag, self.crash_marker = pause_flag, crash_marker

    def setup(self, worker):
        from tasks.embed import shards

        original = shards.load_audio
        pause_flag, crash_marker = self.pause_flag, self.crash_marker

        def patched(path, *args, **kwargs):
            if crash_marker and crash_marker in str(path):
                os._exit(137)
            if pause_flag and os.path.exists(pause_flag):
                time.sleep(DECODE_PAUSE_S)
            return original(path, *args, **kwargs)

        shards.load_audio = patched


# Workers cannot import this test module: the plugin travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _manifest(folder: Path, n: int, crash_at: int | None = None) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"crasher{i:02d}" if i == crash_at else f"u{i:02d}"
        rows.append(
            {
                "utt_id": f"u{i:02d}",
                "split": "eval",
                "label": "spoof" if i % 3 else "bonafide",
                "attack": None,
                "speaker": None,
                "path": write_tone(folder / f"{name}.wav", 1.0 + (i % 3) * 0.5, seed=i),
            }
        )
    return finalize("d", rows, progress=False).manifest


def _env() -> dict:
    # The workers and the doomed client must import this working tree, not an installed copy.
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    }


@pytest.fixture
def cli_cluster(tmp_path):
    """`dask scheduler` and two single-threaded `dask worker` processes on loopback."""
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    procs, handles = [], []

    def start(name, *args):
        handle = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in the finally below
        handles.append(handle)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dask", *args], env=_env(), stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path
            )
        )
        return procs[-1]

    try:
        start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        )
        wait_for(
            lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, START_TIMEOUT_S, "scheduler file"
        )
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            start(
                f"worker{i}",
                "worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
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
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield {"address": address, "logs": logs}
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for handle in handles:
            handle.close()


DOOMED_CLIENT = """
import sys
import pandas as pd
from distributed import Client
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
address, manifest, store, shard_seconds = sys.argv[1:5]
with Client(address) as client:
    embed_manifest(pd.read_parquet(manifest), EncoderSpec("tiny-random", layers=(-1,)), store,
                   batch_seconds=2, shard_seconds=float(shard_seconds), client=client, progress=False)
"""


def test_rows_exactly_once_after_a_killed_client_and_an_immediate_rerun(tmp_path, cli_cluster):
    manifest = _manifest(tmp_path / "audio", 14)
    manifest_path = tmp_path / "m.parquet"
    write_manifest(manifest, str(manifest_path))
    store = tmp_path / "store"
    flag = tmp_path / "slow.flag"
    flag.touch()
    with Client(cli_cluster["address"], timeout=START_TIMEOUT_S) as client:
        client.register_plugin(PatchDecode(pause_flag=str(flag)))

        doomed = subprocess.Popen(
            [
                sys.executable,
                "-c",
                DOOMED_CLIENT,
                cli_cluster["address"],
                str(manifest_path),
                str(store),
                str(SHARD_SECONDS),
            ],
            env=_env(),
            cwd=tmp_path,
        )
        try:
            wait_for(lambda: any(store.rglob("part-*.parquet")), 150, "the doomed run's first shard")
            doomed.send_signal(signal.SIGKILL)
            assert doomed.wait(timeout=10) == -signal.SIGKILL
        finally:
            stop_process(doomed)
        committed_before = len(list(store.rglob("part-*.parquet")))
        killed_epoch = current_epoch(str(store))
        in_flight = client.run(lambda dask_worker: len(dask_worker.state.executing))
        assert sum(in_flight.values()) >= 1, "no task of the killed client was still running: nothing to race"

        outcome = {}
        rerun = threading.Thread(
            target=lambda: outcome.setdefault(
                "summary",
                embed_manifest(
                    manifest,
                    SPEC,
                    str(store),
                    batch_seconds=2,
                    shard_seconds=SHARD_SECONDS,
                    client=client,
                    progress=False,
                ),
            )
        )
        rerun.start()
        # Once the rerun owns the store (new epoch), decoding speeds up: the killed run's tasks
        # finish their current file and try to commit, after the rerun has planned.
        wait_for(lambda: current_epoch(str(store)) not in (None, killed_epoch), 60, "the rerun's epoch")
        flag.unlink()
        rerun.join(timeout=200)
        assert "summary" in outcome, "the rerun did not finish"
        wait_for(
            lambda: sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values()) == 0,
            60,
            "idle workers",
        )
        time.sleep(1.0)  # a straggler's commit would land now

    raw = (
        ds.dataset(str(store)).to_table(columns=["dataset", "utt_id", "layer"]).to_pandas()
    )  # every row on disk, no dedup
    assert not raw.duplicated().any(), (
        f"duplicated rows: {raw[raw.duplicated(keep=False)].sort_values('utt_id').to_dict('records')}"
    )
    assert sorted(raw["utt_id"]) == sorted(manifest["utt_id"])
    assert committed_before < len(list(store.rglob("part-*.parquet")))
    worker_logs = "".join(p.read_text(errors="replace") for p in cli_cluster["logs"].glob("worker*.log"))
    assert "not committed" in worker_logs, "no shard of the killed run reached its commit after the rerun planned"
    assert not list(store.rglob(".tmp-*"))
    # a third run adds nothing
    assert (
        embed_manifest(
            manifest, SPEC, str(store), batch_seconds=2, shard_seconds=SHARD_SECONDS, progress=False
        ).shards_planned
        == 0
    )


def test_a_file_that_kills_its_worker_is_rejected_and_the_run_completes(tmp_path):
    manifest = _manifest(tmp_path / "audio", 8, crash_at=5)
    store = str(tmp_path / "store")
    # Give up on a task after it was on two dead workers (the default, 3, only makes this slower).
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(PatchDecode(crash_marker="crasher"))
        summary = embed_manifest(
            manifest, SPEC, store, batch_seconds=2, shard_seconds=100, client=client, progress=False
        )
    assert summary.files_crashed == 1 and summary.utterances_embedded == 7
    reason = read_rejects(store).set_index("utt_id").at["u05", "reason"]
    assert "crashed the worker" in reason
    rows = ds.dataset(store).to_table(columns=["utt_id"]).to_pandas()
    assert sorted(rows["utt_id"]) == sorted(set(manifest["utt_id"]) - {"u05"})
    # not retried forever: the next run plans nothing
    assert embed_manifest(manifest, SPEC, store, progress=False).shards_planned == 0
