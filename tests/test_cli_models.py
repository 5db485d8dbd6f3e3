"""`addgp train`, `adapt` and `score` through the CLI on generated audio."""

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from addgp.contracts import p_spoof_from_score
from flows.cli import app
from storage.manifests import write_manifest
from storage.reports import PROVENANCE_COLUMNS
from tasks.embed.loading import build_random_encoder

runner = CliRunner()


@pytest.fixture
def trained(tmp_path, audio_manifest):
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest.assign(split=["train"] * 8 + ["dev"] * 4), manifest)
    store, models = tmp_path / "store", tmp_path / "models"
    embedded = runner.invoke(app, ["embed", str(manifest), "--encoder", "tiny-random", "--store", str(store)])
    assert embedded.exit_code == 0, embedded.output
    result = runner.invoke(
        app,
        [
            "train",
            str(manifest),
            "--store",
            str(store),
            "--models",
            str(models),
            "--name",
            "lr",
            "--encoder",
            "tiny-random",
            "--datasets",
            "alpha,beta",
            "--param",
            "C=1.0",
        ],
    )
    assert result.exit_code == 0, result.output
    return manifest, store, models, json.loads(result.stdout)


def adapt(trained, name: str, where: str, *options: str):
    """``addgp adapt`` of the model ``name`` with the shots of the fixture's manifest that match ``where``."""
    manifest, store, models, _ = trained
    shots = ["--shots", str(manifest), "--where", where, "--store", str(store), "--training-manifest", str(manifest)]
    return runner.invoke(app, ["adapt", str(models / name), *shots, "--models", str(models), *options])


def test_train_registers_a_version_with_a_card(trained):
    _, _, models, result = trained
    assert result["version"] == 1 and (models / "lr" / "v1" / "weights.safetensors").is_file()
    card = json.loads((models / "lr" / "v1" / "model_card.json").read_text())
    assert (
        card["encoder"] == "tiny-random"
        and card["random_weight_encoder"] is True
        and "random" in card["warning"].lower()
    )
    assert card["training_data"]["splits"] == ["train"] and card["training_data"]["dev_splits"] == ["dev"]


def test_score_prints_one_line_per_file(trained, audio_manifest, tmp_path):
    _, _, models, _ = trained
    files = list(audio_manifest["path"][:3])
    folder = tmp_path / "folder"
    folder.mkdir()
    for path in audio_manifest["path"][3:5]:
        shutil.copy(path, folder)
    (folder / "notes.txt").write_text("not audio")
    result = runner.invoke(app, ["score", *files, str(folder), "--model", str(models / "lr")])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.rstrip("\n").split("\n")  # strip() would eat the empty last cells
    assert header.split("\t") == ["path", "score", "p_spoof", "variance", "status", "error"]
    assert len(lines) == 5 and lines[0].split("\t")[0] == files[0]
    for line in lines:
        path, score, p_spoof, variance, status, error = line.split("\t")
        assert status == "ok" and variance == "" and error == ""
        assert np.isclose(float(p_spoof), p_spoof_from_score(float(score)), atol=1e-4)

    as_json = runner.invoke(app, ["score", files[0], "--model", str(models / "lr" / "v1"), "--json"])
    row = json.loads(as_json.stdout)
    assert set(row) == {"path", "status", "score", "p_spoof", "variance", "error", *PROVENANCE_COLUMNS}
    assert row["status"] == "ok" and row["variance"] is None and row["error"] is None
    assert (row["model_name"], row["model_version"]) == ("lr", 1)


def test_score_reports_unreadable_files_and_missing_paths(trained, audio_manifest, tmp_path):
    """Issue 16: with one bad file the good one printed `error: nan`, no header, exit 0."""
    _, _, models, _ = trained
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    good = audio_manifest["path"][0]
    result = runner.invoke(app, ["score", good, str(broken), "--model", str(models / "lr")])
    assert result.exit_code == 2
    header, *lines = result.stdout.rstrip("\n").split("\n")  # strip() would eat the empty last cells
    rows = [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]
    assert [r["path"] for r in rows] == [good, str(broken)] and all(len(r) == 6 for r in rows)
    assert rows[0]["status"] == "ok" and rows[0]["error"] == "" and float(rows[0]["score"]) == float(rows[0]["score"])
    assert rows[1]["status"] == "error" and rows[1]["error"] and rows[1]["score"] == ""
    assert "nan" not in result.stdout.lower()
    assert "1 of 2 file(s) could not be scored" in result.stderr
    as_json = runner.invoke(app, ["score", good, str(broken), "--model", str(models / "lr"), "--json"])
    assert as_json.exit_code == 2
    first, second = (json.loads(line) for line in as_json.stdout.strip().split("\n"))
    assert first["status"] == "ok" and first["error"] is None and second["status"] == "error" and second["error"]
    missing = runner.invoke(app, ["score", str(tmp_path / "nope.wav"), "--model", str(models / "lr")])
    assert missing.exit_code == 2 and "nope.wav" in missing.output


def test_score_lines_keep_one_row_per_file_whatever_the_error_text():
    import pandas as pd

    from tasks.evaluate.score_files import SCORE_FILE_COLUMNS, score_table_lines

    table = pd.DataFrame(
        [
            {"path": "a.wav", "status": "ok", "score": 1.5, "p_spoof": 0.18, "variance": 0.25, "error": None},
            {
                "path": "b.wav",
                "status": "error",
                "score": None,
                "p_spoof": None,
                "variance": None,
                "error": "bad\tfile\nhere",
            },
        ],
        columns=SCORE_FILE_COLUMNS,
    )
    assert score_table_lines(table) == [
        "path\tscore\tp_spoof\tvariance\tstatus\terror",
        "a.wav\t1.5000\t0.1800\t0.25\tok\t",
        "b.wav\t\t\t\terror\tbad file here",
    ]


def test_score_refuses_a_model_whose_encoder_is_not_here(tmp_path, audio_manifest):
    checkpoint = tmp_path / "xlsr-local"
    build_random_encoder("tiny-random").save_pretrained(checkpoint)
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest, manifest)
    store, models = tmp_path / "store", tmp_path / "models"
    assert (
        runner.invoke(app, ["embed", str(manifest), "--encoder", str(checkpoint), "--store", str(store)]).exit_code == 0
    )
    trained = runner.invoke(
        app,
        [
            "train",
            str(manifest),
            "--store",
            str(store),
            "--models",
            str(models),
            "--name",
            "lr",
            "--encoder",
            str(checkpoint),
            "--dev-splits",
            "",
        ],
    )
    assert trained.exit_code == 0, trained.output
    shutil.rmtree(checkpoint)  # the weights are gone from this machine
    result = runner.invoke(app, ["score", audio_manifest["path"][0], "--model", str(models / "lr")])
    assert result.exit_code == 3
    assert str(checkpoint) in result.output


def test_adapt_writes_the_next_version(trained, audio_manifest, tmp_path):
    _manifest, _store, models, _ = trained
    result = adapt(trained, "lr", "dataset=beta", "--replay", "6")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # Issue 23 item 11: a manual adaptation has a name of its own, so lr's latest stays lr's.
    assert (out["name"], out["version"], out["shots"]) == ("lr-adapt", 1, 4) and not (models / "lr" / "v2").exists()
    card = json.loads((models / "lr-adapt" / "v1" / "model_card.json").read_text())
    assert card["training_data"]["shots"] == 4
    # The card names the parent model and version, and lists the parent's training data plus the shots.
    parent = json.loads((models / "lr" / "v1" / "model_card.json").read_text())
    assert card["training_data"]["adapted_from"] == str(models / "lr" / "v1")
    assert card["training_data"]["datasets"] == parent["training_data"]["datasets"]
    (step,) = card["training_data"]["adaptations"]
    assert step["parent"] == {"name": "lr", "version": 1, "digest": parent["digest"]}
    assert (step["datasets"], step["rows"], step["n_bonafide"] + step["n_spoof"]) == (["beta"], 4, 4)
    assert step["snapshot_sha256"] == card["training_data"]["shots_sha256"]
    bad = adapt(trained, "lr", "nocolumn=x")
    assert bad.exit_code == 2 and "nocolumn" in bad.output
    same = adapt(trained, "lr", "dataset=beta", "--name", "lr")
    assert same.exit_code == 2 and "the parent's own name" in same.output


def test_training_on_unchanged_inputs_writes_no_new_version(trained):
    """Issue 23 item 11: the same data and config give the newest version back, not an identical vN+1."""
    manifest, store, models, first = trained
    args = ["train", str(manifest), "--store", str(store), "--models", str(models), "--name", "lr"]
    args += ["--encoder", "tiny-random", "--datasets", "alpha,beta"]
    again = runner.invoke(app, [*args, "--param", "C=1.0"])
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert (out["version"], out["reused"]) == (first["version"], True) and not (models / "lr" / "v2").exists()
    card = json.loads((models / "lr" / "v1" / "model_card.json").read_text())
    assert len(card["input_digest"]) == 64
    changed = json.loads(runner.invoke(app, [*args, "--param", "C=0.5"]).stdout)
    assert (changed["version"], changed["reused"]) == (2, False)


def test_adapt_conditions_a_gp_on_the_shots(trained):
    """`addgp adapt` on a GP: the next version carries the shots it is conditioned on (issue 11 item 2)."""
    manifest, store, models, _ = trained
    fitted = runner.invoke(
        app,
        [
            "train",
            str(manifest),
            "--store",
            str(store),
            "--models",
            str(models),
            "--name",
            "gp",
            "--kind",
            "dkl_gp",
            "--encoder",
            "tiny-random",
            "--datasets",
            "alpha,beta",
            "--param",
            "mode=exact",
            "--param",
            "hidden_dims=[8]",
            "--param",
            "max_steps=10",
            "--param",
            "progress=false",
        ],
    )
    assert fitted.exit_code == 0, fitted.output
    result = adapt(trained, "gp", "dataset=beta")
    assert result.exit_code == 0, result.output
    card = json.loads((models / "gp-adapt" / "v1" / "model_card.json").read_text())
    assert card["weights"]["tensors"]["shots.x"]["shape"][0] == 4 and card["training_data"]["shots"] == 4
    wrong = runner.invoke(
        app,
        [
            "train",
            str(manifest),
            "--store",
            str(store),
            "--models",
            str(models),
            "--name",
            "gp2",
            "--kind",
            "dkl_gp",
            "--encoder",
            "tiny-random",
            "--param",
            "hidden_dims=32",
        ],
    )
    assert (
        wrong.exit_code == 2 and "hidden_dims" in wrong.output and "valid tuple" in wrong.output
    )  # issue 16: not 'int' object is not iterable


def test_score_takes_many_requests_from_a_list_or_standard_input(trained, audio_manifest, tmp_path):
    """One start-up for many requests: `--list FILE` as one batch, `--list -` one row per line as it arrives."""
    _, _, models, _ = trained
    files = [str(p) for p in audio_manifest["path"][:3]]
    listing = tmp_path / "requests.txt"
    listing.write_text("\n".join(files[1:]) + "\n\n")
    batch = runner.invoke(app, ["score", files[0], "--list", str(listing), "--model", str(models / "lr")])
    assert batch.exit_code == 0, batch.output
    header, *lines = batch.stdout.rstrip("\n").split("\n")
    assert header.startswith("path\tscore") and [line.split("\t")[0] for line in lines] == files

    stdin = "\n".join([files[0], str(tmp_path / "gone.wav"), files[2]]) + "\n"
    stream = runner.invoke(app, ["score", "--list", "-", "--model", str(models / "lr")], input=stdin)
    assert stream.exit_code == 2, stream.output  # a request that failed: its row, the others scored, exit 2 at the end
    header, *lines = stream.stdout.rstrip("\n").split("\n")
    rows = [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]
    assert [r["path"] for r in rows] == [files[0], str(tmp_path / "gone.wav"), files[2]]
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[0]["score"] == batch.stdout.split("\n")[1].split("\t")[1]
    assert "1 of 3 file(s) could not be scored" in stream.stderr

    as_json = runner.invoke(app, ["score", "--list", "-", "--json", "--model", str(models / "lr")], input=files[1])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["path"] == files[1]
    nothing = runner.invoke(app, ["score", "--model", str(models / "lr")])
    assert nothing.exit_code == 2 and "--list" in nothing.output


@pytest.mark.timeout(300)  # a FIFO that is opened for reading blocks forever
def test_score_on_hostile_files_gives_each_one_row_and_scores_the_rest(trained, audio_manifest, tmp_path):
    """Issue 22, cases 2, 4, 5 and 6: a FIFO named x.flac hung forever, a link to /dev/zero read until
    memory ran out, names with a newline or tab broke the columns, an empty folder printed nothing
    with exit 0, and a 0-byte file's reason named `<_io.BytesIO object at 0x…>`."""
    _, _, models, _ = trained
    good = audio_manifest["path"][0]
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "x.flac")
    os.mkfifo(tmp_path / "direct.flac")  # named on the command line, not found in a folder
    os.symlink("/dev/zero", folder / "zero.wav")
    os.symlink(tmp_path / "nowhere.wav", folder / "dangling.wav")  # a link to nothing: its own row, not skipped
    (folder / "empty.wav").write_bytes(b"")
    odd = [folder / "two\nlines.wav", folder / "tab\there.wav", folder / "back\\slash.wav"]
    for path in odd:
        shutil.copy(good, path)
    nothing = tmp_path / "nothing"
    (nothing / "sub").mkdir(parents=True)
    (nothing / "readme.txt").write_text("no audio here")

    direct = str(tmp_path / "direct.flac")
    result = runner.invoke(app, ["score", good, direct, str(folder), str(nothing), "--model", str(models / "lr")])
    assert result.exit_code == 2, result.output
    header, *lines = result.stdout.rstrip("\n").split("\n")
    rows = [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]
    assert all(len(line.split("\t")) == 6 for line in lines) and len(rows) == 10
    by_path = {r["path"]: r for r in rows}
    for path in (direct, f"{folder}/x.flac", f"{folder}/zero.wav"):
        row = by_path[path]
        assert row["status"] == "error" and row["error"].startswith("not a regular file"), row
    assert "FIFO" in by_path[f"{folder}/x.flac"]["error"]
    assert "character device" in by_path[f"{folder}/zero.wav"]["error"]
    assert by_path[f"{folder}/empty.wav"]["error"] == "empty file (0 bytes)"
    assert by_path[f"{folder}/dangling.wav"]["error"] == "audio file missing"
    assert by_path[str(nothing)]["status"] == "error" and "no audio files" in by_path[str(nothing)]["error"]
    escaped = [f"{folder}/two\\nlines.wav", f"{folder}/tab\\there.wav", f"{folder}/back\\\\slash.wav"]
    assert all(by_path[name]["status"] == "ok" for name in [good, *escaped])
    assert "6 of 10 file(s) could not be scored" in result.stderr

    as_json = runner.invoke(app, ["score", str(folder), "--model", str(models / "lr"), "--json"])
    assert as_json.exit_code == 2
    named = {row["path"]: row for row in map(json.loads, as_json.stdout.strip().split("\n"))}
    assert all(named[str(path)]["status"] == "ok" for path in odd)  # JSON carries the names as they are


def test_score_tsv_escapes_every_character_that_could_break_a_line_or_a_column():
    from tasks.evaluate.score_files import tsv_path

    assert tsv_path("plain/ä ü.wav") == "plain/ä ü.wav"
    assert tsv_path("a\tb\nc\rd\\e\x01f\x7f.wav") == "a\\tb\\nc\\rd\\\\e\\x01f\\x7f.wav"
    assert tsv_path(os.fsdecode(b"caf\xe9.wav")) == "caf\\xe9.wav"  # a Latin-1 name: not UTF-8


def test_evaluate_on_a_manifest_that_is_not_parquet_names_it(trained, tmp_path):
    _, store, models, _ = trained
    manifest = tmp_path / "eval.parquet"
    manifest.write_text("utt_id,path\nu1,/a.wav\n")
    scores = str(tmp_path / "s.parquet")
    result = runner.invoke(
        app, ["evaluate", str(manifest), "--store", str(store), "--model", str(models / "lr"), "-o", scores]
    )
    assert result.exit_code == 2 and f"{manifest}: not a Parquet manifest" in result.output, result.output
    assert "<Buffer>" not in result.output
