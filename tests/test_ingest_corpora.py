"""In-the-Wild, Fake-or-Real, MLAAD (+ M-AILABS), TIMIT-TTS (+ VidTIMIT) and ODSS miniatures."""

from __future__ import annotations

import pytest
from helpers import isnull, reasons, row, write_audio, write_empty, write_garbage

from tasks.ingest.common import LayoutError
from tasks.ingest.registry import ingest_dataset

# ---------------------------------------------------------------- In-the-Wild


def build_itw(tmp_path):
    root = tmp_path / "release_in_the_wild"
    lines = ["file,speaker,label"]
    for i in range(8):
        label = "spoof" if i % 2 == 0 else "bona-fide"
        lines.append(f"{i}.wav,{'Alec Guinness' if i < 4 else 'Barack Obama'},{label}")
        write_audio(root / f"{i}.wav")
    lines.append('8.wav,"Doe, Jane",bona-fide')  # quoted comma
    write_audio(root / "8.wav")
    lines.append("9.wav,Nobody,maybe")  # unknown label
    write_audio(root / "9.wav")
    lines.append("10.wav,Nobody,spoof")  # listed, not on disk
    lines.append("11.wav,Nobody")  # unparseable
    lines.append("0.wav,Alec Guinness,spoof")  # duplicate
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


def test_in_the_wild(tmp_path):
    root = build_itw(tmp_path)
    result = ingest_dataset(
        "in_the_wild", tmp_path, progress=False
    )  # the folder holding release_in_the_wild/ works too
    m = result.manifest
    assert len(m) == 9 and set(m["split"]) == {"eval"}
    assert m.groupby("label").size().to_dict() == {"bonafide": 5, "spoof": 4}
    assert row(result, "0")["speaker"] == "Alec Guinness" and row(result, "8")["speaker"] == "Doe, Jane"
    assert row(result, "1")["label"] == "bonafide" and isnull(row(result, "0")["attack"])
    why = reasons(result)
    assert why["9"] == "unknown label 'maybe'"
    assert why["10"] == "audio file missing"
    assert any(k.endswith("meta.csv:13") and v.startswith("unparseable protocol line") for k, v in why.items())
    assert "duplicate utt_id" in why.values()
    assert str(root) in row(result, "3")["path"]


def test_in_the_wild_wrong_root(tmp_path):
    write_audio(tmp_path / "0.wav")
    with pytest.raises(LayoutError, match=r"not an In-the-Wild root: expected meta.csv .* found: 0.wav"):
        ingest_dataset("in_the_wild", tmp_path, progress=False)


# ---------------------------------------------------------------- Fake-or-Real


def build_for(base, folder="for-2seconds", n=2):
    root = base / folder
    for subset in ("training", "validation", "testing"):
        for label in ("real", "fake"):
            for i in range(n):
                write_audio(root / subset / label / f"file{i}.wav_16k.wav_norm.wav_mono.wav_silence.wav", seconds=0.2)
    return root


def test_fake_or_real_single_version(tmp_path):
    root = build_for(tmp_path / "for-2sec")  # Kaggle nesting: for-2sec/for-2seconds/
    write_garbage(root / "testing" / "fake" / "broken.wav")
    result = ingest_dataset("fake_or_real", tmp_path / "for-2sec", progress=False)
    m = result.manifest
    assert set(m["version"]) == {"for-2sec"}
    assert m.groupby(["split", "label"]).size().to_dict() == {
        ("dev", "bonafide"): 2,
        ("dev", "spoof"): 2,
        ("eval", "bonafide"): 2,
        ("eval", "spoof"): 2,
        ("train", "bonafide"): 2,
        ("train", "spoof"): 2,
    }
    first = row(result, "for-2sec/training/real/file0.wav_16k.wav_norm.wav_mono.wav_silence")
    assert first["subset"] == "training" and first["label"] == "bonafide"
    assert next(iter(reasons(result).values())).startswith("unreadable audio")


def test_fake_or_real_several_versions_and_selection(tmp_path):
    build_for(tmp_path, "for-norm", n=1)
    build_for(tmp_path, "for-rerecorded", n=1)
    result = ingest_dataset("fake_or_real", tmp_path, progress=False)
    assert result.manifest.groupby("version").size().to_dict() == {"for-norm": 6, "for-rerecorded": 6}
    only = ingest_dataset("fake_or_real", tmp_path, version="for-rerec", progress=False)
    assert set(only.manifest["version"]) == {"for-rerecorded"} and len(only.manifest) == 6
    forced = ingest_dataset("fake_or_real", tmp_path / "for-norm", version="for-original", progress=False)
    assert set(forced.manifest["version"]) == {"for-original"}
    with pytest.raises(LayoutError, match="no Fake-or-Real version 'for-2sec'"):
        ingest_dataset("fake_or_real", tmp_path, version="for-2sec", progress=False)


def test_fake_or_real_wrong_root(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(LayoutError, match=r"expected training/, validation/ and testing/ .* found: train/"):
        ingest_dataset("fake_or_real", tmp_path, progress=False)


# ---------------------------------------------------------------- MLAAD + M-AILABS

META_HEADER = (
    "path|original_file|language|is_original_language|duration|training_data|model_name|architecture|transcript"
)


def build_mlaad(tmp_path):
    mlaad = tmp_path / "MLAAD"
    de = mlaad / "fake" / "de" / "tts_models_de_thorsten_vits"
    rows = [META_HEADER]
    for i in range(3):
        name = f"thorsten_vits_{i:04d}.wav"
        write_audio(de / name)
        rows.append(
            f"fake/de/tts_models_de_thorsten_vits/{name}|de_DE/by_book/female/eva_k/grune_haus/wavs/grune_haus_01_f{i:06d}.wav"
            f'|de|True|0.2|thorsten|tts_models/de/thorsten/vits|VITS|"Guten Tag", sagte sie {i}'
        )
    rows.append(
        "fake/de/tts_models_de_thorsten_vits/thorsten_vits_0009.wav|x|de|True|0.2|t|tts_models/de/thorsten/vits|VITS|weg"
    )
    rows.append("broken line without pipes")
    (de / "meta.csv").write_text("\n".join(rows) + "\n")
    en = mlaad / "fake" / "en" / "facebook_mms-tts-eng"  # no meta.csv: model from the folder
    write_audio(en / "mms_0001.wav")
    write_empty(en / "mms_0002.wav")

    mailabs = tmp_path / "M-AILABS"
    book = mailabs / "de_DE" / "by_book" / "female" / "eva_k" / "grune_haus" / "wavs"
    for i in range(4):
        write_audio(book / f"grune_haus_01_f{i:06d}.wav")
    write_audio(mailabs / "en_US" / "by_book" / "mix" / "sherlock" / "wavs" / "sherlock_01_f000001.wav")
    write_audio(
        mailabs / "en_US" / "by_book" / "male" / "elliot_miller" / "pink_fairy" / "wavs" / "pink_fairy_01_f000001.wav"
    )
    return mlaad, mailabs


def test_mlaad_with_mailabs(tmp_path):
    mlaad, mailabs = build_mlaad(tmp_path)
    result = ingest_dataset("mlaad", mlaad, bonafide_root=mailabs, progress=False)
    m = result.manifest
    assert m.groupby("label").size().to_dict() == {"bonafide": 6, "spoof": 4}
    assert set(m["split"]) == {"eval"}
    fake = row(result, "fake/de/tts_models_de_thorsten_vits/thorsten_vits_0001")
    assert (
        fake["attack"],
        fake["language"],
        fake["architecture"],
        fake["training_data"],
        fake["is_original_language"],
    ) == ("tts_models/de/thorsten/vits", "de", "VITS", "thorsten", "True")
    assert fake["original_file"].endswith("grune_haus_01_f000001.wav") and "transcript" not in m.columns
    assert row(result, "fake/en/facebook_mms-tts-eng/mms_0001")["attack"] == "facebook_mms-tts-eng"
    bona = row(result, "mailabs/de_DE/by_book/female/eva_k/grune_haus/wavs/grune_haus_01_f000002")
    assert (bona["speaker"], bona["language"], bona["locale"], bona["gender"], bona["book"]) == (
        "eva_k",
        "de",
        "de_DE",
        "female",
        "grune_haus",
    )
    assert isnull(row(result, "mailabs/en_US/by_book/mix/sherlock/wavs/sherlock_01_f000001")["speaker"])
    why = reasons(result)
    assert why["fake/de/tts_models_de_thorsten_vits/thorsten_vits_0009"] == "audio file missing"
    assert why["fake/en/facebook_mms-tts-eng/mms_0002"] == "empty file (0 bytes)"
    assert any(v.startswith("unparseable protocol line") for v in why.values())


def test_mlaad_referenced_bonafide_languages_and_transcript(tmp_path):
    mlaad, mailabs = build_mlaad(tmp_path)
    result = ingest_dataset(
        "mlaad",
        mlaad,
        bonafide_root=mailabs,
        bonafide="referenced",
        languages=["de"],
        keep_transcript=True,
        progress=False,
    )
    m = result.manifest
    assert m.groupby("label").size().to_dict() == {"bonafide": 3, "spoof": 3}
    assert set(m["language"]) == {"de"}
    assert (
        row(result, "fake/de/tts_models_de_thorsten_vits/thorsten_vits_0000")["transcript"]
        == '"Guten Tag", sagte sie 0'
    )
    fakes_only = ingest_dataset("mlaad", mlaad / "fake", progress=False)  # ROOT may be the fake folder itself
    assert set(fakes_only.manifest["label"]) == {"spoof"}


def test_mlaad_wrong_roots(tmp_path):
    mlaad, mailabs = build_mlaad(tmp_path)
    with pytest.raises(LayoutError, match=r"not an MLAAD root: expected fake/<language>/<model_name>/"):
        ingest_dataset("mlaad", mailabs, progress=False)
    with pytest.raises(LayoutError, match=r"not an M-AILABS root: expected <locale>/by_book/"):
        ingest_dataset("mlaad", mlaad, bonafide_root=mlaad, progress=False)


# ---------------------------------------------------------------- TIMIT-TTS + VidTIMIT


def build_timit(tmp_path):
    tts = tmp_path / "TIMIT-TTS"
    for subset in ("CLEAN", "AUG"):
        for system in ("fastpitch", "tacotron"):
            write_audio(tts / subset / "single_speaker" / system / "fadg0_sa1.wav")
        for speaker in ("fadg0", "mccs0"):
            write_audio(tts / subset / "multi_speaker" / "yourtts" / speaker / "sa1.wav")
    vid = tmp_path / "VidTIMIT"
    for speaker in ("fadg0", "mccs0"):
        write_audio(vid / speaker / "audio" / "sa1.wav")
        write_audio(vid / speaker / "audio" / "si1.wav")
    (vid / "fadg0" / "video").mkdir()
    return tts, vid


def test_timit_tts_with_vidtimit(tmp_path):
    tts, vid = build_timit(tmp_path)
    result = ingest_dataset("timit_tts", tts, bonafide_root=vid, progress=False)
    m = result.manifest
    assert m.groupby("label").size().to_dict() == {"bonafide": 4, "spoof": 4}
    assert set(m.loc[m.label == "spoof", "subset"]) == {"CLEAN"}
    single = row(result, "CLEAN/single_speaker/fastpitch/fadg0_sa1")
    assert single["attack"] == "fastpitch" and isnull(single["speaker"]) and single["speaker_mode"] == "single_speaker"
    multi = row(result, "CLEAN/multi_speaker/yourtts/mccs0/sa1")
    assert (multi["attack"], multi["speaker"]) == ("yourtts", "mccs0")
    real = row(result, "vidtimit/fadg0/si1")
    assert (real["label"], real["speaker"], real["subset"]) == ("bonafide", "fadg0", "vidtimit")
    every = ingest_dataset("timit_tts", tts, subsets="all", progress=False)
    assert every.manifest.groupby("subset").size().to_dict() == {"AUG": 4, "CLEAN": 4}


def test_timit_tts_wrong_roots(tmp_path):
    tts, vid = build_timit(tmp_path)
    with pytest.raises(LayoutError, match=r"no TIMIT-TTS subset folder\(s\) \['DTW'\]"):
        ingest_dataset("timit_tts", tts, subsets=["DTW"], progress=False)
    with pytest.raises(LayoutError, match="not a TIMIT-TTS root"):
        ingest_dataset("timit_tts", vid, progress=False)
    with pytest.raises(LayoutError, match="not a VidTIMIT root"):
        ingest_dataset("timit_tts", tts, bonafide_root=tts, progress=False)


# ---------------------------------------------------------------- ODSS


def test_odss_labels_from_folders(tmp_path):
    root = tmp_path / "ODSS"
    for lang in ("en", "de"):
        write_audio(root / "natural" / lang / "spk1_0001.wav")
        write_audio(root / "synthetic" / lang / "fastpitch-hifigan" / "spk1_0001.wav")
        write_audio(root / "synthetic" / lang / "vits" / "spk1_0001.wav")
    write_audio(root / "yourtts" / "english" / "spk2_0001.wav")  # a system folder without synthetic/
    write_audio(root / "misc" / "unknown.wav")
    result = ingest_dataset("odss", root, progress=False)
    m = result.manifest
    assert m.groupby("label").size().to_dict() == {"bonafide": 2, "spoof": 5}
    assert row(result, "synthetic/de/vits/spk1_0001")["attack"] == "vits"
    assert row(result, "synthetic/en/fastpitch-hifigan/spk1_0001")["language"] == "en"
    assert row(result, "yourtts/english/spk2_0001")["attack"] == "yourtts"
    assert row(result, "yourtts/english/spk2_0001")["language"] == "en"
    bona = row(result, "natural/de/spk1_0001")
    assert bona["label"] == "bonafide" and isnull(bona["attack"]) and bona["language"] == "de"
    assert reasons(result)["misc/unknown"].startswith("cannot tell bona fide from spoof")


def test_odss_through_a_protocol_and_wrong_root(tmp_path):
    root = tmp_path / "ODSS"
    write_audio(root / "a" / "x.wav")
    write_audio(root / "a" / "y.wav")
    (root / "meta.csv").write_text("audio,class,tts\na/x.wav,real,\na/y.wav,synthetic,vits\n")
    result = ingest_dataset(
        "odss",
        root,
        protocol="meta.csv",
        path_column="audio",
        label_column="class",
        attack_column="tts",
        progress=False,
    )
    assert set(result.manifest["dataset"]) == {"odss"}
    assert row(result, "a/y")["attack"] == "vits" and row(result, "a/x")["label"] == "bonafide"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match="holds no audio files"):
        ingest_dataset("odss", empty, progress=False)
    with pytest.raises(LayoutError, match="read this copy with protocol_csv"):
        ingest_dataset("odss", root / "a", progress=False)
