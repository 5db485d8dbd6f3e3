"""What an `addgp` command shows on its terminal, run as a person runs it (a subprocess, its own
logging): it exits soon after its last line on Prefect's temporary server with no API error,
Dask's chatter stays off the terminal, and expected failures are one `error:` line with the
documented exit code - their traceback only under `--debug`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import drop_new_generator_batch, nightly_config

from addgp.config import load_config
from flows.cli.common import EXIT_BAD_INPUT, EXIT_BUSY, EXIT_UNAVAILABLE
from storage import champions

ROOT = Path(__file__).resolve().parents[1]
# Loose on purpose (a loaded 2-core machine): the fault was 45-80 s of retries against a stopped server.
EXIT_AFTER_LAST_LINE_S = 20


@dataclass
class Console:
    returncode: int
    lines: list[str]
    seconds_after_last_line: float

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith("error: ")]


def addgp(args: list[str], env: dict, cwd: Path, timeout: float = 900) -> Console:
    """Run `addgp ARGS` (this worktree's), stdout and stderr as one terminal, timing its exit after its last line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, last = [], time.monotonic()
    deadline = last + timeout
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            last = time.monotonic()
            assert last < deadline, "\n".join(lines[-40:])
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return Console(process.returncode, lines, time.monotonic() - last)


def temporary_server_env(tmp_path: Path) -> dict:
    """No PREFECT_API_URL: each command starts (and stops) Prefect's temporary server."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "ADDGP_DEBUG")}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def tiny_config(folder: Path, phone_root: str = "demo_phone") -> Path:
    config = {
        "name": "tiny",
        "workdir": str(folder / "work"),
        "demo_corpus": {
            "root": str(folder / "corpus"),
            "seed": 3,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 20, "dev": 8, "eval": 12},
        },
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_studio")},
            {"name": "demo_phone", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / phone_root)},
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 30},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "2GiB"},
        "train": {"datasets": ["demo_studio"], "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"datasets": ["demo_studio", "demo_phone"], "n_boot": 20},
    }
    path = folder / f"tiny-{phone_root}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_one_line_error(console: Console, code: int, *fragments: str) -> None:
    assert console.returncode == code, console.text[-4000:]
    errors = console.errors()
    assert len(errors) == 1 and all(f in errors[0] for f in fragments), console.text[-4000:]
    assert "Traceback" not in console.text and "Finished in state Failed" not in console.text, console.text[-4000:]
    assert "Error logging to API" not in console.text, console.text[-4000:]


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_on_the_temporary_server_exits_after_its_last_line_and_a_mistyped_root_is_one_line(tmp_path):
    env = temporary_server_env(tmp_path)
    done = addgp(["run", str(tiny_config(tmp_path))], env, tmp_path)
    assert done.returncode == 0, done.text[-4000:]
    assert done.lines[0].startswith("addgp run: "), done.lines[
        :3
    ]  # the command's own first line, before any import of the flows
    assert done.lines[-1].startswith("report: "), done.lines[-5:]
    assert done.seconds_after_last_line < EXIT_AFTER_LAST_LINE_S, done.seconds_after_last_line
    assert "Error logging to API" not in done.text and "Traceback" not in done.text, done.text[-4000:]
    # Dask's own INFO/WARNING lines stay off the terminal (scheduler start/stop, the proxy hint).
    chatter = [line for line in done.lines if "distributed." in line or "jupyter-server-proxy" in line]
    assert not chatter, chatter

    # The docs' promise for a mistyped dataset root under demo_corpus.root: exit 2, one line naming the path and the dataset.
    typo = addgp(["run", str(tiny_config(tmp_path, phone_root="demo_phnoe"))], env, tmp_path)
    assert_one_line_error(
        typo, EXIT_BAD_INPUT, str(tmp_path / "corpus" / "demo_phnoe"), "is not a directory", "dataset 'demo_phone'"
    )
    assert typo.seconds_after_last_line < EXIT_AFTER_LAST_LINE_S, typo.seconds_after_last_line


@pytest.mark.integration
@pytest.mark.slow
def test_known_nightly_failures_are_one_line_with_their_code_and_debug_adds_the_traceback(tmp_path):
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    config = nightly_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["nightly"]["wait_for_lock_s"] = 0
    config.write_text(yaml.safe_dump(raw))
    state = load_config(config).workdir / "state"
    nightly = ["nightly", str(config)]
    with prefect_test_harness(server_startup_timeout=180):
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
        env.pop("ADDGP_DEBUG", None)

        # Another night holds the lock: exit 4, its message only.
        with champions.exclusive_run(state, "nightly"):
            busy = addgp(nightly, env, tmp_path)
        assert_one_line_error(busy, EXIT_BUSY, "another nightly run is in progress")

        # State files that are not JSON: exit 2 naming the file.
        state.mkdir(parents=True, exist_ok=True)
        for name in ("champion-lr.json", "inbox_batches.json"):
            (state / name).write_text("{not json")
            damaged = addgp(nightly, env, tmp_path)
            assert_one_line_error(damaged, EXIT_BAD_INPUT, str(state / name))
            (state / name).unlink()

        # The champion's model folder is gone: exit 3 naming it; --debug adds the traceback.
        (state / "champion-lr.json").write_text(
            json.dumps({"current": {"model_path": str(tmp_path / "gone" / "lr" / "v1"), "version": 1, "eer": None}})
        )
        drop_new_generator_batch(tmp_path)
        missing = addgp(nightly, env, tmp_path)
        assert_one_line_error(missing, EXIT_UNAVAILABLE, str(tmp_path / "gone" / "lr" / "v1"))
        debug = addgp(["--debug", *nightly], env, tmp_path)
    assert debug.returncode == EXIT_UNAVAILABLE and len(debug.errors()) == 1, debug.text[-4000:]
    assert "Traceback" in debug.text and "ChampionMissingError" in debug.text, debug.text[-4000:]


HEAVY = ("torch", "transformers", "prefect", "dask", "distributed", "sklearn", "gpytorch")
IMPORTS_OF = """
import json, sys
from flows.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "verb", [["--help"], ["metrics", "--help"], ["metrics", "SCORES"], ["export-scores", "--help"]]
)
def test_light_verbs_import_no_torch_prefect_or_dask(tmp_path, verb):
    """The rule every verb follows: heavy imports inside the verb's body, so a verb pays only for what it uses."""
    scores = tmp_path / "scores.csv"
    scores.write_text("score,label\n" + "".join(f"{i / 10},{'bonafide' if i % 2 else 'spoof'}\n" for i in range(20)))
    args = [str(scores) if a == "SCORES" else a for a in verb]
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF.format(heavy=HEAVY), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [], done.stdout


def test_every_verbs_help_ends_with_the_exit_codes_and_is_never_cut():
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert "Exit codes (every verb):" in top.output and "--debug" in top.output
    verbs = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert len(verbs) >= 14, verbs
    for verb in verbs:
        result = runner.invoke(app, [verb, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        assert "Exit codes: 0 ok, 2 bad input" in " ".join(result.output.split()), (verb, result.output)
    report = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "80"})
    assert "REPORTS_ROOT/RUN_ID" in report.output and "--no-fail-on-regression" in report.output
    assert "…" not in report.output, report.output


def test_a_list_option_is_repeatable_or_comma_separated(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.cli.common import split_values

    assert split_values(["dev", "eval"]) == split_values(["dev,eval"]) == split_values("dev, eval") == ["dev", "eval"]
    assert split_values([""]) == []  # `--dev-splits ''`: none
    runner = CliRunner()
    sizes = ["--train", "2", "--dev", "1", "--eval", "2"]
    repeated = runner.invoke(
        app, ["demo-data", str(tmp_path / "a"), "--conditions", "studio", "--conditions", "far", *sizes]
    )
    commas = runner.invoke(app, ["demo-data", str(tmp_path / "b"), "--conditions", "studio,far", *sizes])
    assert repeated.exit_code == commas.exit_code == 0, repeated.output + commas.output
    assert [line.split("\t")[0] for line in repeated.stdout.split("\n") if line] == ["demo_studio", "demo_far"]
    assert [line.split("\t")[0] for line in commas.stdout.split("\n") if line] == ["demo_studio", "demo_far"]


def test_an_expected_error_is_one_line_and_debug_adds_its_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworkdir: w\nencoder: {id: tiny-random}\nnot_a_key: 1\n")
    env = {**temporary_server_env(tmp_path), "PYTHONPATH": str(ROOT)}
    plain = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(bad)], env=env, capture_output=True, text=True
    )
    assert plain.returncode == EXIT_BAD_INPUT and "Traceback" not in plain.stderr, plain.stderr
    assert [line for line in plain.stderr.splitlines() if line.startswith("error: ")], plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "flows.cli", "-v", "run", str(bad)], env=env, capture_output=True, text=True
    )
    assert debug.returncode == EXIT_BAD_INPUT and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


LATE_LOG = """
import datetime, time
from prefect import flow
from prefect.context import FlowRunContext
from prefect.logging.handlers import APILogWorker
from flows.cli.server import prefect_api

@flow
def short() -> str:
    return str(FlowRunContext.get().flow_run.id)

with prefect_api():
    run_id = short()
    # A record still queued for the API when the command's work ends: what a loaded machine leaves
    # behind when Prefect's own end-of-flow flush times out. It must reach the server before it stops.
    APILogWorker.instance().send({
        "name": "late", "level": 20, "message": "queued at the end", "flow_run_id": run_id, "task_run_id": None,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    })
print("done", flush=True)
"""


@pytest.mark.integration
def test_logs_still_queued_when_the_work_ends_reach_the_temporary_server_before_it_stops(tmp_path):
    env = {**temporary_server_env(tmp_path), "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", LATE_LOG], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output, done_at = [], None
    for line in process.stdout:
        output.append(line)
        if line.strip() == "done":
            done_at = time.monotonic()
    process.wait(timeout=300)
    text = "".join(output)
    assert process.returncode == 0 and done_at is not None, text[-3000:]
    assert "Error logging to API" not in text, text[-3000:]
    assert time.monotonic() - done_at < EXIT_AFTER_LAST_LINE_S, (time.monotonic() - done_at, time.monotonic() - start)
