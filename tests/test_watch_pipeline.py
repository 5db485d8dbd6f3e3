"""What a person can watch, on one demo-sized `addgp run` under Prefect's local server: the
flow run and task run names, progress lines in the task runs' logs, the Dask dashboard link
in the flow run's logs and artifacts (only where bokeh serves one), exit code 6 for a run whose report regressed, and the
webhook's JSON. Everything is read back through Prefect's client, as the UI would show it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import WebhookReceiver, nightly_config, wait_for
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness
from test_crossdataset import make_scores

from flows.cli.common import EXIT_REGRESSIONS
from storage.reports import write_scores

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DATASETS = ("demo_studio", "demo_phone")
ROOT = Path(__file__).resolve().parents[1]


def watch_config(folder: Path, webhook_url: str) -> Path:
    config = {
        "name": "tinywatch",
        "workdir": str(folder / "work"),
        "demo_corpus": {
            "root": str(folder / "corpus"),
            "seed": 5,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 24, "dev": 8, "eval": 16},
        },
        "datasets": [
            {"name": name, "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / name)} for name in DATASETS
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 10},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {"datasets": ["demo_studio"], "layer": -1, "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"n_boot": 50},
        "notify": {"webhook_url": webhook_url},
    }
    path = folder / "tinywatch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_run_is_named_shows_progress_and_dashboard_and_exits_6_on_regressions(tmp_path):
    with prefect_test_harness(server_startup_timeout=120), WebhookReceiver() as hook:
        config = watch_config(tmp_path, hook.url)
        # The previous report: the same detector and corpora, perfectly separated (generated
        # scores), so this run's every cell is worse beyond the CI.
        better = make_scores(detectors=("lr",), datasets=DATASETS, separation={("lr", d): 40.0 for d in DATASETS})
        write_scores(better, tmp_path / "better.parquet")
        reports = tmp_path / "work" / "reports"
        # The real commands in their own processes (their exit codes, their own logging), on the harness's server.
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(ROOT)}
        addgp = [sys.executable, "-m", "flows.cli"]
        report = ["report", str(tmp_path / "better.parquet"), "--reports-root", str(reports), "--run-id", "previous"]
        previous = subprocess.run(addgp + report, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert previous.returncode == 0, previous.stdout + previous.stderr

        run = ["run", str(config), "--run-id", "second"]
        result = subprocess.run(addgp + run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == EXIT_REGRESSIONS, result.stdout + result.stderr
        assert "regression(s) against the previous report" in result.stderr
        assert (reports / "second" / "index.html").is_file(), "the report is published before the exit code"
        comparison = json.loads((reports / "second" / "metrics.json").read_text())["comparison"]
        assert comparison["status"] == "regressions" and comparison["previous_run_id"] == "previous"

        with get_client(sync_client=True) as client:
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["tinywatch/second"]))
            )
            assert len(flow_runs) == 1, "the flow run is named <config>/<run id>"
            flow_run = flow_runs[0]
            task_names = {
                t.name for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run.id]}))
            }
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
            artifacts = client.read_artifacts()
            # The Prefect event an automation triggers on (the server stores events in batches).
            wanted = EventFilter(event=EventNameFilter(name=["addgp.run.regressions"]))
            wait_for(lambda: client.read_events(wanted, limit=50).events, 60, "the addgp.run.regressions event")
            events = client.read_events(wanted, limit=50).events

    assert {
        "ingest[demo_studio]",
        "ingest[demo_phone]",
        "embed[tiny-random×demo_studio,demo_phone]",
        "train[lr]",
        "evaluate[lr×demo_studio,demo_phone]",
        "report[tinywatch/second]",
    } <= task_names, task_names

    messages = [log.message for log in logs]
    ingest_lines = [m for m in messages if m.startswith("ingest demo_studio: ")]
    assert ingest_lines and ingest_lines[-1].startswith("ingest demo_studio: 48/48 files done in"), ingest_lines
    embed_lines = [m for m in messages if m.startswith("embed tiny-random: ")]
    assert any("%), ETA " in m for m in embed_lines), embed_lines
    assert embed_lines[-1].split(": ", 1)[1].startswith("96/96 files"), embed_lines
    dashboard = [m for m in messages if m.startswith("Dask dashboard: http://127.0.0.1:")]
    dashboard_artifacts = sorted(
        (a for a in artifacts if a.key == "addgp-tinywatch-dask-dashboard"), key=lambda a: a.created
    )
    if importlib.util.find_spec("bokeh") is None:  # the lock's case: no dashboard, so no (dead) link anywhere
        assert not dashboard and not dashboard_artifacts, (dashboard, dashboard_artifacts)
        assert any(m.startswith("no Dask dashboard for scheduler tcp://127.0.0.1:") for m in messages), messages
    else:  # linked while the cluster lives, then replaced by a note that it closed
        assert len(dashboard) == 1, messages
        link = dashboard[0].split()[2]
        assert [f"]({link})" in str(a.data) for a in dashboard_artifacts] == [True, False], dashboard_artifacts
    assert any("regression(s) against previous" in m for m in messages)

    assert [e.resource.id for e in events] == ["addgp.run.second"]
    assert events[0].payload["regressions"] == comparison["regressions"]
    assert len(hook.bodies) == 1, hook.bodies
    body = hook.bodies[0]
    assert body["event"] == "regressions" and body["run_id"] == "second" and body["config"] == "tinywatch"
    assert body["report"].endswith("/second/index.html") and body["previous_run_id"] == "previous"
    assert body["regressions"] == comparison["regressions"]


def test_a_night_is_named_by_the_run_id_it_takes_under_its_lock_and_a_promotion_is_announced(tmp_path):
    from prefect import flow

    from addgp.config import NotifyConfig
    from addgp.nightly import ChampionRecord
    from flows.nightly import nightly_flow
    from tasks.report.task import promotion_task

    @flow
    def announce(url: str) -> None:
        champion = ChampionRecord("/w/models/lr/v2", version=2, run_id="n1")
        promotion_task(NotifyConfig(webhook_url=url, on=["promotion"]), "night", "n1", str(tmp_path), champion)

    with prefect_test_harness(server_startup_timeout=120), WebhookReceiver() as hook:
        outcome = nightly_flow(str(nightly_config(tmp_path)))  # a quiet first night: nothing in the inbox
        run_id = Path(outcome.report).name
        announce(hook.url)
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"night/{run_id}"]))
            )
            assert len(runs) == 1, f"no flow run named night/{run_id}"
            tasks = {t.name for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [runs[0].id]}))}
    assert outcome.nothing_new and run_id.endswith("-night-nightly")
    assert {"ingest[inbox]", "ingest[demo_studio]", "open-night[lr]", f"nightly-report[{run_id}]"} <= tasks, tasks
    assert hook.bodies == [
        {
            "event": "promotion",
            "config": "night",
            "run_id": "n1",
            "report": f"file://{tmp_path}/index.html",
            "champion": {"model_path": "/w/models/lr/v2", "version": 2, "run_id": "n1", "eer": None},
        }
    ]
