"""ASVspoof 2021 LA / DF and ASVspoof 5 from miniatures of their published layouts."""

from __future__ import annotations

import pytest
from helpers import isnull, reasons, row, write_audio, write_empty

from tasks.ingest.common import LayoutError
from tasks.ingest.registry import ingest_dataset

LA_KEYS = """\
LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval
LA_0009 LA_E_6866159 alaw ita_tx A07 spoof notrim eval
LA_0020 LA_E_7294490 g722 loc_tx bonafide bonafide notrim eval
LA_0020 LA_E_1000003 opus sin_tx bonafide bonafide notrim progress
LA_0011 LA_E_1000004 none loc_tx A19 spoof notrim hidden
LA_0011 LA_E_1000005 pstn mad_tx - bonafide trim hidden
LA_0012 LA_E_1000006 gsm loc_tx A10
LA_0012 LA_E_1000007 ulaw loc_tx A13 spoof notrim eval
LA_0012 LA_E_1000008 ulaw loc_tx A13 unknownkey notrim eval
LA_0012 LA_E_9332881 alaw ita_tx A07 spoof notrim eval
"""

DF_KEYS = """\
LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -
LA_0023 DF_E_2000012 nocodec asvspoof - bonafide notrim progress bonafide - - - -
TEF2 DF_E_2000013 low_m4a vcc2020 Task1-team20 spoof notrim eval neural_vocoder_autoregressive Task1 team20 FF E
VCC2TM2 DF_E_2000014 mp3m4a vcc2018 - bonafide notrim eval bonafide - - - -
LA_0030 DF_E_2000015 high_ogg asvspoof A16 spoof notrim hidden waveform_concatenation - - - -
LA_0030 DF_E_2000016 high_ogg asvspoof A16 spoof
"""


def build_la(tmp_path, keys_at="keys"):
    root = tmp_path / "ASVspoof2021"
    flac = root / "ASVspoof2021_LA_eval" / "flac"
    for utt in (
        "LA_E_9332881",
        "LA_E_6866159",
        "LA_E_7294490",
        "LA_E_1000003",
        "LA_E_1000004",
        "LA_E_1000005",
        "LA_E_1000008",
    ):
        write_audio(flac / f"{utt}.flac")
    write_empty(flac / "LA_E_1000007.flac")
    (root / "ASVspoof2021_LA_eval" / "ASVspoof2021.LA.cm.eval.trl.txt").write_text("LA_E_9332881\n")
    keys_root = root if keys_at == "keys" else tmp_path / "LA-keys-full"
    keys = keys_root / "keys" / "LA" / "CM" / "trial_metadata.txt"
    keys.parent.mkdir(parents=True)
    keys.write_text(LA_KEYS)
    return root, keys_root


def test_asvspoof2021_la(tmp_path):
    root, _ = build_la(tmp_path)
    result = ingest_dataset("asvspoof2021_la", root, progress=False)
    m = result.manifest
    assert sorted(m["utt_id"]) == [
        "LA_E_1000003",
        "LA_E_1000004",
        "LA_E_1000005",
        "LA_E_6866159",
        "LA_E_7294490",
        "LA_E_9332881",
    ]
    assert set(m["split"]) == {"eval"} and set(m["dataset"]) == {"asvspoof2021_la"}
    first = row(result, "LA_E_9332881")
    assert (
        first["label"],
        first["attack"],
        first["speaker"],
        first["codec"],
        first["transmission"],
        first["subset"],
    ) == ("spoof", "A07", "LA_0009", "alaw", "ita_tx", "eval")
    bona = row(result, "LA_E_7294490")
    assert bona["label"] == "bonafide" and isnull(bona["attack"])
    assert row(result, "LA_E_1000005")["trim"] == "trim" and row(result, "LA_E_1000005")["codec"] == "pstn"
    assert set(m["subset"]) == {"eval", "progress", "hidden"}
    why = reasons(result)
    assert why["LA_E_1000006"].startswith("unparseable protocol line: expected at least 8 fields")
    assert why["LA_E_1000007"] == "empty file (0 bytes)"
    assert why["LA_E_1000008"] == "unknown label 'unknownkey'"
    assert list(result.rejects["reason"]).count("duplicate utt_id") == 1


def test_asvspoof2021_la_keys_elsewhere_and_subset_filter(tmp_path):
    root, keys_root = build_la(tmp_path, keys_at="elsewhere")
    with pytest.raises(LayoutError, match=r"no ASVspoof 2021 LA keys under .*keys/LA/CM/trial_metadata.txt"):
        ingest_dataset("asvspoof2021_la", root, progress=False)
    result = ingest_dataset("asvspoof2021_la", root, keys_root=keys_root, subsets=["eval"], progress=False)
    assert set(result.manifest["subset"]) == {"eval"}
    assert sorted(result.manifest["utt_id"]) == ["LA_E_6866159", "LA_E_7294490", "LA_E_9332881"]


def test_asvspoof2021_df_reads_all_parts(tmp_path):
    root = tmp_path / "df"
    for part, utts in (("00", ["DF_E_2000011", "DF_E_2000012"]), ("01", ["DF_E_2000013"]), ("03", ["DF_E_2000014"])):
        for utt in utts:
            write_audio(root / f"ASVspoof2021_DF_eval_part{part}" / "ASVspoof2021_DF_eval" / "flac" / f"{utt}.flac")
    keys = root / "DF-keys-full" / "keys" / "DF" / "CM" / "trial_metadata.txt"
    keys.parent.mkdir(parents=True)
    keys.write_text(DF_KEYS)
    result = ingest_dataset("asvspoof2021_df", root, keys_root=root / "DF-keys-full", progress=False)
    m = result.manifest
    assert sorted(m["utt_id"]) == ["DF_E_2000011", "DF_E_2000012", "DF_E_2000013", "DF_E_2000014"]
    vcc = row(result, "DF_E_2000013")
    assert (vcc["attack"], vcc["codec"], vcc["source_corpus"], vcc["vocoder"], vcc["subset"], vcc["speaker"]) == (
        "Task1-team20",
        "low_m4a",
        "vcc2020",
        "neural_vocoder_autoregressive",
        "eval",
        "TEF2",
    )
    assert vcc["extra_meta"] == "Task1 team20 FF E" and "part01" in vcc["path"]
    bona = row(result, "DF_E_2000014")
    assert (
        bona["label"] == "bonafide"
        and isnull(bona["vocoder"])
        and isnull(bona["attack"])
        and bona["source_corpus"] == "vcc2018"
    )
    assert isnull(row(result, "DF_E_2000011")["extra_meta"])
    why = reasons(result)
    assert why["DF_E_2000015"] == "audio file missing"  # key line, no audio in any part
    assert why["DF_E_2000016"].startswith("unparseable protocol line")


def test_asvspoof2021_wrong_root_names_what_was_expected(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(
        LayoutError, match=r"not an ASVspoof 2021 DF root: expected ASVspoof2021_DF_eval_part00..03.*found: something/"
    ):
        ingest_dataset("asvspoof2021_df", tmp_path, progress=False)
    with pytest.raises(LayoutError, match="is not a directory"):
        ingest_dataset("asvspoof2021_la", tmp_path / "nope", progress=False)


# ---------------------------------------------------------------- ASVspoof 5

TRAIN = """\
T_4850 T_0000000000 F - - - bonafide bonafide bonafide -
T_4850 T_0000000001 F - - - A01 A01 spoof -
T_1234 T_0000000002 M - - - A05 A05 spoof -
T_1234 T_0000000003 M - -
"""
DEV = """\
D_0062 D_0000000000 M - - - bonafide bonafide bonafide -
D_0062 D_0000000001 M - - - A11 A11 spoof -
"""
EVAL = """\
E_0001 E_0000000000 F C05 3 12345 A17 A17 spoof -
E_0001 E_0000000001 F - 0 - bonafide bonafide bonafide -
E_0002 E_0000000002 M C11 8 777 A30 A30 spoof -
"""


def build_asv5(tmp_path):
    root = tmp_path / "ASVspoof5"
    protocols = root / "ASVspoof5_protocols"
    protocols.mkdir(parents=True)
    (protocols / "ASVspoof5.train.tsv").write_text(TRAIN)
    (protocols / "ASVspoof5.dev.track_1.tsv").write_text(DEV)
    (protocols / "ASVspoof5.eval.track_1.tsv").write_text(EVAL)
    for utt in ("T_0000000000", "T_0000000001", "T_0000000002"):
        write_audio(root / "flac_T" / f"{utt}.flac")
    for utt in ("D_0000000000", "D_0000000001"):
        write_audio(root / "flac_D" / f"{utt}.flac")
    write_audio(root / "flac_E_aa" / "flac_E_eval" / "E_0000000000.flac")  # a shard unpacked into its own folder
    write_audio(root / "flac_E_eval" / "E_0000000001.flac")
    return root


def test_asvspoof5(tmp_path):
    root = build_asv5(tmp_path)
    result = ingest_dataset("asvspoof5", root, progress=False)
    m = result.manifest
    assert m.groupby("split").size().to_dict() == {"dev": 2, "eval": 2, "train": 3}
    spoof = row(result, "T_0000000001")
    assert (spoof["label"], spoof["attack"], spoof["speaker"], spoof["gender"]) == ("spoof", "A01", "T_4850", "F")
    coded = row(result, "E_0000000000")
    assert (coded["codec"], coded["codec_q"], coded["codec_seed"], coded["attack_tag"], coded["attack"]) == (
        "C05",
        "3",
        "12345",
        "A17",
        "A17",
    )
    bona = row(result, "E_0000000001")
    assert bona["label"] == "bonafide" and isnull(bona["attack"])
    assert isnull(bona["codec"]) and bona["codec_q"] == "0"
    why = reasons(result)
    assert why["T_0000000003"].startswith("unparseable protocol line: expected 10 whitespace-separated fields")
    assert why["E_0000000002"] == "audio file missing"


def test_asvspoof5_one_split_and_wrong_root(tmp_path):
    root = build_asv5(tmp_path)
    result = ingest_dataset("asvspoof5", root, splits=["dev"], progress=False)
    assert set(result.manifest["split"]) == {"dev"}
    with pytest.raises(
        LayoutError, match=r"not an ASVspoof 5 root: expected the protocol file\(s\) ASVspoof5.train.tsv"
    ):
        ingest_dataset("asvspoof5", root / "flac_T", progress=False)


# The challenge-phase release (release.zip of the 2024 challenge): six fields, metadata beside the audio.
CHALLENGE_TRAIN = """\
T_4850 T_0000000000 F - A05 spoof
T_4850 T_0000000001 F - bonafide bonafide
T_1234 T_0000000002 M - - bonafide
T_1234 T_0000000003 M - A01 spoof extra-field here
"""
CHALLENGE_DEV = """\
D_0062 D_0000000000 M - A11 spoof
D_0062 D_0000000001 M - bonafide bonafide
"""


def build_asv5_challenge(tmp_path):
    root = tmp_path / "release"
    root.mkdir()
    (root / "ASVspoof5.train.metadata.txt").write_text(CHALLENGE_TRAIN)
    (root / "ASVspoof5.dev.metadata.txt").write_text(CHALLENGE_DEV)
    # The ASV enrolment and trial lists of the same release: not countermeasure protocols.
    (root / "ASVspoof5.dev.enroll.txt").write_text("D_0062 D_0000000010,D_0000000011\n")
    (root / "ASVspoof5.dev.trial.txt").write_text("D_0062 D_0000000000 spoof\n")
    for utt in ("T_0000000000", "T_0000000001", "T_0000000002", "T_0000000003"):
        write_audio(root / "flac_T" / f"{utt}.flac")
    for utt in ("D_0000000000", "D_0000000001"):
        write_audio(root / "flac_D" / f"{utt}.flac")
    return root


def test_asvspoof5_challenge_phase_release(tmp_path):
    root = build_asv5_challenge(tmp_path)
    result = ingest_dataset("asvspoof5", root, progress=False)
    m = result.manifest
    assert m.groupby(["split", "label"]).size().to_dict() == {
        ("dev", "bonafide"): 1,
        ("dev", "spoof"): 1,
        ("train", "bonafide"): 2,
        ("train", "spoof"): 1,
    }
    assert set(m["metadata_release"]) == {"challenge"}
    spoof = row(result, "T_0000000000")
    assert (spoof["label"], spoof["attack"], spoof["speaker"], spoof["gender"]) == ("spoof", "A05", "T_4850", "F")
    assert isnull(spoof["codec"]) and isnull(spoof["codec_q"]) and isnull(spoof["attack_tag"])
    for bona in ("T_0000000001", "T_0000000002"):  # bona fide ATTACK as `bonafide` or `-`
        assert isnull(row(result, bona)["attack"])
    assert row(result, "D_0000000000")["attack"] == "A11"
    assert reasons(result)["T_0000000003"].startswith(
        "unparseable protocol line: expected 6 whitespace-separated fields (SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK KEY; the challenge release"
    )
    # The same columns as a public-release manifest, so the two can be read together.
    public = ingest_dataset("asvspoof5", build_asv5(tmp_path), progress=False).manifest
    assert list(m.columns) == list(public.columns) and set(public["metadata_release"]) == {"public"}


def test_asvspoof5_release_detected_from_content_and_public_wins(tmp_path):
    root = build_asv5_challenge(tmp_path)
    # A challenge-phase file renamed to the public name reads by its six columns.
    (root / "ASVspoof5.train.metadata.txt").rename(root / "ASVspoof5.train.tsv")
    result = ingest_dataset("asvspoof5", root, splits=["train"], progress=False)
    assert len(result.manifest) == 3 and set(result.manifest["metadata_release"]) == {"challenge"}
    # Both releases present for a split: the public protocol is read, the challenge file ignored.
    both = build_asv5(tmp_path / "both")
    (both / "ASVspoof5.train.metadata.txt").write_text(CHALLENGE_TRAIN)
    train = ingest_dataset("asvspoof5", both, splits=["train"], progress=False).manifest
    assert set(train["metadata_release"]) == {"public"} and len(train) == 3
    with pytest.raises(LayoutError, match=r"ASVspoof5.train.metadata.txt.*challenge-phase release"):
        ingest_dataset("asvspoof5", root / "flac_T", progress=False)
