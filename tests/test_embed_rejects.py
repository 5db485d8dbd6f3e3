"""Issue 16, point 2: paths that mean the same file everywhere, rejects that do not poison the
store (transient vs permanent), and the rejects threshold (exit code 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import changed, run_migrate, write_tone
from prefect.states import Completed, Failed
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.common import EXIT_TOO_MANY_REJECTS, exit_code_of
from storage import embeddings as store
from storage.manifests import read_manifest, write_manifest
from storage.paths import OldFormatError
from tasks.embed.encoder import EncoderSpec
from tasks.embed.run import embed_manifest
from tasks.embed.summary import TooManyRejectsError
from tasks.embed.task import _retry_unless_rejects
from tasks.ingest.common import finalize

SPEC = EncoderSpec("tiny-random", layers=(-1,))
runner = CliRunner()


def rows(folder, n: int, prefix: str = "u") -> list[dict]:
    return [
        {
            "utt_id": f"{prefix}{i}",
            "split": "eval",
            "label": "spoof" if i % 2 else "bonafide",
            "attack": None,
            "speaker": None,
            "path": write_tone(folder / f"{prefix}{i}.wav", 0.5 + 0.1 * i, seed=i),
        }
        for i in range(n)
    ]


def test_ingest_from_a_relative_root_stores_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    candidates = rows(tmp_path / "corpus", 2)
    monkeypatch.chdir(tmp_path)
    relative = [{**r, "path": os.path.relpath(r["path"], tmp_path)} for r in candidates]
    assert not os.path.isabs(relative[0]["path"])
    manifest = finalize("rel", relative, progress=False).manifest
    assert list(manifest["path"]) == [str(tmp_path / "corpus" / f"u{i}.wav") for i in range(2)]


def test_an_old_manifest_with_relative_paths_is_refused_until_migrated(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    manifest = finalize("old", rows(tmp_path / "corpus", 2), progress=False).manifest
    old = manifest.assign(path=[os.path.relpath(p, tmp_path) for p in manifest["path"]])
    path = tmp_path / "old.parquet"
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), path)  # as earlier versions wrote it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OldFormatError, match=f"{path}: 2 relative audio path.*addgp migrate {tmp_path}"):
        read_manifest(path)
    code, summary, _ = run_migrate(tmp_path)  # relative to the current folder, as earlier readers resolved them
    assert code == 0 and changed(summary) == [
        f"{path}: 2 relative audio path(s) resolved against {tmp_path} (2 found there)"
    ]
    assert list(read_manifest(path)["path"]) == list(manifest["path"])
    # Writing a frame of relative paths stores them absolute.
    write_manifest(old, path)
    assert list(pd.read_parquet(path)["path"]) == list(manifest["path"])


def test_a_store_poisoned_by_an_old_version_heals_once_migrated(tmp_path):
    """Rejects written before kinds existed are refused until ``addgp migrate``; then the issue's
    'failed to decode … System error' of a file a worker could not open is transient (retried);
    a file that is not audio stays rejected."""
    manifest = finalize("old", rows(tmp_path, 3), progress=False).manifest
    root = str(tmp_path / "embeddings")
    old_schema = pa.schema([f for f in store.REJECTS_SCHEMA if f.name != "kind"])
    first, second = manifest.iloc[0], manifest.iloc[1]
    legacy = pd.DataFrame(
        [
            {
                **first[["dataset", "utt_id", "sha256", "path"]],
                "reason": "failed to decode: Error opening 'x': System error.",
            },
            {**second[["dataset", "utt_id", "sha256", "path"]], "reason": "failed to decode: Format not recognised."},
        ]
    )
    location = store.ShardLocation(root, store.encoder_slug(SPEC.name, SPEC.pooling, None), "old", "legacy")
    os.makedirs(os.path.dirname(location.rejects_path))
    pq.write_table(pa.Table.from_pandas(legacy, schema=old_schema, preserve_index=False), location.rejects_path)
    with pytest.raises(OldFormatError, match=f"{location.rejects_path}: embed rejects without a kind"):
        embed_manifest(manifest, SPEC, root, progress=False)
    assert run_migrate(tmp_path)[0] == 0
    assert store.read_rejects(root).set_index("utt_id")["kind"].to_dict() == {
        first["utt_id"]: "transient",
        second["utt_id"]: "permanent",
    }
    summary = embed_manifest(manifest, SPEC, root, progress=False)
    assert summary.utterances_embedded == 2  # the transient one and the one never tried
    assert summary.rejects_by_dataset["old"] == {
        "rows": 3,
        "rejected": 1,
        "transient": 0,
        "permanent": 1,
        "commonest_reason": "failed to decode",
        "commonest_count": 1,
        "commonest_kind": "permanent",
        "example": f"{second['path']}: failed to decode: Format not recognised.",
    }
    code, summary, _ = run_migrate(tmp_path)
    assert code == 0 and changed(summary) == [], "the rejects embed wrote are current: nothing to migrate"


def test_check_rejects_names_dataset_count_reason_and_fix(tmp_path):
    manifest = finalize("many", rows(tmp_path, 4), progress=False).manifest
    for path in manifest["path"].iloc[:2]:
        os.remove(path)
    summary = embed_manifest(manifest, SPEC, str(tmp_path / "store"), progress=False)
    assert summary.utterances_embedded == 2  # nothing embeddable is lost
    summary.check_rejects(0.5)  # 2 of 4 is not over one half
    with pytest.raises(TooManyRejectsError) as caught:
        summary.check_rejects(0.49)
    message = str(caught.value)
    assert "dataset many: 2 of 4 rows not embedded (50.0% > embed.max_reject_fraction 0.49" in message
    assert "'audio file missing' (2 rows" in message and "re-run (transient rejects are tried again)" in message
    assert str(tmp_path / "store") in message
    assert exit_code_of(caught.value) == EXIT_TOO_MANY_REJECTS == 7


def test_embed_task_is_not_retried_for_too_many_rejects():
    assert not _retry_unless_rejects(None, None, Failed(data=TooManyRejectsError("dataset x: …")))
    assert _retry_unless_rejects(None, None, Failed(data=OSError("worker lost")))
    assert _retry_unless_rejects(None, None, Completed(data={}))


def test_cli_embed_exits_7_after_writing_and_0_once_the_files_are_back(tmp_path):
    manifest = finalize("cli", rows(tmp_path, 4), progress=False).manifest
    path = tmp_path / "m.parquet"
    write_manifest(manifest, path)
    missing = manifest["path"].iloc[0]
    kept = Path(missing).read_bytes()
    os.remove(missing)
    args = ["embed", str(path), "--encoder", "tiny-random", "--store", str(tmp_path / "s")]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 7, failed.output
    assert json.loads(failed.stdout)["utterances_embedded"] == 3
    assert "dataset cli: 1 of 4 rows not embedded" in failed.stderr and "audio file missing" in failed.stderr
    assert runner.invoke(app, [*args, "--max-reject-fraction", "0.25"]).exit_code == 0
    with open(missing, "wb") as handle:
        handle.write(kept)
    healed = runner.invoke(app, args)
    assert healed.exit_code == 0, healed.output
    assert json.loads(healed.stdout)["utterances_embedded"] == 1
    assert json.loads(healed.stdout)["rejects_by_dataset"]["cli"]["rejected"] == 0
