"""protocol_csv: any CSV/TSV with path and label columns."""

from __future__ import annotations

import pytest
from helpers import isnull, reasons, row, write_audio

from tasks.ingest.common import LayoutError
from tasks.ingest.registry import ingest_dataset


def test_csv_with_default_column_names(tmp_path):
    for name in ("a.wav", "b.wav", "sub/c.flac", "d.wav"):
        write_audio(tmp_path / "audio" / name)
    (tmp_path / "protocol.csv").write_text(
        "path,label,split,attack,speaker,notes\n"
        "audio/a.wav,bonafide,train,-,s1,first\n"
        "audio/b.wav,spoof,train,A01,s1,\n"
        "audio/sub/c.flac,fake,test,gen-x,s2,quoted\n"
        "audio/d.wav,spoof,validation,A02,s2,x\n"
        "audio/e.wav,spoof,train,A01,s3,missing\n"
        "audio/a.wav,spoof,train,A01,s1,repeated\n"
        "audio/f.wav,weird,train,A01,s1,bad label\n"
        "audio/only_two,fields\n"
    )
    result = ingest_dataset(
        "protocol_csv",
        tmp_path / "protocol.csv",
        dataset="mine",
        split_column="split",
        split_map={"test": "eval", "validation": "dev"},
        attack_column="attack",
        speaker_column="speaker",
        progress=False,
    )
    m = result.manifest
    assert set(m["dataset"]) == {"mine"}
    assert m.set_index("utt_id")["split"].to_dict() == {
        "audio/a": "train",
        "audio/b": "train",
        "audio/sub/c": "eval",
        "audio/d": "dev",
    }
    c = row(result, "audio/sub/c")
    assert (c["label"], c["attack"], c["speaker"], c["notes"]) == ("spoof", "gen-x", "s2", "quoted")
    assert isnull(row(result, "audio/a")["attack"]) and row(result, "audio/a")["label"] == "bonafide"
    why = reasons(result)
    assert why["audio/e"] == "audio file missing"
    assert why["audio/f"] == "unknown label 'weird'"
    assert list(why.values()).count("duplicate utt_id") == 1  # audio/a repeated (first row wins)
    assert any(v.startswith("unparseable protocol line: expected 6") for v in why.values())


def test_headerless_tsv_with_label_map_ids_and_extension(tmp_path):
    for utt in ("U1", "U2", "U3"):
        write_audio(tmp_path / "wavs" / f"{utt}.wav")
    (tmp_path / "list.tsv").write_text("U1\t0\tspk1\nU2\t1\tspk2\nU3\t2\tspk2\n")
    result = ingest_dataset(
        "protocol_csv",
        tmp_path,
        protocol="list.tsv",
        header=False,
        columns=["utt", "y", "who"],
        path_column="utt",
        label_column="y",
        label_map={0: "bonafide", 1: "spoof"},
        speaker_column="who",
        extension="wav",
        audio_root="wavs",
        split="dev",
        progress=False,
    )
    m = result.manifest
    assert sorted(m["utt_id"]) == ["U1", "U2"] and set(m["split"]) == {"dev"}
    assert row(result, "U2")["label"] == "spoof" and row(result, "U1")["speaker"] == "spk1"
    assert reasons(result) == {"U3": "unknown label '2'"}


def test_pipe_table_with_explicit_names_and_clashing_columns(tmp_path):
    write_audio(tmp_path / "x.wav")
    (tmp_path / "t.txt").write_text("clip|truth|duration_s|uid\nx.wav|spoof|9.9|X-1\n")
    result = ingest_dataset(
        "protocol_csv",
        tmp_path,
        protocol="t.txt",
        path_column="clip",
        label_column="truth",
        id_column="uid",
        progress=False,
    )
    r = row(result, "X-1")
    assert r["src_duration_s"] == "9.9" and r["duration_s"] == pytest.approx(0.2)


def test_layout_errors(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    with pytest.raises(LayoutError, match=r"several tables: a.csv, b.csv"):
        ingest_dataset("protocol_csv", tmp_path, progress=False)
    with pytest.raises(LayoutError, match=r"cannot find a path and a label column among \['x', 'y'\]"):
        ingest_dataset("protocol_csv", tmp_path / "a.csv", progress=False)
    with pytest.raises(LayoutError, match=r"no label column 'truth'"):
        ingest_dataset("protocol_csv", tmp_path / "a.csv", path_column="x", label_column="truth", progress=False)
    with pytest.raises(LayoutError, match=r"protocol .*missing\.csv does not exist"):
        ingest_dataset("protocol_csv", tmp_path, protocol="missing.csv", progress=False)


def test_options_given_as_text_like_the_cli_does(tmp_path):
    for utt in ("U1", "U2"):
        write_audio(tmp_path / "wavs" / f"{utt}.wav")
    (tmp_path / "list.tsv").write_text("U1\t0\tspk1\nU2\t1\tspk2\n")
    result = ingest_dataset(
        "protocol_csv",
        tmp_path / "list.tsv",
        header="false",
        columns="utt,y,who",
        path_column="utt",
        label_column="y",
        label_map="{0: bonafide, 1: spoof}",
        extension="wav",
        audio_root="wavs",
        keep_columns="who",
        workers="2",
        progress=False,
    )
    assert row(result, "U2")["label"] == "spoof" and row(result, "U1")["who"] == "spk1"
    from tasks.ingest.common import OptionError

    with pytest.raises(OptionError, match="option header: expected true or false"):
        ingest_dataset("protocol_csv", tmp_path / "list.tsv", header="perhaps", progress=False)
    with pytest.raises(TypeError, match=r"has no option\(s\) \['colour'\]"):  # the CLI catches TypeError
        ingest_dataset("protocol_csv", tmp_path / "list.tsv", colour="red", progress=False)


def test_a_label_column_of_zeros_and_ones_is_refused_with_the_label_map_that_reads_it(tmp_path):
    rows = []
    for i in range(4):
        write_audio(tmp_path / "wavs" / f"u{i}.wav")
        rows.append(f"wavs/u{i}.wav,{i % 2}")
    (tmp_path / "protocol.csv").write_text("path,is_fake\n" + "\n".join(rows) + "\n")
    with pytest.raises(LayoutError, match=r"label_map=\{0: bonafide, 1: spoof\}") as error:
        ingest_dataset("protocol_csv", tmp_path, progress=False)
    assert "'is_fake'" in str(error.value) and "['0', '1']" in str(error.value)
    mapped = ingest_dataset("protocol_csv", tmp_path, label_map={"0": "bonafide", "1": "spoof"}, progress=False)
    assert sorted(mapped.manifest["label"]) == ["bonafide", "bonafide", "spoof", "spoof"]


def test_relative_protocol_path_from_another_directory(tmp_path, monkeypatch):
    """`addgp ingest protocol_csv c/protocol.csv` run from c's parent: the table's folder is
    joined once (issue 23.1: the reject named …/c/c/audio/a0.wav)."""
    for name in ("a0.wav", "a1.wav"):
        write_audio(tmp_path / "c" / "audio" / name)
    (tmp_path / "c" / "protocol.csv").write_text("path,label\naudio/a0.wav,bonafide\naudio/a1.wav,spoof\n")
    monkeypatch.chdir(tmp_path)
    result = ingest_dataset("protocol_csv", "c/protocol.csv", progress=False)
    assert result.rejects.empty, result.rejects.to_dict("records")
    assert sorted(result.manifest["path"]) == [str(tmp_path / "c" / "audio" / n) for n in ("a0.wav", "a1.wav")]
    # a relative audio_root is relative to the protocol's folder, also from elsewhere
    (tmp_path / "c" / "lists").mkdir()
    (tmp_path / "c" / "lists" / "p.csv").write_text("path,label\na0.wav,bonafide\n")
    other = ingest_dataset("protocol_csv", "c/lists/p.csv", audio_root="../audio", progress=False)
    assert list(other.manifest["path"]) == [str(tmp_path / "c" / "audio" / "a0.wav")]
