"""The package layout: every source file of the package folders ships in the wheel, under one name.

Packages are found by setuptools (pyproject `packages.find`), not listed by hand, so a new
sub-package that lacks an ``__init__.py`` or sits outside the include patterns would import
fine from the repo root and be missing from the wheel (and from the container image, which
runs ``pip install .``). Building the real wheel is the only check that cannot drift.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("addgp", "tasks", "storage", "flows", "configs")


def _source_files() -> set[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGE_FOLDERS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {path for path in tracked if path.endswith((".py", ".yaml", ".j2", ".css")) and (REPO / path).exists()}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    # Build from a copy so the checkout gets no build/ or egg-info folders.
    src = tmp_path_factory.mktemp("src")
    for name in (*PACKAGE_FOLDERS, "pyproject.toml", "README.md"):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (wheel,) = out.glob("addgp-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_every_source_file_of_the_package_folders_is_in_the_wheel(wheel_names):
    missing = sorted(_source_files() - wheel_names)
    assert not missing, f"in the repo but not in the wheel (missing __init__.py or package data?): {missing}"


def test_the_wheel_installs_only_the_package_folders(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == set(PACKAGE_FOLDERS)


def test_each_source_file_has_one_module_name():
    """From the repo root a file imports under its path only (no second name through a package-dir map)."""
    import tasks.ingest.common as by_path

    assert Path(by_path.__file__).resolve() == REPO / "tasks" / "ingest" / "common.py"
    assert by_path.__name__ == "tasks.ingest.common"
    assert "addgp.tasks" not in sys.modules
