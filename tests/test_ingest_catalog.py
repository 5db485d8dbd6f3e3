"""The corpus registry (configs/datasets.yaml), describe_registry, and configs/benchmark.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_audio

from addgp.config import load_config
from storage.manifests import rejects_path_for, write_manifest, write_rejects
from tasks.ingest.catalog import (
    RegistryError,
    default_registry_path,
    describe_registry,
    load_registry,
    render_registry,
)
from tasks.ingest.registry import ingest_dataset

REPO = Path(__file__).resolve().parents[1]


def test_shipped_registry_and_benchmark_validate():
    registry = load_registry(REPO / "configs" / "datasets.yaml")
    assert default_registry_path().name == "datasets.yaml"
    names = [c.name for c in registry.corpora]
    assert {
        "asvspoof2019_la",
        "asvspoof2021_la",
        "asvspoof2021_df",
        "in_the_wild",
        "fake_or_real",
        "odss",
        "timit_tts",
        "mlaad",
    } <= set(names)
    config = load_config(REPO / "configs" / "benchmark.yaml", check_paths=False)
    assert config.encoder.id == "facebook/wav2vec2-xls-r-300m"
    assert config.train.datasets == ["asvspoof2019_la"] and config.train.dev_splits == ["dev"]
    assert sorted(d.kind for d in config.train.detectors) == ["dkl_gp", "logreg"]
    assert len(config.eval_datasets) == 8 and set(config.eval_datasets) <= set(names)
    for dataset in config.datasets:  # every benchmark corpus uses the adapter the registry names for it
        assert registry.entry(dataset.name).adapter == dataset.adapter


def write_registry(tmp_path, body: str) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(body)
    return path


def build_itw(root: Path, n: int = 4) -> None:
    lines = ["file,speaker,label"] + [f"{i}.wav,s{i % 2},{'spoof' if i % 2 else 'bona-fide'}" for i in range(n)]
    for i in range(n):
        write_audio(root / f"{i}.wav")
    (root / "meta.csv").write_text("\n".join(lines) + "\nbroken\n")


def test_describe_registry_manifest_scan_missing_and_broken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_DATA", str(tmp_path / "corpora"))
    build_itw(tmp_path / "corpora" / "itw_scanned")
    build_itw(tmp_path / "corpora" / "itw_ingested", n=6)
    (tmp_path / "corpora" / "not_for").mkdir()
    registry = write_registry(
        tmp_path,
        """
data_root: ${MY_DATA}
manifest_dir: ${NOT_SET_ANYWHERE:-manifests}
corpora:
  - {name: itw_ingested, adapter: in_the_wild, root: itw_ingested, splits: {eval: [eval]}}
  - {name: itw_scanned, adapter: in_the_wild, root: itw_scanned}
  - {name: gone, adapter: asvspoof2019_la, root: nowhere}
  - {name: broken, adapter: fake_or_real, root: not_for}
  - {name: hub, adapter: hf, root: hf://someone/data}
""",
    )
    ingested = ingest_dataset(
        "in_the_wild", tmp_path / "corpora" / "itw_ingested", dataset="itw_ingested", progress=False
    )
    write_manifest(ingested.manifest, tmp_path / "manifests" / "itw_ingested.parquet")
    write_rejects(ingested.rejects, rejects_path_for(tmp_path / "manifests" / "itw_ingested.parquet"))

    rows = {r["name"]: r for r in describe_registry(registry)}
    a = rows["itw_ingested"]
    assert (a["counts_from"], a["rows"], a["on_disk"], a["manifest_exists"]) == ("manifest", 6, True, True)
    assert a["by_split"] == {"eval": {"bonafide": 3, "spoof": 3}} and a["by_label"] == {"bonafide": 3, "spoof": 3}
    assert (
        a["rejects"] == 1
        and a["hours"] == pytest.approx(6 * 0.2 / 3600, abs=1e-3)
        and a["splits"] == {"eval": ["eval"]}
    )
    b = rows["itw_scanned"]
    assert (b["counts_from"], b["rows"], b["manifest_exists"], b["hours"]) == ("scan", 4, False, None)
    assert b["reject_reasons"] == {"unparseable protocol line": 1} and "audio not opened" in b["note"]
    assert b["manifest"] == str(tmp_path / "manifests" / "itw_scanned.parquet")
    assert rows["gone"]["on_disk"] is False and rows["gone"]["note"].startswith("root not found")
    assert rows["broken"]["counts_from"] is None and rows["broken"]["note"].startswith("LayoutError")
    assert rows["hub"]["on_disk"] is False and "Hub" in rows["hub"]["note"]
    assert not (tmp_path / "manifests" / "itw_scanned.parquet").exists()  # scanning writes nothing

    quiet = {r["name"]: r for r in describe_registry(registry, scan=False)}
    assert quiet["itw_scanned"]["rows"] is None and quiet["itw_ingested"]["rows"] == 6
    table = render_registry(list(rows.values()))
    assert table.splitlines()[0].split()[:3] == ["name", "adapter", "on"] and "itw_scanned" in table

    loaded = load_registry(registry)
    corpus = loaded.entry("itw_scanned")
    assert (corpus.adapter, loaded.resolved_root(corpus), loaded.resolved_options(corpus)) == (
        "in_the_wild",
        str(tmp_path / "corpora" / "itw_scanned"),
        {},
    )


def test_registry_errors_name_the_file_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_VAR_FOR_TEST", raising=False)
    bad = write_registry(
        tmp_path, "corpora:\n  - {name: x, adapter: nope, root: r}\n  - {name: x, adapter: hf, root: r, colour: red}\n"
    )
    with pytest.raises(RegistryError) as info:
        load_registry(bad)
    text = str(info.value)
    assert "corpora.0.adapter" in text and "unknown adapter 'nope'" in text and "corpora.1.colour: unknown key" in text
    dup = write_registry(
        tmp_path, "corpora:\n  - {name: x, adapter: hf, root: r}\n  - {name: x, adapter: hf, root: s}\n"
    )
    with pytest.raises(RegistryError, match=r"corpus name\(s\) \['x'\] appear more than once"):
        load_registry(dup)
    env = write_registry(
        tmp_path, "data_root: ${UNSET_VAR_FOR_TEST}\ncorpora:\n  - {name: x, adapter: in_the_wild, root: r}\n"
    )
    with pytest.raises(RegistryError, match="UNSET_VAR_FOR_TEST is not set"):
        describe_registry(env)
    with pytest.raises(RegistryError, match="registry file not found"):
        load_registry(tmp_path / "missing.yaml")
