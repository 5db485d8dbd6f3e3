"""The embed stage on real Dask worker processes, including one killed mid-run."""

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from distributed import Client, LocalCluster
from helpers import write_tone

from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
from tasks.ingest.common import finalize

pytestmark = pytest.mark.integration
SPEC = EncoderSpec("tiny-random", layers=(-1,))


@pytest.fixture
def many_files_manifest(tmp_path):
    rows = [
        {
            "utt_id": f"u{i:03d}",
            "split": "eval",
            "label": "spoof" if i % 3 else "bonafide",
            "attack": None,
            "speaker": None,
            "path": write_tone(tmp_path / f"u{i:03d}.wav", 1.0 + (i % 5) * 0.5, seed=i),
        }
        for i in range(48)
    ]
    return finalize("gamma", rows, progress=False).manifest


@pytest.fixture
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as c:
        yield c


def test_two_worker_processes_fill_the_store(many_files_manifest, tmp_path, cluster):
    store = str(tmp_path / "store")
    with Client(cluster) as client:
        summary = embed_manifest(
            many_files_manifest, SPEC, store, batch_seconds=4, shard_seconds=6, client=client, progress=False
        )
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    assert summary.utterances_embedded == len(many_files_manifest)
    table = ds.dataset(store).to_table(columns=["utt_id"]).to_pandas()
    assert sorted(table["utt_id"]) == sorted(many_files_manifest["utt_id"])


def test_worker_killed_mid_run_still_gives_every_row_once(many_files_manifest, tmp_path, cluster):
    store = tmp_path / "store"
    outcome = {}
    with Client(cluster) as client:
        client.wait_for_workers(2)
        pids = client.run(os.getpid)

        def run():
            outcome["summary"] = embed_manifest(
                many_files_manifest, SPEC, str(store), batch_seconds=2, shard_seconds=3, client=client, progress=False
            )

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.time() + 120
        while not list(Path(store).rglob("part-*.parquet")) and time.time() < deadline:
            time.sleep(0.05)
        assert worker.is_alive(), "the run finished before a worker could be killed mid-way"
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its shard is rescheduled
        worker.join(timeout=300)
        assert not worker.is_alive()

    assert "summary" in outcome, "embed run did not finish after the worker was killed"
    table = ds.dataset(str(store)).to_table(columns=["utt_id", "layer"]).to_pandas()
    assert len(table) == len(many_files_manifest)
    assert sorted(table["utt_id"]) == sorted(many_files_manifest["utt_id"])
