"""inbox: sidecar-labelled drop folder, dated batches, what a nightly run sees as new."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import isnull, reasons, row, run_migrate, write_audio, write_garbage

from addgp.nightly import InboxBatch
from flows.cli.common import exit_code_of
from storage import champions
from storage.inbox_ledger import acknowledge_inbox_batches, ledger_path, new_inbox_batches, read_ledger
from storage.paths import OldFormatError
from tasks.ingest.common import probe_mode
from tasks.ingest.inbox import InboxMissingError, rows_of_batches
from tasks.ingest.registry import ingest_dataset


def first_drop(inbox):
    day = inbox / "2025-06-01-social"
    for name in ("a.wav", "b.wav", "c.flac"):
        write_audio(day / name)
    (day / "sidecar.csv").write_text(
        "file,label,generator,source,collected,language\n"
        "a.wav,spoof,elevenlabs,https://example.org/p/1,2025-06-01,en\n"
        "b.wav,bonafide,,podcast,2025-06-01T10:00:00,en\n"
        "c.flac,fake,xtts,tip line,2025-06-01,de\n"
        "gone.wav,spoof,x,y,2025-06-01,en\n"
        "b.wav,spoof,x,y,yesterday,en\n"
        "a.wav,maybe,x,y,2025-06-01,en\n"
    )
    write_audio(inbox / "loose.wav")
    (inbox / "loose.json").write_text(
        json.dumps({"label": "spoof", "generator": "bark", "source": "mail", "collected": "2025-06-02"})
    )
    write_audio(inbox / "nolabel.wav")


def test_inbox_first_ingest_records_a_batch(tmp_path):
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    first_drop(inbox)
    result = ingest_dataset("inbox", inbox, state_dir=state, batch_id="B1", progress=False)
    m = result.manifest
    assert sorted(m["utt_id"]) == ["2025-06-01-social/a", "2025-06-01-social/b", "2025-06-01-social/c", "loose"]
    a = row(result, "2025-06-01-social/a")
    assert (a["label"], a["attack"], a["source"], a["collected"], a["language"], a["split"], a["batch_id"]) == (
        "spoof",
        "elevenlabs",
        "https://example.org/p/1",
        "2025-06-01",
        "en",
        "train",
        "B1",
    )
    b = row(result, "2025-06-01-social/b")
    assert b["label"] == "bonafide" and isnull(b["attack"]) and b["collected"] == "2025-06-01"
    assert row(result, "2025-06-01-social/c")["label"] == "spoof"
    assert row(result, "loose")["attack"] == "bark" and row(result, "loose")["sidecar"].endswith("loose.json")
    why = reasons(result)
    assert why["2025-06-01-social/gone"] == "audio file missing"
    assert why["nolabel"] == "no sidecar entry (label unknown)"
    assert "unparseable collected date 'yesterday'" in why["2025-06-01-social/b"]
    assert why["2025-06-01-social/a"] == "unknown label 'maybe'"
    assert new_inbox_batches(state, consumer="nightly") == [
        InboxBatch(
            batch_id="B1",
            folder=None,  # the option names the batch: all new files in one, whatever their folder
            created_at=read_ledger(state)["batches"][0]["created_at"],
            n_files=4,
            n_bonafide=1,
            n_spoof=3,
            hours=pytest.approx(4 * 0.2 / 3600, abs=1e-4),
        )
    ]
    assert Path(ledger_path(state)).is_file() and not (inbox / "inbox_batches.json").exists()


def test_nightly_sees_only_new_batches(tmp_path):
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    first_drop(inbox)
    ingest_dataset("inbox", inbox, state_dir=state, batch_id="B1", progress=False)
    acknowledge_inbox_batches(state, ["B1"], consumer="nightly")
    assert new_inbox_batches(state, consumer="nightly") == []
    assert [b.batch_id for b in new_inbox_batches(state, consumer="weekly")] == ["B1"]

    # Nothing new: no new batch.
    again = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    assert set(again.manifest["batch_id"]) == {"B1"} and len(read_ledger(state)["batches"]) == 1

    # A new drop (JSON table with defaults) and one file whose bytes changed.
    day2 = inbox / "2025-06-03"
    write_audio(day2 / "d.wav")
    write_audio(day2 / "e.wav")
    (day2 / "batch.json").write_text(
        json.dumps(
            {
                "collected": "2025-06-03",
                "source": "lab",
                "split": "dev",
                "files": [{"file": "d.wav", "label": "spoof", "generator": "f5"}, {"file": "e.wav", "label": "real"}],
            }
        )
    )
    write_audio(inbox / "loose.wav", seconds=0.3, seed=123)
    result = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    new = new_inbox_batches(state, consumer="nightly")
    # One batch per delivery folder, named after it; a file at ROOT gets a batch named by the ingest time.
    assert [(b.batch_id, b.folder, b.n_files) for b in new[:1]] == [("2025-06-03", "2025-06-03", 2)]
    assert len(new) == 2 and new[1].folder is None and re.fullmatch(r"\d{8}T\d{6}Z", new[1].batch_id)
    assert sorted(rows_of_batches(result.manifest, [new[0].batch_id])["utt_id"]) == ["2025-06-03/d", "2025-06-03/e"]
    assert list(rows_of_batches(result.manifest, [new[1].batch_id])["utt_id"]) == ["loose"]
    assert row(result, "2025-06-03/d")["split"] == "dev" and row(result, "2025-06-03/e")["source"] == "lab"
    assert row(result, "2025-06-01-social/a")["batch_id"] == "B1"
    acknowledge_inbox_batches(state, [b.batch_id for b in new], consumer="nightly")
    assert new_inbox_batches(state, consumer="nightly") == []
    with pytest.raises(KeyError, match="no batch"):
        acknowledge_inbox_batches(state, ["nope"], consumer="nightly")


def test_counting_and_dry_runs_do_not_touch_the_ledger(tmp_path):
    inbox = tmp_path / "inbox"
    first_drop(inbox)
    with probe_mode("none"):
        counted = ingest_dataset("inbox", inbox, progress=False)
    assert counted.manifest["batch_id"].isna().all() and not Path(ledger_path(inbox)).exists()
    dry = ingest_dataset("inbox", inbox, record_batch=False, progress=False)
    assert len(dry.manifest) == 4 and not Path(ledger_path(inbox)).exists()
    ingest_dataset("inbox", inbox, progress=False)  # default state_dir: the inbox itself
    assert Path(ledger_path(inbox)).is_file()
    again = ingest_dataset("inbox", inbox, progress=False)  # the ledger is not read as a sidecar
    assert len(again.rejects) == len(dry.rejects)


def test_bad_sidecars_and_empty_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    write_audio(inbox / "x.wav")
    (inbox / "x.json").write_text("{not json")
    (inbox / "orphan.json").write_text(json.dumps({"label": "spoof"}))
    write_garbage(inbox / "y.wav")
    (inbox / "list.json").write_text(json.dumps([{"file": "y.wav", "label": "spoof"}, "oops", {"label": "spoof"}]))
    result = ingest_dataset("inbox", inbox, record_batch=False, progress=False)
    why = list(result.rejects["reason"])
    assert any("unparseable sidecar: not valid JSON" in w for w in why)
    assert any("per-file sidecar needs an audio file named orphan" in w for w in why)
    assert any("entry 1: expected an object" in w for w in why)
    assert any("no file/path field" in w for w in why)
    assert reasons(result)["y"].startswith("unreadable audio")
    assert reasons(result)["x"] == "no sidecar entry (label unknown)"
    empty = tmp_path / "empty"
    empty.mkdir()
    quiet = ingest_dataset("inbox", empty, progress=False)  # between deliveries: nothing new, not an error
    assert quiet.manifest.empty and quiet.rejects.empty


def test_a_poison_file_is_quarantined_and_the_rest_forms_the_batch(tmp_path):
    """A 32 KB WAV whose header says 1 Hz decodes to 4.4 h and kills the embed worker night after night."""
    import numpy as np
    import soundfile as sf

    inbox, state = tmp_path / "inbox", tmp_path / "state"
    day = inbox / "2026-11-20-tipline"
    write_audio(day / "good.wav")
    sf.write(day / "poison.wav", np.zeros(16000, dtype=np.int16), 1, subtype="PCM_16")
    (day / "sidecar.csv").write_text("file,label,generator\ngood.wav,spoof,newgen\npoison.wav,spoof,newgen\n")
    result = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    assert list(result.manifest["utt_id"]) == ["2026-11-20-tipline/good"]
    why = reasons(result)["2026-11-20-tipline/poison"]
    assert "declares 16000 s of audio, over max_seconds=1800" in why and "raise the inbox option max_seconds" in why
    assert [b.n_files for b in new_inbox_batches(state, consumer="nightly")] == [1]
    kept = ingest_dataset("inbox", inbox, state_dir=tmp_path / "state2", max_seconds=20000, progress=False)
    assert len(kept.manifest) == 2


def test_a_missing_drop_folder_is_an_error_unless_the_config_says_to_create_it(tmp_path):
    """Issue 23 item 4: a mistyped or unmounted inbox is not "nothing new" forever."""
    inbox = tmp_path / "runs" / "demo" / "inbox"
    with pytest.raises(InboxMissingError) as error:
        ingest_dataset("inbox", inbox, state_dir=tmp_path / "state", progress=False)
    message = str(error.value)
    assert str(inbox) in message and "datasets[name=inbox].root" in message and "nightly.create_inbox" in message
    assert exit_code_of(error.value) == 2 and not inbox.exists()
    with probe_mode("none"):  # counting (addgp datasets) writes nothing, even when asked to create
        counted = ingest_dataset("inbox", inbox, state_dir=tmp_path / "state", create_missing=True, progress=False)
    assert counted.manifest.empty and not inbox.exists()
    result = ingest_dataset("inbox", inbox, state_dir=tmp_path / "state", create_missing=True, progress=False)
    assert result.manifest.empty and result.rejects.empty and inbox.is_dir()
    assert new_inbox_batches(tmp_path / "state", consumer="nightly") == []


def test_batches_are_acknowledged_per_consumer_and_a_version_1_ledger_is_migrated(tmp_path):
    """Issue 23 item 5: a second champion in the same workdir sees every batch too."""
    work = tmp_path / "work"
    inbox, state = tmp_path / "inbox", work / "state"
    spoof_drop(inbox / "2026-12-01-a", ["a.wav"])
    ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    acknowledge_inbox_batches(state, ["2026-12-01-a"], consumer="nightly:lr")
    assert new_inbox_batches(state, consumer="nightly:lr") == []
    assert [b.batch_id for b in new_inbox_batches(state, consumer="nightly:gp")] == ["2026-12-01-a"]
    # A version-1 ledger: one list, "nightly", for every nightly. Refused until `addgp migrate`,
    # which gives it to each detector with a champion record (lr's nights acknowledged it).
    ledger = read_ledger(state)
    ledger.update(version=1, consumers={"nightly": ["2026-12-01-a"]})
    Path(ledger_path(state)).write_text(json.dumps(ledger))
    spoof_drop(inbox / "2026-12-02-b", ["b.wav"], seed=3)
    with pytest.raises(OldFormatError, match=r"inbox ledger of version 1.*addgp migrate"):
        ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    champions.promote(state, "lr", {"model_path": str(work / "models" / "lr" / "v1"), "version": 1, "eer": None})
    assert run_migrate(work)[0] == 0
    ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    assert [b.batch_id for b in new_inbox_batches(state, consumer="nightly:lr")] == ["2026-12-02-b"]
    assert len(new_inbox_batches(state, consumer="nightly:gp")) == 2, "no champion record: every batch"
    acknowledge_inbox_batches(state, ["2026-12-02-b"], consumer="nightly:lr")
    written = read_ledger(state)
    assert written["version"] == 2
    assert written["consumers"] == {"nightly:lr": ["2026-12-01-a", "2026-12-02-b"]}


def spoof_drop(folder: Path, names: list[str], seed: int = 0) -> None:
    for i, name in enumerate(names):
        write_audio(folder / name, seed=seed + i)
    (folder / "sidecar.csv").write_text("file,label,generator\n" + "".join(f"{name},spoof,gen\n" for name in names))


def test_batches_are_named_after_the_drop_folder_sanitised_and_unique(tmp_path):
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    spoof_drop(inbox / "2026-12-01-elevenlabs", ["a.wav"])
    spoof_drop(inbox / "2026 12 02 tip line (mail)", ["b.wav"], seed=10)
    spoof_drop(inbox / "中文-drop", ["c.wav"], seed=20)
    spoof_drop(inbox / "!!!", ["d.wav"], seed=30)
    ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    batches = {b["folder"]: b for b in read_ledger(state)["batches"]}
    assert batches["2026-12-01-elevenlabs"]["batch_id"] == "2026-12-01-elevenlabs"
    assert batches["2026 12 02 tip line (mail)"]["batch_id"] == "2026-12-02-tip-line-mail"
    assert batches["中文-drop"]["batch_id"] == "中文-drop"
    assert re.fullmatch(r"\d{8}T\d{6}Z", batches["!!!"]["batch_id"]), "a name with nothing left falls back to the time"
    assert all(b["created_at"] for b in batches.values()), "the ledger still records the ingest time"

    # More audio delivered into a folder that already is a batch: a new batch, suffixed.
    spoof_drop(inbox / "2026-12-01-elevenlabs", ["a.wav", "e.wav"], seed=40)
    result = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    assert row(result, "2026-12-01-elevenlabs/e")["batch_id"] == "2026-12-01-elevenlabs-2"
    assert row(result, "2026-12-01-elevenlabs/a")["batch_id"] == "2026-12-01-elevenlabs-2", "changed bytes"
    assert row(result, "2026 12 02 tip line (mail)/b")["batch_id"] == "2026-12-02-tip-line-mail"


def test_a_ledger_of_time_named_batches_keeps_working(tmp_path):
    """A ledger written before folder naming: its batches and acknowledgements stay as they were."""
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    spoof_drop(inbox / "2026-11-20-tipline", ["a.wav"])
    first = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    ledger = read_ledger(state)
    old_id = "20261120T020000Z"
    ledger["batches"] = [
        {k: v for k, v in b.items() if k != "folder"} | {"batch_id": old_id} for b in ledger["batches"]
    ]
    ledger["files"] = {u: {**f, "batch_id": old_id} for u, f in ledger["files"].items()}
    Path(ledger_path(state)).write_text(json.dumps(ledger))
    acknowledge_inbox_batches(state, [old_id], consumer="nightly")
    spoof_drop(inbox / "2026-11-21-tipline", ["b.wav"], seed=5)
    again = ingest_dataset("inbox", inbox, state_dir=state, progress=False)
    assert row(again, "2026-11-20-tipline/a")["batch_id"] == old_id and len(first.manifest) == 1
    assert [b.batch_id for b in new_inbox_batches(state, consumer="nightly")] == ["2026-11-21-tipline"]
