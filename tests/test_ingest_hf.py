"""hf: save_to_disk folders (embedded bytes and paths), audiofolder trees, Hub ids offline."""

from __future__ import annotations

import hashlib

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from helpers import audio_bytes, reasons, row, write_audio

from tasks.ingest.common import LayoutError, probe_mode
from tasks.ingest.registry import ingest_dataset

AUDIO_STRUCT = {"bytes": Value("binary"), "path": Value("string")}


def saved_dataset_with_bytes(tmp_path):
    """A DatasetDict whose audio bytes live inside the Arrow files (as Hub parquet datasets do).

    Built with a plain struct column and cast to Audio on load: writing an Audio feature
    would need torchcodec, which the project does not install.
    """
    features = Features(
        {
            "audio": AUDIO_STRUCT,
            "label": ClassLabel(names=["bonafide", "spoof"]),
            "attack": Value("string"),
            "speaker": Value("string"),
            "lang": Value("string"),
        }
    )
    train = Dataset.from_dict(
        {
            "audio": [{"bytes": audio_bytes(0.2, "WAV", i), "path": f"clip_{i}.wav"} for i in range(4)]
            + [{"bytes": audio_bytes(0.3, "FLAC", 9), "path": None}, {"bytes": b"garbage", "path": "bad.wav"}],
            "label": [0, 1, 1, 0, 1, 1],
            "attack": [None, "A01", "A02", None, "A03", "A04"],
            "speaker": ["s1", "s1", "s2", "s2", "s3", "s3"],
            "lang": ["en"] * 6,
        },
        features=features,
    )
    test = Dataset.from_dict(
        {
            "audio": [{"bytes": audio_bytes(0.2, "WAV", 20), "path": "clip_0.wav"}],
            "label": [1],
            "attack": ["A09"],
            "speaker": ["s9"],
            "lang": ["de"],
        },
        features=features,
    )
    path = tmp_path / "saved"
    DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    return path


def test_load_from_disk_materialises_embedded_bytes_once(tmp_path):
    from datasets import Audio, load_from_disk

    saved = saved_dataset_with_bytes(tmp_path)
    # Cast the struct to Audio(decode=False) and save again: the layout real HF audio datasets have.
    dd = load_from_disk(str(saved))
    dd = DatasetDict({k: v.cast_column("audio", Audio(decode=False)) for k, v in dd.items()})
    audio_saved = tmp_path / "audio_saved"
    dd.save_to_disk(str(audio_saved))

    with pytest.raises(ValueError, match="pass materialise_dir=DIR"):
        ingest_dataset("hf", audio_saved, attack_column="attack", speaker_column="speaker", progress=False)

    store = tmp_path / "store"
    result = ingest_dataset(
        "hf", audio_saved, attack_column="attack", speaker_column="speaker", materialise_dir=store, progress=False
    )
    m = result.manifest
    assert m.groupby("split").size().to_dict() == {"eval": 1, "train": 5}
    assert set(m["hf_split"]) == {"train", "test"} and set(m["lang"]) == {"en", "de"}
    first = row(result, "train/0000000")  # stems are not unique in train (one audio has no path): row indices
    assert (first["label"], first["speaker"]) == ("bonafide", "s1") and first["path"].endswith(".wav")
    assert row(result, "train/0000001")["attack"] == "A01"
    sniffed = row(result, "train/0000004")
    assert sniffed["path"].endswith(".flac") and sniffed["duration_s"] == pytest.approx(0.3)
    assert row(result, "eval/clip_0")["attack"] == "A09"
    assert next(iter(reasons(result).values())).startswith("unreadable audio")
    files = sorted(p for p in store.rglob("*") if p.is_file())
    assert len(files) == 7 and all(p.parent.name in ("train", "eval") for p in files)
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = ingest_dataset(
        "hf", audio_saved, attack_column="attack", speaker_column="speaker", materialise_dir=store, progress=False
    )
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes  # written once
    assert list(again.manifest["sha256"]) == list(m["sha256"])


def test_flac_materialisation_and_counting_mode(tmp_path):
    from datasets import Audio, load_from_disk

    saved = saved_dataset_with_bytes(tmp_path)
    ds = load_from_disk(str(saved))["train"].cast_column("audio", Audio(decode=False))
    single = tmp_path / "single"
    ds.save_to_disk(str(single))
    store = tmp_path / "store"
    with probe_mode("none"):
        counted = ingest_dataset("hf", single, materialise_dir=store, progress=False)
        unplaced = ingest_dataset("hf", single, progress=False)  # counting needs no materialise_dir
    assert len(counted.manifest) == 6 and not store.exists()  # counting writes nothing
    assert len(unplaced.manifest) == 6
    result = ingest_dataset("hf", single, materialise_dir=store, audio_format="flac", split="train", progress=False)
    m = result.manifest
    assert set(m["split"]) == {"train"} and "hf_split" not in m.columns
    assert sum(p.endswith(".flac") for p in m["path"]) == 5


def test_saved_dataset_with_paths_and_string_labels(tmp_path):
    clips = [write_audio(tmp_path / "wav" / f"c{i}.wav") for i in range(3)]
    ds = Dataset.from_dict(
        {
            "file": [str(c) for c in clips] + [str(tmp_path / "wav" / "gone.wav")],
            "y": ["real", "fake", "fake", "real"],
            "uid": ["a", "b", "c", "d"],
        }
    )
    ds.save_to_disk(str(tmp_path / "paths"))
    result = ingest_dataset(
        "hf", tmp_path / "paths", audio_column="file", label_column="y", id_column="uid", progress=False
    )
    assert sorted(result.manifest["utt_id"]) == ["a", "b", "c"]
    assert row(result, "a")["path"] == str(clips[0]) and row(result, "b")["label"] == "spoof"
    assert reasons(result) == {"d": "audio file missing"}
    assert row(result, "a")["sha256"] == hashlib.sha256(clips[0].read_bytes()).hexdigest()


def test_audiofolder_tree(tmp_path):
    root = tmp_path / "af"
    for split in ("train", "test"):
        for label in ("real", "fake"):
            for i in range(2):
                write_audio(root / split / label / f"{split}_{label}_{i}.wav")
    write_audio(root / "train" / "other" / "odd.wav")
    (root / "train" / "metadata.csv").write_text("file_name,speaker,generator\nfake/train_fake_0.wav,s7,gen-a\n")
    result = ingest_dataset("hf", root, speaker_column="speaker", attack_column="generator", progress=False)
    m = result.manifest
    assert m.groupby(["split", "label"]).size().to_dict() == {
        ("eval", "bonafide"): 2,
        ("eval", "spoof"): 2,
        ("train", "bonafide"): 2,
        ("train", "spoof"): 2,
    }
    tagged = row(result, "train/train_fake_0")
    assert (tagged["speaker"], tagged["attack"], tagged["hf_split"]) == ("s7", "gen-a", "train")
    assert reasons(result) == {"train/odd": "unknown label 'other'"}


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        LayoutError, match=r"'someone/deepfakes' is not a local folder and the Hugging Face Hub is offline"
    ):
        ingest_dataset("hf", "someone/deepfakes", progress=False)
    with pytest.raises(LayoutError, match="neither an existing folder"):
        ingest_dataset("hf", "not-a-hub-id", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match="holds no audio files and no saved dataset"):
        ingest_dataset("hf", empty, progress=False)
