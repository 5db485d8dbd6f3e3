"""Deployments on a real Prefect server: schedules through the API, a triggered nightly run served by `addgp serve`.

Starts `prefect server start` (SQLite) and `addgp serve CONFIG` as processes on loopback,
talks to the server over its REST API, and stops both at the end.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import drop_new_generator_batch, free_loopback_port, nightly_config

from storage import champions

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent


# The server answers 503 while its SQLite database is locked by its own services (scheduler,
# runner heartbeats) on a loaded machine; Prefect's own client retries these codes, so does this test.
RETRIED_STATUS = {429, 502, 503}


def api_call(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    deadline = time.monotonic() + 120
    while True:
        response = client.request(method, url, **kwargs)
        if response.status_code not in RETRIED_STATUS or time.monotonic() > deadline:
            return response
        time.sleep(1)


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            break
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def prefect_server(tmp_path):
    port = free_loopback_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_URL": api,
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
    }
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 (the server's log, read after it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def healthy():
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 180, "the Prefect server to answer /api/health", server, log)
        yield api, env
    finally:
        stop(server)


def test_nightly_deployment_on_a_real_server(tmp_path, prefect_server):
    api, env = prefect_server
    config = nightly_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["schedule"] = {"nightly_cron": "30 3 * * *", "benchmark_cron": "0 5 * * 0", "timezone": "Europe/London"}
    config.write_text(yaml.safe_dump(raw))
    drop_new_generator_batch(tmp_path)

    serve_log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        [str(BIN / "addgp"), "serve", str(config)],
        env=env,
        cwd=tmp_path,
        stdout=open(serve_log, "w"),  # noqa: SIM115 (the server's log, read after it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = httpx.Client(base_url=api, timeout=30)

        def deployments():
            found = api_call(client, "POST", "/deployments/filter", json={}).json()
            return {d["name"]: d for d in found} if len(found) >= 2 else None

        registered = wait_for(deployments, 180, "addgp serve to register the deployments", serve, serve_log)
        assert set(registered) == {"night-nightly", "night-benchmark"}
        nightly = registered["night-nightly"]
        schedule = nightly["schedules"][0]["schedule"]
        assert schedule["cron"] == "30 3 * * *" and schedule["timezone"] == "Europe/London"
        assert registered["night-benchmark"]["schedules"][0]["schedule"]["cron"] == "0 5 * * 0"
        assert nightly["concurrency_limit"] == 1 or (nightly.get("global_concurrency_limit") or {}).get("limit") == 1

        response = api_call(client, "POST", f"/deployments/{nightly['id']}/create_flow_run", json={})
        assert response.status_code < 300, f"{response.status_code}: {response.text}"
        run = response.json()

        def finished():
            state = api_call(client, "GET", f"/flow_runs/{run['id']}").json()["state"]
            return state if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        state = wait_for(finished, 600, "the triggered nightly run to finish", serve, serve_log)
        assert state["type"] == "COMPLETED", f"{state}\n{serve_log.read_text()[-4000:]}"

        artifacts = api_call(
            client, "POST", "/artifacts/filter", json={"artifacts": {"key": {"any_": ["addgp-night-lr-nightly"]}}}
        ).json()
        assert artifacts and "PROMOTED" in artifacts[0]["data"]
        record = champions.read_champions(tmp_path / "work" / "state", "lr")
        assert record["current"]["version"] == 2, json.dumps(record, indent=2)
        assert (tmp_path / "work" / "models" / "lr" / "v2" / "model_card.json").is_file()
    finally:
        stop(serve)
