"""The embed flow against a real Dask cluster started from the command line, one worker killed mid-run.

What `cluster.address` means in production: a `dask scheduler` and `dask worker` processes
started on their own (compose, Kubernetes, SLURM), the flow only knows the address. Here
they run on loopback (the `cli_cluster` fixture of conftest.py); one worker gets SIGKILL while shards are being written, and every
manifest row must still be in the store exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pyarrow.dataset as ds
import pytest
from helpers import write_tone
from prefect.testing.utilities import prefect_test_harness

from addgp.config import EncoderConfig
from storage.manifests import write_manifest
from tasks.embed.encoder import spec_from_config
from tasks.embed.shards import plan_shards
from tasks.ingest.common import finalize

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# Small shards so the run is many tasks long: there is time to kill a worker between the first
# written shard and the last.
ENCODER = EncoderConfig(id="tiny-random", layers=[-1], batch_seconds=2, shard_seconds=3)
N_FILES = 40


@pytest.fixture
def manifest_path(tmp_path) -> tuple[str, list[str]]:
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = [
        {
            "utt_id": f"u{i:03d}",
            "split": "eval",
            "label": "spoof" if i % 3 else "bonafide",
            "attack": None,
            "speaker": None,
            "path": write_tone(audio / f"u{i:03d}.wav", 1.0 + (i % 5) * 0.5, seed=i),
        }
        for i in range(N_FILES)
    ]
    manifest = finalize("cli", rows, progress=False).manifest
    path = tmp_path / "manifests" / "cli.parquet"
    path.parent.mkdir()
    write_manifest(manifest, str(path))
    return str(path), sorted(manifest["utt_id"])


def test_embed_flow_survives_a_killed_cli_worker(tmp_path, cli_cluster, manifest_path):
    from prefect import flow

    from tasks.embed.task import embed_task

    @flow(name="addgp-embed")
    def embed_flow(manifest_paths, encoder, store, scheduler_address):
        return embed_task(manifest_paths, encoder, store, scheduler_address)

    manifest, utt_ids = manifest_path
    store = tmp_path / "store"
    n_shards = len(plan_shards(pd.read_parquet(manifest), spec_from_config(ENCODER), str(store), ENCODER.shard_seconds))
    assert n_shards >= 10, "too few shards to kill a worker between the first and the last"
    victim = cli_cluster["workers"][0]
    flow_returned = threading.Event()
    kill = {}

    def kill_one_worker_mid_run():
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not flow_returned.is_set():
            parts = list(store.rglob("part-*.parquet"))
            if parts:
                kill["parts_before"] = len(parts)
                kill["flow_still_running"] = not flow_returned.is_set()
                os.kill(victim.pid, signal.SIGKILL)
                kill["at"] = time.monotonic()
                return
            time.sleep(0.02)

    with prefect_test_harness(server_startup_timeout=120):
        watcher = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
        watcher.start()
        try:
            state = embed_flow([manifest], ENCODER, str(store), cli_cluster["address"], return_state=True)
        finally:
            flow_returned.set()
            watcher.join(timeout=10)

    print(f"{n_shards} shards; killed worker pid {victim.pid} after {kill.get('parts_before')} were written")
    print((cli_cluster["logs"] / "scheduler.log").read_text()[-3000:])
    assert "at" in kill, "no shard was written before the flow returned; nothing was killed"
    assert kill["flow_still_running"] and kill["parts_before"] < n_shards, (
        f"the kill was not mid-run: {kill}, {n_shards} shards"
    )
    assert victim.wait(timeout=10) == -signal.SIGKILL
    assert cli_cluster["workers"][1].poll() is None, "the surviving worker should still be running"
    assert state.is_completed(), state
    summary = state.result()
    assert summary.shards_planned == n_shards

    table = ds.dataset(str(store)).to_table(columns=["utt_id", "dataset", "layer"]).to_pandas()
    assert len(table) == len(utt_ids), "a row is missing or duplicated"
    assert not table.duplicated(["dataset", "utt_id", "layer"]).any()
    assert sorted(table["utt_id"]) == utt_ids
    assert len(list(store.rglob("part-*.parquet"))) == n_shards
