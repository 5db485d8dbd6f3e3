"""Benchmarks' protocol files as shipped: absolute paths under another machine's data root,
mapped with protocol_csv's ``path_prefix`` (Speech DF Arena layout: ``file_name,label``)."""

from __future__ import annotations

import pytest
from helpers import write_audio

from tasks.ingest.common import LayoutError, OptionError
from tasks.ingest.registry import ingest_dataset

ARENA_ROOT = "/data/data/AntiSpoofing-Datasets"
GPFS_ROOT = "/gpfs/mariana/smbgroup/langtechlab/data"


def _sonar_protocol(tmp_path):
    """An arena-style SONAR protocol (as the arena's protocol_files/sonar.csv: absolute paths
    under its authors' disk) and the same files below tmp_path/mnt."""
    local = tmp_path / "mnt" / "SONAR" / "SONAR_dataset"
    lines = ["file_name,label"]
    for generator, n in (("PromptTTS2", 2), ("VALLE", 3)):
        for i in range(n):
            write_audio(local / generator / f"audio{i}.wav")
            lines.append(f"{ARENA_ROOT}/SONAR/SONAR_dataset/{generator}/audio{i}.wav,spoof")
    for i in range(4):
        write_audio(local / "real_samples" / f"4077_13754_00000{i}_000000.wav")
        lines.append(f"{ARENA_ROOT}/SONAR/SONAR_dataset/real_samples/4077_13754_00000{i}_000000.wav,bonafide")
    protocol = tmp_path / "protocol_files" / "sonar.csv"
    protocol.parent.mkdir()
    protocol.write_text("\n".join(lines) + "\n")
    return protocol


def test_arena_csv_with_foreign_absolute_paths_ingests_unchanged(tmp_path):
    protocol = _sonar_protocol(tmp_path)
    # DFADD's protocol names a second, different root: several prefixes in one map
    dfadd_local = tmp_path / "gpfs_copy" / "DFADD" / "test_converted2" / "wav"
    write_audio(dfadd_local / "p227_164_GradTTS.wav")
    write_audio(dfadd_local / "p228_364.wav")
    with protocol.open("a") as handle:
        handle.write(f"{GPFS_ROOT}/DFADD/test_converted2/wav/p227_164_GradTTS.wav,spoof\n")
        handle.write(f"{GPFS_ROOT}/DFADD/test_converted2/wav/p228_364.wav,bonafide\n")
    result = ingest_dataset(
        "protocol_csv",
        protocol,
        dataset="sonar",
        # as typed on the command line: --option path_prefix='{…: …, …: …}'
        path_prefix=f"{{{ARENA_ROOT}: {tmp_path / 'mnt'}, {GPFS_ROOT}: {tmp_path / 'gpfs_copy'}}}",
        progress=False,
    )
    assert result.rejects.empty, result.rejects.to_dict("records")
    summary = result.summary()
    assert summary.by_split == {"eval": {"bonafide": 5, "spoof": 6}}
    m = result.manifest.set_index("protocol_path")
    first = f"{ARENA_ROOT}/SONAR/SONAR_dataset/PromptTTS2/audio0.wav"
    assert m.loc[first, "path"] == str(tmp_path / "mnt" / "SONAR" / "SONAR_dataset" / "PromptTTS2" / "audio0.wav")
    assert m.loc[f"{GPFS_ROOT}/DFADD/test_converted2/wav/p228_364.wav", "label"] == "bonafide"
    # ids are the paths below the prefix: the same on any machine
    assert m.loc[first, "utt_id"] == "SONAR/SONAR_dataset/PromptTTS2/audio0"


def test_longest_prefix_wins_and_whole_components_only(tmp_path):
    write_audio(tmp_path / "deep" / "x.wav")
    write_audio(tmp_path / "shallow" / "b" / "y.wav")
    protocol = tmp_path / "p.csv"
    protocol.write_text("file_name,label\n/data/a/b/x.wav,spoof\n/data/a/b/y.wav,bonafide\n/data/ab/z.wav,spoof\n")
    result = ingest_dataset(
        "protocol_csv",
        protocol,
        path_prefix={"/data/a": str(tmp_path / "shallow"), "/data/a/b/x.wav": str(tmp_path / "deep" / "x.wav")},
        progress=False,
    )
    assert sorted(result.manifest["path"]) == [str(tmp_path / "deep" / "x.wav"), str(tmp_path / "shallow/b/y.wav")]
    (reason,) = result.rejects["reason"]
    assert "'/data/ab/z.wav' matches no prefix of path_prefix {/data/a/b/x.wav:" in reason
    assert "e.g. path_prefix='{" in reason and "/data/ab: /where/it/is/here}'" in reason


def test_unmatched_rows_are_rejected_one_each_naming_the_map(tmp_path):
    protocol = _sonar_protocol(tmp_path)
    with protocol.open("a") as handle:
        handle.write("/elsewhere/FoR/for-norm/testing/real/file1.wav,bonafide\n")
        handle.write("/elsewhere/FoR/for-norm/testing/fake/file1.wav,spoof\n")
    result = ingest_dataset("protocol_csv", protocol, path_prefix={ARENA_ROOT: str(tmp_path / "mnt")}, progress=False)
    assert len(result.manifest) == 9
    assert len(result.rejects) == 2
    for reason in result.rejects["reason"]:
        assert f"path_prefix {{{ARENA_ROOT}: {tmp_path / 'mnt'}}}" in reason
        assert "/elsewhere/FoR/for-norm/testing/" in reason and "/where/it/is/here" in reason


def test_every_row_rejected_is_a_layout_error_naming_the_map(tmp_path):
    protocol = _sonar_protocol(tmp_path)
    # no map at all: the arena's file as downloaded
    with pytest.raises(LayoutError, match=r"every one of its 9 rows .* path_prefix='\{/their/root"):
        ingest_dataset("protocol_csv", protocol, progress=False)
    # a map whose local side is wrong: every mapped file is missing
    with pytest.raises(
        LayoutError, match=r"every one of its 9 rows.*path_prefix is \{/data/data/AntiSpoofing-Datasets: "
    ):
        ingest_dataset("protocol_csv", protocol, path_prefix={ARENA_ROOT: str(tmp_path / "nowhere")}, progress=False)
    with pytest.raises(OptionError, match="path_prefix"):
        ingest_dataset("protocol_csv", protocol, path_prefix={ARENA_ROOT: ""}, progress=False)


def test_rows_rejected_for_other_reasons_are_not_a_layout_error(tmp_path):
    write_audio(tmp_path / "a.wav")
    protocol = tmp_path / "p.csv"
    # every row rejected, but not every one for its path (and not every label unknown: a column
    # of only unknown labels is its own LayoutError, which suggests label_map)
    protocol.write_text("file_name,label\na.wav,weird\nmissing.wav,spoof\n")
    result = ingest_dataset("protocol_csv", protocol, progress=False)
    reasons = list(result.rejects["reason"])
    assert result.manifest.empty and len(reasons) == 2
    assert reasons[0] == "unknown label 'weird'" and "missing" in reasons[1]


def test_benchmark_arena_config_lists_the_fourteen_protocols():
    from pathlib import Path

    from addgp.config import load_config
    from tasks.ingest.registry import check_options

    config = load_config(Path(__file__).parents[1] / "configs" / "benchmark-arena.yaml", check_paths=False)
    assert config.eval_datasets == [
        "asvspoof_2019",
        "asvspoof_2021_la",
        "asvspoof_2021_df",
        "asvspoof_2024",
        "fake_or_real",
        "codecfake",
        "add_2022_track_1",
        "add_2022_track_3",
        "add_2023_round_1",
        "add_2023_round_2",
        "dfadd",
        "librisevoc",
        "sonar",
        "in_the_wild",
    ]
    assert config.evaluate.training_overlap == "exclude"
    for dataset in config.datasets:
        check_options(dataset.adapter, dict(dataset.options))
        if dataset.adapter == "protocol_csv":
            assert ARENA_ROOT in dataset.options["path_prefix"] and GPFS_ROOT in dataset.options["path_prefix"]
