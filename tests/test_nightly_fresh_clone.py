"""configs/nightly.yaml on a fresh clone with the README's command only: no corpus, no inbox, no runs/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_nightly_demo_runs_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    (clone / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "nightly.yaml", clone / "configs" / "nightly.yaml")
    exe = shutil.which("addgp") or str(Path(sys.executable).parent / "addgp")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)  # Prefect's temporary local server, as on a new machine
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"  # its 20 s default is short on a busy 2-core CI box
    done = subprocess.run(
        [exe, "nightly", "configs/nightly.yaml"],
        check=False,
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("nothing new; report: ")
    report = Path(done.stdout.strip().split("report: ", 1)[1])
    assert report.is_file() and report.is_relative_to(clone / "runs" / "demo" / "reports" / "nightly")
    assert (clone / "runs" / "demo" / "inbox").is_dir() and not any((clone / "runs" / "demo" / "inbox").iterdir())
    assert (clone / "runs" / "demo" / "corpus" / "demo_studio").is_dir()
