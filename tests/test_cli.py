import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage.manifests import read_manifest, write_manifest

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_console_script_help_lists_the_verbs():
    exe = shutil.which("addgp") or str(__import__("pathlib").Path(sys.executable).parent / "addgp")
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for verb in ("run", "demo-data", "ingest", "datasets", "embed", "metrics"):
        assert verb in done.stdout


def test_every_verb_has_help():
    for verb in ("run", "demo-data", "ingest", "datasets", "embed", "metrics", "export-scores"):
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_train_help_names_every_registered_detector_kind():
    from tasks.train.kinds import kind_names

    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert all(kind in result.output for kind in kind_names()), (kind_names(), result.output)


@pytest.mark.parametrize(
    "params, message",
    [
        (["lr=0.1", "lr=0.2"], "--param lr given twice"),
        (["lr=0"], "dkl_gp parameter 'lr': Input should be greater than 0"),
        (["hidden_dims=32"], "dkl_gp parameter 'hidden_dims': Input should be a valid tuple"),
    ],
)
def test_train_params_are_checked_before_any_data_is_read(tmp_path, params, message):
    missing = tmp_path / "nowhere.parquet"  # read only after the parameters passed their check
    args = ["train", str(missing), "--store", str(tmp_path / "s"), "--models", str(tmp_path / "m"), "--name", "x"]
    args += ["--encoder", "tiny-random", "--kind", "dkl_gp"] + [a for p in params for a in ("--param", p)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "m").exists()


TOY_KIND = """
from tasks.train.base import LLRDetector


class ToyDetector(LLRDetector):
    kind = "toy_kind"

    def __init__(self, calibration=None):
        self.calibration = calibration
"""


def test_a_new_kind_is_one_file_and_one_registry_line_and_train_help_names_it(tmp_path):
    # The one file (a module outside the tree) and the one registry line (set before the CLI
    # is imported, as an edit of tasks/train/kinds.py would); no other edit, and no torch.
    (tmp_path / "toy_kind.py").write_text(TOY_KIND)
    program = (
        "import atexit, sys\n"
        "from tasks.train.kinds import DETECTOR_KINDS\n"
        "DETECTOR_KINDS['toy_kind'] = 'toy_kind:ToyDetector'\n"
        # main() ends with os._exit after the atexit handlers (flows/cli/__init__.py): a finally would not run
        "atexit.register(lambda: print('torch imported' if 'torch' in sys.modules else 'no torch'))\n"
        "from flows.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-c", program, "train", "--help"], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "toy_kind" in done.stdout and "dkl_gp_lastblock" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("no torch"), done.stdout


def test_run_with_a_missing_config_exits_2_naming_it(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output and "not found" in result.output


def test_run_with_an_invalid_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworkdir: w\nunknown_section: 1\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "unknown_section: unknown key" in result.output


def test_ingest_unknown_adapter_and_wrong_root(tmp_path):
    result = runner.invoke(app, ["ingest", "no_such_corpus", str(tmp_path), "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 2 and "unknown dataset adapter" in result.output
    (tmp_path / "something_else").mkdir()
    result = runner.invoke(app, ["ingest", "asvspoof2019_la", str(tmp_path), "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 2
    assert "ASVspoof2019_LA_cm_protocols" in result.output and "something_else" in result.output
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize(
    "adapter, option, bad, allowed",
    [
        ("asvspoof2019_la", "splits=eval,bogus", "'bogus'", "train, dev, eval"),
        ("asvspoof5", "splits=[dev, nope]", "'nope'", "train, dev, eval"),
        ("mlaad", "bonafide=some", "'some'", "all, referenced"),
        ("hf", "audio_format=mp3", "'mp3'", "keep, flac"),
    ],
)
def test_ingest_option_value_outside_the_adapters_choices_exits_2_naming_it(tmp_path, adapter, option, bad, allowed):
    """Issue 16: `--option splits=eval,bogus` said only `error: bogus`."""
    key = option.partition("=")[0]
    result = runner.invoke(
        app, ["ingest", adapter, str(tmp_path), "-o", str(tmp_path / "m.parquet"), "--option", option]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"adapter '{adapter}', option {key}: {bad} not allowed; allowed values: {allowed}" in message
    assert not (tmp_path / "m.parquet").exists()


def test_ingest_option_given_twice_exits_2(tmp_path):
    result = runner.invoke(
        app,
        ["ingest", "asvspoof5", str(tmp_path), "-o", str(tmp_path / "m.parquet")]
        + ["--option", "splits=eval", "--option", "splits=dev"],
    )
    assert result.exit_code == 2 and "--option splits given twice" in result.output


def test_config_with_an_option_value_outside_the_choices_is_refused_at_load(tmp_path):
    from tasks.ingest.common import OptionError
    from tasks.ingest.registry import check_options

    with pytest.raises(OptionError, match="option splits: 'bogus' not allowed; allowed values: train, dev, eval"):
        check_options("asvspoof5", {"splits": ["eval", "bogus"]})
    check_options("asvspoof5", {"splits": "eval,dev"})  # text, as --option gives it, is fine


def test_ingest_writes_manifest_and_rejects(tmp_path):
    from conftest import write_tone

    la = tmp_path / "LA"
    (la / "ASVspoof2019_LA_cm_protocols").mkdir(parents=True)
    (la / "ASVspoof2019_LA_train" / "flac").mkdir(parents=True)
    write_tone(la / "ASVspoof2019_LA_train" / "flac" / "LA_T_0000001.flac", 0.5)
    write_tone(la / "ASVspoof2019_LA_train" / "flac" / "LA_T_0000002.flac", 0.5, seed=1)
    (la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt").write_text(
        "LA_0079 LA_T_0000001 - - bonafide\nLA_0079 LA_T_0000002 - A01 spoof\nLA_0080 LA_T_0000003 - A02 spoof\nbroken line\n"
    )
    out = tmp_path / "m.parquet"
    # Half the corpus rejected: over the default limit this exits 7 after writing (issue 23 item 2).
    over = runner.invoke(app, ["ingest", "asvspoof2019_la", str(tmp_path), "-o", str(out)])
    assert over.exit_code == 7 and "2 of 4 rows rejected" in over.output and out.is_file()
    result = runner.invoke(
        app, ["ingest", "asvspoof2019_la", str(tmp_path), "-o", str(out), "--max-reject-fraction", "1"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 and summary["rejects"] == 2
    manifest = read_manifest(out)
    assert manifest["attack"].isna().tolist() == [True, False] and manifest["attack"].iloc[1] == "A01"
    rejects = tmp_path / "_rejects" / "m.rejects.parquet"
    assert json.loads(result.stdout)["rejects_table"] == str(rejects) and rejects.exists()
    assert list(tmp_path.glob("*.parquet")) == [out]  # a manifest glob catches no rejects table


def test_the_docs_manifest_glob_embeds_every_manifest(tmp_path, audio_manifest):
    """`addgp embed runs/demo/manifests/*.parquet` as the docs write it, expanded by a real shell,
    on a folder that also holds rejects (in ``_rejects/``, out of the glob's reach)."""
    from storage.manifests import rejects_path_for, write_rejects

    manifests = tmp_path / "runs" / "demo" / "manifests"
    rejected = pd.DataFrame(
        {"dataset": ["alpha"], "source": ["protocol.txt:3"], "utt_id": [None], "reason": ["unparseable protocol line"]}
    )
    for dataset, rows in audio_manifest.groupby("dataset"):
        write_manifest(rows, manifests / f"{dataset}.parquet")
        write_rejects(rejected.assign(dataset=dataset), rejects_path_for(manifests / f"{dataset}.parquet"))
    exe = shutil.which("addgp") or str(__import__("pathlib").Path(sys.executable).parent / "addgp")
    done = subprocess.run(
        f"'{exe}' embed runs/demo/manifests/*.parquet --encoder tiny-random --store runs/demo/embeddings",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["utterances_embedded"] == len(audio_manifest)


def test_metrics_prints_the_contract_keys(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"score": np.r_[rng.normal(2, 1, 200), rng.normal(-2, 1, 300)], "label": ["bonafide"] * 200 + ["spoof"] * 300}
    )
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["metrics", str(path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in (
        "eer",
        "eer_rocch",
        "min_dcf",
        "act_dcf",
        "cllr",
        "min_cllr",
        "ece",
        "brier",
        "auc",
        "n_bonafide",
        "n_spoof",
    ):
        assert key in metrics
    assert 0.0 < metrics["eer"] < 0.1 and metrics["n_bonafide"] == 200


def test_metrics_errors_exit_2(tmp_path):
    path = tmp_path / "scores.csv"
    pd.DataFrame({"score": [1.0, 2.0], "label": ["spoof", "spoof"]}).to_csv(path, index=False)
    result = runner.invoke(app, ["metrics", str(path)])
    assert result.exit_code == 2 and "scores.csv" in result.output
    pd.DataFrame({"value": [1.0]}).to_csv(path, index=False)
    result = runner.invoke(app, ["metrics", str(path)])
    assert result.exit_code == 2 and "score" in result.output
    assert runner.invoke(app, ["metrics", str(tmp_path / "absent.csv")]).exit_code == 2


def test_embed_with_unavailable_encoder_exits_3(tmp_path, audio_manifest):
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest, manifest)
    result = runner.invoke(
        app, ["embed", str(manifest), "--encoder", "facebook/wav2vec2-xls-r-300m", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 3
    assert "hf download" in result.output


def test_embed_via_cli_then_rerun_adds_nothing(tmp_path, audio_manifest):
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest, manifest)
    args = ["embed", str(manifest), "--encoder", "tiny-random", "--store", str(tmp_path / "s"), "--layers", "0,-1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "RANDOM-WEIGHT" in first.output
    assert json.loads(first.stdout)["utterances_embedded"] == len(audio_manifest)
    second = runner.invoke(app, args)
    assert json.loads(second.stdout)["utterances_embedded"] == 0


@pytest.mark.parametrize("bad", [["--pooling", "max"], ["--dtype", "int8"]])
def test_embed_rejects_bad_options(tmp_path, audio_manifest, bad):
    manifest = tmp_path / "m.parquet"
    write_manifest(audio_manifest, manifest)
    result = runner.invoke(
        app, ["embed", str(manifest), "--encoder", "tiny-random", "--store", str(tmp_path / "s"), *bad]
    )
    assert result.exit_code == 2


def test_one_app_with_module_level_verbs():
    """Every README verb is a module-level function of flows/cli/, registered once on the one app."""
    import importlib

    names = {}
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        assert name not in names, f"verb {name} registered twice"
        module = importlib.import_module(command.callback.__module__)
        assert (
            module.__name__.startswith("flows.cli.") and getattr(module, command.callback.__name__) is command.callback
        )
        names[name] = module.__name__
    readme_verbs = {
        "run",
        "demo-data",
        "ingest",
        "datasets",
        "embed",
        "train",
        "adapt",
        "score",
        "drift",
        "evaluate",
        "report",
        "metrics",
        "export-scores",
        "nightly",
        "serve",
        "models",
        "runs",
        "show",
        "compare",
        "migrate",
    }
    assert set(names) == readme_verbs
