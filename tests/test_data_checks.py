"""Content duplicates (sha256) within and across manifests, train/eval overlap as warning or error,
in `addgp datasets` and before training in the pipeline."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import write_tone
from typer.testing import CliRunner

from addgp.config import load_config
from flows.cli import app
from storage.manifests import write_manifest
from tasks.ingest.checks import CHECK_COLUMNS, DataCheckError, content_checks, enforce, pipeline_roles, problems
from tasks.ingest.common import finalize


def manifest(tmp_path, dataset: str, files: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """A probed manifest; ``files`` = (utt_id, split, label, seed): the same seed is the same bytes."""
    folder = tmp_path / "audio" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "utt_id": utt,
            "split": split,
            "label": label,
            "attack": None if label == "bonafide" else "A01",
            "speaker": None,
            "path": write_tone(folder / f"{utt}.flac", 0.3, seed=seed),
        }
        for utt, split, label, seed in files
    ]
    return finalize(dataset, rows, progress=False).manifest


@pytest.fixture
def corpora(tmp_path) -> dict[str, pd.DataFrame]:
    return {
        # "a": a training corpus with one clip shipped twice under two names (seed 1), and a
        # train clip (seed 2) that reappears in b's eval split.
        "a": manifest(
            tmp_path,
            "a",
            [
                ("a1", "train", "bonafide", 1),
                ("a1_copy", "train", "bonafide", 1),
                ("a2", "train", "spoof", 2),
                ("a3", "dev", "spoof", 3),
                ("a4", "eval", "spoof", 4),
            ],
        ),
        # "b": an eval corpus holding a's train clip (seed 2) and a's eval clip (seed 4) relabelled.
        "b": manifest(
            tmp_path, "b", [("b1", "eval", "spoof", 2), ("b2", "eval", "bonafide", 4), ("b3", "eval", "spoof", 5)]
        ),
    }


def by_check(checks: pd.DataFrame) -> dict[tuple[str, str], dict]:
    return {(r["check"], r["scope"]): r for r in checks.to_dict("records")}


def test_duplicates_within_and_across_manifests_with_counts_and_examples(corpora):
    checks = content_checks(
        pd.concat(corpora.values(), ignore_index=True),
        train=[("a", "train"), ("a", "dev")],
        evaluate=[("a", "eval"), ("b", "eval")],
    )
    assert list(checks.columns) == list(CHECK_COLUMNS)
    rows = by_check(checks)
    within = rows[("duplicate_audio", "a")]
    assert (within["count"], within["severity"]) == (1, "warning")
    assert within["examples"].startswith("train:a1 = train:a1_copy (sha256 ")
    assert (rows[("duplicate_audio", "b")]["count"], rows[("duplicate_audio", "b")]["severity"]) == (0, "info")
    overlap = rows[("train_eval_overlap", "a/train → b/eval")]
    assert (overlap["count"], overlap["severity"]) == (1, "warning")
    assert overlap["examples"].startswith("a/train:a2 = b/eval:b1 (sha256 ")
    shared = rows[("shared_audio", "a ∩ b")]
    assert (shared["count"], shared["severity"]) == (2, "info")  # seeds 2 and 4
    conflict = rows[("label_conflict", "all manifests")]
    assert (
        conflict["count"] == 1
        and "a/eval:a4(spoof)" in conflict["examples"]
        and "b/eval:b2(bonafide)" in conflict["examples"]
    )
    assert set(problems(checks, "warning")["check"]) == {"duplicate_audio", "train_eval_overlap", "label_conflict"}
    enforce(checks)  # warnings only: the run goes on


def test_overlap_configured_as_error_stops_with_the_key_to_change(corpora):
    frame = pd.concat(corpora.values(), ignore_index=True)
    checks = content_checks(frame, train=[("a", "train")], evaluate=[("b", "eval")], overlap="error")
    assert by_check(checks)[("train_eval_overlap", "a/train → b/eval")]["severity"] == "error"
    with pytest.raises(
        DataCheckError,
        match=r"(?s)cfg.yaml: data_checks.train_eval_overlap is 'error'.*a/train → b/eval\]: 1 — e\.g\. a/train:a2",
    ) as info:
        enforce(checks, "cfg.yaml")
    assert "data_checks.train_eval_overlap: warning" in str(info.value)


def test_no_overlap_is_one_info_row_and_unhashed_rows_are_named(corpora):
    checks = content_checks(corpora["a"], train=[("a", "train")], evaluate=[("a", "eval")], overlap="error")
    overlap = checks[checks["check"] == "train_eval_overlap"].to_dict("records")
    assert overlap == [
        {"check": "train_eval_overlap", "scope": "a/train → a/eval", "count": 0, "severity": "info", "examples": ""}
    ]
    enforce(checks)
    counted = corpora["b"].assign(sha256=None)  # a counting scan probes no audio
    rows = by_check(content_checks(counted))
    assert rows[("not_hashed", "b")]["count"] == 3 and rows[("duplicate_audio", "b")]["count"] == 0


def test_pipeline_roles_take_train_and_dev_splits_against_eval(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "c",
                "workdir": str(tmp_path / "w"),
                "datasets": [{"name": n, "adapter": "asvspoof2019_la", "root": str(tmp_path)} for n in ("x", "y")],
                "encoder": {"id": "tiny-random"},
                "train": {"datasets": ["x"], "detectors": [{"name": "lr", "kind": "logreg"}]},
                "data_checks": {"train_eval_overlap": "error"},
            }
        )
    )
    loaded = load_config(config)
    assert loaded.data_checks.train_eval_overlap == "error"
    assert pipeline_roles(loaded) == ([("x", "train"), ("x", "dev")], [("x", "eval"), ("y", "eval")])
    config.write_text(config.read_text().replace("train_eval_overlap: error", "train_eval_overlap: stop"))
    with pytest.raises(ValueError, match=r"data_checks.train_eval_overlap"):
        load_config(config)


def test_addgp_datasets_reports_duplicates_and_overlap(tmp_path, corpora):
    for name, frame in corpora.items():
        write_manifest(frame, tmp_path / "manifests" / f"{name}.parquet")
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"data_root: {tmp_path}\nmanifest_dir: {tmp_path / 'manifests'}\ncorpora:\n"
        "  - {name: a, adapter: in_the_wild, root: nowhere_a, splits: {train: [train], dev: [dev], eval: [eval]}}\n"
        "  - {name: b, adapter: in_the_wild, root: nowhere_b, splits: {eval: [eval]}}\n"
        "  - {name: c, adapter: in_the_wild, root: nowhere_c}\n"
    )
    runner = CliRunner()
    text = runner.invoke(app, ["datasets", "--registry", str(registry), "--no-scan"])
    assert text.exit_code == 0, text.output
    assert "Data checks" in text.output
    line = next(line for line in text.output.splitlines() if line.startswith("train_eval_overlap"))
    assert "a/train → b/eval" in line and " 1 " in line and "warning" in line and "a/train:a2 = b/eval:b1" in line
    as_json = runner.invoke(app, ["datasets", "--registry", str(registry), "--no-scan", "--json"])
    document = json.loads(as_json.stdout)
    assert [c["name"] for c in document["corpora"]] == ["a", "b", "c"]
    found = {(c["check"], c["scope"]): c["count"] for c in document["data_checks"]}
    assert found[("duplicate_audio", "a")] == 1 and found[("train_eval_overlap", "a/train → b/eval")] == 1


def test_near_duplicates_by_embedding_leave_exact_copies_to_the_sha256_check():
    from tasks.ingest.checks import near_duplicates

    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16)).astype(np.float32)
    X = np.vstack([base, base[1] + 0.01 * rng.standard_normal(16), base[2], rng.standard_normal(16)]).astype(np.float32)
    rows = pd.DataFrame(
        {
            "dataset": ["a"] * 5 + ["b"] * 3,
            "split": ["train"] * 5 + ["eval"] * 3,
            "utt_id": [f"a{i}" for i in range(5)] + ["b_reencoded", "b_copy", "b_other"],
            "sha256": ["h0", "h1", "h2", "h3", "h4", "x1", "h2", "x3"],
        }
    )
    checks = near_duplicates(rows, X, train=[("a", "train")], evaluate=[("b", "eval")], threshold=0.99)
    assert checks.to_dict("records") == [
        {
            "check": "near_duplicate_overlap",
            "scope": "a/train → b/eval",
            "count": 1,
            "severity": "warning",
            "examples": checks["examples"].iloc[0],
        }
    ]
    assert re.fullmatch(r"a/train:a1 ≈ b/eval:b_reencoded \(cos 0\.99\d\d\)", checks["examples"].iloc[0])
    # a block of one eval row at a time gives the same answer
    assert near_duplicates(
        rows, X, train=[("a", "train")], evaluate=[("b", "eval")], threshold=0.99, max_block_cells=1
    ).equals(checks)
    none = near_duplicates(rows, X, train=[("a", "train")], evaluate=[("b", "eval")], threshold=1.0).to_dict("records")
    assert none == [
        {
            "check": "near_duplicate_overlap",
            "scope": "a/train → b/eval",
            "count": 0,
            "severity": "info",
            "examples": "none at cosine ≥ 1.0",
        }
    ]


def test_near_duplicates_from_the_embedding_store(tmp_path):
    """A clip re-encoded with a little noise (other bytes) is found through the store's embeddings."""
    import soundfile as sf

    from tasks.embed.encoder import EncoderSpec, resolve_layer
    from tasks.embed.run import embed_manifest
    from tasks.ingest.checks import embedding_near_duplicates

    train = manifest(tmp_path, "a", [("a1", "train", "bonafide", 1), ("a2", "train", "spoof", 2)])
    original, rate = sf.read(train.loc[train["utt_id"] == "a2", "path"].iloc[0], dtype="float32")
    noisy = tmp_path / "noisy.flac"
    sf.write(noisy, original + 1e-4 * np.random.default_rng(0).standard_normal(len(original)).astype(np.float32), rate)
    evaluation = finalize(
        "b",
        [{"utt_id": "b1", "split": "eval", "label": "spoof", "attack": "A01", "speaker": None, "path": str(noisy)}],
        progress=False,
    ).manifest
    frame = pd.concat([train, evaluation], ignore_index=True)
    spec = EncoderSpec(id="tiny-random", layers=(-1,))
    embed_manifest(frame, spec, str(tmp_path / "store"), progress=False)
    found = embedding_near_duplicates(
        frame,
        str(tmp_path / "store"),
        encoder=spec.name,
        layer=resolve_layer(spec, -1),
        pooling="mean",
        crop_s=None,
        train=[("a", "train")],
        evaluate=[("b", "eval")],
        threshold=0.999,
    )
    assert found[["check", "scope", "count"]].to_dict("records") == [
        {"check": "near_duplicate_overlap", "scope": "a/train → b/eval", "count": 1}
    ]
    assert found["examples"].iloc[0].startswith("a/train:a2 ≈ b/eval:b1 (cos ")
