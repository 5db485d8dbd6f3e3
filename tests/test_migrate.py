"""`addgp migrate` (issue 24 item 7): one workdir holding a file of every earlier format, generated
here as those versions wrote it. Each reader refuses its old file with one error naming the file
and the command; a dry run lists every change and changes nothing; the migration makes the
workdir read with the current code; a second migration changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import changed, run_migrate, write_tone
from test_faults_models import CARD, _edit_card, _fitted
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.common import EXIT_BAD_INPUT, EXIT_BUSY, exit_code_of
from storage import champions
from storage import embeddings as store
from storage.inbox_ledger import ledger_path, new_inbox_batches, read_ledger
from storage.manifests import (
    find_rejects,
    read_manifest,
    read_manifests,
    rejects_path_for,
    write_manifest,
    write_rejects,
)
from storage.models import FORMAT, card_digest, read_card, save_model
from storage.paths import OldFormatError
from tasks.ingest.common import finalize
from tasks.report.inventory import run_inventory
from tasks.train.detectors import load_detector


def _spec():
    from tasks.embed.encoder import EncoderSpec

    return EncoderSpec("tiny-random", layers=(-1,))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def old_workdir(tmp_path: Path) -> tuple[Path, dict]:
    """A workdir of every earlier format; returns it and what the tests need to know of it."""
    work = tmp_path / "work"
    manifests = work / "manifests"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [
        {"utt_id": f"u{i}", "split": "eval", "label": ("spoof", "bonafide")[i % 2], "attack": None, "speaker": None}
        | {"path": write_tone(corpus / f"u{i}.wav", 0.5, seed=i)}
        for i in range(3)
    ]
    manifest = finalize("alpha", rows, progress=False).manifest
    write_manifest(manifest, manifests / "alpha.parquet")
    # Rejects beside the manifest.
    rejected = pd.DataFrame({"dataset": ["alpha"], "source": ["p.txt:3"], "utt_id": [None], "reason": ["bad line"]})
    write_rejects(rejected, manifests / "alpha.rejects.parquet")
    # A manifest with audio paths relative to the folder it was ingested from (tmp_path).
    relative = manifest.assign(dataset="beta", path=[os.path.relpath(p, tmp_path) for p in manifest["path"]])
    pq.write_table(pa.Table.from_pandas(relative, preserve_index=False), manifests / "beta.parquet")
    # Embed rejects without a kind: a file a worker could not open, and one that is not audio.
    first, second = manifest.iloc[0], manifest.iloc[1]
    unclassed = pd.DataFrame(
        [
            {
                **first[["dataset", "utt_id", "sha256", "path"]],
                "reason": "failed to decode: Error opening 'x': System error.",
            },
            {**second[["dataset", "utt_id", "sha256", "path"]], "reason": "failed to decode: Format not recognised."},
        ]
    )
    slug = store.encoder_slug(_spec().name, _spec().pooling, None)
    location = store.ShardLocation(str(work / "embeddings"), slug, "alpha", "old")
    os.makedirs(os.path.dirname(location.rejects_path))
    old_schema = pa.schema([f for f in store.REJECTS_SCHEMA if f.name != "kind"])
    pq.write_table(pa.Table.from_pandas(unclassed, schema=old_schema, preserve_index=False), location.rejects_path)
    # A model card from before the digest.
    ref = save_model(work / "models", "lr", _fitted(4), CARD)
    _edit_card(Path(ref.path), lambda c: (c.pop("digest"), c.update(format="addgp-model/1")))
    champions.promote(work / "state", "lr", {"model_path": ref.path, "version": 1, "eer": None})
    # An inbox ledger of version 1: one list for every nightly.
    batch = {"created_at": "2026-12-01T00:00:00Z", "n_files": 1, "n_bonafide": 0, "n_spoof": 1, "hours": 0.0003}
    batches = [{"batch_id": b, "folder": b, **batch} for b in ("b1", "b2")]
    ledger = {"version": 1, "dataset": "inbox", "files": {}, "batches": batches, "consumers": {"nightly": ["b1"]}}
    Path(ledger_path(work / "state")).write_text(json.dumps(ledger))
    # A nightly report in the shared folder, its detector named by its champion's model folder.
    report = work / "reports" / "nightly" / "20261201T020000Z-nightly"
    report.mkdir(parents=True)
    (report / "metrics.json").write_text(json.dumps({"champion": {"model_path": ref.path}, "decision": None}))
    (report.parent / "LATEST").write_text(report.name)
    return work, {"manifest": manifest, "location": location, "model": ref.path, "report": report}


def _refused(call, path) -> str:
    with pytest.raises(OldFormatError) as error:
        call()
    message = str(error.value)
    assert str(path) in message and "addgp migrate" in message, message
    assert exit_code_of(error.value) == EXIT_BAD_INPUT
    return message


def test_every_old_format_is_refused_by_its_reader_then_migrated_once(tmp_path, monkeypatch):
    work, old = old_workdir(tmp_path)
    manifests = work / "manifests"
    monkeypatch.chdir(tmp_path / "corpus")  # not where beta was ingested from: --relative-to says it

    message = _refused(lambda: find_rejects(manifests / "alpha.parquet"), manifests / "alpha.rejects.parquet")
    assert f"addgp migrate {work}`" in message, "the message names the workdir to migrate"
    _refused(lambda: read_manifests(sorted(manifests.glob("*.parquet"))), manifests / "alpha.rejects.parquet")
    glob = [
        str(p) for p in sorted(manifests.glob("*.parquet"))
    ]  # `addgp embed manifests/*.parquet` as the docs write it
    embed = CliRunner().invoke(app, ["embed", *glob, "--encoder", "tiny-random", "--store", str(work / "embeddings")])
    assert (
        embed.exit_code == EXIT_BAD_INPUT
        and "alpha.rejects.parquet" in embed.output
        and "addgp migrate" in embed.output
    )
    _refused(lambda: read_manifest(manifests / "beta.parquet"), manifests / "beta.parquet")
    _refused(lambda: store.read_rejects(str(work / "embeddings")), old["location"].rejects_path)
    _refused(lambda: store.shard_exists(old["location"]), old["location"].rejects_path)
    _refused(lambda: load_detector(old["model"]), Path(old["model"]) / "model_card.json")
    _refused(lambda: read_ledger(work / "state"), ledger_path(work / "state"))
    _refused(lambda: run_inventory(str(work / "reports")), old["report"])

    before = _tree(work)
    code, summary, progress = run_migrate(work, "--dry-run", "--relative-to", str(tmp_path))
    assert code == 0 and _tree(work) == before, "a dry run changes nothing"
    assert len(changed(summary)) == 7 and not any(summary["left"].values())
    assert progress.count("migrate [") == 6, "one progress line per step"

    code, summary, progress = run_migrate(work, "--relative-to", str(tmp_path))
    assert code == 0, progress
    assert len(changed(summary)) == 7 and "would" not in progress

    # The workdir reads with the current code.
    assert find_rejects(manifests / "alpha.parquet") == rejects_path_for(manifests / "alpha.parquet")
    assert not (manifests / "alpha.rejects.parquet").exists()
    beta = read_manifest(manifests / "beta.parquet")
    assert list(beta["path"]) == list(old["manifest"]["path"])
    assert len(read_manifests(sorted(manifests.glob("*.parquet")))) == 6
    kinds = store.read_rejects(str(work / "embeddings")).set_index("utt_id")["kind"].to_dict()
    assert kinds == {"u0": "transient", "u1": "permanent"}
    card = read_card(old["model"])
    assert card["format"] == FORMAT and card["digest"] == card_digest(card)
    assert load_detector(old["model"])[1]["digest"] == card["digest"]
    ledger = read_ledger(work / "state")
    assert ledger["version"] == 2 and ledger["consumers"] == {"nightly:lr": ["b1"]}
    assert [b.batch_id for b in new_inbox_batches(work / "state", consumer="nightly:lr")] == ["b2"]
    assert len(new_inbox_batches(work / "state", consumer="nightly:gp")) == 2, "no champion record: every batch"
    nightly = run_inventory(str(work / "reports"))
    assert [(r["detector"], r["run_id"]) for r in nightly] == [("lr", old["report"].name)]
    assert (work / "reports" / "nightly" / "lr" / "LATEST").read_text() == old["report"].name

    # Idempotent: the second run finds nothing.
    after = _tree(work)
    code, summary, progress = run_migrate(work)
    assert code == 0 and changed(summary) == [] and _tree(work) == after
    assert progress.count("0 file(s) changed") == 6


def test_what_a_step_cannot_decide_is_left_named_and_exits_2(tmp_path, monkeypatch):
    work, old = old_workdir(tmp_path)
    monkeypatch.chdir(tmp_path / "corpus")  # beta's relative paths name no file from here
    weights = Path(old["model"]) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # weights that are not the card's
    code, summary, progress = run_migrate(work)
    assert code == EXIT_BAD_INPUT
    left = summary["left"]
    assert "pass --relative-to" in left["manifests with relative audio paths"][0]
    assert "does not match" in left["model cards without a digest (addgp-model/1)"][0]
    assert "left: " in progress
    _refused(lambda: read_manifest(work / "manifests" / "beta.parquet"), work / "manifests" / "beta.parquet")
    _refused(lambda: read_card(old["model"]), Path(old["model"]) / "model_card.json")


def test_migrate_waits_for_no_night_it_refuses_while_one_runs(tmp_path):
    """A night reading half-migrated files could train on a mix: migrate holds the nightly lock."""
    work, _ = old_workdir(tmp_path)
    before = _tree(work)
    with champions.exclusive_run(work / "state", "nightly"):
        code = CliRunner().invoke(app, ["migrate", str(work), "--relative-to", str(tmp_path)]).exit_code
        assert code == EXIT_BUSY
        assert run_migrate(work, "--dry-run", "--relative-to", str(tmp_path))[0] == 0, "a dry run reads only"
    assert {k: v for k, v in _tree(work).items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }
