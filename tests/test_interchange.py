"""ASVspoof 5 / WeDefense score and key files, and `addgp metrics` per score set (issue 16, point 7).

Score tables are generated here: two detectors x two corpora with attack ids. The exported
files are also read back the way the ASVspoof 5 package's ``util.load_cm_scores_keys`` reads
them (tab-separated, header line, joined on ``filename``) and scored with the package's
procedures as tests/test_metrics.py writes them from their definitions.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_metrics import asvspoof_procedure_eer, direct_act_dcf, direct_cllr, sweep_min_dcf
from typer.testing import CliRunner

from addgp.metrics import METRIC_SPECS, compute_metrics
from flows.cli import app
from tasks.ingest.asvspoof5 import COLUMN_NAMES

METRIC_KEYS = tuple(METRIC_SPECS)  # every metric compute_metrics returns

runner = CliRunner()
PACKAGE_METRICS = ("eer", "min_dcf", "act_dcf", "cllr")  # what ASVspoof 5's evaluation.py --m t1 prints


def score_table(seed: int = 0, n: int = 150) -> pd.DataFrame:
    """Two detectors x two corpora; a third of each corpus bona fide, spoofs of four attacks
    that differ in difficulty; utt_ids are unique within a corpus, as in a manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for detector, separation in (("lr", 1.6), ("gp", 0.8)):
        for dataset in ("alpha", "beta"):
            for i in range(n):
                spoof = i % 3 != 0
                attack = f"A{i % 4 + 1:02d}" if spoof else None
                centre = -separation * (1 + 0.3 * (i % 4)) if spoof else separation
                rows.append(
                    {
                        "utt_id": f"{dataset[0].upper()}_{i:010d}",
                        "dataset": dataset,
                        "detector": detector,
                        "label": "spoof" if spoof else "bonafide",
                        "attack": attack,
                        "score": float(rng.normal(centre, 1.3)),
                    }
                )
    return pd.DataFrame(rows)


def metrics_json(*args: str) -> dict:
    result = runner.invoke(app, ["metrics", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def close(a: dict, b: dict, keys=METRIC_KEYS) -> bool:
    return all(np.isclose(a[k], b[k], rtol=1e-12, atol=1e-12) for k in keys)


@pytest.fixture
def table(tmp_path):
    frame = score_table()
    path = tmp_path / "scores.parquet"
    frame.to_parquet(path)
    return frame, path


def test_metrics_reports_every_detector_and_dataset_and_pools_only_when_asked(table):
    frame, path = table
    document = metrics_json(str(path))
    assert set(document) == {"groups"}  # four score sets: no top-level (pooled) EER any more
    groups = {(g["detector"], g["dataset"]): g for g in document["groups"]}
    assert list(groups) == [("lr", "alpha"), ("lr", "beta"), ("gp", "alpha"), ("gp", "beta")]
    for (detector, dataset), entry in groups.items():
        rows = frame[(frame["detector"] == detector) & (frame["dataset"] == dataset)]
        assert close(entry, compute_metrics(rows["score"], rows["label"])) and entry["note"] is None
        assert entry["n_bonafide"] == 50 and entry["n_spoof"] == 100
    assert groups[("lr", "alpha")]["eer"] < groups[("gp", "alpha")]["eer"]

    pooled = metrics_json(str(path), "--pool")
    assert pooled["groups"] == document["groups"] and pooled["pooled"]["n_groups"] == 4
    assert close(pooled["pooled"], compute_metrics(frame["score"], frame["label"]))


def test_metrics_by_attack_scores_each_attack_against_all_bona_fide(table):
    frame, path = table
    document = metrics_json(str(path), "--by", "attack")
    for entry in document["groups"]:
        rows = frame[(frame["detector"] == entry["detector"]) & (frame["dataset"] == entry["dataset"])]
        bona = rows[rows["label"] == "bonafide"]
        attacks = {a["attack"]: a for a in entry["by_attack"]}
        assert sorted(attacks) == ["A01", "A02", "A03", "A04"]
        for attack, values in attacks.items():
            part = pd.concat([bona, rows[rows["attack"] == attack]])
            assert close(values, compute_metrics(part["score"], part["label"]))
        assert sum(a["n_spoof"] for a in attacks.values()) == entry["n_spoof"]
        assert all(a["n_bonafide"] == entry["n_bonafide"] for a in attacks.values())


def test_one_score_set_keeps_the_flat_contract_object(table):
    frame, path = table
    one = frame[(frame["detector"] == "lr") & (frame["dataset"] == "beta")]
    single = path.with_name("one.csv")
    one.to_csv(single, index=False)
    document = metrics_json(str(single))
    assert document["detector"] == "lr" and document["dataset"] == "beta"
    assert close(document, compute_metrics(one["score"], one["label"]))
    by_attack = metrics_json(str(single), "--by", "attack")
    assert len(by_attack["groups"]) == 1 and len(by_attack["groups"][0]["by_attack"]) == 4


def test_metrics_by_a_missing_column_exits_2(table):
    frame, path = table
    plain = path.with_name("plain.csv")
    frame.drop(columns="attack").to_csv(plain, index=False)
    result = runner.invoke(app, ["metrics", str(plain), "--by", "attack"])
    assert result.exit_code == 2 and "no column 'attack'" in result.output


def test_asvspoof5_export_round_trip_equals_addgp_metrics(table, tmp_path):
    _frame, path = table
    out = tmp_path / "exported"
    result = runner.invoke(app, ["export-scores", str(path), "--format", "asvspoof5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert len(files) == 4
    original = {(g["detector"], g["dataset"]): g for g in metrics_json(str(path), "--by", "attack")["groups"]}
    for written in files:
        scores_file, keys_file = written["scores"], written["keys"]
        with open(scores_file) as scores_handle, open(keys_file) as keys_handle:
            assert scores_handle.readline() == "filename\tcm-score\n"
            assert keys_handle.readline() == "filename\tcm-label\tattack\n"
        expected = original[(written["detector"], written["dataset"])]

        read_back = metrics_json(scores_file, "--key", keys_file)
        assert close(read_back, expected)
        by_attack = metrics_json(scores_file, "--key", keys_file, "--by", "attack")["groups"][0]["by_attack"]
        assert all(close(a, b) for a, b in zip(by_attack, expected["by_attack"], strict=True))

        # As the ASVspoof 5 package loads them: header line, tab-separated, joined on filename.
        package = (
            pd.read_csv(scores_file, sep="\t", header=0)
            .set_index("filename")
            .join(pd.read_csv(keys_file, sep="\t", header=0).set_index("filename"))
        )
        bona = package.loc[package["cm-label"] == "bonafide", "cm-score"].to_numpy()
        spoof = package.loc[package["cm-label"] == "spoof", "cm-score"].to_numpy()
        reference = {
            "eer": asvspoof_procedure_eer(bona, spoof)[0],
            "min_dcf": sweep_min_dcf(bona, spoof),
            "act_dcf": direct_act_dcf(bona, spoof),
            "cllr": direct_cllr(bona, spoof),
        }
        assert close(reference, expected, PACKAGE_METRICS)


def test_exported_cm_score_is_the_llr_unchanged(table, tmp_path):
    """ASVspoof 5's cm-score is higher = bona fide, as addgp's LLR: no sign flip on the way."""
    frame, path = table
    out = tmp_path / "wd"
    assert runner.invoke(app, ["export-scores", str(path), "--format", "wedefense", "--out", str(out)]).exit_code == 0
    written = pd.read_csv(out / "gp" / "beta" / "cm-scores.tsv", sep="\t", dtype={"filename": str})
    rows = frame[(frame["detector"] == "gp") & (frame["dataset"] == "beta")]
    assert written["filename"].tolist() == rows["utt_id"].tolist()
    assert written["cm-score"].tolist() == rows["score"].tolist()  # every digit written


@pytest.mark.parametrize("layout", ["public", "challenge"])
def test_an_asvspoof5_protocol_file_serves_as_the_key(table, tmp_path, layout):
    frame, path = table
    out = tmp_path / "exported"
    assert runner.invoke(app, ["export-scores", str(path), "--out", str(out)]).exit_code == 0
    rows = frame[(frame["detector"] == "lr") & (frame["dataset"] == "alpha")].sample(frac=1.0, random_state=1)
    # a SPEAKER_ID header line is read past, as the ingest adapter does
    lines = [COLUMN_NAMES["public"]] if layout == "public" else []
    for r in rows.itertuples():
        attack = r.attack or "bonafide"
        if (
            layout == "public"
        ):  # SPEAKER_ID FLAC_FILE_NAME GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP
            lines.append(f"E_0101 {r.utt_id} F - - 0 {'AC1' if r.attack else 'bonafide'} {attack} {r.label} -")
        else:  # SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK KEY
            lines.append(f"D_0101 {r.utt_id} M - {attack} {r.label}")
    protocol = tmp_path / "ASVspoof5.eval.track_1.tsv"
    protocol.write_text("\n".join(lines) + "\n")
    scores_file = str(out / "lr" / "alpha" / "cm-scores.tsv")
    expected = metrics_json(scores_file, "--key", str(out / "lr" / "alpha" / "cm-keys.tsv"), "--by", "attack")
    assert metrics_json(scores_file, "--key", str(protocol), "--by", "attack") == expected


def test_interchange_errors_exit_2_naming_the_file_and_the_fix(table, tmp_path):
    frame, path = table
    out = tmp_path / "exported"
    assert runner.invoke(app, ["export-scores", str(path), "--out", str(out)]).exit_code == 0
    scores_file, keys_file = out / "lr" / "alpha" / "cm-scores.tsv", out / "lr" / "alpha" / "cm-keys.tsv"

    headless = tmp_path / "headless.tsv"
    headless.write_text("".join(scores_file.read_text().splitlines(keepends=True)[1:]))
    result = runner.invoke(app, ["metrics", str(headless), "--key", str(keys_file)])
    assert result.exit_code == 2 and "headless.tsv" in result.output and "filename\\tcm-score" in result.output

    fewer = tmp_path / "fewer.tsv"
    fewer.write_text("".join(scores_file.read_text().splitlines(keepends=True)[:-2]))
    result = runner.invoke(app, ["metrics", str(fewer), "--key", str(keys_file)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "0 only in the scores" in message and "2 only in the keys" in message

    result = runner.invoke(app, ["metrics", str(scores_file)])
    assert result.exit_code == 2 and "--key" in result.output

    bad_format = runner.invoke(app, ["export-scores", str(path), "--format", "bosaris", "--out", str(out)])
    assert bad_format.exit_code == 2 and "asvspoof5, wedefense, df-arena" in bad_format.output

    twice = path.with_name("twice.parquet")
    pd.concat([frame, frame.head(1)]).to_parquet(twice)
    result = runner.invoke(app, ["export-scores", str(twice), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "repeat a trial" in result.output and "twice.parquet" in result.output


def test_conditions_are_score_sets_of_their_own_and_an_empty_condition_column_is_none(table, tmp_path):
    frame, path = table
    degraded = frame.assign(condition="codec-mp3", score=frame["score"] * 0.5)
    both = pd.concat([frame.assign(condition="clean"), degraded], ignore_index=True)
    both_path = tmp_path / "robustness.parquet"
    both.to_parquet(both_path)
    groups = metrics_json(str(both_path))["groups"]
    assert len(groups) == 8 and {g["condition"] for g in groups} == {"clean", "codec-mp3"}
    out = tmp_path / "exported"
    result = runner.invoke(app, ["export-scores", str(both_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "gp" / "beta" / "codec-mp3" / "cm-scores.tsv").is_file()

    unnamed = tmp_path / "unnamed.parquet"
    frame.assign(condition=None).to_parquet(unnamed)
    assert metrics_json(str(unnamed)) == metrics_json(str(path))


def _read_as_the_arena_toolkit_does(score_file, protocol_file) -> pd.DataFrame:
    """The Speech DF Arena's compute_metrics reads: the protocol CSV with its header, the score
    file space-separated without one, both indexed by file_name, joined; every protocol file
    must have a score."""
    protocol = pd.read_csv(protocol_file, names=["file_name", "label"], index_col="file_name", header=0)
    scores = pd.read_csv(score_file, names=["file_name", "cm_score"], index_col="file_name", sep=" ")
    assert set(protocol.index) <= set(scores.index)
    return protocol.join(scores)


def test_df_arena_export_per_corpus_reads_back_as_the_toolkit_reads_it(table, tmp_path):
    frame, path = table
    out = tmp_path / "arena"
    result = runner.invoke(app, ["export-scores", str(path), "--format", "df-arena", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert {(f["detector"], f["dataset"]) for f in files} == {(d, s) for d in ("lr", "gp") for s in ("alpha", "beta")}
    assert sorted(p.name for p in (out / "protocol_files").iterdir()) == ["alpha.csv", "beta.csv"]
    for detector in ("lr", "gp"):
        for dataset in ("alpha", "beta"):
            joined = _read_as_the_arena_toolkit_does(
                out / "scores" / detector / f"{dataset}.txt", out / "protocol_files" / f"{dataset}.csv"
            )
            mine = frame[(frame["detector"] == detector) & (frame["dataset"] == dataset)].set_index("utt_id")
            assert joined["label"].to_dict() == mine["label"].to_dict()
            # cm_score is the LLR unchanged (higher = bona fide for both), every digit kept
            assert np.array_equal(joined.loc[mine.index, "cm_score"].to_numpy(), mine["score"].to_numpy())
    # EER from the exported pair equals addgp's own for the same scores
    ours = metrics_json(str(path))
    joined = _read_as_the_arena_toolkit_does(out / "scores" / "lr" / "alpha.txt", out / "protocol_files" / "alpha.csv")
    exported = compute_metrics(joined["cm_score"].to_numpy(), joined["label"].to_numpy())
    entry = next(g for g in ours["groups"] if g["detector"] == "lr" and g["dataset"] == "alpha")
    assert np.isclose(exported["eer"], entry["eer"])


def test_df_arena_export_names_files_as_the_arena_protocol_did(tmp_path):
    """With the manifest of an arena CSV ingested through path_prefix, file_name is the arena's
    own absolute path, so the arena's protocol file joins the exported scores unchanged."""
    manifest = pd.DataFrame(
        {
            "utt_id": ["a", "b"],
            "dataset": ["sonar", "sonar"],
            "path": ["/mnt/SONAR/real_samples/a.wav", "/mnt/SONAR/VALLE/b.wav"],
            "protocol_path": ["/data/data/AntiSpoofing-Datasets/SONAR/real_samples/a.wav", None],
            "split": "eval",
            "label": ["bonafide", "spoof"],
            "attack": [None, "VALLE"],
            "speaker": None,
            "duration_s": 1.0,
            "sha256": ["0" * 64, "1" * 64],
        }
    )
    manifest_path = tmp_path / "sonar.parquet"
    manifest.to_parquet(manifest_path)
    scores = pd.DataFrame(
        {
            "utt_id": ["a", "b"],
            "dataset": "sonar",
            "detector": "lr",
            "label": ["bonafide", "spoof"],
            "score": [2.0, -1.0],
        }
    )
    scores_path = tmp_path / "scores.parquet"
    scores.to_parquet(scores_path)
    out = tmp_path / "arena"
    result = runner.invoke(
        app,
        [
            "export-scores",
            str(scores_path),
            "--format",
            "df-arena",
            "--manifest",
            str(manifest_path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = (out / "scores" / "lr" / "sonar.txt").read_text().splitlines()
    assert lines == ["/data/data/AntiSpoofing-Datasets/SONAR/real_samples/a.wav 2.0", "/mnt/SONAR/VALLE/b.wav -1.0"]
    assert (out / "protocol_files" / "sonar.csv").read_text().splitlines()[0] == "file_name,label"
    # a scored utterance the manifests do not hold: exit 2 naming the dataset and the fix
    missing = runner.invoke(
        app,
        [
            "export-scores",
            str(scores_path),
            "--format",
            "df-arena",
            "--manifest",
            str(manifest_path.with_name("x.parquet")),
            "--out",
            str(out),
        ],
    )
    assert missing.exit_code == 2
    other = manifest.assign(utt_id=["a", "zz"])
    other.to_parquet(tmp_path / "other.parquet")
    partial = runner.invoke(
        app,
        [
            "export-scores",
            str(scores_path),
            "--format",
            "df-arena",
            "--manifest",
            str(tmp_path / "other.parquet"),
            "--out",
            str(out),
        ],
    )
    assert partial.exit_code == 2 and "not in the manifests given" in partial.output
    wrong = runner.invoke(app, ["export-scores", str(scores_path), "--manifest", str(manifest_path), "--out", str(out)])
    assert wrong.exit_code == 2 and "df-arena format only" in wrong.output
