"""Every config error stops `addgp run` / `addgp nightly` at load, before a server, a cluster or an
ingest starts: exit 2 naming the file and the key (3 for an encoder folder not on this machine),
and nothing is written, least of all outside the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from storage.workspace import Workspace

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
runner = CliRunner()


def config_with(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(DEMO.read_text())
    raw["workdir"] = str(tmp_path / "work")
    raw["demo_corpus"]["root"] = str(tmp_path / "corpus")
    for d in raw["datasets"]:
        d["root"] = str(tmp_path / "corpus" / d["name"])
    change(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def set_in(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        raw = raw[int(key)] if key.isdigit() else raw[key]
    raw[last] = value


CASES = [
    (
        "unknown adapter",
        "datasets.0.adapter",
        "asvspoof2077",
        2,
        "datasets.0.adapter: unknown dataset adapter 'asvspoof2077'",
    ),
    (
        "unknown adapter option",
        "datasets.0.options",
        {"keys_rot": "/x"},
        2,
        "datasets.0.options: adapter 'asvspoof2019_la' has no option(s) ['keys_rot']",
    ),
    (
        "adapter option of the wrong type",
        "datasets.0.options",
        {"workers": "lots"},
        2,
        "datasets.0.options: adapter 'asvspoof2019_la', option workers: expected an integer",
    ),
    (
        "missing local encoder folder",
        "encoder.id",
        "/nonexistent/xlsr-300m",
        3,
        "encoder.id: no checkpoint folder /nonexistent/xlsr-300m",
    ),
    ("config name with a slash", "name", "team/demo", 2, "name: name 'team/demo' contains '/'"),
    (
        "memory limit that is no amount",
        "cluster.memory_limit",
        "lots",
        2,
        "cluster.memory_limit: 'lots' is not an amount of memory",
    ),
    (
        "dataset name that climbs out",
        "datasets.0.name",
        "../../escaped",
        2,
        "datasets.0.name: name '../../escaped' contains '/'",
    ),
    (
        "detector name that climbs out",
        "train.detectors.0.name",
        "../lr",
        2,
        "train.detectors.0.name: name '../lr' contains '/'",
    ),
]


@pytest.mark.parametrize("what, key, value, code, message", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("verb", ["run", "nightly"])
def test_config_error_exits_at_load(tmp_path, monkeypatch, verb, what, key, value, code, message):
    monkeypatch.chdir(tmp_path)

    def change(raw):
        set_in(raw, key, value)
        if verb == "nightly":  # the demo config plus an inbox and a nightly section
            (tmp_path / "inbox").mkdir(exist_ok=True)
            raw["datasets"].append({"name": "inbox", "adapter": "inbox", "root": str(tmp_path / "inbox")})
            raw["nightly"] = {"inbox": "inbox", "detector": raw["train"]["detectors"][0]["name"].replace("../", "")}

    path = config_with(tmp_path, change)
    result = runner.invoke(app, [verb, str(path)])
    assert result.exit_code == code, result.output
    assert str(path) in result.output and message in result.output, result.output
    assert not (tmp_path / "work").exists() and not (tmp_path / "corpus").exists(), "something ran before the check"
    assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name.startswith("escaped")) == []


def test_workspace_never_maps_a_name_outside_it(tmp_path):
    workspace = Workspace.at(tmp_path / "work")
    assert workspace.manifest("demo_studio") == f"{tmp_path}/work/manifests/demo_studio.parquet"
    assert workspace.manifest("名前 [v2]").endswith("/manifests/名前 [v2].parquet")
    for name in ("../../escaped", "a/b", ".hidden", "..", ""):
        with pytest.raises(ValueError, match="cannot name a manifest file"):
            workspace.manifest(name)
