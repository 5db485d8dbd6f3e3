"""The environment is the locked one: every pin of locks/*.lock carries a hash, the lock covers
every requirement of pyproject.toml, and (in CI, on the machine it set up) every pin is
installed at exactly that version."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = (ROOT / "locks" / "requirements.lock", ROOT / "locks" / "torch-cpu.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.*?))?\s*\\?$")


def read_lock(path: Path) -> dict[str, dict]:
    """{canonical name: {"version", "hashes", "applies"}} of a pip requirements lock with hashes;
    ``applies`` is whether the pin's environment marker holds here (pip skips it otherwise)."""
    pins: dict[str, dict] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            marker = match.group(3)
            pins[current] = {
                "version": match.group(2),
                "hashes": 0,
                "applies": Marker(marker).evaluate() if marker else True,
            }
        elif current and line.strip().startswith("--hash=sha256:"):
            pins[current]["hashes"] += 1
        elif not line.startswith(" "):
            current = None
    return pins


@pytest.fixture(scope="module")
def locked() -> dict[str, dict]:
    pins: dict[str, dict] = {}
    for path in LOCKS:
        assert path.is_file(), f"{path} is missing: run `make lock`"
        pins.update(read_lock(path))
    return pins


def test_every_pin_has_a_hash(locked):
    assert len(locked) > 50  # the whole closure, not a handful of top-level names
    unhashed = sorted(name for name, pin in locked.items() if pin["hashes"] == 0)
    assert not unhashed, f"pins without --hash (pip --require-hashes refuses them): {unhashed}; run `make lock`"


# This one reads the machine, not the code: a developer's own environment (a shared venv, an
# editable install of a newer package) may differ from the lock on purpose. CI installs the
# locked environment on a fresh machine (.ci/run sets CI), and there it must match exactly.
@pytest.mark.skipif(not os.environ.get("CI"), reason="checks the installed environment; runs in CI (CI set)")
def test_installed_versions_are_exactly_the_locked_ones(locked):
    wrong = {}
    for name, pin in locked.items():
        if not pin["applies"]:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        # Version equality includes the local label: 2.13.0+cpu is not 2.13.0 (a CUDA build).
        if installed is None or Version(installed) != Version(pin["version"]):
            wrong[name] = {"locked": pin["version"], "installed": installed}
    assert not wrong, f"this environment is not the locked one (reinstall with `make setup`): {wrong}"


def test_lock_covers_every_requirement_of_pyproject(locked):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(Version(locked[name]["version"]), prereleases=True):
            problems.append(f"{requirement}: the lock pins {locked[name]['version']}")
    assert not problems, f"pyproject.toml changed after the lock was made; run `make lock`: {problems}"
