"""Hostile and broken inputs that passed or vanished (issue 14, cases 5, 8 and 9), on generated files.

Every protocol line ends as a row or a reject; paths stay inside their root; a BOM, bytes that
are not UTF-8 and a bona fide line naming an attack are handled with a reason that names the
file and line; a bad ``--layers`` value names the option and what it accepts.
"""

from __future__ import annotations

import json

import pytest
from helpers import write_audio
from typer.testing import CliRunner

from tasks.ingest.common import LayoutError
from tasks.ingest.registry import ingest_dataset


def _accounted_lines(result) -> set[int]:
    """Line numbers of the protocol that became a row or a reject."""
    lines = {
        int(s.rsplit(":", 1)[1]) for s in result.rejects["source"] if ":" in str(s) and s.rsplit(":", 1)[1].isdigit()
    }
    return lines | set(result.manifest["line"].astype(int)) if "line" in result.manifest else lines


def test_an_unterminated_quote_costs_only_its_own_line(tmp_path):
    for i in range(9):
        write_audio(tmp_path / f"a{i}.wav", seed=i)
    lines = ["path,label,line,notes"]
    for i in range(9):
        notes = '"unterminated, quote' if i == 3 else f'"quoted, fine {i}"'
        lines.append(f"a{i}.wav,{'spoof' if i % 2 else 'bonafide'},{i + 2},{notes}")
    (tmp_path / "protocol.csv").write_text("\n".join(lines) + "\n")
    result = ingest_dataset("protocol_csv", tmp_path / "protocol.csv", dataset="q", progress=False)
    assert len(result.manifest) == 8 and len(result.rejects) == 1
    (reason,) = result.rejects["reason"]
    assert "quote" in reason and result.rejects["source"].iat[0].endswith("protocol.csv:5")
    assert _accounted_lines(result) == set(range(2, 11)), "a protocol line ended as neither a row nor a reject"


def test_non_utf8_bytes_reject_their_line_naming_file_and_line(tmp_path):
    for i in range(3):
        write_audio(tmp_path / f"a{i}.wav", seed=i)
    (tmp_path / "protocol.csv").write_bytes(
        b"path,label,notes\na0.wav,spoof,ok\na1.wav,spoof,caf\xe9\na2.wav,bonafide,ok\n"
    )
    result = ingest_dataset("protocol_csv", tmp_path / "protocol.csv", dataset="enc", progress=False)
    assert sorted(result.manifest["utt_id"]) == ["a0", "a2"]
    (source,), (reason,) = result.rejects["source"], result.rejects["reason"]
    assert source == f"{tmp_path / 'protocol.csv'}:3" and "UTF-8" in reason and "0xe9" in reason
    (tmp_path / "bad_header.csv").write_bytes(b"p\xffth,label\na0.wav,spoof\n")
    with pytest.raises(LayoutError, match=r"bad_header\.csv: header line 1 .*UTF-8"):
        ingest_dataset("protocol_csv", tmp_path / "bad_header.csv", dataset="enc", progress=False)


def _la_layout(root, protocol_bytes: bytes):
    la = root / "LA"
    (la / "ASVspoof2019_LA_cm_protocols").mkdir(parents=True)
    for utt in ("LA_T_1", "LA_T_2", "LA_T_3"):
        write_audio(la / "ASVspoof2019_LA_train" / "flac" / f"{utt}.flac")
    (la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt").write_bytes(protocol_bytes)
    return root


def test_asvspoof_protocol_bom_non_utf8_and_bona_fide_with_attack(tmp_path):
    protocol = (
        "\ufeffspk_00 LA_T_1 - - bonafide\n"
        "spk_01 LA_T_2 - A01 bonafide\n"  # bona fide naming an attack: contract says attack is null
        "spk_02 LA_T_3 - A02 spoof\n"
    ).encode() + b"spk_\xff LA_T_4 - A03 spoof\n"
    result = ingest_dataset("asvspoof2019_la", _la_layout(tmp_path, protocol), progress=False, splits=("train",))
    m = result.manifest.set_index("utt_id")
    assert sorted(m.index) == ["LA_T_1", "LA_T_3"]
    assert m.at["LA_T_1", "speaker"] == "spk_00", "the byte-order mark leaked into the first field"
    why = dict(zip(result.rejects["source"].str.rsplit(":", n=1).str[1], result.rejects["reason"]))
    assert "bona fide row names attack 'A01'" in why["2"]
    assert "not valid UTF-8" in why["4"] and "0xff" in why["4"]


def test_protocol_csv_bona_fide_with_attack_is_rejected_placeholders_are_not(tmp_path):
    for name in ("a", "b", "c", "d"):
        write_audio(tmp_path / f"{name}.wav")
    (tmp_path / "p.csv").write_text(
        "path,label,attack\na.wav,bonafide,-\nb.wav,bonafide,A07\nc.wav,real,bonafide\nd.wav,spoof,A07\n"
    )
    result = ingest_dataset("protocol_csv", tmp_path / "p.csv", dataset="ba", attack_column="attack", progress=False)
    assert sorted(result.manifest["utt_id"]) == ["a", "c", "d"]
    assert result.manifest.set_index("utt_id")["attack"].isna().loc[["a", "c"]].all()
    (reason,) = result.rejects["reason"]
    assert "A07" in reason and "bona fide" in reason


def test_protocol_paths_outside_the_audio_root_are_rejected(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    write_audio(corpus / "in.wav")
    write_audio(outside / "secret.wav")
    (corpus / "p.csv").write_text(
        f"path,label\nin.wav,spoof\n../outside/secret.wav,spoof\n{outside / 'secret.wav'},spoof\n"
    )
    result = ingest_dataset("protocol_csv", corpus / "p.csv", dataset="trav", progress=False)
    assert list(result.manifest["utt_id"]) == ["in"]
    assert len(result.rejects) == 2 and result.rejects["reason"].str.contains("outside the audio root").all()
    # an operator who means it widens the root
    (corpus / "abs.csv").write_text(f"path,label\n{corpus / 'in.wav'},spoof\n{outside / 'secret.wav'},spoof\n")
    wide = ingest_dataset("protocol_csv", corpus / "abs.csv", dataset="trav", audio_root=str(tmp_path), progress=False)
    assert len(wide.manifest) == 2 and wide.rejects.empty


def test_inbox_sidecars_cannot_reach_outside_the_drop_folder(tmp_path):
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    write_audio(tmp_path / "outside-the-inbox" / "secret.wav")
    write_audio(inbox / "day" / "ok.wav")
    (inbox / "day" / "link.wav").symlink_to(tmp_path / "outside-the-inbox" / "secret.wav")
    (inbox / "day" / "sidecar.csv").write_text(
        "file,label,generator\n"
        "ok.wav,spoof,g1\n"
        "../../outside-the-inbox/secret.wav,spoof,g1\n"
        f"{tmp_path / 'outside-the-inbox' / 'secret.wav'},spoof,g1\n"
        "link.wav,spoof,g1\n"
    )
    (inbox / "batch.json").write_text(
        json.dumps({"files": [{"file": "../outside-the-inbox/secret.wav", "label": "spoof"}]})
    )
    result = ingest_dataset("inbox", inbox, state_dir=state, batch_id="B1", progress=False)
    assert list(result.manifest["utt_id"]) == ["day/ok"]
    assert not result.manifest["path"].str.contains("outside-the-inbox").any()
    escaped = result.rejects[result.rejects["reason"].str.contains("outside the inbox|is absolute")]
    assert len(escaped) == 4, result.rejects.to_dict("records")


def test_bad_layers_option_names_the_option_and_accepted_values(tmp_path):
    from flows.cli import app

    result = CliRunner().invoke(
        app,
        [
            "embed",
            str(tmp_path / "m.parquet"),
            "--encoder",
            "tiny-random",
            "--store",
            str(tmp_path / "s"),
            "--layers",
            "last",
        ],
    )
    assert result.exit_code == 2
    assert (
        "--layers 'last'" in result.output and "-1 = last" in result.output and "invalid literal" not in result.output
    )


# Issue 22, case 6: reasons named Python objects ('<_io.BytesIO object at 0x…>', '<Buffer>'), not the user's file.
def test_audio_reasons_name_the_fault_not_a_python_object(tmp_path):
    import os

    from tasks.embed.audio import AudioError, load_audio

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all " * 20)
    os.mkfifo(tmp_path / "pipe.flac")
    os.symlink("/dev/zero", tmp_path / "zero.wav")
    expected = {
        "empty.wav": ("empty file (0 bytes)", False),
        "junk.wav": ("failed to decode: Format not recognised.", False),
        "pipe.flac": ("not a regular file (a FIFO)", True),  # opened without blocking, not read
        "zero.wav": ("not a regular file (a character device)", True),  # the link is followed, nothing read
    }
    for name, (reason, transient) in expected.items():
        with pytest.raises(AudioError) as caught:
            load_audio(str(tmp_path / name))
        assert (str(caught.value), caught.value.transient) == (reason, transient), name


@pytest.mark.parametrize("content", [b"utt_id,path\nu1,/a.wav\n", b""], ids=["csv", "zero-bytes"])
def test_a_manifest_that_is_not_parquet_is_named_with_the_fix(tmp_path, content):
    from flows.cli import app

    manifest = tmp_path / "m.parquet"
    manifest.write_bytes(content)
    store, models = str(tmp_path / "store"), str(tmp_path / "models")
    runner = CliRunner()
    verbs = [
        ["embed", str(manifest), "--encoder", "tiny-random", "--store", store],
        ["train", str(manifest), "--store", store, "--models", models, "--name", "lr", "--encoder", "tiny-random"],
    ]  # evaluate reads its models first: tests/test_cli_models.py holds it with a trained one
    for verb in verbs:
        result = runner.invoke(app, verb)
        assert result.exit_code == 2, (verb[0], result.output)
        assert f"{manifest}: not a Parquet manifest" in result.output and "addgp ingest" in result.output, verb[0]
        assert "<Buffer>" not in result.output


def test_a_score_table_that_is_not_parquet_is_named(tmp_path):
    from flows.cli import app

    scores = tmp_path / "scores.parquet"
    scores.write_text("score,label\n1.0,bonafide\n")
    for verb in (["metrics", str(scores)], ["report", str(scores), "--reports-root", str(tmp_path / "r")]):
        result = CliRunner().invoke(app, verb)
        assert result.exit_code == 2 and f"{scores}: not a Parquet score table" in result.output, result.output
        assert "<Buffer>" not in result.output
