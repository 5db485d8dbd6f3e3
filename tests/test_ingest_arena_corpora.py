"""The corpora the arenas evaluate on, from generated copies of their native layouts: SpoofCeleb,
Codecfake, ADD 2022/2023, DFADD, LibriSeVoc, SONAR, DiffSSD — counts per split × label × attack,
the resynthesis label policy, and a LayoutError naming expected vs found for the wrong corpus."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import write_audio

from tasks.ingest.common import LayoutError, OptionError
from tasks.ingest.registry import ingest_dataset


def counts(result) -> Counter:
    m = result.manifest
    return Counter(zip(m["split"], m["label"], [a if isinstance(a, str) else None for a in m["attack"]]))


def test_spoofceleb_from_metadata_and_from_folders(tmp_path):
    root = tmp_path / "spoofceleb"
    meta = {"train": [], "development": [], "evaluation": []}
    for folder, files in (
        ("train", [("a00", "id10001", "x-00001-001"), ("a01", "id10001", "x-00001-002"), ("a02", "id10002", "y-1")]),
        ("development", [("a00", "id10310", "d-1"), ("a06", "id10310", "d-2")]),
        ("evaluation", [("a00", "id10400", "e-1"), ("a00", "id10401", "e-2"), ("a17", "id10400", "e-3")]),
    ):
        for attack, speaker, clip in files:
            write_audio(root / "flac" / folder / attack / speaker / f"{clip}.flac")
            meta[folder].append(f"{attack}/{speaker}/{clip}.flac,{speaker},{attack}")
    (root / "metadata").mkdir()
    for folder, lines in meta.items():
        (root / "metadata" / f"{folder}.csv").write_text("file,speaker,attack\n" + "\n".join(lines) + "\n")
    # a listed file that is absent: one reject
    with (root / "metadata" / "evaluation.csv").open("a") as handle:
        handle.write("a17/id10400/gone.flac,id10400,a17\n")
    expected = {
        ("train", "bonafide", None): 1,
        ("train", "spoof", "a01"): 1,
        ("train", "spoof", "a02"): 1,
        ("dev", "bonafide", None): 1,
        ("dev", "spoof", "a06"): 1,
        ("eval", "bonafide", None): 2,
        ("eval", "spoof", "a17"): 1,
    }
    result = ingest_dataset("spoofceleb", tmp_path, progress=False)
    assert counts(result) == expected
    assert list(result.rejects["reason"]) == ["audio file missing"]
    row = result.manifest.set_index("utt_id").loc["development/a06/id10310/d-2"]
    assert row["speaker"] == "id10310"
    # without metadata/: the folders say the same
    for path in (root / "metadata").iterdir():
        path.unlink()
    (root / "metadata").rmdir()
    assert counts(ingest_dataset("spoofceleb", root, progress=False)) == expected
    assert set(ingest_dataset("spoofceleb", root, splits="eval", progress=False).manifest["split"]) == {"eval"}


def _codecfake(tmp_path):
    root = tmp_path / "Codecfake"
    layout = {
        "train": [
            ("SSB0001.wav", "real", "0"),
            ("F01_SSB0001.wav", "fake", "F01"),
            ("F02_p225_001.wav", "fake", "F02"),
        ],
        "dev": [("p226_001.wav", "real", "0"), ("F03_p226_001.wav", "fake", "F03")],
        "C1": [("p227_001.wav", "real", "0"), ("F01_p227_001.wav", "fake", "C1")],
        "A1": [("p228_001.wav", "real", "0"), ("a1_p228_001.wav", "fake", "A1")],
    }
    (root / "label").mkdir(parents=True)
    for subset, lines in layout.items():
        folder = root / subset if subset in ("train", "dev") else root / "test" / subset
        for name, _, _ in lines:
            write_audio(folder / name)
        (root / "label" / f"{subset}.txt").write_text("".join(f"{n} {label} {tag}\n" for n, label, tag in lines))
    return root


def test_codecfake_subsets_and_the_resynthesis_policy(tmp_path):
    root = _codecfake(tmp_path)
    result = ingest_dataset("codecfake", root, progress=False)
    assert counts(result) == {
        ("train", "bonafide", None): 1,
        ("train", "spoof", "F01"): 1,
        ("train", "spoof", "F02"): 1,
        ("dev", "bonafide", None): 1,
        ("dev", "spoof", "F03"): 1,
        ("eval", "bonafide", None): 2,
        ("eval", "spoof", "C1"): 1,
        ("eval", "spoof", "A1"): 1,
    }
    m = result.manifest.set_index("utt_id")
    assert m.loc["C1/F01_p227_001", "resynthesised"] and not m.loc["A1/a1_p228_001", "resynthesised"]
    assert set(m["label_policy"]) == {"resynthesised=spoof (corpus label)"}
    # bona fide: codec resynthesis becomes bona fide, the codec kept as resynthesis_system, no attack
    bona = ingest_dataset("codecfake", root, resynthesised="bonafide", progress=False)
    assert counts(bona) == {
        ("train", "bonafide", None): 3,
        ("dev", "bonafide", None): 2,
        ("eval", "bonafide", None): 3,
        ("eval", "spoof", "A1"): 1,
    }
    assert bona.manifest.set_index("utt_id").loc["C1/F01_p227_001", "resynthesis_system"] == "C1"
    assert set(bona.manifest["label_policy"]) == {"resynthesised=bonafide (option)"}
    # excluded: one reject per resynthesised row, naming the policy; the rest kept
    excluded = ingest_dataset("codecfake", root, resynthesised="excluded", subsets="C1,A1", progress=False)
    assert counts(excluded) == {("eval", "bonafide", None): 2, ("eval", "spoof", "A1"): 1}
    (reason,) = excluded.rejects["reason"]
    assert "excluded by the label policy (resynthesised=excluded (option))" in reason
    with pytest.raises(OptionError, match="allowed values: spoof, bonafide, excluded"):
        ingest_dataset("codecfake", root, resynthesised="maybe", progress=False)
    with pytest.raises(OptionError, match=r"subset\(s\) \['C9'\]"):
        ingest_dataset("codecfake", root, subsets="C9", progress=False)


@pytest.mark.parametrize("adapter", ["add2022", "add2023"])
def test_add_label_files_find_audio_by_name(tmp_path, adapter):
    root = tmp_path / "ADD"
    write_audio(root / "train" / "ADD_T_00000001.wav")
    write_audio(root / "train" / "ADD_T_00000002.wav")
    write_audio(root / "eval_wav" / "wav" / "ADD_E_00000001.wav")
    write_audio(root / "eval_wav" / "wav" / "ADD_E_00000002.wav")
    write_audio(root / "eval_wav" / "wav" / "ADD_E_00000003.wav")
    (root / "label").mkdir()
    (root / "label" / "train_label.txt").write_text("ADD_T_00000001.wav genuine\nADD_T_00000002.wav fake\n")
    (root / "label" / "eval_label.txt").write_text(
        "ADD_E_00000001.wav genuine\nADD_E_00000002.wav fake\nADD_E_00000003.wav fake 0.5-1.2\nADD_E_00000009.wav fake\n"
    )
    (root / "README.txt").write_text("not a label file\n")
    result = ingest_dataset(adapter, root, progress=False)
    assert counts(result) == {
        ("train", "bonafide", None): 1,
        ("train", "spoof", None): 1,
        ("eval", "bonafide", None): 1,
        ("eval", "spoof", None): 2,
    }
    assert list(result.rejects["reason"]) == ["audio file missing"]
    assert result.manifest.set_index("utt_id").loc["ADD_E_00000003", "field_3"] == "0.5-1.2"
    only_eval = ingest_dataset(adapter, root, labels="label/eval_label.txt", split="dev", progress=False)
    assert set(only_eval.manifest["split"]) == {"dev"} and len(only_eval.manifest) == 3


def test_dfadd_names_as_the_arena_protocol_lists_them(tmp_path):
    wav = tmp_path / "DFADD" / "test_converted2" / "wav"
    for name in (
        "p227_164_GradTTS",
        "p227_164_NaturalSpeech2",
        "p227_164_StyleTTS2",
        "p228_119_matcha",
        "p228_119_pflow",
    ):
        write_audio(wav / f"{name}.wav")
    for name in ("p228_364", "p227_368"):
        write_audio(wav / f"{name}.wav")
    write_audio(tmp_path / "DFADD" / "train" / "p230_001_GradTTS.wav")
    write_audio(tmp_path / "DFADD" / "train" / "notes.wav")
    result = ingest_dataset("dfadd", tmp_path / "DFADD", progress=False)
    assert counts(result) == {
        ("eval", "spoof", "GradTTS"): 1,
        ("eval", "spoof", "NaturalSpeech2"): 1,
        ("eval", "spoof", "StyleTTS2"): 1,
        ("eval", "spoof", "matcha"): 1,
        ("eval", "spoof", "pflow"): 1,
        ("eval", "bonafide", None): 2,
        ("train", "spoof", "GradTTS"): 1,
    }
    assert result.manifest.set_index("utt_id").loc["test_converted2/wav/p228_364", "speaker"] == "p228"
    assert len(result.rejects) == 1 and "file name is not" in result.rejects["reason"].iloc[0]


def _sonar(tmp_path):
    root = tmp_path / "SONAR" / "SONAR_dataset"
    for generator, n in (("PromptTTS2", 2), ("VALLE", 1), ("xTTS", 3)):
        for i in range(n):
            write_audio(root / generator / f"audio{i}.wav")
    for i in range(2):
        write_audio(root / "real_samples" / f"4077_13754_00000{i}_000000.wav")
    return tmp_path / "SONAR"


def test_sonar_a_folder_per_generator_plus_real_samples(tmp_path):
    result = ingest_dataset("sonar", _sonar(tmp_path), progress=False)
    assert counts(result) == {
        ("eval", "spoof", "PromptTTS2"): 2,
        ("eval", "spoof", "VALLE"): 1,
        ("eval", "spoof", "xTTS"): 3,
        ("eval", "bonafide", None): 2,
    }
    assert set(result.manifest.loc[result.manifest["label"] == "bonafide", "speaker"]) == {"4077"}


def _librisevoc(tmp_path):
    root = tmp_path / "LibriSeVoc"
    for folder in ("gt", "diffwave", "wavernn"):
        for utt in ("1034_121119_000003_000000", "19_198_000000_000001"):
            write_audio(root / folder / f"{utt}{'' if folder == 'gt' else '_gen'}.wav")
    return root


def test_librisevoc_vocoded_back_speech_under_each_policy(tmp_path):
    root = _librisevoc(tmp_path)
    result = ingest_dataset("librisevoc", root, progress=False)
    assert counts(result) == {
        ("eval", "bonafide", None): 2,
        ("eval", "spoof", "diffwave"): 2,
        ("eval", "spoof", "wavernn"): 2,
    }
    assert set(result.manifest["speaker"]) == {"1034", "19"}
    assert result.manifest["resynthesised"].sum() == 4
    bona = ingest_dataset("librisevoc", root, resynthesised="bonafide", split="train", progress=False)
    assert counts(bona) == {("train", "bonafide", None): 6}
    excluded = ingest_dataset("librisevoc", root, resynthesised="excluded", progress=False)
    assert counts(excluded) == {("eval", "bonafide", None): 2} and len(excluded.rejects) == 4


def test_diffssd_label_table_columns_recognised(tmp_path):
    root = tmp_path / "DiffSSD"
    rows = [
        ("real/ljspeech/LJ001-0001.wav", "real", "", "train"),
        ("real/librispeech/19-198-0001.wav", "real", "", "test"),
        ("fake/gradtts/0001.wav", "fake", "gradtts", "train"),
        ("fake/gradtts/0002.wav", "fake", "gradtts", "val"),
        ("fake/elevenlabs/0001.wav", "fake", "elevenlabs", "test"),
    ]
    for path, *_ in rows:
        write_audio(root / path)
    (root / "labels.csv").write_text(
        "Path,Label,Generator,Split\n" + "".join(f"{p},{label},{g},{s}\n" for p, label, g, s in rows)
    )
    result = ingest_dataset("diffssd", root, progress=False)
    assert counts(result) == {
        ("train", "bonafide", None): 1,
        ("eval", "bonafide", None): 1,
        ("train", "spoof", "gradtts"): 1,
        ("dev", "spoof", "gradtts"): 1,
        ("eval", "spoof", "elevenlabs"): 1,
    }


@pytest.mark.parametrize(
    "adapter, expected",
    [
        ("spoofceleb", "not a SpoofCeleb root: expected flac/"),
        ("codecfake", "not a Codecfake root: expected label/"),
        ("add2022", "not an ADD challenge release: expected label files"),
        ("add2023", "not an ADD challenge release"),
        ("dfadd", "not a DFADD root: expected wav files named"),
        ("librisevoc", "not a LibriSeVoc root: expected gt/"),
        ("sonar", "not a SONAR root: expected real_samples/"),
        ("diffssd", "expected one label table"),
    ],
)
def test_wrong_corpus_is_a_layout_error_naming_expected_and_found(tmp_path, adapter, expected):
    """Each adapter pointed at an In-the-Wild copy: what it expected, and what it found there."""
    write_audio(tmp_path / "release_in_the_wild" / "0.wav")
    (tmp_path / "release_in_the_wild" / "meta.txt").write_text("file,speaker,label\n")
    with pytest.raises(LayoutError, match=expected) as info:
        ingest_dataset(adapter, tmp_path / "release_in_the_wild", progress=False)
    assert "0.wav" in str(info.value) or "found" in str(info.value)


def test_ingest_summary_names_the_label_policy(tmp_path):
    summary = ingest_dataset("librisevoc", _librisevoc(tmp_path), progress=False).summary()
    assert summary.label_policy == ["resynthesised=spoof (corpus label)"] and summary.resynthesised_rows == 4
    assert ingest_dataset("sonar", _sonar(tmp_path), progress=False).summary().label_policy is None
