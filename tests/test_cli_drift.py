"""`addgp drift` on generated audio: unlabelled rows against a model's training data."""

import json

import numpy as np
import soundfile as sf
from helpers import write_tone
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.common import EXIT_BAD_INPUT, EXIT_DRIFT
from storage.manifests import write_manifest
from tasks.ingest.common import finalize

runner = CliRunner()


def _trained(tmp_path):
    (tmp_path / "audio").mkdir()
    rows = [
        {
            "utt_id": f"t{i:02d}",
            "split": "train" if i < 24 else "dev",
            "label": "bonafide" if i % 2 else "spoof",
            "attack": None if i % 2 else "A01",
            "speaker": f"s{i % 4}",
            "path": write_tone(tmp_path / "audio" / f"t{i:02d}.flac", 0.5 + 0.02 * i, seed=i),
            "dataset": "tones",
        }
        for i in range(32)
    ]
    manifest = tmp_path / "tones.parquet"
    write_manifest(finalize("tones", rows, progress=False).manifest, manifest)
    store, models = tmp_path / "store", tmp_path / "models"
    assert (
        runner.invoke(app, ["embed", str(manifest), "--encoder", "tiny-random", "--store", str(store)]).exit_code == 0
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
            "tiny-random",
        ],
    )
    assert trained.exit_code == 0, trained.output
    return manifest, store, models


def test_drift_on_a_manifest_and_on_a_folder_of_unlabelled_audio(tmp_path):
    manifest, store, models = _trained(tmp_path)
    common = ["--model", str(models / "lr"), "--store", str(store), "--training-manifest", str(manifest)]

    # The training rows themselves: no drift.
    same = runner.invoke(app, ["drift", "--manifest", str(manifest), *common, "--json"])
    assert same.exit_code == 0, same.output
    record = json.loads(same.stdout)
    assert not record["mmd"]["drifted"] and record["mmd"]["p_value"] > 0.01 and record["n_rows"] == 32
    assert (
        not record["variance"]["available"] and "logreg model has no predictive variance" in record["variance"]["why"]
    )

    # Loud white noise, unlike any tone the model was trained on: drift, exit 9 when asked.
    traffic = tmp_path / "traffic"
    traffic.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        sf.write(traffic / f"n{i}.wav", (0.8 * rng.uniform(-1, 1, 8000 + 400 * i)).astype(np.float32), 16000)
    (traffic / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    noise = runner.invoke(app, ["drift", str(traffic), *common])
    assert noise.exit_code == 0, noise.output
    assert "drift: YES" in noise.stdout and "rows tested: 16 (unreadable files: 1)" in noise.stdout
    assert "predictive variance: not measured" in noise.stdout
    failing = runner.invoke(app, ["drift", str(traffic), *common, "--fail-on-drift"])
    assert failing.exit_code == EXIT_DRIFT

    both = runner.invoke(app, ["drift", str(traffic), "--manifest", str(manifest), *common])
    assert both.exit_code == EXIT_BAD_INPUT and "one of the two" in both.output
    bad_alpha = runner.invoke(app, ["drift", str(traffic), *common, "--alpha", "0.9"])
    assert bad_alpha.exit_code == EXIT_BAD_INPUT and "alpha" in bad_alpha.output
