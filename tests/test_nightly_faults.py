"""The nightly loop under faults (issue 17), on a generated corpus: a night killed part-way and
rerun, two nights in the same second, damaged state files, a champion model that is gone, and
the temporary Prefect server of a killed command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from helpers import drop_new_generator_batch, nightly_config
from prefect.testing.utilities import prefect_test_harness

from addgp.config import load_config
from flows.cli.common import exit_code_of
from flows.nightly import nightly_flow
from storage import champions, reports
from storage.champions import ChampionMissingError, RunInProgressError
from storage.inbox_ledger import ledger_path, new_inbox_batches
from storage.manifests import rejects_path_for
from storage.state import StateFileError


class Killed(Exception):
    """Stands for kill -9 at that point: nothing after it runs (the nightly lock is an flock, gone with the process)."""


def die(*args, **kwargs):
    raise Killed("killed here")


def versions(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "models" / "lr").iterdir() if p.name.startswith("v"))


def nightly_reports(workdir: Path) -> list[str]:
    return sorted(
        p.name for p in (workdir / "reports" / "nightly" / "lr").iterdir() if not p.name.startswith(".") and p.is_dir()
    )


def another_batch(folder: Path, name: str) -> None:
    """The first batch's audio again under another drop folder: new utterance ids, so a new batch."""
    shutil.copytree(folder / "inbox" / "2026-11-20-tipline", folder / "inbox" / name)


@pytest.mark.integration
@pytest.mark.slow
def test_killed_nights_are_resumed_and_damaged_state_stops_cleanly(tmp_path, monkeypatch):
    config = nightly_config(tmp_path)
    workdir = load_config(config).workdir
    state = workdir / "state"
    with prefect_test_harness(server_startup_timeout=180):
        # 1. Killed after the baseline (v1) and the challenger (v2) were registered, before the decision.
        drop_new_generator_batch(tmp_path)
        with monkeypatch.context() as patch:
            patch.setattr("tasks.nightly.task.compare_champion_and_challenger", die)
            with pytest.raises(Killed):
                nightly_flow(str(config))
        assert versions(workdir) == ["v1", "v2"] and (state / "night-lr.json").is_file()
        first_batch = new_inbox_batches(state, consumer="nightly:lr")
        assert len(first_batch) == 1, "a killed night must not acknowledge its batch"
        rerun = nightly_flow(str(config))
        assert rerun.resumed and not rerun.nothing_new
        assert versions(workdir) == ["v1", "v2"], "the rerun trained again instead of resuming"
        assert len(nightly_reports(workdir)) == 1
        assert new_inbox_batches(state, consumer="nightly:lr") == [] and not (state / "night-lr.json").exists()
        record = champions.read_champions(state, "lr")
        assert [r["version"] for r in record["history"] + [record["current"]]] == ([1, 2] if rerun.promoted else [1])

        # 2. Killed after the report was published and the champion written, before the batch was
        #    acknowledged; the batch also holds a poison file (a header claiming 1 Hz: 4.4 h to decode).
        another_batch(tmp_path, "2026-11-21-tipline")
        poisoned = tmp_path / "inbox" / "2026-11-21-tipline"
        sf.write(poisoned / "poison.wav", np.zeros(16000, dtype=np.int16), 1, subtype="PCM_16")
        with open(poisoned / "sidecar.csv", "a") as sidecar:
            sidecar.write("poison.wav,spoof,newgen,tip line,2026-11-21\n")
        with monkeypatch.context() as patch:
            patch.setattr("tasks.nightly.task.close_night", die)
            with pytest.raises(Killed):
                nightly_flow(str(config))
        assert versions(workdir) == ["v1", "v2", "v3"] and len(nightly_reports(workdir)) == 2
        champion_then = champions.read_champions(state, "lr")
        rerun = nightly_flow(str(config))
        assert rerun.resumed and versions(workdir) == ["v1", "v2", "v3"] and len(nightly_reports(workdir)) == 2
        assert champions.read_champions(state, "lr") == champion_then, (
            "a repeated promotion changed the champion record"
        )
        rejects = pd.read_parquet(rejects_path_for(workdir / "manifests" / "inbox.parquet"))
        assert "2026-11-21-tipline/poison" in set(rejects["utt_id"]), "the poison file should end as a reject"
        assert new_inbox_batches(state, consumer="nightly:lr") == []
        ledger = json.loads(Path(ledger_path(state)).read_text())
        assert all(ledger["consumers"]["nightly:lr"].count(b["batch_id"]) == 1 for b in ledger["batches"])

        # 3. Two nights in the same second (a queued second run): both reports kept.
        fixed = datetime(2026, 12, 3, 2, 0, 0, tzinfo=UTC)
        with monkeypatch.context() as patch:
            patch.setattr(reports, "datetime", type("Frozen", (), {"now": staticmethod(lambda tz=None: fixed)}))
            a, b = nightly_flow(str(config)), nightly_flow(str(config))
        assert a.nothing_new and b.nothing_new and a.report != b.report
        assert Path(a.report, "index.html").is_file() and Path(b.report, "index.html").is_file()
        assert Path(b.report).name == f"{Path(a.report).name}-2"

        # 4. Damaged state files: a clear error naming the file and the fix (CLI exit 2), nothing changed.
        for name in ("inbox_batches.json", "champion-lr.json"):
            good = (state / name).read_text()
            (state / name).write_text(good[: len(good) // 2])
            with pytest.raises(StateFileError) as error:
                nightly_flow(str(config))
            assert str(state / name) in str(error.value) and "restore it from a backup" in str(error.value)
            assert exit_code_of(error.value) == 2
            (state / name).write_text(good)

        # 5. The champion's model folder is gone: the night stops before training (CLI exit 3), the batch waits.
        current = champions.current_champion(state, "lr")
        shutil.rmtree(current["model_path"])
        another_batch(tmp_path, "2026-11-22-tipline")
        trained = versions(workdir)
        with pytest.raises(ChampionMissingError) as error:
            nightly_flow(str(config))
        assert current["model_path"] in str(error.value) and "champion-lr.json" in str(error.value)
        assert exit_code_of(error.value) == 3
        assert versions(workdir) == trained and len(new_inbox_batches(state, consumer="nightly:lr")) == 1


def test_run_ids_are_unique_and_a_published_report_is_never_replaced(tmp_path, monkeypatch):
    fixed = datetime(2026, 12, 3, 2, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(reports, "datetime", type("Frozen", (), {"now": staticmethod(lambda tz=None: fixed)}))
    first = reports.new_run_id(tmp_path, "night-nightly")
    reports.publish_report({"index.html": "one"}, tmp_path, first, replace=False)
    second = reports.new_run_id(tmp_path, "night-nightly")
    assert (first, second) == ("20261203T020000Z-night-nightly", "20261203T020000Z-night-nightly-2")
    with pytest.raises(FileExistsError, match="never overwritten"):
        reports.publish_report({"index.html": "two"}, tmp_path, first, replace=False)
    assert (tmp_path / first / "index.html").read_text() == "one"


def test_exit_codes_of_the_nightly_errors():
    assert exit_code_of(RunInProgressError("busy")) == 4
    assert exit_code_of(ChampionMissingError("gone")) == 3
    assert exit_code_of(StateFileError("damaged")) == 2
    assert exit_code_of(RuntimeError("anything else")) is None


SERVER_HOLDER = """
import sys, time
from flows.cli.server import prefect_api
with prefect_api() as url:
    print(url, flush=True)
    time.sleep(600)
"""


def clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {
        **env,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }


@pytest.mark.integration
def test_no_temporary_server_outlives_a_killed_command(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", SERVER_HOLDER], env=clean_env(tmp_path), stdout=subprocess.PIPE, text=True
    )
    try:
        url = holder.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/health", timeout=1)
            except httpx.HTTPError:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the temporary Prefect server at {url} outlived the killed command")
    finally:
        holder.kill()


SLOW_START = """
from flows.cli.common import exit_code_of
from flows.cli.server import prefect_api
try:
    with prefect_api():
        pass
except Exception as exc:
    print(exit_code_of(exc))
    print(exc)
"""


def test_a_slow_server_start_names_the_setting(tmp_path, monkeypatch):
    from flows.cli.server import DEFAULT_STARTUP_TIMEOUT_S, TIMEOUT_ENV, startup_timeout_s

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert startup_timeout_s() == DEFAULT_STARTUP_TIMEOUT_S > 20  # Prefect's own 20 s timed out on loaded machines
    env = {**clean_env(tmp_path), TIMEOUT_ENV: "1"}  # the server's imports alone take longer
    done = subprocess.run([sys.executable, "-c", SLOW_START], env=env, capture_output=True, text=True, timeout=120)
    code, message = done.stdout.split("\n", 1)
    assert code == "2", done.stdout + done.stderr
    assert "did not answer within 1 s" in message and f"Set {TIMEOUT_ENV} higher" in message


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_of_addgp_nightly_leaves_no_server_and_the_rerun_resumes(tmp_path):
    import psutil

    config = nightly_config(tmp_path)
    drop_new_generator_batch(tmp_path)
    workdir = load_config(config).workdir
    night_file = workdir / "state" / "night-lr.json"
    command = [sys.executable, "-m", "flows.cli", "nightly", str(config)]
    log = tmp_path / "killed.log"
    night = subprocess.Popen(
        command,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stdout=open(log, "w"),  # noqa: SIM115 (the child's log, read after it)
        stderr=subprocess.STDOUT,
    )
    children: list = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and night.poll() is None:
            if night_file.is_file() and json.loads(night_file.read_text() or "{}").get("champion"):
                break  # the baseline is trained and recorded; the challenger is next
            time.sleep(0.1)
        assert night.poll() is None, f"the nightly ended before it could be killed:\n{log.read_text()[-3000:]}"
        children = psutil.Process(night.pid).children(recursive=True)
        servers = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
        assert servers, "the command should have started its temporary Prefect server"
        night.send_signal(signal.SIGKILL)
        night.wait(30)
        _gone, alive = psutil.wait_procs(servers, timeout=30)
        assert not alive, f"temporary Prefect server(s) outlived the killed nightly: {[p.pid for p in alive]}"
    finally:
        if night.poll() is None:
            night.kill()
        for child in children:  # e.g. Dask workers of the killed run, stopped here by pid
            if child.is_running():
                child.kill()
    assert versions(workdir) == ["v1"]
    rerun = subprocess.run(command, env=clean_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "(resumed an unfinished night)" in rerun.stdout
    assert versions(workdir) == ["v1", "v2"] and len(nightly_reports(workdir)) == 1
    assert new_inbox_batches(workdir / "state", consumer="nightly:lr") == [] and not night_file.exists()
