"""What a person can watch, piece by piece: the progress seam (tqdm bar or log lines), the
run and task names, the Dask dashboard link, the regression webhook and its config key.
The whole of it on a real `addgp run` is tests/test_watch_pipeline.py.

Prefect (`from prefect import flow`, which sets up logging) is imported before any test runs,
so caplog's handler is not replaced by Prefect's logging set-up mid-test."""

from __future__ import annotations

import http.server
import importlib.util
import io
import logging
import threading

import pandas as pd
import pytest
import yaml
from distributed import LocalCluster
from helpers import WebhookReceiver, free_loopback_port, write_audio
from prefect import flow
from tqdm.auto import tqdm

import flows.cluster
from addgp.config import ClusterConfig, ConfigError, NotifyConfig, load_config
from addgp.progress import LogProgress, format_duration, progress_bar, progress_to_log, progress_to_run_log
from addgp.runs import listing, manifest_datasets, task_label
from tasks.report.notify import promotion_payload, regression_payload, send


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_reports_every_ten_percent_with_an_eta_then_the_total():
    clock, logger = Clock(), logging.getLogger("test.progress")
    lines: list[str] = []
    logger.info = lambda fmt, *args: lines.append(fmt % args)  # type: ignore[method-assign]
    bar = LogProgress(4000, "embed demo_eval", "row", logger, every_percent=10, every_s=3600, clock=clock)
    for _ in range(4000):
        clock.now += 0.01  # 40 s of work in all
        bar.update(1)
    bar.close()
    bar.close()  # once only
    assert len(lines) == 10, lines  # 10 %, …, 90 %, then the last line
    assert lines[2] == "embed demo_eval: 1,200/4,000 rows (30 %), ETA 28 s"
    assert lines[-1] == "embed demo_eval: 4,000/4,000 rows done in 40 s"


def test_log_progress_of_work_done_in_a_blink_is_one_line():
    clock, logger = Clock(), logging.getLogger("test.progress")
    lines: list[str] = []
    logger.info = lambda fmt, *args: lines.append(fmt % args)  # type: ignore[method-assign]
    with LogProgress(150, "ingest demo_phone", "file", logger, every_percent=10, clock=clock) as bar:
        for _ in range(150):
            clock.now += 0.0002  # 30 ms in all: every 10 % step is due, none is worth a line
            bar.update(1)
    assert lines == ["ingest demo_phone: 150/150 files done in 0 s"]


def test_log_progress_also_reports_after_every_s_seconds_of_slow_work():
    clock, logger = Clock(), logging.getLogger("test.progress")
    lines: list[str] = []
    logger.info = lambda fmt, *args: lines.append(fmt % args)  # type: ignore[method-assign]
    bar = LogProgress(1000, "ingest big", "file", logger, every_percent=50, every_s=60, clock=clock)
    for _ in range(300):
        clock.now += 1.0  # 1 s a file: the 50 % step is far, the minute is not
        bar.update(1)
    assert [line.split(" (")[0] for line in lines] == [
        "ingest big: 60/1,000 files",
        "ingest big: 120/1,000 files",
        "ingest big: 180/1,000 files",
        "ingest big: 240/1,000 files",
        "ingest big: 300/1,000 files",
    ]
    assert lines[0].endswith("(6 %), ETA 16 min")


def test_log_progress_uses_the_callers_own_account_of_the_work():
    clock, logger = Clock(), logging.getLogger("test.progress")
    lines: list[str] = []
    logger.info = lambda fmt, *args: lines.append(fmt % args)  # type: ignore[method-assign]
    bar = LogProgress(100, "embed tiny", "audio-s", logger, every_percent=50, clock=clock)
    bar.done = "3/6 files, audio 00:50/01:40"
    clock.now += 10
    bar.update(50)
    assert lines == ["embed tiny: 3/6 files, audio 00:50/01:40 (50 %), ETA 10 s"]


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (89, "89 s"), (125, "2 min"), (3900, "1 h 05 min")])
def test_durations_read_like_a_person_writes_them(seconds, text):
    assert format_duration(seconds) == text


def test_progress_bar_is_tqdm_on_a_terminal_and_log_lines_inside_progress_to_log(caplog):
    outside = progress_bar(total=3, desc="x", unit="file", disable=True)
    assert isinstance(outside, tqdm)
    with progress_to_log(logging.getLogger("test.sink"), every_percent=50):
        inside = progress_bar(total=3, desc="x", unit="file", leave=False)
        assert isinstance(inside, LogProgress)
        assert isinstance(progress_bar(total=3, desc="x", unit="file", disable=True), tqdm), "disable still wins"
    assert isinstance(progress_bar(total=3, desc="x", unit="file", disable=True), tqdm)
    with (
        pytest.raises(ValueError, match="0 < percent"),
        progress_to_log(logging.getLogger("test.sink"), every_percent=0),
    ):
        pass


def test_outside_a_prefect_run_the_task_wrappers_keep_the_terminal_bar():
    """A task's ``.fn`` called directly (tests, notebooks) has no run logger: tqdm as before."""
    with progress_to_run_log():
        assert isinstance(progress_bar(total=1, desc="x", unit="file", file=io.StringIO()), tqdm)


def test_the_ingest_stage_logs_its_progress_inside_progress_to_log(tmp_path, caplog):
    """The seam on a real stage: the ingest adapter's probe reports to the given logger."""
    from tasks.ingest.registry import ingest_dataset

    rows = []
    for i in range(30):
        write_audio(tmp_path / "audio" / f"u{i}.wav", seconds=0.1, seed=i)
        rows.append({"utt_id": f"u{i}", "path": f"audio/u{i}.wav", "label": "bonafide" if i % 2 else "spoof"})
    pd.DataFrame(rows).to_csv(tmp_path / "protocol.csv", index=False)
    with (
        caplog.at_level(logging.INFO, logger="test.ingest"),
        progress_to_log(logging.getLogger("test.ingest"), every_percent=100, every_s=3600),
    ):
        result = ingest_dataset("protocol_csv", tmp_path, dataset="mine", workers=2)
    assert len(result.manifest) == 30
    lines = [r.getMessage() for r in caplog.records if r.name == "test.ingest"]
    assert lines and lines[-1].startswith("ingest mine: 30/30 files done in "), lines


def test_task_labels_name_the_stage_and_what_it_works_on():
    assert task_label("evaluate", ["lr", "gp"], ["demo_eval"]) == "evaluate[lr,gp×demo_eval]"
    assert task_label("train", "lr") == "train[lr]"
    assert listing([f"d{i}" for i in range(7)]) == "d0,d1,d2,+4"
    assert manifest_datasets(["/w/manifests/a.parquet", "s3://b/manifests/b@mp3_32k.parquet"]) == ["a", "b@mp3_32k"]


def test_an_external_schedulers_dashboard_is_linked_only_when_it_answers(caplog):
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with (
            caplog.at_level(logging.INFO, logger="flows.cluster"),
            flows.cluster.dask_cluster(ClusterConfig(address=cluster.scheduler_address)) as address,
        ):
            assert address == cluster.scheduler_address
        expected = cluster.dashboard_link
    assert expected.startswith("http://127.0.0.1:")
    if importlib.util.find_spec("bokeh") is None:  # the lock's case: the scheduler's /status page is a 404
        assert (
            f"no Dask dashboard for scheduler {cluster.scheduler_address}: {flows.cluster.NO_BOKEH}" in caplog.messages
        )
        assert not any(m.startswith("Dask dashboard:") for m in caplog.messages), caplog.messages
    else:
        assert f"Dask dashboard: {expected} (scheduler {cluster.scheduler_address})" in caplog.messages


def test_a_local_cluster_without_bokeh_publishes_no_dead_link(caplog):
    config = ClusterConfig(n_workers=1, threads_per_worker=1, memory_limit="1GiB")
    with caplog.at_level(logging.INFO, logger="flows.cluster"), flows.cluster.dask_cluster(config) as address:
        assert address.startswith("tcp://127.0.0.1:")
    if importlib.util.find_spec("bokeh") is None:
        assert [m for m in caplog.messages if "Dask dashboard" in m] == [
            f"no Dask dashboard for scheduler {address}: {flows.cluster.NO_BOKEH}"
        ]


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # http.server's name
        self.send_response(200 if self.path == "/status" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_dashboard_that_answers_is_linked_in_the_run_and_retired_when_its_cluster_stops(caplog):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live = f"http://127.0.0.1:{server.server_address[1]}/status"
    dead = f"http://127.0.0.1:{server.server_address[1]}/missing"

    @flow
    def watched() -> tuple[bool, bool]:
        published = flows.cluster.announce_dashboard(live, "tcp://sched:1", "watchme")
        flows.cluster.retire_dashboard("watchme", "tcp://sched:1")
        return published, flows.cluster.announce_dashboard(dead, "tcp://sched:1", "other")

    try:
        with prefect_test_harness(server_startup_timeout=180):
            published, dead_published = watched()
            with get_client(sync_client=True) as client:
                artifacts = [a for a in client.read_artifacts() if a.key == "addgp-watchme-dask-dashboard"]
                others = [a for a in client.read_artifacts() if a.key == "addgp-other-dask-dashboard"]
    finally:
        server.shutdown()
    assert published and not dead_published and not others
    first, latest = sorted(artifacts, key=lambda a: a.created)
    assert f"]({live})" in str(first.data), artifacts  # a link artifact: [text](link)
    assert "closed with its cluster" in str(latest.data) and live not in str(latest.data)


def test_an_unreachable_scheduler_gives_no_link_and_no_crash(caplog, monkeypatch):
    monkeypatch.setattr(flows.cluster, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    with (
        caplog.at_level(logging.INFO, logger="flows.cluster"),
        flows.cluster.dask_cluster(ClusterConfig(address=address)) as got,
    ):
        assert got == address
    assert f"no Dask dashboard link for scheduler {address} (it runs without one, or did not answer)" in caplog.messages


COMPARISON = {
    "previous_run_id": "r1",
    "regressions": [{"detector": "lr", "dataset": "noisy", "metric": "eer", "old": 0.05, "new": 0.2}],
}


def test_the_webhook_receives_the_regressions_json():
    logger = logging.getLogger("test.notify")
    payload = regression_payload("demo", "r2", "file:///w/reports/r2/index.html", COMPARISON)
    assert regression_payload("demo", "r2", "x", {"previous_run_id": "r1", "regressions": []}) is None
    with WebhookReceiver() as hook:
        assert send(NotifyConfig(webhook_url=hook.url), payload, logger)
        # promotions are sent only when `notify.on` lists them
        promotion = promotion_payload("demo", "n1", "file:///w/n1/index.html", {"version": "v3"})
        assert not send(NotifyConfig(webhook_url=hook.url), promotion, logger)
        assert send(NotifyConfig(webhook_url=hook.url, on=["promotion"]), promotion, logger)
    assert hook.bodies == [payload, promotion]
    assert hook.bodies[0]["regressions"][0]["new"] == COMPARISON["regressions"][0]["new"]


@pytest.mark.parametrize("status", [500, None])
def test_a_failed_notification_is_logged_never_raised(caplog, status):
    payload = regression_payload("demo", "r2", "file:///r2/index.html", COMPARISON)
    with caplog.at_level(logging.WARNING, logger="test.notify"):
        if status is None:  # nobody listens on the port
            url = f"http://127.0.0.1:{free_loopback_port()}/hook"
            assert not send(NotifyConfig(webhook_url=url, timeout_s=2), payload, logging.getLogger("test.notify"))
        else:
            with WebhookReceiver(status=status) as hook:
                url = hook.url
                assert not send(NotifyConfig(webhook_url=url), payload, logging.getLogger("test.notify"))
    assert any(f"the regressions POST to {url} failed" in m and "notify.webhook_url" in m for m in caplog.messages)


@pytest.mark.parametrize("url", ["hooks.example.org/addgp", "ftp://example.org/x", "http:///nohost"])
def test_a_webhook_url_that_is_no_http_url_fails_at_load(tmp_path, url):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "c",
                "workdir": str(tmp_path),
                "datasets": [{"name": "d", "adapter": "protocol_csv", "root": str(tmp_path)}],
                "encoder": {"id": "tiny-random"},
                "train": {"datasets": ["d"], "detectors": [{"name": "lr", "kind": "logreg"}]},
                "notify": {"webhook_url": url},
            }
        )
    )
    with pytest.raises(ConfigError, match=r"c\.yaml: notify\.webhook_url: .*not an http\(s\) URL"):
        load_config(path)
