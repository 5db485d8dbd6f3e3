"""finalize / probe_audio / registry: the parts every adapter shares."""

from __future__ import annotations

import math
import os
import re

import pandas as pd
import pytest
from helpers import reasons, write_audio, write_empty, write_garbage, write_silent_header

from addgp.contracts import MANIFEST_COLUMNS
from storage.manifests import ManifestError, write_manifest
from tasks.ingest.common import current_probe_mode, finalize, probe_audio, probe_mode
from tasks.ingest.registry import ADAPTERS, adapter_options, get_adapter, ingest_dataset

ARCHITECTURE_NAMES = {
    "asvspoof2019_la",
    "asvspoof2021_la",
    "asvspoof2021_df",
    "asvspoof5",
    "in_the_wild",
    "fake_or_real",
    "mlaad",
    "timit_tts",
    "odss",
    "spoofceleb",
    "codecfake",
    "add2022",
    "add2023",
    "dfadd",
    "librisevoc",
    "sonar",
    "diffssd",
    "protocol_csv",
    "hf",
    "inbox",
}


def candidate(utt_id, path, label="spoof", **extra):
    return {
        "utt_id": utt_id,
        "split": "eval",
        "label": label,
        "attack": "A01",
        "speaker": "s1",
        "path": str(path),
        **extra,
    }


def test_registry_has_every_architecture_name():
    assert set(ADAPTERS) == ARCHITECTURE_NAMES
    with pytest.raises(KeyError, match="unknown dataset adapter 'nope'"):
        get_adapter("nope")


def test_ingest_dataset_rejects_unknown_options_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"no option\(s\) \['colour'\].*keys_root"):
        ingest_dataset("asvspoof2021_la", tmp_path, colour="red")
    assert "bonafide_root" in adapter_options("mlaad")


def test_probe_audio_reads_duration_and_hash(tmp_path):
    path = write_audio(tmp_path / "a.flac", seconds=0.25)
    duration, digest = probe_audio(str(path))
    assert duration == pytest.approx(0.25)
    import hashlib

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, "audio file missing"),
        (write_empty, "empty file (0 bytes)"),
        (write_garbage, "unreadable audio"),
        (write_silent_header, "zero-length audio"),
        (lambda p: (p.mkdir(), p)[1], "not a regular file"),
        (lambda p: (os.mkfifo(p), p)[1], "not a regular file"),  # must not block
    ],
)
def test_probe_audio_reasons(tmp_path, make, reason):
    path = make(tmp_path / "x.wav")
    with pytest.raises(ValueError, match=re.escape(reason)):
        probe_audio(str(path))


def test_finalize_keeps_good_rows_and_rejects_bad_ones(tmp_path):
    good = [write_audio(tmp_path / f"g{i}.wav") for i in range(5)]
    rows = [candidate(f"g{i}", p, extra_col=f"v{i}") for i, p in enumerate(good)]
    rows += [
        candidate("dup", good[0]),
        candidate("g0", good[1]),  # repeated utt_id
        candidate("missing", tmp_path / "missing.wav"),
        candidate("empty", write_empty(tmp_path / "empty.wav")),
        candidate("junk", write_garbage(tmp_path / "junk.flac")),
        candidate("nolabel", good[2], label="maybe"),
    ]
    result = finalize(
        "toy",
        rows,
        [{"dataset": "toy", "source": "p.txt:3", "utt_id": None, "reason": "unparseable protocol line: x"}],
        workers=3,
        progress=False,
    )
    m = result.manifest
    assert list(m.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert sorted(m["utt_id"]) == ["dup", "g0", "g1", "g2", "g3", "g4"]
    assert (m["dataset"] == "toy").all() and m["duration_s"].between(0.19, 0.21).all()
    assert m.set_index("utt_id").loc["g3", "extra_col"] == "v3"
    why = reasons(result)
    assert why["g0"] == "duplicate utt_id"
    assert why["missing"] == "audio file missing"
    assert why["empty"] == "empty file (0 bytes)"
    assert why["junk"].startswith("unreadable audio")
    assert why["nolabel"] == "unknown label 'maybe'"
    assert why["p.txt:3"].startswith("unparseable protocol line")
    write_manifest(m, tmp_path / "toy.parquet")  # a finalized manifest satisfies the contract


def test_finalize_preserves_order_across_many_chunks(tmp_path):
    paths = [write_audio(tmp_path / f"{i:03d}.wav", seconds=0.1 + 0.001 * (i % 7)) for i in range(120)]
    rows = [candidate(f"u{i}", p) for i, p in enumerate(paths)]
    rows[50]["path"] = str(tmp_path / "gone.wav")
    result = finalize("toy", rows, workers=7, progress=False)
    m = result.manifest.set_index("utt_id")
    assert len(m) == 119 and "u50" not in m.index
    for i in (0, 49, 51, 119):
        assert m.loc[f"u{i}", "path"] == str(paths[i])
        assert m.loc[f"u{i}", "duration_s"] == pytest.approx(0.1 + 0.001 * (i % 7), abs=1e-4)


def test_probe_modes_count_without_opening_audio(tmp_path):
    present = write_garbage(tmp_path / "present.wav")
    rows = [candidate("present", present), candidate("absent", tmp_path / "absent.wav")]
    none = finalize("toy", [dict(r) for r in rows], probe="none", progress=False)
    assert sorted(none.manifest["utt_id"]) == ["absent", "present"] and none.manifest["sha256"].isna().all()
    exists = finalize("toy", [dict(r) for r in rows], probe="exists", progress=False)
    assert list(exists.manifest["utt_id"]) == ["present"] and reasons(exists) == {"absent": "audio file missing"}
    with probe_mode("none"):
        assert current_probe_mode() == "none"
        counted = finalize("toy", [dict(r) for r in rows], progress=False)
    assert current_probe_mode() == "full" and len(counted.manifest) == 2
    assert math.isnan(counted.manifest["duration_s"].iloc[0])
    with pytest.raises(ManifestError):  # counting manifests never reach disk
        write_manifest(counted.manifest, tmp_path / "x.parquet")


def test_empty_input_gives_an_empty_manifest_with_the_contract_columns():
    result = finalize("toy", [], progress=False)
    assert list(result.manifest.columns) == list(MANIFEST_COLUMNS)
    assert result.summary().rows == 0
    assert isinstance(result.rejects, pd.DataFrame)
